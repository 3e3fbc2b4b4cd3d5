/* The live satellite-visibility policy of ferry-coord: on a simulated clock
 * (real time times a scale, from a chosen start), each service is kept on a
 * node whose satellite its ground station sees. Lead time before that
 * satellite sets — or at once when its node is down — the service is moved
 * to the node whose satellite is in view and stays in view longest. Nodes
 * name their satellite when they register (ferryd --satellite).
 *
 * With Celestial (--celestial URL) as the position source, the policy asks
 * GET URL/gst/{station} which satellites the station reaches (host names
 * "ID.SHELL.celestial", which nodes register as their satellite); there is no
 * prediction, so a service moves when its satellite drops out of that list. */
#pragma once
#include <pthread.h>
#include <stdbool.h>

#include "coord/coord.h"
#include "coord/plan.h"
#include "orbit/visibility.h"

struct policy {
  struct coord *c;
  struct tle_set set;
  struct station *st;
  size_t nst;
  struct service *svc;
  size_t nsvc;
  struct windows w;
  struct jtime sim_start;
  double scale;
  double horizon_min;
  uint64_t real_start_ms;
  int tick_ms;
  char **running_id;  /* per service: the coordinator migration in flight, or NULL */
  char **node;        /* per service: the node it was last seen on */
  int64_t term;       /* the leadership term these were taken in (-1: none yet) */
  char *celestial;     /* Celestial's info API base URL, or NULL: positions from the TLEs */
  char **station_names; /* with Celestial: the ground stations by name */
  pthread_t th;
  pthread_mutex_t lock;
  pthread_cond_t cond;
  bool stop, started;
};

struct policy_options {
  const char *tle, *stations, *services;
  const char *celestial; /* instead of tle+stations: Celestial's GET /gst/{name} */
  const char *sim_start; /* ISO 8601; default: now */
  const char *sim_anchor; /* ISO 8601: the real time at which the simulated clock reads
                           * sim_start (default: the policy's start). Coordinators that
                           * share one anchor agree on the simulated time. */
  double scale;          /* default 1 */
  double horizon_h;      /* windows computed this far ahead (default 24) */
  int tick_ms;           /* default 200 */
};

int policy_start(struct policy *p, struct coord *c, const struct policy_options *o,
                 struct ferry_err *err);
void policy_stop(struct policy *p);
/* Simulated minutes since the start. */
double policy_now(const struct policy *p);
