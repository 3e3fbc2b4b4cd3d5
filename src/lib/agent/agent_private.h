/* The agent's own state: included by agent/ only (tests/module-bounds.sh
 * checks it); the other layers see struct agent through agent.h's calls. */
#pragma once
#include <pthread.h>
#include <stdint.h>

#include "agent/agent.h"

struct agent {
  char *id;
  char *root;
  struct image_store images;
  struct runtime rt;
  struct net_config net;
  struct overlay overlay;   /* vni 0: none (net/overlay.h) */
  char *subnet_str;
  pthread_mutex_t lock;     /* the store lock: held for instants only */
  pthread_mutex_t img_lock; /* image imports, among themselves */
  json_t *claims;           /* container id -> {"what", "serial"}: the claim that owns it (under lock) */
  uint64_t claim_serial;    /* the last claim's serial (under lock) */
  pthread_rwlock_t term_lock; /* held (read) while a coordinator's command is handled */
  int64_t coord_term;         /* the highest coordinator term heard of (agent_fence.c) */
  uint64_t started_ms;
  char *token;
  char *tls_ca;
  char *listen_ip;          /* NULL when not listening on a specific address */
  char listen_port[8];      /* the TCP API's port, "" when not listening */
  int migration_timeout_s;
  struct migrations *mig;   /* migrate/: state of migrations in and out */
  json_t *redirects;        /* published ports leading elsewhere for a while (under lock) */
  pthread_mutex_t ports_lock; /* one rebuild of the forwarding table at a time */
  json_t *seed_defaults;    /* seed /start_container: name -> what to run */
  struct subnet *peer_allow; /* where a seed pull may go (n_peer_allow entries); none: on-link */
  size_t n_peer_allow;
  struct agent_metrics *metrics; /* counters for GET /metrics (agent_metrics.c) */
  struct agent_hold *holds;      /* frozen containers' held traffic (agent_ops.c; under lock) */
};

/* One operation's hold on one container (agent_claim): its serial is the
 * one in a->claims while it holds. */
struct agent_claim {
  struct agent *a;
  json_t *rec;
  uint64_t serial;
};
/* Claims rec (by its id) for op, the store lock held by the caller: 409
 * while another claim holds it, or (idle) while its record has an op. */
int agent_claim_locked(struct agent *a, json_t *rec, const char *op, bool idle,
                       struct agent_claim **out, struct ferry_err *err);
/* Ends a claim whose holder already holds the store lock (frees it). */
void agent_release_locked(struct agent_claim *c);
/* A copy of a container from elsewhere (an offer, a restore) fits here:
 * its name, address and published ports (made this host's: ports
 * localized) are free. Caller holds the store lock. */
int agent_copy_fits_locked(struct agent *a, json_t *rec, struct ferry_err *err);
/* Ends the hold on veth, if any, its frames dropped. */
void agent_hold_drop(struct agent *a, const char *veth);
/* agent_ctr_thaw and agent_ctr_link_up of a record the caller owns
 * otherwise (the agent's own recovery at its start, a resume). */
void agent_thaw_rec(struct agent *a, json_t *rec);
int agent_link_up_rec(struct agent *a, json_t *rec, struct ferry_err *err);

/* ctr_save, and a warning naming the container and what the write was for
 * when it fails (where the caller cannot undo its step: what the record
 * said before is then what a restart's recovery acts on). */
void agent_save_or_log(struct agent *a, json_t *rec, const char *what);
