/* The phases of a migration or a checkpoint, over a host and a destination
 * (pipeline.h). Knows nothing of HTTP, runc or CRIU: those are the
 * operations' business; what to do when an answer is lost is decided here,
 * by the protocol's tables (protocol.c). */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "migrate/pipeline.h"
#include "util/fs.h" /* now_mono_ms */
#include "util/log.h"

uint64_t mig_pipe_now(struct mig_pipe *p)
{
  return p->host->now_ms ? p->host->now_ms(p) : now_mono_ms();
}

static void pause_ms(struct mig_pipe *p, unsigned ms)
{
  if (p->host->sleep_ms)
    p->host->sleep_ms(p, ms);
  else
    usleep(ms * 1000u);
}

long mig_pipe_remaining_s(struct mig_pipe *p)
{
  int64_t left = (int64_t)p->timeout_s * 1000 - (int64_t)(mig_pipe_now(p) - p->t0);
  return left > 1000 ? (long)(left / 1000) : 1;
}

static void phase(struct mig_pipe *p, enum mig_phase ph)
{
  snprintf(p->phase, sizeof p->phase, "%s", mig_phase_name(ph));
  if (p->on_phase)
    p->on_phase(p, ph);
}

void mig_pipe_phase(struct mig_pipe *p, enum mig_phase ph)
{
  phase(p, ph);
}

static int fault(struct mig_pipe *p, const char *point)
{
  return p->host->fault ? p->host->fault(p, point, &p->err) : 0;
}

/* The restore on the destination. When its answer is lost or late, ask how
 * it ends while it says "restoring", within the run's timeout: the source
 * never resumes while the destination may still finish a copy it would
 * then commit. */
static int restore_wait(struct mig_pipe *p, json_t *neigh, struct ferry_err *err)
{
  int r = p->dest->restore(p, neigh, err);
  if (r == 0 || err->klass != FERRY_E_UNAVAILABLE)
    return r;
  uint64_t until = p->t0 + (uint64_t)p->timeout_s * 1000;
  uint64_t unreachable_until = mig_pipe_now(p) + MIG_UNREACHABLE_PATIENCE_MS;
  log_warn("migrate", "%s: no answer to the restore (%s): asking how it ends", p->id, err->msg);
  for (int n = 0; n < 100000; n++) {
    enum target_state st = p->dest->state(p, 2);
    uint64_t now = mig_pipe_now(p);
    if (st != T_UNKNOWN)
      unreachable_until = now + MIG_UNREACHABLE_PATIENCE_MS;
    enum restore_verdict v = restore_verdict(st, now >= unreachable_until, now >= until);
    if (v == RV_COMMIT)
      return 0;
    if (v == RV_ABORT && st != T_UNKNOWN && st != T_RESTORING)
      return ferry_err_set(err, -EIO, FERRY_E_INTERNAL, "restore failed (target state %s)",
                           target_state_name(st));
    if (v == RV_ABORT)
      break;
    pause_ms(p, 200);
  }
  return ferry_err_set(err, -ETIMEDOUT, FERRY_E_UNAVAILABLE,
                       "restore timed out: no outcome within the migration's timeout (%d s)",
                       p->timeout_s);
}

enum commit_outcome { COMMIT_DONE, COMMIT_LOST, COMMIT_IN_DOUBT };

/* The commit: sent again until the destination confirms it or says it has
 * no copy; if it cannot be asked, the outcome is in doubt. */
static enum commit_outcome commit_wait(struct mig_pipe *p, struct ferry_err *err)
{
  uint64_t until = mig_pipe_now(p) + (uint64_t)MIG_COMMIT_PATIENCE_S * 1000;
  for (int n = 0; n < 1000 && mig_pipe_now(p) < until; n++) {
    if (p->dest->commit(p, err) == 0)
      return COMMIT_DONE;
    enum target_state st = p->dest->state(p, 2);
    enum commit_verdict v = commit_verdict(st);
    if (v == CV_DONE)
      return COMMIT_DONE;
    if (v == CV_RESUME) {
      ferry_err_wrap(err, "target state %s", target_state_name(st));
      return COMMIT_LOST;
    }
    pause_ms(p, v == CV_WAIT ? 500 : 100);
  }
  ferry_err_wrap(err, "the target cannot be asked whether it runs the container");
  return COMMIT_IN_DOUBT;
}

int mig_pipe_run(struct mig_pipe *p)
{
  const struct mig_host_ops *h = p->host;
  const struct mig_dest_ops *d = p->dest;
  struct ferry_err *err = &p->err;
  bool claimed = false, offered = false, frozen = false, in_doubt = false;
  char *page_server = NULL, *criu = NULL;
  int ps_fd = -1;
  json_t *neigh = NULL;
  int r;

  p->t0 = mig_pipe_now(p);
  p->downtime_ms = -1;
  p->outcome = MIG_PENDING;

  /* ---- offer: the run owns the container from here ---- */
  phase(p, PH_OFFER);
  if ((r = h->claim(p, err)) < 0)
    goto fail;
  claimed = true;
  if ((r = d->offer(p, err)) < 0)
    goto fail;
  offered = true;
  /* what the freeze and the dump can make ahead, as early as it can be
   * (made again below if the memory's way needs other descriptors) */
  if (h->dump_prepare)
    h->dump_prepare(p, -1);

  /* ---- pre-copy, while the container runs ---- */
  phase(p, PH_PRECOPY);
  p->precopy_since = time(NULL) - 1;
  if (d->precopy && (r = d->precopy(p, err)) < 0)
    goto fail;
  /* where the pages go, made ready while the container still runs */
  if ((r = d->memory_prepare(p, &page_server, &ps_fd, err)) < 0)
    goto fail;
  if (h->dump_prepare)
    h->dump_prepare(p, ps_fd);
  if (d->prepare)
    d->prepare(p);

  /* ---- freeze: off the network, then paused ---- */
  phase(p, PH_FREEZE);
  p->t_freeze = mig_pipe_now(p);
  if ((r = h->freeze(p, &neigh, err)) < 0)
    goto fail;
  frozen = true;
  if ((r = fault(p, "frozen")) < 0)
    goto fail;
  if (d->frozen)
    d->frozen(p);

  /* ---- dump: the pages go the memory strategy's way ---- */
  phase(p, PH_DUMP);
  if ((r = d->criu_dir(p, &criu, err)) < 0)
    goto fail;
  {
    json_t *stats = NULL;
    r = h->dump(p, criu, page_server, ps_fd, &stats, err);
    struct ferry_err e2 = {0};
    int rr = d->memory_finish(p, &e2);
    ps_fd = -1;
    if (stats) {
      json_decref(p->criu);
      p->criu = stats;
    }
    if (r < 0)
      goto fail;
    if (rr < 0) {
      *err = e2;
      r = rr;
      goto fail;
    }
  }
  if ((r = fault(p, "dumped")) < 0)
    goto fail;

  /* ---- transfer: CRIU's images and what changed since pre-copy ---- */
  phase(p, PH_TRANSFER);
  if ((r = d->transfer(p, criu, err)) < 0)
    goto fail;

  /* ---- restore at the destination, off the network there ---- */
  phase(p, PH_RESTORE);
  if ((r = restore_wait(p, neigh, err)) < 0)
    goto fail;
  if ((r = fault(p, "restored")) < 0)
    goto fail;

  /* ---- commit: from here the host never resumes its copy unless the
   * destination says it has none ---- */
  phase(p, PH_COMMIT);
  if ((r = h->commit_sent(p, err)) < 0)
    goto fail;
  if ((r = fault(p, "commit-sent")) < 0)
    goto fail;
  enum commit_outcome co = commit_wait(p, err);
  if (co != COMMIT_DONE) {
    in_doubt = co == COMMIT_IN_DOUBT;
    r = -EIO;
    goto fail;
  }
  p->downtime_ms = (int64_t)(mig_pipe_now(p) - p->t_freeze);
  /* past the commit a fault point can only stop the agent (tests): the
   * destination runs the container, nothing here may resume it */
  if (fault(p, "committed") < 0 && p->died)
    goto fail;
  h->done(p);
  phase(p, PH_DONE);
  p->outcome = MIG_DONE;
  r = 0;
  goto out;

fail:
  if (ps_fd >= 0)
    d->memory_finish(p, NULL);
  if (p->died) {
    /* (tests) the agent stopped here: what it left is for its restart */
    p->outcome = MIG_DIED;
    goto out;
  }
  snprintf(p->failed_phase, sizeof p->failed_phase, "%s", p->phase);
  /* Withdraw: whatever the destination answers, a copy there never joins
   * the network without our commit. */
  if (offered && !in_doubt)
    d->abort(p);
  if (claimed && in_doubt) {
    h->release(p, false);
    p->outcome = MIG_IN_DOUBT;
  } else if (claimed) {
    if (frozen)
      h->thaw(p);
    h->release(p, true);
    p->outcome = MIG_RESUMED;
  } else {
    p->outcome = MIG_REFUSED;
  }
  if (!err->msg[0])
    ferry_err_set(err, r < 0 ? r : -EIO, FERRY_E_INTERNAL, "%s failed", p->fault_prefix);
  phase(p, PH_ABORTED);
  r = r < 0 ? r : -EIO;
out:
  if (d->cleanup)
    d->cleanup(p);
  free(page_server);
  free(criu);
  json_decref(neigh);
  return r;
}

void mig_pipe_fini(struct mig_pipe *p)
{
  json_decref(p->rec);
  json_decref(p->img);
  json_decref(p->criu);
  p->rec = p->img = p->criu = NULL;
}

enum recover_action mig_pipe_recover(struct mig_pipe *p, bool commit_sent)
{
  enum target_state st = p->dest->state(p, 5);
  if (source_recover_action(st, commit_sent) == RA_COMMIT_AGAIN) {
    /* the commit never arrived: the target still waits for it */
    struct ferry_err e = {0};
    p->dest->commit(p, &e);
    st = p->dest->state(p, 5);
  }
  enum recover_action act = source_recover_action(st, commit_sent);
  if (act == RA_RESUME_HERE && st != T_UNKNOWN)
    p->dest->abort(p); /* whatever it has goes: it never runs it */
  if (act == RA_REMOVE_HERE)
    p->host->done(p);
  else if (act == RA_RESUME_HERE) {
    p->host->thaw(p);
    p->host->release(p, true);
  }
  return act;
}
