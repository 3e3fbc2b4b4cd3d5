/* migrate/pipeline: the real phase engine (the one ferryd runs for
 * migrations and checkpoints) driven over a fake runtime (the container on
 * the source) and a fake peer (a target agent that follows the target's
 * rules: the fence, aborts, restarts), on a virtual clock. Every phase
 * failing, lost answers, slow restores, a target that goes away, restarts of
 * either side at each phase; both sides' outcomes are checked, and at no
 * moment may two copies be on the network. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "migrate/pipeline.h"

#define FENCE_MS 30000 /* the target kills a restored copy not committed by then */

enum src_state { SRC_RUNNING, SRC_FROZEN, SRC_GONE };

struct world {
  uint64_t now;
  /* source: the container and its record */
  enum src_state src;
  bool claimed, marked, commit_recorded, dumped;
  /* target */
  enum target_state tgt;        /* T_GONE: no entry */
  bool tgt_copy, tgt_on_net;    /* a copy exists; it is on the network */
  uint64_t restore_done_at;     /* restoring until then */
  enum target_state restore_to; /* what the restore ends in */
  bool abort_requested;         /* withdrawn while restoring */
  uint64_t fence_at;
  /* the script */
  const char *fail_op;            /* this operation fails (host or peer) */
  const char *die_at;             /* the source agent stops at this fault point */
  const char *target_restart_at;  /* the target agent restarts when this phase begins */
  const char *unreachable_from;   /* from this phase on the target cannot be reached */
  const char *reachable_again_at; /* ... (none: until the end) */
  bool lose_restore_answer, lose_commit_answer, unreachable_after_commit;
  bool drop_restore_connection; /* the restore's connection breaks; the restore goes on */
  uint64_t restore_takes_ms;
  bool unreachable;
  /* what happened */
  bool two_on_net;
  int commits_delivered, aborts_delivered;
};

static struct world W;

static void tick(void)
{
  if (W.tgt == T_RESTORING && W.now >= W.restore_done_at) {
    if (W.abort_requested) {
      W.tgt = T_GONE;
      W.tgt_copy = false;
    } else {
      W.tgt = W.restore_to;
      W.tgt_copy = W.restore_to == T_RESTORED;
      W.fence_at = W.now + FENCE_MS;
    }
  }
  if (W.tgt == T_RESTORED && W.now >= W.fence_at) {
    W.tgt = T_FAILED; /* the fence: killed, never committed */
    W.tgt_copy = false;
  }
  if (W.src == SRC_RUNNING && W.tgt_on_net)
    W.two_on_net = true;
}

static void advance(uint64_t ms)
{
  W.now += ms;
  tick();
}

static bool fails(const char *op)
{
  return W.fail_op && strcmp(W.fail_op, op) == 0;
}

static int injected(struct ferry_err *err, const char *op)
{
  return ferry_err_set(err, -EIO, FERRY_E_INTERNAL, "%s failed (injected)", op);
}

/* ---- the fake runtime: the container on the source ---- */

static int h_claim(struct mig_pipe *p, struct ferry_err *err)
{
  if (fails("claim"))
    return ferry_err_set(err, -EBUSY, FERRY_E_CONFLICT, "owned by another operation");
  W.claimed = W.marked = true;
  p->rec = json_pack("{s:s, s:s}", "name", "svc", "id", "0123");
  p->img = json_object();
  return 0;
}

static int h_freeze(struct mig_pipe *p, json_t **neigh, struct ferry_err *err)
{
  if (fails("freeze"))
    return injected(err, "freeze");
  assert_int_equal(W.src, SRC_RUNNING);
  W.src = SRC_FROZEN;
  *neigh = json_array();
  return 0;
}

static int h_dump(struct mig_pipe *p, const char *dir, const char *ps, int ps_fd, json_t **stats,
                  struct ferry_err *err)
{
  advance(50);
  if (fails("dump"))
    return injected(err, "dump");
  assert_int_equal(W.src, SRC_FROZEN); /* processes kept, frozen */
  W.dumped = true;
  *stats = json_pack("{s:i}", "pages_written", 10);
  return 0;
}

static void h_thaw(struct mig_pipe *p)
{
  if (W.src == SRC_FROZEN)
    W.src = SRC_RUNNING;
  tick();
}

static int h_commit_sent(struct mig_pipe *p, struct ferry_err *err)
{
  if (fails("commit_sent"))
    return injected(err, "commit_sent");
  W.commit_recorded = true;
  return 0;
}

static void h_done(struct mig_pipe *p)
{
  assert_int_not_equal(W.src, SRC_RUNNING); /* the running copy is never the one removed */
  W.src = SRC_GONE;
  W.claimed = W.marked = false;
}

static void h_release(struct mig_pipe *p, bool resumed)
{
  W.claimed = false;
  if (resumed) {
    assert_int_equal(W.src, SRC_RUNNING);
    W.marked = W.commit_recorded = false;
  }
}

static int h_fault(struct mig_pipe *p, const char *point, struct ferry_err *err)
{
  if (W.die_at && strcmp(W.die_at, point) == 0) {
    p->died = true;
    return ferry_err_set(err, -EOWNERDEAD, FERRY_E_INTERNAL, "agent stopped at %s", point);
  }
  return 0;
}

static uint64_t h_now(struct mig_pipe *p)
{
  return W.now;
}

static void h_sleep(struct mig_pipe *p, unsigned ms)
{
  advance(ms);
}

static const struct mig_host_ops fake_host = {
    .claim = h_claim, .freeze = h_freeze, .dump = h_dump, .thaw = h_thaw,
    .commit_sent = h_commit_sent, .done = h_done, .release = h_release, .fault = h_fault,
    .now_ms = h_now, .sleep_ms = h_sleep,
};

/* ---- the fake peer: a target agent ---- */

static void target_restart(void)
{
  /* a restarted target removes every copy that was not committed */
  if (W.tgt != T_RUNNING) {
    W.tgt = T_GONE;
    W.tgt_copy = false;
  }
}

static void on_phase(struct mig_pipe *p, enum mig_phase ph)
{
  const char *phase = mig_phase_name(ph);
  if (W.target_restart_at && strcmp(W.target_restart_at, phase) == 0)
    target_restart();
  if (W.unreachable_from && strcmp(W.unreachable_from, phase) == 0)
    W.unreachable = true;
  if (W.reachable_again_at && strcmp(W.reachable_again_at, phase) == 0)
    W.unreachable = false;
}

/* A call that does not get through: the HTTP client's timeout passes. */
static int no_answer(struct ferry_err *err, uint64_t waited)
{
  advance(waited);
  return ferry_err_set(err, -ETIMEDOUT, FERRY_E_UNAVAILABLE, "no answer (timeout)");
}

static int gone(struct ferry_err *err)
{
  return ferry_err_set(err, -ENOENT, FERRY_E_NOTFOUND, "no such migration");
}

static int p_offer(struct mig_pipe *p, struct ferry_err *err)
{
  advance(5);
  if (W.unreachable)
    return no_answer(err, 30000);
  if (fails("offer"))
    return ferry_err_set(err, -EEXIST, FERRY_E_CONFLICT, "name in use on the target");
  W.tgt = T_OFFERED;
  return 0;
}

static int p_part(const char *op, struct ferry_err *err)
{
  advance(20);
  if (W.unreachable)
    return no_answer(err, 5000);
  if (W.tgt == T_GONE)
    return gone(err);
  if (fails(op))
    return ferry_err_set(err, -ENOSPC, FERRY_E_INTERNAL, "%s: No space left on device", op);
  return 0;
}

static int p_precopy(struct mig_pipe *p, struct ferry_err *err)
{
  return p_part("precopy", err);
}

static int p_memory_prepare(struct mig_pipe *p, char **ps, int *fd, struct ferry_err *err)
{
  *ps = NULL;
  *fd = -1;
  return p_part("memory_prepare", err);
}

static int p_memory_finish(struct mig_pipe *p, struct ferry_err *err)
{
  return 0;
}

static int p_criu_dir(struct mig_pipe *p, char **dir, struct ferry_err *err)
{
  *dir = strdup("/nonexistent/criu");
  return 0;
}

static int p_transfer(struct mig_pipe *p, const char *criu, struct ferry_err *err)
{
  assert_true(W.dumped);
  return p_part("transfer", err);
}

static int p_restore(struct mig_pipe *p, json_t *neigh, struct ferry_err *err)
{
  advance(5);
  if (W.unreachable)
    return no_answer(err, (uint64_t)mig_pipe_remaining_s(p) * 1000);
  if (W.tgt == T_GONE)
    return gone(err);
  assert_int_equal(W.tgt, T_OFFERED);
  W.tgt = T_RESTORING;
  W.restore_to = fails("restore") ? T_FAILED : T_RESTORED;
  W.restore_done_at = W.now + W.restore_takes_ms + 100;
  uint64_t patience = (uint64_t)mig_pipe_remaining_s(p) * 1000;
  if (W.drop_restore_connection)
    return no_answer(err, 1000);
  if (W.restore_takes_ms + 100 > patience)
    return no_answer(err, patience); /* the HTTP call's timeout */
  advance(W.restore_takes_ms + 100);
  if (W.tgt == T_FAILED)
    return ferry_err_set(err, -EIO, FERRY_E_INTERNAL, "CRIU restore failed");
  if (W.tgt != T_RESTORED)
    return gone(err); /* a restart removed it meanwhile */
  if (W.lose_restore_answer)
    return no_answer(err, 0);
  return 0;
}

static enum target_state p_state(struct mig_pipe *p, long timeout_s)
{
  advance(2);
  if (W.unreachable) {
    advance((uint64_t)timeout_s * 1000);
    return T_UNKNOWN;
  }
  return W.tgt;
}

static int p_commit(struct mig_pipe *p, struct ferry_err *err)
{
  advance(2);
  if (W.unreachable)
    return no_answer(err, 5000);
  if (W.tgt == T_GONE)
    return gone(err);
  if (W.tgt != T_RESTORED && W.tgt != T_RUNNING)
    return ferry_err_set(err, -EBUSY, FERRY_E_CONFLICT, "not restored (%s)", target_state_name(W.tgt));
  W.tgt = T_RUNNING; /* the state is written first, then the link comes up */
  W.tgt_on_net = true;
  W.commits_delivered++;
  tick();
  if (W.unreachable_after_commit)
    W.unreachable = true;
  if (W.lose_commit_answer || W.unreachable)
    return no_answer(err, 5000);
  return 0;
}

static void p_abort(struct mig_pipe *p)
{
  advance(2);
  if (W.unreachable) {
    advance(3000);
    return;
  }
  W.aborts_delivered++;
  if (W.tgt == T_RUNNING)
    return; /* 409: committed */
  if (W.tgt == T_RESTORING) {
    W.abort_requested = true; /* removed when the step ends */
    return;
  }
  W.tgt = T_GONE;
  W.tgt_copy = false;
}

static const struct mig_dest_ops fake_peer = {
    .offer = p_offer, .precopy = p_precopy, .memory_prepare = p_memory_prepare,
    .memory_finish = p_memory_finish, .criu_dir = p_criu_dir, .transfer = p_transfer,
    .restore = p_restore, .state = p_state, .commit = p_commit, .abort = p_abort,
};

/* ---- running a scenario ---- */

static struct mig_pipe pipe_for(int timeout_s)
{
  return (struct mig_pipe){.id = "m1", .fault_prefix = "source", .host = &fake_host,
                           .dest = &fake_peer, .timeout_s = timeout_s, .on_phase = on_phase};
}

static void reset(void)
{
  memset(&W, 0, sizeof W);
  W.now = 1000000;
  W.src = SRC_RUNNING;
  W.tgt = T_GONE;
}

/* Where the container runs on the network once everything settled (the
 * target's fence included). */
static int copies_on_net(void)
{
  advance(FENCE_MS + 1000);
  return (W.src == SRC_RUNNING) + (W.tgt_on_net ? 1 : 0);
}

static enum mig_outcome run(int timeout_s)
{
  struct mig_pipe p = pipe_for(timeout_s);
  mig_pipe_run(&p);
  enum mig_outcome o = p.outcome;
  mig_pipe_fini(&p);
  assert_false(W.two_on_net);
  return o;
}

/* The source agent starts again after down_ms and resolves the marked
 * container with the pipeline's recovery step. */
static enum recover_action restart_source(uint64_t down_ms)
{
  advance(down_ms);
  W.claimed = false; /* claims live in memory only */
  struct mig_pipe p = pipe_for(30);
  p.rec = json_pack("{s:s}", "name", "svc");
  enum recover_action a = mig_pipe_recover(&p, W.commit_recorded);
  mig_pipe_fini(&p);
  assert_false(W.two_on_net);
  return a;
}

static void succeeds(void **state)
{
  reset();
  assert_int_equal(run(300), MIG_DONE);
  assert_int_equal(W.src, SRC_GONE);
  assert_int_equal(W.tgt, T_RUNNING);
  assert_int_equal(W.commits_delivered, 1);
  assert_int_equal(copies_on_net(), 1);
}

/* Any step failing before the commit: the source resumes, the target has
 * nothing. */
static void every_phase_failing(void **state)
{
  static const char *const ops[] = {"offer", "precopy", "memory_prepare", "freeze", "dump",
                                    "transfer", "restore", "commit_sent"};
  for (size_t i = 0; i < sizeof ops / sizeof ops[0]; i++) {
    reset();
    W.fail_op = ops[i];
    assert_int_equal(run(300), MIG_RESUMED);
    assert_int_equal(W.src, SRC_RUNNING);
    assert_false(W.claimed);
    assert_false(W.marked);
    assert_false(W.tgt_copy);
    assert_int_equal(W.commits_delivered, 0);
    assert_int_equal(copies_on_net(), 1);
  }
  /* a container another operation owns is not touched at all */
  reset();
  W.fail_op = "claim";
  assert_int_equal(run(300), MIG_REFUSED);
  assert_int_equal(W.tgt, T_GONE);
  assert_int_equal(copies_on_net(), 1);
}

/* Lost answers: the outcome is asked for, never guessed. */
static void lost_answers(void **state)
{
  reset();
  W.lose_restore_answer = true;
  assert_int_equal(run(300), MIG_DONE);
  assert_int_equal(copies_on_net(), 1);
  assert_int_equal(W.src, SRC_GONE);

  reset();
  W.lose_commit_answer = true;
  assert_int_equal(run(300), MIG_DONE);
  assert_int_equal(W.commits_delivered, 1);
  assert_int_equal(copies_on_net(), 1);
  assert_int_equal(W.src, SRC_GONE);
}

/* A restore whose answer does not come (the connection broke) is waited
 * for while the target says "restoring", within the timeout; one slower
 * than the timeout is withdrawn and the late copy never committed. */
static void slow_restores(void **state)
{
  reset();
  W.restore_takes_ms = 20000;
  W.drop_restore_connection = true;
  assert_int_equal(run(60), MIG_DONE);
  assert_int_equal(W.src, SRC_GONE);
  assert_int_equal(copies_on_net(), 1);

  reset();
  W.restore_takes_ms = 60000;
  assert_int_equal(run(30), MIG_RESUMED);
  assert_int_equal(W.src, SRC_RUNNING);
  assert_int_equal(W.commits_delivered, 0);
  assert_int_equal(copies_on_net(), 1);
  assert_false(W.tgt_copy);

  reset(); /* the connection broke, the restore goes on past the timeout */
  W.restore_takes_ms = 60000;
  W.drop_restore_connection = true;
  assert_int_equal(run(30), MIG_RESUMED);
  assert_int_equal(W.commits_delivered, 0);
  assert_int_equal(copies_on_net(), 1);
  assert_int_equal(W.src, SRC_RUNNING);

  reset(); /* slow and failing */
  W.restore_takes_ms = 20000;
  W.drop_restore_connection = true;
  W.fail_op = "restore";
  assert_int_equal(run(60), MIG_RESUMED);
  assert_int_equal(copies_on_net(), 1);
}

/* The target goes away. Before the commit the source resumes (a copy there
 * is fenced); after the commit was sent the source stays frozen, and once
 * the target can be asked again exactly one copy remains. */
static void target_unreachable(void **state)
{
  static const char *const phases[] = {"offer", "precopy", "freeze", "dump", "transfer", "restore"};
  for (size_t i = 0; i < sizeof phases / sizeof phases[0]; i++) {
    reset();
    W.unreachable_from = phases[i];
    assert_int_equal(run(300), MIG_RESUMED);
    assert_int_equal(W.src, SRC_RUNNING);
    W.unreachable = false;
    assert_int_equal(copies_on_net(), 1);
  }
  /* restore applied, then the link broke: the restored copy is fenced */
  reset();
  W.lose_restore_answer = true;
  W.unreachable_from = "commit";
  assert_int_equal(run(300), MIG_IN_DOUBT);
  assert_int_equal(W.src, SRC_FROZEN);
  assert_true(W.marked);
  W.unreachable = false;
  assert_int_equal(copies_on_net(), 0); /* frozen here, fenced there: down, never doubled */
  assert_int_equal(restart_source(1000), RA_RESUME_HERE);
  assert_int_equal(copies_on_net(), 1);
  assert_int_equal(W.src, SRC_RUNNING);

  /* the commit arrived, then the link broke before its answer: the source
   * cannot know and stays frozen; the target runs it: one copy. The
   * restart asks again and removes the frozen copy. */
  reset();
  W.unreachable_after_commit = true;
  assert_int_equal(run(300), MIG_IN_DOUBT);
  assert_int_equal(W.src, SRC_FROZEN);
  assert_int_equal(W.tgt, T_RUNNING);
  W.unreachable = false;
  assert_int_equal(copies_on_net(), 1);
  assert_int_equal(restart_source(1000), RA_REMOVE_HERE);
  assert_int_equal(W.src, SRC_GONE);
  assert_int_equal(copies_on_net(), 1);
}

/* The source agent stops at each fault point and starts again, soon or
 * after the target's fence: every case ends with exactly one copy. */
static void source_restarts(void **state)
{
  static const char *const points[] = {"frozen", "dumped", "restored", "commit-sent", "committed"};
  static const uint64_t downs[] = {1000, FENCE_MS + 5000};
  for (size_t i = 0; i < sizeof points / sizeof points[0]; i++)
    for (size_t j = 0; j < 2; j++) {
      reset();
      W.die_at = points[i];
      assert_int_equal(run(300), MIG_DIED);
      assert_true(W.marked);
      restart_source(downs[j]);
      int n = copies_on_net();
      if (n != 1)
        fail_msg("source stopped at %s, down %llu ms: %d copies on the network", points[i],
                 (unsigned long long)downs[j], n);
      if (strcmp(points[i], "committed") == 0)
        assert_int_equal(W.src, SRC_GONE);
      if (strcmp(points[i], "frozen") == 0 || strcmp(points[i], "dumped") == 0 ||
          strcmp(points[i], "restored") == 0)
        assert_int_equal(W.src, SRC_RUNNING);
    }
  /* commit recorded, target unreachable at the restart: stays frozen */
  reset();
  W.die_at = "commit-sent";
  run(300);
  W.unreachable = true;
  assert_int_equal(restart_source(1000), RA_STAY_FROZEN);
  assert_int_equal(W.src, SRC_FROZEN);
  W.unreachable = false;
  restart_source(1000);
  assert_int_equal(copies_on_net(), 1);
}

/* The target agent restarts while each phase runs: it drops the
 * uncommitted copy, the source hears 404 and resumes; once committed, the
 * target keeps it. */
static void target_restarts(void **state)
{
  static const char *const phases[] = {"precopy", "freeze", "dump", "transfer", "restore", "commit"};
  for (size_t i = 0; i < sizeof phases / sizeof phases[0]; i++) {
    reset();
    W.target_restart_at = phases[i];
    assert_int_equal(run(300), MIG_RESUMED);
    assert_int_equal(W.src, SRC_RUNNING);
    assert_int_equal(W.commits_delivered, 0);
    assert_int_equal(copies_on_net(), 1);
  }
  reset();
  W.target_restart_at = "done";
  assert_int_equal(run(300), MIG_DONE);
  assert_int_equal(W.tgt, T_RUNNING);
  assert_int_equal(copies_on_net(), 1);
}

int main(void)
{
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(succeeds),          cmocka_unit_test(every_phase_failing),
      cmocka_unit_test(lost_answers),      cmocka_unit_test(slow_restores),
      cmocka_unit_test(target_unreachable), cmocka_unit_test(source_restarts),
      cmocka_unit_test(target_restarts),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
