#include <dirent.h>
#include <stdlib.h>
#include <string.h>

#include "runtime/runtime.h"
#include "util/cleanup.h"
#include "util/fs.h"
#include "util/json.h"

char *volume_path(struct runtime *rt, const char *name)
{
  _cleanup_free_ char *d = path_join(rt->vol_dir, name);
  return path_join(d, "_data");
}

static char *volume_meta(struct runtime *rt, const char *name)
{
  _cleanup_free_ char *d = path_join(rt->vol_dir, name);
  return path_join(d, "volume.json");
}

int volume_get(struct runtime *rt, const char *name, json_t **out, struct ferry_err *err)
{
  int r = validate_name("volume", name, err);
  if (r < 0)
    return r;
  _cleanup_free_ char *m = volume_meta(rt, name);
  if (!path_exists(m))
    return FERRY_NOTFOUND(err, "volume \"%s\": no such volume", name);
  json_t *j = NULL;
  if ((r = json_load(m, &j, err)) < 0)
    return r;
  _cleanup_free_ char *p = volume_path(rt, name);
  json_object_set_new(j, "mountpoint", json_string(p));
  json_object_set_new(j, "size", json_integer((json_int_t)dir_size(p)));
  *out = j;
  return 0;
}

int volume_create(struct runtime *rt, const char *name, bool exist_ok, json_t **out,
                  struct ferry_err *err)
{
  int r = validate_name("volume", name, err);
  if (r < 0)
    return r;
  _cleanup_free_ char *m = volume_meta(rt, name);
  if (path_exists(m)) {
    if (!exist_ok)
      return FERRY_CONFLICT(err, "volume \"%s\": already exists", name);
    return out ? volume_get(rt, name, out, err) : 0;
  }
  _cleanup_free_ char *p = volume_path(rt, name);
  if ((r = mkdir_p(p, 0755, err)) < 0)
    return r;
  _cleanup_json_ json_t *j = json_object();
  json_object_set_new(j, "name", json_string(name));
  char ts[40];
  format_time(now_wall_ms(), ts, sizeof ts);
  json_object_set_new(j, "created", json_string(ts));
  if ((r = json_save_atomic(m, j, err)) < 0)
    return r;
  return out ? volume_get(rt, name, out, err) : 0;
}

json_t *volume_list(struct runtime *rt)
{
  json_t *arr = json_array();
  DIR *d = opendir(rt->vol_dir);
  if (!d)
    return arr;
  struct dirent *de;
  while ((de = readdir(d))) {
    if (de->d_name[0] == '.')
      continue;
    json_t *v = NULL;
    if (volume_get(rt, de->d_name, &v, NULL) == 0)
      json_array_append_new(arr, v);
  }
  closedir(d);
  return arr;
}

int volume_remove(struct runtime *rt, const char *name, struct ferry_err *err)
{
  _cleanup_json_ json_t *v = NULL;
  int r = volume_get(rt, name, &v, err);
  if (r < 0)
    return r;
  _cleanup_free_ char *d = path_join(rt->vol_dir, name);
  return rm_rf(d, err);
}

int volume_set_mark(struct runtime *rt, const char *name, const char *mark, struct ferry_err *err)
{
  _cleanup_free_ char *m = volume_meta(rt, name);
  _cleanup_json_ json_t *j = NULL;
  int r = json_load(m, &j, err);
  if (r < 0)
    return r;
  if (mark)
    json_object_set_new(j, "migration_id", json_string(mark));
  else
    json_object_del(j, "migration_id");
  return json_save_atomic(m, j, err);
}

bool volume_has_mark(struct runtime *rt, const char *name, const char *mark)
{
  _cleanup_free_ char *m = volume_meta(rt, name);
  _cleanup_json_ json_t *j = NULL;
  return json_load(m, &j, NULL) == 0 && strcmp(json_str_or(j, "migration_id", ""), mark) == 0;
}
