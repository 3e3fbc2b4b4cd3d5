/* Checkpoint helpers: CRIU's statistics, CRIU log errors, and the tar of a
 * container's rootfs changes (its overlay upper dir) or of a volume. */
#pragma once
#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>

#include "util/err.h"

/* Reads CRIU's stats-dump or stats-restore file into a JSON object with
 * microsecond timings and page counts ({"frozen_time_us": .., "pages_written": ..}).
 * Returns -ENOENT when the file is missing. */
int criu_stats_read(const char *path, json_t **out, struct ferry_err *err);
/* The lines of a CRIU log that report errors, joined by "; " (malloc'd, maybe ""). */
char *criu_log_errors(const char *log_path, size_t max);

/* Makes sure CRIU finds its kernel-feature cache (/run/criu.kdat) where
 * /run is not a tmpfs and CRIU would not write it (see kdat.c): ~30 ms of
 * every freeze. criu: the binary runc runs (NULL: "criu" on PATH). */
int ckpt_kdat_prime(const char *criu, struct ferry_err *err);

struct runtime;

/* runc checkpoint of container id into images_dir (also CRIU's work dir):
 * established TCP connections and file locks included; page_server
 * ("ADDR:PORT", or NULL) receives the memory pages instead of images_dir,
 * through ps_fd when it is >= 0 (a connected stream socket CRIU inherits
 * and writes to instead of connecting itself), else CRIU connects.
 * On failure the error carries runc's message and CRIU's log errors.
 * *stats (optional) gets CRIU's dump figures. */
int ckpt_dump(struct runtime *rt, const char *id, const char *images_dir, const char *page_server,
              int ps_fd, bool leave_running, int timeout_ms, json_t **stats, struct ferry_err *err);
/* Restores the container of record rec from images_dir through ferry-shim
 * (runc restore --tcp-established), with CRIU's work dir in the container's
 * directory. *stats (optional) gets CRIU's restore figures. */
int ckpt_restore(struct runtime *rt, json_t *rec, const char *images_dir, int *pid,
                 json_t **stats, struct ferry_err *err);

/* Writes the tree below dir into a tar at out (pax, with xattrs and overlay
 * whiteouts). *bytes gets the archive size. */
int dir_to_tar(const char *dir, const char *out, uint64_t *bytes, struct ferry_err *err);

struct tar_opts {
  bool zstd;         /* compress (zstd level 1) */
  int64_t since;     /* only entries changed (ctime) at or after this time (s); 0: all */
  bool manifest;     /* add DELTA_MANIFEST: every path below dir, for apply_delta */
  bool oci;          /* an OCI image layer: overlay whiteouts (0/0 devices, opaque
                      * directories) written as .wh. files, no overlay xattrs */
};
#define DELTA_MANIFEST ".ferry-delta-manifest"
int dir_to_tar_opts(const char *dir, const char *out, const struct tar_opts *o, uint64_t *bytes,
                    struct ferry_err *err);
/* After a delta tar was extracted into dir: removes what the source no
 * longer has (every path not in the manifest) and the manifest itself. */
int apply_delta_manifest(const char *dir, struct ferry_err *err);
