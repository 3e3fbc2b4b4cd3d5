#include "coord/plan.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "util/cleanup.h"
#include "util/json.h"

static void push(struct plan *p, size_t *cap, const struct handover *h)
{
  if (p->n == *cap) {
    *cap = *cap ? *cap * 2 : 64;
    struct handover *nv = realloc(p->v, *cap * sizeof *nv);
    if (!nv)
      abort();
    p->v = nv;
  }
  p->v[p->n++] = *h;
}

/* Among the station's windows, the one in view at t (aos <= t < los), other
 * than satellite `not`, that sets last; NULL if none. */
static const struct window *best_at(const struct window *w, size_t n, double t, long not)
{
  const struct window *best = NULL;
  for (size_t i = 0; i < n; i++) {
    if (w[i].aos > t)
      break; /* sorted by aos */
    if (w[i].los > t && (long)w[i].sat != not && (!best || w[i].los > best->los))
      best = &w[i];
  }
  return best;
}

/* The first window to rise after t (of a satellite other than `not`). */
static const struct window *next_rise(const struct window *w, size_t n, double t, long not)
{
  for (size_t i = 0; i < n; i++)
    if (w[i].aos > t && (long)w[i].sat != not)
      return &w[i];
  return NULL;
}

int plan_handovers(const struct windows *ws, const struct service *svc, size_t nsvc,
                   struct plan *out, struct ferry_err *err)
{
  (void)err;
  out->v = NULL;
  out->n = 0;
  size_t cap = 0;
  for (size_t s = 0; s < nsvc; s++) {
    /* the windows of this service's station: contiguous, sorted by aos */
    size_t first = 0, n = 0;
    while (first < ws->n && ws->v[first].station != svc[s].station)
      first++;
    while (first + n < ws->n && ws->v[first + n].station == svc[s].station)
      n++;
    const struct window *w = ws->v + first;
    double t = 0;
    const struct window *cur = best_at(w, n, 0, -1);
    double gap = 0;
    if (!cur) {
      cur = next_rise(w, n, 0, -1);
      if (!cur)
        continue; /* no satellite ever in view: nothing to plan */
      t = cur->aos;
      gap = t;
    }
    struct handover h = {.service = s, .at = t, .from_sat = -1, .to_sat = (long)cur->sat,
                         .to_los = cur->los, .to_open_end = cur->open_end, .gap_min = gap};
    push(out, &cap, &h);
    /* bounded: every move goes to a window that sets later than the current */
    for (size_t guard = 0; guard < n + 1 && !cur->open_end; guard++) {
      double at = cur->los - svc[s].lead_min;
      if (at < t)
        at = t;
      const struct window *nx = best_at(w, n, at, (long)cur->sat);
      gap = 0;
      if (!nx || nx->los <= cur->los) {
        nx = next_rise(w, n, at, (long)cur->sat);
        if (nx && nx->los <= cur->los)
          nx = NULL;
        if (!nx)
          break;
        gap = nx->aos > cur->los ? nx->aos - cur->los : 0;
        at = nx->aos > at ? nx->aos : at;
      }
      h = (struct handover){.service = s, .at = at, .from_sat = (long)cur->sat,
                            .to_sat = (long)nx->sat, .to_los = nx->los,
                            .to_open_end = nx->open_end, .gap_min = gap};
      push(out, &cap, &h);
      cur = nx;
      t = at;
    }
  }
  return 0;
}

void plan_free(struct plan *p)
{
  free(p->v);
  p->v = NULL;
  p->n = 0;
}

int services_load(const char *path, const struct station *st, size_t nst, struct service **out,
                  size_t *n, struct ferry_err *err)
{
  _cleanup_json_ json_t *j = NULL;
  int r = json_load(path, &j, err);
  if (r < 0)
    return r;
  json_t *arr = json_is_array(j) ? j : json_object_get(j, "services");
  if (!json_is_array(arr) || json_array_size(arr) == 0)
    return FERRY_INVALID(err, "%s: expected an array of services", path);
  struct service *v = calloc(json_array_size(arr), sizeof *v);
  if (!v)
    abort();
  size_t i;
  json_t *e;
  json_array_foreach(arr, i, e)
  {
    const char *name = json_str_or(e, "name", NULL), *sta = json_str_or(e, "station", NULL);
    json_t *lead = json_object_get(e, "lead_s");
    if (!name || !sta || (lead && (!json_is_number(lead) || json_number_value(lead) < 0))) {
      free(v);
      return FERRY_INVALID(err, "%s: service %zu: needs \"name\", \"station\" and a "
                                "non-negative \"lead_s\"", path, i + 1);
    }
    size_t k = 0;
    while (k < nst && strcmp(st[k].name, sta) != 0)
      k++;
    if (k == nst) {
      free(v);
      return FERRY_NOTFOUND(err, "%s: service \"%s\": no ground station \"%s\"", path, name, sta);
    }
    snprintf(v[i].name, sizeof v[i].name, "%s", name);
    v[i].station = k;
    v[i].lead_min = (lead ? json_number_value(lead) : 60.0) / 60.0;
  }
  *out = v;
  *n = json_array_size(arr);
  return 0;
}
