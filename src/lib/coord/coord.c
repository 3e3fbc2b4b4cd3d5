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
#include "util/fs.h"
#include "util/json.h"
#include "util/log.h"
#include "util/prom.h"

static const char schema[] =
    "PRAGMA journal_mode=WAL;"
    "PRAGMA synchronous=NORMAL;"
    "CREATE TABLE IF NOT EXISTS nodes(name TEXT PRIMARY KEY, url TEXT NOT NULL, satellite TEXT,"
    "  registered TEXT NOT NULL, last_seen_ms INTEGER NOT NULL, secret_hash TEXT, underlay TEXT,"
    "  overlay INTEGER);"
    "CREATE TABLE IF NOT EXISTS services(name TEXT PRIMARY KEY, node TEXT NOT NULL, updated TEXT);"
    "CREATE TABLE IF NOT EXISTS migrations(id TEXT PRIMARY KEY, container TEXT NOT NULL,"
    "  origin TEXT NOT NULL, dest TEXT NOT NULL, keep INTEGER NOT NULL, status TEXT NOT NULL,"
    "  agent_id TEXT, error TEXT, created TEXT NOT NULL, finished TEXT, report TEXT);"
    "CREATE TABLE IF NOT EXISTS migration_phases(migration TEXT NOT NULL, phase TEXT NOT NULL,"
    "  seq INTEGER NOT NULL, at TEXT NOT NULL, ms INTEGER, PRIMARY KEY(migration, phase));";

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

static int db_err(struct coord *c, struct ferry_err *err, const char *what)
{
  return FERRY_INTERNAL(err, "coordinator database: %s: %s", what, sqlite3_errmsg(c->db));
}

/* Runs one statement with text parameters (NULL binds NULL). */
static int exec_params(struct coord *c, const char *sql, const char *const *params, int n,
                       struct ferry_err *err)
{
  sqlite3_stmt *st = NULL;
  if (sqlite3_prepare_v2(c->db, sql, -1, &st, NULL) != SQLITE_OK)
    return db_err(c, err, "prepare");
  for (int i = 0; i < n; i++)
    sqlite3_bind_text(st, i + 1, params[i], -1, SQLITE_TRANSIENT);
  int rc = sqlite3_step(st);
  sqlite3_finalize(st);
  if (rc != SQLITE_DONE && rc != SQLITE_ROW)
    return db_err(c, err, "write");
  return 0;
}

/* Rows of a query as a JSON array of objects (column name -> value). */
static json_t *query(struct coord *c, const char *sql, const char *const *params, int n)
{
  json_t *arr = json_array();
  sqlite3_stmt *st = NULL;
  if (sqlite3_prepare_v2(c->db, sql, -1, &st, NULL) != SQLITE_OK)
    return arr;
  for (int i = 0; i < n; i++)
    sqlite3_bind_text(st, i + 1, params[i], -1, SQLITE_TRANSIENT);
  while (sqlite3_step(st) == SQLITE_ROW) {
    json_t *o = json_object();
    for (int k = 0; k < sqlite3_column_count(st); k++) {
      const char *name = sqlite3_column_name(st, k);
      switch (sqlite3_column_type(st, k)) {
      case SQLITE_INTEGER: json_object_set_new(o, name, json_integer(sqlite3_column_int64(st, k))); break;
      case SQLITE_NULL: json_object_set_new(o, name, json_null()); break;
      default: json_object_set_new(o, name, json_string((const char *)sqlite3_column_text(st, k)));
      }
    }
    json_array_append_new(arr, o);
  }
  sqlite3_finalize(st);
  return arr;
}

static void now_str(char *buf, size_t len) { format_time(now_wall_ms(), buf, len); }

/* ---------------------------------------------------------------- nodes */

/* What a node's record shows (never its secret's hash). */
#define NODE_COLUMNS "name, url, satellite, registered, last_seen_ms, underlay, overlay"

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

/* Caller holds c->lock. 1: the name is free or unbound (*bound false);
 * 0: bound and secret matches; <0: 403. */
static int node_secret_check(struct coord *c, const char *name, const char *secret, bool *bound,
                             struct ferry_err *err)
{
  const char *p[] = {name};
  _cleanup_json_ json_t *rows = query(c, "SELECT secret_hash FROM nodes WHERE name = ?", p, 1);
  const char *have = json_str_or(json_array_get(rows, 0), "secret_hash", NULL);
  *bound = have && strlen(have) == 64;
  if (!*bound)
    return 1;
  char got[65];
  if (secret && *secret) {
    secret_hash(secret, got);
    if (CRYPTO_memcmp(got, have, 64) == 0)
      return 0;
  }
  return ferry_err_set(err, -EACCES, FERRY_E_FORBIDDEN,
                       "node \"%s\" is bound to the secret it was given when it registered, and "
                       "this request %s (a node that lost its secret: ferry-coord node forget %s)",
                       name, secret && *secret ? "carries another" : "does not carry it", name);
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

int coord_node_get(struct coord *c, const char *name, json_t **out, struct ferry_err *err)
{
  const char *p[] = {name};
  pthread_mutex_lock(&c->lock);
  json_t *rows = query(c, "SELECT " NODE_COLUMNS " FROM nodes WHERE name = ?", p, 1);
  pthread_mutex_unlock(&c->lock);
  json_t *n = json_array_get(rows, 0);
  if (!n) {
    json_decref(rows);
    return FERRY_NOTFOUND(err, "node \"%s\": no such node", name);
  }
  json_incref(n);
  json_decref(rows);
  node_status(c, n);
  *out = n;
  return 0;
}

json_t *coord_node_list(struct coord *c)
{
  pthread_mutex_lock(&c->lock);
  json_t *rows = query(c, "SELECT " NODE_COLUMNS " FROM nodes ORDER BY name", NULL, 0);
  pthread_mutex_unlock(&c->lock);
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
  char since[32];
  snprintf(since, sizeof since, "%lld",
           (long long)now_wall_ms() - (long long)c->heartbeat_timeout_s * 1000);
  const char *p[] = {vni, name, since};
  pthread_mutex_lock(&c->lock);
  _cleanup_json_ json_t *rows =
      query(c, "SELECT DISTINCT underlay FROM nodes WHERE overlay = CAST(? AS INTEGER) AND name != ?"
               " AND underlay IS NOT NULL AND last_seen_ms >= CAST(? AS INTEGER) ORDER BY underlay",
            p, 3);
  pthread_mutex_unlock(&c->lock);
  json_t *out = json_array();
  size_t i;
  json_t *r;
  json_array_foreach(rows, i, r) json_array_append(out, json_object_get(r, "underlay"));
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
  char ts[40], ms[32];
  now_str(ts, sizeof ts);
  snprintf(ms, sizeof ms, "%llu", (unsigned long long)now_wall_ms());
  /* The first registration of a name binds it to a new secret, returned
   * once; every later one must carry it. */
  char fresh[65] = "", hash[65] = "";
  bool bound = false;
  pthread_mutex_lock(&c->lock);
  r = node_secret_check(c, name, secret, &bound, err);
  if (r >= 0) {
    if (!bound) {
      random_hex(fresh, 64);
      secret_hash(fresh, hash);
    }
    const char *p[] = {name, url, sat, ts, ms, bound ? NULL : hash, underlay, *ovs ? ovs : NULL};
    r = exec_params(c,
                    "INSERT INTO nodes(name, url, satellite, registered, last_seen_ms, secret_hash,"
                    " underlay, overlay) VALUES(?,?,?,?,?,?,?,CAST(? AS INTEGER))"
                    " ON CONFLICT(name) DO UPDATE SET url = excluded.url,"
                    " satellite = excluded.satellite, last_seen_ms = excluded.last_seen_ms,"
                    " secret_hash = coalesce(nodes.secret_hash, excluded.secret_hash),"
                    " underlay = excluded.underlay, overlay = excluded.overlay",
                    p, 8, err);
  }
  pthread_mutex_unlock(&c->lock);
  if (r < 0)
    return r;
  if ((r = coord_node_get(c, name, out, err)) < 0)
    return r;
  if (!bound)
    json_object_set_new(*out, "node_secret", json_string(fresh));
  if (*ovs)
    json_object_set_new(*out, "overlay_members", overlay_members(c, name, ovs));
  return 0;
}

int coord_node_forget(const char *db_path, const char *name, struct ferry_err *err)
{
  sqlite3 *db = NULL;
  if (sqlite3_open_v2(db_path, &db, SQLITE_OPEN_READWRITE, NULL) != SQLITE_OK) {
    int r = FERRY_NOTFOUND(err, "database %s: %s", db_path, db ? sqlite3_errmsg(db) : "cannot open");
    sqlite3_close(db);
    return r;
  }
  sqlite3_busy_timeout(db, 5000);
  sqlite3_stmt *st = NULL;
  int r = 0;
  if (sqlite3_prepare_v2(db, "DELETE FROM nodes WHERE name = ?", -1, &st, NULL) != SQLITE_OK ||
      sqlite3_bind_text(st, 1, name, -1, SQLITE_TRANSIENT) != SQLITE_OK ||
      sqlite3_step(st) != SQLITE_DONE)
    r = FERRY_INTERNAL(err, "database %s: %s", db_path, sqlite3_errmsg(db));
  else if (sqlite3_changes(db) == 0)
    r = FERRY_NOTFOUND(err, "node \"%s\": no such node in %s", name, db_path);
  sqlite3_finalize(st);
  sqlite3_close(db);
  return r;
}

int coord_node_heartbeat(struct coord *c, const char *name, const char *secret,
                         struct ferry_err *err)
{
  char ms[32];
  snprintf(ms, sizeof ms, "%llu", (unsigned long long)now_wall_ms());
  const char *p[] = {ms, name};
  bool bound = false;
  pthread_mutex_lock(&c->lock);
  int r = node_secret_check(c, name, secret, &bound, err);
  if (r < 0) {
    pthread_mutex_unlock(&c->lock);
    return r;
  }
  r = exec_params(c, "UPDATE nodes SET last_seen_ms = ? WHERE name = ?", p, 2, err);
  int changed = sqlite3_changes(c->db);
  pthread_mutex_unlock(&c->lock);
  if (r == 0 && changed == 0)
    return FERRY_NOTFOUND(err, "node \"%s\": not registered", name);
  return r;
}

/* ----------------------------------------------------------- migrations */

static struct http_client *agent_client(struct coord *c, const char *url, struct ferry_err *err)
{
  struct http_client *cl = NULL;
  if (http_client_new(url, &cl, err) < 0)
    return NULL;
  http_client_set_token(cl, c->token);
  http_client_set_ca(cl, c->tls_ca);
  http_client_set_timeout(cl, 15);
  return cl;
}

/* Records a phase (when first seen) and, when known, how long it took. */
static void record_phase_ms(struct coord *c, const char *id, const char *phase, long long ms)
{
  char ts[40], seq[16], msb[32];
  now_str(ts, sizeof ts);
  snprintf(seq, sizeof seq, "%d", phase_seq(phase));
  snprintf(msb, sizeof msb, "%lld", ms);
  const char *p[] = {id, phase, seq, ts, ms >= 0 ? msb : NULL};
  pthread_mutex_lock(&c->lock);
  exec_params(c, "INSERT INTO migration_phases(migration, phase, seq, at, ms) VALUES(?,?,?,?,?)"
                 " ON CONFLICT(migration, phase) DO UPDATE SET ms = coalesce(excluded.ms, ms)",
              p, 5, NULL);
  pthread_mutex_unlock(&c->lock);
}

static void record_phase(struct coord *c, const char *id, const char *phase)
{
  record_phase_ms(c, id, phase, -1);
}

static void finish(struct coord *c, const char *id, const char *status, const char *error,
                   json_t *report, const char *container, const char *node)
{
  char ts[40];
  now_str(ts, sizeof ts);
  _cleanup_free_ char *rep = report ? json_dumps(report, JSON_COMPACT) : NULL;
  const char *p[] = {status, error, ts, rep, id};
  pthread_mutex_lock(&c->lock);
  exec_params(c, "UPDATE migrations SET status = ?, error = ?, finished = ?, report = ? WHERE id = ?", p, 5, NULL);
  if (node) {
    const char *q[] = {container, node, ts};
    exec_params(c, "INSERT INTO services(name, node, updated) VALUES(?,?,?) ON CONFLICT(name) DO"
                   " UPDATE SET node = excluded.node, updated = excluded.updated", q, 3, NULL);
  }
  pthread_mutex_unlock(&c->lock);
  /* the agent's report has every phase with its duration, also those too
   * short to be seen while polling */
  const char *k;
  json_t *v;
  json_object_foreach(json_object_get(report, "phases"), k, v)
    record_phase_ms(c, id, k, (long long)json_integer_value(v));
  record_phase(c, id, status);
  log_info("coord", "migration %s: %s%s%s", id, status, error ? ": " : "", error ? error : "");
}

struct mjob {
  struct coord *c;
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

/* Follows the agent's migration to its end, recording each phase. */
static void follow(struct mjob *j, struct http_client *cl)
{
  struct coord *c = j->c;
  _cleanup_free_ char *url = xasprintf("/v1/migrations/%s", j->agent_id);
  char last[32] = "";
  uint64_t deadline = now_mono_ms() + (uint64_t)c->migration_timeout_s * 1000;
  int misses = 0;
  while (now_mono_ms() < deadline) {
    json_t *rep = NULL;
    struct ferry_err e = {0};
    if (http_call(cl, "GET", url, NULL, &rep, &e) < 0) {
      if (++misses > 50) { /* the origin agent went away for 10 s */
        finish(c, j->id, "unknown", e.msg, NULL, j->container, NULL);
        return;
      }
      usleep(200000);
      continue;
    }
    misses = 0;
    const char *phase = json_str_or(rep, "phase", "");
    if (*phase && strcmp(phase, last) != 0) {
      snprintf(last, sizeof last, "%s", phase);
      record_phase(c, j->id, phase);
    }
    const char *st = json_str_or(rep, "status", "");
    if (strcmp(st, "running") != 0) {
      bool ok = strcmp(st, "succeeded") == 0;
      finish(c, j->id, ok ? "succeeded" : "failed", ok ? NULL : json_str_or(rep, "error", "failed"),
             rep, j->container, ok ? j->dest : NULL);
      json_decref(rep);
      return;
    }
    json_decref(rep);
    usleep(100000);
  }
  finish(c, j->id, "failed", "timed out waiting for the agent", NULL, j->container, NULL);
}

static void *migration_main(void *arg)
{
  struct mjob *j = arg;
  struct coord *c = j->c;
  struct ferry_err e = {0};
  struct http_client *cl = agent_client(c, j->origin_url, &e);
  if (cl) {
    _cleanup_free_ char *en = http_escape(j->container);
    _cleanup_free_ char *url = xasprintf("/v1/containers/%s/migrate", en);
    _cleanup_json_ json_t *body = json_pack("{s:s, s:b}", "to", j->dest_url, "keep", j->keep);
    if (j->redirect_s >= 0)
      json_object_set_new(body, "redirect_for", json_integer(j->redirect_s));
    _cleanup_json_ json_t *started = NULL;
    if (http_call(cl, "POST", url, body, &started, &e) == 0) {
      j->agent_id = xstrdup(json_str_or(started, "id", ""));
      const char *p[] = {j->agent_id, j->id};
      pthread_mutex_lock(&c->lock);
      exec_params(c, "UPDATE migrations SET agent_id = ? WHERE id = ?", p, 2, NULL);
      pthread_mutex_unlock(&c->lock);
      record_phase(c, j->id, "started");
      follow(j, cl);
    } else {
      finish(c, j->id, "failed", e.msg, NULL, j->container, NULL);
    }
    http_client_free(cl);
  } else {
    finish(c, j->id, "failed", e.msg, NULL, j->container, NULL);
  }
  pthread_mutex_lock(&c->run_lock);
  c->running--;
  pthread_cond_broadcast(&c->run_cond);
  pthread_mutex_unlock(&c->run_lock);
  mjob_free(j);
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
  struct http_client *cl = agent_client(q->c, q->url, NULL);
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
  random_hex(j->id, 16);
  j->container = xstrdup(container);
  j->origin_url = xstrdup(json_str_or(origin, "url", ""));
  j->dest_url = xstrdup(json_str_or(dest, "url", ""));
  j->dest = xstrdup(json_str_or(dest, "name", ""));
  j->keep = keep;
  j->redirect_s = redirect_s;
  char ts[40];
  now_str(ts, sizeof ts);
  const char *p[] = {j->id, container, json_str_or(origin, "name", ""), j->dest, keep ? "1" : "0", ts};
  pthread_mutex_lock(&c->lock);
  r = exec_params(c, "INSERT INTO migrations(id, container, origin, dest, keep, status, created)"
                     " VALUES(?,?,?,?,?,'running',?)", p, 6, err);
  pthread_mutex_unlock(&c->lock);
  if (r < 0) {
    mjob_free(j);
    return r;
  }
  record_phase(c, j->id, "requested");
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
    pthread_mutex_lock(&c->run_lock);
    c->running--;
    pthread_mutex_unlock(&c->run_lock);
    finish(c, (*out) ? json_str_or(*out, "id", "") : "", "failed", "cannot start a thread", NULL, container, NULL);
  }
  pthread_attr_destroy(&at);
  log_info("coord", "migration %s: %s from %s to %s", json_str_or(*out, "id", ""), container,
           json_str_or(origin, "name", ""), json_str_or(dest, "name", ""));
  return 0;
}

int coord_migration_get(struct coord *c, const char *id, json_t **out, struct ferry_err *err)
{
  const char *p[] = {id};
  pthread_mutex_lock(&c->lock);
  json_t *rows = query(c, "SELECT * FROM migrations WHERE id = ?", p, 1);
  json_t *phases = query(c, "SELECT phase, at, ms FROM migration_phases WHERE migration = ?"
                            " ORDER BY seq", p, 1);
  pthread_mutex_unlock(&c->lock);
  json_t *m = json_incref(json_array_get(rows, 0));
  json_decref(rows);
  if (!m) {
    json_decref(phases);
    return FERRY_NOTFOUND(err, "migration %s: no such migration", id);
  }
  const char *rep = json_str_or(m, "report", NULL);
  if (rep) {
    json_t *rj = NULL;
    if (json_parse(rep, strlen(rep), "report", &rj, NULL) == 0)
      json_object_set_new(m, "report", rj);
  }
  json_object_set_new(m, "keep", json_boolean(json_integer_value(json_object_get(m, "keep")) != 0));
  json_object_set_new(m, "phases", phases);
  *out = m;
  return 0;
}

json_t *coord_migration_list(struct coord *c)
{
  pthread_mutex_lock(&c->lock);
  json_t *rows = query(c, "SELECT id, container, origin, dest, status, error, created, finished"
                          " FROM migrations ORDER BY created", NULL, 0);
  pthread_mutex_unlock(&c->lock);
  return rows;
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

/* Migrations that were in flight when the coordinator stopped: ask the agents. */
static void *recover_main(void *arg)
{
  struct coord *c = arg;
  pthread_mutex_lock(&c->lock);
  json_t *rows = query(c, "SELECT m.id, m.container, m.dest, m.agent_id, o.url AS ourl, d.url AS durl"
                          " FROM migrations m LEFT JOIN nodes o ON o.name = m.origin"
                          " LEFT JOIN nodes d ON d.name = m.dest WHERE m.status = 'running'", NULL, 0);
  pthread_mutex_unlock(&c->lock);
  size_t i;
  json_t *m;
  json_array_foreach(rows, i, m)
  {
    const char *id = json_str_or(m, "id", ""), *ctr = json_str_or(m, "container", "");
    const char *aid = json_str_or(m, "agent_id", NULL);
    /* still running on the origin agent? then follow it again */
    struct http_client *cl = agent_client(c, json_str_or(m, "ourl", ""), NULL);
    if (cl && aid) {
      _cleanup_free_ char *url = xasprintf("/v1/migrations/%s", aid);
      _cleanup_json_ json_t *rep = NULL;
      if (http_call(cl, "GET", url, NULL, &rep, NULL) == 0) {
        struct mjob j = {.c = c, .container = (char *)ctr, .dest = (char *)json_str_or(m, "dest", ""),
                         .agent_id = (char *)aid};
        snprintf(j.id, sizeof j.id, "%s", id);
        follow(&j, cl);
        http_client_free(cl);
        continue;
      }
    }
    http_client_free(cl);
    /* the agent no longer knows it: where does the container run? */
    bool on_dest = false;
    cl = agent_client(c, json_str_or(m, "durl", ""), NULL);
    if (cl) {
      _cleanup_free_ char *en = http_escape(ctr);
      _cleanup_free_ char *url = xasprintf("/v1/containers/%s", en);
      _cleanup_json_ json_t *rec = NULL;
      on_dest = http_call(cl, "GET", url, NULL, &rec, NULL) == 0 &&
                strcmp(json_str_or(rec, "status", ""), "running") == 0;
      http_client_free(cl);
    }
    finish(c, id, on_dest ? "succeeded" : "failed",
           on_dest ? NULL : "interrupted by a coordinator restart; the container was not moved", NULL,
           ctr, on_dest ? json_str_or(m, "dest", "") : NULL);
  }
  json_decref(rows);
  pthread_mutex_lock(&c->run_lock);
  c->running--;
  pthread_cond_broadcast(&c->run_cond);
  pthread_mutex_unlock(&c->run_lock);
  return NULL;
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
  if (sqlite3_open_v2(o->db_path, &c->db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_FULLMUTEX, NULL) != SQLITE_OK)
    return FERRY_INTERNAL(err, "database %s: %s", o->db_path, c->db ? sqlite3_errmsg(c->db) : "cannot open");
  sqlite3_busy_timeout(c->db, 5000);
  char *msg = NULL;
  if (sqlite3_exec(c->db, schema, NULL, NULL, &msg) != SQLITE_OK) {
    int r = FERRY_INTERNAL(err, "database %s: %s", o->db_path, msg ? msg : "schema");
    sqlite3_free(msg);
    return r;
  }
  /* databases of earlier versions: nodes without a secret (bound at their
   * next registration) */
  sqlite3_exec(c->db, "ALTER TABLE nodes ADD COLUMN secret_hash TEXT", NULL, NULL, NULL);
  /* and without an overlay */
  sqlite3_exec(c->db, "ALTER TABLE nodes ADD COLUMN underlay TEXT", NULL, NULL, NULL);
  sqlite3_exec(c->db, "ALTER TABLE nodes ADD COLUMN overlay INTEGER", NULL, NULL, NULL);
  c->running = 1;
  pthread_t th;
  pthread_attr_t at;
  pthread_attr_init(&at);
  pthread_attr_setdetachstate(&at, PTHREAD_CREATE_DETACHED);
  if (pthread_create(&th, &at, recover_main, c) != 0)
    c->running = 0;
  pthread_attr_destroy(&at);
  return 0;
}

void coord_close(struct coord *c)
{
  pthread_mutex_lock(&c->run_lock);
  while (c->running > 0)
    pthread_cond_wait(&c->run_cond, &c->run_lock);
  pthread_mutex_unlock(&c->run_lock);
  if (c->db)
    sqlite3_close(c->db);
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
  pthread_mutex_lock(&c->lock);
  json_t *rows = query(c, "SELECT status, COUNT(*) AS n FROM migrations GROUP BY status", NULL, 0);
  uint64_t plan_ms = c->plan_ms, started = c->handovers_started;
  pthread_mutex_unlock(&c->lock);
  double ok = 0, failed = 0, running = 0;
  json_t *row;
  json_array_foreach(rows, i, row)
  {
    const char *st = json_str_or(row, "status", "");
    double v = (double)json_integer_value(json_object_get(row, "n"));
    if (strcmp(st, "succeeded") == 0)
      ok += v;
    else if (strcmp(st, "running") == 0)
      running += v;
    else
      failed += v;
  }
  json_decref(rows);
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
