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

#include "migrate/peer.h"
#include "migrate/protocol.h"
#include "migrate/wire.h"
#include "util/cleanup.h"
#include "util/json.h"

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


/* ---- the messages (wire.h): what one side writes the other reads back,
 * and what a hostile peer sends is refused naming the field ---- */

#define D1 "sha256:1111111111111111111111111111111111111111111111111111111111111111"
#define D2 "sha256:2222222222222222222222222222222222222222222222222222222222222222"
#define D3 "sha256:3333333333333333333333333333333333333333333333333333333333333333"
#define MID "0123456789abcdef0123"
#define SECRET "0123456789abcdef0123456789abcdef"

static json_t *image(void)
{
  return json_pack("{s:s, s:[s,s]}", "id", D3, "layers", D1, D2);
}

/* try_PARSER(text, m, msg, n): the parser on the JSON text; its error's
 * message in msg */
#define PARSE_WRAPPER(fn, type)                                                                    \
  static int try_##fn(const char *text, type *m, char *msg, size_t n)                              \
  {                                                                                                \
    json_t *j = json_loads(text, 0, NULL);                                                         \
    assert_non_null(j);                                                                            \
    struct ferry_err e = {0};                                                                      \
    int r = fn(j, m, &e);                                                                          \
    snprintf(msg, n, "%s", e.msg);                                                                 \
    json_decref(j);                                                                                \
    return r;                                                                                      \
  }
PARSE_WRAPPER(wire_offer_parse, struct wire_offer)
PARSE_WRAPPER(wire_page_server_req_parse, struct wire_page_server_req)
PARSE_WRAPPER(wire_page_server_parse, struct wire_page_server)
PARSE_WRAPPER(wire_restore_parse, struct wire_restore)
PARSE_WRAPPER(wire_prepare_parse, struct wire_prepare)
PARSE_WRAPPER(wire_state_parse, struct wire_state)
#define PARSE_TEXT(fn, text, m, msg) try_##fn(text, m, msg, sizeof msg)

static void wire_offer_both_ways(void **state)
{
  (void)state;
  _cleanup_json_ json_t *img = image();
  _cleanup_json_ json_t *ctr = json_pack("{s:s, s:s}", "name", "web", "image", D3);
  _cleanup_json_ json_t *vols = json_pack("[s]", "data");
  struct wire_offer w = {.id = MID, .source_agent = "a1", .container = ctr, .image = img,
                         .volumes = vols};
  _cleanup_json_ json_t *j = wire_offer_json(&w);
  struct wire_offer back;
  struct ferry_err err = {0};
  assert_int_equal(wire_offer_parse(j, &back, &err), 0);
  assert_string_equal(back.id, MID);
  assert_string_equal(back.source_agent, "a1");
  assert_true(json_equal(back.container, ctr) && json_equal(back.image, img) &&
              json_equal(back.volumes, vols));

  struct wire_offer m;
  char msg[FERRY_ERR_MSG];
  assert_true(PARSE_TEXT(wire_offer_parse, "[]", &m, msg) < 0);
  assert_true(PARSE_TEXT(wire_offer_parse, "{\"id\": \"../x\", \"container\": {}, \"image\": {}}",
                         &m, msg) < 0);
  assert_non_null(strstr(msg, "malformed"));
  assert_true(PARSE_TEXT(wire_offer_parse,
                         "{\"id\": \"" MID "\", \"container\": {}, \"image\": {\"id\": \"" D3
                         "\", \"layers\": [\"../../etc\"]}}",
                         &m, msg) < 0);
  assert_non_null(strstr(msg, "layer 1"));
  assert_true(PARSE_TEXT(wire_offer_parse,
                         "{\"id\": \"" MID "\", \"container\": {}, \"image\": {\"id\": \"" D3
                         "\", \"layers\": []}, \"volumes\": [\"../escape\"]}",
                         &m, msg) < 0);
  assert_true(PARSE_TEXT(wire_offer_parse,
                         "{\"id\": \"" MID "\", \"container\": {}, \"image\": {\"id\": \"" D3
                         "\", \"layers\": []}, \"volumes\": [7]}",
                         &m, msg) < 0);
}

/* The target asks for layers: only those of the image offered (anything
 * else in the source's store is not its to read). */
static void wire_offer_answer_asks_only_for_the_image(void **state)
{
  (void)state;
  _cleanup_json_ json_t *img = image();
  _cleanup_json_ json_t *missing = json_pack("[s]", D2);
  struct wire_offer_answer a = {.id = MID, .target_agent = "a2", .missing_layers = missing};
  _cleanup_json_ json_t *j = wire_offer_answer_json(&a);
  struct wire_offer_answer back;
  struct ferry_err err = {0};
  assert_int_equal(wire_offer_answer_parse(j, img, &back, &err), 0);
  assert_int_equal(json_array_size(back.missing_layers), 1);
  _cleanup_json_ json_t *other = json_pack("{s:[s]}", "missing_layers", D3); /* the image's id */
  assert_true(wire_offer_answer_parse(other, img, &back, &err) < 0);
  assert_non_null(strstr(err.msg, "not a layer of the image"));
  _cleanup_json_ json_t *none = json_object(); /* an older agent: nothing missing */
  assert_int_equal(wire_offer_answer_parse(none, img, &back, &err), 0);
  assert_int_equal(json_array_size(back.missing_layers), 0);
}

static void wire_page_server_both_ways(void **state)
{
  (void)state;
  struct wire_page_server_req q = {.round = 2, .parent_round = -1, .zstd = true}, qb;
  struct ferry_err err = {0};
  _cleanup_json_ json_t *qj = wire_page_server_req_json(&q);
  assert_int_equal(wire_page_server_req_parse(qj, &qb, &err), 0);
  assert_true(qb.round == 2 && qb.parent_round == -1 && qb.zstd);
  assert_int_equal(wire_page_server_req_parse(NULL, &qb, &err), 0); /* the dump's, on nothing */
  assert_true(qb.round == -1 && qb.parent_round == -1 && !qb.zstd);
  char msg[FERRY_ERR_MSG];
  assert_true(PARSE_TEXT(wire_page_server_req_parse, "{\"round\": 1, \"parent_round\": 0}", &qb,
                         msg) < 0);
  assert_true(PARSE_TEXT(wire_page_server_req_parse, "{\"round\": 64}", &qb, msg) < 0);
  assert_true(PARSE_TEXT(wire_page_server_req_parse, "{\"round\": -1}", &qb, msg) < 0);
  assert_true(PARSE_TEXT(wire_page_server_req_parse, "{\"zstd\": \"yes\"}", &qb, msg) < 0);

  struct wire_page_server a = {.address = NULL, .port = 40001, .secret = SECRET, .zstd = true}, ab;
  _cleanup_json_ json_t *aj = wire_page_server_json(&a);
  assert_int_equal(wire_page_server_parse(aj, &ab, &err), 0);
  assert_true(ab.port == 40001 && ab.zstd && strcmp(ab.address, "") == 0 &&
              strcmp(ab.secret, SECRET) == 0);
  assert_true(PARSE_TEXT(wire_page_server_parse, "{\"port\": 0}", &ab, msg) < 0);
  assert_true(PARSE_TEXT(wire_page_server_parse, "{\"port\": 70000}", &ab, msg) < 0);
  assert_true(PARSE_TEXT(wire_page_server_parse, "{\"port\": 1, \"secret\": \"x y\"}", &ab, msg) < 0);
}

static void wire_restore_both_ways(void **state)
{
  (void)state;
  _cleanup_json_ json_t *neigh = json_pack("[{s:s, s:s}]", "ip", "198.18.0.1", "mac", "02:00:00:00:00:01");
  struct wire_restore w = {.neighbours = neigh, .has_lazy_pages = true,
                           .lazy_pages = {.address = "198.18.0.2", .port = 4000, .secret = SECRET}};
  _cleanup_json_ json_t *j = wire_restore_json(&w);
  struct wire_restore b;
  struct ferry_err err = {0};
  assert_int_equal(wire_restore_parse(j, &b, &err), 0);
  assert_true(b.has_lazy_pages && !b.lazy_memory && b.lazy_pages.port == 4000);
  assert_string_equal(b.lazy_pages.secret, SECRET);
  assert_true(json_equal(b.neighbours, neigh));
  char msg[FERRY_ERR_MSG];
  assert_true(PARSE_TEXT(wire_restore_parse, "{\"neighbours\": {}}", &b, msg) < 0);
  assert_true(PARSE_TEXT(wire_restore_parse, "{\"neighbours\": [{\"ip\": 1}]}", &b, msg) < 0);
  assert_true(PARSE_TEXT(wire_restore_parse,
                         "{\"lazy_pages\": {\"port\": 4000, \"secret\": \"short\"}}", &b, msg) < 0);
  assert_non_null(strstr(msg, "hex digits"));
  assert_true(PARSE_TEXT(wire_restore_parse, "{\"lazy_memory\": 1}", &b, msg) < 0);
}

static void wire_prepare_and_state(void **state)
{
  (void)state;
  struct wire_prepare p;
  char msg[FERRY_ERR_MSG];
  assert_int_equal(PARSE_TEXT(wire_prepare_parse, "{\"descriptors\": [\"/dev/null\", \"pipe:[42]\"]}",
                              &p, msg), 0);
  assert_true(PARSE_TEXT(wire_prepare_parse, "{\"descriptors\": [\"$(reboot)\"]}", &p, msg) < 0);
  assert_true(PARSE_TEXT(wire_prepare_parse, "{\"descriptors\": [\"a\", \"b\", \"c\", \"d\"]}", &p,
                         msg) < 0);

  _cleanup_json_ json_t *report = json_pack("{s:i}", "restore_ms", 90);
  struct wire_state s = {.state = T_RESTORED, .restore = report}, b;
  struct ferry_err err = {0};
  _cleanup_json_ json_t *j = wire_state_json(&s);
  assert_int_equal(wire_state_parse(j, &b, &err), 0);
  assert_int_equal(b.state, T_RESTORED);
  assert_true(json_equal(b.restore, report));
  assert_true(PARSE_TEXT(wire_state_parse, "{\"state\": \"runs\"}", &b, msg) < 0);
  assert_true(PARSE_TEXT(wire_state_parse, "{\"state\": \"running\", \"restore\": 1}", &b, msg) < 0);

  struct wire_abort_answer ab;
  _cleanup_json_ json_t *aj = wire_abort_answer_json(&(struct wire_abort_answer){.aborting = true});
  assert_int_equal(wire_abort_answer_parse(aj, &ab, &err), 0);
  assert_true(ab.aborting);
}

/* The target as the source reaches it: the URL's forms, the paths of the
 * move's requests (names escaped), the one address every connection uses. */
static void peer_urls_and_paths(void **state)
{
  (void)state;
  struct mig_peer p;
  struct ferry_err err = {0};
  assert_int_equal(mig_peer_open(&p, "tcp://198.18.0.2:9000", MID, &err), 0);
  assert_string_equal(p.host, "198.18.0.2");
  assert_string_equal(p.port, "9000");
  assert_string_equal(p.addr, "198.18.0.2");
  assert_false(p.tls);
  char *path = mig_peer_path(&p, "/restore", NULL);
  assert_string_equal(path, "/v1/migrations/incoming/" MID "/restore");
  free(path);
  path = mig_peer_part_path(&p, WP_VOLUME, "a b/c");
  assert_string_equal(path, "/v1/migrations/incoming/" MID "/volumes/a%20b%2Fc");
  free(path);
  assert_int_equal(mig_peer_open(&p, "https://127.0.0.1/", MID, &err), 0);
  assert_true(p.tls);
  assert_string_equal(p.port, "443");
  const char *bad[] = {"ftp://198.18.0.2:9000", "tcp://198.18.0.2:90a", "tcp://:9000",
                       "tcp://198.18.0.2:9000/v1", "198.18.0.2:9000", "tcp://198.18.0.2:123456789"};
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
    assert_true(mig_peer_open(&p, bad[i], MID, &err) < 0);
    assert_int_equal(err.klass, FERRY_E_INVALID);
  }
}

/* The target's state machine (protocol.h's table, which target.c follows
 * for every change of state). */
static bool any_step_ends(enum target_state from, enum target_state to, enum target_step *which)
{
  for (int s = 0; s < TS_N; s++)
    if (target_step_ends_ok((enum target_step)s, from, to)) {
      if (which)
        *which = (enum target_step)s;
      return true;
    }
  return false;
}

static void target_machine(void **state)
{
  (void)state;
  for (int s = 0; s < TS_N; s++) {
    const struct target_rule *r = target_rule((enum target_step)s);
    assert_non_null(r);
    assert_non_null(r->name);
    for (int f = T_UNKNOWN; f <= T_GONE; f++) {
      /* only a commit puts a copy on the network, only a prune ends that */
      if (f != T_RUNNING && s != TS_COMMIT)
        assert_false(target_step_ends_ok((enum target_step)s, f, T_RUNNING));
      for (int t = T_UNKNOWN; t <= T_GONE; t++)
        if (f == T_RUNNING && t != T_RUNNING && s != TS_PRUNE)
          assert_false(target_step_ends_ok((enum target_step)s, f, t));
      /* a step that wrote its state first never goes back */
      if (r->during != T_UNKNOWN && target_step_may((enum target_step)s, f))
        assert_false(target_step_ends_ok((enum target_step)s, f, f));
    }
  }
  assert_null(target_rule(TS_N));
  /* a restored copy comes only from a restore; a commit needs one */
  enum target_step which = TS_N;
  for (int f = T_UNKNOWN; f <= T_GONE; f++)
    if (f != T_RESTORED && any_step_ends(f, T_RESTORED, &which))
      assert_int_equal(which, TS_RESTORE);
  assert_false(target_step_may(TS_COMMIT, T_OFFERED));
  assert_false(target_step_may(TS_COMMIT, T_RESTORING));
  assert_true(target_step_may(TS_COMMIT, T_RESTORED));
  assert_false(target_step_may(TS_RESTORE, T_RESTORED)); /* one restore per move */
  assert_false(target_step_may(TS_OFFER, T_OFFERED));    /* one offer per id */
  /* the removals (the source's abort, the agent's expiry and fence) never
   * touch a committed copy, and may touch any other: target_may_remove_copy */
  for (int st = T_OFFERED; st <= T_FAILED; st++) {
    bool removable = target_step_may(TS_ABORT, st) || target_step_may(TS_EXPIRE, st) ||
                     target_step_may(TS_FENCE, st) || target_step_may(TS_RESTART, st);
    assert_int_equal(removable, target_may_remove_copy(st) || st == T_RUNNING);
    /* the source may withdraw at any moment before its commit */
    assert_int_equal(target_step_may(TS_ABORT, st), target_may_remove_copy(st));
  }
  assert_false(target_step_may(TS_ABORT, T_RUNNING));
  assert_false(target_step_may(TS_EXPIRE, T_RUNNING));
  assert_false(target_step_may(TS_FENCE, T_RUNNING));
  /* every state is reached from "no migration", and from each the
   * migration can end (nothing is kept forever) */
  bool reach[T_GONE + 1] = {[T_GONE] = true};
  for (int round = 0; round <= T_GONE; round++)
    for (int f = T_UNKNOWN; f <= T_GONE; f++)
      for (int t = T_UNKNOWN; t <= T_GONE; t++)
        if (reach[f] && any_step_ends(f, t, NULL))
          reach[t] = true;
  for (int st = T_OFFERED; st <= T_FAILED; st++)
    assert_true(reach[st]);
  for (int st = T_OFFERED; st <= T_FAILED; st++) {
    bool ends[T_GONE + 1] = {0};
    ends[st] = true;
    for (int round = 0; round <= T_GONE; round++)
      for (int f = T_UNKNOWN; f <= T_GONE; f++)
        for (int t = T_UNKNOWN; t <= T_GONE; t++)
          if (ends[f] && any_step_ends(f, t, NULL))
            ends[t] = true;
    assert_true(ends[T_GONE]);
  }
  /* and the ways that go wrong */
  assert_false(target_step_ends_ok(TS_RESTORE, T_OFFERED, T_OFFERED)); /* wrote "restoring" */
  assert_false(target_step_ends_ok(TS_COMMIT, T_RESTORED, T_RESTORED));
  assert_false(target_step_ends_ok(TS_FENCE, T_RESTORED, T_RESTORED));
  assert_true(target_step_ends_ok(TS_FENCE, T_RESTORED, T_FAILED));
  assert_false(target_step_ends_ok(TS_RESTART, T_RESTORED, T_RUNNING));
  assert_true(target_step_ends_ok(TS_RESTART, T_RUNNING, T_RUNNING));
  assert_false(target_step_ends_ok(TS_PART, T_OFFERED, T_RESTORED));
}

int main(void)
{
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(parses_states),
      cmocka_unit_test(decides_by_state),
      cmocka_unit_test(never_two_copies),
      cmocka_unit_test(the_check_catches_a_careless_source),
      cmocka_unit_test(wire_parts_round_trip),
      cmocka_unit_test(wire_offer_both_ways),
      cmocka_unit_test(wire_offer_answer_asks_only_for_the_image),
      cmocka_unit_test(wire_page_server_both_ways),
      cmocka_unit_test(wire_restore_both_ways),
      cmocka_unit_test(wire_prepare_and_state),
      cmocka_unit_test(peer_urls_and_paths),
      cmocka_unit_test(target_machine),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
