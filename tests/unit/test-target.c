/* migrate/target.c, the real receiving side of a move, over a fake host: the
 * agent's calls that make and change a copy (agent/, ckpt/) are replaced at
 * link time by the functions below, which keep the copy as a record and
 * count what reached the network. The steps come as the source sends them
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
#include "ckpt/ckpt.h"
#include "migrate/migrate.h"
#include "migrate/protocol.h"
#include "migrate/state.h"
#include "migrate/wire.h"
#include "runtime/record.h"
#include "runtime/runtime.h"
#include "util/fs.h"
#include "util/json.h"

#define MID "0123456789abcdef0123" /* the move's id */

/* ---- the fake host ---- */

struct agent {
  struct migrations *m;
  char root[128];
  json_t *copies;         /* the records of the copies here */
  int link_ups, announces, discards, nets;
  bool restore_fails;     /* CRIU's restore fails */
  /* the restore waits until the test lets it go on */
  bool restore_blocks, restore_waiting, restore_go;
  pthread_mutex_t lock;
  pthread_cond_t cond;
};

struct agent_claim {
  struct agent *a;
  json_t *rec;
};

static struct agent_claim *claim_new(struct agent *a, json_t *rec)
{
  struct agent_claim *c = calloc(1, sizeof *c);
  assert_non_null(c);
  c->a = a;
  c->rec = json_incref(rec);
  return c;
}

struct migrations *agent_migrations(const struct agent *a) { return a->m; }
void agent_set_migrations(struct agent *a, struct migrations *m) { a->m = m; }
int agent_migration_timeout_s(const struct agent *a) { (void)a; return 60; }
const char *agent_root(const struct agent *a) { return a->root; }
const char *agent_id(const struct agent *a) { (void)a; return "target"; }
const char *agent_listen_ip(const struct agent *a) { (void)a; return "127.0.0.1"; }
void agent_criu_ready(struct agent *a) { (void)a; }
void agent_autoremove_tick(struct agent *a) { (void)a; }
void agent_ports_expire(struct agent *a) { (void)a; }
void agent_metrics_received(struct agent *a, bool committed) { (void)a; (void)committed; }
void agent_layers_pin(struct agent *a, json_t *d, bool pin) { (void)a; (void)d; (void)pin; }
void agent_layers_forget(struct agent *a, json_t *d) { (void)a; (void)d; }
void agent_volume_unmark(struct agent *a, const char *n) { (void)a; (void)n; }
void agent_volume_drop_marked(struct agent *a, const char *n, const char *m)
{
  (void)a; (void)n; (void)m;
}
int agent_image_remove(struct agent *a, const char *ref, struct ferry_err *err)
{
  (void)a; (void)ref; (void)err;
  return 0;
}
int agent_image_adopt(struct agent *a, json_t *img, bool *added, struct ferry_err *err)
{
  (void)a; (void)img; (void)err;
  *added = false;
  return 0;
}
int agent_layer_receive(struct agent *a, const char *digest, const char *tar, const char *what,
                        bool *added, struct ferry_err *err)
{
  (void)a; (void)digest; (void)tar; (void)what; (void)err;
  *added = true;
  return 0;
}
static int extract(const char *tar, const char *what, struct ferry_err *err)
{
  return path_exists(tar) ? 0 : FERRY_INVALID(err, "%s: no file", what);
}
int agent_extract_fresh(struct agent *a, const char *tar, const char *dest, const char *what,
                        struct ferry_err *err)
{
  (void)a; (void)dest;
  return extract(tar, what, err);
}
int agent_extract_delta(struct agent *a, const char *tar, const char *dest, const char *what,
                        struct ferry_err *err)
{
  (void)a; (void)dest;
  return extract(tar, what, err);
}
int agent_extract_plain(struct agent *a, const char *tar, const char *dest, const char *what,
                        struct ferry_err *err)
{
  (void)a; (void)dest;
  return extract(tar, what, err);
}
int agent_volume_adopt(struct agent *a, const char *name, const char *src, const char *mark,
                       struct ferry_err *err)
{
  (void)a; (void)name; (void)src; (void)mark; (void)err;
  return 0;
}
int agent_ctr_adopt_changes(struct agent *a, json_t *rec, const char *src, struct ferry_err *err)
{
  (void)a; (void)rec; (void)src; (void)err;
  return 0;
}
void agent_restored_record(json_t *rec, const char *id, const char *local)
{
  (void)local;
  json_object_set_new(rec, "id", json_string(id));
}
int agent_offer_reserve(struct agent *a, json_t *ctr, const char *keep_id, json_t *vols,
                        json_t *layers, json_t **missing, struct ferry_err *err)
{
  (void)keep_id; (void)vols; (void)layers;
  size_t i;
  json_t *r;
  json_array_foreach(a->copies, i, r) if (strcmp(rec_name(r), rec_name(ctr)) == 0) return
      FERRY_CONFLICT(err, "a container named \"%s\" exists here", rec_name(ctr));
  *missing = json_array();
  return 0;
}
int agent_net_prepare(struct agent *a, const char *id, const char *ip, const char *mac,
                      struct ferry_err *err)
{
  (void)id; (void)ip; (void)mac; (void)err;
  a->nets++;
  return 0;
}
void agent_net_discard(struct agent *a, const char *id)
{
  (void)id;
  a->nets--;
}
int agent_restore_copy(struct agent *a, json_t *rec, json_t *img, const char *criu_dir,
                       const struct restore_source *src, json_t *neighbours, bool link_up,
                       struct restore_times *t, struct agent_claim **claim, struct ferry_err *err)
{
  (void)img; (void)criu_dir; (void)neighbours; (void)t;
  assert_false(link_up); /* a migration's copy stays off the network */
  int r = src->place(a, rec, src->ctx, err);
  if (r < 0)
    return r;
  if (a->restore_fails)
    return FERRY_INTERNAL(err, "criu restore failed (fake)");
  pthread_mutex_lock(&a->lock);
  a->restore_waiting = true;
  pthread_cond_broadcast(&a->cond);
  while (a->restore_blocks && !a->restore_go)
    pthread_cond_wait(&a->cond, &a->lock);
  pthread_mutex_unlock(&a->lock);
  rec_set_op(rec, OP_RESTORE);
  json_object_set_new(rec, "on_net", json_false());
  json_array_append(a->copies, rec);
  *claim = claim_new(a, rec);
  return 0;
}
json_t *agent_ctr_by_migration(struct agent *a, const char *mid)
{
  size_t i;
  json_t *r;
  json_array_foreach(a->copies, i, r) if (strcmp(rec_migration_id(r), mid) == 0) return
      json_incref(r);
  return NULL;
}
int agent_ctr_inspect(struct agent *a, const char *ref, json_t **out, struct ferry_err *err)
{
  (void)a; (void)ref; (void)out;
  return FERRY_NOTFOUND(err, "no container");
}
int agent_claim_marked(struct agent *a, json_t *rec, struct agent_claim **out, struct ferry_err *err)
{
  (void)err;
  *out = claim_new(a, rec);
  return 0;
}
json_t *agent_claim_rec(const struct agent_claim *c) { return c->rec; }
int agent_ctr_link_up(struct agent_claim *c, struct ferry_err *err)
{
  (void)err;
  json_object_set_new(c->rec, "on_net", json_true());
  c->a->link_ups++;
  return 0;
}
int agent_ctr_announce(struct agent_claim *c, struct ferry_err *err)
{
  (void)err;
  c->a->announces++;
  return 0;
}
void agent_release(struct agent_claim *c, bool save)
{
  if (!c)
    return;
  if (save)
    rec_set_op(c->rec, OP_NONE);
  json_decref(c->rec);
  free(c);
}
void agent_ctr_discard(struct agent_claim *c)
{
  struct agent *a = c->a;
  size_t i;
  json_t *r;
  json_array_foreach(a->copies, i, r) if (r == c->rec)
  {
    json_array_remove(a->copies, i);
    break;
  }
  a->discards++;
  json_decref(c->rec);
  free(c);
}
bool agent_restore_can_hold(struct agent *a) { (void)a; return false; }
int agent_restore_prepare(struct agent *a, json_t *rec, json_t *img, const char *criu_dir,
                          const struct restore_source *src, json_t *descriptors,
                          struct agent_restore_job **out, struct ferry_err *err)
{
  (void)a; (void)rec; (void)img; (void)criu_dir; (void)src; (void)descriptors; (void)out;
  return FERRY_INTERNAL(err, "not held here");
}
int agent_restore_launch(struct agent *a, struct agent_restore_job *j, json_t *neighbours,
                         struct restore_times *t, struct agent_claim **claim, struct ferry_err *err)
{
  (void)a; (void)j; (void)neighbours; (void)t; (void)claim;
  return FERRY_INTERNAL(err, "not held here");
}
void agent_restore_abandon(struct agent *a, struct agent_restore_job *j) { (void)a; (void)j; }
int agent_restore_prepared_delta(struct agent *a, struct agent_restore_job *j, const char *volume,
                                 const char *tar, const char *what, struct ferry_err *err)
{
  (void)a; (void)j; (void)volume; (void)tar; (void)what;
  return FERRY_INTERNAL(err, "not held here");
}
int ckpt_page_server_start(struct ckpt_page_server *ps, struct ferry_err *err)
{
  (void)err;
  ps->port = 4242;
  ps->pid = 0; /* nothing runs: the dump "arrived" */
  memset(ps->secret, 'a', CKPT_PS_SECRET_LEN);
  ps->secret[CKPT_PS_SECRET_LEN] = 0;
  return 0;
}
int ckpt_page_server_end(int pid, const char *log_path, int timeout_ms, struct ferry_err *err)
{
  (void)pid; (void)log_path; (void)timeout_ms; (void)err;
  return 0;
}
char *criu_log_errors(const char *log_path, size_t max)
{
  (void)log_path; (void)max;
  return xstrdup("");
}
void source_recover(struct agent *a) { (void)a; }
void outgoing_free_all(struct migrations *m) { (void)m; }

/* ---- the source's side of the conversation ---- */

#define D1 "sha256:1111111111111111111111111111111111111111111111111111111111111111"

static struct agent *target_up(struct agent *a)
{
  struct ferry_err err = {0};
  assert_int_equal(migrate_init(a, &err), 0);
  return a;
}

static struct agent *agent_new(void)
{
  struct agent *a = calloc(1, sizeof *a);
  assert_non_null(a);
  snprintf(a->root, sizeof a->root, "/tmp/ferry-test-target.XXXXXX");
  assert_non_null(mkdtemp(a->root));
  a->copies = json_array();
  pthread_mutex_init(&a->lock, NULL);
  pthread_cond_init(&a->cond, NULL);
  unsetenv("FERRY_FAULT");
  return target_up(a);
}

static void agent_free(struct agent *a)
{
  migrate_fini(a);
  unsetenv("FERRY_FAULT");
  /* what a stopped agent leaves for its next start (a committed move's
   * directory) goes with the test's root */
  char dir[256];
  snprintf(dir, sizeof dir, "%s/migrations/in-%s", a->root, MID);
  mig_dir_remove(dir);
  rm_rf(a->root, NULL);
  assert_false(path_exists(a->root));
  json_decref(a->copies);
  pthread_mutex_destroy(&a->lock);
  pthread_cond_destroy(&a->cond);
  free(a);
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
  return json_array_size(a->copies) == 1 &&
         json_is_true(json_object_get(json_array_get(a->copies, 0), "on_net"));
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
      cmocka_unit_test(a_move),           cmocka_unit_test(out_of_order),
      cmocka_unit_test(restore_fails),    cmocka_unit_test(commit_unwritten),
      cmocka_unit_test(restore_unwritten), cmocka_unit_test(restart_restored),
      cmocka_unit_test(restart_in_commit), cmocka_unit_test(abort_restored),
      cmocka_unit_test(the_fence),         cmocka_unit_test(expiry_and_prune),
      cmocka_unit_test(abort_while_restoring),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
