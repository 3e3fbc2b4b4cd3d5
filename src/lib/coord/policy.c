#include "coord/policy.h"

#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "util/cleanup.h"
#include "util/fs.h"
#include "util/json.h"
#include "util/log.h"

double policy_now(const struct policy *p)
{
  return ((double)now_wall_ms() - (double)p->real_start_ms) / 60000.0 * p->scale;
}

/* The window of satellite `sat` at `station` in view at t, or NULL. */
static const struct window *window_of(const struct policy *p, size_t station, const char *sat,
                                      double t)
{
  for (size_t i = 0; i < p->w.n; i++) {
    const struct window *w = &p->w.v[i];
    if (w->station == station && w->aos <= t && w->los > t &&
        strcmp(p->set.v[w->sat].name, sat) == 0)
      return w;
  }
  return NULL;
}

/* Celestial: the satellites station reaches now, as "ID.SHELL.celestial"
 * names with their delay (ms, or -1). */
static json_t *celestial_connected(struct policy *p, const char *station)
{
  struct http_client *cl = NULL;
  if (http_client_new(p->celestial, &cl, NULL) < 0)
    return NULL;
  http_client_set_peer(cl, "Celestial", NULL);
  http_client_set_timeout(cl, 3);
  _cleanup_free_ char *en = http_escape(station);
  _cleanup_free_ char *url = xasprintf("/gst/%s", en);
  json_t *out = NULL, *res = NULL;
  struct ferry_err err = {0};
  if (http_call(cl, "GET", url, NULL, &out, &err) == 0) {
    res = json_object();
    size_t i;
    json_t *c;
    json_array_foreach(json_object_get(out, "connectedSats"), i, c)
    {
      json_t *sat = json_object_get(c, "sat");
      json_t *id = json_object_get(sat, "sat"), *shell = json_object_get(sat, "shell");
      if (!json_is_integer(id) || !json_is_integer(shell))
        continue;
      _cleanup_free_ char *name = xasprintf("%lld.%lld.celestial", (long long)json_integer_value(id),
                                            (long long)json_integer_value(shell));
      json_t *d = json_object_get(c, "delay");
      json_object_set_new(res, name, json_real(json_is_number(d) ? json_number_value(d) : -1.0));
    }
  } else {
    log_warn("policy", "Celestial %s: %s", p->celestial, err.msg);
  }
  json_decref(out);
  http_client_free(cl);
  return res;
}

static void tick(struct policy *p)
{
  /* only the leading coordinator moves services; a new term starts from
   * what the store says (a move the former leader started is still its
   * service's move) */
  int64_t term = coord_term(p->c);
  if (term < 0)
    return;
  if (term != p->term) {
    for (size_t s = 0; s < p->nsvc; s++) {
      free(p->running_id[s]);
      free(p->node[s]);
      p->node[s] = NULL;
      p->running_id[s] = coord_migration_running(p->c, p->svc[s].name);
    }
    p->term = term;
  }
  double now = policy_now(p);
  json_t *nodes = coord_node_list(p->c);
  for (size_t s = 0; s < p->nsvc; s++) {
    const struct service *sv = &p->svc[s];
    /* a move under way: wait for its end */
    if (p->running_id[s]) {
      json_t *m = NULL;
      if (coord_migration_get(p->c, p->running_id[s], &m, NULL) == 0 &&
          strcmp(json_str_or(m, "status", ""), "running") == 0) {
        json_decref(m);
        continue;
      }
      if (m && strcmp(json_str_or(m, "status", ""), "succeeded") == 0) {
        free(p->node[s]);
        p->node[s] = xstrdup(json_str_or(m, "dest", ""));
      }
      json_decref(m);
      free(p->running_id[s]);
      p->running_id[s] = NULL;
    }
    /* where it runs now: the node it was last seen on, else ask the nodes */
    if (!p->node[s]) {
      json_t *found = coord_find_running(p->c, sv->name);
      if (found)
        p->node[s] = xstrdup(json_str_or(found, "name", ""));
      json_decref(found);
    }
    json_t *cur = NULL;
    size_t i;
    json_t *n;
    json_array_foreach(nodes, i, n) if (p->node[s] && strcmp(json_str_or(n, "name", ""), p->node[s]) == 0) cur = n;
    if (!cur)
      continue; /* not running anywhere we can reach: nothing to move */
    bool cur_up = strcmp(json_str_or(cur, "status", ""), "up") == 0;
    json_t *best = NULL;
    const struct window *cw = NULL;
    if (p->celestial) {
      json_t *conn = celestial_connected(p, p->station_names[sv->station]);
      if (!conn)
        continue; /* Celestial unreachable: no decision */
      bool due = !cur_up || !json_object_get(conn, json_str_or(cur, "satellite", ""));
      double best_delay = 0;
      json_array_foreach(nodes, i, n)
      {
        json_t *d = json_object_get(conn, json_str_or(n, "satellite", ""));
        if (!due || n == cur || !d || strcmp(json_str_or(n, "status", ""), "up") != 0)
          continue;
        double delay = json_number_value(d);
        if (!best || (delay >= 0 && delay < best_delay)) {
          best = n;
          best_delay = delay;
        }
      }
      json_decref(conn);
    } else {
      cw = window_of(p, sv->station, json_str_or(cur, "satellite", ""), now);
      bool due = !cur_up || !cw || cw->los - sv->lead_min <= now;
      if (!due)
        continue;
      /* the node whose satellite is in view and stays in view longest */
      double best_los = cw ? cw->los : now;
      json_array_foreach(nodes, i, n)
      {
        if (n == cur || strcmp(json_str_or(n, "status", ""), "up") != 0)
          continue;
        const struct window *w = window_of(p, sv->station, json_str_or(n, "satellite", ""), now);
        if (w && w->los > best_los) {
          best = n;
          best_los = w->los;
        }
      }
    }
    if (!best)
      continue;
    if (!cur_up) {
      /* its node is gone; the container went with it */
      log_warn("policy", "service %s: node %s is down", sv->name, json_str_or(cur, "name", ""));
      continue;
    }
    _cleanup_json_ json_t *req = json_pack("{s:s, s:s, s:s}", "container", sv->name, "from",
                                           json_str_or(cur, "name", ""), "to",
                                           json_str_or(best, "name", ""));
    json_t *out = NULL;
    struct ferry_err err = {0};
    if (coord_migrate(p->c, req, &out, &err) == 0) {
      char at[32];
      format_jd(p->sim_start.jd + p->sim_start.fr + now / 1440.0, at, sizeof at);
      log_info("policy", "service %s: %s -> %s at %s (simulated): %s", sv->name,
               json_str_or(cur, "name", ""), json_str_or(best, "name", ""), at,
               p->celestial ? "Celestial no longer connects its satellite"
               : cw         ? "its satellite sets"
                            : "its satellite is out of view");
      p->running_id[s] = xstrdup(json_str_or(out, "id", ""));
      json_decref(out);
      pthread_mutex_lock(&p->c->lock);
      p->c->handovers_started++;
      pthread_mutex_unlock(&p->c->lock);
    } else {
      log_warn("policy", "service %s: %s", sv->name, err.msg);
    }
  }
  json_decref(nodes);
}

static void *policy_main(void *arg)
{
  struct policy *p = arg;
  pthread_mutex_lock(&p->lock);
  while (!p->stop) {
    pthread_mutex_unlock(&p->lock);
    tick(p);
    pthread_mutex_lock(&p->lock);
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    ts.tv_nsec += (long)p->tick_ms * 1000000L;
    ts.tv_sec += ts.tv_nsec / 1000000000L;
    ts.tv_nsec %= 1000000000L;
    if (!p->stop)
      pthread_cond_timedwait(&p->cond, &p->lock, &ts);
  }
  pthread_mutex_unlock(&p->lock);
  return NULL;
}

int policy_start(struct policy *p, struct coord *c, const struct policy_options *o,
                 struct ferry_err *err)
{
  memset(p, 0, sizeof *p);
  p->c = c;
  p->scale = o->scale > 0 ? o->scale : 1.0;
  p->horizon_min = (o->horizon_h > 0 ? o->horizon_h : 24.0) * 60.0;
  p->tick_ms = o->tick_ms > 0 ? o->tick_ms : 200;
  pthread_mutex_init(&p->lock, NULL);
  pthread_cond_init(&p->cond, NULL);
  int r;
  if (o->sim_start) {
    if ((r = parse_time(o->sim_start, &p->sim_start, err)) < 0)
      return r;
  } else {
    uint64_t ms = now_wall_ms();
    p->sim_start.jd = (double)(ms / 86400000) + 2440587.5;
    p->sim_start.fr = (double)(ms % 86400000) / 86400000.0;
  }
  uint64_t anchor_ms = 0;
  if (o->sim_anchor) {
    struct jtime a;
    if ((r = parse_time(o->sim_anchor, &a, err)) < 0)
      return r;
    double ms = ((a.jd - 2440587.5) + a.fr) * 86400000.0;
    if (ms < 0)
      return FERRY_INVALID(err, "--sim-anchor %s: before 1970", o->sim_anchor);
    anchor_ms = (uint64_t)(ms + 0.5);
  }
  if (o->celestial) {
    /* the stations are only names, taken from the services file */
    _cleanup_json_ json_t *j = NULL;
    if ((r = json_load(o->services, &j, err)) < 0)
      return r;
    size_t i;
    json_t *e;
    p->st = calloc(json_array_size(j) + 1, sizeof *p->st);
    p->station_names = calloc(json_array_size(j) + 1, sizeof(char *));
    if (!p->st || !p->station_names)
      abort();
    json_array_foreach(j, i, e)
    {
      const char *sn = json_str_or(e, "station", NULL);
      size_t k = 0;
      while (sn && k < p->nst && strcmp(p->st[k].name, sn) != 0)
        k++;
      if (sn && k == p->nst) {
        snprintf(p->st[k].name, sizeof p->st[k].name, "%s", sn);
        p->station_names[k] = xstrdup(sn);
        p->nst++;
      }
    }
    p->celestial = xstrdup(o->celestial);
    if ((r = services_load(o->services, p->st, p->nst, &p->svc, &p->nsvc, err)) < 0)
      return r;
  } else if ((r = tle_file_load(o->tle, &p->set, err)) < 0 ||
             (r = stations_load(o->stations, &p->st, &p->nst, err)) < 0 ||
             (r = services_load(o->services, p->st, p->nst, &p->svc, &p->nsvc, err)) < 0 ||
             (r = visibility_windows(&p->set, p->st, p->nst, p->sim_start, p->horizon_min, 10.0, 2,
                                     &p->w, err)) < 0) {
    return r;
  }
  p->running_id = calloc(p->nsvc, sizeof(char *));
  p->node = calloc(p->nsvc, sizeof(char *));
  if (!p->running_id || !p->node)
    abort();
  p->real_start_ms = o->sim_anchor ? anchor_ms : now_wall_ms();
  p->term = -1;
  if (!p->celestial) { /* the visibility windows are the plan (Celestial has none) */
    pthread_mutex_lock(&c->lock);
    c->plan_ms = now_wall_ms();
    pthread_mutex_unlock(&c->lock);
  }
  if (pthread_create(&p->th, NULL, policy_main, p) != 0)
    return FERRY_INTERNAL(err, "cannot start the policy thread");
  p->started = true;
  if (p->celestial)
    log_info("policy", "following %zu service(s) with Celestial at %s", p->nsvc, p->celestial);
  else
    log_info("policy", "following %zu service(s) over %zu satellite(s), %zu windows, time scale %g",
             p->nsvc, p->set.n, p->w.n, p->scale);
  return 0;
}

void policy_stop(struct policy *p)
{
  if (p->started) {
    pthread_mutex_lock(&p->lock);
    p->stop = true;
    pthread_cond_broadcast(&p->cond);
    pthread_mutex_unlock(&p->lock);
    pthread_join(p->th, NULL);
  }
  for (size_t s = 0; p->running_id && s < p->nsvc; s++) {
    free(p->running_id[s]);
    free(p->node[s]);
  }
  free(p->running_id);
  free(p->node);
  for (size_t k = 0; p->station_names && k < p->nst; k++)
    free(p->station_names[k]);
  free(p->station_names);
  free(p->celestial);
  free(p->svc);
  free(p->st);
  tle_set_free(&p->set);
  windows_free(&p->w);
}
