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
 * every freeze. criu: the binary runc runs (NULL: "criu" on PATH). Cheap
 * when the cache is there (a stat): called before every move. */
int ckpt_kdat_prime(const char *criu, struct ferry_err *err);
#include "ckpt/criu-log-level.h"

/* CRIU's page server for one migration's memory. ferryd listens on a free
 * port of listen_ip and accepts the one connection itself (CRIU's page
 * server takes the first connector, whoever it is): from peer only (NULL or
 * "": this host's addresses and the loopback), which must send the secret
 * first; then the forked gate becomes `criu page-server --ps-socket 3` on
 * that connection (through ferryd's zstd relay when zstd is set). No
 * connection before deadline_ms (monotonic) ends it. The secret goes to the
 * source inside the agents' authenticated API. The listening socket exists
 * when the port is answered: nothing to wait for. */
#define CKPT_PS_SECRET_LEN 32
struct ckpt_page_server {
  const char *listen_ip;  /* NULL: any address */
  const char *peer;
  const char *images_dir; /* where CRIU writes the pages */
  const char *prev_dir;   /* a previous round's images, relative to images_dir, or NULL */
  bool zstd;
  uint64_t deadline_ms;
  const char *log_path;   /* its output */
  /* set by ckpt_page_server_start */
  int port;
  int pid;
  char secret[CKPT_PS_SECRET_LEN + 1];
};
int ckpt_page_server_start(struct ckpt_page_server *ps, struct ferry_err *err);
/* `ferryd --page-gate ...`, the page server's gate in its own process (the
 * agent's binary, started by ckpt_page_server_start through util/spawn). */
int ckpt_page_gate_main(int argc, char **argv);
/* Waits up to timeout_ms for the page server to end: 0 when it received a
 * whole dump, else an error carrying its log's errors (the process reaped,
 * killed if it had to be). */
int ckpt_page_server_end(int pid, const char *log_path, int timeout_ms, struct ferry_err *err);

/* A dump's CRIU started ahead (`criu swrk` on a socket pair, waiting for
 * its request): its start (exec, its libraries, ~15 ms of CPU on these
 * machines and twice that in time when they are busy) happens before the
 * freeze, and its exit after the dump's answer. ps_fd and keeper_fd: the
 * fds the dump will name (ckpt_dump_opts'), -1 none; out_path takes what
 * it prints before its log is set up. ckpt_criu_end ends an unused one and
 * reaps it (after a dump, it has exited or is about to). */
struct ckpt_criu;
int ckpt_criu_start(int ps_fd, int keeper_fd, const char *out_path, struct ckpt_criu **out,
                    struct ferry_err *err);
void ckpt_criu_end(struct ckpt_criu *c);

struct runtime;

struct ckpt_dump_opts {
  const char *page_server; /* "ADDR:PORT", or NULL: the pages go into images_dir */
  int ps_fd;               /* >= 0: a connected stream socket CRIU inherits and writes
                            * the pages to instead of connecting itself */
  bool leave_running;      /* the processes stay (frozen, if they were) */
  bool pre_dump;           /* memory only, the container runs on (runc --pre-dump) */
  const char *parent;      /* the previous pre-dump's images, relative to images_dir:
                            * only pages written since go (NULL: all) */
  int keeper_fd;           /* >= 0: the memory trackers' keeper socket (CRIU's
                            * --track-mem-keeper, criu/README.md); -1: none */
  int timeout_ms;
  /* post-copy: CRIU dumps all but the lazy pages into images_dir, then serves
   * those on ps_fd (its page server, for a remote `criu lazy-pages`) until
   * the other side has them all; ckpt_dump returns once the images are
   * written, *lazy_pid being that CRIU, the caller's to end with
   * ckpt_lazy_wait. Only with the direct dump. */
  int *lazy_pid;
  /* started ahead with the same ps_fd and keeper_fd: a direct dump (not a
   * pre-dump, not lazy) is its request; else, or if it cannot take it,
   * CRIU is started here. Used once; the caller ends it. */
  struct ckpt_criu *criu;
};
#define CKPT_DUMP_OPTS_INIT {.ps_fd = -1, .keeper_fd = -1}

/* A dump of container id into images_dir (also CRIU's work dir):
 * established TCP connections and file locks included (a pre-dump: the
 * memory only). CRIU is run directly with the options runc checkpoint
 * would give it (read from runc's state.json; runc's restore takes the
 * images), which spares the freeze runc's start and its CRIU version run;
 * runc checkpoint where the state has something that is not mirrored, or
 * with FERRY_DUMP_VIA_RUNC=1 in the environment. On failure the error
 * carries the program's message and CRIU's log errors. *stats (optional)
 * gets CRIU's dump figures. */
int ckpt_dump(struct runtime *rt, const char *id, const char *images_dir,
              const struct ckpt_dump_opts *o, json_t **stats, struct ferry_err *err);
/* Waits up to timeout_ms for a lazy dump's CRIU (ckpt_dump_opts.lazy_pid)
 * to have served every page and exit; kills it when kill_now (the move was
 * abandoned) or at the timeout. 0 when it served everything. */
int ckpt_lazy_wait(int pid, const char *images_dir, int timeout_ms, bool kill_now,
                   struct ferry_err *err);
/* Whether the CRIU in use tracks memory changes (pre-dump works): soft-dirty
 * or ferry's write-protect tracking (criu/README.md). Asked once. */
bool ckpt_can_track_memory(void);
/* Restores the container of record rec from images_dir through ferry-shim
 * (runc restore --tcp-established), with CRIU's work dir in the container's
 * directory. *stats (optional) gets CRIU's restore figures. With lazy,
 * the memory comes lazily (runc restore --lazy-pages): the processes run at
 * once and fault their pages in from images_dir through a criu lazy-pages
 * daemon, which pushes the rest meanwhile and exits when all are in (the
 * pages not in images_dir come through lazy->ps_fd); lazy->pid is that
 * daemon, the caller's to reap, and images_dir must stay until it has
 * exited. */
struct ckpt_lazy {
  int pid;   /* out: the lazy-pages daemon */
  int copy_pid; /* out: the restored container's first process: if the daemon fails,
                 * the pages it has not brought in would read as zeros (the kernel
                 * drops the userfaultfd's ranges with it), so the caller kills it */
  int ps_fd; /* > 2: a connection to the dumping CRIU's page server (ckpt_dump_opts.lazy_pid,
              * post-copy), for the pages not in images_dir; -1: all are in images_dir */
  char log[512]; /* out: the daemon's log (in the restore's work directory) */
};
int ckpt_restore(struct runtime *rt, json_t *rec, const char *images_dir, struct ckpt_lazy *lazy,
                 int *pid, json_t **stats, struct ferry_err *err);

/* A restore started ahead of its images: runc restore runs (its start, the
 * container's cgroups, the rootfs bound) and is held at ferry-criu's gate
 * until ckpt_restore_go, once every image is in images_dir; descriptors
 * (runc's descriptors.json, from the dumped container's runc state) are
 * written there first. Not lazy. -ENOTSUP when it cannot be held (no
 * ferry-criu): the caller restores the usual way. ckpt_restore_cancel ends
 * a held restore (runc fails and removes what it made). */
struct ckpt_restore_job;
int ckpt_restore_start(struct runtime *rt, json_t *rec, const char *images_dir, json_t *descriptors,
                       struct ckpt_restore_job **out, struct ferry_err *err);
/* With tail (not NULL), ckpt_restore_go returns as soon as ferry-criu says
 * CRIU restored the processes (they run), *tail then holding the rest:
 * runc's and ferry-shim's end (10-15 ms here), which ckpt_restore_tail_end
 * waits for (its failure: the restore failed after all; the caller removes
 * the copy) — exactly once, before the copy is used or removed. *tail is
 * NULL when the restore ended whole (ferry-criu said nothing, or it
 * failed). */
struct ckpt_restore_tail;
int ckpt_restore_go(struct runtime *rt, struct ckpt_restore_job *j, int *pid, json_t **stats,
                    struct ckpt_restore_tail **tail, struct ferry_err *err);
int ckpt_restore_tail_end(struct runtime *rt, struct ckpt_restore_tail *t, struct ferry_err *err);
void ckpt_restore_cancel(struct runtime *rt, struct ckpt_restore_job *j);
/* The stdio runc's restore will reconnect (runc state's external_descriptors)
 * of container id, or NULL. */
json_t *ckpt_descriptors(struct runtime *rt, const char *id);

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
/* CRIU's images (dir: regular files only, a link in it skipped) as a tar
 * (zstd's fast level -1 when zstd) at out, for extract_flat: without reading the
 * files' owners, names and extended attributes, a few system calls each. */
int flat_dir_to_tar(const char *dir, const char *out, bool zstd, uint64_t *bytes,
                    struct ferry_err *err);
/* After a delta tar was extracted into dir: removes what the source no
 * longer has (every path not in the manifest) and the manifest itself. */
int apply_delta_manifest(const char *dir, struct ferry_err *err);
