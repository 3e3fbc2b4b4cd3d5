/* The fake host (fake-host.h). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "agent/agent.h"
#include "ckpt/ckpt.h"
#include "fake-host.h"
#include "migrate/migrate.h"
#include "migrate/state.h"
#include "runtime/record.h"
#include "runtime/runtime.h"
#include "util/cleanup.h"
#include "util/fs.h"
#include "util/json.h"

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
const char *agent_id(const struct agent *a) { return a->name; }
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
int agent_extract_images(struct agent *a, const char *tar, const char *dest, const char *what,
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
  if (a->ctr && rec_id(rec) && strcmp(rec_id(rec), rec_id(a->ctr)) == 0) {
    if (a->claimed)
      return FERRY_CONFLICT(err, "container \"%s\": another operation is in progress",
                            rec_name(rec));
    a->claimed = true;
    *out = a->held = claim_new(a, a->ctr);
    return 0;
  }
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
  if (c == c->a->held) {
    c->a->claimed = false;
    c->a->held = NULL;
  }
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
                         struct restore_times *t, struct agent_claim **claim,
                         struct agent_restore_tail **tail, struct ferry_err *err)
{
  (void)a; (void)j; (void)neighbours; (void)t; (void)claim; (void)tail;
  return FERRY_INTERNAL(err, "not held here");
}
int agent_restore_tail_end(struct agent_restore_tail *t, struct ferry_err *err)
{
  (void)t; (void)err;
  return 0;
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
#ifndef FAKE_HOST_WITH_SOURCE
/* (test-target: no source side linked) */
void source_recover(struct agent *a) { (void)a; }
void outgoing_free_all(struct migrations *m) { (void)m; }
#endif

/* ---- as a source: its one container ---- */

json_t *fake_container(void)
{
  return json_pack("{s:s, s:s, s:s, s:s, s:s, s:[s], s:s}", "id",
                   "c0ffee00c0ffee00c0ffee00c0ffee00c0ffee00c0ffee00c0ffee00c0ffee00", "name", "web",
                   "image", FAKE_D1, "ip", "198.18.0.5", "mac", "02:00:c6:12:00:05", "args",
                   "/bin/echo-server", "state", "running");
}

bool fake_source_on_net(const struct agent *a)
{
  return a->ctr && !a->gone && !a->frozen;
}

bool fake_copy_on_net(const struct agent *a)
{
  size_t i;
  json_t *r;
  json_array_foreach(a->copies, i, r) if (json_is_true(json_object_get(r, "on_net"))) return true;
  return false;
}

static bool is_ours(struct agent *a, const char *ref)
{
  return a->ctr && !a->gone && ref &&
         (strcmp(ref, rec_name(a->ctr)) == 0 || strcmp(ref, rec_id(a->ctr)) == 0);
}

int agent_claim(struct agent *a, const char *ref, const char *op, bool want_running,
                struct agent_claim **out, struct ferry_err *err)
{
  (void)op; (void)want_running;
  if (!is_ours(a, ref))
    return FERRY_NOTFOUND(err, "no container \"%s\"", ref);
  if (a->claimed)
    return FERRY_CONFLICT(err, "container \"%s\": another operation is in progress", ref);
  a->claimed = true;
  *out = a->held = claim_new(a, a->ctr);
  return 0;
}
int agent_claim_save(struct agent_claim *c, struct ferry_err *err)
{
  if (c->a->save_fails)
    return ferry_err_set(err, -ENOSPC, FERRY_E_INTERNAL, "save: No space left on device (fake)");
  return 0;
}
int agent_image_of(struct agent *a, json_t *rec, json_t **img, struct ferry_err *err)
{
  (void)a; (void)rec; (void)err;
  *img = json_pack("{s:s, s:[s]}", "id", FAKE_D1, "layers", FAKE_D1);
  return 0;
}
int agent_ctr_freeze(struct agent_claim *c, bool hold, struct net_hold *ready, json_t **neigh,
                     struct ferry_err *err)
{
  (void)hold; (void)ready; (void)err;
  c->a->frozen = true;
  if (neigh)
    *neigh = json_array();
  return 0;
}
void agent_ctr_thaw(struct agent_claim *c)
{
  c->a->frozen = false;
  c->a->thaws++;
}
struct net_hold *agent_ctr_hold_prepare(struct agent_claim *c)
{
  (void)c;
  return NULL;
}
void agent_ctr_hold_unprepare(struct net_hold *h) { (void)h; }
int agent_dump_criu_start(struct agent *a, int ps_fd, int keeper_fd, struct ckpt_criu **out,
                          struct ferry_err *err)
{
  (void)a; (void)ps_fd; (void)keeper_fd; (void)err;
  *out = NULL;
  return 0;
}
void agent_dump_criu_end(struct ckpt_criu *c) { (void)c; }
int agent_ctr_dump(struct agent_claim *c, const char *criu_dir, const struct ckpt_dump_opts *o,
                   json_t **stats, struct ferry_err *err)
{
  (void)o; (void)stats;
  assert_true(c->a->frozen);
  _cleanup_free_ char *p = path_join(criu_dir, "pages-1.img");
  int r = write_file_atomic(p, "pages", 5, 0600, err);
  if (r == 0)
    c->a->dumps++;
  return r;
}
void agent_ctr_hand_over(struct agent_claim *c) { (void)c; }
void agent_ctr_end_frozen(struct agent_claim *c) { c->a->gone = true; }
void agent_ctr_commit_away(struct agent_claim *c, bool keep, const char *to)
{
  (void)keep; (void)to;
  assert_true(c->a->frozen); /* never resumed before it goes */
  c->a->gone = true;
}
void agent_ports_redirect(struct agent *a, json_t *rec, const char *to, int seconds)
{
  (void)a; (void)rec; (void)to; (void)seconds;
}
json_t *agent_ctr_marked(struct agent *a, enum ctr_op op)
{
  json_t *all = json_array();
  if (a->ctr && !a->gone && rec_op(a->ctr) == op)
    json_array_append(all, a->ctr);
  return all;
}
int agent_ctr_movable(struct agent *a, const char *ref, int64_t *used, struct ferry_err *err)
{
  if (!is_ours(a, ref))
    return FERRY_NOTFOUND(err, "no container \"%s\"", ref);
  *used = 1 << 20;
  return 0;
}
bool agent_ctr_rootfs_changed_since(struct agent *a, json_t *rec, time_t since)
{
  (void)a; (void)rec; (void)since;
  return false;
}
json_t *agent_ctr_descriptors(struct agent *a, json_t *rec)
{
  (void)a; (void)rec;
  return NULL; /* no restore prepared ahead */
}
int agent_part_tar(struct agent *a, enum agent_part part, json_t *rec, const char *name,
                   const char *dest, const struct tar_opts *to, uint64_t *bytes,
                   struct ferry_err *err)
{
  (void)a; (void)part; (void)rec; (void)name; (void)to;
  *bytes = 4;
  return write_file_atomic(dest, "part", 4, 0600, err);
}
const char *agent_tls_ca(const struct agent *a) { (void)a; return NULL; }
const char *agent_token(const struct agent *a) { (void)a; return "token"; }
void agent_metrics_sent(struct agent *a, bool ok, json_t *phases, json_t *bytes, int64_t downtime)
{
  (void)a; (void)ok; (void)phases; (void)bytes; (void)downtime;
}
bool ckpt_can_track_memory(void) { return false; }
int ckpt_lazy_wait(int pid, const char *dir, int timeout_ms, bool kill_now, struct ferry_err *err)
{
  (void)pid; (void)dir; (void)timeout_ms; (void)kill_now; (void)err;
  return 0;
}

/* ---- the agents ---- */

void fake_agent_stopped(struct agent *a)
{
  if (a->held) {
    json_decref(a->held->rec);
    free(a->held);
    a->held = NULL;
  }
  a->claimed = false;
}

struct agent *fake_agent_new(const char *name)
{
  struct agent *a = calloc(1, sizeof *a);
  assert_non_null(a);
  snprintf(a->root, sizeof a->root, "/tmp/ferry-test-%s.XXXXXX", name);
  assert_non_null(mkdtemp(a->root));
  a->name = name;
  a->copies = json_array();
  pthread_mutex_init(&a->lock, NULL);
  pthread_cond_init(&a->cond, NULL);
  return a;
}

void fake_agent_free(struct agent *a)
{
  /* what a stopped agent leaves for its next start goes with the test's
   * root (a committed move's CRIU scratch is a tmpfs) */
  _cleanup_free_ char *mdir = path_join(a->root, "migrations");
  DIR *d = opendir(mdir);
  struct dirent *de;
  while (d && (de = readdir(d)))
    if (strncmp(de->d_name, "in-", 3) == 0 || strncmp(de->d_name, "out-", 4) == 0) {
      _cleanup_free_ char *p = path_join(mdir, de->d_name);
      mig_dir_remove(p);
    }
  if (d)
    closedir(d);
  rm_rf(a->root, NULL);
  assert_false(path_exists(a->root));
  json_decref(a->copies);
  json_decref(a->ctr);
  pthread_mutex_destroy(&a->lock);
  pthread_cond_destroy(&a->cond);
  free(a);
}
