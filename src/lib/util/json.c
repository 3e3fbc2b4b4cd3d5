#include "util/json.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <stdbool.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "util/cleanup.h"
#include "util/fs.h"
#include "util/strv.h"

int json_parse(const char *text, size_t len, const char *what, json_t **out, struct ferry_err *err)
{
  json_error_t je;
  json_t *j = json_loadb(text, len, JSON_REJECT_DUPLICATES, &je);
  if (!j)
    return FERRY_INVALID(err, "%s: malformed JSON at line %d column %d: %s", what, je.line,
                         je.column, je.text);
  *out = j;
  return 0;
}

int json_load(const char *path, json_t **out, struct ferry_err *err)
{
  _cleanup_free_ char *buf = NULL;
  size_t len = 0;
  int r = read_file(path, 64u << 20, &buf, &len, err);
  if (r < 0)
    return r;
  return json_parse(buf, len, path, out, err);
}

/* j as indented text with a final newline, written to path by rename
 * (fsynced first when sync). */
static int json_save(const char *path, json_t *j, bool sync, struct ferry_err *err)
{
  _cleanup_free_ char *s = json_dumps(j, JSON_INDENT(2) | JSON_SORT_KEYS);
  if (!s)
    return FERRY_INTERNAL(err, "%s: cannot encode JSON", path);
  _cleanup_free_ char *withnl = xasprintf("%s\n", s);
  size_t n = strlen(withnl);
  return sync ? write_file_atomic(path, withnl, n, 0600, err)
              : write_file_replace(path, withnl, n, 0600, err);
}

int json_save_atomic(const char *path, json_t *j, struct ferry_err *err)
{
  return json_save(path, j, true, err);
}

int json_save_quick(const char *path, json_t *j, struct ferry_err *err)
{
  return json_save(path, j, false, err);
}

int json_save_durable(const char *path, json_t *j, struct ferry_err *err)
{
  int r = json_save_atomic(path, j, err);
  if (r != -ENOSPC && r != -EDQUOT)
    return r;
  /* The disk is full: no new file can be made, but the old one's blocks
   * are there. A record that shrank (an operation's mark removed) is
   * written over the old one, padded with spaces (JSON allows them), so
   * that a container never stays "busy" because its release could not be
   * written. Not atomic: used only where atomic failed for lack of space. */
  _cleanup_free_ char *s = json_dumps(j, JSON_INDENT(2) | JSON_SORT_KEYS);
  struct stat st;
  int fd = s ? open(path, O_WRONLY | O_CLOEXEC | O_NOFOLLOW) : -1;
  if (fd < 0)
    return r;
  size_t n = strlen(s);
  if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode) || (off_t)(n + 1) > st.st_size) {
    close(fd);
    return r;
  }
  size_t total = (size_t)st.st_size;
  char *buf = malloc(total);
  if (!buf)
    abort();
  memcpy(buf, s, n);
  memset(buf + n, ' ', total - n);
  buf[total - 1] = '\n';
  bool ok = pwrite(fd, buf, total, 0) == (ssize_t)total && fsync(fd) == 0;
  free(buf);
  close(fd);
  if (!ok)
    return r;
  ferry_err_clear(err);
  return 0;
}

int json_get_str(json_t *obj, const char *key, bool required, const char **out,
                 struct ferry_err *err)
{
  json_t *v = json_object_get(obj, key);
  *out = NULL;
  if (!v || json_is_null(v)) {
    if (required)
      return FERRY_INVALID(err, "field \"%s\" is required", key);
    return 0;
  }
  if (!json_is_string(v))
    return FERRY_INVALID(err, "field \"%s\" must be a string", key);
  *out = json_string_value(v);
  return 0;
}

int json_get_bool(json_t *obj, const char *key, bool def, bool *out, struct ferry_err *err)
{
  json_t *v = json_object_get(obj, key);
  if (!v || json_is_null(v)) {
    *out = def;
    return 0;
  }
  if (!json_is_boolean(v))
    return FERRY_INVALID(err, "field \"%s\" must be true or false", key);
  *out = json_is_true(v);
  return 0;
}

int json_get_strv(json_t *obj, const char *key, char ***out, struct ferry_err *err)
{
  json_t *v = json_object_get(obj, key);
  *out = NULL;
  if (!v || json_is_null(v))
    return 0;
  if (!json_is_array(v))
    return FERRY_INVALID(err, "field \"%s\" must be an array of strings", key);
  char **res = strv_new();
  size_t i;
  json_t *e;
  json_array_foreach(v, i, e)
  {
    if (!json_is_string(e)) {
      strv_free(res);
      return FERRY_INVALID(err, "field \"%s\"[%zu] must be a string", key, i);
    }
    strv_push(&res, json_string_value(e));
  }
  *out = res;
  return 0;
}

json_t *json_strv(char *const *v)
{
  json_t *a = json_array();
  for (size_t i = 0; v && v[i]; i++)
    json_array_append_new(a, json_string(v[i]));
  return a;
}

const char *json_str_or(json_t *obj, const char *key, const char *def)
{
  json_t *v = json_object_get(obj, key);
  return json_is_string(v) ? json_string_value(v) : def;
}

bool json_array_has_str(json_t *arr, const char *s)
{
  size_t i;
  json_t *v;
  json_array_foreach(arr, i, v) if (json_is_string(v) && strcmp(json_string_value(v), s) == 0) return true;
  return false;
}
