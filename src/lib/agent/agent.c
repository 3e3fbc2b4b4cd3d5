#include "agent/agent_private.h"
#include "net/ports.h"

#include <arpa/inet.h>
#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include "image/overlay.h"
#include "util/cleanup.h"
#include "util/fault.h"
#include "util/fs.h"
#include "util/json.h"
#include "util/spawn.h"
#include "util/log.h"
#include "util/strv.h"

#define LOCK(a) pthread_mutex_lock(&(a)->lock)
#define UNLOCK(a) pthread_mutex_unlock(&(a)->lock)

const char *agent_id(const struct agent *a) { return a->id; }
const char *agent_root(const struct agent *a) { return a->root; }
const char *agent_token(const struct agent *a) { return a->token; }
const char *agent_tls_ca(const struct agent *a) { return a->tls_ca; }
const char *agent_listen_ip(const struct agent *a) { return a->listen_ip; }
const char *agent_listen_port(const struct agent *a) { return a->listen_port; }
int agent_migration_timeout_s(const struct agent *a) { return a->migration_timeout_s; }
const char *agent_upload_dir(const struct agent *a) { return a->images.tmp_dir; }
const char *agent_bridge(const struct agent *a) { return a->net.bridge; }
const char *agent_subnet(const struct agent *a) { return a->subnet_str; }
struct overlay *agent_overlay(struct agent *a) { return &a->overlay; }
struct migrations *agent_migrations(const struct agent *a) { return a->mig; }
void agent_set_migrations(struct agent *a, struct migrations *m) { a->mig = m; }

static int agent_init(struct agent *a, const struct agent_options *o, struct ferry_err *err);

int agent_open(struct agent **out, const struct agent_options *o, struct ferry_err *err)
{
  struct agent *a = calloc(1, sizeof *a);
  if (!a)
    abort();
  int r = agent_init(a, o, err);
  if (r < 0) {
    free(a); /* what it made stays: the program ends */
    return r;
  }
  *out = a;
  return 0;
}

static int agent_init(struct agent *a, const struct agent_options *o, struct ferry_err *err)
{
  pthread_mutex_init(&a->lock, NULL);
  pthread_mutex_init(&a->img_lock, NULL);
  pthread_mutex_init(&a->ports_lock, NULL);
  a->claims = json_object();
  a->started_ms = now_wall_ms();
  agent_metrics_init(a);
  const char *root = o->root ? o->root : "/var/lib/ferry";
  int r = mkdir_p(root, 0700, err);
  if (r < 0)
    return r;
  a->root = realpath(root, NULL);
  if (!a->root)
    return ferry_err_sys(err, -errno, "agent root %s", root);
  agent_term_load(a);
  if ((r = image_store_open(&a->images, a->root, err)) < 0)
    return r;
  if (o->max_entry_size)
    a->images.limits.max_entry_size = o->max_entry_size;
  if ((r = runtime_init(&a->rt, a->root, o->runc_root ? o->runc_root : "/run/ferry/runc", o->runc,
                        o->shim, err)) < 0)
    return r;
  a->subnet_str = xstrdup(o->subnet ? o->subnet : "10.89.0.0/24");
  if ((r = subnet_parse(a->subnet_str, &a->net.subnet, err)) < 0)
    return r;
  if (o->gateway) {
    uint32_t gw;
    if (ip_parse(o->gateway, &gw) < 0 || !subnet_contains(&a->net.subnet, gw))
      return FERRY_INVALID(err, "gateway %s is not an address of subnet %s", o->gateway,
                           a->subnet_str);
    a->net.subnet.gw = gw;
  }
  a->token = o->token ? xstrdup(o->token) : NULL;
  a->tls_ca = o->tls_ca ? xstrdup(o->tls_ca) : NULL;
  a->migration_timeout_s = o->migration_timeout_s > 0 ? o->migration_timeout_s : 600;
  if (o->listen) {
    _cleanup_free_ char *l = xstrdup(o->listen);
    char *colon = strrchr(l, ':');
    if (colon) {
      *colon = '\0';
      snprintf(a->listen_port, sizeof a->listen_port, "%.7s", colon + 1);
    }
    if (*l && strcmp(l, "0.0.0.0") != 0)
      a->listen_ip = xstrdup(l);
  }
  a->net.bridge = xstrdup(o->bridge ? o->bridge : "ferry0");
  if (strlen(a->net.bridge) > 15)
    return FERRY_INVALID(err, "bridge name \"%s\" is longer than 15 characters", a->net.bridge);
  /* A stable identity for this agent. */
  _cleanup_free_ char *idp = path_join(a->root, "agent.json");
  _cleanup_json_ json_t *idj = NULL;
  if (json_load(idp, &idj, NULL) == 0 && json_str_or(idj, "id", NULL)) {
    a->id = xstrdup(json_str_or(idj, "id", ""));
  } else {
    char id[17];
    random_hex(id, 16);
    a->id = xstrdup(id);
    json_decref(idj);
    idj = json_pack("{s:s}", "id", id);
    if ((r = json_save_atomic(idp, idj, err)) < 0)
      return r;
  }
  if ((r = net_bridge_ensure(&a->net, err)) < 0)
    return r;
  int fk = runtime_freezer_keep(&a->rt);
  if (fk < 0)
    log_warn("agent", "cgroup freezer: the empty frozen cgroup that keeps the kernel's freezer on "
             "could not be made (%s): each freeze and thaw of a move then takes ~1 ms more",
             strerror(-fk));
  if (!o->overlay || !o->overlay->vni) {
    int gone = overlay_remove_stale(a->net.bridge);
    if (gone > 0)
      log_info("agent", "overlay: removed %d VXLAN port(s) of an earlier --overlay from %s", gone,
               a->net.bridge);
  } else {
    if ((r = overlay_open(&a->overlay, o->overlay, a->net.bridge, err)) < 0)
      return r;
    a->net.mtu = a->overlay.mtu;
    char l[16];
    ip_format(a->overlay.local, l, sizeof l);
    log_info("agent", "overlay %u on %s: underlay %s (%s), MTU %d, %zu static member(s)",
             a->overlay.vni, a->overlay.dev, l, a->overlay.underlay_dev, a->overlay.mtu,
             a->overlay.n_static);
  }
  if ((r = agent_seed_defaults_load(a, o->seed_config, err)) < 0)
    return r;
  for (size_t i = 0; o->peer_allow && o->peer_allow[i]; i++) {
    struct subnet sn = {0};
    _cleanup_free_ char *c = xstrdup(o->peer_allow[i]);
    char *slash = strchr(c, '/'), *end = NULL;
    long p = slash ? strtol(slash + 1, &end, 10) : 32;
    if (slash)
      *slash = '\0';
    uint32_t ip;
    if ((slash && (*end || end == slash + 1)) || p < 8 || p > 32 || ip_parse(c, &ip) < 0)
      return FERRY_INVALID(err, "--peer-allow \"%s\": expected ADDRESS or ADDRESS/PREFIX (8..32)",
                           o->peer_allow[i]);
    sn.prefix = (int)p;
    sn.net = ip & (0xffffffffu << (32 - p));
    a->peer_allow = realloc(a->peer_allow, (a->n_peer_allow + 1) * sizeof *a->peer_allow);
    if (!a->peer_allow)
      abort();
    a->peer_allow[a->n_peer_allow++] = sn;
  }
  agent_ports_load(a);
  agent_recover(a);
  agent_ports_sync(a, NULL);
  return 0;
}

int agent_peer_check(struct agent *a, const char *host, char *addr, size_t alen,
                     struct ferry_err *err)
{
  uint32_t ips[16];
  size_t n = 0;
  int r = net_resolve4(host, ips, ARRAY_SIZE(ips), &n, err);
  if (r < 0)
    return r;
  _cleanup_json_ json_t *all = ctr_load_all(&a->rt);
  for (size_t k = 0; k < n; k++) {
    char s[16];
    ip_format(ips[k], s, sizeof s);
    /* "NAME (ADDRESS)" for a name, the address alone otherwise */
    char shown[300];
    snprintf(shown, sizeof shown, strcmp(host, s) ? "%s (%s)" : "%s", host, s);
    bool ok = false;
    if (a->n_peer_allow == 0)
      ok = net_ip_on_link(s) && !subnet_contains(&a->net.subnet, ips[k]);
    for (size_t i = 0; i < a->n_peer_allow && !ok; i++)
      ok = subnet_contains(&a->peer_allow[i], ips[k]);
    size_t i;
    json_t *c;
    json_array_foreach(all, i, c) if (strcmp(rec_ip(c), s) == 0 && rec_state(c) != CS_MIGRATED)
    {
      return ferry_err_set(err, -EACCES, FERRY_E_FORBIDDEN,
                           "%s is the address of container \"%s\" of this host, not a peer", shown,
                           rec_name(c));
    }
    if (!ok)
      return ferry_err_set(err, -EACCES, FERRY_E_FORBIDDEN, "%s is not an allowed peer (%s)", shown,
                           a->n_peer_allow ? "ferryd --peer-allow"
                                           : "by default a network this host is on, other than "
                                             "its containers' subnet; ferryd --peer-allow");
  }
  ip_format(ips[0], addr, alen);
  return 0;
}

void agent_close(struct agent *a)
{
  agent_holds_drop(a);
  agent_metrics_fini(a);
  free(a->token);
  free(a->tls_ca);
  free(a->listen_ip);
  image_store_close(&a->images);
  runtime_fini(&a->rt);
  free(a->net.bridge);
  free(a->subnet_str);
  free(a->id);
  free(a->root);
  json_decref(a->claims);
  json_decref(a->redirects);
  json_decref(a->seed_defaults);
  free(a->peer_allow);
  pthread_mutex_destroy(&a->lock);
  pthread_mutex_destroy(&a->img_lock);
  free(a);
}

void agent_recover(struct agent *a)
{
  _cleanup_json_ json_t *all = ctr_load_all(&a->rt);
  size_t i;
  json_t *rec;
  json_array_foreach(all, i, rec)
  {
    const char *id = rec_id(rec);
    enum ctr_op op = rec_op(rec);
    if (op == OP_CHECKPOINT) {
      /* A checkpoint was cut short: the container may still be frozen. */
      /* (also when it was not paused yet: its link may be down) */
      _cleanup_free_ char *rs = NULL; /* runc's word for it */
      int pid;
      if (runc_state(&a->rt, id, &rs, &pid) == 0 &&
          (strcmp(rs, "paused") == 0 || strcmp(rs, "running") == 0)) {
        agent_thaw_rec(a, rec);
        log_warn("agent", "container %s: resumed after an interrupted checkpoint",
                 (rec_has_name(rec) ? rec_name(rec) : id));
      }
      rec_set_op(rec, OP_NONE);
      agent_save_or_log(a, rec, "the end of an interrupted checkpoint");
    } else if (op == OP_RESTORE && rec_has_migration_id(rec)) {
      continue; /* an incoming migration's copy: migrate's recovery decides by its state */
    } else if (op == OP_RESTORE) {
      _cleanup_free_ char *rs = NULL;
      int pid;
      if (runc_state(&a->rt, id, &rs, &pid) == 0 && strcmp(rs, "running") == 0) {
        /* Restored before the agent stopped: it keeps running, on the
         * network (a restore brings the link up last). */
        agent_link_up_rec(a, rec, NULL);
        rec_set_op(rec, OP_NONE);
        rec_set_state(rec, CS_RUNNING);
        agent_save_or_log(a, rec, "that its restore finished");
        log_warn("agent", "container %s: restored before the agent stopped, kept running",
                 (rec_has_name(rec) ? rec_name(rec) : id));
      } else {
        log_warn("agent", "container %s: removing the remains of an unfinished restore",
                 (rec_has_name(rec) ? rec_name(rec) : id));
        agent_ctr_destroy(a, rec, true, NULL);
      }
    } else if (op == OP_NONE && rec_state(rec) != CS_RUNNING) {
      /* Started, but the agent stopped before it wrote so: the record must
       * say what runs (else ps would hide a running container). */
      _cleanup_free_ char *rs = NULL;
      int pid;
      if (runc_state(&a->rt, id, &rs, &pid) == 0 &&
          (strcmp(rs, "running") == 0 || strcmp(rs, "paused") == 0)) {
        rec_set_state(rec, CS_RUNNING);
        if (!rec_has_started_at(rec)) {
          char ts[40];
          format_time(now_wall_ms(), ts, sizeof ts);
          rec_set_started_at(rec, ts);
        }
        agent_save_or_log(a, rec, "that it runs");
        log_warn("agent", "container %s: started before the agent stopped, recorded as running",
                 (rec_has_name(rec) ? rec_name(rec) : id));
      }
    }
  }
}

json_t *agent_info(struct agent *a)
{
  char ts[40];
  format_time(a->started_ms, ts, sizeof ts);
  _cleanup_json_ json_t *all = ctr_load_all(&a->rt);
  size_t running = 0, i;
  json_t *c;
  json_array_foreach(all, i, c) if (ctr_refresh(&a->rt, c) == LIVE_RUNNING) running++;
  json_t *j = json_pack("{s:s, s:s, s:s, s:s, s:s, s:s, s:i, s:i}", "id", a->id, "version",
                        FERRY_VERSION, "root", a->root, "bridge", a->net.bridge, "subnet",
                        a->subnet_str, "started", ts, "containers", (int)json_array_size(all),
                        "running", (int)running);
  if (a->overlay.vni)
    json_object_set_new(j, "overlay", overlay_info(&a->overlay));
  return j;
}

/* ---- images ---- */

int agent_image_import(struct agent *a, const char *path, const char *name, const char *display,
                       json_t **out, struct ferry_err *err)
{
  /* Imports are serialised among themselves, not with the containers. */
  pthread_mutex_lock(&a->img_lock);
  int r = image_import(&a->images, path, name, display, out, err);
  pthread_mutex_unlock(&a->img_lock);
  return r;
}

int agent_registry_opts(json_t *req, struct pull_opts *o, struct ferry_err *err)
{
  *o = (struct pull_opts){.tls_verify = true};
  int r;
  if (!json_is_object(req))
    return FERRY_INVALID(err, "request body must be a JSON object");
  if ((r = json_get_str(req, "authfile", false, &o->authfile, err)) < 0 ||
      (r = json_get_str(req, "cert_dir", false, &o->cert_dir, err)) < 0 ||
      (r = json_get_str(req, "credentials", false, &o->creds, err)) < 0 ||
      (r = json_get_bool(req, "tls_verify", true, &o->tls_verify, err)) < 0)
    return r;
  return 0;
}

int agent_image_pull(struct agent *a, json_t *req, json_t **out, struct ferry_err *err)
{
  const char *ref;
  struct pull_opts o;
  int r;
  if ((r = agent_registry_opts(req, &o, err)) < 0 ||
      (r = json_get_str(req, "reference", true, &ref, err)) < 0)
    return r;
  o.scratch = a->images.tmp_dir;
  /* Imports are serialised among themselves, not with the containers; the
   * registry is waited for outside the lock. */
  r = image_pull(&a->images, ref, &o, &a->img_lock, out, err);
  if (r == 0)
    log_info("agent", "image %s pulled", ref);
  return r;
}

json_t *agent_image_list(struct agent *a)
{
  return image_list(&a->images);
}

int agent_image_inspect(struct agent *a, const char *ref, json_t **out, struct ferry_err *err)
{
  return image_lookup(&a->images, ref, out, err);
}

int agent_image_remove(struct agent *a, const char *ref, struct ferry_err *err)
{
  char **trash = NULL;
  LOCK(a);
  _cleanup_json_ json_t *img = NULL;
  _cleanup_json_ json_t *all = NULL;
  int r = image_lookup(&a->images, ref, &img, err);
  if (r < 0)
    goto out;
  const char *id = json_str_or(img, "id", "");
  all = image_remove_untags(img, ref) ? json_array() : ctr_load_all(&a->rt);
  size_t i;
  json_t *c;
  json_array_foreach(all, i, c)
  {
    if (strcmp(rec_image(c), id) == 0) {
      r = FERRY_CONFLICT(err, "image \"%s\": in use by container \"%s\"", ref,
                         rec_name(c));
      goto out;
    }
  }
  r = image_remove(&a->images, ref, &trash, err);
out:
  UNLOCK(a);
  image_trash_empty(trash); /* the long part, outside the store lock */
  return r;
}

int agent_image_tag(struct agent *a, const char *ref, const char *name, json_t **out,
                    struct ferry_err *err)
{
  _cleanup_free_ char *norm = NULL;
  int r = image_normalize_name(name, &norm, err);
  if (r < 0)
    return r;
  /* names change under the import lock (imports give names too), then the
   * store lock (removals take them away) */
  pthread_mutex_lock(&a->img_lock);
  LOCK(a);
  _cleanup_json_ json_t *img = NULL;
  _cleanup_json_ json_t *other = NULL;
  if ((r = image_lookup(&a->images, ref, &img, err)) < 0)
    goto out;
  const char *id = json_str_or(img, "id", "");
  struct ferry_err e2 = {0};
  if (image_lookup(&a->images, norm, &other, &e2) == 0 && json_is_array(json_object_get(other, "names"))) {
    bool named = false;
    size_t i;
    json_t *n;
    json_array_foreach(json_object_get(other, "names"), i, n) named |= strcmp(json_string_value(n), norm) == 0;
    if (named && strcmp(json_str_or(other, "id", ""), id) != 0) {
      r = FERRY_CONFLICT(err, "image name \"%s\" names another image (%.19s): remove it first "
                              "(ferry rmi %s)", norm, json_str_or(other, "id", ""), norm);
      goto out;
    }
    if (named) {
      *out = json_incref(img); /* already so */
      goto out;
    }
  }
  json_t *names = json_object_get(img, "names");
  if (!json_is_array(names)) {
    names = json_array();
    json_object_set_new(img, "names", names);
  }
  json_array_append_new(names, json_string(norm));
  if ((r = image_save(&a->images, img, err)) == 0)
    *out = json_incref(img);
out:
  UNLOCK(a);
  pthread_mutex_unlock(&a->img_lock);
  return r;
}

/* ---- containers ---- */

int agent_check_idle(json_t *rec, struct ferry_err *err)
{
  enum ctr_op op = rec_op(rec);
  if (op == OP_NONE)
    return 0;
  return FERRY_CONFLICT(err, "container \"%s\" is busy: a %s is in progress",
                        rec_name(rec), ctr_op_name(op));
}

int agent_claim_locked(struct agent *a, json_t *rec, const char *op, bool idle,
                       struct agent_claim **out, struct ferry_err *err)
{
  const char *id = rec_id(rec);
  json_t *held = json_object_get(a->claims, id);
  if (held)
    return FERRY_CONFLICT(err, "container \"%s\" is busy: a %s is in progress",
                          rec_name(rec), json_str_or(held, "what", "?"));
  int r = idle ? agent_check_idle(rec, err) : 0;
  if (r < 0)
    return r;
  struct agent_claim *c = calloc(1, sizeof *c);
  if (!c)
    abort();
  c->a = a;
  c->rec = json_incref(rec);
  c->serial = ++a->claim_serial;
  json_object_set_new(a->claims, id,
                      json_pack("{s:s, s:I}", "what", op, "serial", (json_int_t)c->serial));
  *out = c;
  return 0;
}

void agent_release_locked(struct agent_claim *c)
{
  struct agent *a = c->a;
  const char *id = rec_id(c->rec);
  json_t *held = json_object_get(a->claims, id);
  if (held && (uint64_t)json_integer_value(json_object_get(held, "serial")) == c->serial)
    json_object_del(a->claims, id);
  else /* a bug: a claim ended twice, or another's */
    log_error("agent", "container %s: a claim that no longer holds it was released (the claim "
                       "there stays)", rec_has_name(c->rec) ? rec_name(c->rec) : id);
  json_decref(c->rec);
  free(c);
}

int agent_claim(struct agent *a, const char *ref, const char *op, bool want_running,
                struct agent_claim **out, struct ferry_err *err)
{
  _cleanup_json_ json_t *rec = NULL;
  struct agent_claim *c = NULL;
  LOCK(a);
  int r = ctr_find(&a->rt, ref, &rec, err);
  if (r == 0)
    r = agent_claim_locked(a, rec, op, true, &c, err);
  UNLOCK(a);
  if (r < 0)
    return r;
  if (want_running) {
    enum ctr_live st = ctr_refresh(&a->rt, rec);
    if (st != LIVE_RUNNING) {
      r = FERRY_CONFLICT(err, "container \"%s\" is not running (%s)",
                         (rec_has_name(rec) ? rec_name(rec) : ref), ctr_live_name(st));
      agent_release(c, false);
      return r;
    }
  }
  rec_clear_live(rec);
  *out = c;
  return 0;
}

int agent_claim_marked(struct agent *a, json_t *rec, struct agent_claim **out, struct ferry_err *err)
{
  LOCK(a);
  int r = agent_claim_locked(a, rec, ctr_op_name(rec_op(rec)), false, out, err);
  UNLOCK(a);
  return r;
}

json_t *agent_claim_rec(const struct agent_claim *c)
{
  return c->rec;
}

void agent_release(struct agent_claim *c, bool save)
{
  if (!c)
    return;
  if (save) {
    rec_set_op(c->rec, OP_NONE);
    rec_clear_live(c->rec);
    agent_save_or_log(c->a, c->rec, "the end of an operation");
  }
  struct agent *a = c->a;
  LOCK(a);
  agent_release_locked(c);
  UNLOCK(a);
}

int agent_claim_save(struct agent_claim *c, struct ferry_err *err)
{
  return ctr_save(&c->a->rt, c->rec, err);
}

void agent_save_or_log(struct agent *a, json_t *rec, const char *what)
{
  struct ferry_err err = {0};
  if (ctr_save(&a->rt, rec, &err) < 0)
    log_error("agent", "container %s: cannot record %s: %s (a restart acts on what was "
                       "recorded before)",
              rec_has_name(rec) ? rec_name(rec) : rec_id(rec), what, err.msg);
}

/* A name of 4 or more hex digits reads as an id prefix (ctr_find). */
static bool reads_as_id(const char *s)
{
  size_t n = strlen(s);
  return n >= 4 && strspn(s, "0123456789abcdef") == n;
}

int agent_name_check(struct agent *a, const char *name, struct ferry_err *err)
{
  _cleanup_json_ json_t *all = ctr_load_all(&a->rt);
  size_t i;
  json_t *c;
  json_array_foreach(all, i, c)
  {
    if (strcmp(rec_name(c), name) == 0)
      return FERRY_CONFLICT(err, "container name \"%s\" is already in use on this agent", name);
    if (reads_as_id(name) && strncmp(rec_id(c), name, strlen(name)) == 0)
      return FERRY_CONFLICT(err, "container name \"%s\" is the beginning of the id of container "
                                 "\"%s\": commands would take one for the other",
                            name, rec_name(c));
  }
  return 0;
}

int agent_name_free(struct agent *a, const char *name, struct ferry_err *err)
{
  pthread_mutex_lock(&a->lock);
  int r = agent_name_check(a, name, err);
  pthread_mutex_unlock(&a->lock);
  return r;
}

int agent_copy_fits_locked(struct agent *a, json_t *rec, struct ferry_err *err)
{
  const char *name = rec_name(rec);
  int r = agent_name_check(a, name, err);
  if (r < 0)
    return r; /* the name is taken, or reads as another container's id */
  if ((r = agent_ip_check(a, rec_ip(rec), NULL, err)) < 0)
    return ferry_err_wrap(err, "container \"%s\" keeps its address", name);
  if ((r = agent_ports_taken(a, rec_ports(rec), NULL, name, err)) < 0)
    return ferry_err_wrap(err, "container \"%s\" keeps its published ports", name);
  return 0;
}

int agent_offer_reserve(struct agent *a, json_t *ctr, const char *keep_id, json_t *vols,
                        json_t *layers, json_t **missing, struct ferry_err *err)
{
  size_t i;
  json_t *v;
  int r;
  agent_ports_localize(ctr);
  pthread_mutex_lock(&a->lock);
  if ((r = agent_copy_fits_locked(a, ctr, err)) < 0)
    goto out;
  json_array_foreach(vols, i, v)
  {
    if (agent_volume_exists(a, json_string_value(v))) {
      r = FERRY_CONFLICT(err, "volume \"%s\" exists on this agent already", json_string_value(v));
      goto out;
    }
  }
  /* The container keeps its id here, as podman's restore does. */
  if (keep_id && agent_ctr_id_free(a, keep_id))
    rec_set_id(ctr, keep_id);
  /* pinned from before they are looked at: an image removal cannot slip
   * between */
  agent_layers_pin(a, layers, true);
  *missing = json_array();
  json_array_foreach(layers, i, v) if (!agent_layer_present(a, json_string_value(v)))
      json_array_append(*missing, v);
out:
  pthread_mutex_unlock(&a->lock);
  return r;
}

/* Does a container here have a name that reads as the beginning of id? */
static bool id_shadowed(struct agent *a, const char *id)
{
  _cleanup_json_ json_t *all = ctr_load_all(&a->rt);
  size_t i;
  json_t *c;
  json_array_foreach(all, i, c)
  {
    const char *n = rec_name(c);
    if (reads_as_id(n) && strncmp(id, n, strlen(n)) == 0)
      return true;
  }
  return false;
}

int agent_ip_check(struct agent *a, const char *ip, const char *except_id, struct ferry_err *err)
{
  uint32_t v;
  if (ip_parse(ip, &v) < 0)
    return FERRY_INVALID(err, "address \"%s\" is not an IPv4 address", ip);
  if (!subnet_usable(&a->net.subnet, v))
    return FERRY_INVALID(err, "address %s is not a usable host address of this agent's subnet %s",
                         ip, a->subnet_str);
  _cleanup_json_ json_t *all = ctr_load_all(&a->rt);
  size_t i;
  json_t *c;
  json_array_foreach(all, i, c)
  {
    if (except_id && strcmp(rec_id(c), except_id) == 0)
      continue;
    if (strcmp(rec_ip(c), ip) == 0)
      return FERRY_CONFLICT(err, "address %s is in use by container \"%s\"", ip,
                            rec_name(c));
  }
  return 0;
}

/* Addresses asked for on a shared segment before one is given out, and how
 * long each probe waits for an answer. */
#define IP_PROBE_TRIES 8
#define IP_PROBE_WAIT_MS 100

/* The lowest address of the subnet that no container here has and that is
 * not in skip (addresses found taken on the segment). Store lock held. */
static int alloc_ip(struct agent *a, const uint32_t *skip, size_t nskip, char *buf, size_t len,
                    struct ferry_err *err)
{
  _cleanup_json_ json_t *all = ctr_load_all(&a->rt);
  size_t n = json_array_size(all), i;
  uint32_t *used = calloc(n + nskip + 1, sizeof *used);
  if (!used)
    abort();
  json_t *c;
  json_array_foreach(all, i, c) ip_parse(rec_ip(c), &used[i]);
  for (i = 0; i < nskip; i++)
    used[n + i] = skip[i];
  uint32_t ip = subnet_alloc(&a->net.subnet, used, n + nskip);
  free(used);
  if (!ip)
    return ferry_err_set(err, -ENOSPC, FERRY_E_CONFLICT, "subnet %s: no free address left",
                         a->subnet_str);
  ip_format(ip, buf, len);
  return 0;
}

/* "name:/dest" -> {"name", "destination"} */
static int parse_volumes(struct agent *a, json_t *req, json_t **out, json_t **binds_out,
                         struct ferry_err *err)
{
  _cleanup_json_ json_t *vols = json_array();
  _cleanup_json_ json_t *binds = json_array();
  json_t *v = json_object_get(req, "volumes");
  if (v && !json_is_array(v))
    return FERRY_INVALID(err, "field \"volumes\" must be an array of \"VOLUME:/path\"");
  size_t i;
  json_t *e;
  json_array_foreach(v, i, e)
  {
    /* podman's VOLUME:/path[:OPTIONS], OPTIONS a comma list of ro, rw
     * (and z, Z: SELinux relabelling, which has nothing to do here) */
    const char *s = json_string_value(e);
    const char *colon = s ? strchr(s, ':') : NULL;
    if (!colon)
      return FERRY_INVALID(err, "volume \"%s\": expected VOLUME:/path[:ro]", s ? s : "?");
    _cleanup_free_ char *name = strndup(s, (size_t)(colon - s));
    _cleanup_free_ char *dest = xstrdup(colon + 1);
    bool ro = false;
    char *opts = strchr(dest, ':');
    if (opts) {
      *opts++ = '\0';
      char *save = NULL;
      for (char *o = strtok_r(opts, ",", &save); o; o = strtok_r(NULL, ",", &save)) {
        if (strcmp(o, "ro") == 0)
          ro = true;
        else if (strcmp(o, "rw") == 0)
          ro = false;
        else if (strcmp(o, "z") != 0 && strcmp(o, "Z") != 0)
          return FERRY_INVALID(err, "volume \"%s\": unknown option \"%s\" (known: ro, rw)", s, o);
      }
    }
    int r;
    if (name[0] == '/') {
      /* a bind mount of a host path: what it resolves to now is what is
       * mounted (checked again at each start); never ferry's own store */
      _cleanup_free_ char *real = realpath(name, NULL);
      if (!real)
        return ferry_err_set(err, -ENOENT, FERRY_E_INVALID, "bind mount \"%s\": %s", name,
                             strerror(errno));
      size_t rl = strlen(a->root);
      if (strncmp(real, a->root, rl) == 0 && (real[rl] == '/' || real[rl] == '\0'))
        return FERRY_INVALID(err, "bind mount \"%s\": inside the agent's store (%s)", name, a->root);
      if ((r = volume_dest_check(dest, err)) < 0)
        return r;
      json_t *bj = json_pack("{s:s, s:s}", "source", real, "destination", dest);
      if (ro)
        json_object_set_new(bj, "readonly", json_true());
      json_array_append_new(binds, bj);
      continue;
    }
    if ((r = validate_name("volume", name, err)) < 0 || (r = volume_dest_check(dest, err)) < 0)
      return r;
    json_t *vj = json_pack("{s:s, s:s}", "name", name, "destination", dest);
    if (ro)
      json_object_set_new(vj, "readonly", json_true());
    json_array_append_new(vols, vj);
  }
  *out = json_incref(vols);
  *binds_out = json_incref(binds);
  return 0;
}

/* "tmpfs": ["/path[:OPTIONS]"] -> [{"destination", "options"}]; no two
 * mounts (volume, bind mount or tmpfs) at one destination. */
static int parse_tmpfs(json_t *req, json_t *vols, json_t *binds, json_t **out,
                       struct ferry_err *err)
{
  _cleanup_json_ json_t *tmps = json_array();
  json_t *v = json_object_get(req, "tmpfs");
  if (v && (!json_is_array(v) || json_array_size(v) > 64))
    return FERRY_INVALID(err, "field \"tmpfs\" must be an array of \"/path[:OPTIONS]\" (at most 64)");
  size_t i;
  json_t *e;
  json_array_foreach(v, i, e)
  {
    json_t *t = NULL;
    int r = tmpfs_parse(json_string_value(e), &t, err);
    if (r < 0)
      return r;
    json_array_append_new(tmps, t);
  }
  json_t *lists[] = {vols, binds, tmps};
  for (size_t a = 0; a < 3; a++) {
    json_t *x;
    json_array_foreach(lists[a], i, x)
    {
      const char *d = json_str_or(x, "destination", "");
      for (size_t b = a; b < 3; b++) {
        size_t j;
        json_t *y;
        json_array_foreach(lists[b], j, y)
        {
          if ((b > a || j > i) && strcmp(d, json_str_or(y, "destination", "")) == 0)
            return FERRY_INVALID(err, "two mounts at %s", d);
        }
      }
    }
  }
  *out = json_incref(tmps);
  return 0;
}

static void env_set(json_t *env, const char *kv)
{
  const char *eq = strchr(kv, '=');
  size_t klen = eq ? (size_t)(eq - kv) : strlen(kv);
  size_t i;
  json_t *e;
  json_array_foreach(env, i, e)
  {
    const char *s = json_string_value(e);
    if (strncmp(s, kv, klen) == 0 && (s[klen] == '=' || s[klen] == '\0')) {
      json_array_set_new(env, i, json_string(kv));
      return;
    }
  }
  json_array_append_new(env, json_string(kv));
}

/* CRIU's options for this container (the spec's org.criu.config names this
 * file; runc hands it to CRIU on every checkpoint and restore). ferry keeps
 * the container off the network itself whenever CRIU works on it (the veth
 * is down from before the freeze until the restored sockets are ready), so
 * CRIU's own network lock, which costs ~90 ms of iptables runs inside the
 * freeze, is skipped. A connection whose handshake completed in the instant
 * before the link went down, not yet accepted, would fail the whole dump
 * ("in-flight connection"): CRIU leaves it out instead, and only that
 * client starts again. CRIU leaves the cgroups alone (~10 ms of each dump
 * on cgroup v1): runc makes the restored container's cgroups and applies
 * its limits itself before CRIU forks the tasks into them. */
static int write_criu_conf(struct agent *a, const char *id, struct ferry_err *err)
{
  _cleanup_free_ char *p = ctr_path(&a->rt, id, CTR_CRIU_CONF);
  static const char conf[] = "# written by ferryd: ferry takes the container off the network itself\n"
                             "network-lock skip\n"
                             "skip-in-flight\n"
                             "manage-cgroups=ignore\n";
  return write_file_atomic(p, conf, sizeof conf - 1, 0644, err);
}

int agent_ctr_materialize(struct agent *a, json_t *rec, json_t *img, bool net_up,
                          struct ferry_err *err)
{
  _cleanup_json_ json_t *spec = NULL;
  _cleanup_free_ char *cfg = NULL;
  const char *id = rec_id(rec);
  _cleanup_free_ char *rootfs = ctr_path(&a->rt, id, "bundle/rootfs");
  _cleanup_free_ char *upper = ctr_path(&a->rt, id, "upper");
  _cleanup_free_ char *work = ctr_path(&a->rt, id, "work");
  int r;
  if ((r = mkdir_p(rootfs, 0755, err)) < 0 || (r = mkdir_p(upper, 0755, err)) < 0 ||
      (r = mkdir_p(work, 0700, err)) < 0)
    return r;
  if (!path_is_mountpoint(rootfs)) {
    _cleanup_strv_ char **lowers = strv_new();
    size_t i;
    json_t *l;
    json_array_foreach(json_object_get(img, "layers"), i, l)
    {
      char *d = image_layer_dir(&a->images, json_string_value(l));
      if (!path_exists(d)) {
        r = FERRY_NOTFOUND(err, "image %s: layer %s is missing from the store",
                           json_str_or(img, "id", ""), json_string_value(l));
        free(d);
        return r;
      }
      strv_push_take(&lowers, d);
    }
    if ((r = overlay_mount(lowers, upper, work, rootfs, err)) < 0)
      return r;
  }
  uint32_t uid, gid;
  if (!rec_ids(rec, &uid, &gid)) {
    if ((r = spec_resolve_user(rootfs, rec_user(rec), &uid, &gid, err)) < 0)
      goto fail;
    rec_set_ids(rec, uid, gid);
  }
  spec = NULL;
  if ((r = spec_build(&a->rt, rec, &spec, err)) < 0)
    goto fail;
  cfg = ctr_path(&a->rt, id, "bundle/config.json");
  if ((r = json_save_atomic(cfg, spec, err)) < 0 || (r = write_criu_conf(a, id, err)) < 0)
    goto fail;
  const char *netns = rec_netns(rec);
  if (!net_netns_exists(netns)) {
    if ((r = net_ctr_setup(&a->net, netns, rec_veth(rec), rec_ip(rec),
                           rec_mac(rec), net_up, err)) < 0)
      goto fail;
  } else if (net_up && (r = net_link_set(rec_veth(rec), true, err)) < 0) {
    goto fail;
  }
  return 0;
fail:
  overlay_umount(rootfs, NULL);
  return r;
}

void agent_restored_record(json_t *rec, const char *id, const char *local)
{
  char netns[32], veth[16];
  net_names(local, netns, sizeof netns, veth, sizeof veth);
  rec_set_id(rec, id);
  rec_set_local_id(rec, strcmp(local, id) != 0 ? local : NULL);
  rec_set_netns(rec, netns);
  rec_set_veth(rec, veth);
  rec_set_state(rec, CS_CREATED);
  rec_set_op(rec, OP_RESTORE);
  rec_clear_live(rec);
  rec_clear_exit(rec);
  rec_clear_migration(rec);
  rec_set_restored_from(rec, NULL);
}

void agent_ctr_unmaterialize(struct agent *a, json_t *rec)
{
  const char *id = rec_id(rec);
  _cleanup_free_ char *rootfs = ctr_path(&a->rt, id, "bundle/rootfs");
  overlay_umount(rootfs, NULL);
  if (rec_has_veth(rec))
    agent_hold_drop(a, rec_veth(rec)); /* a restored copy's, never committed */
  net_ctr_teardown((rec_has_netns(rec) ? rec_netns(rec) : NULL), (rec_has_veth(rec) ? rec_veth(rec) : NULL), NULL);
}

static int launch(struct agent *a, json_t *rec, struct ferry_err *err)
{
  const char *id = rec_id(rec);
  _cleanup_json_ json_t *img = NULL;
  int r = image_lookup(&a->images, rec_image(rec), &img, err);
  if (r < 0)
    return ferry_err_wrap(err, "container \"%s\"", rec_name(rec));
  runc_delete(&a->rt, id, true, NULL); /* a stopped runc container of an earlier run */
  if ((r = agent_ctr_materialize(a, rec, img, true, err)) < 0)
    return ferry_err_wrap(err, "container \"%s\"", rec_name(rec));
  int pid = 0;
  if ((r = runc_launch(&a->rt, rec, NULL, &pid, err)) < 0)
    return ferry_err_wrap(err, "container \"%s\"", rec_name(rec));
  if ((r = ferry_fault("run-launched", err)) < 0) /* runs, its record not yet "running" */
    return r;
  char ts[40];
  format_time(now_wall_ms(), ts, sizeof ts);
  rec_set_state(rec, CS_RUNNING);
  rec_set_started_at(rec, ts);
  rec_clear_exit(rec);
  r = ctr_save(&a->rt, rec, err);
  log_info("agent", "container %s (%.12s) started, pid %d", rec_name(rec), id, pid);
  return r;
}

int agent_ctr_create(struct agent *a, json_t *req, json_t **out, struct ferry_err *err)
{
  _cleanup_free_ char *hostenv = NULL;
  const char *name, *image, *ip, *workdir, *user;
  bool start, autoremove = false, tty = false, in = false;
  _cleanup_strv_ char **cmd = NULL;
  _cleanup_strv_ char **env = NULL;
  _cleanup_json_ json_t *vols = NULL;
  _cleanup_json_ json_t *binds = NULL;
  _cleanup_json_ json_t *tmps = NULL;
  _cleanup_json_ json_t *ports = NULL;
  struct agent_claim *claim = NULL;
  int r;
  if (!json_is_object(req))
    return FERRY_INVALID(err, "request body must be a JSON object");
  if ((r = ports_check(json_object_get(req, "ports"), &ports, err)) < 0)
    return r;
  if ((r = json_get_str(req, "name", false, &name, err)) < 0 ||
      (r = json_get_str(req, "image", true, &image, err)) < 0 ||
      (r = json_get_str(req, "ip", false, &ip, err)) < 0 ||
      (r = json_get_str(req, "workdir", false, &workdir, err)) < 0 ||
      (r = json_get_str(req, "user", false, &user, err)) < 0 ||
      (r = json_get_bool(req, "start", false, &start, err)) < 0 ||
      (r = json_get_bool(req, "remove", false, &autoremove, err)) < 0 ||
      (r = json_get_bool(req, "tty", false, &tty, err)) < 0 ||
      (r = json_get_bool(req, "stdin", false, &in, err)) < 0 ||
      (r = json_get_strv(req, "cmd", &cmd, err)) < 0 ||
      (r = json_get_strv(req, "env", &env, err)) < 0 || (r = parse_volumes(a, req, &vols, &binds, err)) < 0 ||
      (r = parse_tmpfs(req, vols, binds, &tmps, err)) < 0)
    return r;
  if (name && (r = validate_name("container", name, err)) < 0)
    return r;
  for (size_t i = 0; env && env[i]; i++)
    if (!strchr(env[i], '=') || env[i][0] == '=')
      return FERRY_INVALID(err, "environment entry \"%s\": expected KEY=VALUE", env[i]);
  if (workdir && workdir[0] != '/')
    return FERRY_INVALID(err, "working directory \"%s\" must be absolute", workdir);

  /* Where the bridge leads to other hosts, other agents may give out
   * addresses of the same subnet: a candidate is asked for on the segment
   * first (an ARP probe, outside the store lock), and one that answers is
   * skipped. */
  uint32_t taken[IP_PROBE_TRIES];
  size_t ntaken = 0;
  char probed[16] = "";
  if (!ip && net_segment_shared(a->net.bridge)) {
    for (int t = 0; t < IP_PROBE_TRIES; t++) {
      char cand[16];
      LOCK(a);
      r = alloc_ip(a, taken, ntaken, cand, sizeof cand, err);
      UNLOCK(a);
      if (r < 0)
        return r;
      struct ferry_err pe = {0};
      int used = net_addr_in_use(a->net.bridge, cand, IP_PROBE_WAIT_MS, &pe);
      if (used < 0)
        log_warn("agent", "%s (address given without asking the segment)", pe.msg);
      if (used <= 0) {
        snprintf(probed, sizeof probed, "%s", cand);
        break;
      }
      log_info("agent", "address %s answers on the segment (another host has it): not given out",
               cand);
      ip_parse(cand, &taken[ntaken++]);
    }
    if (!probed[0])
      return ferry_err_set(err, -EADDRINUSE, FERRY_E_CONFLICT,
                           "the %d lowest free addresses of subnet %s are in use on the segment: "
                           "give one with --ip", IP_PROBE_TRIES, a->subnet_str);
  }

  LOCK(a);
  _cleanup_json_ json_t *img = NULL;
  _cleanup_json_ json_t *rec = NULL;
  _cleanup_strv_ char **made_vols = strv_new();
  char genname[32];
  if (!name) {
    char hx[9];
    random_hex(hx, 8);
    snprintf(genname, sizeof genname, "ferry-%s", hx);
    name = genname;
  }
  if ((r = agent_name_check(a, name, err)) < 0)
    goto out;
  if ((r = agent_ports_taken(a, ports, NULL, NULL, err)) < 0)
    goto out;
  if ((r = image_lookup(&a->images, image, &img, err)) < 0)
    goto out;
  json_t *icfg = json_object_get(img, "config");
  json_t *args = json_array();
  json_t *ep = json_object_get(icfg, "Entrypoint");
  size_t i;
  json_t *e;
  json_array_foreach(ep, i, e) json_array_append(args, e);
  if (cmd && cmd[0]) {
    for (i = 0; cmd[i]; i++)
      json_array_append_new(args, json_string(cmd[i]));
  } else {
    json_array_foreach(json_object_get(icfg, "Cmd"), i, e) json_array_append(args, e);
  }
  if (json_array_size(args) == 0) {
    json_decref(args);
    r = FERRY_INVALID(err, "image \"%s\" has no Entrypoint or Cmd: give a command", image);
    goto out;
  }
  json_t *envj = json_array();
  bool have_path = false;
  json_array_foreach(json_object_get(icfg, "Env"), i, e) if (json_is_string(e))
  {
    env_set(envj, json_string_value(e));
    if (strncmp(json_string_value(e), "PATH=", 5) == 0)
      have_path = true;
  }
  if (!have_path)
    env_set(envj, "PATH=" FERRY_DEFAULT_PATH);
  hostenv = xasprintf("HOSTNAME=%s", name);
  env_set(envj, hostenv);
  for (i = 0; env && env[i]; i++)
    env_set(envj, env[i]);

  char ipbuf[16];
  if (ip) {
    if ((r = agent_ip_check(a, ip, NULL, err)) < 0) {
      json_decref(args);
      json_decref(envj);
      goto out;
    }
    snprintf(ipbuf, sizeof ipbuf, "%s", ip);
  } else if (probed[0] && agent_ip_check(a, probed, NULL, NULL) == 0) {
    snprintf(ipbuf, sizeof ipbuf, "%s", probed);
  } else if ((r = alloc_ip(a, taken, ntaken, ipbuf, sizeof ipbuf, err)) < 0) {
    json_decref(args);
    json_decref(envj);
    goto out;
  }
  uint32_t ipv;
  ip_parse(ipbuf, &ipv);
  char mac[18], netns[32], veth[16], id[65];
  mac_for_ip(ipv, mac, sizeof mac);
  for (int tries = 0; tries < 16; tries++) { /* an id no name here reads as */
    random_hex(id, 64);
    if (!id_shadowed(a, id))
      break;
  }
  net_names(id, netns, sizeof netns, veth, sizeof veth);
  char ts[40];
  format_time(now_wall_ms(), ts, sizeof ts);
  const char *iname = json_string_value(json_array_get(json_object_get(img, "names"), 0));
  rec = json_object();
  rec_set_id(rec, id);
  rec_set_name(rec, name);
  rec_set_image(rec, json_str_or(img, "id", ""));
  rec_set_image_name(rec, iname ? iname : image);
  rec_set_args(rec, args);
  rec_set_env(rec, envj);
  rec_set_cwd(rec, workdir                                    ? workdir
                   : json_str_or(icfg, "WorkingDir", "/")[0] ? json_str_or(icfg, "WorkingDir", "/")
                                                             : "/");
  rec_set_user(rec, user ? user : json_str_or(icfg, "User", ""));
  rec_set_volumes(rec, vols);
  rec_set_binds(rec, binds);
  rec_set_tmpfs(rec, tmps);
  rec_set_ports(rec, ports);
  rec_set_ip(rec, ipbuf);
  rec_set_mac(rec, mac);
  rec_set_netns(rec, netns);
  rec_set_veth(rec, veth);
  rec_set_created(rec, ts);
  rec_set_state(rec, CS_CREATED);
  rec_set_autoremove(rec, autoremove);
  rec_set_stdio(rec, tty, in);

  json_array_foreach(vols, i, e)
  {
    const char *vn = json_str_or(e, "name", "");
    _cleanup_json_ json_t *vj = NULL;
    if (volume_get(&a->rt, vn, &vj, NULL) < 0) {
      if ((r = volume_create(&a->rt, vn, false, NULL, err)) < 0)
        goto undo_locked;
      strv_push(&made_vols, vn);
    }
  }
  /* The name and the address are taken once the record is written; the
   * rest happens outside the store lock, the container claimed. */
  if ((r = agent_claim_locked(a, rec, "create", false, &claim, err)) < 0 ||
      (r = ctr_save(&a->rt, rec, err)) < 0)
    goto undo_locked;
  UNLOCK(a);
  if ((r = ferry_fault("run-created", err)) < 0) /* a record, nothing made yet */
    goto undo;
  if ((r = agent_ctr_materialize(a, rec, img, true, err)) < 0) {
    ferry_err_wrap(err, "container \"%s\"", name);
    goto undo;
  }
  if ((r = ctr_save(&a->rt, rec, err)) < 0)
    goto undo;
  if (json_array_size(ports) && (r = agent_ports_sync(a, err)) < 0) {
    ferry_err_wrap(err, "container \"%s\": publish ports", name);
    goto undo;
  }
  if (start && (r = launch(a, rec, err)) < 0)
    goto undo;
  agent_release(claim, false);
  ctr_refresh(&a->rt, rec);
  *out = json_incref(rec);
  return 0;
undo:
  agent_ctr_unmaterialize(a, rec);
  LOCK(a);
undo_locked:
  if (claim)
    agent_release_locked(claim);
  {
    _cleanup_free_ char *dir = ctr_path(&a->rt, id, NULL);
    rm_rf(dir, NULL);
  }
  if (json_array_size(ports)) {
    UNLOCK(a);
    agent_ports_sync(a, NULL);
    LOCK(a);
  }
  for (i = 0; made_vols[i]; i++)
    volume_remove(&a->rt, made_vols[i], NULL);
out:
  UNLOCK(a);
  return r;
}

int agent_ctr_start(struct agent *a, const char *ref, json_t **out, struct ferry_err *err)
{
  struct agent_claim *c = NULL;
  int r = agent_claim(a, ref, "start", false, &c, err);
  if (r < 0)
    return r;
  json_t *rec = agent_claim_rec(c);
  enum ctr_live st = ctr_refresh(&a->rt, rec);
  if (ctr_live_up(st)) {
    r = FERRY_CONFLICT(err, "container \"%s\" is already running", ref);
    goto out;
  }
  rec_clear_live(rec);
  if ((r = launch(a, rec, err)) < 0)
    goto out;
  ctr_refresh(&a->rt, rec);
  *out = json_incref(rec);
out:
  agent_release(c, false);
  return r;
}

/* Caller owns the container. */
static int stop_owned(struct agent *a, json_t *rec, int timeout_s, int sig, struct ferry_err *err)
{
  const char *id = rec_id(rec);
  enum ctr_live st = ctr_refresh(&a->rt, rec);
  if (st == LIVE_PAUSED)
    runc_simple(&a->rt, "resume", id, NULL);
  if (ctr_live_up(st)) {
    int r = runc_signal(&a->rt, id, sig, false, err);
    if (r < 0 && sig != SIGKILL)
      return ferry_err_wrap(err, "container \"%s\"", rec_name(rec));
    if (!ctr_wait_exit(&a->rt, id, sig == SIGKILL ? 5000 : timeout_s * 1000)) {
      runc_signal(&a->rt, id, SIGKILL, true, NULL);
      if (!ctr_wait_exit(&a->rt, id, 10000))
        return FERRY_INTERNAL(err, "container \"%s\": did not exit after SIGKILL",
                              rec_name(rec));
    }
  }
  runc_delete(&a->rt, id, true, NULL);
  if (rec_state(rec) == CS_RUNNING) {
    rec_set_state(rec, CS_EXITED);
    rec_clear_live(rec);
    rec_clear_exit(rec);
    ctr_refresh(&a->rt, rec);
    rec_clear_live(rec);
    return ctr_save(&a->rt, rec, err);
  }
  return 0;
}

int agent_ctr_stop(struct agent *a, const char *ref, int timeout_s, json_t **out,
                   struct ferry_err *err)
{
  if (timeout_s > 3600)
    return FERRY_INVALID(err, "stop timeout %d s is longer than an hour", timeout_s);
  struct agent_claim *c = NULL;
  int r = agent_claim(a, ref, "stop", false, &c, err);
  if (r < 0)
    return r;
  json_t *rec = agent_claim_rec(c);
  r = stop_owned(a, rec, timeout_s >= 0 ? timeout_s : a->rt.stop_timeout_s, SIGTERM, err);
  if (r == 0) {
    ctr_refresh(&a->rt, rec);
    *out = json_incref(rec);
  }
  agent_release(c, false);
  return r;
}

int agent_ctr_kill(struct agent *a, const char *ref, int sig, json_t **out, struct ferry_err *err)
{
  if (sig <= 0 || sig >= 65)
    return FERRY_INVALID(err, "signal %d is not a valid signal number", sig);
  struct agent_claim *c = NULL;
  int r = agent_claim(a, ref, "kill", false, &c, err);
  if (r < 0)
    return r;
  json_t *rec = agent_claim_rec(c);
  enum ctr_live st = ctr_refresh(&a->rt, rec);
  if (!ctr_live_up(st)) {
    r = FERRY_CONFLICT(err, "container \"%s\" is not running", ref);
    goto out;
  }
  if ((r = runc_signal(&a->rt, rec_id(rec), sig, false, err)) < 0)
    goto out;
  if (sig == SIGKILL)
    ctr_wait_exit(&a->rt, rec_id(rec), 5000);
  ctr_refresh(&a->rt, rec);
  *out = json_incref(rec);
out:
  agent_release(c, false);
  return r;
}

int agent_ctr_destroy(struct agent *a, json_t *rec, bool force, struct ferry_err *err)
{
  const char *id = rec_id(rec);
  enum ctr_live st = ctr_refresh(&a->rt, rec);
  if (ctr_live_up(st)) {
    if (!force)
      return FERRY_CONFLICT(err, "container \"%s\" is running: stop it first or force removal",
                            rec_name(rec));
    int r = stop_owned(a, rec, 0, SIGKILL, err);
    if (r < 0)
      return r;
  }
  runc_delete(&a->rt, id, true, NULL);
  agent_ctr_unmaterialize(a, rec);
  _cleanup_free_ char *dir = ctr_path(&a->rt, id, NULL);
  _cleanup_free_ char *rootfs = ctr_path(&a->rt, id, "bundle/rootfs");
  if (path_is_mountpoint(rootfs))
    return FERRY_INTERNAL(err, "container \"%s\": rootfs is still mounted", rec_name(rec));
  int r = rm_rf(dir, err);
  if (json_array_size(rec_ports(rec)))
    agent_ports_sync(a, NULL); /* its host ports are free again */
  return r;
}

void agent_autoremove_tick(struct agent *a)
{
  _cleanup_json_ json_t *all = ctr_load_all(&a->rt);
  size_t i;
  json_t *rec;
  json_array_foreach(all, i, rec)
  {
    if (!rec_autoremove(rec) || rec_has_migration(rec) || rec_op(rec) != OP_NONE)
      continue;
    enum ctr_state st = rec_state(rec);
    if (st == CS_RUNNING) {
      /* the shim writes the exit file when the container ends: a stat,
       * not a runc run, for each of them every second */
      _cleanup_free_ char *ef = ctr_path(&a->rt, rec_id(rec), "exit.json");
      if (!path_exists(ef) || ctr_refresh(&a->rt, rec) != LIVE_EXITED)
        continue;
    } else if (st != CS_EXITED) {
      continue;
    }
    struct ferry_err e = {0};
    if (agent_ctr_remove(a, rec_id(rec), false, &e) < 0 && e.klass != FERRY_E_NOTFOUND &&
        e.klass != FERRY_E_CONFLICT)
      log_warn("agent", "container %s (--rm): %s", rec_name(rec), e.msg);
  }
}

int agent_ctr_remove(struct agent *a, const char *ref, bool force, struct ferry_err *err)
{
  struct agent_claim *c = NULL;
  int r = agent_claim(a, ref, "removal", false, &c, err);
  if (r < 0)
    return r;
  json_t *rec = agent_claim_rec(c);
  r = agent_ctr_destroy(a, rec, force, err);
  if (r == 0)
    log_info("agent", "container %s removed", rec_name(rec));
  agent_release(c, false);
  return r;
}

/* Lists and looks read the store without its lock: records are replaced
 * atomically, and the live status comes from runc. */
/* A record as the API shows it: its "state" is what the container is now
 * (the live status), not what the agent last recorded of it (an exited
 * container showed "state": "running" beside "status": "exited"). */
static void ctr_present(json_t *rec)
{
  json_t *st = json_object_get(rec, "status");
  if (json_is_string(st))
    json_object_set(rec, "state", st);
}

json_t *agent_ctr_list(struct agent *a, bool all)
{
  json_t *list = ctr_load_all(&a->rt);
  json_t *res = json_array();
  size_t i;
  json_t *c;
  json_array_foreach(list, i, c)
  {
    enum ctr_live st = ctr_refresh(&a->rt, c);
    if (all || ctr_live_up(st)) {
      ctr_present(c);
      json_array_append(res, c);
    }
  }
  json_decref(list);
  return res;
}

int agent_ctr_inspect(struct agent *a, const char *ref, json_t **out, struct ferry_err *err)
{
  int r = ctr_find(&a->rt, ref, out, err);
  if (r == 0) {
    ctr_refresh(&a->rt, *out);
    ctr_present(*out);
  }
  return r;
}

int agent_ctr_top(struct agent *a, const char *ref, json_t **out, struct ferry_err *err)
{
  _cleanup_json_ json_t *rec = NULL;
  int r = ctr_find(&a->rt, ref, &rec, err);
  if (r < 0)
    return r;
  enum ctr_live st = ctr_refresh(&a->rt, rec);
  if (!ctr_live_up(st))
    return FERRY_CONFLICT(err, "container \"%s\" is not running (%s)", ref, ctr_live_name(st));
  *out = ctr_processes(&a->rt, rec_instance(rec));
  /* user names from the container's own /etc/passwd, read inside its root */
  _cleanup_free_ char *rootfs = ctr_path(&a->rt, rec_id(rec), "bundle/rootfs");
  int fd = open_in_root(rootfs, "/etc/passwd", O_RDONLY, NULL);
  _cleanup_fclose_ FILE *pw = fd >= 0 ? fdopen(fd, "re") : NULL;
  if (!pw && fd >= 0)
    close(fd);
  json_t *names = json_object();
  char line[512];
  for (int n = 0; pw && n < 10000 && fgets(line, sizeof line, pw); n++) {
    char *c1 = strchr(line, ':'), *c2 = c1 ? strchr(c1 + 1, ':') : NULL;
    if (!c1 || !c2 || c1 == line)
      continue;
    *c1 = '\0';
    long uid = strtol(c2 + 1, NULL, 10);
    char key[24];
    snprintf(key, sizeof key, "%ld", uid);
    if (!json_object_get(names, key))
      json_object_set_new(names, key, json_string(line));
  }
  size_t i;
  json_t *p;
  json_array_foreach(*out, i, p)
  {
    char key[24];
    snprintf(key, sizeof key, "%lld", (long long)json_integer_value(json_object_get(p, "uid")));
    json_t *nm = json_object_get(names, key);
    json_object_set_new(p, "user", json_string(nm ? json_string_value(nm) : key));
  }
  json_decref(names);
  return 0;
}

int agent_ctr_stats(struct agent *a, const char *ref, json_t **out, struct ferry_err *err)
{
  _cleanup_json_ json_t *rec = NULL;
  int r = ctr_find(&a->rt, ref, &rec, err);
  if (r < 0)
    return r;
  enum ctr_live st = ctr_refresh(&a->rt, rec);
  if (!ctr_live_up(st))
    return FERRY_CONFLICT(err, "container \"%s\" is not running (%s)", ref, ctr_live_name(st));
  *out = ctr_stats(&a->rt, rec_instance(rec), (int)json_integer_value(json_object_get(rec, "pid")));
  json_object_set_new(*out, "id", json_string(rec_id(rec)));
  json_object_set_new(*out, "name", json_string(rec_has_name(rec) ? rec_name(rec) : rec_id(rec)));
  return 0;
}

int agent_ctr_logs(struct agent *a, const char *ref, uint64_t offset, char **out, size_t *len,
                   struct ferry_err *err)
{
  _cleanup_json_ json_t *rec = NULL;
  int r = ctr_find(&a->rt, ref, &rec, err);
  if (r < 0)
    return r;
  _cleanup_free_ char *p = ctr_path(&a->rt, rec_id(rec), "ctr.log");
  *out = NULL;
  *len = 0;
  int fd = open(p, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
  struct stat st;
  if (fd < 0 || fstat(fd, &st) < 0) {
    if (fd >= 0)
      close(fd);
    *out = xstrdup("");
    return 0;
  }
  /* An offset past the end: the log was rotated since, start again. */
  if (offset > (uint64_t)st.st_size)
    offset = 0;
  uint64_t n = (uint64_t)st.st_size - offset;
  if (n > CTR_LOG_CHUNK)
    n = CTR_LOG_CHUNK;
  char *buf = malloc(n + 1);
  if (!buf)
    abort();
  ssize_t got = n ? pread(fd, buf, n, (off_t)offset) : 0;
  close(fd);
  if (got < 0) {
    free(buf);
    return ferry_err_sys(err, -errno, "read %s", p);
  }
  buf[got] = 0;
  *out = buf;
  *len = (size_t)got;
  return 0;
}

/* The value of NAME in a KEY=VALUE list (strv or json array), or NULL. */
static const char *env_get(char *const *strv, json_t *arr, const char *name)
{
  size_t n = strlen(name);
  for (size_t i = 0; strv && strv[i]; i++)
    if (strncmp(strv[i], name, n) == 0 && strv[i][n] == '=')
      return strv[i] + n + 1;
  size_t i;
  json_t *e;
  json_array_foreach(arr, i, e)
  {
    const char *s = json_string_value(e);
    if (s && strncmp(s, name, n) == 0 && s[n] == '=')
      return s + n + 1;
  }
  return NULL;
}

/* podman's exit codes for a command that cannot be run: 127 when the
 * container has no such file (looked up as it would: its PATH, its working
 * directory, resolved inside its root), 126 when what it has is not an
 * executable file; 0 otherwise (runc then runs it). */
static int exec_lookup(struct agent *a, json_t *rec, const char *cmd0, char *const *env)
{
  _cleanup_free_ char *rootfs = ctr_path(&a->rt, rec_id(rec), "bundle/rootfs");
  const char *path = env_get(env, rec_env(rec), "PATH");
  if (!path)
    path = FERRY_DEFAULT_PATH;
  const char *cwd = rec_has_cwd(rec) ? rec_cwd(rec) : "/";
  bool found = false;
  const char *p = path;
  for (int k = 0; k < 64; k++) {
    _cleanup_free_ char *cand = NULL;
    if (strchr(cmd0, '/')) {
      cand = cmd0[0] == '/' ? xstrdup(cmd0) : xasprintf("%s/%s", cwd, cmd0);
    } else {
      size_t n = strcspn(p, ":");
      cand = xasprintf("%.*s/%s", (int)n, n ? p : ".", cmd0);
      p += n + (p[n] == ':');
    }
    int fd = open_in_root(rootfs, cand, O_PATH, NULL);
    if (fd >= 0) {
      struct stat st;
      bool ok = fstat(fd, &st) == 0 && S_ISREG(st.st_mode) && (st.st_mode & 0111);
      close(fd);
      if (ok)
        return 0;
      found = true;
    }
    if (strchr(cmd0, '/') || !*p)
      break;
  }
  return found ? 126 : 127;
}

/* An exec request checked: its command and environment, the container's
 * record (running), and 126/127 with podman's message when the command
 * cannot be run there (then nothing is started). */
int agent_exec_prepare(struct agent *a, const char *ref, json_t *req, char ***cmd, char ***env,
                        json_t **rec, int *code, char **msg, struct ferry_err *err)
{
  int r;
  if (!json_is_object(req))
    return FERRY_INVALID(err, "request body must be a JSON object");
  if ((r = json_get_strv(req, "cmd", cmd, err)) < 0 || (r = json_get_strv(req, "env", env, err)) < 0)
    return r;
  if (!*cmd || !(*cmd)[0])
    return FERRY_INVALID(err, "exec: field \"cmd\" must name a command");
  if ((r = ctr_find(&a->rt, ref, rec, err)) < 0)
    return r;
  enum ctr_live st = ctr_refresh(&a->rt, *rec);
  if (st != LIVE_RUNNING)
    return FERRY_CONFLICT(err, "container \"%s\" is not running (%s)", ref, ctr_live_name(st));
  *code = exec_lookup(a, *rec, (*cmd)[0], *env);
  if (*code)
    *msg = xasprintf("Error: %s: %s\n", (*cmd)[0],
                     *code == 127 ? (strchr((*cmd)[0], '/') ? "no such file in the container"
                                                           : "executable file not found in $PATH")
                                  : "not an executable file (permission denied)");
  return 0;
}

int agent_ctr_exec(struct agent *a, const char *ref, json_t *req, json_t **out,
                   struct ferry_err *err)
{
  _cleanup_strv_ char **cmd = NULL;
  _cleanup_strv_ char **env = NULL;
  _cleanup_json_ json_t *rec = NULL;
  _cleanup_free_ char *msg = NULL;
  int code = 0;
  int r = agent_exec_prepare(a, ref, req, &cmd, &env, &rec, &code, &msg, err);
  if (r < 0)
    return r;
  if (code) {
    *out = json_pack("{s:i, s:s, s:s}", "exit_code", code, "stdout", "", "stderr", msg);
    return 0;
  }
  json_t *tj = json_object_get(req, "timeout");
  int timeout = json_is_integer(tj) && json_integer_value(tj) > 0 ? (int)json_integer_value(tj) : 300;
  struct exec_result res = {0};
  if ((r = runc_exec(&a->rt, rec, cmd, env, timeout * 1000, &res, err)) < 0)
    return r;
  *out = json_pack("{s:i, s:s, s:s}", "exit_code", res.exit_code, "stdout", res.out, "stderr",
                   res.errout);
  free(res.out);
  free(res.errout);
  return 0;
}

/* ---- files in and out (ferry cp) ---- */

int agent_ctr_archive_stat(struct agent *a, const char *ref, const char *path, json_t **out,
                           struct ferry_err *err)
{
  _cleanup_json_ json_t *rec = NULL;
  int r = ctr_find(&a->rt, ref, &rec, err);
  return r < 0 ? r : ctr_copy_stat(&a->rt, rec, path, out, err);
}

struct archive_stream {
  int fd, pid;
};

int agent_ctr_archive_get(struct agent *a, const char *ref, const char *path, void **out,
                          struct ferry_err *err)
{
  _cleanup_json_ json_t *rec = NULL;
  int r = ctr_find(&a->rt, ref, &rec, err);
  struct archive_stream s = {-1, -1};
  if (r < 0 || (r = ctr_copy_out(&a->rt, rec, path, &s.fd, &s.pid, err)) < 0)
    return r;
  struct archive_stream *sp = malloc(sizeof *sp);
  if (!sp)
    abort();
  *sp = s;
  *out = sp;
  return 0;
}

ssize_t agent_archive_read(void *cls, int conn_fd, char *buf, size_t max)
{
  (void)conn_fd;
  struct archive_stream *s = cls;
  for (;;) {
    ssize_t n = read(s->fd, buf, max);
    if (n < 0 && errno == EINTR)
      continue;
    return n > 0 ? n : -1;
  }
}

void agent_archive_free(void *cls)
{
  struct archive_stream *s = cls;
  if (!s)
    return;
  int code = ctr_copy_out_end(s->fd, s->pid);
  if (code != 0)
    log_warn("agent", "copy out of a container ended with %d (the tar sent may be cut)", code);
  free(s);
}

int agent_ctr_archive_put(struct agent *a, const char *ref, const char *dir, const char *tarfile,
                          struct ferry_err *err)
{
  _cleanup_json_ json_t *rec = NULL;
  int r = ctr_find(&a->rt, ref, &rec, err);
  return r < 0 ? r : ctr_copy_in(&a->rt, rec, dir, tarfile, err);
}

/* ---- volumes ---- */

int agent_volume_create(struct agent *a, const char *name, json_t **out, struct ferry_err *err)
{
  LOCK(a);
  int r = volume_create(&a->rt, name, false, out, err);
  UNLOCK(a);
  return r;
}

json_t *agent_volume_list(struct agent *a)
{
  return volume_list(&a->rt);
}

int agent_volume_inspect(struct agent *a, const char *name, json_t **out, struct ferry_err *err)
{
  return volume_get(&a->rt, name, out, err);
}

/* The one scan of "which container mounts this volume". */
static const char *volume_user(json_t *all, const char *name, const char *except_id)
{
  size_t i, k;
  json_t *c;
  json_array_foreach(all, i, c)
  {
    if (except_id && strcmp(rec_id(c), except_id) == 0)
      continue;
    for (k = 0; k < rec_n_volumes(c); k++)
      if (strcmp(rec_volume_name(c, k), name) == 0)
        return rec_has_name(c) ? rec_name(c) : "?";
  }
  return NULL;
}

bool agent_volume_in_use(struct agent *a, const char *name, const char *except_id)
{
  _cleanup_json_ json_t *all = ctr_load_all(&a->rt);
  return volume_user(all, name, except_id) != NULL;
}

int agent_volume_remove(struct agent *a, const char *name, struct ferry_err *err)
{
  LOCK(a);
  _cleanup_json_ json_t *all = ctr_load_all(&a->rt);
  const char *user = volume_user(all, name, NULL);
  int r = user ? FERRY_CONFLICT(err, "volume \"%s\": in use by container \"%s\"", name, user)
               : volume_remove(&a->rt, name, err);
  UNLOCK(a);
  return r;
}
