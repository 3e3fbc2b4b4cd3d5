/* ferry-coord's REST API (docs/coordinator.md). */
#include <stdlib.h>
#include <string.h>

#include "coord/coord.h"
#include "util/cleanup.h"
#include "util/fs.h"
#include "util/json.h"

static void reply(struct api_response *resp, int status, json_t *j)
{
  resp->status = status;
  resp->json = j;
}

static void reply_err(struct api_response *resp, const struct ferry_err *e)
{
  reply(resp, api_status_for(e), json_pack("{s:s, s:s}", "status", "error", "message", e->msg));
}

static int body(const struct api_request *req, json_t **out, struct ferry_err *err)
{
  if (req->body_len == 0) {
    *out = json_object();
    return 0;
  }
  return json_parse(req->body, req->body_len, "request body", out, err);
}

void coord_dispatch(void *ctx, const struct api_request *req, struct api_response *resp)
{
  struct coord *c = ctx;
  const char *m = req->method, *p = req->path;
  bool get = strcmp(m, "GET") == 0, post = strcmp(m, "POST") == 0;
  struct ferry_err err = {0};
  _cleanup_json_ json_t *b = NULL;
  json_t *out = NULL;
  if (get && strcmp(p, "/health") == 0) {
    reply(resp, 200, json_pack("{s:s}", "status", "UP"));
  } else if (post && (strcmp(p, "/v1/nodes") == 0 || strcmp(p, "/register") == 0)) {
    if (body(req, &b, &err) < 0 || coord_node_register(c, b, &out, &err) < 0)
      reply_err(resp, &err);
    else if (strcmp(p, "/register") == 0) {
      json_object_set_new(out, "status", json_string("success"));
      reply(resp, 200, out);
    } else {
      reply(resp, 200, out);
    }
  } else if (get && strcmp(p, "/v1/nodes") == 0) {
    reply(resp, 200, coord_node_list(c));
  } else if (strncmp(p, "/v1/nodes/", 10) == 0) {
    _cleanup_free_ char *name = xstrdup(p + 10);
    char *slash = strchr(name, '/');
    if (slash)
      *slash++ = '\0';
    if (get && !slash) {
      if (coord_node_get(c, name, &out, &err) < 0)
        reply_err(resp, &err);
      else
        reply(resp, 200, out);
    } else if (post && slash && strcmp(slash, "heartbeat") == 0) {
      if (coord_node_heartbeat(c, name, &err) < 0)
        reply_err(resp, &err);
      else
        reply(resp, 200, json_pack("{s:s}", "status", "success"));
    } else {
      FERRY_NOTFOUND(&err, "%s %s: no such endpoint", m, p);
      reply_err(resp, &err);
    }
  } else if (post && (strcmp(p, "/v1/migrations") == 0 || strcmp(p, "/migrate") == 0)) {
    const char *w = req->query(req->query_ctx, "wait");
    bool seed = strcmp(p, "/migrate") == 0;
    if (body(req, &b, &err) < 0 || coord_migrate(c, b, &out, &err) < 0) {
      reply_err(resp, &err);
      return;
    }
    if (seed || (w && strcmp(w, "1") == 0)) {
      json_t *done = coord_migration_wait(c, json_str_or(out, "id", ""), 3600);
      json_decref(out);
      out = done;
      if (seed) {
        bool ok = strcmp(json_str_or(done, "status", ""), "succeeded") == 0;
        reply(resp, ok ? 200 : 500,
              json_pack("{s:s, s:s, s:o}", "status", ok ? "success" : "error", "message",
                        ok ? "migrated" : json_str_or(done, "error", "migration failed"), "migration",
                        done));
        return;
      }
    }
    reply(resp, 202, out);
  } else if (get && strcmp(p, "/v1/migrations") == 0) {
    reply(resp, 200, coord_migration_list(c));
  } else if (get && strncmp(p, "/v1/migrations/", 15) == 0) {
    if (coord_migration_get(c, p + 15, &out, &err) < 0)
      reply_err(resp, &err);
    else
      reply(resp, 200, out);
  } else {
    FERRY_NOTFOUND(&err, "%s %s: no such endpoint", m, p);
    reply_err(resp, &err);
  }
}
