/* migrate/target.c, the real receiving side of a move, over a fake host: the
 * agent's calls that make and change a copy (agent/, ckpt/) are replaced at
 * link time by fake-host.c's, which keep the copy as a record and count
 * what reached the network. The steps come as the source sends them
 * (the in-memory transport is the call); the fault points and write
 * failures are the ones the real agent has. Each case checks what a user
 * would: whether a copy runs here, whether it joined the network, what the
 * source is told. */
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
#include "migrate/migrate.h"
#include "migrate/protocol.h"
#include "migrate/state.h"
#include "migrate/wire.h"
#include "runtime/record.h"
#include "runtime/runtime.h"
#include "util/fs.h"
#include "util/json.h"

#define MID "0123456789abcdef0123" /* the move's id */

#define MID "0123456789abcdef0123" /* the move's id */

/* ---- the source's side of the conversation ---- */

#define D1 FAKE_D1

static struct agent *target_up(struct agent *a)
{
  struct ferry_err err = {0};
  assert_int_equal(migrate_init(a, &err), 0);
  return a;
}

static struct agent *current; /* the case's, for its teardown */

static struct agent *agent_new(void)
{
  unsetenv("FERRY_FAULT");
  return current = target_up(fake_agent_new("target"));
}

static void agent_free(struct agent *a)
{
  migrate_fini(a);
  unsetenv("FERRY_FAULT");
  fake_agent_free(a);
  if (a == current)
    current = NULL;
}

/* a case that failed halfway leaves nothing behind either */
static int teardown(void **st)
{
  (void)st;
  if (current)
    agent_free(current);
  return 0;
}

/* the agent stops and starts again (its state files stay) */
static void restart(struct agent *a)
{
  migrate_fini(a);
  unsetenv("FERRY_FAULT");
  target_up(a);
}

static int offer(struct agent *a)
{
  json_t *ctr = json_pack("{s:s, s:s, s:s, s:s, s:[s]}", "name", "web", "image", D1, "ip",
                          "198.18.0.5", "mac", "02:00:c6:12:00:05", "args", "/bin/echo-server");
  json_t *img = json_pack("{s:s, s:[s]}", "id", D1, "layers", D1);
  json_t *vols = json_array();
  struct wire_offer w = {.id = MID, .source_agent = "source", .container = ctr, .image = img,
                         .volumes = vols};
  json_t *req = wire_offer_json(&w), *out = NULL;
  struct ferry_err err = {0};
  int r = incoming_offer(a, req, "198.18.0.1", &out, &err);
  if (r < 0)
    print_message("offer: %s\n", err.msg);
  json_decref(out);
  json_decref(req);
  json_decref(ctr);
  json_decref(img);
  json_decref(vols);
  return r;
}

static int put_criu(struct agent *a)
{
  char file[160];
  snprintf(file, sizeof file, "%s/images.tar", a->root);
  assert_int_equal(write_file_atomic(file, "x", 1, 0600, NULL), 0);
  json_t *out = NULL;
  struct ferry_err err = {0};
  int r = incoming_put(a, MID, WP_CRIU, NULL, file, &out, &err);
  json_decref(out);
  unlink(file);
  return r;
}

static int dump_arrives(struct agent *a)
{
  json_t *req = json_object(), *out = NULL; /* the dump's, on no pre-dump */
  struct ferry_err err = {0};
  int r = incoming_page_server(a, MID, req, &out, &err);
  json_decref(req);
  json_decref(out);
  return r;
}

static int restore(struct agent *a, struct ferry_err *err)
{
  json_t *req = json_object(), *out = NULL;
  int r = incoming_restore(a, MID, req, &out, err);
  json_decref(req);
  json_decref(out);
  return r;
}

/* step's answer, as the source reads it: the state (T_GONE: 404) */
static enum target_state commit(struct agent *a, struct ferry_err *err)
{
  json_t *out = NULL;
  int r = incoming_commit(a, MID, &out, err);
  struct wire_state w = {0};
  enum target_state st = T_UNKNOWN;
  if (r == 0 && wire_state_parse(out, &w, NULL) == 0)
    st = w.state;
  json_decref(out);
  return r < 0 ? T_UNKNOWN : st;
}

static enum target_state state(struct agent *a)
{
  json_t *out = NULL;
  struct ferry_err err = {0};
  if (incoming_get(a, MID, &out, &err) < 0) {
    assert_int_equal(err.klass, FERRY_E_NOTFOUND);
    return T_GONE;
  }
  struct wire_state w = {0};
  assert_int_equal(wire_state_parse(out, &w, NULL), 0);
  enum target_state st = w.state;
  json_decref(out);
  return st;
}

static int abort_move(struct agent *a, struct ferry_err *err)
{
  json_t *out = NULL;
  int r = incoming_abort(a, MID, &out, err);
  json_decref(out);
  return r;
}

static void restored(struct agent *a)
{
  struct ferry_err err = {0};
  assert_int_equal(offer(a), 0);
  assert_int_equal(state(a), T_OFFERED);
  assert_int_equal(dump_arrives(a), 0);
  assert_int_equal(put_criu(a), 0);
  assert_int_equal(restore(a, &err), 0);
  assert_int_equal(state(a), T_RESTORED);
  /* a copy runs here, off the network */
  assert_int_equal(json_array_size(a->copies), 1);
  assert_int_equal(a->link_ups, 0);
}

static bool copy_on_net(struct agent *a)
{
  return json_array_size(a->copies) == 1 && fake_copy_on_net(a);
}

/* ---- the cases ---- */

static void a_move(void **st)
{
  (void)st;
  struct agent *a = agent_new();
  struct ferry_err err = {0};
  restored(a);
  assert_int_equal(commit(a, &err), T_RUNNING);
  assert_true(copy_on_net(a));
  assert_int_equal(a->link_ups, 1);
  assert_int_equal(a->announces, 1);
  assert_int_equal(rec_op(json_array_get(a->copies, 0)), OP_NONE);
  /* its answer was lost: the same commit again, the same answer, once up */
  assert_int_equal(commit(a, &err), T_RUNNING);
  assert_int_equal(a->link_ups, 1);
  /* committed: the source cannot take it back */
  assert_true(abort_move(a, &err) < 0);
  assert_int_equal(err.klass, FERRY_E_CONFLICT);
  assert_true(copy_on_net(a));
  assert_int_equal(state(a), T_RUNNING);
  /* a restart keeps it */
  restart(a);
  assert_int_equal(state(a), T_RUNNING);
  assert_true(copy_on_net(a));
  assert_int_equal(a->link_ups, 1);
  agent_free(a);
}

static void out_of_order(void **st)
{
  (void)st;
  struct agent *a = agent_new();
  struct ferry_err err = {0};
  /* nothing offered: nothing to do */
  assert_int_equal(state(a), T_GONE);
  assert_true(put_criu(a) < 0);
  assert_int_equal(commit(a, &err), T_UNKNOWN);
  assert_int_equal(err.klass, FERRY_E_NOTFOUND);
  assert_int_equal(offer(a), 0);
  assert_true(offer(a) < 0); /* one offer per id */
  /* a commit before the restore: refused, nothing on the network */
  assert_int_equal(commit(a, &err), T_UNKNOWN);
  assert_int_equal(err.klass, FERRY_E_CONFLICT);
  assert_int_equal(state(a), T_OFFERED);
  assert_int_equal(a->link_ups, 0);
  assert_int_equal(put_criu(a), 0);
  assert_int_equal(restore(a, &err), 0);
  /* one restore per move; no part once restored */
  assert_true(restore(a, &err) < 0);
  assert_int_equal(err.klass, FERRY_E_CONFLICT);
  assert_true(put_criu(a) < 0);
  assert_int_equal(json_array_size(a->copies), 1);
  assert_int_equal(abort_move(a, &err), 0);
  assert_int_equal(json_array_size(a->copies), 0);
  assert_int_equal(a->link_ups, 0);
  assert_int_equal(a->nets, 0);
  assert_int_equal(state(a), T_GONE);
  agent_free(a);
}

static void restore_fails(void **st)
{
  (void)st;
  struct agent *a = agent_new();
  struct ferry_err err = {0};
  assert_int_equal(offer(a), 0);
  assert_int_equal(put_criu(a), 0);
  a->restore_fails = true;
  assert_true(restore(a, &err) < 0);
  assert_non_null(strstr(err.msg, "criu restore failed"));
  /* the source asks: failed, so it resumes its own copy */
  assert_int_equal(state(a), T_FAILED);
  assert_int_equal(json_array_size(a->copies), 0);
  assert_int_equal(commit(a, &err), T_UNKNOWN);
  assert_int_equal(a->link_ups, 0);
  assert_int_equal(abort_move(a, &err), 0);
  assert_int_equal(state(a), T_GONE);
  assert_int_equal(a->nets, 0);
  agent_free(a);
}

/* The commit's decision cannot be written (a full disk): no commit, the
 * copy goes, the source hears "gone" and resumes its own. */
static void commit_unwritten(void **st)
{
  (void)st;
  struct agent *a = agent_new();
  struct ferry_err err = {0};
  restored(a);
  setenv("FERRY_FAULT", "incoming-state-running:enospc", 1);
  assert_int_equal(commit(a, &err), T_UNKNOWN);
  assert_non_null(strstr(err.msg, "cannot record its state running"));
  unsetenv("FERRY_FAULT");
  assert_int_equal(a->link_ups, 0);
  assert_int_equal(json_array_size(a->copies), 0);
  assert_int_equal(state(a), T_GONE);
  assert_int_equal(commit_verdict(state(a)), CV_RESUME);
  agent_free(a);
}

/* "restoring" cannot be written: the restore does not begin, nothing is
 * made, the source aborts. */
static void restore_unwritten(void **st)
{
  (void)st;
  struct agent *a = agent_new();
  struct ferry_err err = {0};
  assert_int_equal(offer(a), 0);
  assert_int_equal(put_criu(a), 0);
  setenv("FERRY_FAULT", "incoming-state-restoring:enospc", 1);
  assert_true(restore(a, &err) < 0);
  unsetenv("FERRY_FAULT");
  assert_int_equal(json_array_size(a->copies), 0);
  assert_int_equal(state(a), T_OFFERED);
  assert_int_equal(restore_verdict(state(a), false, false), RV_ABORT);
  assert_int_equal(abort_move(a, &err), 0);
  assert_int_equal(state(a), T_GONE);
  agent_free(a);
}

/* The agent restarts with a copy restored, not committed: it goes (the
 * source, asking, hears 404 and resumes). */
static void restart_restored(void **st)
{
  (void)st;
  struct agent *a = agent_new();
  restored(a);
  restart(a);
  assert_int_equal(state(a), T_GONE);
  assert_int_equal(json_array_size(a->copies), 0);
  assert_int_equal(a->link_ups, 0);
  agent_free(a);
}

/* The agent stopped in the commit after writing "running", before the copy
 * was up: the restart brings it up (the source was told, or will be). */
static void restart_in_commit(void **st)
{
  (void)st;
  struct agent *a = agent_new();
  restored(a);
  char path[256];
  snprintf(path, sizeof path, "%s/migrations/in-%s/state.json", a->root, MID);
  json_t *s = NULL;
  assert_int_equal(json_load(path, &s, NULL), 0);
  json_object_set_new(s, "state", json_string("running"));
  assert_int_equal(json_save_durable(path, s, NULL), 0);
  json_decref(s);
  restart(a);
  assert_int_equal(state(a), T_RUNNING);
  assert_true(copy_on_net(a));
  assert_int_equal(a->link_ups, 1);
  struct ferry_err err = {0};
  assert_int_equal(commit(a, &err), T_RUNNING); /* the source's commit again */
  assert_int_equal(a->link_ups, 1);
  agent_free(a);
}

/* Aborted while restored: the copy goes without ever joining the network;
 * a commit after that finds nothing. */
static void abort_restored(void **st)
{
  (void)st;
  struct agent *a = agent_new();
  struct ferry_err err = {0};
  restored(a);
  assert_int_equal(abort_move(a, &err), 0);
  assert_int_equal(json_array_size(a->copies), 0);
  assert_int_equal(a->discards, 1);
  assert_int_equal(commit(a, &err), T_UNKNOWN);
  assert_int_equal(err.klass, FERRY_E_NOTFOUND);
  assert_int_equal(a->link_ups, 0);
  assert_int_equal(a->nets, 0);
  agent_free(a);
}

/* The agent's own steps run on its reaper's clock (a tick a second): the
 * test moves a migration's time on instead of waiting, then gives the
 * reaper (bounded) time to act. */
static void time_passes(struct agent *a, bool fence)
{
  struct migrations *m = agent_migrations(a);
  pthread_mutex_lock(&m->in_lock);
  for (struct incoming *in = m->in; in; in = in->next)
    if (fence)
      in->fence_ms = 1;
    else
      in->deadline_ms = 1;
  pthread_mutex_unlock(&m->in_lock);
  for (int i = 0; i < 300 && state(a) != T_GONE; i++)
    usleep(100000);
}

/* Restored and never committed (the source went away): the fence kills the
 * copy; a commit arriving after that finds nothing, and the source, asking,
 * resumes its own. */
static void the_fence(void **st)
{
  (void)st;
  struct agent *a = agent_new();
  struct ferry_err err = {0};
  restored(a);
  time_passes(a, true);
  assert_int_equal(state(a), T_GONE);
  assert_int_equal(json_array_size(a->copies), 0);
  assert_int_equal(commit(a, &err), T_UNKNOWN);
  assert_int_equal(a->link_ups, 0);
  assert_int_equal(commit_verdict(state(a)), CV_RESUME);
  agent_free(a);
}

/* Offered, then silence: the offer expires and what it made goes; a
 * committed move does not expire, it is pruned and its tombstone still
 * answers "running" (a source asking late never resumes its copy). */
static void expiry_and_prune(void **st)
{
  (void)st;
  struct agent *a = agent_new();
  struct ferry_err err = {0};
  assert_int_equal(offer(a), 0);
  assert_int_equal(a->nets, 1);
  time_passes(a, false);
  assert_int_equal(state(a), T_GONE);
  assert_int_equal(a->nets, 0);
  agent_free(a);

  a = agent_new();
  restored(a);
  assert_int_equal(commit(a, &err), T_RUNNING);
  struct migrations *m = agent_migrations(a);
  pthread_mutex_lock(&m->in_lock);
  m->in->deadline_ms = 1;
  pthread_mutex_unlock(&m->in_lock);
  for (int i = 0; i < 300; i++) {
    pthread_mutex_lock(&m->in_lock);
    bool listed = m->in != NULL;
    pthread_mutex_unlock(&m->in_lock);
    if (!listed)
      break;
    usleep(100000);
  }
  assert_null(m->in);
  assert_int_equal(state(a), T_RUNNING); /* the tombstone */
  assert_true(copy_on_net(a));
  agent_free(a);
}

struct restore_call {
  struct agent *a;
  int r;
  pthread_t t;
};

static void *restore_main(void *arg)
{
  struct restore_call *c = arg;
  struct ferry_err err = {0};
  c->r = restore(c->a, &err);
  return NULL;
}

/* The source withdraws while the restore runs: told "aborting"; the copy,
 * once restored, goes without joining the network. */
static void abort_while_restoring(void **st)
{
  (void)st;
  struct agent *a = agent_new();
  struct ferry_err err = {0};
  assert_int_equal(offer(a), 0);
  assert_int_equal(put_criu(a), 0);
  a->restore_blocks = true;
  struct restore_call c = {.a = a};
  assert_int_equal(pthread_create(&c.t, NULL, restore_main, &c), 0);
  pthread_mutex_lock(&a->lock);
  while (!a->restore_waiting)
    pthread_cond_wait(&a->cond, &a->lock);
  pthread_mutex_unlock(&a->lock);
  assert_int_equal(state(a), T_RESTORING);
  /* a commit now is refused: nothing is restored yet */
  assert_int_equal(commit(a, &err), T_UNKNOWN);
  assert_int_equal(err.klass, FERRY_E_CONFLICT);
  json_t *out = NULL;
  assert_int_equal(incoming_abort(a, MID, &out, &err), 0);
  struct wire_abort_answer ab = {0};
  assert_int_equal(wire_abort_answer_parse(out, &ab, NULL), 0);
  assert_true(ab.aborting);
  json_decref(out);
  pthread_mutex_lock(&a->lock);
  a->restore_go = true;
  pthread_cond_broadcast(&a->cond);
  pthread_mutex_unlock(&a->lock);
  pthread_join(c.t, NULL);
  assert_int_equal(state(a), T_GONE);
  assert_int_equal(json_array_size(a->copies), 0);
  assert_int_equal(a->link_ups, 0);
  assert_int_equal(a->nets, 0);
  agent_free(a);
}

int main(void)
{
  const struct CMUnitTest tests[] = {
      cmocka_unit_test_teardown(a_move, teardown),           cmocka_unit_test_teardown(out_of_order, teardown),
      cmocka_unit_test_teardown(restore_fails, teardown),    cmocka_unit_test_teardown(commit_unwritten, teardown),
      cmocka_unit_test_teardown(restore_unwritten, teardown), cmocka_unit_test_teardown(restart_restored, teardown),
      cmocka_unit_test_teardown(restart_in_commit, teardown), cmocka_unit_test_teardown(abort_restored, teardown),
      cmocka_unit_test_teardown(the_fence, teardown),         cmocka_unit_test_teardown(expiry_and_prune, teardown),
      cmocka_unit_test_teardown(abort_while_restoring, teardown),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
