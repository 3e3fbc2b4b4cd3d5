/* The satellite-visibility placement policy: each service is kept on a
 * satellite its ground station sees, and moved, lead time before that
 * satellite's loss of signal, to the satellite in view that stays in view
 * longest. When none is in view at that moment, the service moves to the
 * next satellite to rise, as it rises (the plan records the gap). */
#pragma once
#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>

#include "orbit/visibility.h"
#include "util/err.h"

struct service {
  char name[64];
  size_t station;   /* index into the stations */
  double lead_min;  /* move this long before loss of signal */
};

struct handover {
  size_t service;
  double at;        /* minutes from the plan's start */
  long from_sat;    /* -1: first placement */
  long to_sat;
  double to_los;    /* when the new satellite sets (minutes) */
  bool to_open_end; /* it is still in view at the plan's end */
  double gap_min;   /* time with no satellite in view before this move */
};

struct plan {
  struct handover *v;
  size_t n;
};

int plan_handovers(const struct windows *w, const struct service *svc, size_t nsvc,
                   struct plan *out, struct ferry_err *err);
void plan_free(struct plan *p);

/* services file (JSON): [{"name", "station", "lead_s"}] */
int services_load(const char *path, const struct station *st, size_t nst, struct service **out,
                  size_t *n, struct ferry_err *err);
