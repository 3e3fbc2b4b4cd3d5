/* ferry-coord's state and operations: the node registry (registration,
 * heartbeats, a node that misses them is down and never chosen), migrations
 * carried out by the agents and recorded phase by phase, in SQLite (one
 * coordinator) or etcd (several, one of them leading: store.h). A restart or
 * a new leader loses nothing and resolves migrations that were in flight by
 * asking the agents. */
#pragma once
#include <jansson.h>
#include <pthread.h>
#include <stdbool.h>

#include "coord/store.h"
#include "http/http.h"
#include "util/err.h"

struct coord_options {
  const char *db_path;      /* SQLite (one coordinator), or */
  const char *etcd;         /* etcd endpoints http://HOST:PORT[,...] (several coordinators) */
  const char *self_url;     /* etcd: this coordinator's API, where the others forward moves */
  int lease_ttl_s;          /* etcd: a leader silent this long is replaced (default 10) */
  const char *token;        /* bearer token towards the agents (and required from callers on TCP) */
  const char *tls_ca;
  int heartbeat_timeout_s;  /* a node silent for longer is down (default 15) */
  int migration_timeout_s;  /* default 600 */
};

struct coord {
  struct coord_store *store;
  pthread_mutex_t lock;     /* guards plan_ms and handovers_started */
  volatile bool closing;
  char *token, *tls_ca;
  int heartbeat_timeout_s, migration_timeout_s;
  pthread_mutex_t run_lock;
  pthread_cond_t run_cond;
  int running;              /* migration threads alive */
  /* the satellite policy, when one runs (under lock): when its visibility
   * plan was made (ms since the epoch, 0: no plan) and the handovers it
   * started since the coordinator started */
  uint64_t plan_ms;
  uint64_t handovers_started;
};

int coord_open(struct coord *c, const struct coord_options *o, struct ferry_err *err);
void coord_close(struct coord *c);

/* {"name", "url", "satellite"?, "node_secret"?} (also the seed's
 * {"hostname"|"node", "ip"|"address", "port"}). A name's first
 * registration binds it to a new secret, returned once as "node_secret";
 * every later registration and heartbeat of that name must carry it (403
 * otherwise): a holder of the cluster token cannot speak for another node. */
int coord_node_register(struct coord *c, json_t *req, json_t **out, struct ferry_err *err);
int coord_node_heartbeat(struct coord *c, const char *name, const char *secret,
                         struct ferry_err *err);
/* Removes a node (and so its binding) from a store: the operator's way out
 * for a node that lost its secret (ferry-coord node forget). */
int coord_node_forget(struct coord_store *st, const char *name, struct ferry_err *err);
json_t *coord_node_list(struct coord *c);
/* The up node that runs container (every up node is asked), or NULL. */
json_t *coord_find_running(struct coord *c, const char *container);
int coord_node_get(struct coord *c, const char *name, json_t **out, struct ferry_err *err);

/* {"container", "from"?, "to", "keep"} or {"deployment", "originNode", "destNode"} or
 * {"name", "namespace", "destinationUrl", "keep", "redirect"}; *out: {"id", ...}. */
int coord_migrate(struct coord *c, json_t *req, json_t **out, struct ferry_err *err);
int coord_migration_get(struct coord *c, const char *id, json_t **out, struct ferry_err *err);
json_t *coord_migration_list(struct coord *c);
/* The id of a migration of container still running (malloc'd), or NULL. */
char *coord_migration_running(struct coord *c, const char *container);
/* The term this coordinator leads in (0 with SQLite), or -1 when another
 * coordinator leads. Only the leader starts migrations; the others hand
 * them to it. */
int64_t coord_term(struct coord *c);
/* Blocks until migration id ends (or timeout_s). */
json_t *coord_migration_wait(struct coord *c, const char *id, int timeout_s);

/* GET /metrics: Prometheus text (malloc'd), *len its length. */
char *coord_metrics_text(struct coord *c, size_t *len);

/* The REST API (api/ server dispatch callback). */
void coord_dispatch(void *ctx, const struct http_request *req, struct http_response *resp);
