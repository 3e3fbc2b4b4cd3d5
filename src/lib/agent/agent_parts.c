/* A container's parts as a migration or a checkpoint moves them: the
 * layers of its image, its volumes, its rootfs changes, its output. The
 * stores (image/, runtime/) own these files; migrate/ reaches them only
 * through the operations here. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "agent/agent_private.h"
#include "image/extract.h"
#include "net/net.h"
#include "util/digest.h"
#include "util/cleanup.h"
#include "util/fs.h"
#include "util/json.h"
#include "util/log.h"

/* ---- sending ---- */

int agent_part_tar(struct agent *a, enum agent_part part, json_t *rec, const char *name,
                   const char *out, const struct tar_opts *to, uint64_t *bytes,
                   struct ferry_err *err)
{
  _cleanup_free_ char *dir = NULL;
  switch (part) {
  case PART_LAYER:
    if (!digest_valid(name))
      return FERRY_INVALID(err, "layer \"%s\": not a sha256 digest", name ? name : "");
    dir = image_layer_dir(&a->images, name);
    break;
  case PART_VOLUME: {
    int r = validate_name("volume", name, err);
    if (r < 0)
      return r;
    dir = volume_path(&a->rt, name);
    break;
  }
  case PART_ROOTFS:
    dir = ctr_path(&a->rt, rec_id(rec), "upper");
    break;
  }
  return dir_to_tar_opts(dir, out, to, bytes, err);
}

int agent_ctr_log_copy(struct agent *a, json_t *rec, const char *dst, struct ferry_err *err)
{
  _cleanup_free_ char *src = ctr_path(&a->rt, rec_id(rec), "ctr.log");
  return path_exists(src) ? copy_file(src, dst, err) : 0;
}

/* A terminal or an open stdin belongs to the shim of this host. */
static int stdio_check(json_t *rec, const char *ref, struct ferry_err *err)
{
  if (!rec_tty(rec) && !rec_stdin(rec))
    return 0;
  return FERRY_CONFLICT(err, "container \"%s\" has %s: ferry cannot checkpoint or move it (run it "
                             "without -i/-t; `ferry exec -it` gives a shell in any container)",
                        ref, rec_tty(rec) ? "a terminal (-t)" : "an open stdin (-i)");
}

int agent_ctr_checkpointable(struct agent *a, const char *ref, struct ferry_err *err)
{
  _cleanup_json_ json_t *rec = NULL;
  int r = ctr_find(&a->rt, ref, &rec, err);
  return r < 0 ? r : stdio_check(rec, ref, err);
}

int agent_ctr_movable(struct agent *a, const char *ref, int64_t *mem, struct ferry_err *err)
{
  _cleanup_json_ json_t *rec = NULL;
  int r = ctr_find(&a->rt, ref, &rec, err);
  if (r == 0)
    r = agent_check_idle(rec, err);
  if (r == 0 && ctr_refresh(&a->rt, rec) != LIVE_RUNNING)
    r = FERRY_CONFLICT(err, "container \"%s\" is not running: nothing to migrate", ref);
  if (r == 0 && rec_n_binds(rec) > 0)
    r = FERRY_CONFLICT(err, "container \"%s\" bind-mounts %s of this host at %s: a move cannot "
                            "carry a host's files (a named volume moves with it)",
                       ref, rec_bind_source(rec, 0), rec_bind_dest(rec, 0));
  if (r == 0)
    r = stdio_check(rec, ref, err);
  if (r == 0 && mem)
    *mem = ctr_memory_bytes(&a->rt, rec_instance(rec));
  return r;
}

json_t *agent_ctr_marked(struct agent *a, enum ctr_op op)
{
  _cleanup_json_ json_t *all = ctr_load_all(&a->rt);
  json_t *out = json_array();
  size_t i;
  json_t *rec;
  json_array_foreach(all, i, rec) if (rec_op(rec) == op) json_array_append(out, rec);
  return out;
}

/* ---- receiving ---- */

bool agent_layer_present(struct agent *a, const char *digest)
{
  if (!digest_valid(digest))
    return false;
  _cleanup_free_ char *ld = image_layer_dir(&a->images, digest);
  return path_exists(ld);
}

int agent_extract_fresh(struct agent *a, const char *tar, const char *dest, const char *what,
                        struct ferry_err *err)
{
  rm_rf(dest, NULL);
  int r = mkdir_p(dest, 0755, err);
  if (r < 0)
    return r;
  return extract_archive(tar, dest, EXTRACT_UPPER, &a->images.limits, what, err);
}

int agent_extract_delta(struct agent *a, const char *tar, const char *dest, const char *what,
                        struct ferry_err *err)
{
  int r = extract_archive(tar, dest, EXTRACT_UPPER, &a->images.limits, what, err);
  return r < 0 ? r : apply_delta_manifest(dest, err);
}

int agent_extract_images(struct agent *a, const char *tar, const char *dest, const char *what,
                         struct ferry_err *err)
{
  return extract_flat(tar, dest, &a->images.limits, what, err);
}

int agent_layer_receive(struct agent *a, const char *digest, const char *tar, const char *what,
                        bool *added, struct ferry_err *err)
{
  *added = false;
  if (!digest_valid(digest))
    return FERRY_INVALID(err, "%s: not a sha256 digest", what);
  _cleanup_free_ char *ld = image_layer_dir(&a->images, digest);
  if (path_exists(ld))
    return 0;
  char sfx[9];
  random_hex(sfx, 8);
  _cleanup_free_ char *partial = xasprintf("%s.partial-%s", ld, sfx);
  int r = agent_extract_fresh(a, tar, partial, what, err);
  if (r == 0 && rename(partial, ld) < 0)
    r = ferry_err_sys(err, -errno, "%s: store", what);
  if (r < 0) {
    rm_rf(partial, NULL);
    return r;
  }
  *added = true;
  return 0;
}

void agent_layers_pin(struct agent *a, json_t *digests, bool pin)
{
  size_t i;
  json_t *d;
  json_array_foreach(digests, i, d)
  {
    if (pin)
      image_layer_pin(&a->images, json_string_value(d));
    else
      image_layer_unpin(&a->images, json_string_value(d));
  }
}

void agent_layers_forget(struct agent *a, json_t *digests)
{
  char **trash = NULL;
  pthread_mutex_lock(&a->lock);
  image_layers_drop_unused(&a->images, digests, &trash);
  pthread_mutex_unlock(&a->lock);
  image_trash_empty(trash);
}

int agent_image_adopt(struct agent *a, json_t *img, bool *added, struct ferry_err *err)
{
  *added = false;
  _cleanup_json_ json_t *have = NULL;
  if (image_lookup(&a->images, json_str_or(img, "id", ""), &have, NULL) == 0)
    return 0;
  size_t i;
  json_t *l;
  json_array_foreach(json_object_get(img, "layers"), i, l)
  {
    if (!agent_layer_present(a, json_string_value(l)))
      return FERRY_INVALID(err, "layer %s was never sent", json_string_value(l));
  }
  /* Names another image holds here stay with it. */
  _cleanup_json_ json_t *copy = json_deep_copy(img);
  json_t *names = json_object_get(copy, "names");
  pthread_mutex_lock(&a->lock);
  for (size_t k = 0; k < json_array_size(names);) {
    json_t *o = NULL;
    if (image_lookup(&a->images, json_string_value(json_array_get(names, k)), &o, NULL) == 0) {
      json_decref(o);
      json_array_remove(names, k);
    } else {
      k++;
    }
  }
  int r = image_save(&a->images, copy, err);
  pthread_mutex_unlock(&a->lock);
  if (r == 0)
    *added = true;
  return r;
}

bool agent_volume_exists(struct agent *a, const char *name)
{
  _cleanup_json_ json_t *vj = NULL;
  return volume_get(&a->rt, name, &vj, NULL) == 0;
}

int agent_volume_adopt(struct agent *a, const char *name, const char *src, const char *mark,
                       struct ferry_err *err)
{
  pthread_mutex_lock(&a->lock);
  int r = volume_create(&a->rt, name, false, NULL, err);
  if (r == 0 && path_exists(src)) {
    _cleanup_free_ char *data = volume_path(&a->rt, name);
    rmdir(data);
    if (rename(src, data) < 0)
      r = ferry_err_sys(err, -errno, "volume %s: move into place", name);
  }
  if (r == 0)
    volume_set_mark(&a->rt, name, mark, NULL);
  pthread_mutex_unlock(&a->lock);
  return r;
}

void agent_volume_unmark(struct agent *a, const char *name)
{
  volume_set_mark(&a->rt, name, NULL, NULL);
}

void agent_volume_drop_marked(struct agent *a, const char *name, const char *mark)
{
  pthread_mutex_lock(&a->lock);
  if (volume_has_mark(&a->rt, name, mark))
    volume_remove(&a->rt, name, NULL);
  pthread_mutex_unlock(&a->lock);
}

bool agent_ctr_id_free(struct agent *a, const char *id)
{
  if (!id || strlen(id) != 64 || strspn(id, "0123456789abcdef") != 64)
    return false;
  /* runc's state of a container with that id that this agent has no
   * record of (one whose restore was called off while runc still cleaned
   * up): runc would refuse the id ("container with given ID already
   * exists"), so the copy takes a new one */
  _cleanup_free_ char *st = xasprintf("%s/%s", a->rt.runc_root, id);
  if (path_exists(st))
    return false;
  json_t *same = NULL;
  if (ctr_find(&a->rt, id, &same, NULL) < 0)
    return true;
  bool taken = strcmp(rec_id(same), id) == 0;
  json_decref(same);
  return !taken;
}

json_t *agent_ctr_by_migration(struct agent *a, const char *mid)
{
  _cleanup_json_ json_t *all = ctr_load_all(&a->rt);
  size_t i;
  json_t *c;
  json_array_foreach(all, i, c) if (strcmp(rec_migration_id(c), mid) == 0) return json_incref(c);
  return NULL;
}

/* Whether dfd's tree has an entry changed since `since` (depth bounded;
 * true when it cannot tell). */
static bool tree_changed_since(int dfd, time_t since, int depth)
{
  DIR *d = fdopendir(dfd);
  if (!d) {
    close(dfd);
    return true;
  }
  bool changed = depth > 64;
  struct dirent *e;
  while (!changed && (e = readdir(d))) {
    if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, ".."))
      continue;
    struct stat st;
    if (fstatat(dirfd(d), e->d_name, &st, AT_SYMLINK_NOFOLLOW) < 0 || st.st_ctime >= since ||
        st.st_mtime >= since) {
      changed = true;
    } else if (S_ISDIR(st.st_mode)) {
      int sub = openat(dirfd(d), e->d_name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
      changed = sub < 0 || tree_changed_since(sub, since, depth + 1);
    }
  }
  closedir(d);
  return changed;
}

bool agent_ctr_rootfs_changed_since(struct agent *a, json_t *rec, time_t since)
{
  _cleanup_free_ char *upper = ctr_path(&a->rt, rec_id(rec), "upper");
  struct stat st;
  int fd = open(upper, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
  if (fd < 0)
    return true;
  if (fstat(fd, &st) < 0 || st.st_ctime >= since || st.st_mtime >= since) {
    close(fd);
    return true;
  }
  return tree_changed_since(fd, since, 0);
}

int agent_ctr_adopt_changes(struct agent *a, json_t *rec, const char *src, struct ferry_err *err)
{
  if (!path_exists(src))
    return 0;
  _cleanup_free_ char *upper = ctr_path(&a->rt, rec_id(rec), "upper");
  if (rename(src, upper) < 0)
    return ferry_err_sys(err, -errno, "container \"%s\": rootfs changes", rec_name(rec));
  return 0;
}

int agent_ctr_announce(struct agent_claim *c, struct ferry_err *err)
{
  json_t *rec = agent_claim_rec(c);
  return net_announce(rec_netns(rec), rec_ip(rec), err);
}

int agent_image_of(struct agent *a, json_t *rec, json_t **img, struct ferry_err *err)
{
  return image_lookup(&a->images, rec_image(rec), img, err);
}

json_t *agent_ctr_descriptors(struct agent *a, json_t *rec)
{
  return ckpt_descriptors(&a->rt, rec_id(rec));
}
