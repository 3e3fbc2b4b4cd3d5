/* The agent's /v1 routes: a table of method + pattern -> handler, each a
 * thin call into agent/ or migrate/. See docs/api.md. */
#include <signal.h>
#include <stdlib.h>
#include <string.h>

#include "api/api.h"
#include "migrate/migrate.h"
#include "util/cleanup.h"
#include "util/fs.h"
#include "util/json.h"

#define AGENT(ctx) ((struct agent *)(ctx))
/* The longest a stop waits for the container to end by itself (seconds). */
#define STOP_TIMEOUT_MAX 3600
#define H(name) static void name(void *ctx, const struct http_request *req, char **args, \
                                 struct http_response *resp)
/* A handler taking the JSON body: *body parsed, else the reply is the error. */
#define BODY_OR_REPLY(body, err)                                                                   \
  if (http_body(req, &(body), &(err)) < 0) {                                                       \
    http_reply_err(resp, &(err));                                                                  \
    return;                                                                                        \
  }

bool api_route_wants_upload(const char *method, const char *path)
{
  if (strcmp(method, "POST") != 0 && strcmp(method, "PUT") != 0)
    return false;
  if (strcmp(path, "/v1/images/import") == 0)
    return true;
  /* ferry cp into a container: PUT /v1/containers/NAME/archive */
  size_t n = strlen(path);
  if (strcmp(method, "PUT") == 0 && strncmp(path, "/v1/containers/", 15) == 0 && n > 23 &&
      strcmp(path + n - 8, "/archive") == 0)
    return true;
  /* the parts of an incoming migration: /v1/migrations/incoming/ID/PART[/NAME] */
  return strcmp(method, "PUT") == 0 && strncmp(path, "/v1/migrations/incoming/", 24) == 0;
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

H(health)
{
  (void)ctx, (void)req, (void)args;
  http_reply(resp, 200, json_pack("{s:s}", "status", "UP"));
}

/* Prometheus text; behind the token on TCP like every route but /health. */
H(metrics)
{
  (void)req, (void)args;
  size_t len = 0;
  char *text = agent_metrics_text(AGENT(ctx), &len);
  resp->status = 200;
  resp->raw = text;
  resp->raw_len = len;
}

H(info)
{
  (void)req, (void)args;
  http_reply(resp, 200, agent_info(AGENT(ctx)));
}

/* ---- containers ---- */
H(ctr_list)
{
  (void)args;
  http_reply(resp, 200, agent_ctr_list(AGENT(ctx), http_query_bool(req, "all")));
}

H(ctr_create)
{
  (void)args;
  struct ferry_err err = {0};
  _cleanup_json_ json_t *body = NULL;
  json_t *out = NULL;
  BODY_OR_REPLY(body, err);
  if (agent_ctr_create(AGENT(ctx), body, &out, &err) < 0)
    http_reply_err(resp, &err);
  else
    http_reply(resp, 201, out);
}

H(ctr_restore)
{
  (void)args;
  struct ferry_err err = {0};
  _cleanup_json_ json_t *body = NULL;
  json_t *out = NULL;
  BODY_OR_REPLY(body, err);
  int r = agent_restore(AGENT(ctx), body, &out, &err);
  http_reply_result(resp, r, out, &err);
}

H(ctr_inspect)
{
  (void)req;
  struct ferry_err err = {0};
  json_t *out = NULL;
  int r = agent_ctr_inspect(AGENT(ctx), args[0], &out, &err);
  http_reply_result(resp, r, out, &err);
}

H(ctr_remove)
{
  struct ferry_err err = {0};
  int r = agent_ctr_remove(AGENT(ctx), args[0], http_query_bool(req, "force"), &err);
  http_reply_result(resp, r, NULL, &err);
}

H(ctr_logs)
{
  struct ferry_err err = {0};
  char *text = NULL;
  size_t len = 0;
  const char *off = req->query(req->query_ctx, "offset");
  if (agent_ctr_logs(AGENT(ctx), args[0], off ? strtoull(off, NULL, 10) : 0, &text, &len, &err) < 0) {
    http_reply_err(resp, &err);
    return;
  }
  resp->status = 200;
  resp->raw = text;
  resp->raw_len = len;
}

H(ctr_start)
{
  (void)req;
  struct ferry_err err = {0};
  json_t *out = NULL;
  int r = agent_ctr_start(AGENT(ctx), args[0], &out, &err);
  http_reply_result(resp, r, out, &err);
}

H(ctr_stop)
{
  struct ferry_err err = {0};
  json_t *out = NULL;
  const char *t = req->query(req->query_ctx, "timeout");
  char *end = NULL;
  long v = t ? strtol(t, &end, 10) : -1;
  int r;
  if (t && (*end || end == t || v < 0 || v > STOP_TIMEOUT_MAX))
    r = FERRY_INVALID(&err, "timeout \"%.32s\": expected seconds 0..%d", t, STOP_TIMEOUT_MAX);
  else
    r = agent_ctr_stop(AGENT(ctx), args[0], (int)v, &out, &err);
  http_reply_result(resp, r, out, &err);
}

H(ctr_resume)
{
  (void)req;
  struct ferry_err err = {0};
  json_t *out = NULL;
  int r = agent_ctr_resume(AGENT(ctx), args[0], &out, &err);
  http_reply_result(resp, r, out, &err);
}

H(ctr_pause)
{
  (void)req;
  struct ferry_err err = {0};
  json_t *out = NULL;
  int r = agent_ctr_pause(AGENT(ctx), args[0], &out, &err);
  http_reply_result(resp, r, out, &err);
}

H(ctr_kill)
{
  struct ferry_err err = {0};
  json_t *out = NULL;
  int sig, r;
  const char *s = req->query(req->query_ctx, "signal");
  if (parse_signal(s, &sig) < 0)
    r = FERRY_INVALID(&err, "signal \"%s\" is not known", s);
  else
    r = agent_ctr_kill(AGENT(ctx), args[0], sig, &out, &err);
  http_reply_result(resp, r, out, &err);
}

H(ctr_top)
{
  (void)req;
  struct ferry_err err = {0};
  json_t *out = NULL;
  int r = agent_ctr_top(AGENT(ctx), args[0], &out, &err);
  http_reply_result(resp, r, out, &err);
}

H(ctr_stats_get)
{
  (void)req;
  struct ferry_err err = {0};
  json_t *out = NULL;
  int r = agent_ctr_stats(AGENT(ctx), args[0], &out, &err);
  http_reply_result(resp, r, out, &err);
}

H(ctr_exec)
{
  struct ferry_err err = {0};
  _cleanup_json_ json_t *body = NULL;
  json_t *out = NULL;
  BODY_OR_REPLY(body, err);
  if (json_is_true(json_object_get(body, "session"))) {
    /* interactive: a session to read, write and resize (agent_session.c) */
    int r = agent_session_exec(AGENT(ctx), args[0], body, &out, &err);
    http_reply_result(resp, r, out, &err);
    return;
  }
  if (json_is_true(json_object_get(body, "stream"))) {
    /* the output as it comes, in frames (agent.h), the exit code last */
    void *st = NULL;
    int r = agent_ctr_exec_stream(AGENT(ctx), args[0], body, &st, &err);
    if (r < 0) {
      http_reply_err(resp, &err);
      return;
    }
    resp->status = 200;
    resp->stream = agent_exec_stream_read;
    resp->stream_free = agent_exec_stream_free;
    resp->stream_cls = st;
    resp->stream_type = "application/vnd.ferry.exec-stream";
    return;
  }
  int r = agent_ctr_exec(AGENT(ctx), args[0], body, &out, &err);
  http_reply_result(resp, r, out, &err);
}

H(ctr_attach)
{
  struct ferry_err err = {0};
  _cleanup_json_ json_t *body = NULL;
  json_t *out = NULL;
  BODY_OR_REPLY(body, err);
  int r = agent_session_attach(AGENT(ctx), args[0], body, &out, &err);
  http_reply_result(resp, r, out, &err);
}

H(session_stream)
{
  (void)req;
  struct ferry_err err = {0};
  void *st = NULL;
  if (agent_session_stream(AGENT(ctx), args[0], &st, &err) < 0) {
    http_reply_err(resp, &err);
    return;
  }
  resp->status = 200;
  resp->stream = agent_session_read;
  resp->stream_free = agent_session_release;
  resp->stream_cls = st;
  resp->stream_type = "application/vnd.ferry.exec-stream";
}

H(session_resize)
{
  struct ferry_err err = {0};
  _cleanup_json_ json_t *body = NULL;
  BODY_OR_REPLY(body, err);
  int r = agent_session_resize(AGENT(ctx), args[0], body, &err);
  http_reply_result(resp, r, NULL, &err);
}

/* POST /v1/sessions/ID/stdin: the body is the session's input, as it comes. */
static int open_sink(void *ctx, const char *method, const char *path, struct http_sink *sink,
                     struct ferry_err *err)
{
  static const char pre[] = "/v1/sessions/", post[] = "/stdin";
  size_t n = strlen(path);
  if (strcmp(method, "POST") != 0 || strncmp(path, pre, sizeof pre - 1) != 0 ||
      n <= sizeof pre - 1 + sizeof post - 1 || strcmp(path + n - (sizeof post - 1), post) != 0)
    return 1;
  _cleanup_free_ char *id = strndup(path + sizeof pre - 1, n - (sizeof pre - 1) - (sizeof post - 1));
  if (!id || strchr(id, '/'))
    return 1;
  void *cls = NULL;
  int r = agent_session_input_open(AGENT(ctx), id, &cls, err);
  if (r < 0)
    return r;
  *sink = (struct http_sink){agent_session_input, agent_session_input_end, cls};
  return 0;
}

H(ctr_archive_get)
{
  struct ferry_err err = {0};
  const char *path = req->query(req->query_ctx, "path");
  if (http_query_bool(req, "stat")) {
    json_t *out = NULL;
    int r = agent_ctr_archive_stat(AGENT(ctx), args[0], path, &out, &err);
    http_reply_result(resp, r, out, &err);
    return;
  }
  void *st = NULL;
  if (agent_ctr_archive_get(AGENT(ctx), args[0], path, &st, &err) < 0) {
    http_reply_err(resp, &err);
    return;
  }
  resp->status = 200;
  resp->stream = agent_archive_read;
  resp->stream_free = agent_archive_free;
  resp->stream_cls = st;
  resp->stream_type = "application/x-tar";
}

H(ctr_archive_put)
{
  struct ferry_err err = {0};
  const char *path = req->query(req->query_ctx, "path");
  int r = req->upload_path ? agent_ctr_archive_put(AGENT(ctx), args[0], path, req->upload_path, &err)
                           : FERRY_INVALID(&err, "the body must be a tar archive");
  http_reply_result(resp, r, NULL, &err);
}

H(ctr_checkpoint)
{
  struct ferry_err err = {0};
  _cleanup_json_ json_t *body = NULL;
  json_t *out = NULL;
  BODY_OR_REPLY(body, err);
  int r = migrate_checkpoint(AGENT(ctx), args[0], body, &out, &err);
  http_reply_result(resp, r, out, &err);
}

H(ctr_migrate)
{
  struct ferry_err err = {0};
  _cleanup_json_ json_t *body = NULL;
  json_t *out = NULL;
  BODY_OR_REPLY(body, err);
  if (migrate_start(AGENT(ctx), args[0], body, &out, &err) < 0) {
    http_reply_err(resp, &err);
    return;
  }
  /* ?wait=1: answer when it ends, with the report */
  if (http_query_bool(req, "wait")) {
    json_t *rep = migrate_wait(AGENT(ctx), json_str_or(out, "id", ""), 3600);
    json_decref(out);
    out = rep;
  }
  http_reply(resp, 202, out);
}

/* ---- images ---- */
H(img_list)
{
  (void)req, (void)args;
  http_reply(resp, 200, agent_image_list(AGENT(ctx)));
}

H(img_import)
{
  (void)args;
  struct ferry_err err = {0};
  json_t *out = NULL;
  if (!req->upload_path) {
    FERRY_INTERNAL(&err, "image upload was not stored");
    http_reply_err(resp, &err);
    return;
  }
  const char *fname = req->query(req->query_ctx, "filename");
  if (agent_image_import(AGENT(ctx), req->upload_path, req->query(req->query_ctx, "name"),
                         fname ? fname : "upload", &out, &err) < 0)
    http_reply_err(resp, &err);
  else
    http_reply(resp, 201, out);
}

/* authfile and cert_dir name paths of the agent's host: a local caller's
 * own (the unix socket is root's), never a TCP caller's, who would make the
 * agent open any file of the host. False when the reply is the refusal. */
static bool registry_paths_ok(const struct http_request *req, json_t *body,
                              struct http_response *resp)
{
  if (!(req->peer && *req->peer))
    return true;
  const char *k = json_object_get(body, "authfile") ? "authfile"
                  : json_object_get(body, "cert_dir") ? "cert_dir" : NULL;
  if (!k)
    return true;
  struct ferry_err err = {0};
  ferry_err_set(&err, -EACCES, FERRY_E_FORBIDDEN,
                "\"%s\" names a path of the agent's host: only a local caller (the unix socket) "
                "may give one; over TCP give \"credentials\"", k);
  http_reply_err(resp, &err);
  return false;
}

H(img_pull)
{
  (void)args;
  struct ferry_err err = {0};
  _cleanup_json_ json_t *body = NULL;
  BODY_OR_REPLY(body, err);
  json_t *out = NULL;
  if (!registry_paths_ok(req, body, resp))
    return;
  if (agent_image_pull(AGENT(ctx), body, &out, &err) < 0)
    http_reply_err(resp, &err);
  else
    http_reply(resp, 201, out);
}

H(img_push)
{
  struct ferry_err err = {0};
  _cleanup_json_ json_t *body = NULL;
  BODY_OR_REPLY(body, err);
  json_t *out = NULL;
  if (!registry_paths_ok(req, body, resp))
    return;
  if (agent_image_push(AGENT(ctx), args[0], body, &out, &err) < 0)
    http_reply_err(resp, &err);
  else
    http_reply(resp, 200, out);
}

H(img_inspect)
{
  (void)req;
  struct ferry_err err = {0};
  json_t *out = NULL;
  int r = agent_image_inspect(AGENT(ctx), args[0], &out, &err);
  http_reply_result(resp, r, out, &err);
}

H(img_save)
{
  (void)args;
  struct ferry_err err = {0};
  _cleanup_json_ json_t *body = NULL;
  BODY_OR_REPLY(body, err);
  const char *image = json_str_or(body, "image", NULL);
  void *st = NULL;
  if (!image)
    ferry_err_set(&err, -EINVAL, FERRY_E_INVALID, "save: \"image\" is required");
  if (!image || agent_image_save(AGENT(ctx), image, &st, &err) < 0) {
    http_reply_err(resp, &err);
    return;
  }
  resp->status = 200;
  resp->stream = agent_image_save_read;
  resp->stream_free = agent_image_save_free;
  resp->stream_cls = st;
  resp->stream_type = "application/x-tar";
}

H(img_tag)
{
  (void)args;
  struct ferry_err err = {0};
  _cleanup_json_ json_t *body = NULL;
  json_t *out = NULL;
  BODY_OR_REPLY(body, err);
  const char *image = json_str_or(body, "image", NULL), *name = json_str_or(body, "name", NULL);
  if (!image || !name) {
    ferry_err_set(&err, -EINVAL, FERRY_E_INVALID, "tag: \"image\" and \"name\" are required");
    http_reply_err(resp, &err);
    return;
  }
  int r = agent_image_tag(AGENT(ctx), image, name, &out, &err);
  http_reply_result(resp, r, out, &err);
}

H(img_remove)
{
  (void)req;
  struct ferry_err err = {0};
  int r = agent_image_remove(AGENT(ctx), args[0], &err);
  http_reply_result(resp, r, NULL, &err);
}

/* ---- volumes ---- */
H(vol_list)
{
  (void)req, (void)args;
  http_reply(resp, 200, agent_volume_list(AGENT(ctx)));
}

H(vol_create)
{
  (void)args;
  struct ferry_err err = {0};
  _cleanup_json_ json_t *body = NULL;
  json_t *out = NULL;
  const char *name = NULL;
  BODY_OR_REPLY(body, err);
  if (json_get_str(body, "name", true, &name, &err) < 0 ||
      agent_volume_create(AGENT(ctx), name, &out, &err) < 0)
    http_reply_err(resp, &err);
  else
    http_reply(resp, 201, out);
}

H(vol_inspect)
{
  (void)req;
  struct ferry_err err = {0};
  json_t *out = NULL;
  int r = agent_volume_inspect(AGENT(ctx), args[0], &out, &err);
  http_reply_result(resp, r, out, &err);
}

H(vol_remove)
{
  (void)req;
  struct ferry_err err = {0};
  int r = agent_volume_remove(AGENT(ctx), args[0], &err);
  http_reply_result(resp, r, NULL, &err);
}

/* ---- migrations ---- */
H(mig_list)
{
  (void)req, (void)args;
  http_reply(resp, 200, migrate_list(AGENT(ctx)));
}

H(mig_get)
{
  (void)req;
  struct ferry_err err = {0};
  json_t *out = migrate_get(AGENT(ctx), args[0]);
  if (!out) {
    FERRY_NOTFOUND(&err, "migration %s: no such migration", args[0]);
    http_reply_err(resp, &err);
  } else {
    http_reply(resp, 200, out);
  }
}

H(in_offer)
{
  (void)args;
  struct ferry_err err = {0};
  _cleanup_json_ json_t *body = NULL;
  json_t *out = NULL;
  BODY_OR_REPLY(body, err);
  if (incoming_offer(AGENT(ctx), body, req->peer, &out, &err) < 0)
    http_reply_err(resp, &err);
  else
    http_reply(resp, 201, out);
}

H(in_get)
{
  (void)req;
  struct ferry_err err = {0};
  json_t *out = NULL;
  int r = incoming_get(AGENT(ctx), args[0], &out, &err);
  http_reply_result(resp, r, out, &err);
}

H(in_abort)
{
  (void)req;
  struct ferry_err err = {0};
  json_t *out = NULL;
  int r = incoming_abort(AGENT(ctx), args[0], &out, &err);
  http_reply_result(resp, r, out, &err);
}

H(in_page_server)
{
  struct ferry_err err = {0};
  _cleanup_json_ json_t *body = NULL;
  json_t *out = NULL;
  BODY_OR_REPLY(body, err);
  int r = incoming_page_server(AGENT(ctx), args[0], body, &out, &err);
  http_reply_result(resp, r, out, &err);
}

H(in_restore)
{
  struct ferry_err err = {0};
  _cleanup_json_ json_t *body = NULL;
  json_t *out = NULL;
  BODY_OR_REPLY(body, err);
  int r = incoming_restore(AGENT(ctx), args[0], body, &out, &err);
  http_reply_result(resp, r, out, &err);
}

H(in_prepare)
{
  struct ferry_err err = {0};
  _cleanup_json_ json_t *body = NULL;
  json_t *out = NULL;
  BODY_OR_REPLY(body, err);
  int r = incoming_prepare(AGENT(ctx), args[0], body, &out, &err);
  http_reply_result(resp, r, out, &err);
}

H(in_commit)
{
  (void)req;
  struct ferry_err err = {0};
  json_t *out = NULL;
  int r = incoming_commit(AGENT(ctx), args[0], &out, &err);
  http_reply_result(resp, r, out, &err);
}

/* PUT .../incoming/{id}/{part}[/{name}]: an upload of one part */
static void in_put(void *ctx, const struct http_request *req, const char *id, const char *part,
                   const char *name, struct http_response *resp)
{
  struct ferry_err err = {0};
  json_t *out = NULL;
  enum wire_part p = wire_part_parse(part);
  int r = FERRY_NOTFOUND(&err, "%s %s: no such endpoint", req->method, req->path);
  if (req->upload_path && p != WP_NONE && wire_part_named(p) == (name != NULL))
    r = incoming_put(AGENT(ctx), id, p, name, req->upload_path, &out, &err);
  http_reply_result(resp, r, out, &err);
}

H(in_put_part)
{
  in_put(ctx, req, args[0], args[1], NULL, resp);
}

H(in_put_named)
{
  in_put(ctx, req, args[0], args[1], args[2], resp);
}

static const struct http_route routes[] = {
    {"GET", "/health", health},
    {"GET", "/v1/info", info},
    {"GET", "/metrics", metrics},
    {"GET", "/v1/containers", ctr_list},
    {"POST", "/v1/containers", ctr_create},
    {"POST", "/v1/containers/restore", ctr_restore},
    {"GET", "/v1/containers/{}", ctr_inspect},
    {"DELETE", "/v1/containers/{}", ctr_remove},
    {"GET", "/v1/containers/{}/logs", ctr_logs},
    {"POST", "/v1/containers/{}/start", ctr_start},
    {"POST", "/v1/containers/{}/stop", ctr_stop},
    {"POST", "/v1/containers/{}/resume", ctr_resume},
    {"POST", "/v1/containers/{}/pause", ctr_pause},
    {"POST", "/v1/containers/{}/kill", ctr_kill},
    {"POST", "/v1/containers/{}/exec", ctr_exec},
    {"POST", "/v1/containers/{}/attach", ctr_attach},
    {"GET", "/v1/containers/{}/archive", ctr_archive_get},
    {"PUT", "/v1/containers/{}/archive", ctr_archive_put},
    {"GET", "/v1/sessions/{}", session_stream},
    {"POST", "/v1/sessions/{}/resize", session_resize},
    {"GET", "/v1/containers/{}/top", ctr_top},
    {"GET", "/v1/containers/{}/stats", ctr_stats_get},
    {"POST", "/v1/containers/{}/checkpoint", ctr_checkpoint},
    {"POST", "/v1/containers/{}/migrate", ctr_migrate},
    {"GET", "/v1/images", img_list},
    {"POST", "/v1/images/import", img_import},
    {"POST", "/v1/images/pull", img_pull},
    {"POST", "/v1/images/tag", img_tag},
    {"POST", "/v1/images/save", img_save},
    {"PUT", "/v1/images/import", img_import},
    /* image references contain '/' (registry/name:tag) */
    {"POST", "/v1/images/push/{*}", img_push},
    {"GET", "/v1/images/{*}", img_inspect},
    {"DELETE", "/v1/images/{*}", img_remove},
    {"GET", "/v1/volumes", vol_list},
    {"POST", "/v1/volumes", vol_create},
    {"GET", "/v1/volumes/{}", vol_inspect},
    {"DELETE", "/v1/volumes/{}", vol_remove},
    {"GET", "/v1/migrations", mig_list},
    {"POST", "/v1/migrations/incoming", in_offer},
    {"GET", "/v1/migrations/{}", mig_get},
    {"GET", "/v1/migrations/incoming/{}", in_get},
    {"DELETE", "/v1/migrations/incoming/{}", in_abort},
    {"POST", "/v1/migrations/incoming/{}/page-server", in_page_server},
    {"POST", "/v1/migrations/incoming/{}/prepare", in_prepare},
    {"POST", "/v1/migrations/incoming/{}/restore", in_restore},
    {"POST", "/v1/migrations/incoming/{}/commit", in_commit},
    {"PUT", "/v1/migrations/incoming/{}/{}", in_put_part},
    {"PUT", "/v1/migrations/incoming/{}/{}/{}", in_put_named},
};

void api_dispatch(void *agent, const struct http_request *req, struct http_response *resp)
{
  struct ferry_err err = {0};
  /* a coordinator's command: refused when its term is older than one seen */
  const char *term = req->header ? req->header(req->query_ctx, "X-Ferry-Term") : NULL;
  if (term && agent_term_enter(agent, term, &err) < 0) {
    http_reply_err(resp, &err);
    return;
  }
  if (!api_seed_dispatch(agent, req, resp) &&
      !http_route(routes, ARRAY_SIZE(routes), agent, req, resp)) {
    FERRY_NOTFOUND(&err, "%s %s: no such endpoint", req->method, req->path);
    http_reply_err(resp, &err);
  }
  if (term)
    agent_term_leave(agent);
}

int api_server_start(struct agent *a, const struct http_server_options *o,
                     struct http_server **out, struct ferry_err *err)
{
  struct http_server_options so = *o;
  so.dispatch = api_dispatch;
  so.wants_upload = api_route_wants_upload;
  so.open_sink = open_sink;
  so.ctx = a;
  so.upload_dir = agent_upload_dir(a);
  return http_server_start(&so, out, err);
}
