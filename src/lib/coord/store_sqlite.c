/* The coordinator's store in one SQLite file (WAL): the default, for one
 * coordinator, which always leads (term 0). */
#include <pthread.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "coord/store.h"
#include "util/cleanup.h"
#include "util/fs.h"
#include "util/json.h"

struct sqlite_store {
  struct coord_store base;
  sqlite3 *db;
  pthread_mutex_t lock; /* serialises use of db */
};

#define S(s) ((struct sqlite_store *)(s))

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

/* What a node's record shows (never its secret's hash). */
#define NODE_COLUMNS "name, url, satellite, registered, last_seen_ms, underlay, overlay"

static int db_err(struct sqlite_store *s, struct ferry_err *err, const char *what)
{
  return FERRY_INTERNAL(err, "coordinator database: %s: %s", what, sqlite3_errmsg(s->db));
}

/* Runs one statement with text parameters (NULL binds NULL); *changes: rows
 * changed. Caller holds the lock. */
static int exec_params(struct sqlite_store *s, const char *sql, const char *const *params, int n,
                       int *changes, struct ferry_err *err)
{
  sqlite3_stmt *st = NULL;
  if (sqlite3_prepare_v2(s->db, sql, -1, &st, NULL) != SQLITE_OK)
    return db_err(s, err, "prepare");
  for (int i = 0; i < n; i++)
    sqlite3_bind_text(st, i + 1, params[i], -1, SQLITE_TRANSIENT);
  int rc = sqlite3_step(st);
  sqlite3_finalize(st);
  if (rc != SQLITE_DONE && rc != SQLITE_ROW)
    return db_err(s, err, "write");
  if (changes)
    *changes = sqlite3_changes(s->db);
  return 0;
}

/* Rows of a query as a JSON array of objects (column name -> value). Caller
 * holds the lock. */
static json_t *query(struct sqlite_store *s, const char *sql, const char *const *params, int n,
                     struct ferry_err *err)
{
  sqlite3_stmt *st = NULL;
  if (sqlite3_prepare_v2(s->db, sql, -1, &st, NULL) != SQLITE_OK) {
    db_err(s, err, "prepare");
    return NULL;
  }
  json_t *arr = json_array();
  for (int i = 0; i < n; i++)
    sqlite3_bind_text(st, i + 1, params[i], -1, SQLITE_TRANSIENT);
  int rc;
  while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
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
  if (rc != SQLITE_DONE) {
    json_decref(arr);
    db_err(s, err, "read");
    return NULL;
  }
  return arr;
}

static json_t *locked_query(struct sqlite_store *s, const char *sql, const char *const *params,
                            int n, struct ferry_err *err)
{
  pthread_mutex_lock(&s->lock);
  json_t *r = query(s, sql, params, n, err);
  pthread_mutex_unlock(&s->lock);
  return r;
}

static void sq_close(struct coord_store *cs)
{
  struct sqlite_store *s = S(cs);
  sqlite3_close(s->db);
  pthread_mutex_destroy(&s->lock);
  free(s);
}

/* ---------------------------------------------------------------- nodes */

static int sq_node_secret(struct coord_store *cs, const char *name, char **hash, json_t **rec,
                          struct ferry_err *err)
{
  const char *p[] = {name};
  _cleanup_json_ json_t *rows = locked_query(
      S(cs), "SELECT secret_hash, " NODE_COLUMNS " FROM nodes WHERE name = ?", p, 1, err);
  if (!rows)
    return -EIO;
  json_t *row = json_array_get(rows, 0);
  if (!row)
    return -ENOENT;
  const char *h = json_str_or(row, "secret_hash", NULL);
  *hash = h && *h ? xstrdup(h) : NULL;
  if (rec) {
    *rec = json_deep_copy(row);
    json_object_del(*rec, "secret_hash");
  }
  return 0;
}

static int sq_node_put(struct coord_store *cs, json_t *n, const char *hash, bool expect_new,
                       struct ferry_err *err)
{
  struct sqlite_store *s = S(cs);
  char ms[32], ov[16];
  snprintf(ms, sizeof ms, "%lld", (long long)json_integer_value(json_object_get(n, "last_seen_ms")));
  json_t *ovj = json_object_get(n, "overlay");
  snprintf(ov, sizeof ov, "%lld", (long long)json_integer_value(ovj));
  const char *name = json_str_or(n, "name", "");
  const char *p[] = {name, json_str_or(n, "url", ""), json_str_or(n, "satellite", NULL),
                     json_str_or(n, "registered", ""), ms, hash, json_str_or(n, "underlay", NULL),
                     json_is_integer(ovj) ? ov : NULL};
  pthread_mutex_lock(&s->lock);
  int r = 0;
  if (expect_new) { /* bound meanwhile? (the lock makes check and write one step) */
    const char *q[] = {name};
    _cleanup_json_ json_t *rows =
        query(s, "SELECT 1 FROM nodes WHERE name = ? AND secret_hash IS NOT NULL AND secret_hash != ''",
              q, 1, err);
    if (!rows)
      r = -EIO;
    else if (json_array_size(rows) > 0)
      r = FERRY_CONFLICT(err, "node \"%s\" was bound to a secret meanwhile", name);
  }
  if (r == 0)
    r = exec_params(s,
                    "INSERT INTO nodes(name, url, satellite, registered, last_seen_ms, secret_hash,"
                    " underlay, overlay) VALUES(?,?,?,?,?,?,?,CAST(? AS INTEGER))"
                    " ON CONFLICT(name) DO UPDATE SET url = excluded.url,"
                    " satellite = excluded.satellite, last_seen_ms = excluded.last_seen_ms,"
                    " secret_hash = coalesce(nodes.secret_hash, excluded.secret_hash),"
                    " underlay = excluded.underlay, overlay = excluded.overlay",
                    p, 8, NULL, err);
  pthread_mutex_unlock(&s->lock);
  return r;
}

static int sq_node_seen(struct coord_store *cs, const char *name, const char *hash, uint64_t ms,
                        struct ferry_err *err)
{
  struct sqlite_store *s = S(cs);
  char msb[32];
  snprintf(msb, sizeof msb, "%llu", (unsigned long long)ms);
  const char *p[] = {msb, name, hash ? hash : ""};
  int changed = 0;
  pthread_mutex_lock(&s->lock);
  int r = exec_params(s,
                      "UPDATE nodes SET last_seen_ms = ? WHERE name = ? AND (secret_hash IS NULL"
                      " OR secret_hash = '' OR secret_hash = ?)",
                      p, 3, &changed, err);
  json_t *rows = NULL;
  if (r == 0 && changed == 0) {
    const char *q[] = {name};
    rows = query(s, "SELECT 1 FROM nodes WHERE name = ?", q, 1, err);
  }
  pthread_mutex_unlock(&s->lock);
  if (r < 0 || changed)
    return r;
  if (!rows)
    return -EIO;
  r = json_array_size(rows) ? -EACCES : -ENOENT;
  json_decref(rows);
  return r;
}

static int sq_node_get(struct coord_store *cs, const char *name, json_t **out,
                       struct ferry_err *err)
{
  const char *p[] = {name};
  json_t *rows = locked_query(S(cs), "SELECT " NODE_COLUMNS " FROM nodes WHERE name = ?", p, 1, err);
  if (!rows)
    return -EIO;
  json_t *n = json_incref(json_array_get(rows, 0));
  json_decref(rows);
  if (!n)
    return FERRY_NOTFOUND(err, "node \"%s\": no such node", name);
  *out = n;
  return 0;
}

static json_t *sq_node_list(struct coord_store *cs, struct ferry_err *err)
{
  return locked_query(S(cs), "SELECT " NODE_COLUMNS " FROM nodes ORDER BY name", NULL, 0, err);
}

static int sq_node_forget(struct coord_store *cs, const char *name, struct ferry_err *err)
{
  struct sqlite_store *s = S(cs);
  const char *p[] = {name};
  int changed = 0;
  pthread_mutex_lock(&s->lock);
  int r = exec_params(s, "DELETE FROM nodes WHERE name = ?", p, 1, &changed, err);
  pthread_mutex_unlock(&s->lock);
  if (r == 0 && changed == 0)
    return FERRY_NOTFOUND(err, "node \"%s\": no such node", name);
  return r;
}

/* ----------------------------------------------------------- migrations */

static int sq_mig_create(struct coord_store *cs, int64_t term, json_t *m, struct ferry_err *err)
{
  (void)term;
  struct sqlite_store *s = S(cs);
  const char *p[] = {json_str_or(m, "id", ""), json_str_or(m, "container", ""),
                     json_str_or(m, "origin", ""), json_str_or(m, "dest", ""),
                     json_integer_value(json_object_get(m, "keep")) ? "1" : "0",
                     json_str_or(m, "status", "running"), json_str_or(m, "agent_id", NULL),
                     json_str_or(m, "created", "")};
  pthread_mutex_lock(&s->lock);
  int r = exec_params(s, "INSERT INTO migrations(id, container, origin, dest, keep, status, agent_id,"
                         " created) VALUES(?,?,?,?,?,?,?,?)", p, 8, NULL, err);
  pthread_mutex_unlock(&s->lock);
  return r;
}

static int sq_mig_set(struct coord_store *cs, int64_t term, const char *id, json_t *set,
                      struct ferry_err *err)
{
  (void)term;
  static const char *const cols[] = {"status", "agent_id", "error", "finished", "report"};
  struct sqlite_store *s = S(cs);
  char sql[256] = "UPDATE migrations SET ";
  const char *p[6];
  int n = 0;
  for (size_t i = 0; i < ARRAY_SIZE(cols); i++) {
    json_t *v = json_object_get(set, cols[i]);
    if (!v)
      continue;
    snprintf(sql + strlen(sql), sizeof sql - strlen(sql), "%s%s = ?", n ? ", " : "", cols[i]);
    p[n++] = json_string_value(v); /* NULL for null */
  }
  if (n == 0)
    return 0;
  snprintf(sql + strlen(sql), sizeof sql - strlen(sql), " WHERE id = ?");
  p[n++] = id;
  pthread_mutex_lock(&s->lock);
  int r = exec_params(s, sql, p, n, NULL, err);
  pthread_mutex_unlock(&s->lock);
  return r;
}

static int sq_mig_phase(struct coord_store *cs, int64_t term, const char *id, const char *phase,
                        int seq, const char *at, long long ms, struct ferry_err *err)
{
  (void)term;
  struct sqlite_store *s = S(cs);
  char seqb[16], msb[32];
  snprintf(seqb, sizeof seqb, "%d", seq);
  snprintf(msb, sizeof msb, "%lld", ms);
  const char *p[] = {id, phase, seqb, at, ms >= 0 ? msb : NULL};
  pthread_mutex_lock(&s->lock);
  int r = exec_params(s, "INSERT INTO migration_phases(migration, phase, seq, at, ms) VALUES(?,?,?,?,?)"
                         " ON CONFLICT(migration, phase) DO UPDATE SET ms = coalesce(excluded.ms, ms)",
                      p, 5, NULL, err);
  pthread_mutex_unlock(&s->lock);
  return r;
}

static int sq_mig_get(struct coord_store *cs, const char *id, json_t **out, struct ferry_err *err)
{
  struct sqlite_store *s = S(cs);
  const char *p[] = {id};
  pthread_mutex_lock(&s->lock);
  json_t *rows = query(s, "SELECT * FROM migrations WHERE id = ?", p, 1, err);
  json_t *phases = rows ? query(s, "SELECT phase, at, ms FROM migration_phases WHERE migration = ?"
                                   " ORDER BY seq", p, 1, err)
                        : NULL;
  pthread_mutex_unlock(&s->lock);
  json_t *m = json_incref(json_array_get(rows, 0));
  json_decref(rows);
  if (!phases || !m) {
    json_decref(phases);
    json_decref(m);
    return phases ? FERRY_NOTFOUND(err, "migration %s: no such migration", id) : -EIO;
  }
  json_object_set_new(m, "phases", phases);
  *out = m;
  return 0;
}

static json_t *sq_mig_list(struct coord_store *cs, bool running_only, struct ferry_err *err)
{
  return locked_query(S(cs),
                      running_only ? "SELECT * FROM migrations WHERE status = 'running' ORDER BY created"
                                   : "SELECT * FROM migrations ORDER BY created",
                      NULL, 0, err);
}

static int sq_service_set(struct coord_store *cs, int64_t term, const char *name, const char *node,
                          const char *at, struct ferry_err *err)
{
  (void)term;
  struct sqlite_store *s = S(cs);
  const char *q[] = {name, node, at};
  pthread_mutex_lock(&s->lock);
  int r = exec_params(s, "INSERT INTO services(name, node, updated) VALUES(?,?,?) ON CONFLICT(name) DO"
                         " UPDATE SET node = excluded.node, updated = excluded.updated", q, 3, NULL, err);
  pthread_mutex_unlock(&s->lock);
  return r;
}

static int sq_leads(struct coord_store *cs, int64_t *term, char **leader)
{
  (void)cs;
  *term = 0;
  if (leader)
    *leader = NULL;
  return 1;
}

static const struct coord_store_ops sqlite_ops = {
    .name = "sqlite",
    .close = sq_close,
    .node_secret = sq_node_secret,
    .node_put = sq_node_put,
    .node_seen = sq_node_seen,
    .node_get = sq_node_get,
    .node_list = sq_node_list,
    .node_forget = sq_node_forget,
    .mig_create = sq_mig_create,
    .mig_set = sq_mig_set,
    .mig_phase = sq_mig_phase,
    .mig_get = sq_mig_get,
    .mig_list = sq_mig_list,
    .service_set = sq_service_set,
    .leads = sq_leads,
};

int coord_store_sqlite_open(const char *path, struct coord_store **out, struct ferry_err *err)
{
  struct sqlite_store *s = calloc(1, sizeof *s);
  if (!s)
    abort();
  s->base.ops = &sqlite_ops;
  pthread_mutex_init(&s->lock, NULL);
  if (sqlite3_open_v2(path, &s->db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_FULLMUTEX,
                      NULL) != SQLITE_OK) {
    int r = FERRY_INTERNAL(err, "database %s: %s", path, s->db ? sqlite3_errmsg(s->db) : "cannot open");
    sq_close(&s->base);
    return r;
  }
  sqlite3_busy_timeout(s->db, 5000);
  char *msg = NULL;
  if (sqlite3_exec(s->db, schema, NULL, NULL, &msg) != SQLITE_OK) {
    int r = FERRY_INTERNAL(err, "database %s: %s", path, msg ? msg : "schema");
    sqlite3_free(msg);
    sq_close(&s->base);
    return r;
  }
  /* databases of earlier versions: nodes without a secret (bound at their
   * next registration) and without an overlay */
  sqlite3_exec(s->db, "ALTER TABLE nodes ADD COLUMN secret_hash TEXT", NULL, NULL, NULL);
  sqlite3_exec(s->db, "ALTER TABLE nodes ADD COLUMN underlay TEXT", NULL, NULL, NULL);
  sqlite3_exec(s->db, "ALTER TABLE nodes ADD COLUMN overlay INTEGER", NULL, NULL, NULL);
  *out = &s->base;
  return 0;
}
