/* Restore of a container on this host from a checkpoint directory (ferry
 * checkpoint writes it: migrate/checkpoint.c, a migration to a directory).
 *
 * A checkpoint directory is self-contained:
 *   DIR/checkpoint.json    format version, the container record, its image record, report
 *   DIR/criu/              CRIU's images (runc checkpoint --image-path)
 *   DIR/rootfs-diff.tar    the overlay upper dir: files changed in the container
 *   DIR/volumes/NAME.tar   each named volume's contents
 *   DIR/ctr.log            the container's output up to the checkpoint
 */
#include <inttypes.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "agent/agent_private.h"
#include "ckpt/ckpt.h"
#include "image/extract.h"
#include "image/overlay.h"
#include "util/cleanup.h"
#include "util/fault.h"
#include "util/fs.h"
#include "util/json.h"
#include "util/log.h"
#include "util/spawn.h"
#include "util/strv.h"

static int restore_volumes(struct agent *a, json_t *rec, const char *dir, char ***made,
                           struct ferry_err *err)
{
  for (size_t i = 0; i < rec_n_volumes(rec); i++) {
    const char *name = rec_volume_name(rec, i);
    int r = validate_name("volume", name, err);
    if (r < 0)
      return r;
    _cleanup_json_ json_t *vj = NULL;
    if (volume_get(&a->rt, name, &vj, NULL) == 0)
      continue; /* the volume is here already (same host): use it as it is */
    _cleanup_free_ char *leaf = xasprintf("volumes/%s.tar", name);
    _cleanup_free_ char *tar = path_join(dir, leaf);
    if ((r = volume_create(&a->rt, name, false, NULL, err)) < 0)
      return r;
    strv_push(made, name);
    if (path_exists(tar)) {
      _cleanup_free_ char *dest = volume_path(&a->rt, name);
      _cleanup_free_ char *what = xasprintf("checkpoint volume %s", name);
      if ((r = extract_archive(tar, dest, EXTRACT_UPPER, &a->images.limits, what, err)) < 0)
        return r;
    }
  }
  return 0;
}

/* The files of a checkpoint directory, put in place for its restored copy. */
struct dir_files {
  const char *dir;
  char ***made_vols; /* volumes created here (removed again on failure) */
};

static int place_dir_files(struct agent *a, json_t *rec, void *ctx, struct ferry_err *err)
{
  struct dir_files *f = ctx;
  int r = restore_volumes(a, rec, f->dir, f->made_vols, err);
  if (r < 0)
    return r;
  _cleanup_free_ char *upper = ctr_path(&a->rt, rec_id(rec), "upper");
  _cleanup_free_ char *difftar = path_join(f->dir, "rootfs-diff.tar");
  if ((r = mkdir_p(upper, 0755, err)) < 0)
    return r;
  if (path_exists(difftar) &&
      (r = extract_archive(difftar, upper, EXTRACT_UPPER, &a->images.limits,
                           "checkpoint rootfs changes", err)) < 0)
    return r;
  _cleanup_free_ char *log_src = path_join(f->dir, "ctr.log");
  _cleanup_free_ char *log_dst = ctr_path(&a->rt, rec_id(rec), "ctr.log");
  if (path_exists(log_src) && (r = copy_file(log_src, log_dst, err)) < 0)
    return r;
  return 0;
}

static void undo_dir_files(struct agent *a, json_t *rec, void *ctx)
{
  struct dir_files *f = ctx;
  pthread_mutex_lock(&a->lock);
  for (size_t i = 0; (*f->made_vols)[i]; i++)
    volume_remove(&a->rt, (*f->made_vols)[i], NULL);
  pthread_mutex_unlock(&a->lock);
}

int agent_restore(struct agent *a, json_t *req, json_t **out, struct ferry_err *err)
{
  _cleanup_free_ char *criu_dir = NULL;
  const char *dir_in, *newname;
  int r;
  if (!json_is_object(req))
    return FERRY_INVALID(err, "request body must be a JSON object");
  if ((r = json_get_str(req, "dir", true, &dir_in, err)) < 0 ||
      (r = json_get_str(req, "name", false, &newname, err)) < 0)
    return r;
  if (dir_in[0] != '/')
    return FERRY_INVALID(err, "checkpoint directory \"%s\" must be an absolute path", dir_in);
  if (newname && (r = validate_name("container", newname, err)) < 0)
    return r;
  _cleanup_free_ char *dir = realpath(dir_in, NULL);
  if (!dir)
    return ferry_err_sys(err, -errno, "checkpoint directory %s", dir_in);
  _cleanup_free_ char *metap = path_join(dir, "checkpoint.json");
  _cleanup_json_ json_t *meta = NULL;
  if (!path_exists(metap))
    return FERRY_INVALID(err, "%s is not a ferry checkpoint (no checkpoint.json)", dir);
  if ((r = json_load(metap, &meta, err)) < 0)
    return r;
  if (json_integer_value(json_object_get(meta, "format")) != CKPT_FORMAT)
    return FERRY_INVALID(err, "%s: unsupported checkpoint format", dir);
  json_t *rec0 = json_object_get(meta, "container");
  const char *oldname = rec_name(rec0);
  const char *oldid = rec_id(rec0);
  if (!json_is_object(rec0) || !*oldname || !*rec_ip(rec0) || strlen(oldid) != 64 || strspn(oldid, "0123456789abcdef") != 64)
    return FERRY_INVALID(err, "%s: checkpoint.json has no valid container record", dir);
  const char *name = newname ? newname : oldname;

  /* A checkpoint directory may come from anywhere: its record is rebuilt
   * from its known, checked fields. */
  _cleanup_json_ json_t *rec = NULL;
  if ((r = ctr_record_sanitize(rec0, &rec, err)) < 0)
    return ferry_err_wrap(err, "%s/checkpoint.json", dir);
  _cleanup_json_ json_t *img = NULL;
  _cleanup_strv_ char **made_vols = strv_new();
  _cleanup_json_ json_t *report = json_object();
  char id[65];
  uint64_t t0 = now_mono_ms();
  if ((r = image_lookup(&a->images, rec_image(rec0), &img, err)) < 0) {
    json_t *ci = json_object_get(meta, "image");
    const char *iname = json_string_value(json_array_get(json_object_get(ci, "names"), 0));
    return FERRY_NOTFOUND(err, "image %s (%s) of the checkpoint is not in this agent's store: "
                               "import it first",
                          rec_has_image(rec0) ? rec_image(rec0) : "?", iname ? iname : "unnamed");
  }
  /* Same name, same container, stopped: it is replaced. Claimed first, so
   * that nothing else acts on it meanwhile. */
  struct agent_claim *held = NULL;
  if (agent_claim(a, name, "restore", false, &held, NULL) == 0) {
    json_t *existing = agent_claim_rec(held);
    if (strcmp(rec_name(existing), name) != 0) {
      agent_release(held, false);
    } else {
      enum ctr_live st = ctr_refresh(&a->rt, existing);
      bool same = strcmp(rec_id(existing), oldid) == 0;
      if (!same || ctr_live_up(st)) {
        r = FERRY_CONFLICT(err, "container name \"%s\" is in use by a %s container: remove it or "
                                "restore under another name",
                           name, ctr_live_name(st));
        agent_release(held, false);
        return r;
      }
      r = agent_ctr_destroy(a, existing, false, err);
      agent_release(held, false);
      if (r < 0)
        return r;
    }
  }
  json_t *byid = NULL;
  if (ctr_find(&a->rt, oldid, &byid, NULL) == 0) {
    json_decref(byid);
    random_hex(id, 64);
  } else {
    snprintf(id, sizeof id, "%s", oldid);
  }
  char ts[40];
  format_time(now_wall_ms(), ts, sizeof ts);
  char local[65];
  random_hex(local, 64); /* the original may live on, on this machine */
  agent_restored_record(rec, id, local);
  rec_set_name(rec, name);
  rec_set_restored_from(rec, dir);
  criu_dir = path_join(dir, "criu");
  struct dir_files files = {.dir = dir, .made_vols = &made_vols};
  struct restore_source src = {.fault_prefix = "restore", .place = place_dir_files,
                               .undo = undo_dir_files, .ctx = &files};
  struct restore_times t = {0};
  struct agent_claim *claim = NULL;
  if ((r = agent_restore_copy(a, rec, img, criu_dir, &src, NULL, true, &t, &claim, err)) < 0) {
    if (r == -EEXIST)
      return ferry_err_wrap(err, "restore \"%s\": TCP connections need the same address", name);
    return ferry_err_wrap(err, "restore \"%s\"", name);
  }
  uint64_t t_end = now_mono_ms();
  rec_set_state(rec, CS_RUNNING);
  rec_set_started_at(rec, ts);
  rec_set_op(rec, OP_NONE);
  rec_clear_exit(rec);
  if ((r = ctr_save(&a->rt, rec, err)) < 0) {
    agent_restore_discard(claim, &src, &t);
    return r;
  }
  agent_release(claim, false);
  json_object_set_new(report, "container", json_string(name));
  json_object_set_new(report, "dir", json_string(dir));
  json_object_set_new(report, "files_ms", json_integer((json_int_t)t.files_ms));
  json_object_set_new(report, "setup_ms", json_integer((json_int_t)t.setup_ms));
  json_object_set_new(report, "restore_ms", json_integer((json_int_t)t.restore_ms));
  json_object_set_new(report, "total_ms", json_integer((json_int_t)(t_end - t0)));
  if (t.criu)
    json_object_set_new(report, "criu", t.criu);
  ctr_refresh(&a->rt, rec);
  json_object_set(report, "container_record", rec);
  log_info("agent", "container %s restored from %s (%" PRIu64 " ms)", name, dir,
           t_end - t0);
  *out = json_incref(report);
  return 0;
}
