/* Request routing: method + path -> agent call. See docs/api.md. */
#include <signal.h>
#include <stdlib.h>
#include <string.h>

#include "api/api.h"
#include "migrate/migrate.h"
#include "util/cleanup.h"
#include "util/fs.h"
#include "util/json.h"

int api_status_for(const struct ferry_err *err)
{
  if (err->code == -ENOSPC || err->code == -EDQUOT)
    return 507;
  switch (err->klass) {
  case FERRY_E_INVALID: return 400;
  case FERRY_E_NOTFOUND: return 404;
  case FERRY_E_CONFLICT: return 409;
  case FERRY_E_AUTH: return 401;
  case FERRY_E_UNAVAILABLE: return 503;
  default: return 500;
  }
}

bool api_route_wants_upload(const char *method, const char *path)
{
  if (strcmp(method, "POST") != 0 && strcmp(method, "PUT") != 0)
    return false;
  if (strcmp(path, "/v1/images/import") == 0)
    return true;
  /* the parts of an incoming migration: /v1/migrations/incoming/ID/PART[/NAME] */
  return strcmp(method, "PUT") == 0 && strncmp(path, "/v1/migrations/incoming/", 24) == 0;
}

static void reply(struct api_response *resp, int status, json_t *j)
{
  resp->status = status;
  resp->json = j;
}

static void reply_err(struct api_response *resp, const struct ferry_err *err)
{
  reply(resp, api_status_for(err),
        json_pack("{s:s, s:s}", "status", "error", "message", err->msg[0] ? err->msg : "internal error"));
}

static void reply_ok(struct api_response *resp, int r, json_t *j, const struct ferry_err *err)
{
  if (r < 0)
    reply_err(resp, err);
  else
    reply(resp, 200, j ? j : json_pack("{s:s}", "status", "success"));
}

/* Splits "/a/b/c" into at most n segments; the last takes the rest. */
static size_t split(const char *path, char **seg, size_t n)
{
  size_t k = 0;
  const char *p = path;
  while (*p == '/')
    p++;
  while (*p && k < n) {
    const char *slash = k + 1 < n ? strchr(p, '/') : NULL;
    size_t len = slash ? (size_t)(slash - p) : strlen(p);
    seg[k++] = strndup(p, len);
    p += len;
    while (*p == '/')
      p++;
  }
  return k;
}

static bool qbool(const struct api_request *req, const char *key)
{
  const char *v = req->query(req->query_ctx, key);
  return v && (strcmp(v, "1") == 0 || strcmp(v, "true") == 0 || strcmp(v, "yes") == 0);
}

static int parse_body(const struct api_request *req, json_t **out, struct ferry_err *err)
{
  if (req->body_len == 0) {
    *out = json_object();
    return 0;
  }
  return json_parse(req->body, req->body_len, "request body", out, err);
}

static int parse_signal(const char *s, int *sig)
{
  static const struct {
    const char *name;
    int sig;
  } names[] = {{"KILL", SIGKILL}, {"TERM", SIGTERM}, {"INT", SIGINT}, {"HUP", SIGHUP},
               {"QUIT", SIGQUIT}, {"USR1", SIGUSR1}, {"USR2", SIGUSR2}, {"STOP", SIGSTOP},
               {"CONT", SIGCONT}};
  if (!s) {
    *sig = SIGKILL;
    return 0;
  }
  if (strncmp(s, "SIG", 3) == 0)
    s += 3;
  for (size_t i = 0; i < ARRAY_SIZE(names); i++)
    if (strcasecmp(s, names[i].name) == 0) {
      *sig = names[i].sig;
      return 0;
    }
  char *end;
  long v = strtol(s, &end, 10);
  if (*s && !*end && v > 0 && v < 65) {
    *sig = (int)v;
    return 0;
  }
  return -EINVAL;
}

static void containers(struct agent *a, const struct api_request *req, char **seg, size_t n,
                       struct api_response *resp)
{
  struct ferry_err err = {0};
  json_t *out = NULL;
  _cleanup_json_ json_t *body = NULL;
  const char *m = req->method;
  int r;
  if (n == 2 && strcmp(m, "GET") == 0) {
    reply(resp, 200, agent_ctr_list(a, qbool(req, "all")));
    return;
  }
  if (n == 2 && strcmp(m, "POST") == 0) {
    if ((r = parse_body(req, &body, &err)) == 0)
      r = agent_ctr_create(a, body, &out, &err);
    if (r < 0)
      reply_err(resp, &err);
    else
      reply(resp, 201, out);
    return;
  }
  if (n == 3 && strcmp(m, "POST") == 0 && strcmp(seg[2], "restore") == 0) {
    if ((r = parse_body(req, &body, &err)) == 0)
      r = agent_restore(a, body, &out, &err);
    reply_ok(resp, r, out, &err);
    return;
  }
  const char *name = seg[2];
  if (n == 3 && strcmp(m, "GET") == 0) {
    r = agent_ctr_inspect(a, name, &out, &err);
    reply_ok(resp, r, out, &err);
    return;
  }
  if (n == 3 && strcmp(m, "DELETE") == 0) {
    r = agent_ctr_remove(a, name, qbool(req, "force"), &err);
    reply_ok(resp, r, NULL, &err);
    return;
  }
  if (n == 4 && strcmp(m, "GET") == 0 && strcmp(seg[3], "logs") == 0) {
    char *text = NULL;
    size_t len = 0;
    const char *off = req->query(req->query_ctx, "offset");
    r = agent_ctr_logs(a, name, off ? strtoull(off, NULL, 10) : 0, &text, &len, &err);
    if (r < 0) {
      reply_err(resp, &err);
      return;
    }
    resp->status = 200;
    resp->raw = text;
    resp->raw_len = len;
    return;
  }
  if (n == 4 && strcmp(m, "POST") == 0) {
    const char *verb = seg[3];
    if (strcmp(verb, "start") == 0) {
      r = agent_ctr_start(a, name, &out, &err);
    } else if (strcmp(verb, "stop") == 0) {
      const char *t = req->query(req->query_ctx, "timeout");
      r = agent_ctr_stop(a, name, t ? atoi(t) : -1, &out, &err);
    } else if (strcmp(verb, "kill") == 0) {
      int sig;
      if (parse_signal(req->query(req->query_ctx, "signal"), &sig) < 0)
        r = FERRY_INVALID(&err, "signal \"%s\" is not known", req->query(req->query_ctx, "signal"));
      else
        r = agent_ctr_kill(a, name, sig, &out, &err);
    } else if (strcmp(verb, "exec") == 0) {
      if ((r = parse_body(req, &body, &err)) == 0)
        r = agent_ctr_exec(a, name, body, &out, &err);
    } else if (strcmp(verb, "checkpoint") == 0) {
      if ((r = parse_body(req, &body, &err)) == 0)
        r = agent_checkpoint(a, name, body, &out, &err);
    } else if (strcmp(verb, "migrate") == 0) {
      if ((r = parse_body(req, &body, &err)) == 0)
        r = migrate_start(a, name, body, &out, &err);
      if (r == 0) {
        /* ?wait=1: answer when it ends, with the report */
        if (qbool(req, "wait")) {
          json_t *rep = migrate_wait(a, json_str_or(out, "id", ""), 3600);
          json_decref(out);
          out = rep;
        }
        reply(resp, 202, out);
        return;
      }
    } else {
      r = FERRY_NOTFOUND(&err, "no such action \"%s\"", verb);
    }
    reply_ok(resp, r, out, &err);
    return;
  }
  FERRY_NOTFOUND(&err, "%s %s: no such endpoint", m, req->path);
  reply_err(resp, &err);
}

static void images(struct agent *a, const struct api_request *req, char **seg, size_t n,
                   struct api_response *resp)
{
  struct ferry_err err = {0};
  json_t *out = NULL;
  const char *m = req->method;
  int r;
  if (n == 2 && strcmp(m, "GET") == 0) {
    reply(resp, 200, agent_image_list(a));
    return;
  }
  if (n == 3 && strcmp(seg[2], "import") == 0 && (strcmp(m, "POST") == 0 || strcmp(m, "PUT") == 0)) {
    if (!req->upload_path) {
      FERRY_INTERNAL(&err, "image upload was not stored");
      reply_err(resp, &err);
      return;
    }
    const char *fname = req->query(req->query_ctx, "filename");
    r = agent_image_import(a, req->upload_path, req->query(req->query_ctx, "name"),
                           fname ? fname : "upload", &out, &err);
    if (r < 0)
      reply_err(resp, &err);
    else
      reply(resp, 201, out);
    return;
  }
  if (n == 3 && strcmp(m, "GET") == 0) {
    r = agent_image_inspect(a, seg[2], &out, &err);
    reply_ok(resp, r, out, &err);
    return;
  }
  if (n == 3 && strcmp(m, "DELETE") == 0) {
    r = agent_image_remove(a, seg[2], &err);
    reply_ok(resp, r, NULL, &err);
    return;
  }
  FERRY_NOTFOUND(&err, "%s %s: no such endpoint", m, req->path);
  reply_err(resp, &err);
}

static void volumes(struct agent *a, const struct api_request *req, char **seg, size_t n,
                    struct api_response *resp)
{
  struct ferry_err err = {0};
  json_t *out = NULL;
  _cleanup_json_ json_t *body = NULL;
  const char *m = req->method;
  int r;
  if (n == 2 && strcmp(m, "GET") == 0) {
    reply(resp, 200, agent_volume_list(a));
    return;
  }
  if (n == 2 && strcmp(m, "POST") == 0) {
    const char *name = NULL;
    if ((r = parse_body(req, &body, &err)) == 0 &&
        (r = json_get_str(body, "name", true, &name, &err)) == 0)
      r = agent_volume_create(a, name, &out, &err);
    if (r < 0)
      reply_err(resp, &err);
    else
      reply(resp, 201, out);
    return;
  }
  if (n == 3 && strcmp(m, "GET") == 0) {
    r = agent_volume_inspect(a, seg[2], &out, &err);
    reply_ok(resp, r, out, &err);
    return;
  }
  if (n == 3 && strcmp(m, "DELETE") == 0) {
    r = agent_volume_remove(a, seg[2], &err);
    reply_ok(resp, r, NULL, &err);
    return;
  }
  FERRY_NOTFOUND(&err, "%s %s: no such endpoint", m, req->path);
  reply_err(resp, &err);
}

static void migrations(struct agent *a, const struct api_request *req, char **seg, size_t n,
                       struct api_response *resp)
{
  struct ferry_err err = {0};
  json_t *out = NULL;
  _cleanup_json_ json_t *body = NULL;
  const char *m = req->method;
  int r;
  if (n == 2 && strcmp(m, "GET") == 0) {
    reply(resp, 200, migrate_list(a));
    return;
  }
  if (n == 3 && strcmp(seg[2], "incoming") == 0 && strcmp(m, "POST") == 0) {
    if ((r = parse_body(req, &body, &err)) == 0)
      r = incoming_offer(a, body, req->peer, &out, &err);
    if (r < 0)
      reply_err(resp, &err);
    else
      reply(resp, 201, out);
    return;
  }
  if (n == 3 && strcmp(m, "GET") == 0) {
    out = migrate_get(a, seg[2]);
    if (!out) {
      FERRY_NOTFOUND(&err, "migration %s: no such migration", seg[2]);
      reply_err(resp, &err);
    } else {
      reply(resp, 200, out);
    }
    return;
  }
  if (n >= 4 && strcmp(seg[2], "incoming") == 0) {
    const char *id = seg[3];
    if (n == 4 && strcmp(m, "GET") == 0) {
      r = incoming_get(a, id, &out, &err);
    } else if (n == 4 && strcmp(m, "DELETE") == 0) {
      r = incoming_abort(a, id, &out, &err);
    } else if (n == 5 && strcmp(m, "POST") == 0 && strcmp(seg[4], "page-server") == 0) {
      r = incoming_page_server(a, id, &out, &err);
    } else if (n == 5 && strcmp(m, "POST") == 0 && strcmp(seg[4], "restore") == 0) {
      if ((r = parse_body(req, &body, &err)) == 0)
        r = incoming_restore(a, id, body, &out, &err);
    } else if (n == 5 && strcmp(m, "POST") == 0 && strcmp(seg[4], "commit") == 0) {
      r = incoming_commit(a, id, &out, &err);
    } else if ((n == 5 || n == 6) && strcmp(m, "PUT") == 0 && req->upload_path) {
      static const struct {
        const char *seg, *kind;
        bool named;
      } parts[] = {{"layers", "layer", true},        {"volumes", "volume", true},
                   {"volume-delta", "volume-delta", true}, {"rootfs", "rootfs", false},
                   {"rootfs-delta", "rootfs-delta", false}, {"criu", "criu", false}};
      r = FERRY_NOTFOUND(&err, "%s %s: no such endpoint", m, req->path);
      for (size_t i = 0; i < ARRAY_SIZE(parts); i++) {
        if (strcmp(seg[4], parts[i].seg) == 0 && parts[i].named == (n == 6)) {
          r = incoming_put(a, id, parts[i].kind, n == 6 ? seg[5] : NULL, req->upload_path, &out, &err);
          break;
        }
      }
    } else {
      r = FERRY_NOTFOUND(&err, "%s %s: no such endpoint", m, req->path);
    }
    reply_ok(resp, r, out, &err);
    return;
  }
  FERRY_NOTFOUND(&err, "%s %s: no such endpoint", m, req->path);
  reply_err(resp, &err);
}

void api_dispatch(struct agent *a, const struct api_request *req, struct api_response *resp)
{
  char *seg[6] = {0};
  bool is_images = strncmp(req->path, "/v1/images/", 11) == 0;
  /* Image references contain '/' (registry/name:tag): the rest is one segment. */
  size_t n = split(req->path, seg, is_images ? 3 : 6);
  struct ferry_err err = {0};
  if (api_seed_dispatch(a, req, resp)) {
    /* answered in the seeds' own terms */
  } else if (strcmp(req->path, "/health") == 0 && strcmp(req->method, "GET") == 0) {
    reply(resp, 200, json_pack("{s:s}", "status", "UP"));
  } else if (n == 2 && strcmp(seg[0], "v1") == 0 && strcmp(seg[1], "info") == 0) {
    reply(resp, 200, agent_info(a));
  } else if (n >= 2 && strcmp(seg[0], "v1") == 0 && strcmp(seg[1], "containers") == 0) {
    containers(a, req, seg, n, resp);
  } else if (n >= 2 && strcmp(seg[0], "v1") == 0 && strcmp(seg[1], "images") == 0) {
    images(a, req, seg, n, resp);
  } else if (n >= 2 && strcmp(seg[0], "v1") == 0 && strcmp(seg[1], "volumes") == 0 && n <= 3) {
    volumes(a, req, seg, n, resp);
  } else if (n >= 2 && strcmp(seg[0], "v1") == 0 && strcmp(seg[1], "migrations") == 0) {
    migrations(a, req, seg, n, resp);
  } else {
    FERRY_NOTFOUND(&err, "%s %s: no such endpoint", req->method, req->path);
    reply_err(resp, &err);
  }
  for (size_t i = 0; i < n; i++)
    free(seg[i]);
}
