/* Image import: OCI archive, docker-archive, or a plain rootfs tarball. */
#include <archive.h>
#include <archive_entry.h>
#include <dirent.h>
#include <libgen.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "image/store.h"
#include "util/cleanup.h"
#include "util/digest.h"
#include "util/fs.h"
#include "util/json.h"
#include "util/spawn.h"
#include "util/strv.h"

enum archive_kind { KIND_ROOTFS, KIND_OCI, KIND_DOCKER };

/* Image archives come from anyone: besides the store's size limits, a
 * compression ratio, so that a small gzip bomb cannot fill the disk (real
 * layers compress 2-10x, a run of zeros 1000x). ferry's own archives of a
 * container's files (checkpoints, migrations) have no ratio: a sparse file
 * there legitimately compresses a thousandfold. */
#define IMPORT_MAX_RATIO 200
#define IMPORT_RATIO_FLOOR (256ull << 20)

static struct extract_limits import_limits(const struct image_store *s)
{
  struct extract_limits l = s->limits;
  l.max_ratio = IMPORT_MAX_RATIO;
  l.ratio_floor = IMPORT_RATIO_FLOOR;
  return l;
}
static int classify(const char *path, const char *what, enum archive_kind *kind,
                    struct ferry_err *err)
{
  struct archive *a = archive_read_new();
  archive_read_support_filter_all(a);
  archive_read_support_format_tar(a);
  archive_read_support_format_gnutar(a);
  int r = 0;
  bool oci = false, docker = false;
  uint64_t n = 0;
  if (archive_read_open_filename(a, path, 65536) != ARCHIVE_OK) {
    r = FERRY_INVALID(err, "%s: not a readable archive: %s", what, archive_error_string(a));
    goto out;
  }
  for (;;) {
    struct archive_entry *e;
    int h = archive_read_next_header(a, &e);
    if (h == ARCHIVE_EOF)
      break;
    if (h < ARCHIVE_WARN) {
      r = FERRY_INVALID(err, "%s: not a tar archive or corrupt: %s", what,
                        archive_error_string(a));
      goto out;
    }
    n++;
    const char *nm = archive_entry_pathname(e);
    if (nm && strncmp(nm, "./", 2) == 0)
      nm += 2;
    if (!nm)
      continue;
    if (strcmp(nm, "oci-layout") == 0 || strcmp(nm, "index.json") == 0)
      oci = true;
    if (strcmp(nm, "manifest.json") == 0)
      docker = true;
    archive_read_data_skip(a);
  }
  if (n == 0) {
    r = FERRY_INVALID(err, "%s: archive is empty", what);
    goto out;
  }
  /* Newer docker save writes both; manifest.json is the simpler contract. */
  *kind = docker ? KIND_DOCKER : oci ? KIND_OCI : KIND_ROOTFS;
out:
  archive_read_free(a);
  return r;
}

struct import_ctx {
  struct image_store *s;
  const char *what;
  const char *display; /* the archive's file name as the user gave it */
  char *staging;      /* real path */
  char **new_layers;  /* layer dirs this import created */
  char **pinned;      /* digests this import pinned (unpinned when it ends) */
  uint64_t size;
};

/* A file inside the unpacked archive, refusing anything that resolves outside. */
static int staging_file(struct import_ctx *c, const char *rel, char **out, struct ferry_err *err)
{
  _cleanup_free_ char *clean = NULL;
  int r = extract_clean_name(rel, &clean, err);
  if (r < 0)
    return ferry_err_wrap(err, "%s", c->what);
  _cleanup_free_ char *p = path_join(c->staging, clean);
  _cleanup_free_ char *real = realpath(p, NULL);
  if (!real)
    return FERRY_INVALID(err, "%s: \"%s\" is referenced but missing from the archive", c->what, rel);
  size_t sl = strlen(c->staging);
  if (strncmp(real, c->staging, sl) != 0 || real[sl] != '/')
    return FERRY_INVALID(err, "%s: \"%s\" points outside the archive: refused", c->what, rel);
  struct stat st;
  if (stat(real, &st) < 0 || !S_ISREG(st.st_mode))
    return FERRY_INVALID(err, "%s: \"%s\" is not a regular file", c->what, rel);
  *out = TAKE_PTR(real);
  return 0;
}

static int load_json_file(struct import_ctx *c, const char *rel, const char *expect_digest,
                          json_t **out, struct ferry_err *err)
{
  _cleanup_free_ char *p = NULL;
  int r = staging_file(c, rel, &p, err);
  if (r < 0)
    return r;
  if (expect_digest) {
    char dg[DIGEST_STR_LEN + 1];
    if ((r = sha256_file(p, dg, NULL, err)) < 0)
      return r;
    if (strcmp(dg, expect_digest) != 0)
      return FERRY_INVALID(err, "%s: %s: digest mismatch: expected %s, content is %s", c->what,
                           rel, expect_digest, dg);
  }
  _cleanup_free_ char *buf = NULL;
  size_t len;
  if ((r = read_file(p, 16u << 20, &buf, &len, err)) < 0)
    return r;
  _cleanup_free_ char *what = xasprintf("%s: %s", c->what, rel);
  return json_parse(buf, len, what, out, err);
}

/* Makes sure the layer `digest` is in the store, extracting blob if not. */
static int ensure_layer(struct import_ctx *c, const char *digest, const char *blob, int index,
                        struct ferry_err *err)
{
  _cleanup_free_ char *dir = image_layer_dir(c->s, digest);
  /* kept from here until this image's record refers to it: a concurrent
   * image removal must not drop a layer this import reuses */
  image_layer_pin(c->s, digest);
  strv_push(&c->pinned, digest);
  if (path_exists(dir))
    return 0;
  char sfx[9];
  random_hex(sfx, 8);
  _cleanup_free_ char *partial = xasprintf("%s.partial-%s", dir, sfx);
  int r = mkdir_p(partial, 0755, err);
  if (r < 0)
    return r;
  _cleanup_free_ char *what = xasprintf("%s: layer %d (%.19s)", c->what, index, digest);
  struct extract_limits lim = import_limits(c->s);
  r = extract_archive(blob, partial, EXTRACT_LAYER, &lim, what, err);
  if (r < 0) {
    rm_rf(partial, NULL);
    return r;
  }
  if (rename(partial, dir) < 0) {
    r = ferry_err_sys(err, -errno, "%s: store layer", what);
    rm_rf(partial, NULL);
    return r;
  }
  strv_push(&c->new_layers, dir);
  return 0;
}

static int verify_blob(struct import_ctx *c, const char *path, const char *expect, int index,
                       struct ferry_err *err)
{
  char dg[DIGEST_STR_LEN + 1];
  uint64_t size = 0;
  int r = sha256_file(path, dg, &size, err);
  if (r < 0)
    return r;
  if (strcmp(dg, expect) != 0)
    return FERRY_INVALID(err, "%s: layer %d: digest mismatch: manifest says %s, content is %s",
                         c->what, index, expect, dg);
  c->size += size;
  return 0;
}

static json_t *run_config(json_t *cfg)
{
  json_t *inner = json_object_get(cfg, "config");
  if (!json_is_object(inner))
    inner = json_object_get(cfg, "Config"); /* very old docker */
  json_t *out = json_object();
  static const char *keys[] = {"Env", "Entrypoint", "Cmd", "WorkingDir", "User"};
  for (size_t i = 0; i < ARRAY_SIZE(keys); i++) {
    json_t *v = json_object_get(inner, keys[i]);
    if (v && !json_is_null(v))
      json_object_set(out, keys[i], v);
  }
  return out;
}

static int check_strv_field(struct import_ctx *c, json_t *rc, const char *key, struct ferry_err *err)
{
  json_t *v = json_object_get(rc, key);
  if (!v)
    return 0;
  if (!json_is_array(v))
    return FERRY_INVALID(err, "%s: image config: %s must be an array of strings", c->what, key);
  size_t i;
  json_t *e;
  json_array_foreach(v, i, e) if (!json_is_string(e)) return FERRY_INVALID(
      err, "%s: image config: %s[%zu] must be a string", c->what, key, i);
  return 0;
}

static char *name_from_file(const char *display)
{
  _cleanup_free_ char *copy = xstrdup(display);
  char *b = basename(copy);
  static const char *exts[] = {".tar.gz", ".tar.zst", ".tar.xz", ".tgz", ".tar", ".oci", ".gz"};
  for (size_t i = 0; i < ARRAY_SIZE(exts); i++) {
    size_t n = strlen(b), e = strlen(exts[i]);
    if (n > e && strcmp(b + n - e, exts[i]) == 0) {
      b[n - e] = '\0';
      break;
    }
  }
  for (char *p = b; *p; p++) {
    if (*p >= 'A' && *p <= 'Z')
      *p = (char)(*p - 'A' + 'a');
    else if (!((*p >= 'a' && *p <= 'z') || (*p >= '0' && *p <= '9') || *p == '.' || *p == '-' || *p == '_'))
      *p = '-';
  }
  return xstrdup(*b ? b : "image");
}

static int check_run_config(struct import_ctx *c, json_t *rc, struct ferry_err *err)
{
  static const char *arrays[] = {"Env", "Entrypoint", "Cmd"};
  static const char *strings[] = {"WorkingDir", "User"};
  int r;
  for (size_t i = 0; i < ARRAY_SIZE(arrays); i++)
    if ((r = check_strv_field(c, rc, arrays[i], err)) < 0)
      return r;
  for (size_t i = 0; i < ARRAY_SIZE(strings); i++) {
    json_t *v = json_object_get(rc, strings[i]);
    if (v && !json_is_string(v))
      return FERRY_INVALID(err, "%s: image config: %s must be a string", c->what, strings[i]);
  }
  return 0;
}

static int import_oci(struct import_ctx *c, json_t *img, char **name_out, struct ferry_err *err)
{
  _cleanup_json_ json_t *index = NULL;
  int r = load_json_file(c, "index.json", NULL, &index, err);
  if (r < 0)
    return r;
  json_t *mans = json_object_get(index, "manifests");
  if (!json_is_array(mans) || json_array_size(mans) == 0)
    return FERRY_INVALID(err, "%s: index.json lists no manifests", c->what);
  json_t *desc = json_array_get(mans, 0);
  _cleanup_json_ json_t *man = NULL;
  for (int depth = 0;; depth++) {
    const char *dg = json_str_or(desc, "digest", NULL);
    if (!digest_valid(dg))
      return FERRY_INVALID(err, "%s: manifest descriptor has no valid sha256 digest", c->what);
    const char *ann = json_str_or(json_object_get(desc, "annotations"),
                                  "io.containerd.image.name", NULL);
    if (!ann)
      ann = json_str_or(json_object_get(desc, "annotations"), "org.opencontainers.image.ref.name",
                        NULL);
    if (ann && !*name_out) {
      /* ref.name is often only a tag ("v1"): then the name comes from the file. */
      if (strchr(ann, ':') || strchr(ann, '/')) {
        *name_out = xstrdup(ann);
      } else {
        _cleanup_free_ char *base = name_from_file(c->display);
        *name_out = xasprintf("%s:%s", base, ann);
      }
    }
    _cleanup_free_ char *rel = xasprintf("blobs/sha256/%s", digest_hex(dg));
    json_decref(man);
    man = NULL;
    if ((r = load_json_file(c, rel, dg, &man, err)) < 0)
      return r;
    if (!json_object_get(man, "manifests"))
      break;
    if (depth > 0)
      return FERRY_INVALID(err, "%s: nested image indexes are not supported", c->what);
    /* An image index: pick linux/amd64, else the first. */
    json_t *list = json_object_get(man, "manifests");
    size_t i;
    json_t *m;
    desc = json_array_get(list, 0);
    json_array_foreach(list, i, m)
    {
      json_t *pl = json_object_get(m, "platform");
      if (strcmp(json_str_or(pl, "architecture", ""), "amd64") == 0 &&
          strcmp(json_str_or(pl, "os", ""), "linux") == 0) {
        desc = m;
        break;
      }
    }
    if (!desc)
      return FERRY_INVALID(err, "%s: image index lists no manifests", c->what);
  }
  const char *cfgdg = json_str_or(json_object_get(man, "config"), "digest", NULL);
  if (!digest_valid(cfgdg))
    return FERRY_INVALID(err, "%s: manifest has no valid config digest", c->what);
  _cleanup_free_ char *cfgrel = xasprintf("blobs/sha256/%s", digest_hex(cfgdg));
  _cleanup_json_ json_t *cfg = NULL;
  if ((r = load_json_file(c, cfgrel, cfgdg, &cfg, err)) < 0)
    return r;
  json_t *layers = json_object_get(man, "layers");
  if (!json_is_array(layers))
    return FERRY_INVALID(err, "%s: manifest has no layer list", c->what);
  json_t *ids = json_array();
  json_object_set_new(img, "layers", ids);
  size_t i;
  json_t *l;
  json_array_foreach(layers, i, l)
  {
    const char *dg = json_str_or(l, "digest", NULL);
    if (!digest_valid(dg))
      return FERRY_INVALID(err, "%s: layer %zu: no valid sha256 digest", c->what, i + 1);
    _cleanup_free_ char *rel = xasprintf("blobs/sha256/%s", digest_hex(dg));
    _cleanup_free_ char *blob = NULL;
    if ((r = staging_file(c, rel, &blob, err)) < 0)
      return r;
    if ((r = verify_blob(c, blob, dg, (int)i + 1, err)) < 0)
      return r;
    if ((r = ensure_layer(c, dg, blob, (int)i + 1, err)) < 0)
      return r;
    json_array_append_new(ids, json_string(dg));
  }
  json_object_set_new(img, "id", json_string(cfgdg));
  json_object_set_new(img, "config", run_config(cfg));
  json_object_set_new(img, "source", json_string("oci-archive"));
  return check_run_config(c, json_object_get(img, "config"), err);
  return 0;
}

static int import_docker(struct import_ctx *c, json_t *img, char **name_out, struct ferry_err *err)
{
  _cleanup_json_ json_t *mf = NULL;
  int r = load_json_file(c, "manifest.json", NULL, &mf, err);
  if (r < 0)
    return r;
  json_t *m = json_array_get(mf, 0);
  if (!json_is_object(m))
    return FERRY_INVALID(err, "%s: manifest.json lists no image", c->what);
  const char *cfgrel = json_str_or(m, "Config", NULL);
  if (!cfgrel)
    return FERRY_INVALID(err, "%s: manifest.json: image has no Config", c->what);
  const char *tag = json_string_value(json_array_get(json_object_get(m, "RepoTags"), 0));
  if (tag && !*name_out)
    *name_out = xstrdup(tag);
  _cleanup_free_ char *cfgpath = NULL;
  if ((r = staging_file(c, cfgrel, &cfgpath, err)) < 0)
    return r;
  char cfgdg[DIGEST_STR_LEN + 1];
  if ((r = sha256_file(cfgpath, cfgdg, NULL, err)) < 0)
    return r;
  /* The config's file name is its digest: check it when it looks like one. */
  _cleanup_free_ char *bn_copy = xstrdup(cfgrel);
  char *bn = basename(bn_copy);
  char *dot = strstr(bn, ".json");
  if (dot)
    *dot = '\0';
  if (strlen(bn) == DIGEST_HEX_LEN && strspn(bn, "0123456789abcdef") == DIGEST_HEX_LEN &&
      strcmp(bn, cfgdg + 7) != 0)
    return FERRY_INVALID(err, "%s: config %s: digest mismatch: content is %s", c->what, cfgrel,
                         cfgdg);
  _cleanup_json_ json_t *cfg = NULL;
  if ((r = load_json_file(c, cfgrel, NULL, &cfg, err)) < 0)
    return r;
  json_t *diffids = json_object_get(json_object_get(cfg, "rootfs"), "diff_ids");
  json_t *layers = json_object_get(m, "Layers");
  if (!json_is_array(layers) || !json_is_array(diffids) ||
      json_array_size(layers) != json_array_size(diffids))
    return FERRY_INVALID(err, "%s: manifest.json and the image config disagree on the layers",
                         c->what);
  json_t *ids = json_array();
  json_object_set_new(img, "layers", ids);
  size_t i;
  json_t *l;
  json_array_foreach(layers, i, l)
  {
    const char *rel = json_string_value(l);
    const char *dg = json_string_value(json_array_get(diffids, i));
    if (!rel || !digest_valid(dg))
      return FERRY_INVALID(err, "%s: layer %zu: malformed entry", c->what, i + 1);
    _cleanup_free_ char *blob = NULL;
    if ((r = staging_file(c, rel, &blob, err)) < 0)
      return r;
    if ((r = verify_blob(c, blob, dg, (int)i + 1, err)) < 0)
      return r;
    if ((r = ensure_layer(c, dg, blob, (int)i + 1, err)) < 0)
      return r;
    json_array_append_new(ids, json_string(dg));
  }
  json_object_set_new(img, "id", json_string(cfgdg));
  json_object_set_new(img, "config", run_config(cfg));
  json_object_set_new(img, "source", json_string("docker-archive"));
  return check_run_config(c, json_object_get(img, "config"), err);
  return 0;
}

static int import_rootfs(struct import_ctx *c, const char *archive, json_t *img,
                         struct ferry_err *err)
{
  char dg[DIGEST_STR_LEN + 1];
  uint64_t size = 0;
  int r = sha256_file(archive, dg, &size, err);
  if (r < 0)
    return r;
  c->size = size;
  if ((r = ensure_layer(c, dg, archive, 1, err)) < 0)
    return r;
  json_t *layers = json_array();
  json_array_append_new(layers, json_string(dg));
  json_object_set_new(img, "layers", layers);
  json_object_set_new(img, "id", json_string(dg));
  json_t *cfg = json_object();
  json_t *env = json_array();
  json_array_append_new(env, json_string("PATH=" FERRY_DEFAULT_PATH));
  json_object_set_new(cfg, "Env", env);
  json_object_set_new(img, "config", cfg);
  json_object_set_new(img, "source", json_string("rootfs"));
  return 0;
}


int image_import(struct image_store *s, const char *archive, const char *name,
                 const char *display_name, json_t **out, struct ferry_err *err)
{
  const char *shown = display_name ? display_name : archive;
  _cleanup_free_ char *what = xasprintf("image archive %s", shown);
  _cleanup_free_ char *want = NULL;
  int r;
  if (name && (r = image_normalize_name(name, &want, err)) < 0)
    return r;
  enum archive_kind kind = KIND_ROOTFS;
  if ((r = classify(archive, what, &kind, err)) < 0)
    return r;
  struct import_ctx c = {.s = s, .what = what, .display = shown, .new_layers = strv_new(),
                         .pinned = strv_new()};
  _cleanup_free_ char *tmpl = path_join(s->tmp_dir, "import-XXXXXX");
  _cleanup_json_ json_t *img = json_object();
  _cleanup_json_ json_t *all = NULL;
  char *from_archive = NULL;
  if (!mkdtemp(tmpl)) {
    r = ferry_err_sys(err, -errno, "%s: staging dir", what);
    goto fail;
  }
  c.staging = realpath(tmpl, NULL);
  if (kind == KIND_ROOTFS) {
    r = import_rootfs(&c, archive, img, err);
  } else {
    struct extract_limits lim = import_limits(s);
    r = extract_archive(archive, c.staging, EXTRACT_PLAIN, &lim, what, err);
    if (r == 0)
      r = kind == KIND_OCI ? import_oci(&c, img, &from_archive, err)
                           : import_docker(&c, img, &from_archive, err);
  }
  if (r < 0)
    goto fail;
  if (!want) {
    if (from_archive && image_normalize_name(from_archive, &want, NULL) == 0) {
    } else {
      _cleanup_free_ char *base = name_from_file(shown);
      if ((r = image_normalize_name(base, &want, err)) < 0)
        goto fail;
    }
  }
  /* The name moves to this image; an image that had it loses it. */
  all = image_list(s);
  size_t i;
  json_t *other;
  const char *id = json_str_or(img, "id", "");
  json_t *names = json_array();
  json_array_foreach(all, i, other)
  {
    json_t *onames = json_object_get(other, "names");
    bool same = strcmp(json_str_or(other, "id", ""), id) == 0;
    for (size_t k = 0; k < json_array_size(onames);) {
      const char *nm = json_string_value(json_array_get(onames, k));
      if (same && strcmp(nm, want) != 0)
        json_array_append_new(names, json_string(nm));
      if (!same && strcmp(nm, want) == 0) {
        json_array_remove(onames, k);
        if ((r = image_save(s, other, err)) < 0)
          goto fail;
        continue;
      }
      k++;
    }
  }
  json_array_insert_new(names, 0, json_string(want));
  json_object_set_new(img, "names", names);
  json_object_set_new(img, "size", json_integer((json_int_t)c.size));
  char ts[40];
  format_time(now_wall_ms(), ts, sizeof ts);
  json_object_set_new(img, "created", json_string(ts));
  if ((r = image_save(s, img, err)) < 0)
    goto fail;
  rm_rf(c.staging, NULL);
  free(c.staging);
  free(from_archive);
  strv_free(c.new_layers);
  for (size_t k = 0; c.pinned && c.pinned[k]; k++)
    image_layer_unpin(s, c.pinned[k]);
  strv_free(c.pinned);
  *out = json_incref(img);
  return 0;
fail:
  for (size_t k = 0; c.pinned && c.pinned[k]; k++)
    image_layer_unpin(s, c.pinned[k]);
  strv_free(c.pinned);
  /* the layers this import made, unless something else counts on them now */
  for (size_t k = 0; c.new_layers && c.new_layers[k]; k++) {
    _cleanup_free_ char *dg = xasprintf("sha256:%s", strrchr(c.new_layers[k], '/') + 1);
    if (!image_layer_pinned(s, dg))
      rm_rf(c.new_layers[k], NULL);
  }
  strv_free(c.new_layers);
  if (c.staging)
    rm_rf(c.staging, NULL);
  else
    rmdir(tmpl);
  free(c.staging);
  free(from_archive);
  return r;
}
