/* ferryd's metrics, for GET /metrics in the Prometheus text format: the
 * containers by state (read from the store at each scrape), migrations by
 * role and outcome, the downtime and each phase of the moves from here as
 * histograms, the bytes they sent by kind, and the image store's size.
 * Counters start at zero when the agent starts. */
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "agent/agent_private.h"
#include "util/cleanup.h"
#include "util/fs.h"
#include "util/json.h"
#include "util/prom.h"

#define NPHASES ((size_t)PH_SERVE + 1) /* the timed ones */

static const char *const kinds[] = {"layers", "volumes", "rootfs", "pages", "other"};
#define NKINDS (sizeof kinds / sizeof kinds[0])
/* the live states, in the order the samples are written */
static const enum ctr_live states[] = {LIVE_RUNNING, LIVE_PAUSED,       LIVE_CREATED,
                                       LIVE_EXITED,  LIVE_CHECKPOINTED, LIVE_MIGRATED};
#define NSTATES (sizeof states / sizeof states[0])

/* Seconds; the pause of a small container is a tenth of one. */
static const double bounds[] = {0.05, 0.1, 0.15, 0.2, 0.3, 0.5, 0.75, 1, 2, 5, 10, 30, 60};

struct agent_metrics {
  pthread_mutex_t lock;
  uint64_t sent_ok, sent_failed, received_ok, received_failed;
  struct prom_hist downtime;
  struct prom_hist phase[NPHASES];
  uint64_t bytes[NKINDS];
};

void agent_metrics_init(struct agent *a)
{
  struct agent_metrics *m = calloc(1, sizeof *m);
  if (!m)
    abort();
  pthread_mutex_init(&m->lock, NULL);
  size_t nb = sizeof bounds / sizeof bounds[0];
  prom_hist_init(&m->downtime, bounds, nb);
  for (size_t i = 0; i < NPHASES; i++)
    prom_hist_init(&m->phase[i], bounds, nb);
  a->metrics = m;
}

void agent_metrics_fini(struct agent *a)
{
  if (!a->metrics)
    return;
  pthread_mutex_destroy(&a->metrics->lock);
  free(a->metrics);
  a->metrics = NULL;
}

void agent_metrics_sent(struct agent *a, bool ok, json_t *ph, json_t *bytes, int64_t downtime_ms)
{
  struct agent_metrics *m = a->metrics;
  if (!m)
    return;
  pthread_mutex_lock(&m->lock);
  if (ok)
    m->sent_ok++;
  else
    m->sent_failed++;
  if (ok && downtime_ms >= 0)
    prom_hist_observe(&m->downtime, (double)downtime_ms / 1000.0);
  for (size_t i = 0; i < NPHASES; i++) {
    json_t *v = json_object_get(ph, mig_phase_name((enum mig_phase)i));
    if (ok && json_is_integer(v))
      prom_hist_observe(&m->phase[i], (double)json_integer_value(v) / 1000.0);
  }
  for (size_t i = 0; i < NKINDS; i++) {
    json_t *v = json_object_get(bytes, kinds[i]);
    if (json_is_integer(v) && json_integer_value(v) > 0)
      m->bytes[i] += (uint64_t)json_integer_value(v);
  }
  pthread_mutex_unlock(&m->lock);
}

void agent_metrics_received(struct agent *a, bool committed)
{
  struct agent_metrics *m = a->metrics;
  if (!m)
    return;
  pthread_mutex_lock(&m->lock);
  if (committed)
    m->received_ok++;
  else
    m->received_failed++;
  pthread_mutex_unlock(&m->lock);
}

char *agent_metrics_text(struct agent *a, size_t *len)
{
  struct prom p = {0};
  _cleanup_free_ char *aid = prom_label(a->id);
  _cleanup_free_ char *info = xasprintf("agent=\"%s\",version=\"%s\"", aid, FERRY_VERSION);
  prom_family(&p, "ferry_agent_info", "gauge", "This agent: its id and version (always 1).");
  prom_sample(&p, "ferry_agent_info", info, 1);
  prom_family(&p, "ferry_agent_start_time_seconds", "gauge",
              "When the agent started, seconds since the epoch.");
  prom_sample(&p, "ferry_agent_start_time_seconds", NULL, (double)(a->started_ms / 1000));

  /* containers by the state ps shows */
  uint64_t n[NSTATES] = {0}, other = 0;
  _cleanup_json_ json_t *all = ctr_load_all(&a->rt);
  size_t i;
  json_t *c;
  json_array_foreach(all, i, c)
  {
    enum ctr_live st = ctr_refresh(&a->rt, c);
    size_t k = 0;
    while (k < NSTATES && states[k] != st)
      k++;
    if (k < NSTATES)
      n[k]++;
    else
      other++;
  }
  if (a->overlay.vni) {
    _cleanup_json_ json_t *ov = overlay_info(&a->overlay);
    prom_family(&p, "ferry_overlay_members", "gauge",
                "Other agents this agent's overlay forwards to and accepts.");
    char l[64];
    snprintf(l, sizeof l, "vni=\"%lld\"", (long long)json_integer_value(json_object_get(ov, "vni")));
    prom_sample(&p, "ferry_overlay_members", l, (double)json_array_size(json_object_get(ov, "members")));
    prom_family(&p, "ferry_overlay_updates_total", "counter",
                "Changes of the overlay's member list applied.");
    prom_sample(&p, "ferry_overlay_updates_total", l,
                (double)json_integer_value(json_object_get(ov, "updates")));
  }
  prom_family(&p, "ferry_containers", "gauge", "Containers on this agent, by state.");
  for (size_t k = 0; k < NSTATES; k++) {
    char l[48];
    snprintf(l, sizeof l, "state=\"%s\"", ctr_live_name(states[k]));
    prom_sample(&p, "ferry_containers", l, (double)n[k]);
  }
  if (other)
    prom_sample(&p, "ferry_containers", "state=\"other\"", (double)other);

  struct agent_metrics *m = a->metrics;
  pthread_mutex_lock(&m->lock);
  prom_family(&p, "ferry_migrations_total", "counter",
              "Migrations that ended since the agent started, by this agent's role and the "
              "outcome (a target's failed: it ended without running the container here).");
  prom_sample(&p, "ferry_migrations_total", "role=\"source\",outcome=\"succeeded\"",
              (double)m->sent_ok);
  prom_sample(&p, "ferry_migrations_total", "role=\"source\",outcome=\"failed\"",
              (double)m->sent_failed);
  prom_sample(&p, "ferry_migrations_total", "role=\"target\",outcome=\"committed\"",
              (double)m->received_ok);
  prom_sample(&p, "ferry_migrations_total", "role=\"target\",outcome=\"failed\"",
              (double)m->received_failed);
  prom_family(&p, "ferry_migration_downtime_seconds", "histogram",
              "Downtime of the moves from here that succeeded: from the freeze to the target's "
              "answer to the commit.");
  prom_hist_write(&p, "ferry_migration_downtime_seconds", NULL, &m->downtime);
  prom_family(&p, "ferry_migration_phase_seconds", "histogram",
              "Time in each phase of the moves from here that succeeded (freeze, dump, "
              "transfer, restore and commit are the downtime).");
  for (size_t k = 0; k < NPHASES; k++) {
    char l[32];
    snprintf(l, sizeof l, "phase=\"%s\"", mig_phase_name((enum mig_phase)k));
    prom_hist_write(&p, "ferry_migration_phase_seconds", l, &m->phase[k]);
  }
  prom_family(&p, "ferry_migration_sent_bytes_total", "counter",
              "Bytes the moves from here sent, by kind.");
  for (size_t k = 0; k < NKINDS; k++) {
    char l[32];
    snprintf(l, sizeof l, "kind=\"%s\"", kinds[k]);
    prom_sample(&p, "ferry_migration_sent_bytes_total", l, (double)m->bytes[k]);
  }
  pthread_mutex_unlock(&m->lock);

  prom_family(&p, "ferry_image_store_bytes", "gauge",
              "Bytes on disk of the image store (layers and records).");
  prom_sample(&p, "ferry_image_store_bytes", NULL, (double)dir_size(a->images.root));
  *len = p.len;
  return p.buf ? p.buf : xstrdup("");
}
