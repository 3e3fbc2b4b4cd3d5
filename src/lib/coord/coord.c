#include "coord/coord.h"

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "net/net.h"
#include "runtime/runtime.h"
#include "util/cleanup.h"
#include "util/fault.h"
#include "util/fs.h"
#include "util/json.h"
#include "util/log.h"
#include "util/prom.h"

/* The phases in the order they happen (docs/migration.md), then the outcome. */
static const char *const phase_order[] = {"requested", "started", "offer", "precopy", "freeze",
                                          "dump", "transfer", "restore", "commit", "serve", "aborted",
                                          "done", "succeeded", "failed", "unknown"};

static int phase_seq(const char *phase)
{
  for (size_t i = 0; i < sizeof phase_order / sizeof phase_order[0]; i++)
    if (strcmp(phase_order[i], phase) == 0)
      return (int)i;
  return 99;
}

static void now_str(char *buf, size_t len) { format_time(now_wall_ms(), buf, len); }

/* ---------------------------------------------------------------- nodes */

/* A node's secret: given to it at its first registration, asked of every
 * later registration and heartbeat of that name. Stored as its SHA-256. */
static void secret_hash(const char *secret, char out[65])
{
  unsigned char md[EVP_MAX_MD_SIZE];
  unsigned int n = 0;
  EVP_Digest(secret, strlen(secret), md, &n, EVP_sha256(), NULL);
  for (unsigned i = 0; i < 32 && i < n; i++)
    snprintf(out + 2 * i, 3, "%02x", md[i]);
  out[64] = '\0';
}

static int secret_refused(const char *name, const char *secret, struct ferry_err *err)
{
  return ferry_err_set(err, -EACCES, FERRY_E_FORBIDDEN,
                       "node \"%s\" is bound to the secret it was given when it registered, and "
                       "this request %s (a node that lost its secret: ferry-coord node forget %s)",
                       name, secret && *secret ? "carries another" : "does not carry it", name);
}

/* 1: the name is free or unbound (*bound false); 0: bound and secret
 * matches; <0: 403 (or the store's error). */
static int node_secret_check(struct coord *c, const char *name, const char *secret, bool *bound,
                             json_t **rec, struct ferry_err *err)
{
  _cleanup_free_ char *have = NULL;
  int r = c->store->ops->node_secret(c->store, name, &have, rec, err);
  if (r < 0 && r != -ENOENT)
    return r;
  *bound = have && strlen(have) == 64;
  if (!*bound)
    return 1;
  char got[65];
  if (secret && *secret) {
    secret_hash(secret, got);
    if (CRYPTO_memcmp(got, have, 64) == 0)
      return 0;
  }
  return secret_refused(name, secret, err);
}

static void node_status(struct coord *c, json_t *n)
{
  int64_t seen = json_integer_value(json_object_get(n, "last_seen_ms"));
  int64_t age = (int64_t)now_wall_ms() - seen;
  bool up = age <= (int64_t)c->heartbeat_timeout_s * 1000;
  json_object_set_new(n, "status", json_string(up ? "up" : "down"));
  json_object_set_new(n, "last_seen_s_ago", json_integer(age / 1000));
  char ts[40];
  format_time((uint64_t)seen, ts, sizeof ts);
  json_object_set_new(n, "last_seen", json_string(ts));
  json_object_del(n, "last_seen_ms");
}

/* a and b have the same value at key (absent is null) */
static bool field_same(json_t *a, json_t *b, const char *key)
{
  json_t *x = json_object_get(a, key), *y = json_object_get(b, key);
  return json_equal(x ? x : json_null(), y ? y : json_null());
}

int coord_node_get(struct coord *c, const char *name, json_t **out, struct ferry_err *err)
{
  json_t *n = NULL;
  int r = c->store->ops->node_get(c->store, name, &n, err);
  if (r < 0)
    return r;
  node_status(c, n);
  *out = n;
  return 0;
}

json_t *coord_node_list(struct coord *c)
{
  struct ferry_err err = {0};
  json_t *rows = c->store->ops->node_list(c->store, &err);
  if (!rows) {
    log_warn("coord", "nodes: %s", err.msg);
    rows = json_array();
  }
  size_t i;
  json_t *n;
  json_array_foreach(rows, i, n) node_status(c, n);
  return rows;
}

/* A node's URL: tcp://, http:// or https://, then an IPv4 address or a
 * host name, an optional port 1..65535 (required for tcp://), and nothing
 * else (no user, path or query). */
static int node_url_check(const char *name, const char *url, struct ferry_err *err)
{
  const char *sep = strstr(url, "://");
  size_t sl = sep ? (size_t)(sep - url) : 0;
  bool tcp = sl == 3 && strncmp(url, "tcp", 3) == 0;
  if (!sep || !(tcp || (sl == 4 && strncmp(url, "http", 4) == 0) ||
                (sl == 5 && strncmp(url, "https", 5) == 0)))
    return FERRY_INVALID(err, "node \"%s\": url \"%.200s\" must be tcp://, http:// or https://",
                         name, url);
  const char *h = sep + 3;
  size_t hl = strcspn(h, ":/?#@");
  char host[254];
  uint32_t ip;
  if (hl == 0 || hl >= sizeof host)
    return FERRY_INVALID(err, "node \"%s\": url \"%.200s\" has no host", name, url);
  memcpy(host, h, hl);
  host[hl] = '\0';
  if (ip_parse(host, &ip) < 0 && !host_name_valid(host))
    return FERRY_INVALID(err, "node \"%s\": url \"%.200s\": \"%s\" is neither an IPv4 address "
                              "nor a host name", name, url, host);
  const char *t = h + hl;
  if (*t == ':') {
    size_t pl = strspn(t + 1, "0123456789");
    long pv = pl > 0 && pl < 6 ? strtol(t + 1, NULL, 10) : 0;
    if (pv < 1 || pv > 65535)
      return FERRY_INVALID(err, "node \"%s\": url \"%.200s\": the port must be 1..65535", name, url);
    t += 1 + pl;
  } else if (tcp) {
    return FERRY_INVALID(err, "node \"%s\": url \"%.200s\": tcp:// needs a port", name, url);
  }
  if (*t && strcmp(t, "/") != 0)
    return FERRY_INVALID(err, "node \"%s\": url \"%.200s\": no user, path or query allowed", name,
                         url);
  return 0;
}

/* The underlay addresses of the other up nodes of overlay vni: the members
 * an agent's overlay forwards to and accepts (a node that stops sending
 * heartbeats leaves at its peers' next ones). */
static json_t *overlay_members(struct coord *c, const char *name, const char *vni)
{
  int64_t since = (int64_t)now_wall_ms() - (int64_t)c->heartbeat_timeout_s * 1000;
  long long want = strtoll(vni, NULL, 10);
  struct ferry_err err = {0};
  _cleanup_json_ json_t *rows = c->store->ops->node_list(c->store, &err);
  json_t *out = json_array();
  size_t i;
  json_t *r;
  json_array_foreach(rows, i, r)
  {
    const char *u = json_str_or(r, "underlay", NULL);
    if (!u || json_integer_value(json_object_get(r, "overlay")) != want ||
        strcmp(json_str_or(r, "name", ""), name) == 0 ||
        json_integer_value(json_object_get(r, "last_seen_ms")) < since)
      continue;
    bool dup = false;
    size_t k;
    json_t *e;
    json_array_foreach(out, k, e) dup = dup || strcmp(json_string_value(e), u) == 0;
    if (!dup)
      json_array_append_new(out, json_string(u));
  }
  /* in address order, as before */
  size_t n = json_array_size(out);
  for (size_t x = 1; x < n; x++)
    for (size_t y = x; y > 0; y--) {
      uint32_t a1 = 0, a2 = 0;
      ip_parse(json_string_value(json_array_get(out, y - 1)), &a1);
      ip_parse(json_string_value(json_array_get(out, y)), &a2);
      if (a1 <= a2)
        break;
      json_t *t = json_incref(json_array_get(out, y));
      json_array_set(out, y, json_array_get(out, y - 1));
      json_array_set_new(out, y - 1, t);
    }
  return out;
}

int coord_node_register(struct coord *c, json_t *req, json_t **out, struct ferry_err *err)
{
  if (!json_is_object(req))
    return FERRY_INVALID(err, "request body must be a JSON object");
  const char *name = json_str_or(req, "name", NULL);
  if (!name)
    name = json_str_or(req, "hostname", json_str_or(req, "node", NULL));
  const char *url = json_str_or(req, "url", NULL);
  _cleanup_free_ char *built = NULL;
  if (!url) {
    const char *ip = json_str_or(req, "ip", json_str_or(req, "address", NULL));
    json_t *port = json_object_get(req, "port");
    if (port && (!json_is_integer(port) || json_integer_value(port) < 1 ||
                 json_integer_value(port) > 65535))
      return FERRY_INVALID(err, "register: \"port\" must be an integer 1..65535");
    if (ip)
      url = built = xasprintf("tcp://%.300s:%lld", ip, port ? (long long)json_integer_value(port) : 8000LL);
  }
  int r;
  if (!name || !url)
    return FERRY_INVALID(err, "register: \"name\" and \"url\" (or \"ip\" and \"port\") are required");
  if ((r = validate_name("node", name, err)) < 0)
    return r;
  if ((r = node_url_check(name, url, err)) < 0)
    return r;
  const char *sat = json_str_or(req, "satellite", NULL);
  const char *secret = json_str_or(req, "node_secret", NULL);
  /* a member of an overlay: its underlay address and the overlay's VNI */
  const char *underlay = json_str_or(req, "underlay", NULL);
  json_t *ovj = json_object_get(req, "overlay");
  char ovs[16] = "";
  uint32_t uip;
  if ((underlay && (ip_parse(underlay, &uip) < 0 || (uip >> 24) == 0 || (uip >> 24) == 127 ||
                    (uip >> 24) >= 224)) ||
      (json_object_get(req, "underlay") && !underlay))
    return FERRY_INVALID(err, "register: \"underlay\" must be a unicast IPv4 address");
  if (ovj && !json_is_null(ovj)) {
    if (!json_is_integer(ovj) || json_integer_value(ovj) < 1 || json_integer_value(ovj) > 16777215)
      return FERRY_INVALID(err, "register: \"overlay\" must be a VNI, 1..16777215");
    if (!underlay)
      return FERRY_INVALID(err, "register: \"overlay\" needs \"underlay\"");
    snprintf(ovs, sizeof ovs, "%lld", (long long)json_integer_value(ovj));
  }
  char ts[40];
  now_str(ts, sizeof ts);
  /* The first registration of a name binds it to a new secret, returned
   * once; every later one must carry it. */
  char fresh[65] = "", hash[65] = "";
  bool bound = false;
  _cleanup_json_ json_t *known = NULL;
  r = node_secret_check(c, name, secret, &bound, &known, err);
  if (r < 0)
    return r;
  if (!bound) {
    random_hex(fresh, 64);
    secret_hash(fresh, hash);
  }
  _cleanup_json_ json_t *rec = json_pack("{s:s, s:s, s:s, s:I}", "name", name, "url", url,
                                         "registered", ts, "last_seen_ms",
                                         (json_int_t)now_wall_ms());
  json_object_set_new(rec, "satellite", sat ? json_string(sat) : json_null());
  json_object_set_new(rec, "underlay", underlay ? json_string(underlay) : json_null());
  json_object_set_new(rec, "overlay", *ovs ? json_integer(strtoll(ovs, NULL, 10)) : json_null());
  static const char *const same[] = {"url", "satellite", "underlay", "overlay"};
  size_t k = 0;
  while (bound && known && k < 4 && field_same(known, rec, same[k]))
    k++;
  if (k == 4) {
    /* a node that registers again as it was (ferryd's heartbeat): only
     * its time is written */
    secret_hash(secret, hash);
    uint64_t now = now_wall_ms();
    if ((r = c->store->ops->node_seen(c->store, name, hash, now, err)) < 0)
      return r == -EACCES || r == -ENOENT ? secret_refused(name, secret, err) : r;
    json_object_set_new(known, "last_seen_ms", json_integer((json_int_t)now));
    node_status(c, known);
    *out = json_incref(known);
  } else if ((r = c->store->ops->node_put(c->store, rec, bound ? NULL : hash, !bound, err)) < 0) {
    /* two first registrations of one name at once: one of them binds it */
    return r == -EEXIST ? secret_refused(name, NULL, err) : r;
  } else if ((r = coord_node_get(c, name, out, err)) < 0) {
    return r;
  }
  if (!bound)
    json_object_set_new(*out, "node_secret", json_string(fresh));
  if (*ovs)
    json_object_set_new(*out, "overlay_members", overlay_members(c, name, ovs));
  return 0;
}

int coord_node_forget(struct coord_store *st, const char *name, struct ferry_err *err)
{
  return st->ops->node_forget(st, name, err);
}

int coord_node_heartbeat(struct coord *c, const char *name, const char *secret,
                         struct ferry_err *err)
{
  char hash[65] = "";
  if (secret && *secret)
    secret_hash(secret, hash);
  int r = c->store->ops->node_seen(c->store, name, *hash ? hash : NULL, now_wall_ms(), err);
  if (r == -ENOENT)
    return FERRY_NOTFOUND(err, "node \"%s\": not registered", name);
  if (r == -EACCES)
    return secret_refused(name, secret, err);
  return r;
}

/* ----------------------------------------------------------- leadership */

int64_t coord_term(struct coord *c)
{
  int64_t t = 0;
  return c->store->ops->leads(c->store, &t, NULL) ? t : -1;
}

/* Still leading in term? (and not shutting down) */
static bool leading_in(struct coord *c, int64_t term)
{
  return !c->closing && coord_term(c) == term;
}

/* ----------------------------------------------------------- migrations */

/* A client of an agent. Commands of a leader carry its term (etcd): an
 * agent refuses those of a term older than one it has seen. */
static struct http_client *agent_client(struct coord *c, const char *url, int64_t term,
                                        struct ferry_err *err)
{
  struct http_client *cl = NULL;
  if (http_client_new(url, &cl, err) < 0)
    return NULL;
  http_client_set_token(cl, c->token);
  http_client_set_ca(cl, c->tls_ca);
  http_client_set_timeout(cl, 15);
  if (term > 0) {
    char h[64];
    snprintf(h, sizeof h, "X-Ferry-Term: %lld", (long long)term);
    http_client_set_header(cl, h);
  }
  return cl;
}

/* Records a phase (when first seen) and, when known, how long it took. */
static int record_phase_ms(struct coord *c, int64_t term, const char *id, const char *phase,
                           long long ms)
{
  char ts[40];
  now_str(ts, sizeof ts);
  struct ferry_err err = {0};
  int r = c->store->ops->mig_phase(c->store, term, id, phase, phase_seq(phase), ts, ms, &err);
  if (r < 0)
    log_warn("coord", "migration %s: phase %s not recorded: %s", id, phase, err.msg);
  return r;
}

static int record_phase(struct coord *c, int64_t term, const char *id, const char *phase)
{
  return record_phase_ms(c, term, id, phase, -1);
}

static void finish(struct coord *c, int64_t term, const char *id, const char *status,
                   const char *error, json_t *report, const char *container, const char *node)
{
  char ts[40];
  now_str(ts, sizeof ts);
  _cleanup_free_ char *rep = report ? json_dumps(report, JSON_COMPACT) : NULL;
  _cleanup_json_ json_t *set = json_pack("{s:s, s:s}", "status", status, "finished", ts);
  json_object_set_new(set, "error", error ? json_string(error) : json_null());
  json_object_set_new(set, "report", rep ? json_string(rep) : json_null());
  struct ferry_err err = {0};
  if (c->store->ops->mig_set(c->store, term, id, set, &err) < 0) {
    /* a deposed leader: its successor resolves the migration */
    log_warn("coord", "migration %s: %s not recorded: %s", id, status, err.msg);
    return;
  }
  if (node && c->store->ops->service_set(c->store, term, container, node, ts, &err) < 0)
    log_warn("coord", "service %s: %s", container, err.msg);
  /* the agent's report has every phase with its duration, also those too
   * short to be seen while polling */
  const char *k;
  json_t *v;
  json_object_foreach(json_object_get(report, "phases"), k, v)
    record_phase_ms(c, term, id, k, (long long)json_integer_value(v));
  record_phase(c, term, id, status);
  log_info("coord", "migration %s: %s%s%s", id, status, error ? ": " : "", error ? error : "");
}

struct mjob {
  struct coord *c;
  int64_t term; /* the leadership term it was decided in */
  char id[17];
  char *container, *origin_url, *dest_url, *dest, *agent_id;
  bool keep;
  int redirect_s; /* -1: the agent's default */
};

static void mjob_free(struct mjob *j)
{
  free(j->container);
  free(j->origin_url);
  free(j->dest_url);
  free(j->dest);
  free(j->agent_id);
  free(j);
}

/* Follows the agent's migration to its end, recording each phase; stops
 * when this coordinator no longer leads in the job's term (the new leader
 * follows it then). */
static void follow(struct mjob *j, struct http_client *cl)
{
  struct coord *c = j->c;
  _cleanup_free_ char *url = xasprintf("/v1/migrations/%s", j->agent_id);
  char last[32] = "";
  uint64_t deadline = now_mono_ms() + (uint64_t)c->migration_timeout_s * 1000;
  int misses = 0;
  while (now_mono_ms() < deadline) {
    if (!leading_in(c, j->term)) {
      log_info("coord", "migration %s: no longer leading (term %lld): left to the leader",
               j->id, (long long)j->term);
      return;
    }
    json_t *rep = NULL;
    struct ferry_err e = {0};
    if (http_call(cl, "GET", url, NULL, &rep, &e) < 0) {
      if (++misses > 50) { /* the origin agent went away for 10 s */
        finish(c, j->term, j->id, "unknown", e.msg, NULL, j->container, NULL);
        return;
      }
      usleep(200000);
      continue;
    }
    misses = 0;
    const char *phase = json_str_or(rep, "phase", "");
    if (*phase && strcmp(phase, last) != 0) {
      snprintf(last, sizeof last, "%s", phase);
      if (record_phase(c, j->term, j->id, phase) == -ESTALE) {
        json_decref(rep);
        return;
      }
    }
    const char *st = json_str_or(rep, "status", "");
    if (strcmp(st, "running") != 0) {
      bool ok = strcmp(st, "succeeded") == 0;
      finish(c, j->term, j->id, ok ? "succeeded" : "failed",
             ok ? NULL : json_str_or(rep, "error", "failed"), rep, j->container,
             ok ? j->dest : NULL);
      json_decref(rep);
      return;
    }
    json_decref(rep);
    usleep(100000);
  }
  finish(c, j->term, j->id, "failed", "timed out waiting for the agent", NULL, j->container, NULL);
}

/* Asks the origin agent to start the move, under the coordinator's own id
 * (an agent that knows the id already answers with that move: the request
 * can be repeated), then follows it. */
static void start_and_follow(struct mjob *j)
{
  struct coord *c = j->c;
  struct ferry_err e = {0};
  struct http_client *cl = agent_client(c, j->origin_url, j->term, &e);
  if (!cl) {
    finish(c, j->term, j->id, "failed", e.msg, NULL, j->container, NULL);
    return;
  }
  _cleanup_free_ char *en = http_escape(j->container);
  _cleanup_free_ char *url = xasprintf("/v1/containers/%s/migrate", en);
  _cleanup_json_ json_t *body = json_pack("{s:s, s:s, s:b}", "id", j->id, "to", j->dest_url,
                                          "keep", j->keep);
  if (j->redirect_s >= 0)
    json_object_set_new(body, "redirect_for", json_integer(j->redirect_s));
  _cleanup_json_ json_t *started = NULL;
  if (http_call(cl, "POST", url, body, &started, &e) == 0) {
    free(j->agent_id);
    j->agent_id = xstrdup(json_str_or(started, "id", j->id));
    _cleanup_json_ json_t *set = json_pack("{s:s}", "agent_id", j->agent_id);
    struct ferry_err se = {0};
    if (c->store->ops->mig_set(c->store, j->term, j->id, set, &se) < 0)
      log_warn("coord", "migration %s: %s", j->id, se.msg);
    else if (record_phase(c, j->term, j->id, "started") == 0)
      follow(j, cl);
  } else {
    finish(c, j->term, j->id, "failed", e.msg, NULL, j->container, NULL);
  }
  http_client_free(cl);
}

static void job_done(struct coord *c)
{
  pthread_mutex_lock(&c->run_lock);
  c->running--;
  pthread_cond_broadcast(&c->run_cond);
  pthread_mutex_unlock(&c->run_lock);
}

static void *migration_main(void *arg)
{
  struct mjob *j = arg;
  struct coord *c = j->c;
  /* tests: the leader dies between recording a move and asking the agent */
  ferry_fault("coord-migration-start", NULL);
  start_and_follow(j);
  mjob_free(j);
  job_done(c);
  return NULL;
}

/* One node asked whether it runs a container (coord_find_running). */
struct ask {
  struct coord *c;
  const char *url, *container;
  bool running;
};

static void *ask_main(void *arg)
{
  struct ask *q = arg;
  struct http_client *cl = agent_client(q->c, q->url, 0, NULL);
  if (!cl)
    return NULL;
  http_client_set_timeout(cl, 5);
  _cleanup_free_ char *en = http_escape(q->container);
  _cleanup_free_ char *url = xasprintf("/v1/containers/%s", en);
  _cleanup_json_ json_t *rec = NULL;
  q->running = http_call(cl, "GET", url, NULL, &rec, NULL) == 0 &&
               strcmp(json_str_or(rec, "status", ""), "running") == 0;
  http_client_free(cl);
  return NULL;
}

#define ASK_BATCH 32

json_t *coord_find_running(struct coord *c, const char *container)
{
  /* The up nodes are asked at once (in batches), so that nodes that do
   * not answer cost one timeout, not one each. */
  json_t *nodes = coord_node_list(c);
  json_t *found = NULL;
  size_t n = json_array_size(nodes);
  for (size_t base = 0; base < n && !found; base += ASK_BATCH) {
    struct ask q[ASK_BATCH];
    pthread_t th[ASK_BATCH];
    bool started[ASK_BATCH] = {0};
    size_t m = n - base < ASK_BATCH ? n - base : ASK_BATCH;
    for (size_t k = 0; k < m; k++) {
      json_t *node = json_array_get(nodes, base + k);
      q[k] = (struct ask){.c = c, .url = json_str_or(node, "url", ""), .container = container};
      if (strcmp(json_str_or(node, "status", ""), "up") != 0)
        continue;
      started[k] = pthread_create(&th[k], NULL, ask_main, &q[k]) == 0;
      if (!started[k])
        ask_main(&q[k]);
    }
    for (size_t k = 0; k < m; k++)
      if (started[k])
        pthread_join(th[k], NULL);
    for (size_t k = 0; k < m && !found; k++)
      if (q[k].running)
        found = json_incref(json_array_get(nodes, base + k));
  }
  json_decref(nodes);
  return found;
}

/* A node by name, or by URL (the seeds name destinations by URL). */
static json_t *node_by(struct coord *c, const char *name_or_url)
{
  json_t *nodes = coord_node_list(c);
  json_t *found = NULL;
  size_t i;
  json_t *n;
  json_array_foreach(nodes, i, n)
  {
    const char *u = json_str_or(n, "url", "");
    const char *h = strstr(u, "://");
    const char *hu = strstr(name_or_url, "://");
    if (strcmp(json_str_or(n, "name", ""), name_or_url) == 0 || strcmp(u, name_or_url) == 0 ||
        (h && hu && strcmp(h, hu) == 0))
      found = json_incref(n);
  }
  json_decref(nodes);
  return found;
}

/* A coordinator that does not lead hands a migration to the one that does. */
static int forward_migrate(struct coord *c, const char *leader, json_t *req, json_t **out,
                           struct ferry_err *err)
{
  if (!leader || !*leader)
    return ferry_err_set(err, -EAGAIN, FERRY_E_UNAVAILABLE,
                         "no coordinator leads at the moment (an election is under way): "
                         "try again in a few seconds");
  struct http_client *cl = NULL;
  int r = http_client_new(leader, &cl, err);
  if (r < 0)
    return r;
  http_client_set_peer(cl, "the leading coordinator", NULL);
  http_client_set_token(cl, c->token);
  http_client_set_ca(cl, c->tls_ca);
  http_client_set_timeout(cl, 60);
  struct ferry_err e = {0};
  r = http_call(cl, "POST", "/v1/migrations", req, out, &e);
  http_client_free(cl);
  if (r < 0 && e.code != -EIO)
    return ferry_err_set(err, -EHOSTUNREACH, FERRY_E_UNAVAILABLE,
                         "the leading coordinator at %s cannot be reached: %s", leader, e.msg);
  if (r < 0)
    return ferry_err_set(err, r, e.klass, "%s", e.msg);
  log_info("coord", "migration %s: handed to the leader at %s", json_str_or(*out, "id", "?"), leader);
  return 0;
}

int coord_migrate(struct coord *c, json_t *req, json_t **out, struct ferry_err *err)
{
  if (!json_is_object(req))
    return FERRY_INVALID(err, "request body must be a JSON object");
  /* the three accepted forms */
  const char *container = json_str_or(req, "container", json_str_or(req, "deployment", json_str_or(req, "name", NULL)));
  const char *from = json_str_or(req, "from", json_str_or(req, "originNode", NULL));
  const char *to = json_str_or(req, "to", json_str_or(req, "destNode", json_str_or(req, "destinationUrl", NULL)));
  bool keep = json_is_true(json_object_get(req, "keep"));
  /* "redirect": true (the agent's default grace period), false (none) or
   * seconds: how long the origin's published ports lead to the destination */
  json_t *rj = json_object_get(req, "redirect");
  int redirect_s = -1;
  if (json_is_boolean(rj))
    redirect_s = json_is_true(rj) ? -1 : 0;
  else if (json_is_integer(rj) && json_integer_value(rj) >= 0 && json_integer_value(rj) <= 86400)
    redirect_s = (int)json_integer_value(rj);
  else if (rj && !json_is_null(rj))
    return FERRY_INVALID(err, "migrate: \"redirect\" must be true, false or seconds 0..86400");
  int r;
  if (!container || !to)
    return FERRY_INVALID(err, "migrate: the container (\"container\", \"deployment\" or \"name\") and the "
                              "destination (\"to\", \"destNode\" or \"destinationUrl\") are required");
  if ((r = validate_name("container", container, err)) < 0)
    return r;
  int64_t term = 0;
  _cleanup_free_ char *leader = NULL;
  if (!c->store->ops->leads(c->store, &term, &leader))
    return forward_migrate(c, leader, req, out, err);
  _cleanup_json_ json_t *dest = node_by(c, to);
  if (!dest)
    return FERRY_NOTFOUND(err, "destination node \"%s\": not registered", to);
  if (strcmp(json_str_or(dest, "status", ""), "up") != 0)
    return ferry_err_set(err, -EHOSTDOWN, FERRY_E_CONFLICT, "destination node \"%s\" is down", to);
  _cleanup_json_ json_t *origin = from ? node_by(c, from) : coord_find_running(c, container);
  if (!origin)
    return from ? FERRY_NOTFOUND(err, "origin node \"%s\": not registered", from)
                : FERRY_NOTFOUND(err, "container \"%s\": no up node runs it", container);
  if (strcmp(json_str_or(origin, "status", ""), "up") != 0)
    return ferry_err_set(err, -EHOSTDOWN, FERRY_E_CONFLICT, "origin node \"%s\" is down",
                         json_str_or(origin, "name", ""));
  if (strcmp(json_str_or(origin, "name", ""), json_str_or(dest, "name", "")) == 0)
    return FERRY_INVALID(err, "container \"%s\": origin and destination are the same node", container);
  struct mjob *j = calloc(1, sizeof *j);
  if (!j)
    abort();
  j->c = c;
  j->term = term;
  random_hex(j->id, 16);
  j->container = xstrdup(container);
  j->origin_url = xstrdup(json_str_or(origin, "url", ""));
  j->dest_url = xstrdup(json_str_or(dest, "url", ""));
  j->dest = xstrdup(json_str_or(dest, "name", ""));
  j->keep = keep;
  j->redirect_s = redirect_s;
  char ts[40];
  now_str(ts, sizeof ts);
  _cleanup_json_ json_t *rec = json_pack("{s:s, s:s, s:s, s:s, s:i, s:s, s:s, s:n, s:n, s:n, s:n}",
                                         "id", j->id, "container", container, "origin",
                                         json_str_or(origin, "name", ""), "dest", j->dest, "keep",
                                         keep ? 1 : 0, "status", "running", "created", ts,
                                         "agent_id", "error", "finished", "report");
  /* recorded before any agent hears of it: a leader that dies after this
   * leaves a record its successor resumes */
  if ((r = c->store->ops->mig_create(c->store, term, rec, err)) < 0 ||
      (r = record_phase(c, term, j->id, "requested")) < 0) {
    mjob_free(j);
    return r == -ESTALE ? ferry_err_set(err, r, FERRY_E_UNAVAILABLE,
                                        "this coordinator no longer leads: try again")
                        : r;
  }
  *out = json_pack("{s:s, s:s, s:s, s:s, s:s}", "id", j->id, "container", container, "from",
                   json_str_or(origin, "name", ""), "to", j->dest, "status", "running");
  pthread_mutex_lock(&c->run_lock);
  c->running++;
  pthread_mutex_unlock(&c->run_lock);
  pthread_t th;
  pthread_attr_t at;
  pthread_attr_init(&at);
  pthread_attr_setdetachstate(&at, PTHREAD_CREATE_DETACHED);
  if (pthread_create(&th, &at, migration_main, j) != 0) {
    finish(c, term, j->id, "failed", "cannot start a thread", NULL, container, NULL);
    mjob_free(j);
    job_done(c);
  }
  pthread_attr_destroy(&at);
  log_info("coord", "migration %s: %s from %s to %s", json_str_or(*out, "id", ""), container,
           json_str_or(origin, "name", ""), json_str_or(dest, "name", ""));
  return 0;
}

int coord_migration_get(struct coord *c, const char *id, json_t **out, struct ferry_err *err)
{
  json_t *m = NULL;
  int r = c->store->ops->mig_get(c->store, id, &m, err);
  if (r < 0)
    return r;
  const char *rep = json_str_or(m, "report", NULL);
  if (rep) {
    json_t *rj = NULL;
    if (json_parse(rep, strlen(rep), "report", &rj, NULL) == 0)
      json_object_set_new(m, "report", rj);
  }
  json_object_set_new(m, "keep", json_boolean(json_integer_value(json_object_get(m, "keep")) != 0));
  *out = m;
  return 0;
}

json_t *coord_migration_list(struct coord *c)
{
  struct ferry_err err = {0};
  json_t *rows = c->store->ops->mig_list(c->store, false, &err);
  if (!rows) {
    log_warn("coord", "migrations: %s", err.msg);
    return json_array();
  }
  static const char *const shown[] = {"id", "container", "origin", "dest", "status", "error",
                                      "created", "finished"};
  json_t *out = json_array();
  size_t i;
  json_t *m;
  json_array_foreach(rows, i, m)
  {
    json_t *o = json_object();
    for (size_t k = 0; k < ARRAY_SIZE(shown); k++) {
      json_t *v = json_object_get(m, shown[k]);
      json_object_set(o, shown[k], v ? v : json_null());
    }
    json_array_append_new(out, o);
  }
  json_decref(rows);
  return out;
}

char *coord_migration_running(struct coord *c, const char *container)
{
  _cleanup_json_ json_t *rows = c->store->ops->mig_list(c->store, true, NULL);
  char *id = NULL;
  size_t i;
  json_t *m;
  json_array_foreach(rows, i, m) if (!id && strcmp(json_str_or(m, "container", ""), container) == 0)
      id = xstrdup(json_str_or(m, "id", ""));
  return id;
}

json_t *coord_migration_wait(struct coord *c, const char *id, int timeout_s)
{
  uint64_t deadline = now_mono_ms() + (uint64_t)timeout_s * 1000;
  for (;;) {
    json_t *m = NULL;
    if (coord_migration_get(c, id, &m, NULL) < 0)
      return NULL;
    if (strcmp(json_str_or(m, "status", ""), "running") != 0 || now_mono_ms() >= deadline)
      return m;
    json_decref(m);
    usleep(100000);
  }
}

static char *node_url(struct coord *c, const char *name)
{
  json_t *n = NULL;
  if (c->store->ops->node_get(c->store, name, &n, NULL) < 0)
    return NULL;
  char *u = xstrdup(json_str_or(n, "url", ""));
  json_decref(n);
  return u;
}

/* Whether container runs on the node at url (false when it cannot be asked). */
static bool runs_on(struct coord *c, const char *url, int64_t term, const char *container)
{
  struct http_client *cl = url ? agent_client(c, url, term, NULL) : NULL;
  if (!cl)
    return false;
  _cleanup_free_ char *en = http_escape(container);
  _cleanup_free_ char *path = xasprintf("/v1/containers/%s", en);
  _cleanup_json_ json_t *rec = NULL;
  bool on = http_call(cl, "GET", path, NULL, &rec, NULL) == 0 &&
            strcmp(json_str_or(rec, "status", ""), "running") == 0;
  http_client_free(cl);
  return on;
}

/* One migration a former leader (or this coordinator before a restart) left
 * running: ask its agents, in this term (which fences the old one off). */
static void recover_one(struct coord *c, int64_t term, json_t *m)
{
  const char *id = json_str_or(m, "id", ""), *ctr = json_str_or(m, "container", "");
  const char *aid = json_str_or(m, "agent_id", NULL);
  const char *dest = json_str_or(m, "dest", "");
  _cleanup_free_ char *ourl = node_url(c, json_str_or(m, "origin", ""));
  _cleanup_free_ char *durl = node_url(c, dest);
  struct mjob j = {.c = c, .term = term, .container = (char *)ctr, .dest = (char *)dest,
                   .origin_url = ourl, .dest_url = durl,
                   .keep = json_integer_value(json_object_get(m, "keep")) != 0, .redirect_s = -1};
  snprintf(j.id, sizeof j.id, "%s", id);
  /* still known to the origin agent (under the agent's id, or ours)? then
   * follow it again */
  struct ferry_err e = {0};
  struct http_client *cl = ourl ? agent_client(c, ourl, term, &e) : NULL;
  bool unknown = false;
  if (cl) {
    _cleanup_free_ char *url = xasprintf("/v1/migrations/%s", aid ? aid : id);
    _cleanup_json_ json_t *rep = NULL;
    if (http_call(cl, "GET", url, NULL, &rep, &e) == 0) {
      j.agent_id = xstrdup(aid ? aid : id);
      log_info("coord", "migration %s: resumed following it (term %lld)", id, (long long)term);
      follow(&j, cl);
      free(j.agent_id);
      http_client_free(cl);
      return;
    }
    unknown = e.code == -EIO && e.klass == FERRY_E_NOTFOUND;
    http_client_free(cl);
  }
  /* the agent no longer knows it: where does the container run? */
  if (runs_on(c, durl, term, ctr)) {
    finish(c, term, id, "succeeded", NULL, NULL, ctr, dest);
    return;
  }
  if (!aid && unknown && ourl && durl) {
    /* its leader recorded it and fell before the origin confirmed it: the
     * origin, which has now seen this term, will refuse the old leader's
     * request if it comes late; ask for the move again under the same id */
    log_info("coord", "migration %s: never confirmed by %s: started again (term %lld)", id,
             json_str_or(m, "origin", ""), (long long)term);
    start_and_follow(&j);
    free(j.agent_id);
    return;
  }
  finish(c, term, id, "failed",
         unknown ? "interrupted by a coordinator restart; the container was not moved"
                 : "interrupted by a coordinator restart; the origin node cannot be asked and the "
                   "container does not run on the destination",
         NULL, ctr, NULL);
}

struct recovery {
  struct coord *c;
  int64_t term;
};

static void *recover_main(void *arg)
{
  struct recovery *rv = arg;
  struct coord *c = rv->c;
  struct ferry_err err = {0};
  json_t *rows = c->store->ops->mig_list(c->store, true, &err);
  if (!rows)
    log_warn("coord", "migrations left running: %s", err.msg);
  size_t i;
  json_t *m;
  json_array_foreach(rows, i, m)
  {
    if (!leading_in(c, rv->term))
      break;
    recover_one(c, rv->term, m);
  }
  json_decref(rows);
  free(rv);
  job_done(c);
  return NULL;
}

static void start_recovery(struct coord *c, int64_t term)
{
  struct recovery *rv = calloc(1, sizeof *rv);
  if (!rv)
    abort();
  *rv = (struct recovery){.c = c, .term = term};
  pthread_mutex_lock(&c->run_lock);
  c->running++;
  pthread_mutex_unlock(&c->run_lock);
  pthread_t th;
  pthread_attr_t at;
  pthread_attr_init(&at);
  pthread_attr_setdetachstate(&at, PTHREAD_CREATE_DETACHED);
  if (pthread_create(&th, &at, recover_main, rv) != 0) {
    free(rv);
    job_done(c);
  }
  pthread_attr_destroy(&at);
}

/* The store's election: a new term starts the recovery of what the former
 * leader left running. */
static void on_lead(void *ud, int64_t term)
{
  struct coord *c = ud;
  if (term > 0 && !c->closing)
    start_recovery(c, term);
}

int coord_open(struct coord *c, const struct coord_options *o, struct ferry_err *err)
{
  memset(c, 0, sizeof *c);
  pthread_mutex_init(&c->lock, NULL);
  pthread_mutex_init(&c->run_lock, NULL);
  pthread_cond_init(&c->run_cond, NULL);
  c->token = o->token ? xstrdup(o->token) : NULL;
  c->tls_ca = o->tls_ca ? xstrdup(o->tls_ca) : NULL;
  c->heartbeat_timeout_s = o->heartbeat_timeout_s > 0 ? o->heartbeat_timeout_s : 15;
  c->migration_timeout_s = o->migration_timeout_s > 0 ? o->migration_timeout_s : 600;
  int r;
  if (o->etcd) {
    struct coord_etcd_options eo = {.urls = o->etcd, .self_url = o->self_url,
                                    .lease_ttl_s = o->lease_ttl_s, .on_lead = on_lead, .ud = c};
    r = coord_store_etcd_open(&eo, &c->store, err);
  } else {
    r = coord_store_sqlite_open(o->db_path, &c->store, err);
  }
  if (r < 0)
    return r;
  if (!o->etcd) /* the one coordinator of its database leads from the start */
    start_recovery(c, 0);
  return 0;
}

void coord_close(struct coord *c)
{
  /* migrations being followed are left to the next leader (or to this
   * coordinator's next start): their records stay "running" */
  c->closing = true;
  pthread_mutex_lock(&c->run_lock);
  while (c->running > 0)
    pthread_cond_wait(&c->run_cond, &c->run_lock);
  pthread_mutex_unlock(&c->run_lock);
  if (c->store)
    c->store->ops->close(c->store);
  free(c->token);
  free(c->tls_ca);
}

char *coord_metrics_text(struct coord *c, size_t *len)
{
  struct prom p = {0};
  _cleanup_json_ json_t *nodes = coord_node_list(c);
  size_t up = 0, down = 0, i;
  json_t *n;
  json_array_foreach(nodes, i, n)
  {
    if (strcmp(json_str_or(n, "status", ""), "up") == 0)
      up++;
    else
      down++;
  }
  prom_family(&p, "ferry_coord_nodes", "gauge",
              "Registered nodes: up (heard from within the heartbeat timeout) or down.");
  prom_sample(&p, "ferry_coord_nodes", "state=\"up\"", (double)up);
  prom_sample(&p, "ferry_coord_nodes", "state=\"down\"", (double)down);
  json_t *rows = c->store->ops->mig_list(c->store, false, NULL);
  pthread_mutex_lock(&c->lock);
  uint64_t plan_ms = c->plan_ms, started = c->handovers_started;
  pthread_mutex_unlock(&c->lock);
  double ok = 0, failed = 0, running = 0;
  json_t *row;
  json_array_foreach(rows, i, row)
  {
    const char *st = json_str_or(row, "status", "");
    if (strcmp(st, "succeeded") == 0)
      ok++;
    else if (strcmp(st, "running") == 0)
      running++;
    else
      failed++;
  }
  json_decref(rows);
  int64_t term = coord_term(c);
  prom_family(&p, "ferry_coord_leader", "gauge",
              "1 when this coordinator leads (always with SQLite), 0 when another one does.");
  prom_sample(&p, "ferry_coord_leader", NULL, term >= 0 ? 1 : 0);
  prom_family(&p, "ferry_coord_term", "gauge",
              "The leadership term this coordinator leads in (etcd: the leader key's revision; "
              "0 with SQLite; absent when it does not lead).");
  if (term >= 0)
    prom_sample(&p, "ferry_coord_term", NULL, (double)term);
  prom_family(&p, "ferry_coord_migrations_total", "counter",
              "Migrations (handovers) the coordinator carried out, by outcome (its database: "
              "they survive restarts).");
  prom_sample(&p, "ferry_coord_migrations_total", "outcome=\"succeeded\"", ok);
  prom_sample(&p, "ferry_coord_migrations_total", "outcome=\"failed\"", failed);
  prom_family(&p, "ferry_coord_migrations_running", "gauge", "Migrations under way.");
  prom_sample(&p, "ferry_coord_migrations_running", NULL, running);
  prom_family(&p, "ferry_coord_handovers_started_total", "counter",
              "Handovers the satellite policy decided and started since the coordinator started.");
  prom_sample(&p, "ferry_coord_handovers_started_total", NULL, (double)started);
  prom_family(&p, "ferry_coord_plan_age_seconds", "gauge",
              "Age of the satellite policy's visibility plan (absent without one, or with "
              "Celestial, which gives no plan).");
  if (plan_ms)
    prom_sample(&p, "ferry_coord_plan_age_seconds", NULL,
                (double)(now_wall_ms() - plan_ms) / 1000.0);
  *len = p.len;
  return p.buf ? p.buf : xstrdup("");
}
