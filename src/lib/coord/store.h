/* Where ferry-coord keeps its nodes, migrations and services: SQLite (one
 * coordinator, the default) or etcd (any number of coordinators, one leader
 * elected among them). coord.c speaks only through these operations; each
 * store keeps the same records (JSON objects with the same fields).
 *
 * Leadership: a coordinator starts and records migrations only while it
 * leads, in a numbered term. A write that records a migration names the term
 * it was decided in and fails (FERRY_E_CONFLICT) once another term began, so
 * a deposed leader can record nothing. With SQLite the one coordinator always
 * leads, in term 0. */
#pragma once
#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>

#include "util/err.h"

struct coord_store;

/* Called (from the store's own thread) when this coordinator starts or
 * stops leading: term > 0 the new term, 0 leadership lost. */
typedef void (*coord_lead_fn)(void *ud, int64_t term);

struct coord_store_ops {
  const char *name; /* "sqlite", "etcd" */
  void (*close)(struct coord_store *s);

  /* nodes: {"name", "url", "satellite", "registered", "last_seen_ms",
   * "underlay", "overlay"} (the secret's hash never leaves the store) */
  /* 0 and *hash (malloc'd, NULL when the node has none) when the node exists,
   * and *rec (when rec is not NULL) its record; -ENOENT when it does not */
  int (*node_secret)(struct coord_store *s, const char *name, char **hash, json_t **rec,
                     struct ferry_err *err);
  /* Inserts or updates n; an existing node keeps its "registered" time and
   * its secret. hash: the secret of a new node (NULL: keep). When expect_new
   * is set the write fails (-EEXIST) if somebody bound the name meanwhile. */
  int (*node_put)(struct coord_store *s, json_t *n, const char *hash, bool expect_new,
                  struct ferry_err *err);
  /* A heartbeat: 0, -ENOENT (no such node) or -EACCES (its secret's hash is
   * not hash; a node without a secret accepts any). */
  int (*node_seen)(struct coord_store *s, const char *name, const char *hash, uint64_t ms,
                   struct ferry_err *err);
  int (*node_get)(struct coord_store *s, const char *name, json_t **out, struct ferry_err *err);
  /* by name */
  json_t *(*node_list)(struct coord_store *s, struct ferry_err *err);
  int (*node_forget)(struct coord_store *s, const char *name, struct ferry_err *err);

  /* migrations: {"id", "container", "origin", "dest", "keep" (0/1),
   * "status", "agent_id", "error", "created", "finished", "report" (text)} */
  int (*mig_create)(struct coord_store *s, int64_t term, json_t *m, struct ferry_err *err);
  /* Sets the fields of set on migration id. */
  int (*mig_set)(struct coord_store *s, int64_t term, const char *id, json_t *set,
                 struct ferry_err *err);
  /* Records a phase when first seen, and its duration when known (ms >= 0). */
  int (*mig_phase)(struct coord_store *s, int64_t term, const char *id, const char *phase, int seq,
                   const char *at, long long ms, struct ferry_err *err);
  /* The migration with "phases": [{"phase", "at", "ms"}] in seq order. */
  int (*mig_get)(struct coord_store *s, const char *id, json_t **out, struct ferry_err *err);
  /* by creation time; running_only: those with status "running" */
  json_t *(*mig_list)(struct coord_store *s, bool running_only, struct ferry_err *err);
  int (*service_set)(struct coord_store *s, int64_t term, const char *name, const char *node,
                     const char *at, struct ferry_err *err);

  /* 1 when this coordinator leads (*term its term), 0 when it does not
   * (*leader: the leader's URL, malloc'd, or NULL when none is known). */
  int (*leads)(struct coord_store *s, int64_t *term, char **leader);
};

struct coord_store {
  const struct coord_store_ops *ops;
};

int coord_store_sqlite_open(const char *path, struct coord_store **out, struct ferry_err *err);

struct coord_etcd_options {
  const char *urls;      /* http://HOST:PORT[,...] */
  const char *self_url;  /* this coordinator's API, as the others forward to it */
  int lease_ttl_s;       /* a leader silent this long is replaced (default 10) */
  coord_lead_fn on_lead;
  void *ud;
};
int coord_store_etcd_open(const struct coord_etcd_options *o, struct coord_store **out,
                          struct ferry_err *err);
