/* Container records that come from outside this agent (a migration offer
 * from a peer, a checkpoint directory): every field is checked and only the
 * fields ferry knows are kept, so that nothing a peer writes can name a path
 * on this host. */
#include <arpa/inet.h>
#include <stdlib.h>
#include <string.h>

#include "net/net.h" /* mac_valid */
#include "net/ports.h"
#include "runtime/runtime.h"
#include "util/cleanup.h"
#include "util/digest.h"
#include "util/fs.h"
#include "util/json.h"

int volume_dest_check(const char *dest, struct ferry_err *err)
{
  if (!dest || dest[0] != '/')
    return FERRY_INVALID(err, "volume destination \"%s\" must be an absolute path",
                         dest ? dest : "");
  if (strcmp(dest, "/") == 0)
    return FERRY_INVALID(err, "volume destination must not be /");
  if (strlen(dest) > 4096)
    return FERRY_INVALID(err, "volume destination is longer than 4096 characters");
  /* normalised: no empty, "." or ".." component, no trailing slash */
  for (const char *p = dest + 1;;) {
    size_t n = strcspn(p, "/");
    if (n == 0 || (n == 1 && p[0] == '.') || (n == 2 && p[0] == '.' && p[1] == '.'))
      return FERRY_INVALID(err, "volume destination \"%s\" must be a normalised path (no \"//\", "
                                "\".\", \"..\" or trailing \"/\")",
                           dest);
    if (!p[n])
      break;
    p += n + 1;
  }
  return 0;
}

static bool printable(const char *s, size_t max)
{
  size_t n = 0;
  for (; s[n]; n++)
    if ((unsigned char)s[n] < 0x20 || s[n] == 0x7f || n >= max)
      return false;
  return true;
}

/* A JSON array of strings (at most max entries of at most maxlen bytes each). */
static int strarr_check(json_t *a, const char *what, bool nonempty, struct ferry_err *err)
{
  if (!json_is_array(a) || (nonempty && json_array_size(a) == 0) || json_array_size(a) > 4096)
    return FERRY_INVALID(err, "container record: \"%s\" must be a%s array of strings", what,
                         nonempty ? " non-empty" : "n");
  size_t i;
  json_t *v;
  json_array_foreach(a, i, v)
  {
    if (!json_is_string(v) || json_string_length(v) != strlen(json_string_value(v)) ||
        json_string_length(v) > 65536)
      return FERRY_INVALID(err, "container record: \"%s\" entry %zu is not a plain string", what, i);
  }
  return 0;
}

int ctr_record_sanitize(json_t *in, json_t **out, struct ferry_err *err)
{
  if (!json_is_object(in))
    return FERRY_INVALID(err, "container record must be a JSON object");
  const char *name = json_str_or(in, "name", NULL);
  int r = validate_name("container", name, err);
  if (r < 0)
    return ferry_err_wrap(err, "container record");
  const char *image = json_str_or(in, "image", NULL);
  if (!digest_valid(image))
    return FERRY_INVALID(err, "container record \"%s\": \"image\" is not a sha256 digest", name);
  const char *ip = json_str_or(in, "ip", NULL);
  struct in_addr ia;
  if (!ip || inet_pton(AF_INET, ip, &ia) != 1)
    return FERRY_INVALID(err, "container record \"%s\": \"ip\" is not an IPv4 address", name);
  const char *mac = json_str_or(in, "mac", NULL);
  if (!mac || !mac_valid(mac))
    return FERRY_INVALID(err, "container record \"%s\": \"mac\" is not a MAC address", name);
  json_t *args = json_object_get(in, "args"), *env = json_object_get(in, "env");
  if ((r = strarr_check(args, "args", true, err)) < 0 ||
      (env && (r = strarr_check(env, "env", false, err)) < 0))
    return r;
  const char *cwd = json_str_or(in, "cwd", "/");
  if (cwd[0] != '/' || !printable(cwd, 4096) || strstr(cwd, "/../") ||
      (strlen(cwd) >= 3 && strcmp(cwd + strlen(cwd) - 3, "/..") == 0))
    return FERRY_INVALID(err, "container record \"%s\": \"cwd\" must be an absolute path without \"..\"",
                         name);
  const char *user = json_str_or(in, "user", "");
  if (!printable(user, 256))
    return FERRY_INVALID(err, "container record \"%s\": \"user\" is not a plain user name", name);
  json_t *ids[2] = {json_object_get(in, "uid"), json_object_get(in, "gid")};
  for (int k = 0; k < 2; k++) {
    if (ids[k] && (!json_is_integer(ids[k]) || json_integer_value(ids[k]) < 0 ||
                   json_integer_value(ids[k]) > 4294967294LL))
      return FERRY_INVALID(err, "container record \"%s\": \"%s\" must be an integer 0..4294967294",
                           name, k ? "gid" : "uid");
  }
  json_t *vols = json_object_get(in, "volumes");
  if (vols && (!json_is_array(vols) || json_array_size(vols) > 256))
    return FERRY_INVALID(err, "container record \"%s\": \"volumes\" must be an array", name);
  _cleanup_json_ json_t *cvols = json_array();
  size_t i;
  json_t *v;
  json_array_foreach(vols, i, v)
  {
    const char *vn = json_str_or(v, "name", NULL);
    const char *dest = json_str_or(v, "destination", NULL);
    if (!json_is_object(v) || (r = validate_name("volume", vn, err)) < 0 ||
        (r = volume_dest_check(dest, err)) < 0) {
      if (!json_is_object(v))
        FERRY_INVALID(err, "volume %zu is not an object", i);
      return ferry_err_wrap(err, "container record \"%s\"", name);
    }
    json_array_append_new(cvols, json_pack("{s:s, s:s}", "name", vn, "destination", dest));
  }
  _cleanup_json_ json_t *ports = NULL;
  if ((r = ports_check(json_object_get(in, "ports"), &ports, err)) < 0)
    return ferry_err_wrap(err, "container record \"%s\"", name);
  /* Only known fields, rebuilt. */
  json_t *rec = json_object();
  json_object_set_new(rec, "name", json_string(name));
  json_object_set_new(rec, "image", json_string(image));
  const char *iname = json_str_or(in, "image_name", NULL);
  if (iname && printable(iname, 512))
    json_object_set_new(rec, "image_name", json_string(iname));
  json_object_set_new(rec, "args", json_deep_copy(args));
  json_object_set_new(rec, "env", env ? json_deep_copy(env) : json_array());
  json_object_set_new(rec, "cwd", json_string(cwd));
  json_object_set_new(rec, "user", json_string(user));
  for (int k = 0; k < 2; k++)
    if (ids[k])
      json_object_set_new(rec, k ? "gid" : "uid", json_integer(json_integer_value(ids[k])));
  json_object_set(rec, "volumes", cvols);
  if (json_array_size(ports))
    json_object_set(rec, "ports", ports);
  json_object_set_new(rec, "ip", json_string(ip));
  json_object_set_new(rec, "mac", json_string(mac));
  static const char *times[] = {"created", "started_at"};
  for (size_t k = 0; k < ARRAY_SIZE(times); k++) {
    const char *t = json_str_or(in, times[k], NULL);
    if (t && printable(t, 64))
      json_object_set_new(rec, times[k], json_string(t));
  }
  *out = rec;
  return 0;
}
