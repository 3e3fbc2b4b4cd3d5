/* What the satellite seed's API asks of a node beyond /v1: run a named
 * service afresh from a configured default, and fill redis with data.
 * See docs/api.md ("The seed's API"). */
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "agent/agent_private.h"
#include "util/cleanup.h"
#include "util/fs.h"
#include "util/json.h"
#include "util/log.h"
#include "util/redisfill.h"

/* The seed's server runs redis as `podman run --name redis -d -p 6379:6379
 * -v ./redis.conf:/usr/local/etc/redis/redis.conf redis:alpine redis-server
 * /usr/local/etc/redis/redis.conf`: the image its users pull is
 * redis:alpine, and its configuration makes redis answer other hosts
 * (protected mode off), which the command line says here. */
static const char builtin_defaults[] =
    "{\"redis\": {\"image\": \"redis:alpine\", \"cmd\": [\"redis-server\", \"--protected-mode\", \"no\"],"
    " \"ports\": [\"6379:6379\"]}}";

static int default_check(const char *name, json_t *d, struct ferry_err *err)
{
  static const char *known[] = {"image", "cmd", "ports", "volumes", "env"};
  if (!json_is_object(d))
    return FERRY_INVALID(err, "seed default \"%s\" must be an object", name);
  const char *k;
  json_t *v;
  json_object_foreach(d, k, v)
  {
    bool ok = false;
    for (size_t i = 0; i < ARRAY_SIZE(known); i++)
      ok = ok || strcmp(k, known[i]) == 0;
    if (!ok)
      return FERRY_INVALID(err, "seed default \"%s\": unknown field \"%s\" (known: image, cmd, "
                                "ports, volumes, env)",
                           name, k);
  }
  if (!json_is_string(json_object_get(d, "image")))
    return FERRY_INVALID(err, "seed default \"%s\": \"image\" (a string) is required", name);
  return validate_name("container", name, err);
}

int agent_seed_defaults_load(struct agent *a, const char *path, struct ferry_err *err)
{
  json_t *defs = NULL;
  int r = json_parse(builtin_defaults, sizeof builtin_defaults - 1, "built-in seed defaults", &defs,
                     err);
  if (r < 0)
    return r;
  a->seed_defaults = defs;
  if (!path)
    return 0;
  _cleanup_json_ json_t *file = NULL;
  if ((r = json_load(path, &file, err)) < 0)
    return ferry_err_wrap(err, "seed configuration");
  if (!json_is_object(file))
    return FERRY_INVALID(err, "seed configuration %s: expected {\"NAME\": {\"image\", ...}}", path);
  const char *k;
  json_t *v;
  json_object_foreach(file, k, v)
  {
    if ((r = default_check(k, v, err)) < 0)
      return ferry_err_wrap(err, "seed configuration %s", path);
    json_object_set(defs, k, v);
  }
  return 0;
}

/* What to run for name: its default, else what the existing container ran. */
static json_t *run_request(struct agent *a, const char *name, json_t *existing)
{
  json_t *d = json_object_get(a->seed_defaults, name);
  if (d) {
    json_t *req = json_deep_copy(d);
    json_object_set_new(req, "name", json_string(name));
    return req;
  }
  if (!existing)
    return NULL;
  json_t *req = json_pack("{s:s, s:s}", "name", name, "image", rec_image(existing));
  /* args hold the image's Entrypoint first: give only what follows it */
  _cleanup_json_ json_t *img = NULL;
  size_t skip = 0;
  if (agent_image_inspect(a, rec_image(existing), &img, NULL) == 0)
    skip = json_array_size(json_object_get(json_object_get(img, "config"), "Entrypoint"));
  json_t *cmd = json_array(), *args = rec_args(existing);
  for (size_t i = skip; i < json_array_size(args); i++)
    json_array_append(cmd, json_array_get(args, i));
  json_object_set_new(req, "cmd", cmd);
  json_t *vols = json_array();
  for (size_t i = 0; i < rec_n_volumes(existing); i++)
    json_array_append_new(vols, json_sprintf("%s:%s", rec_volume_name(existing, i),
                                             rec_volume_dest(existing, i)));
  json_object_set_new(req, "volumes", vols);
  if (rec_ports(existing))
    json_object_set(req, "ports", rec_ports(existing));
  return req;
}

int agent_seed_run(struct agent *a, const char *name, json_t **out, struct ferry_err *err)
{
  int r = validate_name("container", name, err);
  if (r < 0)
    return r;
  _cleanup_json_ json_t *existing = NULL;
  if (ctr_find(&a->rt, name, &existing, NULL) == 0 &&
      strcmp(rec_name(existing), name) != 0) {
    json_decref(existing); /* an id prefix, not the name */
    existing = NULL;
  }
  _cleanup_json_ json_t *req = run_request(a, name, existing);
  if (!req)
    return FERRY_NOTFOUND(err, "no container \"%s\" here and no default for it (ferryd --seed-config)",
                          name);
  if (existing) {
    /* Afresh, as the seed does: the old container and its volumes go. */
    if ((r = agent_ctr_remove(a, name, true, err)) < 0)
      return ferry_err_wrap(err, "start \"%s\" afresh", name);
    agent_volumes_release(a, existing);
    log_info("agent", "seed: container %s removed to start afresh", name);
  }
  json_object_set_new(req, "start", json_true());
  return agent_ctr_create(a, req, out, err);
}

int agent_seed_fill(struct agent *a, const char *name, uint64_t total_bytes, size_t value_bytes,
                    json_t **out, struct ferry_err *err)
{
  _cleanup_json_ json_t *rec = NULL;
  int r = ctr_find(&a->rt, name, &rec, err);
  if (r < 0)
    return r;
  if (ctr_refresh(&a->rt, rec) != LIVE_RUNNING)
    return FERRY_CONFLICT(err, "container \"%s\" is not running", name);
  /* From inside the container's own network namespace to its 127.0.0.1:
   * redis accepts that whatever its protected mode says. */
  int fd = net_connect_in(rec_netns(rec), "127.0.0.1", 6379, 30, err);
  if (fd < 0)
    return ferry_err_wrap(err, "container \"%s\": redis on port 6379", name);
  uint64_t t0 = now_mono_ms(), keys = 0;
  r = redis_fill(fd, "data", total_bytes, value_bytes, &keys, err);
  close(fd);
  if (r < 0)
    return ferry_err_wrap(err, "container \"%s\": fill redis", name);
  *out = json_pack("{s:I, s:I, s:I, s:I}", "keys", (json_int_t)keys, "bytes",
                   (json_int_t)(keys * value_bytes), "bytes_per_key", (json_int_t)value_bytes,
                   "duration_ms", (json_int_t)(now_mono_ms() - t0));
  return 0;
}
