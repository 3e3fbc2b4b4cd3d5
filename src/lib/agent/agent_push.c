/* Pushing an image of the store to a registry: an OCI layout is written
 * from the store (each layer directory as a tar with its overlay whiteouts
 * turned back into OCI ones, the image's config, a manifest), then skopeo
 * copies it to the registry with the same options as a pull. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "agent/agent_private.h"
#include "ckpt/ckpt.h"
#include "util/cleanup.h"
#include "util/digest.h"
#include "util/fs.h"
#include "util/json.h"
#include "util/log.h"

/* Writes data into L/blobs/sha256/<digest>; *desc gets its descriptor. */
static int put_blob(const char *layout, const char *media, const char *data, size_t len,
                    json_t **desc, struct ferry_err *err)
{
  struct sha256_ctx *c = sha256_new();
  sha256_update(c, data, len);
  char dg[DIGEST_STR_LEN + 1];
  sha256_finish(c, dg);
  _cleanup_free_ char *p = xasprintf("%s/blobs/sha256/%s", layout, digest_hex(dg));
  int r = write_file_atomic(p, data, len, 0644, err);
  if (r == 0)
    *desc = json_pack("{s:s, s:s, s:I}", "mediaType", media, "digest", dg, "size", (json_int_t)len);
  return r;
}

static int write_layout(struct agent *a, json_t *img, const char *layout, const char *ref_name,
                        struct ferry_err *err)
{
  _cleanup_free_ char *blobs = xasprintf("%s/blobs/sha256", layout);
  int r = mkdir_p(blobs, 0700, err);
  if (r < 0)
    return r;
  _cleanup_free_ char *marker = path_join(layout, "oci-layout");
  static const char ver[] = "{\"imageLayoutVersion\":\"1.0.0\"}";
  if ((r = write_file_atomic(marker, ver, sizeof ver - 1, 0644, err)) < 0)
    return r;
  _cleanup_json_ json_t *layers = json_array();
  _cleanup_json_ json_t *diff_ids = json_array();
  size_t i;
  json_t *l;
  json_array_foreach(json_object_get(img, "layers"), i, l)
  {
    _cleanup_free_ char *dir = image_layer_dir(&a->images, json_string_value(l));
    _cleanup_free_ char *tmp = xasprintf("%s/layer.tar", layout);
    struct tar_opts to = {.oci = true};
    char dg[DIGEST_STR_LEN + 1];
    uint64_t size = 0;
    if ((r = dir_to_tar_opts(dir, tmp, &to, NULL, err)) < 0 || (r = sha256_file(tmp, dg, &size, err)) < 0)
      return ferry_err_wrap(err, "layer %zu", i + 1);
    _cleanup_free_ char *dst = xasprintf("%s/%s", blobs, digest_hex(dg));
    if (rename(tmp, dst) < 0)
      return ferry_err_sys(err, -errno, "layer %zu", i + 1);
    json_array_append_new(layers, json_pack("{s:s, s:s, s:I}", "mediaType",
                                            "application/vnd.oci.image.layer.v1.tar", "digest", dg,
                                            "size", (json_int_t)size));
    json_array_append_new(diff_ids, json_string(dg));
  }
  json_t *cfg = json_object_get(img, "config");
  _cleanup_json_ json_t *none = json_object();
  _cleanup_json_ json_t *config = json_pack(
      "{s:s, s:s, s:O, s:{s:s, s:O}}", "architecture", "amd64", "os", "linux", "config",
      json_is_object(cfg) ? cfg : none, "rootfs", "type", "layers", "diff_ids", diff_ids);
  if (json_str_or(img, "created", NULL))
    json_object_set_new(config, "created", json_string(json_str_or(img, "created", "")));
  _cleanup_free_ char *ctext = json_dumps(config, JSON_COMPACT | JSON_SORT_KEYS);
  json_t *cdesc = NULL;
  if ((r = put_blob(layout, "application/vnd.oci.image.config.v1+json", ctext, strlen(ctext), &cdesc,
                    err)) < 0)
    return r;
  _cleanup_json_ json_t *manifest =
      json_pack("{s:i, s:s, s:o, s:O}", "schemaVersion", 2, "mediaType",
                "application/vnd.oci.image.manifest.v1+json", "config", cdesc, "layers", layers);
  _cleanup_free_ char *mtext = json_dumps(manifest, JSON_COMPACT);
  json_t *mdesc = NULL;
  if ((r = put_blob(layout, "application/vnd.oci.image.manifest.v1+json", mtext, strlen(mtext),
                    &mdesc, err)) < 0)
    return r;
  json_object_set_new(mdesc, "annotations",
                      json_pack("{s:s}", "org.opencontainers.image.ref.name", ref_name));
  _cleanup_json_ json_t *index = json_pack("{s:i, s:[o]}", "schemaVersion", 2, "manifests", mdesc);
  _cleanup_free_ char *ip = path_join(layout, "index.json");
  return json_save_atomic(ip, index, err);
}

int agent_image_push(struct agent *a, const char *ref, json_t *req, json_t **out,
                     struct ferry_err *err)
{
  const char *dest;
  struct pull_opts o;
  int r;
  if ((r = agent_registry_opts(req, &o, err)) < 0 ||
      (r = json_get_str(req, "destination", true, &dest, err)) < 0)
    return r;
  o.scratch = a->images.tmp_dir;
  _cleanup_free_ char *want = NULL;
  if ((r = image_normalize_name(dest, &want, err)) < 0)
    return ferry_err_wrap(err, "push destination");
  _cleanup_json_ json_t *img = NULL;
  if ((r = image_lookup(&a->images, ref, &img, err)) < 0)
    return r;
  _cleanup_free_ char *tmpl = path_join(a->images.tmp_dir, "push-XXXXXX");
  if (!mkdtemp(tmpl))
    return ferry_err_sys(err, -errno, "push %s: scratch directory", ref);
  /* the layers stay while they are read: pinned, a concurrent image
   * removal leaves them */
  agent_layers_pin(a, json_object_get(img, "layers"), true);
  r = write_layout(a, img, tmpl, "push", err);
  agent_layers_pin(a, json_object_get(img, "layers"), false);
  if (r == 0) {
    _cleanup_free_ char *src = xasprintf("oci:%s:push", tmpl);
    _cleanup_free_ char *dst = xasprintf("docker://%s", want);
    _cleanup_free_ char *what = xasprintf("push %s to %s", ref, want);
    r = skopeo_copy(src, dst, true, &o, what, err);
  }
  rm_rf(tmpl, NULL);
  if (r == 0) {
    log_info("agent", "image %s pushed to %s", ref, want);
    *out = json_pack("{s:s, s:s, s:s}", "status", "success", "image", json_str_or(img, "id", ""),
                     "destination", want);
  }
  return r;
}

/* An image save in progress: the archive, read out as the answer's body,
 * removed with its scratch directory at the end. */
struct save_stream {
  int fd;
  char *dir;
};

ssize_t agent_image_save_read(void *cls, int conn_fd, char *buf, size_t max)
{
  (void)conn_fd;
  struct save_stream *s = cls;
  ssize_t n = read(s->fd, buf, max);
  return n > 0 ? n : -1;
}

void agent_image_save_free(void *cls)
{
  struct save_stream *s = cls;
  if (s->fd >= 0)
    close(s->fd);
  rm_rf(s->dir, NULL);
  free(s->dir);
  free(s);
}

int agent_image_save(struct agent *a, const char *ref, void **out, struct ferry_err *err)
{
  _cleanup_json_ json_t *img = NULL;
  int r = image_lookup(&a->images, ref, &img, err);
  if (r < 0)
    return r;
  /* the name it was asked by when it is one of the image's, else its first */
  const char *name = json_string_value(json_array_get(json_object_get(img, "names"), 0));
  _cleanup_free_ char *norm = NULL;
  json_t *n;
  size_t i;
  if (image_normalize_name(ref, &norm, NULL) == 0)
    json_array_foreach(json_object_get(img, "names"), i, n) if (strcmp(json_string_value(n), norm) == 0)
        name = json_string_value(n);
  char *dir = path_join(a->images.tmp_dir, "save-XXXXXX");
  if (!mkdtemp(dir)) {
    r = ferry_err_sys(err, -errno, "save %s: scratch directory", ref);
    free(dir);
    return r;
  }
  _cleanup_free_ char *layout = path_join(dir, "layout");
  _cleanup_free_ char *tar = path_join(dir, "image.tar");
  agent_layers_pin(a, json_object_get(img, "layers"), true);
  r = write_layout(a, img, layout, name ? name : "latest", err);
  agent_layers_pin(a, json_object_get(img, "layers"), false);
  struct tar_opts to = {0};
  if (r == 0)
    r = dir_to_tar_opts(layout, tar, &to, NULL, err);
  int fd = r == 0 ? open(tar, O_RDONLY | O_CLOEXEC) : -1;
  if (r == 0 && fd < 0)
    r = ferry_err_sys(err, -errno, "save %s", ref);
  if (r < 0) {
    rm_rf(dir, NULL);
    free(dir);
    return ferry_err_wrap(err, "save %s", ref);
  }
  /* the layout's files are in the archive: only it is kept until the end */
  rm_rf(layout, NULL);
  struct save_stream *s = calloc(1, sizeof *s);
  if (!s)
    abort();
  s->fd = fd;
  s->dir = dir;
  *out = s;
  return 0;
}
