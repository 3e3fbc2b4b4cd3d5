#include "coord/etcd.h"

#include <openssl/evp.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "http/http.h"
#include "util/cleanup.h"
#include "util/fs.h"
#include "util/json.h"
#include "util/strv.h"

struct etcd {
  char **urls;
  size_t n;
  pthread_mutex_t lock;
  size_t cur; /* the endpoint that answered last (under lock) */
  int timeout_s;
  struct http_pool *pool; /* connections to the members, kept open */
};

void etcd_set_timeout(struct etcd *e, int seconds) { e->timeout_s = seconds > 0 ? seconds : 5; }

int etcd_open(const char *urls, struct etcd **out, struct ferry_err *err)
{
  struct etcd *e = calloc(1, sizeof *e);
  if (!e)
    abort();
  pthread_mutex_init(&e->lock, NULL);
  e->timeout_s = 5;
  e->pool = http_pool_new();
  _cleanup_free_ char *copy = xstrdup(urls ? urls : "");
  char *save = NULL;
  for (char *t = strtok_r(copy, ",", &save); t; t = strtok_r(NULL, ",", &save)) {
    if (strncmp(t, "http://", 7) != 0 && strncmp(t, "https://", 8) != 0) {
      etcd_close(e);
      return FERRY_INVALID(err, "etcd endpoint \"%.200s\": expected http://HOST:PORT", t);
    }
    e->urls = realloc(e->urls, (e->n + 1) * sizeof *e->urls);
    if (!e->urls)
      abort();
    e->urls[e->n++] = xstrdup(t);
  }
  if (e->n == 0) {
    etcd_close(e);
    return FERRY_INVALID(err, "etcd: no endpoint given (--etcd http://HOST:PORT[,...])");
  }
  *out = e;
  return 0;
}

void etcd_close(struct etcd *e)
{
  if (!e)
    return;
  for (size_t i = 0; i < e->n; i++)
    free(e->urls[i]);
  free(e->urls);
  http_pool_free(e->pool);
  pthread_mutex_destroy(&e->lock);
  free(e);
}

int etcd_call(struct etcd *e, const char *rpc, json_t *body, json_t **out, struct ferry_err *err)
{
  _cleanup_free_ char *path = xasprintf("/v3/%s", rpc);
  pthread_mutex_lock(&e->lock);
  size_t first = e->cur;
  pthread_mutex_unlock(&e->lock);
  struct ferry_err last = {0};
  for (size_t k = 0; k < e->n; k++) {
    size_t i = (first + k) % e->n;
    struct http_client *c = NULL;
    if (http_client_new(e->urls[i], &c, &last) < 0)
      continue;
    http_client_set_timeout(c, e->timeout_s);
    http_client_set_pool(c, e->pool);
    http_client_set_peer(c, "the etcd member", NULL);
    struct ferry_err ce = {0};
    int r = http_call(c, "POST", path, body, out, &ce);
    http_client_free(c);
    /* not reached, or a member that cannot serve (no leader, 503): the next */
    if (r < 0 && (ce.code != -EIO || ce.klass == FERRY_E_UNAVAILABLE)) {
      last = ce;
      continue;
    }
    pthread_mutex_lock(&e->lock);
    e->cur = i;
    pthread_mutex_unlock(&e->lock);
    if (r < 0)
      return ferry_err_set(err, r, ce.klass == FERRY_E_INVALID ? FERRY_E_CONFLICT : ce.klass,
                           "etcd %s: %s", rpc, ce.msg);
    return 0;
  }
  return ferry_err_set(err, -EHOSTUNREACH, FERRY_E_UNAVAILABLE,
                       "etcd: none of %zu endpoint(s) answered (%s first): %s", e->n,
                       e->urls[first], last.msg);
}

/* ------------------------------------------------------------ encoding */

static char *b64(const char *s, size_t n)
{
  char *o = malloc(4 * ((n + 2) / 3) + 1);
  if (!o)
    abort();
  EVP_EncodeBlock((unsigned char *)o, (const unsigned char *)s, (int)n);
  return o;
}

static json_t *b64j(const char *s) { char *o = b64(s, strlen(s)); json_t *j = json_string(o); free(o); return j; }

/* Decoded text (NUL-terminated), or NULL when it is not base64. */
static char *unb64(const char *s)
{
  size_t n = strlen(s);
  if (n % 4)
    return NULL;
  char *o = malloc(n / 4 * 3 + 1);
  if (!o)
    abort();
  int m = n ? EVP_DecodeBlock((unsigned char *)o, (const unsigned char *)s, (int)n) : 0;
  if (m < 0) {
    free(o);
    return NULL;
  }
  while (n > 0 && s[n - 1] == '=') { /* EVP_DecodeBlock counts the padding */
    m--;
    n--;
  }
  o[m] = '\0';
  return o;
}

static int64_t num(json_t *o, const char *k)
{
  json_t *v = json_object_get(o, k);
  if (json_is_integer(v))
    return json_integer_value(v);
  return json_is_string(v) ? strtoll(json_string_value(v), NULL, 10) : 0;
}

static json_t *numj(int64_t v)
{
  char b[24];
  snprintf(b, sizeof b, "%lld", (long long)v);
  return json_string(b);
}

static int kv_from(json_t *j, struct etcd_kv *kv)
{
  memset(kv, 0, sizeof *kv);
  kv->key = unb64(json_str_or(j, "key", ""));
  kv->value = unb64(json_str_or(j, "value", ""));
  if (!kv->key || !kv->value) {
    etcd_kv_free(kv);
    return -1;
  }
  kv->create_rev = num(j, "create_revision");
  kv->mod_rev = num(j, "mod_revision");
  kv->lease = num(j, "lease");
  return 0;
}

void etcd_kv_free(struct etcd_kv *kv)
{
  free(kv->key);
  free(kv->value);
  kv->key = kv->value = NULL;
}

void etcd_kvs_free(struct etcd_kv *kv, size_t n)
{
  for (size_t i = 0; kv && i < n; i++)
    etcd_kv_free(&kv[i]);
  free(kv);
}

/* --------------------------------------------------------------- keys */

int etcd_get(struct etcd *e, const char *key, struct etcd_kv *kv, struct ferry_err *err)
{
  _cleanup_json_ json_t *req = json_pack("{s:o}", "key", b64j(key));
  _cleanup_json_ json_t *out = NULL;
  int r = etcd_call(e, "kv/range", req, &out, err);
  if (r < 0)
    return r;
  json_t *k0 = json_array_get(json_object_get(out, "kvs"), 0);
  if (!k0)
    return 1;
  if (kv_from(k0, kv) < 0)
    return FERRY_INTERNAL(err, "etcd: key %s: an answer that is not base64", key);
  return 0;
}

/* The end of the range of keys that start with prefix. */
static char *prefix_end(const char *prefix)
{
  char *end = xstrdup(prefix);
  size_t n = strlen(end);
  while (n > 0 && (unsigned char)end[n - 1] == 0xff)
    end[--n] = '\0';
  if (n > 0)
    end[n - 1]++;
  return end;
}

int etcd_list(struct etcd *e, const char *prefix, struct etcd_kv **kvs, size_t *n,
              struct ferry_err *err)
{
  _cleanup_free_ char *end = prefix_end(prefix);
  _cleanup_json_ json_t *req = json_pack("{s:o, s:o}", "key", b64j(prefix), "range_end", b64j(end));
  _cleanup_json_ json_t *out = NULL;
  int r = etcd_call(e, "kv/range", req, &out, err);
  if (r < 0)
    return r;
  json_t *arr = json_object_get(out, "kvs");
  size_t m = json_array_size(arr), k = 0;
  struct etcd_kv *v = calloc(m + 1, sizeof *v);
  if (!v)
    abort();
  for (size_t i = 0; i < m; i++)
    if (kv_from(json_array_get(arr, i), &v[k]) == 0)
      k++;
  *kvs = v;
  *n = k;
  return 0;
}

int etcd_put(struct etcd *e, const char *key, const char *value, int64_t lease,
             struct ferry_err *err)
{
  _cleanup_json_ json_t *req = etcd_op_put(key, value, lease);
  json_t *inner = json_object_get(req, "request_put");
  _cleanup_json_ json_t *out = NULL;
  return etcd_call(e, "kv/put", inner, &out, err);
}

int etcd_delete(struct etcd *e, const char *key, int64_t *deleted, struct ferry_err *err)
{
  _cleanup_json_ json_t *req = json_pack("{s:o}", "key", b64j(key));
  _cleanup_json_ json_t *out = NULL;
  int r = etcd_call(e, "kv/deleterange", req, &out, err);
  if (r == 0 && deleted)
    *deleted = num(out, "deleted");
  return r;
}

/* -------------------------------------------------------- transactions */

json_t *etcd_cmp_create(const char *key, int64_t rev)
{
  return json_pack("{s:o, s:s, s:s, s:o}", "key", b64j(key), "target", "CREATE", "result",
                   "EQUAL", "create_revision", numj(rev));
}

json_t *etcd_cmp_mod(const char *key, int64_t rev)
{
  return json_pack("{s:o, s:s, s:s, s:o}", "key", b64j(key), "target", "MOD", "result", "EQUAL",
                   "mod_revision", numj(rev));
}

json_t *etcd_cmp_value(const char *key, const char *v)
{
  return json_pack("{s:o, s:s, s:s, s:o}", "key", b64j(key), "target", "VALUE", "result",
                   "EQUAL", "value", b64j(v));
}

json_t *etcd_op_put(const char *key, const char *value, int64_t lease)
{
  json_t *p = json_pack("{s:o, s:o}", "key", b64j(key), "value", b64j(value));
  if (lease)
    json_object_set_new(p, "lease", numj(lease));
  return json_pack("{s:o}", "request_put", p);
}

json_t *etcd_op_get(const char *key)
{
  return json_pack("{s:{s:o}}", "request_range", "key", b64j(key));
}

json_t *etcd_op_delete(const char *key)
{
  return json_pack("{s:{s:o}}", "request_delete_range", "key", b64j(key));
}

int etcd_txn(struct etcd *e, json_t *compare, json_t *success, json_t *failure, bool *ok,
             json_t **out, int64_t *rev, struct ferry_err *err)
{
  _cleanup_json_ json_t *req = json_object();
  json_object_set_new(req, "compare", compare ? compare : json_array());
  json_object_set_new(req, "success", success ? success : json_array());
  json_object_set_new(req, "failure", failure ? failure : json_array());
  json_t *res = NULL;
  int r = etcd_call(e, "kv/txn", req, &res, err);
  if (r < 0)
    return r;
  *ok = json_is_true(json_object_get(res, "succeeded"));
  if (rev)
    *rev = num(json_object_get(res, "header"), "revision");
  if (out)
    *out = res;
  else
    json_decref(res);
  return 0;
}

int etcd_txn_kv(json_t *txn_out, size_t i, struct etcd_kv *kv)
{
  json_t *resp = json_array_get(json_object_get(txn_out, "responses"), i);
  json_t *k0 = json_array_get(json_object_get(json_object_get(resp, "response_range"), "kvs"), 0);
  if (!k0 || kv_from(k0, kv) < 0)
    return 1;
  return 0;
}

/* -------------------------------------------------------------- leases */

int etcd_lease_grant(struct etcd *e, int ttl_s, int64_t *id, struct ferry_err *err)
{
  _cleanup_json_ json_t *req = json_pack("{s:o}", "TTL", numj(ttl_s));
  _cleanup_json_ json_t *out = NULL;
  int r = etcd_call(e, "lease/grant", req, &out, err);
  if (r < 0)
    return r;
  *id = num(out, "ID");
  if (*id == 0)
    return FERRY_INTERNAL(err, "etcd lease/grant: %s", json_str_or(out, "error", "no lease given"));
  return 0;
}

int etcd_lease_keepalive(struct etcd *e, int64_t id, int64_t *ttl, struct ferry_err *err)
{
  _cleanup_json_ json_t *req = json_pack("{s:o}", "ID", numj(id));
  _cleanup_json_ json_t *out = NULL;
  int r = etcd_call(e, "lease/keepalive", req, &out, err);
  if (r < 0)
    return r;
  *ttl = num(json_object_get(out, "result"), "TTL");
  return 0;
}

int etcd_lease_revoke(struct etcd *e, int64_t id, struct ferry_err *err)
{
  _cleanup_json_ json_t *req = json_pack("{s:o}", "ID", numj(id));
  _cleanup_json_ json_t *out = NULL;
  return etcd_call(e, "lease/revoke", req, &out, err);
}
