/* A whole move on the real code of both sides: the source's migrate/
 * (source.c, the pipeline, host.c) and the target's (target.c), each over a
 * fake host (fake-host.c), talking over an in-memory transport: the HTTP
 * client's calls below go straight to the target's steps, and can break
 * (a lost answer, a link down for a while). Each case checks what a user
 * would: where the container runs afterwards, what the move's report says,
 * and that at no moment both copies were on the network. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "agent/agent.h"
#include "fake-host.h"
#include "http/http.h"
#include "migrate/migrate.h"
#include "migrate/protocol.h"
#include "migrate/wire.h"
#include "util/cleanup.h"
#include "util/fs.h"
#include "util/json.h"

/* ---- the world: two agents and the link between them ---- */

static struct {
  pthread_mutex_t lock;
  struct agent *src, *tgt;
  const char *lose_answer_of; /* the step ("/restore", "/commit") whose answer is lost, once */
  int down_for;               /* the next this many calls do not get through */
  const char *down_from;      /* ... from the first call of this step on */
  const char *restart_target_at; /* the target agent restarts before this step arrives */
  bool two_on_net;            /* ever both copies on the network */
  int calls;
} W = {.lock = PTHREAD_MUTEX_INITIALIZER};

static void check_one_copy(void)
{
  if (W.src && W.tgt && fake_source_on_net(W.src) && fake_copy_on_net(W.tgt))
    W.two_on_net = true;
}

/* ---- the transport: the HTTP client, in memory ---- */

struct http_client {
  int unused;
};

int http_client_new(const char *host, struct http_client **out, struct ferry_err *err)
{
  (void)host; (void)err;
  *out = calloc(1, sizeof **out);
  assert_non_null(*out);
  return 0;
}
void http_client_free(struct http_client *c) { free(c); }
void http_client_set_token(struct http_client *c, const char *t) { (void)c; (void)t; }
void http_client_set_ca(struct http_client *c, const char *f) { (void)c; (void)f; }
void http_client_set_timeout(struct http_client *c, long s) { (void)c; (void)s; }
void http_client_pin(struct http_client *c, const char *n, const char *p, const char *a)
{
  (void)c; (void)n; (void)p; (void)a;
}
void http_client_set_progress(struct http_client *c, http_progress_fn fn, void *ud)
{
  (void)c; (void)fn; (void)ud;
}
char *http_escape(const char *s) { return xstrdup(s); }

#define IN_PATH "/v1/migrations/incoming"

/* One request to the target agent, as its API routes it. */
static int deliver(const char *method, const char *path, json_t *body, const char *file,
                   json_t **out, struct ferry_err *err)
{
  struct agent *t = W.tgt;
  if (strcmp(path, IN_PATH) == 0 && strcmp(method, "POST") == 0)
    return incoming_offer(t, body, "198.18.0.1", out, err);
  assert_int_equal(strncmp(path, IN_PATH "/", sizeof IN_PATH), 0);
  char id[64] = "", step[64] = "", arg[256] = "";
  sscanf(path + sizeof IN_PATH, "%63[^/]/%63[^/]/%255s", id, step, arg);
  if (!*step && strcmp(method, "GET") == 0)
    return incoming_get(t, id, out, err);
  if (!*step && strcmp(method, "DELETE") == 0)
    return incoming_abort(t, id, out, err);
  if (strcmp(step, "page-server") == 0)
    return incoming_page_server(t, id, body, out, err);
  if (strcmp(step, "prepare") == 0)
    return incoming_prepare(t, id, body, out, err);
  if (strcmp(step, "restore") == 0)
    return incoming_restore(t, id, body, out, err);
  if (strcmp(step, "commit") == 0)
    return incoming_commit(t, id, out, err);
  enum wire_part part = wire_part_parse(step);
  assert_int_not_equal(part, WP_NONE);
  assert_non_null(file);
  return incoming_put(t, id, part, *arg ? arg : NULL, file, out, err);
}

static void agent_restart(struct agent *a);

static int transport(const char *method, const char *path, json_t *body, const char *file,
                     json_t **out, struct ferry_err *err)
{
  pthread_mutex_lock(&W.lock);
  W.calls++;
  bool down = false, lose = false;
  if (W.down_from && strstr(path, W.down_from)) {
    W.down_from = NULL;
    W.down_for = W.down_for ? W.down_for : 1;
  }
  if (W.down_for > 0 && !W.down_from) {
    W.down_for--;
    down = true;
  }
  if (W.lose_answer_of && strstr(path, W.lose_answer_of) && strcmp(method, "GET") != 0) {
    W.lose_answer_of = NULL;
    lose = true;
  }
  bool restart = W.restart_target_at && strstr(path, W.restart_target_at);
  if (restart)
    W.restart_target_at = NULL;
  pthread_mutex_unlock(&W.lock);
  if (restart) /* (no other request of the move is under way at these steps) */
    agent_restart(W.tgt);
  if (down)
    return ferry_err_set(err, -ECONNREFUSED, FERRY_E_UNAVAILABLE, "%s %s: connection refused (test)",
                         method, path);
  json_t *ans = NULL;
  int r = deliver(method, path, body, file, &ans, err);
  pthread_mutex_lock(&W.lock);
  check_one_copy();
  pthread_mutex_unlock(&W.lock);
  if (lose) {
    json_decref(ans);
    return ferry_err_set(err, -ECONNRESET, FERRY_E_UNAVAILABLE, "%s %s: connection reset (test)",
                         method, path);
  }
  if (out)
    *out = ans;
  else
    json_decref(ans);
  return r;
}

/* The agent stops (what it holds in memory is lost, its records stay) and
 * starts again: its recovery runs. */
static void agent_restart(struct agent *a)
{
  migrate_fini(a);
  fake_agent_stopped(a);
  unsetenv("FERRY_FAULT");
  struct ferry_err err = {0};
  assert_int_equal(migrate_init(a, &err), 0);
}

int http_call(struct http_client *c, const char *method, const char *path, json_t *body,
              json_t **out, struct ferry_err *err)
{
  (void)c;
  return transport(method, path, body, NULL, out, err);
}

int http_upload_method(struct http_client *c, const char *method, const char *path,
                       const char *file, json_t **out, struct ferry_err *err)
{
  (void)c;
  return transport(method, path, NULL, file, out, err);
}

/* ---- a move ---- */

static void world_up(void)
{
  unsetenv("FERRY_FAULT");
  W.src = fake_agent_new("source");
  W.tgt = fake_agent_new("target");
  W.src->ctr = fake_container();
  W.lose_answer_of = W.down_from = W.restart_target_at = NULL;
  W.down_for = 0;
  W.two_on_net = false;
  struct ferry_err err = {0};
  assert_int_equal(migrate_init(W.src, &err), 0);
  assert_int_equal(migrate_init(W.tgt, &err), 0);
}

static void world_end(void)
{
  unsetenv("FERRY_FAULT");
  migrate_fini(W.src);
  migrate_fini(W.tgt);
  fake_agent_free(W.src);
  fake_agent_free(W.tgt);
  W.src = W.tgt = NULL;
}

static void world_down(void)
{
  bool two = W.two_on_net;
  world_end();
  assert_false(two);
}

/* a case that failed halfway leaves nothing behind either */
static int teardown(void **st)
{
  (void)st;
  if (W.src)
    world_end();
  return 0;
}

/* Moves "web" from the source to the target: the move's report. */
static json_t *move(void)
{
  json_t *req = json_pack("{s:s, s:s, s:i}", "to", "tcp://198.18.0.2:9000", "memory", "copy",
                          "timeout", 60);
  json_t *ans = NULL;
  struct ferry_err err = {0};
  int r = migrate_start(W.src, "web", req, &ans, &err);
  json_decref(req);
  if (r < 0)
    return json_pack("{s:s, s:s}", "status", "refused", "error", err.msg);
  _cleanup_free_ char *id = xstrdup(json_str_or(ans, "id", ""));
  json_decref(ans);
  json_t *rep = migrate_wait(W.src, id, 120);
  assert_non_null(rep);
  pthread_mutex_lock(&W.lock);
  check_one_copy();
  pthread_mutex_unlock(&W.lock);
  return rep;
}

static const char *status(json_t *rep) { return json_str_or(rep, "status", "?"); }

/* where the container runs: on the source (as before), or on the target */
static void runs_on_source(json_t *rep)
{
  if (!fake_source_on_net(W.src) || fake_copy_on_net(W.tgt))
    fail_msg("expected the container back on the source: %s", json_dumps(rep, JSON_COMPACT));
  assert_int_equal(json_array_size(W.tgt->copies), 0);
  assert_true(json_is_true(json_object_get(rep, "resumed_on_source")));
}

static void runs_on_target(json_t *rep)
{
  if (!W.src->gone || !fake_copy_on_net(W.tgt))
    fail_msg("expected the container on the target: %s", json_dumps(rep, JSON_COMPACT));
  assert_int_equal(json_array_size(W.tgt->copies), 1);
  assert_int_equal(W.tgt->link_ups, 1);
  assert_string_equal(status(rep), "succeeded");
}

/* ---- the cases ---- */

static void moves(void **st)
{
  (void)st;
  world_up();
  json_t *rep = move();
  runs_on_target(rep);
  assert_int_equal(W.src->dumps, 1);
  assert_int_equal(W.src->thaws, 0);
  assert_true(json_integer_value(json_object_get(rep, "downtime_ms")) >= 0);
  json_decref(rep);
  world_down();
}

static void restore_fails(void **st)
{
  (void)st;
  world_up();
  W.tgt->restore_fails = true;
  json_t *rep = move();
  assert_string_equal(status(rep), "failed");
  assert_non_null(strstr(json_str_or(rep, "error", ""), "criu restore failed"));
  runs_on_source(rep);
  assert_int_equal(W.tgt->link_ups, 0);
  json_decref(rep);
  world_down();
}

/* The restore's answer is lost: the source asks, hears "restored", commits. */
static void restore_answer_lost(void **st)
{
  (void)st;
  world_up();
  W.lose_answer_of = "/restore";
  json_t *rep = move();
  assert_null(W.lose_answer_of); /* it was lost */
  runs_on_target(rep);
  json_decref(rep);
  world_down();
}

/* The commit's answer is lost: the source asks, hears "running": done. */
static void commit_answer_lost(void **st)
{
  (void)st;
  world_up();
  W.lose_answer_of = "/commit";
  json_t *rep = move();
  assert_null(W.lose_answer_of);
  runs_on_target(rep);
  json_decref(rep);
  world_down();
}

/* The link goes down at the commit for a few requests: the source keeps
 * the container frozen and sends the commit again once it can. */
static void link_down_at_commit(void **st)
{
  (void)st;
  world_up();
  W.down_from = "/commit";
  W.down_for = 4;
  json_t *rep = move();
  assert_null(W.down_from);
  assert_int_equal(W.down_for, 0); /* it was down, then up */
  runs_on_target(rep);
  json_decref(rep);
  world_down();
}

/* The source cannot record that it sends the commit (a full disk): no
 * commit goes, the target's copy is withdrawn, the container runs on here. */
static void commit_mark_unwritten(void **st)
{
  (void)st;
  world_up();
  setenv("FERRY_FAULT", "source-commit-record:enospc", 1);
  json_t *rep = move();
  assert_string_equal(status(rep), "failed");
  assert_non_null(strstr(json_str_or(rep, "error", ""), "no commit sent"));
  runs_on_source(rep);
  assert_int_equal(W.tgt->link_ups, 0);
  json_decref(rep);
  world_down();
}

/* The target cannot record "running" (a full disk): its copy goes, the
 * source hears it has none and resumes its own. */
static void target_commit_unwritten(void **st)
{
  (void)st;
  world_up();
  setenv("FERRY_FAULT", "incoming-state-running:enospc", 1);
  json_t *rep = move();
  assert_string_equal(status(rep), "failed");
  runs_on_source(rep);
  assert_int_equal(W.tgt->link_ups, 0);
  json_decref(rep);
  world_down();
}

/* A step of the source fails after the dump: the target is withdrawn (its
 * state: gone), the container resumes here. */
static void source_fails_after_dump(void **st)
{
  (void)st;
  world_up();
  setenv("FERRY_FAULT", "source-dumped:fail", 1);
  json_t *rep = move();
  assert_string_equal(status(rep), "failed");
  assert_string_equal(json_str_or(rep, "failed_phase", ""), "dump");
  runs_on_source(rep);
  assert_int_equal(W.tgt->nets, 0);
  json_decref(rep);
  world_down();
}

/* The target refuses the offer (a container of that name runs there):
 * nothing was frozen, nothing is left there. */
static void offer_refused(void **st)
{
  (void)st;
  world_up();
  json_array_append_new(W.tgt->copies, fake_container());
  json_t *rep = move();
  assert_string_equal(status(rep), "failed");
  assert_string_equal(json_str_or(rep, "failed_phase", ""), "offer");
  assert_int_equal(W.src->dumps, 0);
  assert_true(fake_source_on_net(W.src));
  json_array_clear(W.tgt->copies);
  json_decref(rep);
  world_down();
}

/* where the container runs after a restart (no report then) */
static void on_source_only(void)
{
  assert_true(fake_source_on_net(W.src));
  assert_false(fake_copy_on_net(W.tgt));
  assert_int_equal(json_array_size(W.tgt->copies), 0);
}

static void on_target_only(void)
{
  assert_true(W.src->gone);
  assert_true(fake_copy_on_net(W.tgt));
  assert_int_equal(json_array_size(W.tgt->copies), 1);
  assert_int_equal(W.tgt->link_ups, 1);
}

/* The source agent stops at a fault point of the move ("stop": here, in
 * one process, it leaves everything as it is) and starts again: its
 * recovery asks the target and ends the move one way. */
static void source_stops_at(const char *point)
{
  char spec[64];
  snprintf(spec, sizeof spec, "source-%s:stop", point);
  setenv("FERRY_FAULT", spec, 1);
  json_t *rep = move();
  assert_string_equal(status(rep), "failed");
  json_decref(rep);
  pthread_mutex_lock(&W.lock);
  check_one_copy();
  pthread_mutex_unlock(&W.lock);
  agent_restart(W.src);
  pthread_mutex_lock(&W.lock);
  check_one_copy();
  pthread_mutex_unlock(&W.lock);
}

static void source_restarts_before_the_commit(void **st)
{
  (void)st;
  /* frozen, dumped, restored there: no commit was sent, so it resumes here
   * and the target's copy (if any) goes */
  const char *points[] = {"frozen", "dumped", "restored"};
  for (size_t i = 0; i < sizeof points / sizeof points[0]; i++) {
    world_up();
    source_stops_at(points[i]);
    on_source_only();
    world_down();
  }
}

/* Stopped with the commit recorded but not sent: the restart commits it. */
static void source_restarts_commit_sent(void **st)
{
  (void)st;
  world_up();
  source_stops_at("commit-sent");
  on_target_only();
  world_down();
}

/* Stopped after the target committed: the restart removes the copy here. */
static void source_restarts_committed(void **st)
{
  (void)st;
  world_up();
  source_stops_at("committed");
  on_target_only();
  world_down();
}

/* Stopped with the commit recorded, and the target cannot be asked when it
 * starts again: the container stays frozen (no copy on the network); the
 * next start, with the target back, commits. */
static void source_restarts_target_away(void **st)
{
  (void)st;
  world_up();
  setenv("FERRY_FAULT", "source-commit-sent:stop", 1);
  json_t *rep = move();
  json_decref(rep);
  W.down_for = 1000; /* the target cannot be reached from here on */
  agent_restart(W.src);
  assert_true(W.src->frozen);
  assert_false(W.src->gone);
  assert_false(fake_copy_on_net(W.tgt));
  W.down_for = 0;
  agent_restart(W.src);
  on_target_only();
  world_down();
}

/* The target agent restarts before the restore arrives: it forgot the move
 * (404), the source resumes. */
static void target_restarts_before_restore(void **st)
{
  (void)st;
  world_up();
  W.restart_target_at = "/restore";
  json_t *rep = move();
  assert_null(W.restart_target_at);
  assert_string_equal(status(rep), "failed");
  runs_on_source(rep);
  json_decref(rep);
  world_down();
}

/* ... before the commit arrives: its copy, restored but not committed,
 * goes; the source hears it has none and resumes. */
static void target_restarts_before_commit(void **st)
{
  (void)st;
  world_up();
  W.restart_target_at = "/commit";
  json_t *rep = move();
  assert_null(W.restart_target_at);
  assert_string_equal(status(rep), "failed");
  runs_on_source(rep);
  assert_int_equal(W.tgt->link_ups, 0);
  json_decref(rep);
  world_down();
}

int main(void)
{
  const struct CMUnitTest tests[] = {
      cmocka_unit_test_teardown(moves, teardown),
      cmocka_unit_test_teardown(restore_fails, teardown),
      cmocka_unit_test_teardown(restore_answer_lost, teardown),
      cmocka_unit_test_teardown(commit_answer_lost, teardown),
      cmocka_unit_test_teardown(link_down_at_commit, teardown),
      cmocka_unit_test_teardown(commit_mark_unwritten, teardown),
      cmocka_unit_test_teardown(target_commit_unwritten, teardown),
      cmocka_unit_test_teardown(source_fails_after_dump, teardown),
      cmocka_unit_test_teardown(offer_refused, teardown),
      cmocka_unit_test_teardown(source_restarts_before_the_commit, teardown),
      cmocka_unit_test_teardown(source_restarts_commit_sent, teardown),
      cmocka_unit_test_teardown(source_restarts_committed, teardown),
      cmocka_unit_test_teardown(source_restarts_target_away, teardown),
      cmocka_unit_test_teardown(target_restarts_before_restore, teardown),
      cmocka_unit_test_teardown(target_restarts_before_commit, teardown),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
