#include <errno.h>
#include "image/store.h"

#include <dirent.h>
#include <stdlib.h>
#include <string.h>

#include "util/cleanup.h"
#include "util/digest.h"
#include "util/fs.h"
#include "util/json.h"
#include "util/strv.h"

int image_store_open(struct image_store *s, const char *root, struct ferry_err *err)
{
  memset(s, 0, sizeof *s);
  s->root = xstrdup(root);
  s->layers_dir = path_join(root, "layers");
  s->images_dir = path_join(root, "images");
  s->tmp_dir = path_join(root, "tmp");
  s->limits = extract_default_limits;
  pthread_mutex_init(&s->pin_lock, NULL);
  s->pins = json_object();
  int r;
  if ((r = mkdir_p(s->layers_dir, 0700, err)) < 0 || (r = mkdir_p(s->images_dir, 0700, err)) < 0 ||
      (r = mkdir_p(s->tmp_dir, 0700, err)) < 0)
    return r;
  /* Leftovers of an import that was interrupted. */
  DIR *d = opendir(s->layers_dir);
  if (d) {
    struct dirent *de;
    while ((de = readdir(d))) {
      if (strstr(de->d_name, ".partial")) {
        _cleanup_free_ char *p = path_join(s->layers_dir, de->d_name);
        rm_rf(p, NULL);
      }
    }
    closedir(d);
  }
  /* and the scratch of pulls, pushes and uploads a crash cut short (the
   * store is opened once, before anything uses it) */
  if ((d = opendir(s->tmp_dir))) {
    struct dirent *de;
    while ((de = readdir(d))) {
      if (strncmp(de->d_name, "pull-", 5) == 0 || strncmp(de->d_name, "push-", 5) == 0 ||
          strncmp(de->d_name, "trash-", 6) == 0 ||
          strncmp(de->d_name, "upload-", 7) == 0 || strncmp(de->d_name, "creds-", 6) == 0) {
        _cleanup_free_ char *p = path_join(s->tmp_dir, de->d_name);
        rm_rf(p, NULL);
      }
    }
    closedir(d);
  }
  return 0;
}

void image_store_close(struct image_store *s)
{
  free(s->root);
  free(s->layers_dir);
  free(s->images_dir);
  free(s->tmp_dir);
  json_decref(s->pins);
  if (s->root || s->pins)
    pthread_mutex_destroy(&s->pin_lock);
  memset(s, 0, sizeof *s);
}

void image_layer_pin(struct image_store *s, const char *digest)
{
  if (!digest_valid(digest))
    return;
  pthread_mutex_lock(&s->pin_lock);
  json_int_t n = json_integer_value(json_object_get(s->pins, digest));
  json_object_set_new(s->pins, digest, json_integer(n + 1));
  pthread_mutex_unlock(&s->pin_lock);
}

void image_layer_unpin(struct image_store *s, const char *digest)
{
  if (!digest)
    return;
  pthread_mutex_lock(&s->pin_lock);
  json_int_t n = json_integer_value(json_object_get(s->pins, digest));
  if (n > 1)
    json_object_set_new(s->pins, digest, json_integer(n - 1));
  else
    json_object_del(s->pins, digest);
  pthread_mutex_unlock(&s->pin_lock);
}

bool image_layer_pinned(struct image_store *s, const char *digest)
{
  pthread_mutex_lock(&s->pin_lock);
  bool p = json_object_get(s->pins, digest) != NULL;
  pthread_mutex_unlock(&s->pin_lock);
  return p;
}

int image_normalize_name(const char *name, char **out, struct ferry_err *err)
{
  if (!name || !*name)
    return FERRY_INVALID(err, "image name is empty");
  size_t n = strlen(name);
  if (n > 200)
    return FERRY_INVALID(err, "image name \"%.40s...\" is longer than 200 characters", name);
  for (const char *p = name; *p; p++) {
    char c = *p;
    if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '.' || c == '_' || c == '-' ||
          c == '/' || c == ':' || (c >= 'A' && c <= 'Z' && strchr(name, ':') && p > strrchr(name, ':'))))
      return FERRY_INVALID(err, "image name \"%s\": character '%c' is not allowed", name, c);
  }
  const char *slash = strrchr(name, '/');
  const char *colon = strrchr(name, ':');
  if (name[0] == '/' || name[0] == ':' || name[n - 1] == ':' || name[n - 1] == '/')
    return FERRY_INVALID(err, "image name \"%s\" is malformed", name);
  /* Each path component, as the distribution spec has them, begins and ends
   * with a letter or digit: no "", ".", ".." or "-x" component. */
  size_t repo_len = colon && (!slash || colon > slash) ? (size_t)(colon - name) : n;
  for (size_t i = 0; i < repo_len;) {
    size_t len = strcspn(name + i, "/");
    if (len > repo_len - i)
      len = repo_len - i;
    const char *c = name + i;
    bool edge_ok = len > 0 && strchr("._-:", c[0]) == NULL && strchr("._-:", c[len - 1]) == NULL;
    if (!edge_ok)
      return FERRY_INVALID(err, "image name \"%s\": component \"%.*s\" must begin and end with a "
                                "letter or digit",
                           name, (int)len, c);
    i += len + 1;
  }
  if (repo_len < n && strchr(".-", name[repo_len + 1]))
    return FERRY_INVALID(err, "image name \"%s\": the tag must begin with a letter, digit or _", name);
  if (colon && (!slash || colon > slash))
    *out = xstrdup(name);
  else
    *out = xasprintf("%s:latest", name);
  return 0;
}

char *image_layer_dir(struct image_store *s, const char *digest)
{
  return path_join(s->layers_dir, digest_valid(digest) ? digest_hex(digest) : "invalid");
}

static char *image_path(struct image_store *s, const char *id)
{
  _cleanup_free_ char *f = xasprintf("%s.json", digest_hex(id));
  return path_join(s->images_dir, f);
}

int image_save(struct image_store *s, json_t *img, struct ferry_err *err)
{
  const char *id = json_str_or(img, "id", NULL);
  if (!digest_valid(id))
    return FERRY_INTERNAL(err, "image record without a valid id");
  _cleanup_free_ char *p = image_path(s, id);
  return json_save_atomic(p, img, err);
}

static json_t *load_all(struct image_store *s)
{
  json_t *arr = json_array();
  DIR *d = opendir(s->images_dir);
  if (!d)
    return arr;
  struct dirent *de;
  while ((de = readdir(d))) {
    size_t n = strlen(de->d_name);
    if (n < 6 || strcmp(de->d_name + n - 5, ".json") != 0)
      continue;
    _cleanup_free_ char *p = path_join(s->images_dir, de->d_name);
    json_t *j = NULL;
    if (json_load(p, &j, NULL) == 0 && json_is_object(j))
      json_array_append_new(arr, j);
    else if (j)
      json_decref(j);
  }
  closedir(d);
  return arr;
}

static int cmp_first_name(const void *a, const void *b)
{
  json_t *ja = *(json_t *const *)a, *jb = *(json_t *const *)b;
  const char *na = json_string_value(json_array_get(json_object_get(ja, "names"), 0));
  const char *nb = json_string_value(json_array_get(json_object_get(jb, "names"), 0));
  return strcmp(na ? na : "~", nb ? nb : "~");
}

json_t *image_list(struct image_store *s)
{
  json_t *arr = load_all(s);
  size_t n = json_array_size(arr);
  json_t **v = calloc(n ? n : 1, sizeof *v);
  for (size_t i = 0; i < n; i++)
    v[i] = json_incref(json_array_get(arr, i));
  qsort(v, n, sizeof *v, cmp_first_name);
  json_t *sorted = json_array();
  for (size_t i = 0; i < n; i++)
    json_array_append_new(sorted, v[i]);
  free(v);
  json_decref(arr);
  return sorted;
}

int image_lookup(struct image_store *s, const char *ref, json_t **out, struct ferry_err *err)
{
  if (!ref || !*ref)
    return FERRY_INVALID(err, "image reference is empty");
  _cleanup_json_ json_t *all = load_all(s);
  _cleanup_free_ char *norm = NULL;
  struct ferry_err ignore;
  image_normalize_name(ref, &norm, &ignore);
  const char *hex = strncmp(ref, "sha256:", 7) == 0 ? ref + 7 : ref;
  size_t hexlen = strlen(hex);
  bool hexref = hexlen >= 4 && hexlen <= 64 && strspn(hex, "0123456789abcdef") == hexlen;
  json_t *found = NULL;
  int matches = 0;
  size_t i;
  json_t *img;
  /* Exact name first, then the short forms podman accepts for
   * docker.io/NAME, docker.io/library/NAME and localhost/NAME. */
  static const char *prefixes[] = {"", "docker.io/", "docker.io/library/", "localhost/"};
  for (size_t p = 0; norm && p < ARRAY_SIZE(prefixes); p++) {
    _cleanup_free_ char *want = xasprintf("%s%s", prefixes[p], norm);
    json_array_foreach(all, i, img)
    {
      size_t k;
      json_t *nm;
      json_array_foreach(json_object_get(img, "names"), k, nm)
      {
        if (strcmp(json_string_value(nm), want) == 0) {
          *out = json_incref(img);
          return 0;
        }
      }
    }
  }
  if (hexref) {
    json_array_foreach(all, i, img)
    {
      const char *id = json_str_or(img, "id", "");
      if (strncmp(id + 7, hex, hexlen) == 0) {
        found = img;
        matches++;
      }
    }
  }
  if (matches == 1) {
    *out = json_incref(found);
    return 0;
  }
  if (matches > 1)
    return FERRY_INVALID(err, "image \"%s\": ambiguous id prefix (%d images match)", ref, matches);
  return FERRY_NOTFOUND(err, "image \"%s\": no such image", ref);
}

/* The index in img's names of the name ref gives, when img has other
 * names too (removing ref then only untags), else -1. */
static int extra_name_index(json_t *img, const char *ref)
{
  json_t *names = json_object_get(img, "names");
  _cleanup_free_ char *norm = NULL;
  if (json_array_size(names) < 2 || image_normalize_name(ref, &norm, NULL) < 0)
    return -1;
  static const char *prefixes[] = {"", "docker.io/", "docker.io/library/", "localhost/"};
  for (size_t p = 0; p < ARRAY_SIZE(prefixes); p++) {
    _cleanup_free_ char *want = xasprintf("%s%s", prefixes[p], norm);
    for (size_t k = 0; k < json_array_size(names); k++)
      if (strcmp(json_string_value(json_array_get(names, k)), want) == 0)
        return (int)k;
  }
  return -1;
}

bool image_remove_untags(json_t *img, const char *ref)
{
  return extra_name_index(img, ref) >= 0;
}

int image_remove(struct image_store *s, const char *ref, char ***trash, struct ferry_err *err)
{
  _cleanup_json_ json_t *img = NULL;
  int r = image_lookup(s, ref, &img, err);
  if (r < 0)
    return r;
  const char *iid = json_str_or(img, "id", "");
  /* An image with several names only loses the name it was removed by. */
  int k = extra_name_index(img, ref);
  if (k >= 0) {
    json_array_remove(json_object_get(img, "names"), (size_t)k);
    return image_save(s, img, err);
  }
  _cleanup_free_ char *p = image_path(s, iid);
  if (unlink(p) < 0)
    return ferry_err_sys(err, -errno, "image %s: remove record", iid);
  /* Drop layers no remaining image refers to. */
  image_layers_drop_unused(s, json_object_get(img, "layers"), trash);
  return 0;
}

void image_trash_empty(char **trash)
{
  for (size_t i = 0; trash && trash[i]; i++)
    rm_rf(trash[i], NULL);
  strv_free(trash);
}

void image_layers_drop_unused(struct image_store *s, json_t *digests, char ***trash)
{
  _cleanup_json_ json_t *all = load_all(s);
  size_t i;
  json_t *l;
  json_array_foreach(digests, i, l)
  {
    const char *dg = json_string_value(l);
    if (!digest_valid(dg))
      continue;
    bool used = false;
    size_t k;
    json_t *img;
    json_array_foreach(all, k, img)
    {
      size_t m;
      json_t *il;
      json_array_foreach(json_object_get(img, "layers"), m, il) if (json_equal(il, l)) used = true;
    }
    if (!used && !image_layer_pinned(s, dg)) {
      _cleanup_free_ char *ld = image_layer_dir(s, dg);
      char name[48];
      char hx[17];
      random_hex(hx, 16);
      snprintf(name, sizeof name, "trash-%s", hx);
      _cleanup_free_ char *tp = path_join(s->tmp_dir, name);
      if (rename(ld, tp) == 0) {
        if (!*trash)
          *trash = strv_new();
        strv_push(trash, tp);
      } else if (errno != ENOENT) {
        rm_rf(ld, NULL); /* not movable (another file system?): here, then */
      }
    }
  }
}
