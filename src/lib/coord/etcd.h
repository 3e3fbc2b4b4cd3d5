/* A small client of etcd v3's JSON gateway (POST /v3/...; keys and values in
 * base64, 64-bit numbers as strings), over libcurl and jansson: what
 * ferry-coord needs of etcd as its store and for electing its leader (ranges,
 * puts, deletes, transactions, leases). Several endpoints: a call goes to the
 * one that answered last, and on to the next when that one cannot be reached. */
#pragma once
#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>

#include "util/err.h"

struct etcd;

/* urls: "http://HOST:PORT[,http://HOST:PORT...]". */
int etcd_open(const char *urls, struct etcd **out, struct ferry_err *err);
void etcd_close(struct etcd *e);
/* How long one call may take, per endpoint (default 5 s). */
void etcd_set_timeout(struct etcd *e, int seconds);

/* One RPC ("kv/range", "kv/txn", "lease/grant", ...): *out its answer. An
 * endpoint that cannot be reached is skipped; etcd's own refusals are errors
 * (FERRY_E_CONFLICT for a failed precondition, FERRY_E_UNAVAILABLE when no
 * endpoint answered). */
int etcd_call(struct etcd *e, const char *rpc, json_t *body, json_t **out, struct ferry_err *err);

/* A key/value as etcd shows it, decoded. */
struct etcd_kv {
  char *key, *value;   /* NUL-terminated (values are ferry's JSON text) */
  int64_t create_rev, mod_rev, lease;
};
void etcd_kv_free(struct etcd_kv *kv);
void etcd_kvs_free(struct etcd_kv *kv, size_t n);

/* 0: found (*kv filled); 1: no such key. */
int etcd_get(struct etcd *e, const char *key, struct etcd_kv *kv, struct ferry_err *err);
/* Every key under prefix, in key order. */
int etcd_list(struct etcd *e, const char *prefix, struct etcd_kv **kvs, size_t *n,
              struct ferry_err *err);
int etcd_put(struct etcd *e, const char *key, const char *value, int64_t lease,
             struct ferry_err *err);
/* *deleted: how many keys went. */
int etcd_delete(struct etcd *e, const char *key, int64_t *deleted, struct ferry_err *err);

/* Builders of a transaction's comparisons and operations. */
json_t *etcd_cmp_create(const char *key, int64_t rev);   /* create_revision == rev (0: absent) */
json_t *etcd_cmp_mod(const char *key, int64_t rev);      /* mod_revision == rev */
json_t *etcd_cmp_value(const char *key, const char *v);  /* value == v */
json_t *etcd_op_put(const char *key, const char *value, int64_t lease);
json_t *etcd_op_get(const char *key);
json_t *etcd_op_delete(const char *key);
/* compare/success/failure: arrays (stolen). *ok: the comparisons held;
 * *out (optional): the answer; *rev: the store's revision after it. */
int etcd_txn(struct etcd *e, json_t *compare, json_t *success, json_t *failure, bool *ok,
             json_t **out, int64_t *rev, struct ferry_err *err);
/* The first key/value of a transaction's range answer number i, decoded
 * (0: found, 1: none). */
int etcd_txn_kv(json_t *txn_out, size_t i, struct etcd_kv *kv);

int etcd_lease_grant(struct etcd *e, int ttl_s, int64_t *id, struct ferry_err *err);
/* *ttl: what is left of the lease after the refresh, 0 when it is gone. */
int etcd_lease_keepalive(struct etcd *e, int64_t id, int64_t *ttl, struct ferry_err *err);
int etcd_lease_revoke(struct etcd *e, int64_t id, struct ferry_err *err);
