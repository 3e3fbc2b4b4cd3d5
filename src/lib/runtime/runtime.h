/* Containers on one host: records, OCI bundles, the runc driver and volumes.
 *
 *   ROOT/containers/<id>/container.json   the record (see docs/architecture.md)
 *   ROOT/containers/<id>/bundle/          config.json + rootfs (overlay mount point)
 *   ROOT/containers/<id>/upper, work      the overlay's writable layer
 *   ROOT/containers/<id>/ctr.log          the container's stdout and stderr
 *   ROOT/containers/<id>/exit.json        written by ferry-shim when the container exits
 *   ROOT/volumes/<name>/_data             a named volume
 *
 * A container record is a JSON object; the functions here take and return
 * jansson references. No locking here: the agent serialises calls. */
#pragma once
#include <jansson.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>

#include "runtime/record.h"
#include "util/err.h"

struct runtime {
  char *root;         /* agent root (absolute) */
  char *ctr_dir;      /* ROOT/containers */
  char *vol_dir;      /* ROOT/volumes */
  char *runc;         /* runc binary */
  char *runc_root;    /* runc --root */
  char *shim;         /* ferry-shim binary */
  char *criu_helper;  /* ferry-criu (next to the shim), runc's --criu; NULL: criu itself */
  char *criu_cache;   /* ROOT/criu-version.cache, ferry-criu's copy of CRIU's version answer */
  char *cgroup_parent;/* e.g. "/ferry" */
  int stop_timeout_s;
  /* runc state answers, reused for a moment by ctr_refresh (ps under load
   * costs one runc per container per STATE_CACHE_MS, not per request);
   * any change through runc or a record write empties it */
  pthread_mutex_t state_lock;
  json_t *state_cache; /* id -> {"status", "pid", "at"} */
};
#define STATE_CACHE_MS 500

/* Something about a container changed (runc was told to act, a record was
 * written): cached states are dropped. */
void runtime_changed(struct runtime *rt);

int runtime_init(struct runtime *rt, const char *root, const char *runc_root, const char *runc,
                 const char *shim, struct ferry_err *err);
void runtime_fini(struct runtime *rt);

/* Names: [a-zA-Z0-9][a-zA-Z0-9_.-]{0,62} for containers and volumes. */
int validate_name(const char *kind, const char *name, struct ferry_err *err);

/* A volume's mount point in a container: absolute and normalised (no "//",
 * ".", ".." or trailing "/"), not "/". */
int volume_dest_check(const char *dest, struct ferry_err *err);
/* A tmpfs mount as podman's --tmpfs takes it, "/path[:OPTIONS]" (OPTIONS a
 * comma list of ro, rw, exec, noexec, suid, nosuid, dev, nodev, size=N[kmg%],
 * mode=OCTAL, nr_inodes=N[kmg%]; defaults rw,noexec,nosuid,nodev), into
 * {"destination", "options"} with the options normalised. */
int tmpfs_parse(const char *spec, json_t **out, struct ferry_err *err);
/* Checks a container record that comes from outside (a peer's migration
 * offer, a checkpoint directory) and returns a fresh record holding only the
 * fields ferry knows, each validated: name, image digest, ip, mac, args, env,
 * cwd, user, uid/gid, volumes (names and destinations). Ids, network names
 * and live state are the caller's to set. */
int ctr_record_sanitize(json_t *in, json_t **out, struct ferry_err *err);

/* Paths of a container (malloc'd). */
char *ctr_path(struct runtime *rt, const char *id, const char *leaf);
/* CRIU's options for a container, in its directory (see spec_build). */
#define CTR_CRIU_CONF "criu.conf"
/* A container's output log is capped: past this size it becomes ctr.log.1
 * (replacing the older) and a new ctr.log begins. */
#define CTR_LOG_MAX (32ull << 20)
/* One answer of GET .../logs carries at most this much. */
#define CTR_LOG_CHUNK (4u << 20)
/* Memory the container's cgroup uses now (bytes), or -1 when unknown. */
int64_t ctr_memory_bytes(struct runtime *rt, const char *id);
/* The processes of a container's cgroup (at most 4096), each {"pid" (in the
 * container), "ppid" (in the container; 0: outside it), "host_pid", "uid",
 * "cpu_seconds", "elapsed_seconds", "cpu_percent" (over its life),
 * "command"}; empty when it has none or its cgroup cannot be read. */
json_t *ctr_processes(struct runtime *rt, const char *id);
/* A container's resource use now, from its cgroup (v1 or v2) and its init's
 * (pid) network namespace: {"cpu_seconds", "memory_bytes",
 * "memory_limit_bytes" (the host's memory when unlimited), "pids",
 * "net_rx_bytes", "net_tx_bytes" (its links but lo), "block_read_bytes",
 * "block_write_bytes", "read_at_ms" (monotonic: for rates between two)}. */
json_t *ctr_stats(struct runtime *rt, const char *inst, int pid);

/* Records. ctr_load_all returns an array sorted by creation time. */
json_t *ctr_load_all(struct runtime *rt);
int ctr_save(struct runtime *rt, json_t *rec, struct ferry_err *err);
/* By name, full id, or unique id prefix (>= 4 hex digits). */
int ctr_find(struct runtime *rt, const char *ref, json_t **out, struct ferry_err *err);

/* The live status (record.h's enum ctr_live). Updates rec's "status",
 * "pid", "exit_code" fields from runc and the shim. */
enum ctr_live ctr_refresh(struct runtime *rt, json_t *rec);

/* The OCI runtime spec (config.json) for a record. image_cfg is the image's
 * run configuration; rootfs is the mounted overlay. */
int spec_build(struct runtime *rt, json_t *rec, json_t **out, struct ferry_err *err);
/* Resolves the image's User ("name", "uid", "uid:gid", "name:group") against
 * the rootfs's /etc/passwd and /etc/group. */
int spec_resolve_user(const char *rootfs, const char *user, uint32_t *uid, uint32_t *gid,
                      struct ferry_err *err);

/* runc driver. */
/* Starts (run -d) or restores (restore -d, extra args) through ferry-shim;
 * returns the container's init pid. */
int runc_launch(struct runtime *rt, json_t *rec, char *const *restore_args, int *pid_out,
                struct ferry_err *err);
/* runc_launch in two halves: the shim started (with gate: FERRY_CRIU_GATE
 * in its environment, for ferry-criu), *sync_out the pipe its answer comes
 * on; then that answer, within 120 s. */
int runc_launch_start(struct runtime *rt, json_t *rec, char *const *restore_args, const char *gate,
                      int *sync_out, struct ferry_err *err);
int runc_launch_finish(int sync_fd, bool restore, int *pid_out, struct ferry_err *err);
int runc_state(struct runtime *rt, const char *id, char **status, int *pid);
int runc_signal(struct runtime *rt, const char *id, int sig, bool all, struct ferry_err *err);
int runc_delete(struct runtime *rt, const char *id, bool force, struct ferry_err *err);
int runc_simple(struct runtime *rt, const char *verb, const char *id, struct ferry_err *err);
/* Waits up to timeout_ms until the container is idle: no datagram queued
 * to read on the UDP sockets of its network namespace and none of its
 * threads running. A freeze waits for it once its traffic is held: the
 * request it read just before is answered before it is frozen (a frozen
 * process would answer it only once restored, while its new host's link is
 * still down: the answer lost, a TCP one sent again after a retransmission
 * timeout), and a datagram left queued would be lost (CRIU does not carry
 * a UDP socket's queue). Datagrams still queued while a thread of it is
 * runnable (its reader, woken but not yet run on a loaded host) keep it
 * waiting up to udp_timeout_ms. Returns 0 when idle, else how busy it
 * still was (bytes queued plus threads running); -1 when it cannot tell.
 * *udp_left (when not NULL): the bytes of datagrams still queued at the
 * end (lost to the freeze). */
long ctr_settle(struct runtime *rt, json_t *rec, int timeout_ms, int udp_timeout_ms,
                long *udp_left);
/* Keeps the kernel's cgroup v1 freezer on with an empty frozen cgroup
 * (PARENT/keep-frozen): 1 made or found, 0 no v1 freezer, -errno. */
int runtime_freezer_keep(struct runtime *rt);
/* Pauses the container as `runc pause` does, by its cgroup's freezer
 * (v1 freezer.state, v2 cgroup.freeze), without starting runc inside the
 * pause; runc pause when the freezer does not settle within a second.
 * runc reads the freezer for its status: the container is "paused" to it,
 * and `runc resume` thaws it. */
int ctr_freeze(struct runtime *rt, json_t *rec, struct ferry_err *err);
/* Waits up to timeout_ms for the shim's exit file. */
bool ctr_wait_exit(struct runtime *rt, const char *id, int timeout_ms);

struct exec_result {
  int exit_code;
  char *out;
  char *errout;
};
int runc_exec(struct runtime *rt, json_t *rec, char *const *argv, char *const *env,
              int timeout_ms, struct exec_result *res, struct ferry_err *err);
/* An exec whose output is read as it comes (runc exec on pipes). */
struct exec_proc {
  int runc_pid;
  int out_fd, err_fd; /* the command's stdout and stderr (with a terminal: runc's own) */
  int in_fd;          /* EXEC_STDIN or EXEC_TTY: the command's input, else -1 */
  int resize_fd;      /* EXEC_TTY: its terminal's size goes here (rows, cols: 16-bit BE) */
  int exit_fd;        /* readable once the command ended (a pidfd of its ferry-shim), or -1 */
  char *pid_dir;      /* where runc writes the command's pid */
};
#define EXEC_TTY 1u   /* a terminal (through ferry-shim --exec, which relays it on its stdio) */
#define EXEC_STDIN 2u /* input for the command */
int runc_exec_start(struct runtime *rt, json_t *rec, char *const *argv, char *const *env,
                    unsigned flags, struct exec_proc *p, struct ferry_err *err);
/* Closes the pipes and reaps runc; with kill_it the command is killed
 * first (SIGKILL, by the pid runc wrote). Returns the exit code (128+N for
 * a signal), -1 when nothing ran. */
int runc_exec_end(struct exec_proc *p, bool kill_it);

/* Files in and out of a running container (copy.c; ferry cp), every name
 * resolved as the container sees it. stat: {"path", "type": "dir"|"file"|
 * "other", "size", "mode"} (following a last symlink), 404 when missing.
 * out: a tar of path (its last component the archive's top entry, symlinks
 * kept) on *fd from a child *pid; ctr_copy_out_end closes and reaps it (its
 * exit code, 0 when the tar is whole). in: the tar file extracted into the
 * container's directory dir (extract_archive's checks; 400 for a hostile
 * archive). A container that does not run: its root file system without its
 * volumes (409 when its files are not here: moved away).  */
int ctr_copy_stat(struct runtime *rt, json_t *rec, const char *path, json_t **out,
                  struct ferry_err *err);
int ctr_copy_out(struct runtime *rt, json_t *rec, const char *path, int *fd, int *pid,
                 struct ferry_err *err);
int ctr_copy_out_end(int fd, int pid);
int ctr_copy_in(struct runtime *rt, json_t *rec, const char *dir, const char *tarfile,
                struct ferry_err *err);
/* A tar of name (relative to the cwd; its entries renamed to start with as
 * instead, when given) on fd: regular files, directories and symlinks (kept
 * as links). 0 when whole. */
int copy_tar_to_fd(const char *name, const char *as, int fd);

/* Volumes. */
char *volume_path(struct runtime *rt, const char *name); /* the _data dir */
int volume_create(struct runtime *rt, const char *name, bool exist_ok, json_t **out,
                  struct ferry_err *err);
json_t *volume_list(struct runtime *rt);
int volume_get(struct runtime *rt, const char *name, json_t **out, struct ferry_err *err);
int volume_remove(struct runtime *rt, const char *name, struct ferry_err *err);
/* A volume received by a migration is marked with its id until the
 * migration's container runs (mark NULL: unmarked). */
int volume_set_mark(struct runtime *rt, const char *name, const char *mark, struct ferry_err *err);
bool volume_has_mark(struct runtime *rt, const char *name, const char *mark);
