/* File-system helpers. All paths are absolute or relative to the cwd; none
 * follows a symlink it was not asked to. */
#pragma once
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "util/err.h"

/* malloc'd "a/b"; aborts on OOM (the only place we do so). */
char *path_join(const char *a, const char *b);
char *xasprintf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
char *xstrdup(const char *s);

int mkdir_p(const char *path, mode_t mode, struct ferry_err *err);
/* Is path a mount point (its own mount, not just a directory)? */
bool path_is_mountpoint(const char *path);
/* CRIU's images of a migration live in memory, not on disk: a tmpfs on dir
 * (made if missing). Pages written there are not written back to a disk
 * while the restore reads them (measured with bench/run: the restore of
 * 512 MiB took 0.3-2.1 s from disk, depending on writeback). Returns < 0 if
 * the mount fails; dir is then an ordinary directory. */
int scratch_tmpfs(const char *dir, struct ferry_err *err);
/* Unmounts what scratch_tmpfs mounted on dir (if anything) and removes dir. */
void scratch_remove(const char *dir);
/* Writes data to path atomically: temp file in the same dir, fsync, rename. */
int write_file_atomic(const char *path, const void *data, size_t len, mode_t mode,
                      struct ferry_err *err);
/* The same without the fsync: the old text or the new one after a crash
 * (or an empty file on some file systems): for what a crash may lose. */
int write_file_replace(const char *path, const void *data, size_t len, mode_t mode,
                       struct ferry_err *err);
/* Reads a whole file (at most max bytes) into a NUL-terminated malloc'd buffer. */
int read_file(const char *path, size_t max, char **out, size_t *out_len, struct ferry_err *err);
/* Reads a bearer token from a file: the first line, without its newline;
 * refuses an empty one. *out is malloc'd. */
int read_token_file(const char *path, char **out, struct ferry_err *err);
/* read_file of a regular file only: a FIFO or a device is refused, not
 * waited for (/dev/null reads as empty). */
int read_regular_file(const char *path, size_t max, char **out, size_t *out_len,
                      struct ferry_err *err);
/* "10G", "512M", "64KiB", "1000": bytes (binary suffixes K M G T, with an
 * optional "i" and "B"); -EINVAL for anything else, -ERANGE past 2^64. */
int parse_size(const char *s, uint64_t *out);
/* Removes a tree; never crosses into another file system (a forgotten mount). */
int rm_rf(const char *path, struct ferry_err *err);
bool path_exists(const char *path);
/* Opens root/rel (flags as for open(2), O_CLOEXEC added) resolving rel only
 * beneath root and following no symbolic link (openat2 RESOLVE_BENEATH |
 * RESOLVE_NO_SYMLINKS): a path that would leave root or pass a symlink is
 * refused with an invalid-input error. Returns the fd. */
int open_beneath(const char *root, const char *rel, int flags, struct ferry_err *err);
/* Opens root/rel as a process chrooted into root would: symlinks are
 * followed, but resolved inside root (openat2 RESOLVE_IN_ROOT). */
int open_in_root(const char *root, const char *rel, int flags, struct ferry_err *err);
/* Copies a regular file (contents and mode 0600) to dst, replacing it. */
int copy_file(const char *src, const char *dst, struct ferry_err *err);
bool dir_is_empty(const char *path);
/* Sum of the sizes of regular files below path. */
uint64_t dir_size(const char *path);

/* A random identifier of nhex lowercase hex digits (nhex <= 64). */
void random_hex(char *out, size_t nhex);
/* Closes fd on a detached thread of its own, off the caller's path: the
 * last close of a packet socket waits for an RCU grace period (the
 * kernel's synchronize_net(), 5-10 ms here), a TAP device's removes the
 * device (10-25 ms). Closed at once when no thread can be made. */
void close_async(int fd);
/* Monotonic and wall clocks in milliseconds. */
uint64_t now_mono_ms(void);
uint64_t now_wall_ms(void);
/* RFC 3339 UTC timestamp of a wall time in ms, into buf (>= 32 bytes). */
void format_time(uint64_t wall_ms, char *buf, size_t len);
