#include "orbit/visibility.h"

#include <math.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

struct job {
  const struct tle_set *set;
  const struct station *st;
  size_t nst;
  struct jtime t0;
  double span, step; /* minutes */
  size_t first, last;
  struct windows out;
  size_t cap;
};

static void push(struct job *j, const struct window *w)
{
  if (j->out.n == j->cap) {
    j->cap = j->cap ? j->cap * 2 : 256;
    struct window *nv = realloc(j->out.v, j->cap * sizeof *nv);
    if (!nv)
      abort();
    j->out.v = nv;
  }
  j->out.v[j->out.n++] = *w;
}

/* Elevation minus the station's minimum at t minutes from the start; NAN
 * when the model cannot propagate there. */
static double margin(struct sgp4 *s, const struct tle *tle, const struct station *st,
                     struct jtime t0, double t)
{
  struct jtime at = {t0.jd, t0.fr + t / 1440.0};
  double r[3], v[3], e[3], el, az;
  if (sgp4_propagate(s, jtime_tsince(tle, at), r, v) != 0)
    return NAN;
  teme_to_ecef(r, at.jd + at.fr, e);
  look_angles(st, e, &el, &az, NULL);
  return el - st->min_elevation_deg;
}

static double refine(struct sgp4 *s, const struct tle *tle, const struct station *st,
                     struct jtime t0, double a, double b, bool rising)
{
  /* the crossing lies in (a, b]: bisect to 0.1 s */
  while (b - a > 0.1 / 60.0) {
    double m = 0.5 * (a + b);
    double g = margin(s, tle, st, t0, m);
    bool up = g >= 0;
    if (up == rising)
      b = m;
    else
      a = m;
  }
  return b;
}

static void *run(void *arg)
{
  struct job *j = arg;
  size_t nsteps = (size_t)ceil(j->span / j->step);
  struct window *cur = malloc(j->nst * sizeof *cur);
  bool *inview = malloc(j->nst * sizeof *inview);
  if (!cur || !inview)
    abort();
  for (size_t si = j->first; si < j->last; si++) {
    const struct tle *tle = &j->set->v[si];
    struct sgp4 s;
    if (sgp4_init(&s, tle, NULL) < 0)
      continue;
    memset(inview, 0, j->nst * sizeof *inview);
    for (size_t k = 0; k <= nsteps; k++) {
      double t = k == nsteps ? j->span : (double)k * j->step;
      struct jtime at = {j->t0.jd, j->t0.fr + t / 1440.0};
      double r[3], v[3], e[3];
      if (sgp4_propagate(&s, jtime_tsince(tle, at), r, v) != 0) {
        /* the satellite is lost (decayed): close what is open */
        for (size_t q = 0; q < j->nst; q++)
          if (inview[q]) {
            cur[q].los = t;
            push(j, &cur[q]);
            inview[q] = false;
          }
        break;
      }
      teme_to_ecef(r, at.jd + at.fr, e);
      for (size_t q = 0; q < j->nst; q++) {
        double el, az;
        look_angles(&j->st[q], e, &el, &az, NULL);
        double g = el - j->st[q].min_elevation_deg;
        bool up = g >= 0;
        if (up && !inview[q]) {
          memset(&cur[q], 0, sizeof cur[q]);
          cur[q].sat = si;
          cur[q].station = q;
          if (k == 0) {
            cur[q].aos = 0;
            cur[q].open_start = true;
          } else {
            cur[q].aos = refine(&s, tle, &j->st[q], j->t0, t - j->step, t, true);
          }
          cur[q].max_el_deg = el;
          cur[q].t_max_el = t;
          inview[q] = true;
        } else if (!up && inview[q]) {
          cur[q].los = refine(&s, tle, &j->st[q], j->t0, t - j->step, t, false);
          push(j, &cur[q]);
          inview[q] = false;
        }
        if (up && el > cur[q].max_el_deg) {
          cur[q].max_el_deg = el;
          cur[q].t_max_el = t;
        }
      }
      if (k == nsteps)
        break;
    }
    for (size_t q = 0; q < j->nst; q++)
      if (inview[q]) {
        cur[q].los = j->span;
        cur[q].open_end = true;
        push(j, &cur[q]);
      }
  }
  free(cur);
  free(inview);
  return NULL;
}

static int cmp_window(const void *a, const void *b)
{
  const struct window *x = a, *y = b;
  if (x->station != y->station)
    return x->station < y->station ? -1 : 1;
  if (x->aos != y->aos)
    return x->aos < y->aos ? -1 : 1;
  return x->sat < y->sat ? -1 : x->sat > y->sat;
}

int visibility_windows(const struct tle_set *set, const struct station *st, size_t nst,
                       struct jtime t0, double span_min, double step_s, int threads,
                       struct windows *out, struct ferry_err *err)
{
  if (span_min <= 0 || step_s <= 0)
    return FERRY_INVALID(err, "visibility: the span and the step must be positive");
  if (threads < 1)
    threads = 1;
  if ((size_t)threads > set->n)
    threads = (int)set->n;
  struct job *jobs = calloc((size_t)threads, sizeof *jobs);
  pthread_t *th = calloc((size_t)threads, sizeof *th);
  if (!jobs || !th)
    abort();
  size_t per = (set->n + (size_t)threads - 1) / (size_t)threads;
  for (int i = 0; i < threads; i++) {
    jobs[i] = (struct job){.set = set, .st = st, .nst = nst, .t0 = t0, .span = span_min,
                           .step = step_s / 60.0, .first = (size_t)i * per,
                           .last = (size_t)(i + 1) * per > set->n ? set->n : (size_t)(i + 1) * per};
    if (i > 0)
      pthread_create(&th[i], NULL, run, &jobs[i]);
  }
  run(&jobs[0]);
  size_t total = jobs[0].out.n;
  for (int i = 1; i < threads; i++) {
    pthread_join(th[i], NULL);
    total += jobs[i].out.n;
  }
  out->v = malloc((total ? total : 1) * sizeof *out->v);
  if (!out->v)
    abort();
  out->n = 0;
  for (int i = 0; i < threads; i++) {
    if (jobs[i].out.n)
      memcpy(out->v + out->n, jobs[i].out.v, jobs[i].out.n * sizeof *out->v);
    out->n += jobs[i].out.n;
    free(jobs[i].out.v);
  }
  qsort(out->v, out->n, sizeof *out->v, cmp_window);
  free(jobs);
  free(th);
  return 0;
}

void windows_free(struct windows *w)
{
  free(w->v);
  w->v = NULL;
  w->n = 0;
}
