/* ferry checkpoint: a migration to a directory. The same pipeline as a live
 * migration (pipeline.c) with this agent as the host and a directory as the
 * destination: the container is claimed, frozen, dumped (its processes
 * stay, frozen), its file changes written, and only when checkpoint.json
 * is in place (the "commit") does it end here or run on; any failure
 * before resumes it and removes what was written.
 *
 * A checkpoint directory is self-contained:
 *   DIR/checkpoint.json    format version, the container record, its image record, report
 *   DIR/criu/              CRIU's images (runc checkpoint --image-path)
 *   DIR/rootfs-diff.tar    the overlay upper dir: files changed in the container
 *   DIR/volumes/NAME.tar   each named volume's contents
 *   DIR/ctr.log            the container's output up to the checkpoint
 * (agent_restore in agent/agent_ckpt.c reads it back). */
#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "agent/agent.h"
#include "ckpt/ckpt.h"
#include "migrate/host.h"
#include "migrate/migrate.h"
#include "util/cleanup.h"
#include "util/fs.h"
#include "util/json.h"
#include "util/log.h"

struct ckpt_dest {
  struct agent *a;
  const char *dir_in;
  char *dir; /* realpath, once made */
  bool made_dir, leave;
  uint64_t rootfs_bytes, volume_bytes;
  uint64_t t_freeze, t_dump, t_transfer, t_restore, t_done;
  json_t *report;
};

#define D(p) ((struct ckpt_dest *)(p)->dest_ctx)

static int dir_offer(struct mig_pipe *p, struct ferry_err *err)
{
  struct ckpt_dest *d = D(p);
  if (path_exists(d->dir_in) && !dir_is_empty(d->dir_in))
    return FERRY_CONFLICT(err, "checkpoint directory %s exists and is not empty", d->dir_in);
  d->made_dir = !path_exists(d->dir_in);
  int r = mkdir_p(d->dir_in, 0700, err);
  if (r < 0)
    return r;
  d->dir = realpath(d->dir_in, NULL);
  if (!d->dir)
    return ferry_err_sys(err, -errno, "checkpoint directory %s", d->dir_in);
  return 0;
}

/* The pages are written with CRIU's other images, into the directory. */
static int dir_memory_prepare(struct mig_pipe *p, char **page_server, int *ps_fd,
                              struct ferry_err *err)
{
  *page_server = NULL;
  *ps_fd = -1;
  return 0;
}

static int dir_memory_finish(struct mig_pipe *p, struct ferry_err *err)
{
  return 0;
}

static int dir_criu_dir(struct mig_pipe *p, char **out, struct ferry_err *err)
{
  *out = path_join(D(p)->dir, "criu");
  return mkdir_p(*out, 0700, err);
}

/* The rootfs changes and the volumes, while nothing in the container runs;
 * its processes are still there (dumped, frozen): a full disk here resumes
 * it as it was. */
static int dir_transfer(struct mig_pipe *p, const char *criu, struct ferry_err *err)
{
  struct ckpt_dest *d = D(p);
  const char *name = rec_name(p->rec);
  _cleanup_free_ char *difftar = path_join(d->dir, "rootfs-diff.tar");
  struct tar_opts plain = {0};
  int r = agent_part_tar(d->a, PART_ROOTFS, p->rec, NULL, difftar, &plain, &d->rootfs_bytes, err);
  for (size_t i = 0; i < rec_n_volumes(p->rec); i++) {
    if (r < 0)
      break;
    const char *vn = rec_volume_name(p->rec, i);
    _cleanup_free_ char *vd = path_join(d->dir, "volumes");
    _cleanup_free_ char *leaf = xasprintf("%s.tar", vn);
    _cleanup_free_ char *out = path_join(vd, leaf);
    uint64_t b = 0;
    if ((r = mkdir_p(vd, 0700, err)) == 0 &&
        (r = agent_part_tar(d->a, PART_VOLUME, p->rec, vn, out, &plain, &b, err)) < 0)
      ferry_err_wrap(err, "volume \"%s\"", vn);
    d->volume_bytes += b;
  }
  return r < 0 ? ferry_err_wrap(err, "container \"%s\": save file changes", name) : 0;
}

/* Everything is in the directory already. */
static int dir_restore(struct mig_pipe *p, json_t *neigh, struct ferry_err *err)
{
  return 0;
}

static enum target_state dir_state(struct mig_pipe *p, long timeout_s)
{
  return T_RESTORED;
}

static json_int_t ms(uint64_t a, uint64_t b)
{
  return b > a ? (json_int_t)(b - a) : 0;
}

/* checkpoint.json makes the directory a checkpoint: written last,
 * atomically. */
static int dir_commit(struct mig_pipe *p, struct ferry_err *err)
{
  struct ckpt_dest *d = D(p);
  _cleanup_free_ char *log_dst = path_join(d->dir, "ctr.log");
  if (agent_ctr_log_copy(d->a, p->rec, log_dst, err) < 0)
    return ferry_err_wrap(err, "checkpoint %s: the container's output", d->dir);
  _cleanup_free_ char *criu = path_join(d->dir, "criu");
  char ts[40];
  format_time(now_wall_ms(), ts, sizeof ts);
  json_t *rep = d->report;
  json_object_set_new(rep, "container", json_string(rec_name(p->rec)));
  json_object_set_new(rep, "dir", json_string(d->dir));
  json_object_set_new(rep, "created", json_string(ts));
  json_object_set_new(rep, "leave_running", json_boolean(d->leave));
  json_object_set_new(rep, "freeze_ms", json_integer(ms(d->t_freeze, d->t_dump)));
  json_object_set_new(rep, "dump_ms", json_integer(ms(d->t_dump, d->t_transfer)));
  json_object_set_new(rep, "files_ms", json_integer(ms(d->t_transfer, d->t_restore)));
  json_object_set_new(rep, "total_ms", json_integer(ms(d->t_freeze, now_mono_ms())));
  json_object_set_new(rep, "criu_bytes", json_integer((json_int_t)dir_size(criu)));
  json_object_set_new(rep, "rootfs_bytes", json_integer((json_int_t)d->rootfs_bytes));
  json_object_set_new(rep, "volume_bytes", json_integer((json_int_t)d->volume_bytes));
  if (p->criu)
    json_object_set(rep, "criu", p->criu);
  _cleanup_json_ json_t *ctr = json_deep_copy(p->rec);
  rec_set_op(ctr, OP_NONE);
  if (!d->leave)
    rec_set_state(ctr, CS_CHECKPOINTED);
  _cleanup_json_ json_t *meta = json_pack("{s:i, s:O, s:O, s:O}", "format", CKPT_FORMAT,
                                          "container", ctr, "image", p->img, "report", rep);
  _cleanup_free_ char *metap = path_join(d->dir, "checkpoint.json");
  return json_save_atomic(metap, meta, err);
}

/* A failed checkpoint leaves nothing behind. */
static void dir_abort(struct mig_pipe *p)
{
  struct ckpt_dest *d = D(p);
  const char *dir = d->dir ? d->dir : d->dir_in;
  if (d->made_dir) {
    rm_rf(dir, NULL);
    return;
  }
  static const char *const parts[] = {"criu", "rootfs-diff.tar", "volumes", "ctr.log",
                                      "checkpoint.json"};
  for (size_t i = 0; i < sizeof parts / sizeof parts[0]; i++) {
    _cleanup_free_ char *x = path_join(dir, parts[i]);
    rm_rf(x, NULL);
  }
}

static const struct mig_dest_ops dir_dest = {
    .offer = dir_offer,
    .memory_prepare = dir_memory_prepare,
    .memory_finish = dir_memory_finish,
    .criu_dir = dir_criu_dir,
    .transfer = dir_transfer,
    .restore = dir_restore,
    .state = dir_state,
    .commit = dir_commit,
    .abort = dir_abort,
};

static void on_ckpt_phase(struct mig_pipe *p, enum mig_phase ph)
{
  struct ckpt_dest *d = D(p);
  uint64_t now = now_mono_ms();
  switch (ph) {
  case PH_FREEZE: d->t_freeze = now; break;
  case PH_DUMP: d->t_dump = now; break;
  case PH_TRANSFER: d->t_transfer = now; break;
  case PH_RESTORE: d->t_restore = now; break;
  case PH_DONE: d->t_done = now; break;
  default: break;
  }
}

int migrate_checkpoint(struct agent *a, const char *ref, json_t *req, json_t **out,
                       struct ferry_err *err)
{
  const char *dir_in;
  bool leave = false;
  int r;
  if (!json_is_object(req))
    return FERRY_INVALID(err, "request body must be a JSON object");
  if ((r = json_get_str(req, "dir", true, &dir_in, err)) < 0 ||
      (r = json_get_bool(req, "leave_running", false, &leave, err)) < 0)
    return r;
  if (dir_in[0] != '/')
    return FERRY_INVALID(err, "checkpoint directory \"%s\" must be an absolute path", dir_in);
  /* whether the directory is new or empty is the offer's check (before
   * anything is frozen) */
  if ((r = agent_ctr_checkpointable(a, ref, err)) < 0)
    return r;

  struct ckpt_dest d = {.a = a, .dir_in = dir_in, .leave = leave, .report = json_object()};
  struct mig_host h = {.a = a, .ref = ref, .op = OP_CHECKPOINT,
                       .after = leave ? AFTER_RUN_ON : AFTER_STOP};
  struct mig_pipe p = {.id = ref, .fault_prefix = "checkpoint", .host = &mig_agent_host,
                       .dest = &dir_dest, .host_ctx = &h, .dest_ctx = &d,
                       .timeout_s = 900, .on_phase = on_ckpt_phase};
  r = mig_pipe_run(&p);
  if (r == 0) {
    json_object_set_new(d.report, "total_ms", json_integer(ms(d.t_freeze, d.t_done)));
    if (leave)
      json_object_set_new(d.report, "paused_ms", json_integer(ms(d.t_freeze, d.t_done)));
    log_info("agent", "container %s checkpointed to %s (%" PRIu64 " ms)",
             (rec_has_name(p.rec) ? rec_name(p.rec) : ref), d.dir, d.t_done - d.t_freeze);
    *out = json_incref(d.report);
  } else {
    *err = p.err;
  }
  mig_pipe_fini(&p);
  json_decref(d.report);
  free(d.dir);
  return r;
}
