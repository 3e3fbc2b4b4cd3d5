/* The receiving side of a migration. Each step is one API call from the
 * source; state is kept in memory and in ROOT/migrations/in-<id>/state.json
 * so that an agent restart resolves it (docs/migration.md). */
#include <arpa/inet.h>
#include <inttypes.h>
#include <dirent.h>
#include <poll.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "ckpt/ckpt.h"
#include "image/extract.h"
#include "migrate/migrate.h"
#include "migrate/protocol.h"
#include "migrate/state.h"
#include "migrate/wire.h"
#include "util/cleanup.h"
#include "util/digest.h"
#include "util/fault.h"
#include "util/fs.h"
#include "util/json.h"
#include "util/log.h"
#include "util/relay.h"
#include "util/spawn.h"
#include "util/strv.h"

bool migration_id_valid(const char *id)
{
  size_t n = id ? strlen(id) : 0;
  return n >= 16 && n <= 32 && strspn(id, "0123456789abcdef") == n;
}

static int save_state(struct incoming *in, struct ferry_err *err)
{
  _cleanup_json_ json_t *j = json_pack("{s:s, s:s, s:O, s:i, s:O}", "id", in->id, "state",
                                       target_state_name(in->state),
                                       "offer", in->offer, "page_server_pid", in->ps_pid,
                                       "received", in->received);
  if (in->report)
    json_object_set(j, "report", in->report);
  json_object_set_new(j, "image_added", json_boolean(in->image_added));
  if (in->cid[0])
    json_object_set_new(j, "container_id", json_string(in->cid));
  /* what is on disk already is not written again (an fsync, 1-3 ms here,
   * at the end of every step: the CRIU images' part is inside the pause) */
  char *text = json_dumps(j, JSON_COMPACT | JSON_SORT_KEYS);
  if (text && in->saved && strcmp(text, in->saved) == 0) {
    free(text);
    return 0;
  }
  _cleanup_free_ char *p = path_join(in->dir, "state.json");
  /* "restoring" and "restored" are written inside the pause without an
   * fsync (1-3 ms each): a restart fails a migration in either state as in
   * "offered" (TS_RESTART), and one whose state it cannot read it removes
   * (the source then hears "gone" and resumes its own copy), so no crash
   * can make their loss matter. The decision ("running") and the rest are
   * durable. */
  bool quick = in->state == T_RESTORING || in->state == T_RESTORED;
  int r = quick ? json_save_quick(p, j, err) : json_save_durable(p, j, err);
  free(in->saved);
  in->saved = r == 0 ? text : NULL;
  if (r < 0)
    free(text);
  return r;
}

static void incoming_free(struct incoming *in)
{
  if (!in)
    return;
  if (in->pinned_by)
    agent_layers_pin(in->pinned_by, json_object_get(json_object_get(in->offer, "image"), "layers"),
                     false);
  free(in->dir);
  json_decref(in->offer);
  json_decref(in->received);
  json_decref(in->report);
  free(in->saved);
  agent_restore_tail_end(in->launch_tail, NULL);
  agent_release(in->claim, false); /* its record's op "restore" stays for the next start */
  free(in);
}

static struct incoming *find_in(struct migrations *m, const char *id)
{
  for (struct incoming *in = m->in; in; in = in->next)
    if (strcmp(in->id, id) == 0)
      return in;
  return NULL;
}

static void unlink_in(struct migrations *m, struct incoming *in)
{
  for (struct incoming **pp = &m->in; *pp; pp = &(*pp)->next) {
    if (*pp == in) {
      *pp = in->next;
      return;
    }
  }
}

static void stop_page_server(struct incoming *in)
{
  if (in->ps_pid > 0) {
    kill(in->ps_pid, SIGKILL);
    spawn_reap(in->ps_pid, 2000, true);
    in->ps_pid = 0;
  }
}

/* Whether the migration's page server still receives (alive, not a
 * zombie waiting to be reaped): a page stream of a big container over a
 * slow link outlasts the offer's deadline, and is progress, not silence.
 * Its connection has TCP keepalive (ps_gate), so a source that vanished
 * ends it within about a minute. */
static bool page_server_receiving(const struct incoming *in)
{
  if (in->ps_pid <= 0)
    return false;
  char path[64];
  snprintf(path, sizeof path, "/proc/%d/stat", in->ps_pid);
  _cleanup_free_ char *txt = NULL;
  size_t n = 0;
  if (read_file(path, 4096, &txt, &n, NULL) < 0)
    return false;
  const char *close_paren = strrchr(txt, ')');
  return close_paren && close_paren[1] == ' ' && close_paren[2] && close_paren[2] != 'Z';
}

/* Its copy here is the container: the source committed it. */
static bool committed(const struct incoming *in)
{
  return !target_may_remove_copy(in->state);
}

/* The claim of this migration's restored (or half-restored) copy, if any:
 * the one its restore took, or (after a restart) one taken now. */
static struct agent_claim *take_copy(struct agent *a, struct incoming *in)
{
  /* runc's end of the restore first: the copy is not touched before */
  struct ferry_err te = {0};
  if (agent_restore_tail_end(in->launch_tail, &te) < 0)
    log_warn("migrate", "incoming %s: its restore failed after CRIU's: %s", in->id, te.msg);
  in->launch_tail = NULL;
  struct agent_claim *c = in->claim;
  in->claim = NULL;
  if (c)
    return c;
  _cleanup_json_ json_t *rec = agent_ctr_by_migration(a, in->id);
  struct ferry_err e = {0};
  if (rec && agent_claim_marked(a, rec, &c, &e) < 0) {
    log_warn("migrate", "incoming %s: its copy %s: %s", in->id, rec_name(rec), e.msg);
    return NULL;
  }
  return c;
}

/* Whether the lazy-pages daemon of the migration's copy still runs (reaps
 * it when it has exited; a committed move's CRIU images it read are then
 * marked spent, for the reaper to remove without in_lock). Called with
 * in_lock held. */
static bool lazy_daemon_running(struct incoming *in)
{
  if (in->lazy_pid <= 0)
    return false;
  int st;
  pid_t w = waitpid(in->lazy_pid, &st, WNOHANG);
  if (w == 0)
    return true;
  if (w == in->lazy_pid && !(WIFEXITED(st) && WEXITSTATUS(st) == 0)) {
    /* the pages it did not bring in would now read as zeros: the copy
     * must not run on with them */
    bool kill_copy = in->lazy_copy_pid > 0 && kill(in->lazy_copy_pid, SIGKILL) == 0;
    const char *log = in->lazy_log;
    _cleanup_free_ char *why = criu_log_errors(log, 800);
    log_error("migrate", "incoming %s: criu lazy-pages ended with status %d before the copy's "
              "memory was whole (%s: %s)%s", in->id,
              WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st), log,
              why && *why ? why : "no error in its log",
              kill_copy ? ": the copy is killed" : "");
  }
  in->lazy_pid = 0;
  in->lazy_copy_pid = 0;
  if (committed(in))
    in->images_spent = true; /* the images it read are used up */
  return false;
}

int incoming_memory_settle(struct agent *a, const char *ref, int timeout_ms,
                           struct ferry_err *err)
{
  struct migrations *m = agent_migrations(a);
  /* the container as the caller names it (name, id or id prefix); none:
   * nothing to wait for, the claim says why */
  _cleanup_json_ json_t *rec = NULL;
  if (agent_ctr_inspect(a, ref, &rec, NULL) < 0)
    return 0;
  uint64_t deadline = now_mono_ms() + (uint64_t)timeout_ms;
  for (int n = 0; n < 100000; n++) {
    bool arriving = false;
    pthread_mutex_lock(&m->in_lock);
    for (struct incoming *in = m->in; in && !arriving; in = in->next)
      arriving = !in->busy && in->lazy_pid > 0 && in->copy_id[0] &&
                 strcmp(in->copy_id, rec_id(rec)) == 0 && lazy_daemon_running(in);
    pthread_mutex_unlock(&m->in_lock);
    if (!arriving)
      return 0;
    if (n == 0)
      log_info("migrate", "container %s: its memory is still arriving from its last move: "
                          "waiting before it is dumped", ref);
    if (now_mono_ms() >= deadline)
      return FERRY_CONFLICT(err, "the memory of container \"%s\" is still arriving from its last "
                                 "move (criu lazy-pages runs): try again in a moment", ref);
    usleep(50000);
  }
  return FERRY_CONFLICT(err, "container \"%s\": memory still arriving", ref);
}

/* Removes everything this migration made on this agent. The caller has
 * taken in off the list (or holds it busy): no other step touches it. */
static void cleanup_in(struct agent *a, struct incoming *in)
{
  stop_page_server(in);
  if (in->prep) { /* a restore held ahead: runc gives up, what it made goes */
    agent_restore_abandon(a, in->prep);
    in->prep = NULL;
    json_decref(in->prep_rec);
    in->prep_rec = NULL;
  }
  /* the copy's memory is read from this migration's images: a daemon still
   * at it means the copy goes too (not committed), or this waits for it */
  if (in->lazy_pid > 0) {
    if (!committed(in))
      kill(in->lazy_pid, SIGKILL);
    int lr = spawn_reap(in->lazy_pid, committed(in) ? 60000 : 5000, true);
    if (lr != 0 && committed(in) && in->lazy_copy_pid > 0 && kill(in->lazy_copy_pid, SIGKILL) == 0) {
      const char *log = in->lazy_log;
      _cleanup_free_ char *why = criu_log_errors(log, 800);
      log_error("migrate", "incoming %s: criu lazy-pages did not bring the copy's memory in whole "
                "(%d: %s): the copy is killed", in->id, lr, why && *why ? why : "no error in its log");
    }
    in->lazy_pid = 0;
    in->lazy_copy_pid = 0;
  }
  /* its pins go first: the layers it brought go below unless something
   * else (an image, another import or migration) counts on them */
  if (in->pinned_by) {
    agent_layers_pin(in->pinned_by, json_object_get(json_object_get(in->offer, "image"), "layers"),
                     false);
    in->pinned_by = NULL;
  }
  bool ran = committed(in);
  if (!ran)
    agent_metrics_received(a, false);
  if (!ran) {
    struct agent_claim *c = take_copy(a, in);
    if (c)
      agent_ctr_discard(c);
    if (in->cid[0])
      agent_net_discard(a, in->cid); /* made at the offer, whether a copy came or not */
  }
  if (!ran) {
    /* the volumes, the image record and the layers this migration
     * brought, unless something here uses them now */
    size_t i;
    json_t *v;
    json_array_foreach(json_object_get(in->offer, "volumes"), i, v)
      agent_volume_drop_marked(a, json_string_value(v), in->id);
    if (in->image_added)
      agent_image_remove(a, json_str_or(json_object_get(in->offer, "image"), "id", ""), NULL);
    agent_layers_forget(a, in->received);
  }
  mig_dir_remove(in->dir);
}

/* The migration id, under in_lock: 400 if malformed, 404 if unknown. */
static int lookup_in(struct migrations *m, const char *id, struct incoming **out,
                     struct ferry_err *err)
{
  if (!migration_id_valid(id))
    return FERRY_INVALID(err, "migration id \"%s\" is malformed", id ? id : "");
  if (!(*out = find_in(m, id)))
    return FERRY_NOTFOUND(err, "incoming migration %s: no such migration (expired or aborted?)", id);
  return 0;
}

/* Takes the migration for step (protocol.h's table): it must be in one of
 * the step's states and no other step may run; the step's "during" state
 * is written first (unwritten, the step does not begin). */
static int in_begin_w(struct migrations *m, const char *id, enum target_step step,
                      struct incoming **out, bool *unwritten, int wait_ms, struct ferry_err *err)
{
  const struct target_rule *rule = target_rule(step);
  pthread_mutex_lock(&m->in_lock);
  struct incoming *in = NULL;
  int r = lookup_in(m, id, &in, err);
  /* a step that may wait for the one under way (bounded) */
  uint64_t until = now_mono_ms() + (uint64_t)(wait_ms > 0 ? wait_ms : 0);
  for (int i = 0; r == 0 && in->busy && !in->abort_requested && i < 10000; i++) {
    uint64_t now = now_mono_ms();
    if (now >= until)
      break;
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    uint64_t left = until - now < 200 ? until - now : 200;
    ts.tv_nsec += (long)(left % 1000) * 1000000L;
    ts.tv_sec += (time_t)(left / 1000) + ts.tv_nsec / 1000000000L;
    ts.tv_nsec %= 1000000000L;
    pthread_cond_timedwait(&m->in_cond, &m->in_lock, &ts);
    r = lookup_in(m, id, &in, err); /* it may have gone meanwhile */
  }
  if (r == 0 && (in->busy || in->abort_requested))
    r = FERRY_CONFLICT(err, "incoming migration %s is busy with another step", id);
  else if (r == 0 && !target_step_may(step, in->state))
    r = FERRY_CONFLICT(err, "incoming migration %s is %s: no %s now", id,
                       target_state_name(in->state), rule->name);
  if (r == 0 && rule->during != T_UNKNOWN) {
    /* the new state is what a restart acts on: unwritten, the step does
     * not happen (the commit's "running" above all) */
    enum target_state was = in->state;
    in->state = rule->during;
    _cleanup_free_ char *point = xasprintf("incoming-state-%s", target_state_name(rule->during));
    int f = ferry_fault(point, err);
    if ((r = f < 0 ? f : save_state(in, err)) < 0) {
      if (unwritten)
        *unwritten = true;
      in->state = was;
      ferry_err_wrap(err, "incoming migration %s: cannot record its state %s", id,
                     target_state_name(rule->during));
    } else {
      in->began_in = was;
    }
  } else if (r == 0) {
    in->began_in = in->state;
  }
  if (r == 0) {
    in->busy = true;
    in->step = step;
    *out = in;
  }
  pthread_mutex_unlock(&m->in_lock);
  return r;
}

static int in_begin(struct migrations *m, const char *id, enum target_step step,
                    struct incoming **out, struct ferry_err *err)
{
  return in_begin_w(m, id, step, out, NULL, 0, err);
}

/* Sets in's state to to, at the end of step begun in from: a change the
 * table does not allow is a bug, logged, and the migration fails instead
 * (a copy never runs by mistake; a committed one stays). */
static void in_set_state(struct incoming *in, enum target_step step, enum target_state from,
                         enum target_state to)
{
  if (!target_step_ends_ok(step, from, to)) {
    log_error("migrate", "incoming %s: internal: its %s (begun %s) cannot end %s", in->id,
              target_rule(step)->name, target_state_name(from), target_state_name(to));
    if (in->state == T_RUNNING)
      return;
    to = T_FAILED;
  }
  in->state = to;
}

/* Ends the step in runs, its state becoming new_state (T_UNKNOWN: as it
 * is). If the source withdrew meanwhile, the migration goes now. */
static void in_end(struct agent *a, struct incoming *in, enum target_state new_state)
{
  struct migrations *m = agent_migrations(a);
  pthread_mutex_lock(&m->in_lock);
  in_set_state(in, in->step, in->began_in, new_state != T_UNKNOWN ? new_state : in->state);
  struct ferry_err e = {0};
  if (save_state(in, &e) < 0) /* a restart then acts on the last state written */
    log_warn("migrate", "incoming %s: %s", in->id, e.msg);
  in->busy = false;
  pthread_cond_broadcast(&m->in_cond);
  bool drop = in->abort_requested && target_step_may(TS_ABORT, in->state);
  if (drop)
    unlink_in(m, in);
  pthread_mutex_unlock(&m->in_lock);
  if (drop) {
    log_info("migrate", "incoming %s: withdrawn by the source, everything received removed", in->id);
    cleanup_in(a, in);
    incoming_free(in);
  }
}

int incoming_offer(struct agent *a, json_t *req, const char *peer, json_t **out,
                   struct ferry_err *err)
{
  _cleanup_free_ char *leaf = NULL;
  _cleanup_free_ char *criu = NULL;
  struct migrations *m = agent_migrations(a);
  struct incoming *prepared = NULL;
  struct wire_offer w;
  int r = wire_offer_parse(req, &w, err);
  if (r < 0)
    return r;
  const char *id = w.id;
  json_t *img = w.image, *vols = w.volumes;
  agent_criu_ready(a); /* the restore's CRIU finds its cache */
  /* The peer's record is rebuilt from its known fields, each checked: a name
   * or path in it must never reach outside this agent's root. */
  _cleanup_json_ json_t *ctr = NULL;
  if ((r = ctr_record_sanitize(w.container, &ctr, err)) < 0)
    return ferry_err_wrap(err, "offer");
  const char *name = rec_name(ctr), *ip = rec_ip(ctr);
  if (strcmp(json_str_or(img, "id", ""), rec_image(ctr)) != 0)
    return FERRY_INVALID(err, "offer: the container's image is not the offered image");
  size_t i;
  json_t *v;
  /* The volumes sent are exactly the volumes the container mounts. */
  for (i = 0; i < rec_n_volumes(ctr); i++)
    if (!json_array_has_str(vols, rec_volume_name(ctr, i)))
      return FERRY_INVALID(err, "offer: volume \"%s\" of the container is not in the offer",
                           rec_volume_name(ctr, i));
  json_array_foreach(vols, i, v)
  {
    bool used = false;
    for (size_t k = 0; k < rec_n_volumes(ctr); k++)
      if (strcmp(rec_volume_name(ctr, k), json_string_value(v)) == 0)
        used = true;
    if (!used)
      return FERRY_INVALID(err, "offer: volume \"%s\" is not mounted by the container",
                           json_string_value(v));
  }

  pthread_mutex_lock(&m->in_lock);
  if (find_in(m, id)) {
    r = FERRY_CONFLICT(err, "incoming migration %s exists already", id);
    goto out_unlocked;
  }
  for (struct incoming *o = m->in; o; o = o->next) {
    json_t *oc = json_object_get(o->offer, "container");
    if (o->state != T_RUNNING &&
        (strcmp(rec_name(oc), name) == 0 || strcmp(rec_ip(oc), ip) == 0)) {
      r = FERRY_CONFLICT(err, "container \"%s\" (%s) is already being migrated here", name, ip);
      goto out_unlocked;
    }
  }
  /* The container keeps its id here, as podman's restore does, when no
   * container here and no other incoming copy has it (else a new one). */
  const char *want = json_str_or(w.container, "id", "");
  bool id_used = false;
  for (struct incoming *o = m->in; o && !id_used; o = o->next)
    id_used = strcmp(rec_id(json_object_get(o->offer, "container")), want) == 0;
  json_t *missing = NULL;
  if ((r = agent_offer_reserve(a, ctr, id_used ? NULL : want, vols, json_object_get(img, "layers"),
                               &missing, err)) < 0)
    goto out_unlocked;
  struct incoming *in = calloc(1, sizeof *in);
  if (!in)
    abort();
  in->pinned_by = a;
  snprintf(in->id, sizeof in->id, "%s", id);
  leaf = xasprintf("in-%s", id);
  in->dir = path_join(m->dir, leaf);
  in->offer = json_pack("{s:O, s:O, s:O, s:s, s:s}", "container", ctr, "image", img, "volumes",
                        vols, "source_agent", w.source_agent, "source_peer", peer ? peer : "");
  in->state = T_OFFERED;
  random_hex(in->cid, 64);
  in->busy = true; /* until its network is made, below */
  in->step = TS_OFFER;
  in->began_in = T_GONE;
  in->received = json_array();
  in->deadline_ms = now_mono_ms() + (uint64_t)agent_migration_timeout_s(a) * 1000;
  criu = path_join(in->dir, "criu");
  if ((r = mkdir_p(criu, 0700, err)) < 0) {
    json_decref(missing);
    incoming_free(in);
    goto out_unlocked;
  }
  {
    struct ferry_err e2 = {0};
    if (scratch_tmpfs(criu, &e2) < 0)
      log_warn("migrate", "incoming %s: CRIU images on disk: %s", id, e2.msg);
  }
  if ((r = save_state(in, err)) < 0) {
    /* unrecorded, a restart could not clean it up: refused */
    ferry_err_wrap(err, "incoming migration %s", id);
    json_decref(missing);
    mig_dir_remove(in->dir);
    incoming_free(in);
    goto out_unlocked;
  }
  in->next = m->in;
  m->in = in;
  log_info("migrate", "incoming %s: container %s (%s) from %s, %zu layer(s) missing", id, name, ip,
           peer && *peer ? peer : "local", json_array_size(missing));
  struct wire_offer_answer ans = {.id = id, .target_agent = agent_id(a), .missing_layers = missing};
  *out = wire_offer_answer_json(&ans);
  json_decref(missing);
  prepared = in;
  r = 0;
out_unlocked:
  pthread_mutex_unlock(&m->in_lock);
  if (prepared) {
    /* Its network namespace and veth (down) now, while the source runs: the
     * restore finds them. If this fails the restore makes them itself. */
    struct ferry_err e2 = {0};
    if (agent_net_prepare(a, prepared->cid, ip, rec_mac(ctr), &e2) < 0)
      log_warn("migrate", "incoming %s: network made ahead: %s (the restore makes it)", id, e2.msg);
    in_end(a, prepared, T_UNKNOWN);
  }
  return r;
}

#define PUT_WAIT_MS 60000

int incoming_put(struct agent *a, const char *id, enum wire_part part, const char *name,
                 const char *file, json_t **out, struct ferry_err *err)
{
  _cleanup_free_ char *what = NULL, *dest = NULL;
  struct migrations *m = agent_migrations(a);
  struct incoming *in;
  /* CRIU's images come while the restore may still be being prepared (on
   * the source's other connection): they wait for it, received already */
  int r = in_begin_w(m, id, TS_PART, &in, NULL, part == WP_CRIU ? PUT_WAIT_MS : 0, err);
  if (r < 0)
    return r;
  if ((r = ferry_fault("incoming-put", err)) < 0)
    goto out;
  struct stat st;
  uint64_t bytes = stat(file, &st) == 0 ? (uint64_t)st.st_size : 0;
  what = xasprintf("migration %s: %s%s%s", id, wire_part_noun(part), name ? " " : "",
                   name ? name : "");
  if (in->prep && (part == WP_VOLUME_DELTA || part == WP_ROOTFS_DELTA)) {
    /* prepared before the source froze: the changes since go where the
     * files were placed */
    if (part == WP_VOLUME_DELTA &&
        (!name || !json_array_has_str(json_object_get(in->offer, "volumes"), name))) {
      r = FERRY_INVALID(err, "%s: not a volume of the offered container", what);
      goto out;
    }
    if ((r = agent_restore_prepared_delta(a, in->prep, part == WP_VOLUME_DELTA ? name : NULL, file,
                                          what, err)) < 0) {
      /* what was placed goes: nothing to restore from */
      agent_restore_abandon(a, in->prep);
      in->prep = NULL;
      json_decref(in->prep_rec);
      in->prep_rec = NULL;
      log_warn("migrate", "incoming %s: %s", id, err->msg);
      in->deadline_ms = now_mono_ms() + 30000;
      in_end(a, in, T_FAILED);
      return r;
    }
    *out = wire_part_answer_json(bytes);
    goto out;
  }
  if (in->prep && part != WP_LAYER && part != WP_CRIU) {
    r = FERRY_CONFLICT(err, "%s: the restore is prepared, its files are in place", what);
    goto out;
  }
  switch (part) {
  case WP_LAYER: {
    if (!name || !json_array_has_str(json_object_get(json_object_get(in->offer, "image"), "layers"), name)) {
      r = FERRY_INVALID(err, "%s: not a layer of the offered image", what);
      goto out;
    }
    bool added = false;
    if ((r = agent_layer_receive(a, name, file, what, &added, err)) < 0)
      goto out;
    if (added)
      json_array_append_new(in->received, json_string(name));
    break;
  }
  case WP_VOLUME:
  case WP_VOLUME_DELTA: {
    if (!name || !json_array_has_str(json_object_get(in->offer, "volumes"), name)) {
      r = FERRY_INVALID(err, "%s: not a volume of the offered container", what);
      goto out;
    }
    _cleanup_free_ char *rel = xasprintf("volumes/%s", name);
    dest = path_join(in->dir, rel);
    r = part == WP_VOLUME ? agent_extract_fresh(a, file, dest, what, err)
                          : agent_extract_delta(a, file, dest, what, err);
    break;
  }
  case WP_ROOTFS:
  case WP_ROOTFS_DELTA:
    dest = path_join(in->dir, "upper");
    r = part == WP_ROOTFS ? agent_extract_fresh(a, file, dest, what, err)
                          : agent_extract_delta(a, file, dest, what, err);
    break;
  case WP_CRIU:
    dest = path_join(in->dir, "criu");
    r = agent_extract_images(a, file, dest, what, err);
    break;
  default:
    r = FERRY_NOTFOUND(err, "migration %s: unknown part", id);
  }
  if (r == 0)
    *out = wire_part_answer_json(bytes);
out:
  in_end(a, in, T_UNKNOWN);
  return r;
}

/* Starts the page server of migration in (ckpt_page_server_start: from the
 * source agent's address only, the secret first). */
int incoming_page_server(struct agent *a, const char *id, json_t *body, json_t **out,
                         struct ferry_err *err)
{
  _cleanup_free_ char *criu = NULL;
  _cleanup_free_ char *prev = NULL;
  _cleanup_free_ char *log = NULL;
  struct migrations *m = agent_migrations(a);
  struct incoming *in;
  struct wire_page_server_req w;
  int r = wire_page_server_req_parse(body, &w, err);
  if (r < 0)
    return ferry_err_wrap(err, "migration %s", id);
  bool zstd = w.zstd;
  int round = w.round, parent = w.parent_round;
  r = in_begin(m, id, TS_PAGE_SERVER, &in, err);
  if (r < 0)
    return r;
  /* A pre-dump round's page server ends by itself when the round is
   * complete: its exit says whether later ones may build on it. */
  if (in->ps_pid > 0 && in->ps_round >= 0) {
    int pr = spawn_reap(in->ps_pid, 10000, true);
    in->ps_pid = 0;
    if (pr == 0 && in->ps_round == in->pre_ok)
      in->pre_ok++;
  }
  stop_page_server(in);
  if (round >= 0 && round != in->pre_ok) {
    r = FERRY_CONFLICT(err, "migration %s: pre-dump round %d out of order (round %d is next)", id,
                       round, in->pre_ok);
    goto out_early;
  }
  if (parent >= in->pre_ok) {
    r = FERRY_CONFLICT(err, "migration %s: pre-dump round %d did not arrive whole", id, parent);
    goto out_early;
  }
  /* each round, and the dump, is progress: the offer's deadline starts
   * again (the page server's gate waits for the source until then) */
  in->deadline_ms = now_mono_ms() + (uint64_t)agent_migration_timeout_s(a) * 1000;
  if (round >= 0) {
    _cleanup_free_ char *rel = xasprintf("pre/r%d", round);
    criu = path_join(in->dir, rel);
    if ((r = mkdir_p(criu, 0700, err)) < 0)
      goto out_early;
    if (round > 0)
      prev = xasprintf("../r%d", round - 1);
  } else {
    criu = path_join(in->dir, "criu");
    if (parent >= 0)
      prev = xasprintf("../pre/r%d", parent);
  }
  log = path_join(in->dir, "page-server.log");
  struct ckpt_page_server ps = {.listen_ip = agent_listen_ip(a),
                                .peer = json_str_or(in->offer, "source_peer", ""),
                                .images_dir = criu,
                                .prev_dir = prev,
                                .zstd = zstd,
                                .deadline_ms = in->deadline_ms,
                                .log_path = log};
  if ((r = ckpt_page_server_start(&ps, err)) < 0) {
    ferry_err_wrap(err, "migration %s", id);
    goto out_early;
  }
  in->ps_pid = ps.pid;
  in->ps_round = round;
  struct wire_page_server ans = {.address = agent_listen_ip(a), .port = ps.port,
                                 .secret = ps.secret, .zstd = zstd};
  *out = wire_page_server_json(&ans);
out_early:
  in_end(a, in, T_UNKNOWN);
  return r;
}

/* Post-copy: a connection to the source's lazy dump, which serves the
 * pages this copy faults in (lp, from the restore request; an empty
 * address means the one the offer came from). The secret goes first: the
 * source's gate lets nothing else through. */
static int lazy_pages_connect(struct incoming *in, const struct wire_lazy_pages *lp, int *fd,
                              struct ferry_err *err)
{
  const char *addr = lp->address, *secret = lp->secret;
  if (!addr || !*addr)
    addr = json_str_or(in->offer, "source_peer", "");
  if (!*addr)
    addr = "127.0.0.1"; /* a local offer: the source is this host */
  struct in_addr x;
  if (inet_pton(AF_INET, addr, &x) != 1)
    return FERRY_INVALID(err, "lazy_pages: no IPv4 address to reach the source at (\"%s\")", addr);
  int c = relay_tcp_connect(addr, lp->port, 10);
  if (c < 0)
    return ferry_err_sys(err, c, "connect to the source's lazy pages at %s:%d", addr, lp->port);
  if (write(c, secret, WIRE_SECRET_LEN) != WIRE_SECRET_LEN) {
    int e = -errno;
    close(c);
    return ferry_err_sys(err, e ? e : -EIO, "lazy pages: send the secret");
  }
  *fd = c;
  return 0;
}

/* The files an incoming migration received, put in place for its copy:
 * the volumes become the store's (marked with the migration until the
 * commit), the rootfs changes become its upper dir. */
static int place_incoming_files(struct agent *a, json_t *rec, void *ctx, struct ferry_err *err)
{
  struct incoming *in = ctx;
  int r = 0;
  size_t i;
  json_t *v;
  json_array_foreach(json_object_get(in->offer, "volumes"), i, v)
  {
    const char *vn = json_string_value(v);
    _cleanup_free_ char *rel = xasprintf("volumes/%s", vn);
    _cleanup_free_ char *src = path_join(in->dir, rel);
    if ((r = agent_volume_adopt(a, vn, src, in->id, err)) < 0)
      return r;
  }
  _cleanup_free_ char *upper_src = path_join(in->dir, "upper");
  return agent_ctr_adopt_changes(a, rec, upper_src, err);
}

/* The copy's record as this agent will run it (its id chosen at the offer),
 * the image registered here if it was new. */
static int copy_record(struct agent *a, struct incoming *in, json_t **out, struct ferry_err *err)
{
  json_t *ctr = json_object_get(in->offer, "container");
  json_t *img = json_object_get(in->offer, "image");
  bool image_added = false;
  int r = agent_image_adopt(a, img, &image_added, err);
  if (r < 0)
    return ferry_err_wrap(err, "migration %s", in->id);
  if (image_added) {
    in->image_added = true;
    struct ferry_err e2 = {0};
    if (save_state(in, &e2) < 0)
      log_warn("migrate", "incoming %s: %s (a restart may keep the image)", in->id, e2.msg);
  }
  char cid[65], ts[40];
  if (in->cid[0])
    snprintf(cid, sizeof cid, "%s", in->cid); /* its netns was made at the offer */
  else
    random_hex(cid, 64);
  format_time(now_wall_ms(), ts, sizeof ts);
  json_t *rec = json_deep_copy(ctr);
  /* the container's own id (chosen at the offer), this instance's key */
  agent_restored_record(rec, rec_has_id(ctr) ? rec_id(ctr) : cid, cid);
  rec_set_migration_id(rec, in->id);
  rec_set_migrated_from(rec, json_str_or(in->offer, "source_agent", ""));
  rec_set_migrated_at(rec, ts);
  rec_set_started_at(rec, ts);
  *out = rec;
  return 0;
}

int incoming_prepare(struct agent *a, const char *id, json_t *req, json_t **out,
                     struct ferry_err *err)
{
  struct wire_prepare w;
  int r = wire_prepare_parse(req, &w, err);
  if (r < 0)
    return ferry_err_wrap(err, "migration %s", id);
  json_t *desc = w.descriptors;
  if (!agent_restore_can_hold(a))
    return FERRY_CONFLICT(err, "migration %s: this agent cannot hold a restore (no ferry-criu)", id);
  struct migrations *m = agent_migrations(a);
  struct incoming *in;
  _cleanup_free_ char *criu = NULL;
  _cleanup_json_ json_t *rec = NULL;
  if ((r = in_begin(m, id, TS_PREPARE, &in, err)) < 0)
    return r;
  criu = path_join(in->dir, "criu");
  if (in->prep) {
    r = FERRY_CONFLICT(err, "migration %s: its restore is prepared already", id);
    goto out;
  }
  if ((r = ferry_fault("incoming-prepare", err)) < 0)
    goto out;
  if ((r = copy_record(a, in, &rec, err)) < 0)
    goto fail;
  struct restore_source src = {.fault_prefix = "incoming", .place = place_incoming_files, .ctx = in};
  json_t *img = json_object_get(in->offer, "image");
  if ((r = agent_restore_prepare(a, rec, img, criu, &src, desc, &in->prep, err)) < 0) {
    ferry_err_wrap(err, "migration %s: prepare the restore of \"%s\"", id, rec_name(rec));
    goto fail;
  }
  in->prep_rec = json_incref(rec);
  in->deadline_ms = now_mono_ms() + (uint64_t)agent_migration_timeout_s(a) * 1000;
  log_info("migrate", "incoming %s: restore of %s prepared, held until its images are in", id,
           rec_name(rec));
  struct wire_state ans = {.state = T_OFFERED, .prepared = true};
  *out = wire_state_json(&ans);
out:
  in_end(a, in, T_UNKNOWN);
  return r;
fail:
  /* its files were placed and taken back: nothing to restore from */
  log_warn("migrate", "incoming %s: prepare failed: %s", id, err ? err->msg : "");
  in->deadline_ms = now_mono_ms() + 30000;
  in_end(a, in, T_FAILED);
  return r;
}

int incoming_restore(struct agent *a, const char *id, json_t *req, json_t **out,
                     struct ferry_err *err)
{
  struct migrations *m = agent_migrations(a);
  struct incoming *in;
  struct wire_restore w;
  int r = wire_restore_parse(req, &w, err); /* a malformed request changes nothing */
  if (r < 0)
    return ferry_err_wrap(err, "migration %s", id);
  if ((r = in_begin(m, id, TS_RESTORE, &in, err)) < 0)
    return r;
  uint64_t t0 = now_mono_ms();
  json_t *ctr = json_object_get(in->offer, "container");
  json_t *img = json_object_get(in->offer, "image");
  const char *name = rec_name(ctr);
  _cleanup_free_ char *criu = path_join(in->dir, "criu");
  _cleanup_free_ char *pslog = path_join(in->dir, "page-server.log");
  _cleanup_json_ json_t *rec = NULL;
  if ((r = ferry_fault("incoming-restore", err)) < 0)
    goto fail;
  /* The page server ends when the source's dump is complete. */
  if (in->ps_pid > 0) {
    r = ckpt_page_server_end(in->ps_pid, pslog, 30000, err);
    in->ps_pid = 0;
    if (r < 0) {
      ferry_err_wrap(err, "migration %s", id);
      goto fail;
    }
  }
  if (in->prep) {
    rec = json_incref(in->prep_rec);
  } else if ((r = copy_record(a, in, &rec, err)) < 0) {
    goto fail;
  }
  /* the one restore of a copy (agent/), with this migration's files; the
   * record says op "restore" until the commit, the link stays down */
  struct restore_source src = {.fault_prefix = "incoming", .place = place_incoming_files, .ctx = in};
  struct restore_times t = {0};
  json_t *neigh = w.neighbours;
  /* lazy_memory: the pages are here already (pre-copied or streamed); the
   * copy runs at once and faults them in from this migration's images
   * while a lazy-pages daemon pushes the rest (the directory stays until
   * that daemon has exited: reaper_main) */
  bool lazy = w.lazy_memory, lp = w.has_lazy_pages;
  struct ckpt_lazy lz = {.pid = -1, .ps_fd = -1, .copy_pid = 0};
  /* post-copy: the pages not in criu/ stay with the source's CRIU, which
   * serves them on a connection made here to the port it named */
  if (lp && (r = lazy_pages_connect(in, &w.lazy_pages, &lz.ps_fd, err)) < 0)
    goto fail;
  src.lazy = lazy || lp ? &lz : NULL;
  if (in->prep && src.lazy) {
    /* prepared without lazy memory: the source asked otherwise since */
    r = FERRY_CONFLICT(err, "migration %s: a prepared restore is not lazy", id);
    goto fail;
  }
  bool prepared = in->prep != NULL;
  struct agent_claim *claim = NULL;
  struct agent_restore_tail *tail = NULL;
  if (in->prep) {
    /* runc waits at the gate since the source's dump: CRIU now */
    struct agent_restore_job *j = in->prep;
    in->prep = NULL;
    json_decref(in->prep_rec);
    in->prep_rec = NULL;
    r = agent_restore_launch(a, j, neigh, &t, &claim, &tail, err);
  } else {
    r = agent_restore_copy(a, rec, img, criu, &src, neigh, false, &t, &claim, err);
  }
  if (lz.ps_fd >= 0)
    close(lz.ps_fd); /* the daemon has its own */
  if (lz.pid > 0) {
    in->lazy_pid = lz.pid; /* reaped by reaper_main, or killed by cleanup_in */
    in->lazy_copy_pid = lz.copy_pid;
    snprintf(in->lazy_log, sizeof in->lazy_log, "%s", lz.log);
  }
  if (r < 0) {
    ferry_err_wrap(err, "migration %s: restore \"%s\"", id, name);
    goto fail;
  }
  uint64_t t_restored = now_mono_ms();
  in->claim = claim;
  in->launch_tail = tail; /* awaited by the commit, or when the copy goes */
  snprintf(in->copy_id, sizeof in->copy_id, "%s", rec_id(rec));
  in->report = json_pack("{s:s, s:s, s:I, s:I, s:I, s:I}", "container", name, "container_id", rec_id(rec),
                         "files_ms", (json_int_t)t.files_ms, "setup_ms", (json_int_t)t.setup_ms,
                         "restore_ms", (json_int_t)t.restore_ms, "total_ms",
                         (json_int_t)(t_restored - t0));
  if (t.criu)
    json_object_set_new(in->report, "criu", t.criu);
  json_object_set_new(in->report, "neighbours", json_integer(t.neighbours));
  json_object_set_new(in->report, "lazy_memory", json_boolean(lazy || lp));
  json_object_set_new(in->report, "prepared", json_boolean(prepared));
  if (lp)
    json_object_set_new(in->report, "post_copy", json_true());
  in->fence_ms = now_mono_ms() + (uint64_t)MIGRATION_FENCE_S * 1000;
  log_info("migrate", "incoming %s: container %s restored here (%" PRIu64 " ms), off the network "
                      "until the source commits", id, name, t_restored - t0);
  struct wire_state ans = {.state = T_RESTORED, .restore = in->report};
  *out = wire_state_json(&ans);
  in_end(a, in, T_RESTORED);
  return 0;
fail:
  log_warn("migrate", "incoming %s: restore failed: %s", id, err ? err->msg : "");
  in->deadline_ms = now_mono_ms() + 30000; /* kept a while: the source may still ask */
  in_end(a, in, T_FAILED);
  return r;
}

/* Puts the restored copy (claimed: c) on the network: link up, unsolicited
 * ARP, its record "running" and the claim ended, its volumes the store's
 * own. The caller has written the incoming state "running" first. */
static void bring_up(struct agent *a, struct incoming *in, struct agent_claim *c)
{
  struct ferry_err e = {0};
  if (agent_ctr_link_up(c, &e) < 0)
    log_warn("migrate", "incoming %s: %s", in->id, e.msg);
  if (agent_ctr_announce(c, &e) < 0)
    log_warn("migrate", "incoming %s: %s", in->id, e.msg);
  rec_set_state(agent_claim_rec(c), CS_RUNNING);
  agent_release(c, true);
  size_t i;
  json_t *v;
  json_array_foreach(json_object_get(in->offer, "volumes"), i, v)
    agent_volume_unmark(a, json_string_value(v));
}

int incoming_commit(struct agent *a, const char *id, json_t **out, struct ferry_err *err)
{
  struct migrations *m = agent_migrations(a);
  struct incoming *in = NULL;
  /* A repeated commit (its answer was lost) finds it running: same answer. */
  pthread_mutex_lock(&m->in_lock);
  if (lookup_in(m, id, &in, NULL) == 0 && committed(in) && !in->busy) {
    struct wire_state ans = {.state = T_RUNNING, .restore = in->report};
    *out = wire_state_json(&ans);
    pthread_mutex_unlock(&m->in_lock);
    return 0;
  }
  pthread_mutex_unlock(&m->in_lock);
  int r = ferry_fault("incoming-commit", err);
  if (r < 0)
    return r;
  /* The restore's last part (runc's end, after CRIU restored the
   * processes) is awaited before the decision: if it failed, this copy
   * never runs, and the source, asking, finds nothing and resumes its own. */
  struct agent_restore_tail *tail = NULL;
  pthread_mutex_lock(&m->in_lock);
  if (lookup_in(m, id, &in, NULL) == 0 && !in->busy && in->state == T_RESTORED) {
    tail = in->launch_tail;
    in->launch_tail = NULL;
  }
  pthread_mutex_unlock(&m->in_lock);
  struct ferry_err te = {0};
  if (tail && (agent_restore_tail_end(tail, &te) < 0 || ferry_fault("incoming-restore-tail", &te) < 0)) {
    json_t *ab = NULL;
    incoming_abort(a, id, &ab, NULL);
    json_decref(ab);
    log_warn("migrate", "incoming %s: its restore failed after CRIU's: %s: its copy removed", id,
             te.msg);
    return ferry_err_set(err, te.code ? te.code : -EIO, FERRY_E_INTERNAL,
                         "migration %s: the restore failed: %s", id, te.msg);
  }
  /* The decision is written first (in_begin saves the state): a restart
   * after this point brings the container up, never removes it. When it
   * cannot be written (a full disk), this copy will never run: it goes,
   * and the source, asking, finds nothing here and resumes its own. */
  bool unwritten = false;
  if ((r = in_begin_w(m, id, TS_COMMIT, &in, &unwritten, 0, err)) < 0) {
    if (unwritten) {
      json_t *ab = NULL;
      incoming_abort(a, id, &ab, NULL);
      json_decref(ab);
      log_warn("migrate", "incoming %s: %s: its copy removed", id, err->msg);
    }
    return r;
  }
  uint64_t t0 = now_mono_ms();
  struct agent_claim *c = take_copy(a, in);
  _cleanup_free_ char *name = xstrdup(c ? rec_name(agent_claim_rec(c)) : "?");
  if (c)
    bring_up(a, in, c);
  uint64_t t_up = now_mono_ms();
  /* (tests) the memory stops arriving halfway: the copy must not run on */
  struct ferry_err fe = {0};
  if (in->lazy_pid > 0 && ferry_fault("incoming-lazy-pages", &fe) < 0)
    kill(in->lazy_pid, SIGKILL);
  json_object_set_new(in->report, "commit_ms", json_integer((json_int_t)(t_up - t0)));
  /* the images are used up (the state file stays so the source can ask),
   * unless a lazy-pages daemon still reads them: it opens them again for
   * each process the copy forks (the reaper removes them once it is gone) */
  if (in->lazy_pid <= 0) {
    _cleanup_free_ char *criu = path_join(in->dir, "criu");
    scratch_remove(criu);
  }
  log_info("migrate", "incoming %s: committed: container %s runs here", id, name);
  agent_metrics_received(a, true);
  struct wire_state ans = {.state = T_RUNNING, .restore = in->report};
  *out = wire_state_json(&ans);
  in->deadline_ms = now_mono_ms() + (uint64_t)agent_migration_timeout_s(a) * 1000; /* then pruned */
  in_end(a, in, T_UNKNOWN);
  return 0;
}

/* A pruned committed migration leaves only its id behind (ROOT/migrations/
 * done-ID, empty), so that a source asking late, after a restart, still
 * hears "running" and never resumes its own copy. */
static char *tombstone_path(struct migrations *m, const char *id)
{
  _cleanup_free_ char *leaf = xasprintf("done-%s", id);
  return path_join(m->dir, leaf);
}

int incoming_abort(struct agent *a, const char *id, json_t **out, struct ferry_err *err)
{
  struct migrations *m = agent_migrations(a);
  pthread_mutex_lock(&m->in_lock);
  struct incoming *in = NULL;
  int r = lookup_in(m, id, &in, err);
  bool drop = false;
  if (r < 0) {
    /* malformed or unknown: nothing to withdraw */
  } else if (!target_step_may(TS_ABORT, in->state)) {
    r = FERRY_CONFLICT(err, "incoming migration %s is %s: it was committed", id,
                       target_state_name(in->state));
  } else if (in->busy) {
    /* the step in progress removes everything when it ends */
    in->abort_requested = true;
    *out = wire_abort_answer_json(&(struct wire_abort_answer){.aborting = true});
  } else {
    unlink_in(m, in);
    drop = true;
    *out = wire_abort_answer_json(&(struct wire_abort_answer){.aborting = false});
  }
  pthread_mutex_unlock(&m->in_lock);
  if (drop) {
    cleanup_in(a, in);
    log_info("migrate", "incoming %s: aborted, everything received removed", id);
    incoming_free(in);
  }
  return r;
}

int incoming_get(struct agent *a, const char *id, json_t **out, struct ferry_err *err)
{
  struct migrations *m = agent_migrations(a);
  pthread_mutex_lock(&m->in_lock);
  struct incoming *in = NULL;
  int r = lookup_in(m, id, &in, err);
  if (r == 0) {
    struct wire_state ans = {
        .id = in->id,
        .container = json_str_or(json_object_get(in->offer, "container"), "name", ""),
        .state = in->state,
        .restore = in->report};
    *out = wire_state_json(&ans);
  } else if (migration_id_valid(id)) {
    _cleanup_free_ char *tp = tombstone_path(m, id);
    if (path_exists(tp)) {
      *out = wire_state_json(&(struct wire_state){.id = id, .state = T_RUNNING, .pruned = true});
      r = 0;
    }
  }
  pthread_mutex_unlock(&m->in_lock);
  return r;
}

/* Abandons incoming migrations whose source went quiet, and kills restored
 * copies that were not committed in time (the fence: a copy never joins the
 * network without the source's commit). */
static void *reaper_main(void *arg)
{
  struct agent *a = arg;
  struct migrations *m = agent_migrations(a);
  pthread_mutex_lock(&m->in_lock);
  while (!m->stopping) {
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    ts.tv_sec += 1;
    pthread_cond_timedwait(&m->reaper_cond, &m->in_lock, &ts);
    uint64_t now = now_mono_ms();
    struct incoming *gone = NULL;
    char *spent[16]; /* CRIU images to remove once the lock is let go */
    size_t n_spent = 0;
    for (struct incoming *in = m->in; in;) {
      struct incoming *next = in->next;
      /* the steps the agent takes itself (protocol.h): expiry, fence, prune */
      bool stale = in->state == T_OFFERED && now > in->deadline_ms;
      if (stale && !in->busy && page_server_receiving(in)) {
        in->deadline_ms = now + (uint64_t)agent_migration_timeout_s(a) * 1000;
        stale = false;
      }
      bool failed = in->state == T_FAILED && now > in->deadline_ms;
      bool fenced = in->state == T_RESTORED && now > in->fence_ms;
      if (in->lazy_pid > 0 && !in->busy)
        lazy_daemon_running(in); /* reaped as soon as it is done */
      if (in->images_spent && !in->busy && n_spent < ARRAY_SIZE(spent)) {
        spent[n_spent++] = path_join(in->dir, "criu");
        in->images_spent = false;
      }
      bool done = in->state == T_RUNNING && in->deadline_ms && now > in->deadline_ms &&
                  in->lazy_pid <= 0;
      if (!in->busy && done) {
        _cleanup_free_ char *tp = tombstone_path(m, in->id);
        if (write_file_atomic(tp, "", 0, 0600, NULL) < 0) {
          in = next; /* keep it rather than forget it ran here */
          continue;
        }
        log_info("migrate", "incoming %s: committed long ago, pruned", in->id);
        unlink_in(m, in);
        in->next = gone;
        gone = in;
      } else if (!in->busy && (stale || failed || fenced)) {
        log_warn("migrate", "incoming %s: %s, removing what it received", in->id,
                 stale ? "timed out" : fenced ? "restored but never committed by the source" : "failed");
        if (fenced)
          in_set_state(in, TS_FENCE, T_RESTORED, T_FAILED);
        unlink_in(m, in);
        in->next = gone;
        gone = in;
      }
      in = next;
    }
    pthread_mutex_unlock(&m->in_lock);
    for (size_t i = 0; i < n_spent; i++) {
      scratch_remove(spent[i]);
      free(spent[i]);
    }
    agent_ports_expire(a);
    agent_autoremove_tick(a);
    while (gone) {
      struct incoming *next = gone->next;
      cleanup_in(a, gone);
      incoming_free(gone);
      gone = next;
    }
    pthread_mutex_lock(&m->in_lock);
  }
  pthread_mutex_unlock(&m->in_lock);
  return NULL;
}

/* Incoming migrations that were under way when the agent stopped: a
 * committed one ("running") keeps its container and brings it up if the
 * agent stopped in the middle of the commit; any other is removed. */
static void target_recover(struct agent *a)
{
  struct migrations *m = agent_migrations(a);
  DIR *d = opendir(m->dir);
  if (!d)
    return;
  struct dirent *de;
  while ((de = readdir(d))) {
    if (strncmp(de->d_name, "in-", 3) != 0)
      continue;
    _cleanup_free_ char *dir = path_join(m->dir, de->d_name);
    _cleanup_free_ char *sp = path_join(dir, "state.json");
    _cleanup_json_ json_t *st = NULL;
    if (json_load(sp, &st, NULL) < 0) {
      mig_dir_remove(dir);
      continue;
    }
    struct incoming *in = calloc(1, sizeof *in);
    if (!in)
      abort();
    snprintf(in->id, sizeof in->id, "%s", json_str_or(st, "id", ""));
    in->dir = xstrdup(dir);
    in->offer = json_incref(json_object_get(st, "offer"));
    in->received = json_incref(json_object_get(st, "received"));
    in->image_added = json_is_true(json_object_get(st, "image_added"));
    const char *cid = json_str_or(st, "container_id", "");
    if (strlen(cid) == 64 && strspn(cid, "0123456789abcdef") == 64)
      snprintf(in->cid, sizeof in->cid, "%s", cid);
    if (!in->received)
      in->received = json_array();
    in->state = target_state_parse(json_str_or(st, "state", "failed"));
    int pid = (int)json_integer_value(json_object_get(st, "page_server_pid"));
    if (pid > 0) {
      /* only if it is still our page server */
      _cleanup_free_ char *cl = xasprintf("/proc/%d/cmdline", pid);
      _cleanup_free_ char *cmd = NULL;
      size_t n = 0;
      if (read_file(cl, 65536, &cmd, &n, NULL) == 0 && memmem(cmd, n, dir, strlen(dir)))
        kill(pid, SIGKILL);
    }
    if (in->state == T_RUNNING) {
      in->report = json_incref(json_object_get(st, "report"));
      in->deadline_ms = now_mono_ms() + (uint64_t)agent_migration_timeout_s(a) * 1000;
      _cleanup_json_ json_t *rec = agent_ctr_by_migration(a, in->id);
      /* Only a copy this migration was still restoring: the container may
       * have moved on since (an outgoing migration owns it now, whose own
       * recovery asks its target), and an older record must never wake it. */
      struct agent_claim *c = NULL;
      struct ferry_err ce = {0};
      if (rec && rec_op(rec) == OP_RESTORE) {
        if (agent_claim_marked(a, rec, &c, &ce) == 0) {
          log_warn("migrate", "incoming %s: the agent stopped during the commit: bringing %s up",
                   in->id, rec_name(rec));
          bring_up(a, in, c);
        } else {
          log_error("migrate", "incoming %s: its copy %s: %s", in->id, rec_name(rec), ce.msg);
        }
      }
      in->next = m->in;
      m->in = in;
      continue;
    }
    log_warn("migrate", "incoming %s: was %s when the agent stopped: removing what it received",
             in->id, target_state_name(in->state));
    in_set_state(in, TS_RESTART, in->state, T_FAILED);
    cleanup_in(a, in);
    incoming_free(in);
  }
  closedir(d);
}

int migrate_init(struct agent *a, struct ferry_err *err)
{
  struct migrations *m = calloc(1, sizeof *m);
  if (!m)
    abort();
  m->dir = path_join(agent_root(a), "migrations");
  pthread_mutex_init(&m->in_lock, NULL);
  pthread_cond_init(&m->in_cond, NULL);
  pthread_mutex_init(&m->out_lock, NULL);
  pthread_cond_init(&m->out_cond, NULL);
  pthread_cond_init(&m->reaper_cond, NULL);
  agent_set_migrations(a, m);
  int r = mkdir_p(m->dir, 0700, err);
  if (r < 0)
    return r;
  target_recover(a);
  source_recover(a);
  if (pthread_create(&m->reaper, NULL, reaper_main, a) != 0)
    return FERRY_INTERNAL(err, "cannot start the migration reaper thread");
  m->reaper_started = true;
  return 0;
}

void migrate_fini(struct agent *a)
{
  struct migrations *m = agent_migrations(a);
  if (!m)
    return;
  pthread_mutex_lock(&m->in_lock);
  m->stopping = true;
  pthread_cond_broadcast(&m->reaper_cond);
  pthread_mutex_unlock(&m->in_lock);
  if (m->reaper_started)
    pthread_join(m->reaper, NULL);
  /* Outgoing migrations finish their current step (bounded by their timeout). */
  pthread_mutex_lock(&m->out_lock);
  while (m->out_running > 0)
    pthread_cond_wait(&m->out_cond, &m->out_lock);
  pthread_mutex_unlock(&m->out_lock);
  for (struct incoming *in = m->in; in;) {
    struct incoming *next = in->next;
    stop_page_server(in);
    incoming_free(in);
    in = next;
  }
  outgoing_free_all(m);
  free(m->dir);
  free(m);
  agent_set_migrations(a, NULL);
}
