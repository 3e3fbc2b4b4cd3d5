/* Container records that come from outside this agent (a migration offer
 * from a peer, a checkpoint directory): every field is checked and only the
 * fields ferry knows are kept, so that nothing a peer writes can name a path
 * on this host. */
#include <arpa/inet.h>
#include <stdlib.h>
#include <string.h>

#include "net/net.h" /* mac_valid */
#include "net/ports.h"
#include "runtime/record.h"
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

int tmpfs_parse(const char *spec, json_t **out, struct ferry_err *err)
{
  if (!spec)
    return FERRY_INVALID(err, "tmpfs: expected /path[:OPTIONS]");
  const char *colon = strchr(spec, ':');
  _cleanup_free_ char *dest = colon ? strndup(spec, (size_t)(colon - spec)) : xstrdup(spec);
  int r = volume_dest_check(dest, err);
  if (r < 0)
    return ferry_err_wrap(err, "tmpfs");
  /* podman's defaults: rw,noexec,nosuid,nodev; size and mode as given */
  bool ro = false, exec = false, suid = false, dev = false;
  char size[32] = "", mode[8] = "", inodes[32] = "";
  _cleanup_free_ char *opts = xstrdup(colon ? colon + 1 : "");
  char *save = NULL;
  for (char *o = strtok_r(opts, ",", &save); o; o = strtok_r(NULL, ",", &save)) {
    if (strcmp(o, "ro") == 0 || strcmp(o, "rw") == 0)
      ro = o[1] == 'o';
    else if (strcmp(o, "exec") == 0 || strcmp(o, "noexec") == 0)
      exec = o[0] == 'e';
    else if (strcmp(o, "suid") == 0 || strcmp(o, "nosuid") == 0)
      suid = o[0] == 's';
    else if (strcmp(o, "dev") == 0 || strcmp(o, "nodev") == 0)
      dev = o[0] == 'd';
    else if (strncmp(o, "size=", 5) == 0 || strncmp(o, "nr_inodes=", 10) == 0) {
      const char *v = strchr(o, '=') + 1;
      size_t digits = strspn(v, "0123456789");
      bool ok = digits > 0 && digits <= 18 &&
                (v[digits] == '\0' || (strchr("kKmMgG%", v[digits]) && v[digits + 1] == '\0'));
      if (!ok)
        return FERRY_INVALID(err, "tmpfs %s: \"%s\" is not a number with an optional k, m, g or %%",
                             dest, o);
      snprintf(o[0] == 's' ? size : inodes, sizeof size, "%s", v);
    } else if (strncmp(o, "mode=", 5) == 0) {
      const char *v = o + 5;
      if (strlen(v) < 1 || strlen(v) > 4 || strspn(v, "01234567") != strlen(v))
        return FERRY_INVALID(err, "tmpfs %s: mode \"%s\" is not an octal mode", dest, v);
      snprintf(mode, sizeof mode, "%s", v);
    } else {
      return FERRY_INVALID(err, "tmpfs %s: unknown option \"%s\" (known: ro, rw, exec, noexec, "
                                "suid, nosuid, dev, nodev, size=, mode=, nr_inodes=)",
                           dest, o);
    }
  }
  _cleanup_free_ char *norm = xasprintf("%s,%s,%s,%s%s%s%s%s%s%s", ro ? "ro" : "rw",
                                        exec ? "exec" : "noexec", suid ? "suid" : "nosuid",
                                        dev ? "dev" : "nodev", size[0] ? ",size=" : "", size,
                                        mode[0] ? ",mode=" : "", mode, inodes[0] ? ",nr_inodes=" : "",
                                        inodes);
  *out = json_pack("{s:s, s:s}", "destination", dest, "options", norm);
  return 0;
}

size_t rec_n_tmpfs(const json_t *rec)
{
  return json_array_size(json_object_get(rec, "tmpfs"));
}

const char *rec_tmpfs_dest(const json_t *rec, size_t i)
{
  return json_str_or(json_array_get(json_object_get(rec, "tmpfs"), i), "destination", "");
}

const char *rec_tmpfs_options(const json_t *rec, size_t i)
{
  return json_str_or(json_array_get(json_object_get(rec, "tmpfs"), i), "options", "");
}

void rec_set_tmpfs(json_t *rec, json_t *tmpfs)
{
  if (json_array_size(tmpfs))
    json_object_set(rec, "tmpfs", tmpfs);
  else
    json_object_del(rec, "tmpfs");
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
    json_t *cv = json_pack("{s:s, s:s}", "name", vn, "destination", dest);
    if (json_is_true(json_object_get(v, "readonly")))
      json_object_set_new(cv, "readonly", json_true());
    json_array_append_new(cvols, cv);
  }
  /* tmpfs mounts, parsed again from their destination and options: only
   * the options a user may give come through */
  json_t *tmps = json_object_get(in, "tmpfs");
  if (tmps && (!json_is_array(tmps) || json_array_size(tmps) > 64))
    return FERRY_INVALID(err, "container record \"%s\": \"tmpfs\" must be an array", name);
  _cleanup_json_ json_t *ctmps = json_array();
  json_array_foreach(tmps, i, v)
  {
    const char *dest = json_str_or(v, "destination", NULL), *o = json_str_or(v, "options", "");
    _cleanup_free_ char *spec = xasprintf("%s:%s", dest ? dest : "", o);
    json_t *t = NULL;
    if (!dest || strchr(dest, ':') || (r = tmpfs_parse(spec, &t, err)) < 0) {
      if (!dest || strchr(dest, ':'))
        FERRY_INVALID(err, "tmpfs %zu has no valid destination", i);
      return ferry_err_wrap(err, "container record \"%s\"", name);
    }
    json_array_append_new(ctmps, t);
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
  if (json_array_size(ctmps))
    json_object_set(rec, "tmpfs", ctmps);
  if (json_array_size(ports))
    json_object_set(rec, "ports", ports);
  json_object_set_new(rec, "ip", json_string(ip));
  json_object_set_new(rec, "mac", json_string(mac));
  if (json_is_true(json_object_get(in, "autoremove")))
    json_object_set_new(rec, "autoremove", json_true());
  static const char *times[] = {"created", "started_at"};
  for (size_t k = 0; k < ARRAY_SIZE(times); k++) {
    const char *t = json_str_or(in, times[k], NULL);
    if (t && printable(t, 64))
      json_object_set_new(rec, times[k], json_string(t));
  }
  *out = rec;
  return 0;
}

/* ---- typed fields (record.h) ---- */

static const char *const state_names[] = {
    [CS_CREATED] = "created",           [CS_RUNNING] = "running",   [CS_EXITED] = "exited",
    [CS_CHECKPOINTED] = "checkpointed", [CS_MIGRATED] = "migrated",
};

const char *ctr_state_name(enum ctr_state s)
{
  return s <= CS_MIGRATED ? state_names[s] : "created";
}

enum ctr_state rec_state(const json_t *rec)
{
  const char *s = json_string_value(json_object_get(rec, "state"));
  for (size_t i = 0; s && i < ARRAY_SIZE(state_names); i++)
    if (strcmp(s, state_names[i]) == 0)
      return (enum ctr_state)i;
  return CS_CREATED;
}

void rec_set_state(json_t *rec, enum ctr_state s)
{
  json_object_set_new(rec, "state", json_string(ctr_state_name(s)));
}

bool rec_autoremove(const json_t *rec)
{
  return json_is_true(json_object_get(rec, "autoremove"));
}

void rec_set_autoremove(json_t *rec, bool on)
{
  if (on)
    json_object_set_new(rec, "autoremove", json_true());
  else
    json_object_del(rec, "autoremove");
}

bool rec_tty(const json_t *rec)
{
  return json_is_true(json_object_get(rec, "tty"));
}

bool rec_stdin(const json_t *rec)
{
  return json_is_true(json_object_get(rec, "stdin"));
}

void rec_set_stdio(json_t *rec, bool tty, bool in)
{
  json_object_del(rec, "tty");
  json_object_del(rec, "stdin");
  if (tty)
    json_object_set_new(rec, "tty", json_true());
  if (in)
    json_object_set_new(rec, "stdin", json_true());
}

static const char *const live_names[] = {
    [LIVE_UNKNOWN] = "",          [LIVE_CREATED] = "created",
    [LIVE_RUNNING] = "running",   [LIVE_PAUSED] = "paused",
    [LIVE_EXITED] = "exited",     [LIVE_CHECKPOINTED] = "checkpointed",
    [LIVE_MIGRATED] = "migrated",
};

const char *ctr_live_name(enum ctr_live s)
{
  return (size_t)s < ARRAY_SIZE(live_names) ? live_names[s] : "";
}

enum ctr_live ctr_live_parse(const char *s)
{
  for (size_t i = 1; s && i < ARRAY_SIZE(live_names); i++)
    if (strcmp(s, live_names[i]) == 0)
      return (enum ctr_live)i;
  return LIVE_UNKNOWN;
}

enum ctr_live rec_status(const json_t *rec)
{
  return ctr_live_parse(json_string_value(json_object_get(rec, "status")));
}

void rec_set_status(json_t *rec, enum ctr_live status, int pid)
{
  json_object_set_new(rec, "status", json_string(ctr_live_name(status)));
  if (pid > 0)
    json_object_set_new(rec, "pid", json_integer(pid));
  else
    json_object_del(rec, "pid");
}

void rec_clear_live(json_t *rec)
{
  json_object_del(rec, "status");
  json_object_del(rec, "pid");
}

static const char *const op_names[] = {
    [OP_NONE] = "", [OP_CHECKPOINT] = "checkpoint", [OP_MIGRATION] = "migration",
    [OP_RESTORE] = "restore", [OP_OTHER] = "operation",
};

const char *ctr_op_name(enum ctr_op op)
{
  return op <= OP_OTHER ? op_names[op] : "";
}

enum ctr_op rec_op(const json_t *rec)
{
  const char *s = json_string_value(json_object_get(rec, "op"));
  for (size_t i = 1; s && i < OP_OTHER; i++)
    if (strcmp(s, op_names[i]) == 0)
      return (enum ctr_op)i;
  /* an operation this version does not know still owns the container */
  return s ? OP_OTHER : OP_NONE;
}

void rec_set_op(json_t *rec, enum ctr_op op)
{
  if (op == OP_NONE)
    json_object_del(rec, "op");
  else
    json_object_set_new(rec, "op", json_string(ctr_op_name(op)));
}

void rec_set_migration(json_t *rec, const char *id, const char *to)
{
  json_object_set_new(rec, "migration", json_pack("{s:s, s:s}", "id", id, "to", to));
}

bool rec_has_migration(const json_t *rec)
{
  return json_is_object(json_object_get(rec, "migration"));
}

const char *rec_migration_to(const json_t *rec)
{
  return json_str_or(json_object_get(rec, "migration"), "to", "");
}

const char *rec_migration_mid(const json_t *rec)
{
  return json_str_or(json_object_get(rec, "migration"), "id", "");
}

bool rec_commit_sent(const json_t *rec)
{
  return json_is_true(json_object_get(json_object_get(rec, "migration"), "commit"));
}

void rec_set_commit_sent(json_t *rec)
{
  json_t *m = json_object_get(rec, "migration");
  if (json_is_object(m))
    json_object_set_new(m, "commit", json_true());
}

void rec_clear_commit_sent(json_t *rec)
{
  json_object_del(json_object_get(rec, "migration"), "commit");
}

void rec_clear_migration(json_t *rec)
{
  json_object_del(rec, "migration");
}

bool rec_exit_code(const json_t *rec, int *code)
{
  json_t *c = json_object_get(rec, "exit_code");
  if (!json_is_integer(c))
    return false;
  *code = (int)json_integer_value(c);
  return true;
}

void rec_set_exit(json_t *rec, const json_t *ex)
{
  json_t *c = json_object_get(ex, "exit_code"), *t = json_object_get(ex, "finished_at");
  if (json_is_integer(c))
    json_object_set_new(rec, "exit_code", json_integer(json_integer_value(c)));
  if (json_is_string(t))
    json_object_set_new(rec, "finished_at", json_string(json_string_value(t)));
}

void rec_clear_exit(json_t *rec)
{
  json_object_del(rec, "exit_code");
  json_object_del(rec, "finished_at");
}

json_t *rec_volumes(const json_t *rec)
{
  return json_object_get(rec, "volumes");
}

size_t rec_n_volumes(const json_t *rec)
{
  return json_array_size(rec_volumes(rec));
}

const char *rec_volume_name(const json_t *rec, size_t i)
{
  return json_str_or(json_array_get(rec_volumes(rec), i), "name", "");
}

bool rec_volume_readonly(const json_t *rec, size_t i)
{
  return json_is_true(json_object_get(json_array_get(json_object_get(rec, "volumes"), i), "readonly"));
}

const char *rec_volume_dest(const json_t *rec, size_t i)
{
  return json_str_or(json_array_get(rec_volumes(rec), i), "destination", "");
}

size_t rec_n_binds(const json_t *rec)
{
  return json_array_size(json_object_get(rec, "binds"));
}

const char *rec_bind_source(const json_t *rec, size_t i)
{
  return json_str_or(json_array_get(json_object_get(rec, "binds"), i), "source", "");
}

const char *rec_bind_dest(const json_t *rec, size_t i)
{
  return json_str_or(json_array_get(json_object_get(rec, "binds"), i), "destination", "");
}

bool rec_bind_readonly(const json_t *rec, size_t i)
{
  return json_is_true(json_object_get(json_array_get(json_object_get(rec, "binds"), i), "readonly"));
}

void rec_set_binds(json_t *rec, json_t *binds)
{
  if (json_array_size(binds))
    json_object_set(rec, "binds", binds);
  else
    json_object_del(rec, "binds");
}

void rec_set_volumes(json_t *rec, json_t *vols)
{
  json_object_set_new(rec, "volumes", json_is_array(vols) ? json_incref(vols) : json_array());
}

void rec_add_volume(json_t *rec, const char *name, const char *dest)
{
  json_t *v = rec_volumes(rec);
  if (!json_is_array(v)) {
    v = json_array();
    json_object_set_new(rec, "volumes", v);
  }
  json_array_append_new(v, json_pack("{s:s, s:s}", "name", name, "destination", dest));
}

json_t *rec_args(const json_t *rec)
{
  return json_object_get(rec, "args");
}

json_t *rec_env(const json_t *rec)
{
  return json_object_get(rec, "env");
}

json_t *rec_ports(const json_t *rec)
{
  json_t *p = json_object_get(rec, "ports");
  return json_array_size(p) ? p : NULL;
}

void rec_set_args(json_t *rec, json_t *args)
{
  json_object_set_new(rec, "args", args);
}

void rec_set_env(json_t *rec, json_t *env)
{
  json_object_set_new(rec, "env", env);
}

void rec_set_ports(json_t *rec, json_t *ports)
{
  if (json_array_size(ports))
    json_object_set(rec, "ports", ports);
  else
    json_object_del(rec, "ports");
}

bool rec_ids(const json_t *rec, uint32_t *uid, uint32_t *gid)
{
  json_t *u = json_object_get(rec, "uid"), *g = json_object_get(rec, "gid");
  if (!json_is_integer(u) || !json_is_integer(g))
    return false;
  *uid = (uint32_t)json_integer_value(u);
  *gid = (uint32_t)json_integer_value(g);
  return true;
}

void rec_set_ids(json_t *rec, uint32_t uid, uint32_t gid)
{
  json_object_set_new(rec, "uid", json_integer(uid));
  json_object_set_new(rec, "gid", json_integer(gid));
}
