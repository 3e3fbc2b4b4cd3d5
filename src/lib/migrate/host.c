/* This agent's container as a pipeline's host (host.h): each step is one of
 * agent/'s typed operations on the claimed container. */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "migrate/host.h"
#include "migrate/migrate.h"
#include "util/cleanup.h"
#include "util/fault.h"
#include "util/fs.h"
#include "util/json.h"
#include "util/log.h"

#define H(p) ((struct mig_host *)(p)->host_ctx)

static int host_claim(struct mig_pipe *p, struct ferry_err *err)
{
  struct mig_host *h = H(p);
  /* a copy still faulting its memory in from its last move is not dumped */
  int r = incoming_memory_settle(h->a, h->ref, 60000, err);
  if (r < 0 || (r = agent_claim(h->a, h->ref, ctr_op_name(h->op), true, &h->claim, err)) < 0)
    return r;
  agent_criu_ready(h->a);
  json_t *rec = agent_claim_rec(h->claim);
  p->rec = json_incref(rec);
  rec_set_op(rec, h->op);
  if (h->mid)
    rec_set_migration(rec, h->mid, h->to ? h->to : "");
  if ((r = agent_claim_save(h->claim, err)) < 0 ||
      (r = agent_image_of(h->a, rec, &p->img, err)) < 0) {
    rec_clear_migration(rec);
    agent_release(h->claim, true);
    h->claim = NULL;
    json_decref(p->rec);
    p->rec = NULL;
  }
  return r;
}

static int host_freeze(struct mig_pipe *p, json_t **neigh, struct ferry_err *err)
{
  struct net_hold *ready = H(p)->hold_ready;
  H(p)->hold_ready = NULL; /* the freeze's now */
  return agent_ctr_freeze(H(p)->claim, !H(p)->no_hold, ready, neigh, err);
}

/* What the freeze and the dump can make while the container runs: the
 * hold of its traffic, and the dump's CRIU (its start is then not part of
 * the freeze; not for a lazy dump: CRIU stays to serve the pages, started
 * the usual way). */
static void host_dump_prepare(struct mig_pipe *p, int ps_fd)
{
  struct mig_host *h = H(p);
  if (!h->no_hold && !h->hold_ready)
    h->hold_ready = agent_ctr_hold_prepare(h->claim);
  if (h->lazy)
    return;
  int keeper = h->mem ? h->mem->keeper_fd : -1;
  if (h->criu && (h->criu_ps_fd != ps_fd || h->criu_keeper_fd != keeper)) {
    agent_dump_criu_end(h->criu); /* started for other descriptors */
    h->criu = NULL;
  }
  if (h->criu)
    return;
  h->criu_ps_fd = ps_fd;
  h->criu_keeper_fd = keeper;
  struct ferry_err e = {0};
  if (agent_dump_criu_start(h->a, ps_fd, keeper, &h->criu, &e) < 0)
    log_warn("migrate", "%s: container %s: CRIU not started ahead of the freeze: %s", p->id,
             rec_name(p->rec), e.msg);
}

/* Ends the CRIU started ahead: after a dump it exits by itself; unused, its
 * socket closing ends it. Past the pause: it reaps. */
static void host_criu_end(struct mig_pipe *p)
{
  agent_dump_criu_end(H(p)->criu);
  H(p)->criu = NULL;
  agent_ctr_hold_unprepare(H(p)->hold_ready); /* made for a freeze that did not come */
  H(p)->hold_ready = NULL;
}

static int host_dump(struct mig_pipe *p, const char *criu_dir, const char *page_server, int ps_fd,
                     json_t **stats, struct ferry_err *err)
{
  /* The processes stay, frozen, whatever comes next: only the commit ends
   * them, so that a failure after the dump can still resume them. */
  struct ckpt_dump_opts o = CKPT_DUMP_OPTS_INIT;
  o.page_server = page_server;
  o.ps_fd = ps_fd;
  o.leave_running = true;
  o.timeout_ms = (int)mig_pipe_remaining_s(p) * 1000;
  o.criu = H(p)->criu;
  if (H(p)->mem) {
    o.parent = H(p)->mem->parent;
    o.keeper_fd = H(p)->mem->keeper_fd;
  }
  struct mig_lazy_dump *lz = H(p)->lazy;
  if (lz) {
    lz->pid = 0;
    lz->served_ms = -1;
    lz->error[0] = 0;
    snprintf(lz->dir, sizeof lz->dir, "%s", criu_dir);
    o.lazy_pid = &lz->pid;
  }
  int r = agent_ctr_dump(H(p)->claim, criu_dir, &o, stats, err);
  return r < 0 ? ferry_err_wrap(err, "container \"%s\"", rec_name(p->rec)) : 0;
}

#define LAZY_SERVE_MAX_S 3600

/* A lazy dump still serving ends before anything else happens to the
 * processes it holds (kill_now: the move was abandoned). */
static void lazy_end(struct mig_pipe *p, bool kill_now)
{
  struct mig_lazy_dump *lz = H(p)->lazy;
  if (!lz || lz->pid <= 0)
    return;
  if (!kill_now)
    mig_pipe_phase(p, PH_SERVE);
  uint64_t t0 = mig_pipe_now(p);
  struct ferry_err e = {0};
  /* past the commit the copy there needs every page: the wait is not cut
   * at the move's timeout (a big memory over a slow link may take longer)
   * but at an hour; a vanished target ends it sooner (the connection's
   * keepalive ends the relay, and CRIU with it) */
  long wait_s = mig_pipe_remaining_s(p) > LAZY_SERVE_MAX_S ? mig_pipe_remaining_s(p) : LAZY_SERVE_MAX_S;
  int r = ckpt_lazy_wait(lz->pid, lz->dir, (int)wait_s * 1000, kill_now, &e);
  lz->pid = 0;
  if (kill_now)
    return;
  lz->served_ms = (int64_t)(mig_pipe_now(p) - t0);
  if (r < 0) {
    snprintf(lz->error, sizeof lz->error, "%s", e.msg);
    log_warn("migrate", "%s: container %s: the memory was not served whole: %s (its copy at the "
             "destination may not run on)", p->id, rec_name(p->rec), e.msg);
  }
}

static void host_thaw(struct mig_pipe *p)
{
  lazy_end(p, true);
  agent_ctr_thaw(H(p)->claim);
}

static int host_commit_sent(struct mig_pipe *p, struct ferry_err *err)
{
  if (!rec_has_migration(p->rec))
    return 0;
  rec_set_commit_sent(p->rec);
  int r = ferry_fault("source-commit-record", err);
  if (r == 0)
    r = agent_claim_save(H(p)->claim, err);
  if (r < 0) {
    rec_clear_commit_sent(p->rec);
    return ferry_err_wrap(err, "cannot record that the commit is sent (no commit sent)");
  }
  return 0;
}

static void host_done(struct mig_pipe *p)
{
  struct mig_host *h = H(p);
  host_criu_end(p);
  switch (h->after) {
  case AFTER_RUN_ON:
    lazy_end(p, false);
    agent_ctr_thaw(h->claim);
    agent_release(h->claim, true);
    break;
  case AFTER_STOP:
    lazy_end(p, false);
    agent_ctr_end_frozen(h->claim);
    rec_set_state(p->rec, CS_CHECKPOINTED);
    agent_release(h->claim, true);
    break;
  case AFTER_REMOVE:
  case AFTER_KEEP:
    if (h->redirect_to)
      agent_ports_redirect(h->a, p->rec, h->redirect_to, h->redirect_s);
    /* the traffic held here goes to the copy there at once; post-copy:
     * that copy faults its memory in from here until the dump has served
     * it all, and only then does the copy here end */
    agent_ctr_hand_over(h->claim);
    lazy_end(p, false);
    agent_ctr_commit_away(h->claim, h->after == AFTER_KEEP, h->to ? h->to : "");
    agent_release(h->claim, false);
    break;
  }
  h->claim = NULL;
}

static void host_release(struct mig_pipe *p, bool resumed)
{
  host_criu_end(p);
  if (!H(p)->claim)
    return;
  if (resumed)
    rec_clear_migration(p->rec);
  agent_release(H(p)->claim, resumed);
  H(p)->claim = NULL;
}

static int host_fault(struct mig_pipe *p, const char *point, struct ferry_err *err)
{
  _cleanup_free_ char *name = xasprintf("%s-%s", p->fault_prefix, point);
  int r = ferry_fault(name, err);
  if (r == -ECANCELED) /* "stop": the agent stops here (tests in one process) */
    p->died = true;
  return r;
}

const struct mig_host_ops mig_agent_host = {
    .claim = host_claim,
    .freeze = host_freeze,
    .dump_prepare = host_dump_prepare,
    .dump = host_dump,
    .thaw = host_thaw,
    .commit_sent = host_commit_sent,
    .done = host_done,
    .release = host_release,
    .fault = host_fault,
};
