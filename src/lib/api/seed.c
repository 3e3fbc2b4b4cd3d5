/* The first seed's satellite-server API, beside /v1, so that its
 * ground-station server and scripts drive ferryd unchanged. Replies are
 * {"status": "success"|"error", "message", ...}. See docs/api.md.
 *
 * The pull form of a migration runs the same engine as `ferry migrate`:
 *   POST /start_migration {"server_ip", "container_name"}   (sent to the target)
 *     -> the target asks the source: GET http://SERVER_IP:PORT/containers/NAME
 *     -> the source pushes NAME to the target and answers with the report. */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "api/api.h"
#include "migrate/migrate.h"
#include "util/cleanup.h"
#include "util/fs.h"
#include "util/json.h"
#include "util/redisfill.h"

static void ok(struct http_response *resp, json_t *extra, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void ok(struct http_response *resp, json_t *extra, const char *fmt, ...)
{
  va_list ap;
  va_start(ap, fmt);
  char *msg = NULL;
  if (vasprintf(&msg, fmt, ap) < 0)
    abort();
  va_end(ap);
  json_t *j = extra ? extra : json_object();
  json_object_set_new(j, "status", json_string("success"));
  json_object_set_new(j, "message", json_string(msg));
  free(msg);
  resp->status = 200;
  resp->json = j;
}

/* The port of our own TCP API ("ADDR:PORT" of the connection), else 8000 as in the seed. */
/* This agent's API port: the one the request came in on, else (the unix
 * socket) the one it listens on, else the seeds' 8000. */
static const char *own_port(struct agent *a, const struct http_request *req)
{
  const char *c = req->local ? strrchr(req->local, ':') : NULL;
  return c ? c + 1 : agent_listen_port(a)[0] ? agent_listen_port(a) : "8000";
}

/* A peer's URL as the seeds give it: IP, NAME, IP:PORT or
 * http(s)://HOST:PORT (tcp:// too), no path. */
struct peer_url {
  char scheme[8]; /* "tcp" or "https" */
  char host[254];
  char port[8];
  char addr[16];  /* the address checked, the one to connect to */
};

static int peer_url_parse(const char *what, const char *server, const char *def_port,
                          struct peer_url *u, struct ferry_err *err)
{
  const char *rest = server, *sep = strstr(server, "://");
  snprintf(u->scheme, sizeof u->scheme, "tcp");
  if (sep) {
    size_t n = (size_t)(sep - server);
    if (n >= sizeof u->scheme)
      return FERRY_INVALID(err, "%s \"%.64s\": expected HOST, HOST:PORT or http(s)://HOST:PORT",
                           what, server);
    char sch[8];
    memcpy(sch, server, n);
    sch[n] = '\0';
    if (strcmp(sch, "tcp") != 0 && strcmp(sch, "http") != 0 && strcmp(sch, "https") != 0)
      return FERRY_INVALID(err, "%s \"%.64s\": only http, https or tcp", what, server);
    snprintf(u->scheme, sizeof u->scheme, "%s", strcmp(sch, "https") == 0 ? "https" : "tcp");
    rest = sep + 3;
  }
  size_t hl = strcspn(rest, ":/?#@");
  if (hl == 0 || hl >= sizeof u->host)
    return FERRY_INVALID(err, "%s \"%.64s\": expected HOST, HOST:PORT or http(s)://HOST:PORT",
                         what, server);
  memcpy(u->host, rest, hl);
  u->host[hl] = '\0';
  uint32_t ip;
  if (ip_parse(u->host, &ip) < 0 && !host_name_valid(u->host))
    return FERRY_INVALID(err, "%s \"%.64s\": \"%s\" is neither an IPv4 address nor a host name",
                         what, server, u->host);
  snprintf(u->port, sizeof u->port, "%s", def_port);
  const char *tail = rest + hl;
  if (*tail == ':') {
    size_t pl = strspn(tail + 1, "0123456789");
    long pv = pl && pl < 6 ? strtol(tail + 1, NULL, 10) : 0;
    if (pv < 1 || pv > 65535)
      return FERRY_INVALID(err, "%s \"%.64s\": bad port", what, server);
    snprintf(u->port, sizeof u->port, "%ld", pv);
    tail += 1 + pl;
  }
  if (*tail && strcmp(tail, "/") != 0)
    return FERRY_INVALID(err, "%s \"%.64s\": no path, query or user allowed", what, server);
  return 0;
}

/* Source side: migrate NAME to the agent that asked, and answer when done. */
static void pull_source(struct agent *a, const struct http_request *req, const char *name,
                        struct http_response *resp)
{
  struct ferry_err err = {0};
  const char *to = req->query(req->query_ctx, "to");
  _cleanup_free_ char *url = NULL;
  if (!to && !(req->peer && *req->peer)) {
    FERRY_INVALID(&err, "a pull over the unix socket needs ?to=URL");
    http_reply_err(resp, &err);
    return;
  }
  /* Where the container (and the token) goes is a peer like any other:
   * the allow-list applies to ?to= and to the caller's own address alike. */
  struct peer_url pu;
  if (peer_url_parse("to", to ? to : req->peer, own_port(a, req), &pu, &err) < 0 ||
      agent_peer_check(a, pu.host, pu.addr, sizeof pu.addr, &err) < 0) {
    ferry_err_wrap(&err, "pull of %s", name);
    http_reply_err(resp, &err);
    return;
  }
  /* to the address that was checked; over TLS by the name, which the
   * certificate is checked against */
  url = xasprintf("%s://%s:%s", pu.scheme, strcmp(pu.scheme, "https") == 0 ? pu.host : pu.addr,
                  pu.port);
  _cleanup_json_ json_t *body = json_pack("{s:s}", "to", url);
  json_t *started = NULL;
  if (migrate_start(a, name, body, &started, &err) < 0) {
    http_reply_err(resp, &err);
    return;
  }
  json_t *rep = migrate_wait(a, json_str_or(started, "id", ""), 3600);
  json_decref(started);
  if (!rep || strcmp(json_str_or(rep, "status", ""), "succeeded") != 0) {
    /* the failure's class, as the migration recorded it (a name taken on
     * the target is a conflict, not ferry's fault) */
    ferry_err_set(&err, -EIO, ferry_errclass_parse(json_str_or(rep, "error_class", NULL)),
                  "migration of %s to %s failed: %s", name, url, json_str_or(rep, "error", "unknown"));
    json_decref(rep);
    http_reply_err(resp, &err);
    return;
  }
  ok(resp, json_pack("{s:o}", "report", rep), "container %s migrated", name);
}

/* podman's --print-stats figures, in microseconds as podman prints them,
 * filled from ferry's report: the seed's tools read these. */
static json_t *podman_stats(json_t *rep, bool restore)
{
  json_t *ph = json_object_get(rep, "phases");
  json_t *tgt = json_object_get(rep, "target");
  json_t *cs = json_object_get(restore ? tgt : rep, "criu");
#define MS(o, k) ((json_int_t)json_integer_value(json_object_get(o, k)) * 1000)
#define US(k) json_integer_value(json_object_get(cs, k))
  json_t *one = json_pack("{s:s, s:s}", "Id", json_str_or(tgt, "container_id", ""), "Name",
                          json_str_or(rep, "container", ""));
  if (!restore) {
    json_object_set_new(one, "runtime_checkpoint_duration", json_integer(MS(ph, mig_phase_name(PH_DUMP))));
    json_object_set_new(one, "criu_statistics",
                        json_pack("{s:I, s:I, s:I, s:I, s:I, s:I}", "freezing_time",
                                  US("freezing_time_us"), "frozen_time", US("frozen_time_us"),
                                  "memdump_time", US("memdump_time_us"), "memwrite_time",
                                  US("memwrite_time_us"), "pages_scanned", US("pages_scanned"),
                                  "pages_written", US("pages_written")));
    return json_pack("{s:I, s:[o]}", "podman_checkpoint_duration",
                     MS(ph, mig_phase_name(PH_FREEZE)) + MS(ph, mig_phase_name(PH_DUMP)) + MS(ph, mig_phase_name(PH_TRANSFER)), "container_statistics",
                     one);
  }
  json_object_set_new(one, "runtime_restore_duration", json_integer(MS(tgt, "restore_ms")));
  json_object_set_new(one, "criu_statistics",
                      json_pack("{s:I, s:I, s:I}", "forking_time", US("forking_time_us"),
                                "pages_restored", US("pages_restored"), "restore_time",
                                US("restore_time_us")));
  return json_pack("{s:I, s:[o]}", "podman_restore_duration", MS(ph, mig_phase_name(PH_RESTORE)),
                   "container_statistics", one);
#undef MS
#undef US
}

/* Where a pull may go (docs/security.md): http(s) or tcp to a host (an
 * IPv4 address or a host name, resolved once by the host's resolver) whose
 * every address is an allowed peer (agent_peer_check), at the seed's port
 * 8000 or this agent's own port. Nothing is sent, the token least of all,
 * to anything else; the connection goes to the address that was checked. */
static int pull_url(struct agent *a, const struct http_request *req, const char *server,
                    struct peer_url *u, struct ferry_err *err)
{
  int r = peer_url_parse("server_ip", server, own_port(a, req), u, err);
  if (r < 0)
    return r;
  if (strcmp(u->port, "8000") != 0 && strcmp(u->port, own_port(a, req)) != 0)
    return ferry_err_set(err, -EACCES, FERRY_E_FORBIDDEN,
                         "server_ip %s: port %s is not an agent's port (8000 or %s)", server,
                         u->port, own_port(a, req));
  if ((r = agent_peer_check(a, u->host, u->addr, sizeof u->addr, err)) < 0)
    return ferry_err_wrap(err, "server_ip");
  return 0;
}

/* Target side: ask the source to push NAME here. */
static void start_migration(struct agent *a, const struct http_request *req, json_t *body,
                            struct http_response *resp)
{
  struct ferry_err err = {0};
  const char *server, *name;
  if (json_get_str(body, "server_ip", true, &server, &err) < 0 ||
      json_get_str(body, "container_name", true, &name, &err) < 0 ||
      validate_name("container", name, &err) < 0) {
    http_reply_err(resp, &err);
    return;
  }
  /* A name in use here would make the source freeze its container for
   * nothing: refuse before asking it. */
  if (agent_name_free(a, name, &err) < 0) {
    http_reply_err(resp, &err);
    return;
  }
  struct peer_url pu;
  int pr = pull_url(a, req, server, &pu, &err);
  if (pr < 0) {
    http_reply_err(resp, &err);
    if (pr == -EHOSTUNREACH)
      resp->status = 502; /* the name of the source does not resolve */
    return;
  }
  _cleanup_free_ char *src = xasprintf("%s://%s:%s", pu.scheme, pu.host, pu.port);
  _cleanup_free_ char *me = NULL;
  if (req->local && *req->local)
    me = xasprintf("tcp://%s", req->local);
  struct http_client *c = NULL;
  if (http_client_new(src, &c, &err) < 0) {
    http_reply_err(resp, &err);
    return;
  }
  http_client_pin(c, pu.host, pu.port, pu.addr);
  http_client_set_token(c, agent_token(a));
  http_client_set_ca(c, agent_tls_ca(a));
  /* a source that never answers is given up (504): after "timeout"
   * seconds when the body says so, else the agent's migration timeout */
  json_t *tj = json_object_get(body, "timeout");
  long limit = json_is_integer(tj) && json_integer_value(tj) > 0 && json_integer_value(tj) <= 86400
                   ? (long)json_integer_value(tj) : agent_migration_timeout_s(a);
  http_client_set_timeout(c, limit);
  _cleanup_free_ char *en = http_escape(name);
  _cleanup_free_ char *eme = me ? http_escape(me) : NULL;
  _cleanup_free_ char *url = eme ? xasprintf("/containers/%s?to=%s", en, eme) : xasprintf("/containers/%s", en);
  _cleanup_json_ json_t *out = NULL;
  int r = http_call(c, "GET", url, NULL, &out, &err);
  http_client_free(c);
  if (r < 0) {
    /* the source itself unreachable (502) or silent (504); otherwise its
     * own answer's class: 404 for a container it does not have */
    bool transport = err.klass == FERRY_E_UNAVAILABLE &&
                     (r == -ETIMEDOUT || r == -ECONNREFUSED || r == -EFBIG);
    ferry_err_wrap(&err, "pull %s from %s", name, src);
    http_reply_err(resp, &err);
    if (transport)
      resp->status = r == -ETIMEDOUT ? 504 : 502;
    return;
  }
  json_t *rep = json_object_get(out, "report");
  json_t *ph = json_object_get(rep, "phases");
  json_int_t ckpt_us = (json_integer_value(json_object_get(ph, mig_phase_name(PH_FREEZE))) +
                        json_integer_value(json_object_get(ph, mig_phase_name(PH_DUMP))) +
                        json_integer_value(json_object_get(ph, mig_phase_name(PH_TRANSFER)))) * 1000;
  json_int_t rest_us = json_integer_value(json_object_get(ph, mig_phase_name(PH_RESTORE))) * 1000;
  ok(resp,
     json_pack("{s:I, s:I, s:o, s:o, s:O}", "checkpoint_duration", ckpt_us, "restore_duration",
               rest_us, "checkpoint_stats", podman_stats(rep, false), "restore_stats",
               podman_stats(rep, true), "report", rep ? rep : json_null()),
     "container %s migrated here", name);
}

/* POST /generate_data {"data_size_mb", "bytes_per_key"[, "container_name"]} */
static void generate_data(struct agent *a, json_t *body, struct http_response *resp)
{
  struct ferry_err err = {0};
  json_t *mb = json_object_get(body, "data_size_mb"), *bpk = json_object_get(body, "bytes_per_key");
  const char *name = "redis";
  if (json_get_str(body, "container_name", false, &name, &err) < 0) {
    http_reply_err(resp, &err);
    return;
  }
  if (!name)
    name = "redis";
  if (!json_is_integer(mb) || json_integer_value(mb) < 0 || json_integer_value(mb) > 1000000) {
    FERRY_INVALID(&err, "\"data_size_mb\" must be an integer 0..1000000");
    http_reply_err(resp, &err);
    return;
  }
  if (!json_is_integer(bpk) || json_integer_value(bpk) < 1 ||
      json_integer_value(bpk) > REDIS_FILL_VALUE_MAX) {
    FERRY_INVALID(&err, "\"bytes_per_key\" must be an integer 1..%u", REDIS_FILL_VALUE_MAX);
    http_reply_err(resp, &err);
    return;
  }
  json_t *out = NULL;
  if (agent_seed_fill(a, name, (uint64_t)json_integer_value(mb) * 1000 * 1000,
                      (size_t)json_integer_value(bpk), &out, &err) < 0) {
    http_reply_err(resp, &err);
    return;
  }
  ok(resp, out, "%lld MB of data in %s", json_integer_value(mb), name);
}

static void redis_exec(struct agent *a, char *const *cmd, const char *key,
                       struct http_response *resp)
{
  struct ferry_err err = {0};
  _cleanup_json_ json_t *req = json_pack("{s:o, s:i}", "cmd", json_strv(cmd), "timeout", 30);
  _cleanup_json_ json_t *out = NULL;
  if (agent_ctr_exec(a, "redis", req, &out, &err) < 0) {
    http_reply_err(resp, &err);
    return;
  }
  if (json_integer_value(json_object_get(out, "exit_code")) != 0) {
    FERRY_INTERNAL(&err, "redis-cli in container redis: %s", json_str_or(out, "stderr", ""));
    http_reply_err(resp, &err);
    return;
  }
  _cleanup_free_ char *value = xstrdup(json_str_or(out, "stdout", ""));
  value[strcspn(value, "\n")] = '\0';
  ok(resp, json_pack("{s:s, s:s}", "key", key, "value", value), "redis %s", cmd[1]);
}

/* The seed's POST bodies are JSON objects ({} when empty); false when the
 * reply is already the error. */
static bool seed_body(const struct http_request *req, struct http_response *resp, json_t **body)
{
  struct ferry_err err = {0};
  if (json_parse(req->body_len ? req->body : "{}", req->body_len ? req->body_len : 2,
                 "request body", body, &err) < 0 || !json_is_object(*body)) {
    if (!err.msg[0])
      FERRY_INVALID(&err, "request body must be a JSON object");
    http_reply_err(resp, &err);
    return false;
  }
  return true;
}

#define AGENT(ctx) ((struct agent *)(ctx))
#define H(name) static void name(void *ctx, const struct http_request *req, char **args, \
                                 struct http_response *resp)

H(h_start_migration)
{
  (void)args;
  _cleanup_json_ json_t *body = NULL;
  if (seed_body(req, resp, &body))
    start_migration(AGENT(ctx), req, body, resp);
}

H(h_pull)
{
  pull_source(AGENT(ctx), req, args[0], resp);
}

H(h_start_container)
{
  (void)args;
  struct ferry_err err = {0};
  _cleanup_json_ json_t *body = NULL;
  const char *name;
  json_t *out = NULL;
  uint64_t t0 = now_mono_ms();
  if (!seed_body(req, resp, &body))
    return;
  if (json_get_str(body, "container_name", true, &name, &err) < 0 ||
      agent_seed_run(AGENT(ctx), name, &out, &err) < 0) {
    http_reply_err(resp, &err);
    return;
  }
  json_decref(out);
  ok(resp, json_pack("{s:I}", "duration_ms", (json_int_t)(now_mono_ms() - t0)), "container %s started",
     name);
}

H(h_generate_data)
{
  (void)args;
  _cleanup_json_ json_t *body = NULL;
  if (seed_body(req, resp, &body))
    generate_data(AGENT(ctx), body, resp);
}

H(h_stop)
{
  (void)req;
  struct ferry_err err = {0};
  json_t *out = NULL;
  if (agent_ctr_stop(AGENT(ctx), args[0], -1, &out, &err) < 0) {
    http_reply_err(resp, &err);
    return;
  }
  json_decref(out);
  ok(resp, NULL, "container %s stopped", args[0]);
}

H(h_remove)
{
  (void)req;
  struct ferry_err err = {0};
  if (agent_ctr_remove(AGENT(ctx), args[0], true, &err) < 0)
    http_reply_err(resp, &err);
  else
    ok(resp, NULL, "container %s removed", args[0]);
}

H(h_remove_volume)
{
  (void)req;
  struct ferry_err err = {0};
  if (agent_volume_remove(AGENT(ctx), args[0], &err) < 0)
    http_reply_err(resp, &err);
  else
    ok(resp, NULL, "volume %s removed", args[0]);
}

H(h_set_redis)
{
  (void)args;
  struct ferry_err err = {0};
  _cleanup_json_ json_t *body = NULL;
  const char *key, *value;
  if (!seed_body(req, resp, &body))
    return;
  if (json_get_str(body, "key", true, &key, &err) < 0 ||
      json_get_str(body, "value", true, &value, &err) < 0) {
    http_reply_err(resp, &err);
    return;
  }
  char *cmd[] = {"redis-cli", "set", (char *)key, (char *)value, NULL};
  redis_exec(AGENT(ctx), cmd, key, resp);
}

H(h_get_redis)
{
  (void)req;
  char *cmd[] = {"redis-cli", "get", args[0], NULL};
  redis_exec(AGENT(ctx), cmd, args[0], resp);
}

static const struct http_route seed_routes[] = {
    {"POST", "/start_migration", h_start_migration},
    {"GET", "/containers/{}", h_pull},
    {"GET", "/container/{}", h_pull},
    {"POST", "/start_container", h_start_container},
    {"POST", "/generate_data", h_generate_data},
    {"POST", "/stop_container/{}", h_stop},
    {"POST", "/remove_container/{}", h_remove},
    {"POST", "/remove_volume/{}", h_remove_volume},
    {"POST", "/set_redis", h_set_redis},
    {"GET", "/get_redis/{}", h_get_redis},
};

bool api_seed_dispatch(struct agent *a, const struct http_request *req, struct http_response *resp)
{
  return http_route(seed_routes, ARRAY_SIZE(seed_routes), a, req, resp);
}
