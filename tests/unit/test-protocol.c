/* migrate/protocol: the decisions of both sides, and an exhaustive check of
 * the "exactly one copy" rule over every interleaving (to a depth) of lost
 * answers, late restores, the fence, aborts and restarts of either side. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>
#include <string.h>

#include "migrate/protocol.h"

static void parses_states(void **state)
{
  (void)state;
  assert_int_equal(target_state_parse("restored"), T_RESTORED);
  assert_int_equal(target_state_parse("running"), T_RUNNING);
  assert_int_equal(target_state_parse("Running"), T_UNKNOWN);
  assert_int_equal(target_state_parse("runs here"), T_UNKNOWN);
  assert_int_equal(target_state_parse(NULL), T_UNKNOWN);
  for (int s = T_UNKNOWN; s <= T_GONE; s++)
    if (s != T_UNKNOWN && s != T_GONE)
      assert_int_equal(target_state_parse(target_state_name((enum target_state)s)), s);
}

static void decides_by_state(void **state)
{
  (void)state;
  /* a restored copy is never abandoned by the source's own choice */
  assert_int_equal(restore_verdict(T_RESTORED, true, true), RV_COMMIT);
  /* a restore in progress is waited for until the time is up */
  assert_int_equal(restore_verdict(T_RESTORING, false, false), RV_WAIT);
  assert_int_equal(restore_verdict(T_RESTORING, false, true), RV_ABORT);
  assert_int_equal(restore_verdict(T_UNKNOWN, false, false), RV_WAIT);
  assert_int_equal(restore_verdict(T_UNKNOWN, true, false), RV_ABORT);
  assert_int_equal(restore_verdict(T_FAILED, false, false), RV_ABORT);
  /* after the commit was sent, an unreachable target keeps the copy frozen */
  assert_int_equal(commit_verdict(T_UNKNOWN), CV_WAIT);
  assert_int_equal(commit_verdict(T_RESTORED), CV_RETRY);
  assert_int_equal(commit_verdict(T_RUNNING), CV_DONE);
  assert_int_equal(commit_verdict(T_GONE), CV_RESUME);
  assert_int_equal(source_recover_action(T_UNKNOWN, true), RA_STAY_FROZEN);
  assert_int_equal(source_recover_action(T_UNKNOWN, false), RA_RESUME_HERE);
  assert_int_equal(source_recover_action(T_RESTORED, true), RA_COMMIT_AGAIN);
  assert_int_equal(source_recover_action(T_RESTORED, false), RA_RESUME_HERE);
  assert_int_equal(source_recover_action(T_RUNNING, false), RA_REMOVE_HERE);
  assert_false(target_may_remove_copy(T_RUNNING));
  assert_true(target_may_remove_copy(T_RESTORED));
}

/* ---- a model of both sides ---- */

enum src_phase { S_RESTORE_PENDING, S_COMMIT_PENDING, S_FROZEN, S_DONE, S_RESUMED };

struct world {
  enum target_state t; /* T_GONE once removed */
  enum src_phase s;
  bool commit_sent;       /* persisted on the source */
  bool commit_in_flight;  /* a commit request not yet delivered or lost */
  bool abort_in_flight;
  bool reachable;         /* can the source ask the target now */
};

static long g_states, g_violations, g_done, g_resumed, g_frozen;
/* the source's decision after the commit: the real one, or a careless one */
static enum commit_verdict (*g_commit_verdict)(enum target_state) = commit_verdict;
static bool g_quiet;
static char g_trace[64][48];

/* The invariant: at most one copy on the network. The source's copy is on
 * the network once resumed (it is frozen and off the network until then);
 * the target's once it runs (committed). */
static bool one_copy(const struct world *w)
{
  return !(w->s == S_RESUMED && w->t == T_RUNNING);
}

static enum target_state asked(const struct world *w)
{
  return w->reachable ? w->t : T_UNKNOWN;
}

static void explore(struct world w, int depth, int maxdepth);

static void step(struct world w, int depth, int maxdepth, const char *what)
{
  snprintf(g_trace[depth], sizeof g_trace[depth], "%s", what);
  explore(w, depth + 1, maxdepth);
}

static void explore(struct world w, int depth, int maxdepth)
{
  g_states++;
  if (!one_copy(&w)) {
    if (g_violations++ == 0 && !g_quiet) {
      for (int i = 0; i < depth; i++)
        print_error("  %d: %s\n", i, g_trace[i]);
    }
    return;
  }
  if (depth >= maxdepth)
    goto count;
  {
    struct world n;
    /* target events */
    if (w.t == T_RESTORING) {
      n = w, n.t = T_RESTORED, step(n, depth, maxdepth, "target restored");
      n = w, n.t = T_FAILED, step(n, depth, maxdepth, "target restore fails");
    }
    if (w.t == T_RESTORED) {
      n = w, n.t = T_FAILED, step(n, depth, maxdepth, "fence kills uncommitted copy");
    }
    if (w.t != T_RUNNING && w.t != T_GONE) {
      n = w, n.t = T_GONE, step(n, depth, maxdepth, "target restarts: removes the copy");
    }
    if (w.commit_in_flight) {
      n = w, n.commit_in_flight = false;
      if (n.t == T_RESTORED)
        n.t = T_RUNNING;
      step(n, depth, maxdepth, "commit delivered");
      n = w, n.commit_in_flight = false, step(n, depth, maxdepth, "commit lost");
    }
    if (w.abort_in_flight) {
      n = w, n.abort_in_flight = false;
      if (n.t != T_RUNNING)
        n.t = T_GONE;
      step(n, depth, maxdepth, "abort delivered");
      n = w, n.abort_in_flight = false, step(n, depth, maxdepth, "abort lost");
    }
    n = w, n.reachable = !w.reachable, step(n, depth, maxdepth, "link flips");

    /* source events */
    if (w.s == S_RESTORE_PENDING) {
      for (int flags = 0; flags < 4; flags++) {
        enum restore_verdict v = restore_verdict(asked(&w), flags & 1, flags & 2);
        n = w;
        if (v == RV_COMMIT) {
          n.s = S_COMMIT_PENDING, n.commit_sent = true, n.commit_in_flight = true;
        } else if (v == RV_ABORT) {
          n.s = S_RESUMED, n.abort_in_flight = true;
        } else {
          continue;
        }
        step(n, depth, maxdepth, v == RV_COMMIT ? "source: commit" : "source: abort, resume");
      }
    }
    if (w.s == S_COMMIT_PENDING) {
      enum commit_verdict v = g_commit_verdict(asked(&w));
      n = w;
      if (v == CV_DONE)
        n.s = S_DONE;
      else if (v == CV_RETRY)
        n.commit_in_flight = true;
      else if (v == CV_RESUME)
        n.s = S_RESUMED, n.abort_in_flight = true;
      else
        n.s = S_FROZEN; /* patience ran out: frozen, in doubt */
      step(n, depth, maxdepth, "source asks after commit");
    }
    if (w.s == S_RESTORE_PENDING || w.s == S_COMMIT_PENDING || w.s == S_FROZEN) {
      /* the source agent restarts and recovers */
      enum recover_action act = source_recover_action(asked(&w), w.commit_sent);
      n = w;
      if (act == RA_REMOVE_HERE)
        n.s = S_DONE;
      else if (act == RA_COMMIT_AGAIN)
        n.s = S_FROZEN, n.commit_in_flight = true;
      else if (act == RA_RESUME_HERE)
        n.s = S_RESUMED, n.abort_in_flight = w.reachable;
      else
        n.s = S_FROZEN;
      step(n, depth, maxdepth, "source restarts");
    }
  }
  return;
count:
  if (w.s == S_DONE)
    g_done++;
  else if (w.s == S_RESUMED)
    g_resumed++;
  else
    g_frozen++;
}

static void never_two_copies(void **state)
{
  (void)state;
  /* the restore request was delivered (restoring) or lost (offered); the
   * source has no answer yet */
  const enum target_state starts[] = {T_RESTORING, T_OFFERED, T_RESTORED};
  for (size_t i = 0; i < sizeof starts / sizeof *starts; i++) {
    for (int reach = 0; reach < 2; reach++) {
      struct world w = {.t = starts[i], .s = S_RESTORE_PENDING, .reachable = reach};
      explore(w, 0, 9);
    }
  }
  print_message("explored %ld states: %ld end moved, %ld end resumed, %ld end frozen\n", g_states,
                g_done, g_resumed, g_frozen);
  assert_int_equal(g_violations, 0);
  /* the model reaches every outcome: the check is not vacuous */
  assert_true(g_done > 0 && g_resumed > 0 && g_frozen > 0);
}

/* The rule's two halves matter: a source that resumed whenever the target
 * could not be asked after the commit would break it. */
static enum commit_verdict careless_commit_verdict(enum target_state st)
{
  return st == T_UNKNOWN ? CV_RESUME : commit_verdict(st);
}

static void the_check_catches_a_careless_source(void **state)
{
  (void)state;
  g_states = g_violations = g_done = g_resumed = g_frozen = 0;
  g_commit_verdict = careless_commit_verdict;
  g_quiet = true;
  struct world w = {.t = T_RESTORING, .s = S_RESTORE_PENDING, .reachable = true};
  explore(w, 0, 9);
  g_commit_verdict = commit_verdict;
  g_quiet = false;
  print_message("careless source: %ld interleavings end with two copies\n", g_violations);
  assert_true(g_violations > 0);
}

/* Every part a source uploads is a part the target's route knows, by the
 * same segment; a named part is named on both sides; anything else is none. */
static void wire_parts_round_trip(void **state)
{
  (void)state;
  const char *segs[] = {"layers", "volumes", "volume-delta", "rootfs", "rootfs-delta", "criu"};
  for (int p = WP_LAYER; p <= WP_CRIU; p++) {
    assert_string_equal(wire_part_segment((enum wire_part)p), segs[p]);
    assert_int_equal(wire_part_parse(segs[p]), p);
  }
  assert_true(wire_part_named(WP_LAYER) && wire_part_named(WP_VOLUME) &&
              wire_part_named(WP_VOLUME_DELTA));
  assert_false(wire_part_named(WP_ROOTFS) || wire_part_named(WP_ROOTFS_DELTA) ||
               wire_part_named(WP_CRIU) || wire_part_named(WP_NONE));
  assert_int_equal(wire_part_parse("layer"), WP_NONE);
  assert_int_equal(wire_part_parse("../criu"), WP_NONE);
  assert_int_equal(wire_part_parse(""), WP_NONE);
  assert_string_equal(wire_part_segment(WP_NONE), "");
}

int main(void)
{
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(parses_states),
      cmocka_unit_test(decides_by_state),
      cmocka_unit_test(never_two_copies),
      cmocka_unit_test(the_check_catches_a_careless_source),
      cmocka_unit_test(wire_parts_round_trip),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
