/* ferry-coord's REST API (docs/coordinator.md): a table of routes, each a
 * call into coord.c; the seed's /register and /migrate beside /v1. */
#include <stdlib.h>
#include <string.h>

#include "coord/coord.h"
#include "util/cleanup.h"
#include "util/fs.h"
#include "util/json.h"

#define COORD(ctx) ((struct coord *)(ctx))
#define H(name) static void name(void *ctx, const struct http_request *req, char **args, \
                                 struct http_response *resp)

H(health)
{
  (void)ctx, (void)req, (void)args;
  http_reply(resp, 200, json_pack("{s:s}", "status", "UP"));
}

static void register_node(void *ctx, const struct http_request *req, bool seed,
                          struct http_response *resp)
{
  struct ferry_err err = {0};
  _cleanup_json_ json_t *b = NULL;
  json_t *out = NULL;
  if (http_body(req, &b, &err) < 0 || coord_node_register(COORD(ctx), b, &out, &err) < 0) {
    http_reply_err(resp, &err);
    return;
  }
  if (seed)
    json_object_set_new(out, "status", json_string("success"));
  http_reply(resp, 200, out);
}

H(node_register)
{
  (void)args;
  register_node(ctx, req, false, resp);
}

H(seed_register)
{
  (void)args;
  register_node(ctx, req, true, resp);
}

H(node_list)
{
  (void)req, (void)args;
  http_reply(resp, 200, coord_node_list(COORD(ctx)));
}

H(node_get)
{
  (void)req;
  struct ferry_err err = {0};
  json_t *out = NULL;
  int r = coord_node_get(COORD(ctx), args[0], &out, &err);
  http_reply_result(resp, r, out, &err);
}

H(node_heartbeat)
{
  struct ferry_err err = {0};
  _cleanup_json_ json_t *b = NULL;
  if ((req->body_len && http_body(req, &b, &err) < 0) ||
      coord_node_heartbeat(COORD(ctx), args[0], json_str_or(b, "node_secret", NULL), &err) < 0)
    http_reply_err(resp, &err);
  else
    http_reply(resp, 200, json_pack("{s:s}", "status", "success"));
}

static void migrate(void *ctx, const struct http_request *req, bool seed, struct http_response *resp)
{
  struct coord *c = COORD(ctx);
  struct ferry_err err = {0};
  _cleanup_json_ json_t *b = NULL;
  json_t *out = NULL;
  if (http_body(req, &b, &err) < 0 || coord_migrate(c, b, &out, &err) < 0) {
    http_reply_err(resp, &err);
    return;
  }
  if (!seed && !http_query_bool(req, "wait")) {
    http_reply(resp, 202, out);
    return;
  }
  json_t *done = coord_migration_wait(c, json_str_or(out, "id", ""), 3600);
  json_decref(out);
  if (!seed) {
    http_reply(resp, 202, done);
    return;
  }
  /* the seed's form answers when the move ended, in its own terms */
  bool ok = strcmp(json_str_or(done, "status", ""), "succeeded") == 0;
  http_reply(resp, ok ? 200 : 500,
             json_pack("{s:s, s:s, s:o}", "status", ok ? "success" : "error", "message",
                       ok ? "migrated" : json_str_or(done, "error", "migration failed"), "migration",
                       done));
}

H(mig_start)
{
  (void)args;
  migrate(ctx, req, false, resp);
}

H(seed_migrate)
{
  (void)args;
  migrate(ctx, req, true, resp);
}

H(mig_list)
{
  (void)req, (void)args;
  http_reply(resp, 200, coord_migration_list(COORD(ctx)));
}

H(mig_get)
{
  (void)req;
  struct ferry_err err = {0};
  json_t *out = NULL;
  int r = coord_migration_get(COORD(ctx), args[0], &out, &err);
  http_reply_result(resp, r, out, &err);
}

static void metrics(void *ctx, const struct http_request *req, char **args,
                    struct http_response *resp)
{
  (void)req, (void)args;
  size_t len = 0;
  resp->status = 200;
  resp->raw = coord_metrics_text(COORD(ctx), &len);
  resp->raw_len = len;
}

static const struct http_route routes[] = {
    {"GET", "/health", health},
    {"GET", "/metrics", metrics},
    {"POST", "/v1/nodes", node_register},
    {"POST", "/register", seed_register},
    {"GET", "/v1/nodes", node_list},
    {"GET", "/v1/nodes/{}", node_get},
    {"POST", "/v1/nodes/{}/heartbeat", node_heartbeat},
    {"POST", "/v1/migrations", mig_start},
    {"POST", "/migrate", seed_migrate},
    {"GET", "/v1/migrations", mig_list},
    {"GET", "/v1/migrations/{}", mig_get},
};

void coord_dispatch(void *ctx, const struct http_request *req, struct http_response *resp)
{
  struct ferry_err err = {0};
  if (http_route(routes, ARRAY_SIZE(routes), ctx, req, resp))
    return;
  FERRY_NOTFOUND(&err, "%s %s: no such endpoint", req->method, req->path);
  http_reply_err(resp, &err);
}
