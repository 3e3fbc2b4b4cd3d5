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

/* The crossing of a station's minimum elevation in (a, b], to 0.1 s. */
typedef double (*crossing_fn)(void *ctx, const struct station *st, double a, double b, bool rising);

/* One step at t of the pair (satellite si, station q): its window opens
 * (cross finds where), closes, or has a new highest point. */
static void window_step(struct job *out, struct window *w, bool *inview, size_t si, size_t q,
                        const struct station *st, double t, double step, bool first, bool up,
                        double el, crossing_fn cross, void *ctx)
{
  if (up && !*inview) {
    memset(w, 0, sizeof *w);
    w->sat = si;
    w->station = q;
    if (first) {
      w->aos = 0;
      w->open_start = true;
    } else {
      w->aos = cross(ctx, st, t - step, t, true);
    }
    w->max_el_deg = el;
    w->t_max_el = t;
    *inview = true;
  } else if (!up && *inview) {
    w->los = cross(ctx, st, t - step, t, false);
    push(out, w);
    *inview = false;
  }
  if (up && el > w->max_el_deg) {
    w->max_el_deg = el;
    w->t_max_el = t;
  }
}

/* The windows still open at the span's end. */
static void windows_close_open(struct job *out, struct window *cur, bool *inview, size_t nst,
                               double span)
{
  for (size_t q = 0; q < nst; q++)
    if (inview[q]) {
      cur[q].los = span;
      cur[q].open_end = true;
      push(out, &cur[q]);
    }
}

struct brute_ctx {
  struct sgp4 *s;
  const struct tle *tle;
  struct jtime t0;
};

static double brute_cross(void *ctx, const struct station *st, double a, double b, bool rising)
{
  struct brute_ctx *c = ctx;
  return refine(c->s, c->tle, st, c->t0, a, b, rising);
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
      struct brute_ctx bc = {&s, tle, j->t0};
      for (size_t q = 0; q < j->nst; q++) {
        double el, az;
        look_angles(&j->st[q], e, &el, &az, NULL);
        window_step(j, &cur[q], &inview[q], si, q, &j->st[q], t, j->step, k == 0,
                    el - j->st[q].min_elevation_deg >= 0, el, brute_cross, &bc);
      }
      if (k == nsteps)
        break;
    }
    windows_close_open(j, cur, inview, j->nst, j->span);
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

static int collect(struct job *jobs, int threads, struct windows *out);

int visibility_windows_brute(const struct tle_set *set, const struct station *st, size_t nst,
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
  for (int i = 1; i < threads; i++)
    pthread_join(th[i], NULL);
  free(th);
  return collect(jobs, threads, out);
}

/* The windows of every job, in one sorted array; frees the jobs. */
static int collect(struct job *jobs, int threads, struct windows *out)
{
  size_t total = 0;
  for (int i = 0; i < threads; i++)
    total += jobs[i].out.n;
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
  return 0;
}

void windows_free(struct windows *w)
{
  free(w->v);
  w->v = NULL;
  w->n = 0;
}

/* ---- culled: the same windows without sampling every pair at every step ----
 *
 * Each satellite is propagated (SGP4) only at coarse samples, every
 * COARSE_S seconds on the step grid: its Earth-fixed position and velocity
 * there make a cubic Hermite interpolant, metres from SGP4's own path in
 * LEO (error ~ h^4 r w^4 / 384), whose elevation is what the fine steps and
 * the bisections look at. A station is looked at within a coarse interval
 * only when the satellite can be in its view there: the angle between the
 * satellite and the station seen from the Earth's centre is at most
 * gamma_max (the largest at which the satellite, at its highest, clears the
 * station's minimum elevation, with a margin for the ellipsoid) and changes
 * at most at the satellite's angular rate w, so with angles a and b at the
 * ends of an interval of length h it stays above (a + b - w h) / 2. The
 * fine steps are the brute force's own grid, and crossings are bisected to
 * the same 0.1 s, so the windows are the same, to well under a second. */

#define COARSE_S 120.0
#define OMEGA_E (7.29211585e-5 * 60.0) /* the Earth's rotation, rad/min */

struct sat_track {
  size_t ncoarse;
  double dt;        /* minutes between coarse samples (the last may be shorter) */
  double *t;        /* minutes of each sample */
  double (*r)[3];   /* Earth-fixed km */
  double (*v)[3];   /* Earth-fixed km/min */
  double (*u)[3];   /* r's unit vector */
};

struct cjob {
  const struct tle_set *set;
  const struct station *st;
  size_t nst;
  struct jtime t0;
  double span, step; /* minutes */
  size_t nsteps;     /* fine steps: t_j = j * step for j < nsteps, t_nsteps = span */
  size_t every;      /* fine steps per coarse sample */
  const double *gc, *gs; /* cos/sin of GMST at each coarse sample */
  size_t *next;      /* the next satellite to take (shared) */
  pthread_mutex_t *lock;
  struct job out;    /* windows found (out.out, out.cap) */
  size_t fallbacks;  /* satellites left to the brute force (SGP4 failed somewhere) */
};

static double fine_t(const struct cjob *j, size_t k)
{
  return k >= j->nsteps ? j->span : (double)k * j->step;
}

/* r at t (minutes) on the interpolant. */
static void track_at(const struct sat_track *tr, double t, double out[3])
{
  size_t k = (size_t)(t / tr->dt);
  if (k + 1 >= tr->ncoarse)
    k = tr->ncoarse - 2;
  double h = tr->t[k + 1] - tr->t[k];
  double s = (t - tr->t[k]) / h, s2 = s * s, s3 = s2 * s;
  double h00 = 2 * s3 - 3 * s2 + 1, h10 = s3 - 2 * s2 + s, h01 = -2 * s3 + 3 * s2,
         h11 = s3 - s2;
  for (int i = 0; i < 3; i++)
    out[i] = h00 * tr->r[k][i] + h10 * h * tr->v[k][i] + h01 * tr->r[k + 1][i] +
             h11 * h * tr->v[k + 1][i];
}

/* Whether the satellite is at or above the station's minimum elevation at
 * t, on the interpolant (the sine of its elevation against the minimum's:
 * look_angles' zenith component over the range, without its arc
 * functions), and its elevation in degrees when asked and it is. */
static bool track_up(const struct sat_track *tr, const struct station *st, double sin_min,
                     double t, double *el_out)
{
  double r[3];
  track_at(tr, t, r);
  double rho[3] = {r[0] - st->ecef[0], r[1] - st->ecef[1], r[2] - st->ecef[2]};
  double z = st->coslat * st->coslon * rho[0] + st->coslat * st->sinlon * rho[1] +
             st->sinlat * rho[2];
  double d = sqrt(rho[0] * rho[0] + rho[1] * rho[1] + rho[2] * rho[2]);
  bool up = z >= d * sin_min;
  if (up && el_out) {
    double el, az;
    look_angles(st, r, &el, &az, NULL); /* the same formula as the brute force's */
    if (el < st->min_elevation_deg) /* the two sides of one rounding */
      el = st->min_elevation_deg;
    *el_out = el;
  }
  return up;
}

static double track_refine(const struct sat_track *tr, const struct station *st, double sin_min,
                           double a, double b, bool rising)
{
  while (b - a > 0.1 / 60.0) { /* as the brute force: to 0.1 s */
    double m = 0.5 * (a + b);
    bool up = track_up(tr, st, sin_min, m, NULL);
    if (up == rising)
      b = m;
    else
      a = m;
  }
  return b;
}

struct track_ctx {
  const struct sat_track *tr;
  double sin_min;
};

static double track_cross(void *ctx, const struct station *st, double a, double b, bool rising)
{
  struct track_ctx *c = ctx;
  return track_refine(c->tr, st, c->sin_min, a, b, rising);
}

/* Samples the satellite at the coarse times; false when SGP4 cannot
 * propagate it somewhere in the span. */
static bool track_make(const struct cjob *j, const struct tle *tle, struct sgp4 *s,
                       struct sat_track *tr)
{
  for (size_t k = 0; k < tr->ncoarse; k++) {
    double t = tr->t[k];
    struct jtime at = {j->t0.jd, j->t0.fr + t / 1440.0};
    double r[3], v[3];
    if (sgp4_propagate(s, jtime_tsince(tle, at), r, v) != 0)
      return false;
    double c = j->gc[k], sn = j->gs[k];
    double *e = tr->r[k], *ev = tr->v[k];
    e[0] = c * r[0] + sn * r[1];
    e[1] = -sn * r[0] + c * r[1];
    e[2] = r[2];
    /* d/dt of the rotation: the Earth turns under the satellite */
    ev[0] = (c * v[0] + sn * v[1]) * 60.0 + OMEGA_E * e[1];
    ev[1] = (-sn * v[0] + c * v[1]) * 60.0 - OMEGA_E * e[0];
    ev[2] = v[2] * 60.0;
    double n = sqrt(e[0] * e[0] + e[1] * e[1] + e[2] * e[2]);
    for (int i = 0; i < 3; i++)
      tr->u[k][i] = e[i] / n;
  }
  return true;
}

/* The largest angle from the Earth's centre between station st and a
 * satellite at radius rho (km) that still clears the station's minimum
 * elevation, with margins for the ellipsoid (geodetic and geocentric
 * zenith differ by up to 0.2 degrees). */
static double gamma_max(const struct station *st, double rho)
{
  double R = sqrt(st->ecef[0] * st->ecef[0] + st->ecef[1] * st->ecef[1] +
                  st->ecef[2] * st->ecef[2]);
  double eps = (st->min_elevation_deg - 0.5) * M_PI / 180.0;
  if (eps < -M_PI / 2 + 0.01)
    return M_PI;
  double c = R / rho * cos(eps);
  if (c >= 1)
    return 0;
  return acos(c) - eps + 0.5 * M_PI / 180.0;
}

static void cull_one(struct cjob *j, size_t si, struct sat_track *tr, struct window *cur,
                     bool *inview, double (*sn)[3])
{
  const struct tle *tle = &j->set->v[si];
  struct sgp4 s;
  if (sgp4_init(&s, tle, NULL) < 0)
    return;
  if (!track_make(j, tle, &s, tr)) {
    /* lost somewhere (decayed): the brute force finds where */
    struct job b = {.set = j->set, .st = j->st, .nst = j->nst, .t0 = j->t0, .span = j->span,
                    .step = j->step, .first = si, .last = si + 1};
    run(&b);
    for (size_t i = 0; i < b.out.n; i++)
      push(&j->out, &b.out.v[i]);
    free(b.out.v);
    j->fallbacks++;
    return;
  }
  /* the satellite's highest point and fastest angular rate, with margins */
  double rho = 0, w = 0;
  for (size_t k = 0; k < tr->ncoarse; k++) {
    const double *r = tr->r[k], *v = tr->v[k];
    double n2 = r[0] * r[0] + r[1] * r[1] + r[2] * r[2];
    double cx = r[1] * v[2] - r[2] * v[1], cy = r[2] * v[0] - r[0] * v[2],
           cz = r[0] * v[1] - r[1] * v[0];
    double rate = sqrt(cx * cx + cy * cy + cz * cz) / n2;
    if (n2 > rho)
      rho = n2;
    if (rate > w)
      w = rate;
  }
  rho = sqrt(rho) * 1.01 + 5.0;
  w *= 1.25;
  memset(inview, 0, j->nst * sizeof *inview);
  for (size_t q = 0; q < j->nst; q++) {
    const struct station *st = &j->st[q];
    double sin_min = sin(st->min_elevation_deg * M_PI / 180.0);
    double gmax = gamma_max(st, rho);
    double wh = w * tr->dt;
    double cfilter = gmax + wh >= M_PI ? -2.0 : cos(gmax + wh);
    size_t kf = 0; /* fine steps done */
    const double *n = sn[q];
    double db = n[0] * tr->u[0][0] + n[1] * tr->u[0][1] + n[2] * tr->u[0][2];
    for (size_t k = 0; k + 1 < tr->ncoarse; k++) {
      size_t kend = k + 2 == tr->ncoarse ? j->nsteps : (k + 1) * j->every;
      double da = db;
      db = n[0] * tr->u[k + 1][0] + n[1] * tr->u[k + 1][1] + n[2] * tr->u[k + 1][2];
      bool maybe = inview[q];
      if (!maybe && (da >= cfilter || db >= cfilter)) {
        double a = acos(da > 1 ? 1 : da < -1 ? -1 : da), b = acos(db > 1 ? 1 : db < -1 ? -1 : db);
        double h = tr->t[k + 1] - tr->t[k];
        maybe = (a + b - w * h) / 2 <= gmax;
      }
      if (!maybe) {
        kf = kend;
        continue;
      }
      /* the brute force's steps in (t_k, t_k+1], and t_0 first */
      struct track_ctx tc = {tr, sin_min};
      for (size_t f = kf == 0 && k == 0 ? 0 : kf + 1; f <= kend; f++) {
        double t = fine_t(j, f), el = 0;
        bool up = track_up(tr, st, sin_min, t, &el);
        window_step(&j->out, &cur[q], &inview[q], si, q, st, t, j->step, f == 0, up, el,
                    track_cross, &tc);
      }
      kf = kend;
    }
  }
  windows_close_open(&j->out, cur, inview, j->nst, j->span);
}

static void *cull_run(void *arg)
{
  struct cjob *j = arg;
  struct sat_track tr = {0};
  size_t nc = (j->nsteps + j->every - 1) / j->every + 1;
  tr.ncoarse = nc;
  tr.dt = (double)j->every * j->step;
  tr.t = malloc(nc * sizeof *tr.t);
  tr.r = malloc(nc * sizeof *tr.r);
  tr.v = malloc(nc * sizeof *tr.v);
  tr.u = malloc(nc * sizeof *tr.u);
  struct window *cur = malloc(j->nst * sizeof *cur);
  bool *inview = malloc(j->nst * sizeof *inview);
  double (*sn)[3] = malloc(j->nst * sizeof *sn);
  if (!tr.t || !tr.r || !tr.v || !tr.u || !cur || !inview || !sn)
    abort();
  for (size_t k = 0; k < nc; k++)
    tr.t[k] = fine_t(j, k * j->every);
  for (size_t q = 0; q < j->nst; q++) {
    const double *p = j->st[q].ecef;
    double n = sqrt(p[0] * p[0] + p[1] * p[1] + p[2] * p[2]);
    for (int i = 0; i < 3; i++)
      sn[q][i] = p[i] / n;
  }
  for (;;) {
    pthread_mutex_lock(j->lock);
    size_t first = *j->next;
    *j->next += 64;
    pthread_mutex_unlock(j->lock);
    if (first >= j->set->n)
      break;
    size_t last = first + 64 < j->set->n ? first + 64 : j->set->n;
    for (size_t si = first; si < last; si++)
      cull_one(j, si, &tr, cur, inview, sn);
  }
  free(tr.t);
  free(tr.r);
  free(tr.v);
  free(tr.u);
  free(cur);
  free(inview);
  free(sn);
  return NULL;
}

int visibility_windows(const struct tle_set *set, const struct station *st, size_t nst,
                       struct jtime t0, double span_min, double step_s, int threads,
                       struct windows *out, struct ferry_err *err)
{
  if (span_min <= 0 || step_s <= 0)
    return FERRY_INVALID(err, "visibility: the span and the step must be positive");
  double step = step_s / 60.0;
  size_t nsteps = (size_t)ceil(span_min / step);
  size_t every = (size_t)floor(COARSE_S / step_s);
  if (every < 1)
    every = 1;
  /* steps longer than the interpolant's interval: sparse enough as it is */
  if (nsteps < 2 || nst == 0 || set->n == 0 || step_s > COARSE_S)
    return visibility_windows_brute(set, st, nst, t0, span_min, step_s, threads, out, err);
  if (threads < 1)
    threads = 1;
  size_t nc = (nsteps + every - 1) / every + 1;
  double *gc = malloc(nc * sizeof *gc), *gs = malloc(nc * sizeof *gs);
  struct cjob *jobs = calloc((size_t)threads, sizeof *jobs);
  pthread_t *th = calloc((size_t)threads, sizeof *th);
  if (!gc || !gs || !jobs || !th)
    abort();
  for (size_t k = 0; k < nc; k++) {
    double t = k * every >= nsteps ? span_min : (double)(k * every) * step;
    double g = gmst(t0.jd + t0.fr + t / 1440.0);
    gc[k] = cos(g);
    gs[k] = sin(g);
  }
  size_t next = 0;
  pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
  for (int i = 0; i < threads; i++) {
    jobs[i] = (struct cjob){.set = set, .st = st, .nst = nst, .t0 = t0, .span = span_min,
                            .step = step, .nsteps = nsteps, .every = every, .gc = gc, .gs = gs,
                            .next = &next, .lock = &lock};
    if (i > 0)
      pthread_create(&th[i], NULL, cull_run, &jobs[i]);
  }
  cull_run(&jobs[0]);
  for (int i = 1; i < threads; i++)
    pthread_join(th[i], NULL);
  free(th);
  free(gc);
  free(gs);
  struct job *plain = calloc((size_t)threads, sizeof *plain);
  if (!plain)
    abort();
  for (int i = 0; i < threads; i++)
    plain[i].out = jobs[i].out.out;
  free(jobs);
  return collect(plain, threads, out);
}
