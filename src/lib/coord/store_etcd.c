/* The coordinator's store in etcd, for several coordinators: one of them
 * leads, elected with a lease (docs/coordinator.md, "High availability").
 *
 * Keys (values are JSON text unless said):
 *   ferry/leader           {"url"}: the leader's API; held by its lease. The
 *                          key's create revision is the leader's term.
 *   ferry/nodes/NAME       the node's record without last_seen_ms
 *   ferry/seen/NAME        last_seen_ms (text): heartbeats write only this, in
 *                          batches (one transaction of up to SEEN_BATCH keys
 *                          every SEEN_FLUSH_MS), after checking the node's
 *                          secret against a cache of the hashes
 *   ferry/secrets/NAME     the SHA-256 of the node's secret (hex)
 *   ferry/migrations/ID    the migration, its phases as {"PHASE": {"seq", "at", "ms"}}
 *   ferry/services/NAME    {"node", "updated"}
 * Every write of a migration or a service is a transaction that also compares
 * the leader key's create revision with the writer's term: a coordinator that
 * no longer leads cannot record anything. */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "coord/etcd.h"
#include "coord/store.h"
#include "util/cleanup.h"
#include "util/fs.h"
#include "util/json.h"
#include "util/log.h"

#define LEADER_KEY "ferry/leader"
/* etcd refuses a transaction of more than 128 operations by default */
#define SEEN_BATCH 100
#define SEEN_FLUSH_MS 250
/* a cached secret hash is read again after this long (a node forgotten and
 * registered again through another coordinator is seen within it) */
#define SECRET_CACHE_MS 30000
/* and all of them are read again at once this often */
#define SECRET_REFRESH_MS 10000

struct etcd_store {
  struct coord_store base;
  struct etcd *e;
  char *self_url;
  int ttl_s;
  coord_lead_fn on_lead;
  void *ud;
  pthread_t th;
  bool started;
  pthread_mutex_t lock;
  pthread_cond_t cond;
  bool stop;
  int64_t term;     /* under lock: > 0 while leading */
  char *leader_url; /* under lock: the leader as last seen (malloc'd) */
  /* heartbeats (under hb_lock): name -> {"h": secret hash or "", "at": ms
   * read}, and name -> last-seen ms not yet written */
  pthread_mutex_t hb_lock;
  json_t *secrets, *pending;
  pthread_t flush_th;
  bool flushing;
};

#define E(s) ((struct etcd_store *)(s))

static char *key_of(const char *kind, const char *name) { return xasprintf("ferry/%s/%s", kind, name); }

static json_t *arr(json_t *a, json_t *b, json_t *c)
{
  json_t *x = json_array();
  if (a)
    json_array_append_new(x, a);
  if (b)
    json_array_append_new(x, b);
  if (c)
    json_array_append_new(x, c);
  return x;
}

static json_t *parse(const char *text)
{
  json_t *j = NULL;
  if (json_parse(text, strlen(text), "etcd value", &j, NULL) < 0 || !json_is_object(j)) {
    json_decref(j);
    return NULL;
  }
  return j;
}

static bool pause_ms(struct etcd_store *s, int ms);

static int not_leader(struct ferry_err *err)
{
  return ferry_err_set(err, -ESTALE, FERRY_E_CONFLICT,
                       "this coordinator no longer leads: another one was elected");
}

/* ---------------------------------------------------------------- nodes */

static int et_node_put(struct coord_store *cs, json_t *n, const char *hash, bool expect_new,
                       struct ferry_err *err)
{
  struct etcd_store *s = E(cs);
  const char *name = json_str_or(n, "name", "");
  _cleanup_free_ char *nk = key_of("nodes", name), *sk = key_of("secrets", name),
                      *seenk = key_of("seen", name);
  _cleanup_json_ json_t *rec = json_deep_copy(n);
  json_object_del(rec, "last_seen_ms");
  struct etcd_kv old = {0};
  int r = etcd_get(s->e, nk, &old, err);
  if (r < 0)
    return r;
  if (r == 0) { /* a known node keeps its registration time */
    _cleanup_json_ json_t *o = parse(old.value);
    if (o && json_object_get(o, "registered"))
      json_object_set(rec, "registered", json_object_get(o, "registered"));
    etcd_kv_free(&old);
  }
  _cleanup_free_ char *text = json_dumps(rec, JSON_COMPACT | JSON_SORT_KEYS);
  char ms[32];
  snprintf(ms, sizeof ms, "%lld", (long long)json_integer_value(json_object_get(n, "last_seen_ms")));
  json_t *ops = arr(etcd_op_put(nk, text, 0), etcd_op_put(seenk, ms, 0),
                    hash ? etcd_op_put(sk, hash, 0) : NULL);
  bool ok = false;
  if ((r = etcd_txn(s->e, expect_new ? arr(etcd_cmp_create(sk, 0), NULL, NULL) : NULL, ops, NULL,
                    &ok, NULL, NULL, err)) < 0)
    return r;
  if (!ok)
    return FERRY_CONFLICT(err, "node \"%s\" was bound to a secret meanwhile", name);
  pthread_mutex_lock(&s->hb_lock);
  json_object_del(s->pending, name); /* written just now */
  if (hash)
    json_object_set_new(s->secrets, name,
                        json_pack("{s:s, s:I}", "h", hash, "at", (json_int_t)now_wall_ms()));
  pthread_mutex_unlock(&s->hb_lock);
  return 0;
}

static json_t *node_rec(const char *text, const char *seen)
{
  json_t *n = parse(text);
  if (n)
    json_object_set_new(n, "last_seen_ms", json_integer(seen ? strtoll(seen, NULL, 10) : 0));
  return n;
}

/* The node's secret hash ("" when it has none) as etcd has it now: 0, or
 * -ENOENT; cached for the heartbeats. */
static int secret_fetch(struct etcd_store *s, const char *name, char **hash, json_t **rec,
                        struct ferry_err *err)
{
  _cleanup_free_ char *nk = key_of("nodes", name), *sk = key_of("secrets", name);
  _cleanup_json_ json_t *out = NULL;
  bool ok = false;
  int r = etcd_txn(s->e, NULL, arr(etcd_op_get(nk), etcd_op_get(sk), NULL), NULL, &ok, &out, NULL,
                   err);
  if (r < 0)
    return r;
  struct etcd_kv n = {0}, sec = {0};
  if (etcd_txn_kv(out, 0, &n) != 0) {
    pthread_mutex_lock(&s->hb_lock);
    json_object_del(s->secrets, name);
    pthread_mutex_unlock(&s->hb_lock);
    return -ENOENT;
  }
  if (rec && !(*rec = node_rec(n.value, NULL))) {
    etcd_kv_free(&n);
    return FERRY_INTERNAL(err, "node \"%s\": its record in etcd is not JSON", name);
  }
  etcd_kv_free(&n);
  *hash = xstrdup(etcd_txn_kv(out, 1, &sec) == 0 ? sec.value : "");
  etcd_kv_free(&sec);
  pthread_mutex_lock(&s->hb_lock);
  json_object_set_new(s->secrets, name,
                      json_pack("{s:s, s:I}", "h", *hash, "at", (json_int_t)now_wall_ms()));
  pthread_mutex_unlock(&s->hb_lock);
  return 0;
}

static int et_node_secret(struct coord_store *cs, const char *name, char **hash, json_t **rec,
                          struct ferry_err *err)
{
  char *h = NULL;
  int r = secret_fetch(E(cs), name, &h, rec, err);
  if (r < 0)
    return r;
  if (!*h) { /* no secret: NULL */
    free(h);
    h = NULL;
  }
  *hash = h;
  return 0;
}

static bool hash_is(const char *have, const char *hash)
{
  return strcmp(have, hash ? hash : "") == 0 || !*have; /* a node without a secret takes any */
}

/* The secret is checked against the cached hash (read again when older than
 * SECRET_CACHE_MS or when it does not match); the time is written by the
 * flush thread with others. */
static int et_node_seen(struct coord_store *cs, const char *name, const char *hash, uint64_t ms,
                        struct ferry_err *err)
{
  struct etcd_store *s = E(cs);
  _cleanup_free_ char *have = NULL;
  pthread_mutex_lock(&s->hb_lock);
  json_t *c = json_object_get(s->secrets, name);
  if (c && now_wall_ms() - (uint64_t)json_integer_value(json_object_get(c, "at")) < SECRET_CACHE_MS)
    have = xstrdup(json_str_or(c, "h", ""));
  pthread_mutex_unlock(&s->hb_lock);
  if (!have || !hash_is(have, hash)) {
    free(have);
    have = NULL;
    int r = secret_fetch(s, name, &have, NULL, err);
    if (r < 0)
      return r;
  }
  if (!hash_is(have, hash))
    return -EACCES;
  if (!s->flushing) { /* a store without its flush thread writes at once */
    _cleanup_free_ char *seenk = key_of("seen", name);
    char msb[32];
    snprintf(msb, sizeof msb, "%llu", (unsigned long long)ms);
    bool ok = false;
    return etcd_txn(s->e, NULL, arr(etcd_op_put(seenk, msb, 0), NULL, NULL), NULL, &ok, NULL, NULL,
                    err);
  }
  pthread_mutex_lock(&s->hb_lock);
  json_object_set_new(s->pending, name, json_integer((json_int_t)ms));
  pthread_mutex_unlock(&s->hb_lock);
  return 0;
}

/* Writes the pending last-seen times, SEEN_BATCH to a transaction; those
 * that could not be written stay pending (unless newer ones came). */
static void seen_flush(struct etcd_store *s)
{
  pthread_mutex_lock(&s->hb_lock);
  json_t *batch = s->pending;
  s->pending = json_object();
  pthread_mutex_unlock(&s->hb_lock);
  const char *name;
  json_t *v, *ops = json_array();
  void *it = json_object_iter(batch);
  size_t failed = 0;
  struct ferry_err err = {0};
  while (it) {
    name = json_object_iter_key(it);
    v = json_object_iter_value(it);
    _cleanup_free_ char *k = key_of("seen", name);
    char msb[32];
    snprintf(msb, sizeof msb, "%lld", (long long)json_integer_value(v));
    json_array_append_new(ops, etcd_op_put(k, msb, 0));
    it = json_object_iter_next(batch, it);
    if (json_array_size(ops) == SEEN_BATCH || !it) {
      bool ok = false;
      if (etcd_txn(s->e, NULL, ops, NULL, &ok, NULL, NULL, &err) < 0)
        failed += json_array_size(ops);
      ops = json_array();
    }
  }
  json_decref(ops);
  if (failed) {
    log_warn("coord", "etcd: %zu heartbeat time(s) not written, tried again: %s", failed, err.msg);
    pthread_mutex_lock(&s->hb_lock);
    json_object_foreach(batch, name, v)
    {
      if (!json_object_get(s->pending, name))
        json_object_set(s->pending, name, v);
    }
    pthread_mutex_unlock(&s->hb_lock);
  }
  json_decref(batch);
}

/* Every node's secret hash in one read: the cache starts again from it
 * (a forgotten node drops out; one without a secret is kept while fresh). */
static void secrets_refresh(struct etcd_store *s)
{
  struct etcd_kv *kv = NULL;
  size_t n = 0;
  struct ferry_err err = {0};
  if (etcd_list(s->e, "ferry/secrets/", &kv, &n, &err) < 0) {
    log_warn("coord", "etcd: node secrets not read: %s", err.msg);
    return;
  }
  json_t *fresh = json_object();
  json_int_t now = (json_int_t)now_wall_ms();
  for (size_t i = 0; i < n; i++)
    json_object_set_new(fresh, kv[i].key + strlen("ferry/secrets/"),
                        json_pack("{s:s, s:I}", "h", kv[i].value, "at", now));
  etcd_kvs_free(kv, n);
  pthread_mutex_lock(&s->hb_lock);
  const char *name;
  json_t *v;
  json_object_foreach(s->secrets, name, v)
  {
    if (!*json_str_or(v, "h", "") && !json_object_get(fresh, name))
      json_object_set(fresh, name, v);
  }
  json_decref(s->secrets);
  s->secrets = fresh;
  pthread_mutex_unlock(&s->hb_lock);
}

static void *flush_main(void *arg)
{
  struct etcd_store *s = arg;
  bool stop = false;
  uint64_t refreshed = 0;
  while (!stop) {
    if (now_wall_ms() - refreshed >= SECRET_REFRESH_MS) {
      secrets_refresh(s);
      refreshed = now_wall_ms();
    }
    stop = pause_ms(s, SEEN_FLUSH_MS);
    seen_flush(s);
  }
  return NULL;
}

/* The newest of the stored and the pending time of name. */
static const char *seen_newest(struct etcd_store *s, const char *name, const char *stored,
                               char *buf, size_t len)
{
  pthread_mutex_lock(&s->hb_lock);
  json_t *p = json_object_get(s->pending, name);
  long long pm = p ? (long long)json_integer_value(p) : 0;
  pthread_mutex_unlock(&s->hb_lock);
  if (p && (!stored || pm > strtoll(stored, NULL, 10))) {
    snprintf(buf, len, "%lld", pm);
    return buf;
  }
  return stored;
}

static int et_node_get(struct coord_store *cs, const char *name, json_t **out,
                       struct ferry_err *err)
{
  _cleanup_free_ char *nk = key_of("nodes", name), *seenk = key_of("seen", name);
  _cleanup_json_ json_t *res = NULL;
  bool ok = false;
  int r = etcd_txn(E(cs)->e, NULL, arr(etcd_op_get(nk), etcd_op_get(seenk), NULL), NULL, &ok, &res,
                   NULL, err);
  if (r < 0)
    return r;
  struct etcd_kv n = {0}, seen = {0};
  if (etcd_txn_kv(res, 0, &n) != 0)
    return FERRY_NOTFOUND(err, "node \"%s\": no such node", name);
  etcd_txn_kv(res, 1, &seen);
  char buf[32];
  *out = node_rec(n.value, seen_newest(E(cs), name, seen.value, buf, sizeof buf));
  etcd_kv_free(&n);
  etcd_kv_free(&seen);
  return *out ? 0 : FERRY_INTERNAL(err, "node \"%s\": its record in etcd is not JSON", name);
}

static json_t *et_node_list(struct coord_store *cs, struct ferry_err *err)
{
  struct etcd_store *s = E(cs);
  struct etcd_kv *nodes = NULL, *seen = NULL;
  size_t nn = 0, ns = 0;
  if (etcd_list(s->e, "ferry/nodes/", &nodes, &nn, err) < 0)
    return NULL;
  if (etcd_list(s->e, "ferry/seen/", &seen, &ns, err) < 0) {
    etcd_kvs_free(nodes, nn);
    return NULL;
  }
  json_t *out = json_array();
  size_t k = 0;
  for (size_t i = 0; i < nn; i++) { /* both in key order: one pass */
    const char *name = nodes[i].key + strlen("ferry/nodes/");
    while (k < ns && strcmp(seen[k].key + strlen("ferry/seen/"), name) < 0)
      k++;
    const char *sv = k < ns && strcmp(seen[k].key + strlen("ferry/seen/"), name) == 0 ? seen[k].value
                                                                                   : NULL;
    char buf[32];
    json_t *n = node_rec(nodes[i].value, seen_newest(s, name, sv, buf, sizeof buf));
    if (n)
      json_array_append_new(out, n);
  }
  etcd_kvs_free(nodes, nn);
  etcd_kvs_free(seen, ns);
  return out;
}

static int et_node_forget(struct coord_store *cs, const char *name, struct ferry_err *err)
{
  _cleanup_free_ char *nk = key_of("nodes", name), *sk = key_of("secrets", name),
                      *seenk = key_of("seen", name);
  bool ok = false;
  int r = etcd_txn(E(cs)->e, arr(etcd_cmp_create(nk, 0), NULL, NULL), NULL,
                   arr(etcd_op_delete(nk), etcd_op_delete(sk), etcd_op_delete(seenk)), &ok, NULL,
                   NULL, err);
  if (r < 0)
    return r;
  pthread_mutex_lock(&E(cs)->hb_lock);
  json_object_del(E(cs)->secrets, name);
  json_object_del(E(cs)->pending, name);
  pthread_mutex_unlock(&E(cs)->hb_lock);
  if (ok) /* it did not exist */
    return FERRY_NOTFOUND(err, "node \"%s\": no such node", name);
  return 0;
}

/* ----------------------------------------------------------- migrations */

static int et_mig_create(struct coord_store *cs, int64_t term, json_t *m, struct ferry_err *err)
{
  if (term <= 0)
    return not_leader(err);
  _cleanup_free_ char *k = key_of("migrations", json_str_or(m, "id", ""));
  _cleanup_json_ json_t *rec = json_deep_copy(m);
  json_object_set_new(rec, "phases", json_object());
  _cleanup_free_ char *text = json_dumps(rec, JSON_COMPACT | JSON_SORT_KEYS);
  bool ok = false;
  int r = etcd_txn(E(cs)->e, arr(etcd_cmp_create(LEADER_KEY, term), etcd_cmp_create(k, 0), NULL),
                   arr(etcd_op_put(k, text, 0), NULL, NULL), NULL, &ok, NULL, NULL, err);
  if (r < 0)
    return r;
  return ok ? 0 : not_leader(err);
}

typedef void (*mig_edit_fn)(json_t *m, void *ud);

/* Read, edit, write back if nothing changed it meanwhile and the term is
 * still the leader's (a few tries). */
static int mig_update(struct etcd_store *s, int64_t term, const char *id, mig_edit_fn fn, void *ud,
                      struct ferry_err *err)
{
  if (term <= 0)
    return not_leader(err);
  _cleanup_free_ char *k = key_of("migrations", id);
  for (int attempt = 0; attempt < 8; attempt++) {
    struct etcd_kv kv = {0};
    int r = etcd_get(s->e, k, &kv, err);
    if (r < 0)
      return r;
    if (r == 1)
      return FERRY_NOTFOUND(err, "migration %s: no such migration", id);
    json_t *m = parse(kv.value);
    int64_t mod = kv.mod_rev;
    etcd_kv_free(&kv);
    if (!m)
      return FERRY_INTERNAL(err, "migration %s: its record in etcd is not JSON", id);
    fn(m, ud);
    char *text = json_dumps(m, JSON_COMPACT | JSON_SORT_KEYS);
    json_decref(m);
    bool ok = false;
    _cleanup_json_ json_t *out = NULL;
    r = etcd_txn(s->e, arr(etcd_cmp_create(LEADER_KEY, term), etcd_cmp_mod(k, mod), NULL),
                 arr(etcd_op_put(k, text, 0), NULL, NULL), arr(etcd_op_get(LEADER_KEY), NULL, NULL),
                 &ok, &out, NULL, err);
    free(text);
    if (r < 0 || ok)
      return r;
    struct etcd_kv lk = {0};
    bool still = etcd_txn_kv(out, 0, &lk) == 0 && lk.create_rev == term;
    etcd_kv_free(&lk);
    if (!still)
      return not_leader(err);
  }
  return FERRY_CONFLICT(err, "migration %s: changed under every attempt to record it", id);
}

static void edit_set(json_t *m, void *ud) { json_object_update(m, ud); }

static int et_mig_set(struct coord_store *cs, int64_t term, const char *id, json_t *set,
                      struct ferry_err *err)
{
  return mig_update(E(cs), term, id, edit_set, set, err);
}

struct phase_edit {
  const char *phase, *at;
  int seq;
  long long ms;
};

static void edit_phase(json_t *m, void *ud)
{
  struct phase_edit *pe = ud;
  json_t *ph = json_object_get(m, "phases");
  if (!json_is_object(ph)) {
    ph = json_object();
    json_object_set_new(m, "phases", ph);
  }
  json_t *p = json_object_get(ph, pe->phase);
  if (!p) {
    p = json_pack("{s:i, s:s, s:n}", "seq", pe->seq, "at", pe->at, "ms");
    json_object_set_new(ph, pe->phase, p);
  }
  if (pe->ms >= 0 && !json_is_integer(json_object_get(p, "ms")))
    json_object_set_new(p, "ms", json_integer(pe->ms));
}

static int et_mig_phase(struct coord_store *cs, int64_t term, const char *id, const char *phase,
                        int seq, const char *at, long long ms, struct ferry_err *err)
{
  struct phase_edit pe = {.phase = phase, .at = at, .seq = seq, .ms = ms};
  return mig_update(E(cs), term, id, edit_phase, &pe, err);
}

static int by_seq(const void *a, const void *b)
{
  json_int_t x = json_integer_value(json_object_get(*(json_t *const *)a, "seq"));
  json_int_t y = json_integer_value(json_object_get(*(json_t *const *)b, "seq"));
  return x < y ? -1 : x > y;
}

static int et_mig_get(struct coord_store *cs, const char *id, json_t **out, struct ferry_err *err)
{
  _cleanup_free_ char *k = key_of("migrations", id);
  struct etcd_kv kv = {0};
  int r = etcd_get(E(cs)->e, k, &kv, err);
  if (r < 0)
    return r;
  if (r == 1)
    return FERRY_NOTFOUND(err, "migration %s: no such migration", id);
  json_t *m = parse(kv.value);
  etcd_kv_free(&kv);
  if (!m)
    return FERRY_INTERNAL(err, "migration %s: its record in etcd is not JSON", id);
  /* the phases as the SQLite store gives them: in order, {"phase", "at", "ms"} */
  json_t *ph = json_object_get(m, "phases");
  size_t n = json_object_size(ph), i = 0;
  json_t **v = calloc(n + 1, sizeof *v);
  if (!v)
    abort();
  const char *name;
  json_t *p;
  json_object_foreach(ph, name, p)
  {
    v[i] = json_pack("{s:s, s:O, s:O, s:O}", "phase", name, "at", json_object_get(p, "at"), "ms",
                     json_object_get(p, "ms") ? json_object_get(p, "ms") : json_null(), "seq",
                     json_object_get(p, "seq") ? json_object_get(p, "seq") : json_integer(99));
    i++;
  }
  qsort(v, i, sizeof *v, by_seq);
  json_t *list = json_array();
  for (size_t k2 = 0; k2 < i; k2++) {
    json_object_del(v[k2], "seq");
    json_array_append_new(list, v[k2]);
  }
  free(v);
  json_object_set_new(m, "phases", list);
  *out = m;
  return 0;
}

static int by_created(const void *a, const void *b)
{
  json_t *x = *(json_t *const *)a, *y = *(json_t *const *)b;
  int c = strcmp(json_str_or(x, "created", ""), json_str_or(y, "created", ""));
  return c ? c : strcmp(json_str_or(x, "id", ""), json_str_or(y, "id", ""));
}

static json_t *et_mig_list(struct coord_store *cs, bool running_only, struct ferry_err *err)
{
  struct etcd_kv *kvs = NULL;
  size_t n = 0;
  if (etcd_list(E(cs)->e, "ferry/migrations/", &kvs, &n, err) < 0)
    return NULL;
  json_t **v = calloc(n + 1, sizeof *v);
  if (!v)
    abort();
  size_t m = 0;
  for (size_t i = 0; i < n; i++) {
    json_t *j = parse(kvs[i].value);
    if (!j)
      continue;
    if (running_only && strcmp(json_str_or(j, "status", ""), "running") != 0) {
      json_decref(j);
      continue;
    }
    json_object_del(j, "phases");
    v[m++] = j;
  }
  etcd_kvs_free(kvs, n);
  qsort(v, m, sizeof *v, by_created);
  json_t *out = json_array();
  for (size_t i = 0; i < m; i++)
    json_array_append_new(out, v[i]);
  free(v);
  return out;
}

static int et_service_set(struct coord_store *cs, int64_t term, const char *name, const char *node,
                          const char *at, struct ferry_err *err)
{
  if (term <= 0)
    return not_leader(err);
  _cleanup_free_ char *k = key_of("services", name);
  _cleanup_json_ json_t *rec = json_pack("{s:s, s:s}", "node", node, "updated", at);
  _cleanup_free_ char *text = json_dumps(rec, JSON_COMPACT | JSON_SORT_KEYS);
  bool ok = false;
  int r = etcd_txn(E(cs)->e, arr(etcd_cmp_create(LEADER_KEY, term), NULL, NULL),
                   arr(etcd_op_put(k, text, 0), NULL, NULL), NULL, &ok, NULL, NULL, err);
  if (r < 0)
    return r;
  return ok ? 0 : not_leader(err);
}

/* ----------------------------------------------------------- leadership */

static int et_leads(struct coord_store *cs, int64_t *term, char **leader)
{
  struct etcd_store *s = E(cs);
  pthread_mutex_lock(&s->lock);
  *term = s->term;
  if (leader)
    *leader = s->term == 0 && s->leader_url ? xstrdup(s->leader_url) : NULL;
  pthread_mutex_unlock(&s->lock);
  return *term > 0;
}

static void set_term(struct etcd_store *s, int64_t term, const char *leader_url)
{
  pthread_mutex_lock(&s->lock);
  bool changed = s->term != term;
  s->term = term;
  free(s->leader_url);
  s->leader_url = leader_url ? xstrdup(leader_url) : NULL;
  pthread_mutex_unlock(&s->lock);
  if (changed && s->on_lead)
    s->on_lead(s->ud, term);
}

/* Waits ms, or less when asked to stop; true when asked to stop. */
static bool pause_ms(struct etcd_store *s, int ms)
{
  pthread_mutex_lock(&s->lock);
  struct timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  ts.tv_nsec += (long)(ms % 1000) * 1000000L;
  ts.tv_sec += ms / 1000 + ts.tv_nsec / 1000000000L;
  ts.tv_nsec %= 1000000000L;
  if (!s->stop)
    pthread_cond_timedwait(&s->cond, &s->lock, &ts);
  bool stop = s->stop;
  pthread_mutex_unlock(&s->lock);
  return stop;
}

/* The election: a coordinator that does not lead tries every half second to
 * create the leader key under its lease; the one that leads refreshes its
 * lease three times per TTL and steps down when it could not for half a TTL
 * (each call takes at most a quarter of one): before etcd, which waits a
 * whole TTL, can give the key to another. */
static void *elect_main(void *arg)
{
  struct etcd_store *s = arg;
  int64_t lease = 0, term = 0;
  uint64_t last_ok = 0; /* when the last refresh that succeeded was sent */
  _cleanup_json_ json_t *me = json_pack("{s:s}", "url", s->self_url ? s->self_url : "");
  _cleanup_free_ char *me_text = json_dumps(me, JSON_COMPACT);
  char last_err[FERRY_ERR_MSG] = "";
  for (;;) {
    struct ferry_err err = {0};
    uint64_t sent = now_mono_ms();
    int wait_ms = 500;
    if (lease) {
      int64_t ttl = 0;
      if (etcd_lease_keepalive(s->e, lease, &ttl, &err) == 0) {
        if (ttl > 0) {
          last_ok = sent;
        } else { /* the lease is gone, and with it any leadership */
          lease = 0;
          if (term) {
            log_warn("coord", "leadership lost (term %lld): the lease expired", (long long)term);
            term = 0;
            set_term(s, 0, NULL);
          }
        }
      } else if (term && sent - last_ok > (uint64_t)s->ttl_s * 500) {
        log_warn("coord", "leadership given up (term %lld): etcd unreachable: %s", (long long)term,
                 err.msg);
        term = 0;
        lease = 0;
        set_term(s, 0, NULL);
      }
    }
    if (!term) {
      if (!lease && etcd_lease_grant(s->e, s->ttl_s, &lease, &err) == 0)
        last_ok = sent;
      if (lease) {
        bool ok = false;
        int64_t rev = 0;
        _cleanup_json_ json_t *out = NULL;
        if (etcd_txn(s->e, arr(etcd_cmp_create(LEADER_KEY, 0), NULL, NULL),
                     arr(etcd_op_put(LEADER_KEY, me_text, lease), NULL, NULL),
                     arr(etcd_op_get(LEADER_KEY), NULL, NULL), &ok, &out, &rev, &err) == 0) {
          if (ok) {
            term = rev;
            log_info("coord", "leading (term %lld)", (long long)term);
            set_term(s, term, NULL);
          } else {
            struct etcd_kv lk = {0};
            _cleanup_json_ json_t *lj = NULL;
            if (etcd_txn_kv(out, 0, &lk) == 0)
              lj = parse(lk.value);
            etcd_kv_free(&lk);
            set_term(s, 0, json_str_or(lj, "url", NULL));
          }
        }
      }
    } else {
      wait_ms = s->ttl_s * 1000 / 3;
    }
    if (err.msg[0] && strcmp(err.msg, last_err) != 0)
      log_warn("coord", "etcd: %s", err.msg);
    snprintf(last_err, sizeof last_err, "%s", err.msg);
    if (pause_ms(s, wait_ms))
      break;
  }
  /* leaving: hand the leadership over at once */
  if (lease)
    etcd_lease_revoke(s->e, lease, NULL);
  if (term)
    set_term(s, 0, NULL);
  return NULL;
}

static void et_close(struct coord_store *cs)
{
  struct etcd_store *s = E(cs);
  /* one stop for both threads */
  pthread_mutex_lock(&s->lock);
  s->stop = true;
  pthread_cond_broadcast(&s->cond);
  pthread_mutex_unlock(&s->lock);
  if (s->started)
    pthread_join(s->th, NULL);
  if (s->flushing)
    pthread_join(s->flush_th, NULL); /* it writes what is pending as it ends */
  json_decref(s->secrets);
  json_decref(s->pending);
  pthread_mutex_destroy(&s->hb_lock);
  etcd_close(s->e);
  free(s->self_url);
  free(s->leader_url);
  pthread_mutex_destroy(&s->lock);
  pthread_cond_destroy(&s->cond);
  free(s);
}

static const struct coord_store_ops etcd_ops = {
    .name = "etcd",
    .close = et_close,
    .node_secret = et_node_secret,
    .node_put = et_node_put,
    .node_seen = et_node_seen,
    .node_get = et_node_get,
    .node_list = et_node_list,
    .node_forget = et_node_forget,
    .mig_create = et_mig_create,
    .mig_set = et_mig_set,
    .mig_phase = et_mig_phase,
    .mig_get = et_mig_get,
    .mig_list = et_mig_list,
    .service_set = et_service_set,
    .leads = et_leads,
};

int coord_store_etcd_open(const struct coord_etcd_options *o, struct coord_store **out,
                          struct ferry_err *err)
{
  struct etcd_store *s = calloc(1, sizeof *s);
  if (!s)
    abort();
  s->base.ops = &etcd_ops;
  pthread_mutex_init(&s->lock, NULL);
  pthread_cond_init(&s->cond, NULL);
  pthread_mutex_init(&s->hb_lock, NULL);
  s->secrets = json_object();
  s->pending = json_object();
  s->ttl_s = o->lease_ttl_s >= 2 ? o->lease_ttl_s : 10;
  s->self_url = o->self_url ? xstrdup(o->self_url) : NULL;
  s->on_lead = o->on_lead;
  s->ud = o->ud;
  int r;
  if ((r = etcd_open(o->urls, &s->e, err)) < 0) {
    et_close(&s->base);
    return r;
  }
  etcd_set_timeout(s->e, s->ttl_s / 4 > 1 ? s->ttl_s / 4 : 1);
  /* etcd must answer before the coordinator says it is ready */
  struct etcd_kv kv = {0};
  if ((r = etcd_get(s->e, LEADER_KEY, &kv, err)) < 0) {
    et_close(&s->base);
    return r;
  }
  etcd_kv_free(&kv);
  if (o->on_lead) { /* a store opened only to read or forget has no election */
    if (pthread_create(&s->th, NULL, elect_main, s) != 0) {
      et_close(&s->base);
      return FERRY_INTERNAL(err, "cannot start the election thread");
    }
    s->started = true;
    if (pthread_create(&s->flush_th, NULL, flush_main, s) != 0) {
      et_close(&s->base);
      return FERRY_INTERNAL(err, "cannot start the heartbeat writer");
    }
    s->flushing = true;
  }
  *out = &s->base;
  return 0;
}
