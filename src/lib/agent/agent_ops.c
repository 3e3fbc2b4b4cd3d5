/* Typed operations on one container, for the migration engine: the
 * migration owns the container (agent_claim) and drives it through these;
 * none of them takes the store lock for longer than a record read or write,
 * and none waits for another host. */
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/statvfs.h>
#include <time.h>

#include "agent/agent_private.h"
#include "ckpt/ckpt.h"
#include "image/overlay.h"
#include "net/hold.h"
#include "util/cleanup.h"
#include "util/fault.h"
#include "util/fs.h"
#include "util/json.h"
#include "util/log.h"

/* The holds under way, each by the host-side veth it is on: a frozen
 * container's (its traffic kept while it is frozen), or a restored copy's
 * before its commit (kept both ways: net_hold_capture). */
struct agent_hold {
  char veth[65];
  struct net_hold *h;
  struct agent_hold *next;
};

static void hold_put(struct agent *a, const char *veth, struct net_hold *h)
{
  struct agent_hold *e = calloc(1, sizeof *e);
  if (!e)
    abort();
  snprintf(e->veth, sizeof e->veth, "%s", veth);
  e->h = h;
  pthread_mutex_lock(&a->lock);
  e->next = a->holds;
  a->holds = e;
  pthread_mutex_unlock(&a->lock);
}

/* The hold on veth, taken off the list (NULL when none). */
static struct net_hold *hold_take(struct agent *a, const char *veth)
{
  struct net_hold *h = NULL;
  pthread_mutex_lock(&a->lock);
  for (struct agent_hold **pp = &a->holds; *pp; pp = &(*pp)->next) {
    if (strcmp((*pp)->veth, veth) == 0) {
      struct agent_hold *e = *pp;
      *pp = e->next;
      h = e->h;
      free(e);
      break;
    }
  }
  pthread_mutex_unlock(&a->lock);
  return h;
}

void agent_hold_drop(struct agent *a, const char *veth)
{
  net_hold_abandon(hold_take(a, veth));
}

static void hold_end(struct agent *a, json_t *rec, struct net_hold *h, const char *dev)
{
  uint64_t bytes = 0;
  unsigned dropped = 0;
  /* into the bridge (on their way to the container's new host): sent from
   * the bridge's own address */
  int n = dev && strcmp(dev, a->net.bridge) == 0 ? net_hold_end_as(h, dev, &bytes, &dropped)
                                                 : net_hold_end(h, dev, &bytes, &dropped);
  if (n > 0 || dropped)
    log_info("agent", "container %s: %d frame(s) (%llu bytes) held while it was frozen, sent to %s%s",
             rec_name(rec), n, (unsigned long long)bytes, dev ? dev : "nowhere",
             dropped ? " (some did not fit and were dropped)" : "");
}

struct net_hold *agent_ctr_hold_prepare(struct agent_claim *c)
{
  json_t *rec = c->rec;
  struct net_hold *h = NULL;
  struct ferry_err e = {0};
  if (net_hold_prepare(rec_veth(rec), rec_mac(rec), &h, &e) < 0) {
    log_info("agent", "container %s: its traffic's hold not made ahead: %s", rec_name(rec), e.msg);
    return NULL;
  }
  return h;
}

void agent_ctr_hold_unprepare(struct net_hold *ready)
{
  if (ready)
    net_hold_abandon(ready);
}

/* How long a freeze waits for the container to go idle once its traffic is
 * held (ctr_settle): it runs meanwhile, and its answers leave. */
#define SETTLE_MS 5
/* ... and longer while datagrams wait for a reader that is runnable but
 * not yet run (a loaded host): CRIU does not carry a UDP socket's queue,
 * so what is left there at the freeze is lost. */
#define SETTLE_UDP_MS 50

int agent_ctr_freeze(struct agent_claim *c, bool hold, struct net_hold *ready,
                     json_t **neighbours, struct ferry_err *err)
{
  struct agent *a = c->a;
  json_t *rec = c->rec;
  /* The neighbours it knows (the restored copy starts with them and needs
   * no ARP). */
  if (neighbours)
    *neighbours = net_neigh_list(rec_netns(rec));
  /* What comes for it is held before it is paused: no handshake or
   * segment is taken in by a kernel whose processes no longer run, and
   * nothing is lost (net/hold.h); where that cannot be, the link goes down.
   * What it sends leaves until it is frozen (an answer written just before
   * reaches its client), nothing after. */
  struct net_hold *h = NULL;
  struct ferry_err he = {0};
  int r = 0;
  if (!ready && hold && net_hold_prepare(rec_veth(rec), rec_mac(rec), &ready, &he) < 0)
    ready = NULL;
  if (ready && (!hold || net_hold_engage(ready, &he) < 0)) {
    net_hold_abandon(ready);
    ready = NULL;
  }
  if (ready) {
    hold_put(a, rec_veth(rec), h = ready);
    /* what reached it before the hold is read and answered before the
     * freeze (ctr_settle) */
    long udp_left = 0;
    ctr_settle(&a->rt, rec, SETTLE_MS, SETTLE_UDP_MS, &udp_left);
    if (udp_left > 0)
      log_warn("agent", "container %s: %ld byte(s) of datagrams queued to its UDP sockets were not "
               "read before its freeze: lost (CRIU does not carry a UDP socket's queue)",
               rec_name(rec), udp_left);
  } else {
    if (hold)
      log_warn("agent", "container %s: its traffic is dropped while it is frozen: %s",
               rec_name(rec), he.msg);
    if ((r = net_link_set(rec_veth(rec), false, err)) < 0)
      return ferry_err_wrap(err, "container \"%s\": take it off the network", rec_name(rec));
  }
  if ((r = ctr_freeze(&a->rt, rec, err)) < 0) {
    if ((h = hold_take(a, rec_veth(rec))))
      hold_end(a, rec, h, rec_veth(rec));
    net_link_set(rec_veth(rec), true, NULL);
    return ferry_err_wrap(err, "container \"%s\": freeze", rec_name(rec));
  }
  /* frozen: from now on what it sends does not leave (the link down
   * instead, if that cannot be: what is held stays held) */
  if (h && net_hold_seal(h, &he) < 0) {
    log_warn("agent", "container %s: %s: its link goes down", rec_name(rec), he.msg);
    net_link_set(rec_veth(rec), false, NULL);
  }
  return 0;
}

void agent_holds_drop(struct agent *a)
{
  /* containers still frozen at shutdown: the restart's recovery decides */
  while (a->holds) {
    struct agent_hold *e = a->holds;
    a->holds = e->next;
    net_hold_end(e->h, NULL, NULL, NULL);
    free(e);
  }
}

void agent_ctr_hand_over(struct agent_claim *c)
{
  struct agent *a = c->a;
  json_t *rec = c->rec;
  struct net_hold *h = hold_take(a, rec_veth(rec));
  /* down first: the bridge forgets the container behind this port and
   * sends what comes for it to where it was announced */
  net_link_set(rec_veth(rec), false, NULL);
  if (h)
    hold_end(a, rec, h, a->net.bridge);
}

static void sleep_ms(int ms)
{
  struct timespec ts = {.tv_sec = ms / 1000, .tv_nsec = (long)(ms % 1000) * 1000000};
  nanosleep(&ts, NULL);
}

/* The process that ptrace-holds pid (CRIU dumping it), 0 when none. */
static int tracer_of(int pid)
{
  _cleanup_free_ char *path = xasprintf("/proc/%d/status", pid);
  _cleanup_free_ char *txt = NULL;
  size_t n = 0;
  if (pid <= 0 || read_file(path, 65536, &txt, &n, NULL) < 0)
    return 0;
  const char *t = strstr(txt, "\nTracerPid:");
  return t ? atoi(t + 12) : 0;
}

/* A CRIU started for an agent that died outlives it and still holds the
 * container's processes: thawed under it, the container is frozen again
 * when it ends (CRIU puts back the freezer state it found, and runc had
 * paused it). So its end is awaited first (bounded: 30 s, then it is
 * stopped). */
static void wait_dump_gone(const char *name, int pid)
{
  int tracer = tracer_of(pid);
  if (!tracer)
    return;
  log_warn("agent", "container %s: a dump (process %d) still holds it: waiting for its end", name,
           tracer);
  uint64_t until = now_mono_ms() + 30000;
  while ((tracer = tracer_of(pid)) && now_mono_ms() < until)
    sleep_ms(50);
  if (tracer) {
    log_warn("agent", "container %s: the dump (process %d) did not end in 30 s: stopped", name,
             tracer);
    kill(tracer, SIGKILL);
    for (int i = 0; i < 100 && tracer_of(pid); i++)
      sleep_ms(50);
  }
}

void agent_thaw_rec(struct agent *a, json_t *rec)
{
  const char *id = rec_id(rec);
  _cleanup_free_ char *st = NULL;
  int pid = 0;
  if (runc_state(&a->rt, id, &st, &pid) == 0)
    wait_dump_gone(rec_name(rec), pid);
  struct net_hold *h = hold_take(a, rec_veth(rec));
  if (!h)
    net_hold_clear(rec_veth(rec)); /* a hold of an agent that died */
  net_link_set(rec_veth(rec), true, NULL);
  free(st);
  st = NULL;
  if (runc_state(&a->rt, id, &st, &pid) == 0 && strcmp(st, "paused") == 0)
    runc_simple(&a->rt, "resume", id, NULL);
  /* it runs again: what came for it meanwhile, in order */
  if (h)
    hold_end(a, rec, h, rec_veth(rec));
}

int agent_dump_criu_start(struct agent *a, int ps_fd, int keeper_fd, struct ckpt_criu **out,
                          struct ferry_err *err)
{
  _cleanup_free_ char *log = path_join(a->root, "criu-swrk.log");
  return ckpt_criu_start(ps_fd, keeper_fd, log, out, err);
}

void agent_dump_criu_end(struct ckpt_criu *c)
{
  ckpt_criu_end(c);
}

void agent_ctr_thaw(struct agent_claim *c)
{
  agent_thaw_rec(c->a, c->rec);
}

int agent_ctr_dump(struct agent_claim *c, const char *dir, const struct ckpt_dump_opts *o,
                   json_t **stats, struct ferry_err *err)
{
  int r = ckpt_dump(&c->a->rt, rec_id(c->rec), dir, o, stats, err);
  /* CRIU says why only in words; the disk it wrote to says it by its state:
   * full, the failure is the disk's (507), whatever CRIU's words */
  struct statvfs sv;
  if (r < 0 && r != -ENOSPC && statvfs(dir, &sv) == 0 &&
      (uint64_t)sv.f_bavail * sv.f_frsize < (1u << 20)) {
    err->code = r = -ENOSPC;
    ferry_err_wrap(err, "no space left on the disk of %s", dir);
  }
  return r;
}

void agent_ctr_end_frozen(struct agent_claim *c)
{
  struct agent *a = c->a;
  json_t *rec = c->rec;
  const char *id = rec_id(rec);
  /* off the network before it dies: its kernel closing the sockets must
   * not reset connections its copy (restored later, or elsewhere) keeps */
  net_link_set(rec_veth(rec), false, NULL);
  struct net_hold *h = hold_take(a, rec_veth(rec));
  if (h)
    hold_end(a, rec, h, NULL); /* it ends here: its traffic with it */
  runc_signal(&a->rt, id, SIGKILL, true, NULL);
  runc_simple(&a->rt, "resume", id, NULL); /* killed while frozen: it dies, off the network */
  ctr_wait_exit(&a->rt, id, 5000);
  runc_delete(&a->rt, id, true, NULL);
}

void agent_ctr_commit_away(struct agent_claim *c, bool keep, const char *to)
{
  struct agent *a = c->a;
  json_t *rec = c->rec;
  agent_ctr_hand_over(c);
  agent_ctr_end_frozen(c);
  rec_set_op(rec, OP_NONE);
  rec_clear_migration(rec);
  rec_set_migrated_to(rec, to);
  if (keep) {
    rec_set_state(rec, CS_MIGRATED);
    agent_save_or_log(a, rec, "that it moved");
    agent_ports_sync(a, NULL);
    return;
  }
  rec_set_state(rec, CS_EXITED);
  agent_save_or_log(a, rec, "that it moved");
  agent_ctr_destroy(a, rec, true, NULL);
  agent_volumes_release(a, rec); /* they moved with it */
}

void agent_volumes_release(struct agent *a, json_t *rec)
{
  const char *id = rec_id(rec);
  pthread_mutex_lock(&a->lock);
  for (size_t i = 0; i < rec_n_volumes(rec); i++) {
    const char *vn = rec_volume_name(rec, i);
    if (!agent_volume_in_use(a, vn, id))
      volume_remove(&a->rt, vn, NULL);
  }
  pthread_mutex_unlock(&a->lock);
}

int agent_restore_reserve(struct agent *a, json_t *rec, struct agent_claim **out,
                          struct ferry_err *err)
{
  const char *name = rec_name(rec), *id = rec_id(rec);
  struct agent_claim *c = NULL;
  int r = 0;
  agent_ports_localize(rec);
  pthread_mutex_lock(&a->lock);
  if ((r = agent_copy_fits_locked(a, rec, err)) < 0) {
    /* its name, address or ports are another's now */
  } else if ((r = agent_claim_locked(a, rec, "restore", false, &c, err)) == 0 &&
             (r = ctr_save(&a->rt, rec, err)) < 0) {
    agent_release_locked(c);
    c = NULL;
  }
  pthread_mutex_unlock(&a->lock);
  if (r == 0)
    agent_ports_unredirect(a, name);
  if (r == 0 && json_array_size(rec_ports(rec)) && (r = agent_ports_sync(a, err)) < 0) {
    ferry_err_wrap(err, "container \"%s\": publish ports", name);
    pthread_mutex_lock(&a->lock);
    agent_release_locked(c);
    c = NULL;
    _cleanup_free_ char *dir = ctr_path(&a->rt, id, NULL);
    rm_rf(dir, NULL);
    pthread_mutex_unlock(&a->lock);
    agent_ports_sync(a, NULL);
  }
  if (r == 0)
    *out = c;
  return r;
}

int agent_ctr_restore_from(struct agent *a, json_t *rec, json_t *img, const char *criu_dir,
                           struct ckpt_lazy *lazy, json_t **stats, struct ferry_err *err)
{
  int r = agent_ctr_materialize(a, rec, img, false, err);
  if (r < 0)
    return r;
  int pid = 0;
  return ckpt_restore(&a->rt, rec, criu_dir, lazy, &pid, stats, err);
}

void agent_criu_ready(struct agent *a)
{
  (void)a;
  struct ferry_err e = {0};
  if (ckpt_kdat_prime(NULL, &e) < 0)
    log_warn("agent", "%s: CRIU probes the kernel on each run (~30 ms of each freeze)", e.msg);
}

int agent_net_prepare(struct agent *a, const char *id, const char *ip, const char *mac,
                      struct ferry_err *err)
{
  char netns[32], veth[16];
  net_names(id, netns, sizeof netns, veth, sizeof veth);
  int r = net_ctr_setup(&a->net, netns, veth, ip, mac, false, err);
  if (r < 0)
    return r;
  /* Its link up but held both ways until the commit (net_hold_capture):
   * what the copy sends once restored is kept, not lost on a link that is
   * down. The filters come before the link: it never is on the network
   * before the commit. Where that cannot be, the link stays down. */
  struct net_hold *h = NULL;
  struct ferry_err he = {0};
  if (net_hold_prepare(veth, mac, &h, &he) < 0 || net_hold_capture(h, &he) < 0 ||
      net_link_set(veth, true, &he) < 0) {
    log_info("agent", "%s: the copy's link stays down until the commit (what it sends before "
                      "is lost): %s", veth, he.msg);
    net_link_set(veth, false, NULL);
    net_hold_abandon(h);
    return 0;
  }
  hold_put(a, veth, h);
  return 0;
}

void agent_net_discard(struct agent *a, const char *id)
{
  char netns[32], veth[16];
  net_names(id, netns, sizeof netns, veth, sizeof veth);
  net_hold_abandon(hold_take(a, veth));
  net_ctr_teardown(netns, veth, NULL);
}

int agent_link_up_rec(struct agent *a, json_t *rec, struct ferry_err *err)
{
  (void)a;
  return net_link_set(rec_veth(rec), true, err);
}

int agent_ctr_link_up(struct agent_claim *c, struct ferry_err *err)
{
  struct agent *a = c->a;
  json_t *rec = c->rec;
  struct net_hold *h = hold_take(a, rec_veth(rec));
  if (h) {
    /* held both ways since its restore: what it sent goes on first */
    uint64_t bytes = 0;
    unsigned dropped = 0;
    int n = net_hold_release(h, rec_netns(rec), &bytes, &dropped);
    if (n > 0 || dropped)
      log_info("agent", "container %s: %d frame(s) (%llu bytes) held before its commit sent on%s",
               rec_name(rec), n, (unsigned long long)bytes,
               dropped ? " (some did not fit and were dropped)" : "");
  } else {
    net_hold_clear(rec_veth(rec)); /* a hold of an agent that died: it would drop all */
  }
  return agent_link_up_rec(a, rec, err);
}

void agent_ctr_discard(struct agent_claim *c)
{
  struct ferry_err e = {0};
  if (agent_ctr_destroy(c->a, c->rec, true, &e) < 0)
    log_warn("agent", "container %s: cannot remove it: %s", rec_name(c->rec), e.msg);
  agent_release(c, false);
}

int agent_ctr_pause(struct agent *a, const char *ref, json_t **out, struct ferry_err *err)
{
  struct agent_claim *c = NULL;
  int r = agent_claim(a, ref, "pause", false, &c, err);
  if (r < 0)
    return r;
  _cleanup_json_ json_t *rec = json_incref(agent_claim_rec(c)); /* read after the release */
  if (ctr_refresh(&a->rt, rec) != LIVE_RUNNING)
    r = FERRY_CONFLICT(err, "container \"%s\" is not running (%s)", rec_name(rec), rec_status_name(rec));
  else if ((r = ctr_freeze(&a->rt, rec, err)) == 0)
    log_info("agent", "container %s paused", rec_name(rec));
  agent_release(c, false);
  if (r == 0) {
    rec_clear_live(rec);
    ctr_refresh(&a->rt, rec);
    *out = json_incref(rec);
  }
  return r;
}

int agent_ctr_resume(struct agent *a, const char *ref, json_t **out, struct ferry_err *err)
{
  struct agent_claim *c = NULL;
  int r = agent_claim(a, ref, "resume", false, &c, err);
  if (r < 0)
    return r;
  _cleanup_json_ json_t *rec = json_incref(agent_claim_rec(c)); /* read after the release */
  if (ctr_refresh(&a->rt, rec) != LIVE_PAUSED) {
    r = FERRY_CONFLICT(err, "container \"%s\" is not paused (%s)", rec_name(rec),
                       rec_status_name(rec));
  } else {
    agent_thaw_rec(a, rec);
    rec_clear_live(rec);
    ctr_refresh(&a->rt, rec);
    if (rec_status(rec) != LIVE_RUNNING)
      r = FERRY_INTERNAL(err, "container \"%s\": still %s after resume", rec_name(rec),
                         rec_status_name(rec));
    else
      log_info("agent", "container %s resumed", rec_name(rec));
  }
  agent_release(c, false);
  if (r == 0)
    *out = json_incref(rec);
  return r;
}

void agent_restore_discard(struct agent_claim *c, const struct restore_source *src,
                           struct restore_times *t)
{
  struct agent *a = c->a;
  _cleanup_json_ json_t *rec = json_incref(c->rec);
  struct ferry_err e2 = {0};
  if (agent_ctr_destroy(a, rec, true, &e2) < 0)
    log_warn("agent", "restore %s: cleanup: %s", rec_name(rec), e2.msg);
  agent_release(c, false);
  if (src->undo)
    src->undo(a, rec, src->ctx);
  json_decref(t->criu);
  t->criu = NULL;
}

struct neigh_job {
  pthread_t thread;
  const char *netns;
  json_t *neighbours;
  int set;
};

static void *neigh_main(void *arg)
{
  struct neigh_job *j = arg;
  j->set = net_neigh_seed(j->netns, j->neighbours);
  return NULL;
}

/* The neighbours to seed: this host's gateway (the bridge: the restored
 * container's default route leads there, and its source knew another
 * host's) first, then those the source knew. */
static json_t *neigh_with_gateway(struct agent *a, json_t *neighbours)
{
  json_t *out = json_array();
  char gw[16], mac[18] = "";
  ip_format(a->net.subnet.gw, gw, sizeof gw);
  if (net_link_mac(a->net.bridge, mac, sizeof mac) == 0 && mac_valid(mac))
    json_array_append_new(out, json_pack("{s:s, s:s}", "ip", gw, "mac", mac));
  size_t i;
  json_t *e;
  json_array_foreach(neighbours, i, e)
  {
    if (strcmp(json_str_or(e, "ip", ""), gw) != 0)
      json_array_append(out, e);
  }
  return out;
}

int agent_restore_copy(struct agent *a, json_t *rec, json_t *img, const char *criu_dir,
                       const struct restore_source *src, json_t *neighbours, bool link_up,
                       struct restore_times *t, struct agent_claim **out, struct ferry_err *err)
{
  struct agent_claim *c = NULL;
  uint64_t t0 = now_mono_ms();
  _cleanup_json_ json_t *seed = NULL;
  agent_criu_ready(a); /* a stat, when a migration's offer primed it */
  _cleanup_free_ char *f_reserved = xasprintf("%s-reserved", src->fault_prefix);
  _cleanup_free_ char *f_criu = xasprintf("%s-criu-restore", src->fault_prefix);
  _cleanup_free_ char *f_launched = xasprintf("%s-launched", src->fault_prefix);
  /* name and address reserved, the record written (op "restore"): from
   * here a restart of the agent finds and resolves it */
  int r = agent_restore_reserve(a, rec, &c, err);
  if (r < 0)
    return r;
  if ((r = ferry_fault(f_reserved, err)) < 0 || (r = src->place(a, rec, src->ctx, err)) < 0)
    goto fail;
  uint64_t t_files = now_mono_ms();
  if ((r = agent_ctr_materialize(a, rec, img, false, err)) < 0)
    goto fail;
  uint64_t t_net = now_mono_ms();
  /* its neighbours before its link comes up: the first packets it sends
   * need no ARP (one sent while the link is down is lost, and the kernel
   * tries again only a second later). Into its network namespace, which
   * CRIU leaves alone (external), while CRIU restores: an ip process less
   * in the pause. */
  seed = neigh_with_gateway(a, neighbours);
  struct neigh_job nj = {.netns = rec_netns(rec), .neighbours = seed};
  bool nj_running = json_array_size(seed) > 0 &&
                    pthread_create(&nj.thread, NULL, neigh_main, &nj) == 0;
  /* restored with its link down */
  if ((r = ferry_fault(f_criu, err)) < 0 ||
      (r = agent_ctr_restore_from(a, rec, img, criu_dir, src->lazy, &t->criu, err)) < 0 ||
      (r = ferry_fault(f_launched, err)) < 0) {
    if (nj_running)
      pthread_join(nj.thread, NULL);
    goto fail;
  }
  if (nj_running)
    pthread_join(nj.thread, NULL);
  t->neighbours = nj.set;
  if (link_up && (r = agent_link_up_rec(a, rec, err)) < 0)
    goto fail;
  uint64_t t_end = now_mono_ms();
  t->files_ms = t_files - t0;
  t->setup_ms = t_net - t_files;
  t->restore_ms = t_end - t_net;
  *out = c;
  return 0;
fail:
  agent_restore_discard(c, src, t);
  return r;
}

/* ---- a restore prepared ahead (a migration's target, while the source
 * dumps): everything but CRIU's own work, held until the images are in ---- */

struct agent_restore_job {
  struct ckpt_restore_job *cj;
  struct agent_claim *claim; /* the copy's, from its reservation */
  json_t *rec, *img, *descriptors;
  char *criu_dir;
  struct restore_source src;
  uint64_t files_ms, setup_ms;
};

static void job_free(struct agent_restore_job *j)
{
  json_decref(j->rec);
  json_decref(j->img);
  json_decref(j->descriptors);
  free(j->criu_dir);
  free(j);
}

bool agent_restore_can_hold(struct agent *a)
{
  return a->rt.criu_helper != NULL;
}

int agent_restore_prepare(struct agent *a, json_t *rec, json_t *img, const char *criu_dir,
                          const struct restore_source *src, json_t *descriptors,
                          struct agent_restore_job **out, struct ferry_err *err)
{
  uint64_t t0 = now_mono_ms();
  agent_criu_ready(a);
  _cleanup_free_ char *f_reserved = xasprintf("%s-reserved", src->fault_prefix);
  struct agent_claim *c = NULL;
  int r = agent_restore_reserve(a, rec, &c, err);
  if (r < 0)
    return r;
  struct restore_times t = {0};
  if ((r = ferry_fault(f_reserved, err)) < 0 || (r = src->place(a, rec, src->ctx, err)) < 0)
    goto fail;
  uint64_t t_files = now_mono_ms();
  struct ckpt_restore_job *cj = NULL;
  if ((r = agent_ctr_materialize(a, rec, img, false, err)) < 0 ||
      (r = ckpt_restore_start(&a->rt, rec, criu_dir, descriptors, &cj, err)) < 0)
    goto fail;
  struct agent_restore_job *j = calloc(1, sizeof *j);
  if (!j)
    abort();
  j->cj = cj;
  j->claim = c;
  j->rec = json_incref(rec);
  j->img = json_incref(img);
  j->descriptors = json_incref(descriptors);
  j->criu_dir = xstrdup(criu_dir);
  j->src = *src;
  j->src.lazy = NULL;
  j->files_ms = t_files - t0;
  j->setup_ms = now_mono_ms() - t_files;
  *out = j;
  return 0;
fail:
  agent_restore_discard(c, src, &t);
  return r;
}

struct agent_restore_tail {
  struct agent *a;
  struct ckpt_restore_tail *t;
};

int agent_restore_tail_end(struct agent_restore_tail *t, struct ferry_err *err)
{
  if (!t)
    return 0;
  int r = ckpt_restore_tail_end(&t->a->rt, t->t, err);
  free(t);
  return r;
}

int agent_restore_launch(struct agent *a, struct agent_restore_job *j, json_t *neighbours,
                         struct restore_times *t, struct agent_claim **out,
                         struct agent_restore_tail **tail, struct ferry_err *err)
{
  uint64_t t0 = now_mono_ms();
  json_t *rec = j->rec;
  _cleanup_free_ char *f_criu = xasprintf("%s-criu-restore", j->src.fault_prefix);
  _cleanup_free_ char *f_launched = xasprintf("%s-launched", j->src.fault_prefix);
  _cleanup_json_ json_t *seed = neigh_with_gateway(a, neighbours);
  struct neigh_job nj = {.netns = rec_netns(rec), .neighbours = seed};
  bool nj_running = json_array_size(seed) > 0 &&
                    pthread_create(&nj.thread, NULL, neigh_main, &nj) == 0;
  int pid = 0, r;
  if (tail)
    *tail = NULL;
  if (!j->cj) {
    r = FERRY_INTERNAL(err, "restore of \"%s\": its held restore was not made again", rec_name(rec));
  } else if ((r = ferry_fault(f_criu, err)) < 0) {
    ckpt_restore_cancel(&a->rt, j->cj);
  } else {
    struct ckpt_restore_tail *ct = NULL;
    r = ckpt_restore_go(&a->rt, j->cj, &pid, &t->criu, tail ? &ct : NULL, err);
    if (r == 0)
      r = ferry_fault(f_launched, err);
    if (ct && r < 0) {
      ckpt_restore_tail_end(&a->rt, ct, NULL); /* before the copy is removed */
      ct = NULL;
    }
    if (ct) {
      *tail = calloc(1, sizeof **tail);
      if (!*tail)
        abort();
      (*tail)->a = a;
      (*tail)->t = ct;
    }
  }
  j->cj = NULL;
  if (nj_running)
    pthread_join(nj.thread, NULL);
  t->neighbours = nj.set;
  t->files_ms = j->files_ms;
  t->setup_ms = j->setup_ms;
  t->restore_ms = now_mono_ms() - t0;
  if (r < 0)
    agent_restore_discard(j->claim, &j->src, t);
  else
    *out = j->claim;
  j->claim = NULL;
  job_free(j);
  return r;
}

void agent_restore_abandon(struct agent *a, struct agent_restore_job *j)
{
  if (!j)
    return;
  struct restore_times t = {0};
  ckpt_restore_cancel(&a->rt, j->cj);
  agent_restore_discard(j->claim, &j->src, &t);
  j->claim = NULL;
  job_free(j);
}

int agent_restore_prepared_delta(struct agent *a, struct agent_restore_job *j, const char *volume,
                                 const char *tar, const char *what, struct ferry_err *err)
{
  if (volume) {
    /* not mounted anywhere yet: CRIU binds it at the restore */
    _cleanup_free_ char *dir = volume_path(&a->rt, volume);
    return agent_extract_delta(a, tar, dir, what, err);
  }
  /* the upper dir of a mounted overlay must not change under it (its
   * cached entries would hide what comes): runc's held restore is called
   * off, the overlay taken down, the changes applied, and both made again */
  uint64_t t0 = now_mono_ms();
  ckpt_restore_cancel(&a->rt, j->cj);
  j->cj = NULL;
  const char *id = rec_id(j->rec);
  _cleanup_free_ char *rootfs = ctr_path(&a->rt, id, "bundle/rootfs");
  _cleanup_free_ char *upper = ctr_path(&a->rt, id, "upper");
  int r = overlay_umount(rootfs, err);
  if (r == 0)
    r = agent_extract_delta(a, tar, upper, what, err);
  if (r == 0)
    r = agent_ctr_materialize(a, j->rec, j->img, false, err);
  if (r == 0)
    r = ckpt_restore_start(&a->rt, j->rec, j->criu_dir, j->descriptors, &j->cj, err);
  j->setup_ms += now_mono_ms() - t0;
  return r;
}
