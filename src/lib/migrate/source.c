/* The sending side of a migration: the target agent as the pipeline's
 * destination (over HTTP), the memory strategies, one thread per migration
 * running the pipeline (pipeline.c, docs/migration.md) and its report, and
 * the recovery of containers a restart finds marked. Until the target
 * confirms that the container runs there, the container stays whole on
 * this agent — frozen and off the network at worst — so that any failure
 * resumes it as it was. */
#include <arpa/inet.h>
#include <errno.h>
#include <inttypes.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#include "http/http.h"
#include "ckpt/ckpt.h"
#include "migrate/host.h"
#include "migrate/migrate.h"
#include "migrate/pipeline.h"
#include "migrate/peer.h"
#include "migrate/protocol.h"
#include "migrate/wire.h"
#include "migrate/state.h"
#include "util/cleanup.h"
#include "util/fault.h"
#include "util/fs.h"
#include "util/json.h"
#include "util/log.h"
#include "util/relay.h"
#include "util/spawn.h"
#include "util/strv.h"

struct outgoing;
struct http_client;

/* How the memory pages travel, chosen once per migration: the seam where
 * later strategies (pre-dump rounds, lazy pages) go. prepare() runs while
 * the container still runs, just before the freeze, and says where CRIU
 * writes the pages: a page server address, or NULL for the local images
 * directory (then they travel in the CRIU images archive). */
struct mem_strategy {
  const char *name;
  int (*prepare)(struct outgoing *o, struct http_client *c, char **page_server,
                 struct ferry_err *err);
  bool precopy; /* pre-dump rounds while the container runs (precopy_rounds) */
  bool lazy;    /* post-copy: the dump serves the pages after the restore */
};

struct outgoing {
  char id[17];
  struct agent *a;
  char *ref, *to, *token;
  bool keep;
  enum ferry_errclass error_class; /* of the failure, for callers that answer with a status */
  int redirect_s; /* the published ports here lead to the target this long after the move */
  bool compress; /* zstd on the tars (layers, volumes, rootfs, CRIU images) */
  const struct mem_strategy *mem;
  int timeout_s;
  uint64_t t0;
  int ps_fd;             /* stream: CRIU's end of its page-server connection, -1 if none */
  bool zpages;           /* the page streams go zstd-compressed (precopy) */
  uint64_t ps_wire;      /* bytes the last page stream put on the wire */
  int keeper[2];         /* precopy: CRIU's memory trackers' keeper (a socket pair;
                          * [1] goes to CRIU), -1 if none */
  int pre_last;          /* precopy: the last complete pre-dump round, -1 if none */
  int downtime_target_ms;
  json_t *precopy;       /* precopy: {"rounds": [...], "stopped": why} */
  struct mig_mem_parent mem_parent;
  struct relay *ps_relay; /* stream: relays ps_fd's peer to the target's page server;
                           * lazy: to the target's lazy-pages daemon */
  /* lazy: the gate the target's lazy-pages daemon comes through (a port of
   * this agent, the secret first), relayed to CRIU's socket pair end */
  int lazy_lfd, lazy_sp;
  int lazy_port;
  char lazy_secret[33];
  pthread_t lazy_thread;
  bool lazy_thread_running;
  int lazy_stop; /* atomic */
  struct mig_lazy_dump lazy_dump;
  bool streamed;         /* the pages went to the page server */
  struct mig_pipe pipe;  /* the phases (pipeline.c), with this agent as host ... */
  struct mig_host host;
  struct http_client *c; /* ... and the target agent, over HTTP, as destination */
  /* the rootfs and volume changes, sent on a connection of their own while
   * CRIU dumps (peer_frozen); transfer waits for them */
  pthread_t delta_thread;
  bool delta_running;
  bool prepared_early;   /* the target prepared its restore before the freeze */
  bool deltas_sent;      /* under out_lock (out_cond): delta_r is final; the
                          * restore's prepare may still go on */
  int delta_r;
  struct ferry_err delta_err;
  struct http_client *delta_c;
  json_t *offer_resp;    /* the target's answer to the offer */
  json_t *missing_layers; /* in it: the layers it lacks (wire_offer_answer_parse'd) */
  json_t *tr;            /* its last answer to the restore or the commit */
  char *local;           /* ROOT/migrations/out-ID: CRIU's images */
  char *redirect_to;     /* the target's address, for the published ports */
  struct mig_peer peer;  /* the target: its address, resolved once, and paths */
  /* guarded by out_lock */
  char name[64];
  char phase[24];
  char status[16]; /* running, succeeded, failed */
  char error[FERRY_ERR_MSG];
  char failed_phase[24];
  bool resumed;
  uint64_t phase_t0, cur_sent, cur_total, precopy_bytes_base;
  json_t *phases; /* name -> ms */
  json_t *bytes;  /* kind -> bytes */
  json_t *criu, *target;
  json_t *post_copy; /* lazy: {"served_ms", "error"}, once the move ended */
  int64_t downtime_ms, total_ms;
  struct outgoing *next;
};

static void set_phase(struct outgoing *o, const char *phase)
{
  struct migrations *m = agent_migrations(o->a);
  pthread_mutex_lock(&m->out_lock);
  uint64_t now = now_mono_ms();
  if (o->phase[0])
    json_object_set_new(o->phases, o->phase, json_integer((json_int_t)(now - o->phase_t0)));
  snprintf(o->phase, sizeof o->phase, "%s", phase);
  o->phase_t0 = now;
  o->cur_sent = o->cur_total = 0;
  pthread_mutex_unlock(&m->out_lock);
}

static void add_bytes(struct outgoing *o, const char *kind, uint64_t n)
{
  struct migrations *m = agent_migrations(o->a);
  pthread_mutex_lock(&m->out_lock);
  json_int_t v = json_integer_value(json_object_get(o->bytes, kind));
  json_object_set_new(o->bytes, kind, json_integer(v + (json_int_t)n));
  pthread_mutex_unlock(&m->out_lock);
}

static void on_progress(void *ud, uint64_t sent, uint64_t total)
{
  struct outgoing *o = ud;
  pthread_mutex_lock(&agent_migrations(o->a)->out_lock);
  o->cur_sent = sent;
  o->cur_total = total;
  pthread_mutex_unlock(&agent_migrations(o->a)->out_lock);
}

static json_t *report_locked(struct outgoing *o)
{
  json_t *phases = json_deep_copy(o->phases);
  if (strcmp(o->status, "running") == 0 && o->phase[0])
    json_object_set_new(phases, o->phase, json_integer((json_int_t)(now_mono_ms() - o->phase_t0)));
  json_t *bytes = json_deep_copy(o->bytes);
  json_int_t total = 0;
  const char *k;
  json_t *v;
  json_object_foreach(bytes, k, v) total += json_integer_value(v);
  json_object_set_new(bytes, "total", json_integer(total));
  json_t *j = json_pack("{s:s, s:s, s:s, s:s, s:s, s:b, s:o, s:o, s:{s:I, s:I}}", "id", o->id,
                        "role", "source", "container", o->name, "to", o->to, "status", o->status,
                        "keep", o->keep, "phases", phases, "bytes", bytes, "progress", "sent",
                        (json_int_t)o->cur_sent, "total", (json_int_t)o->cur_total);
  json_object_set_new(j, "phase", json_string(o->phase));
  json_object_set_new(j, "memory", json_string(o->mem->name));
  if (o->post_copy)
    json_object_set_new(j, "post_copy", json_deep_copy(o->post_copy));
  if (o->precopy)
    json_object_set_new(j, "precopy", json_deep_copy(o->precopy));
  json_object_set_new(j, "compress", json_boolean(o->compress));
  json_object_set_new(j, "prepared_early", json_boolean(o->prepared_early));
  json_object_set_new(j, "redirect_for", json_integer(o->redirect_s));
  json_object_set_new(j, "elapsed_ms", json_integer((json_int_t)(now_mono_ms() - o->t0)));
  if (o->error[0]) {
    json_object_set_new(j, "error", json_string(o->error));
    json_object_set_new(j, "failed_phase", json_string(o->failed_phase));
    json_object_set_new(j, "error_class", json_string(ferry_errclass_name(o->error_class)));
    json_object_set_new(j, "resumed_on_source", json_boolean(o->resumed));
  }
  if (o->downtime_ms >= 0)
    json_object_set_new(j, "downtime_ms", json_integer(o->downtime_ms));
  if (o->total_ms >= 0)
    json_object_set_new(j, "total_ms", json_integer(o->total_ms));
  if (o->criu)
    json_object_set(j, "criu", o->criu);
  if (o->target)
    json_object_set(j, "target", o->target);
  return j;
}

/* Time left for this migration, in seconds (at least 1). */
static long remaining_s(struct outgoing *o)
{
  return mig_pipe_remaining_s(&o->pipe);
}

/* The data of one upload: a part of the container (through agent/), or a
 * directory of this migration's own (CRIU's images). */
struct upload {
  enum agent_part part;
  json_t *rec;
  const char *name; /* a layer's digest, a volume's name */
  const char *own_dir;
};

static int put_tar(struct outgoing *o, struct http_client *c, const struct upload *up,
                   const struct tar_opts *to, const char *url, const char *kind,
                   struct ferry_err *err)
{
  _cleanup_free_ char *tmp = path_join(agent_migrations(o->a)->dir, "upload-XXXXXX");
  int fd = mkstemp(tmp);
  if (fd < 0)
    return ferry_err_sys(err, -errno, "temporary file");
  close(fd);
  uint64_t bytes = 0;
  int r = up->own_dir ? flat_dir_to_tar(up->own_dir, tmp, to->zstd, &bytes, err)
                      : agent_part_tar(o->a, up->part, up->rec, up->name, tmp, to, &bytes, err);
  if (r == 0) {
    http_client_set_timeout(c, remaining_s(o));
    r = http_upload_method(c, "PUT", url, tmp, NULL, err);
  }
  unlink(tmp);
  if (r == 0)
    add_bytes(o, kind, bytes);
  return r;
}

/* "/v1/migrations/incoming/ID" + part [+ "/" + escaped arg] */

/* Sends every volume of rec as PUT .../PART/NAME (full or delta). */
static int send_volumes(struct outgoing *o, struct http_client *c, json_t *rec,
                        const struct tar_opts *to, enum wire_part part, struct ferry_err *err)
{
  for (size_t i = 0; i < rec_n_volumes(rec); i++) {
    const char *vn = rec_volume_name(rec, i);
    _cleanup_free_ char *url = mig_peer_part_path(&o->peer, part, vn);
    struct upload up = {.part = PART_VOLUME, .rec = rec, .name = vn};
    int r = put_tar(o, c, &up, to, url, "volumes", err);
    if (r < 0)
      return ferry_err_wrap(err, "send volume %s", vn);
  }
  return 0;
}

/* stream: the target's CRIU page server receives the pages while CRIU dumps
 * them; nothing is written on the source. ferryd connects to it before the
 * freeze and hands CRIU one end of a socket pair, relaying the other end to
 * that connection: CRIU 4.2.1 corks a TCP connection it makes itself, and
 * its last segment then waits ~200 ms for the kernel's probe timer (a
 * capture showed it); on a socket pair there is no cork. The page server's
 * start-up also leaves the freeze (it starts when this connection comes). */
static int page_server_connect(struct outgoing *o, struct http_client *c, int round,
                               int parent_round, char **page_server, struct ferry_err *err)
{
  _cleanup_json_ json_t *psj = NULL;
  http_client_set_timeout(c, remaining_s(o) < 30 ? remaining_s(o) : 30);
  _cleanup_free_ char *psurl = mig_peer_path(&o->peer, "/page-server", NULL);
  struct wire_page_server_req w = {.round = round, .parent_round = parent_round, .zstd = o->zpages};
  _cleanup_json_ json_t *req = wire_page_server_req_json(&w);
  struct wire_page_server ps;
  if (http_call(c, "POST", psurl, req, &psj, err) < 0 || wire_page_server_parse(psj, &ps, err) < 0)
    return ferry_err_wrap(err, "start the page server on %s", o->to);
  int tcp = mig_peer_connect(&o->peer, ps.address, ps.port,
                             remaining_s(o) < 30 ? (int)remaining_s(o) : 30, page_server);
  if (tcp < 0)
    return ferry_err_sys(err, tcp, "connect to the page server %s", *page_server);
  /* The target's gate lets the connection through to CRIU only with the
   * secret it gave us, first. */
  const char *secret = ps.secret;
  size_t sl = strlen(secret);
  if (sl && write(tcp, secret, sl) != (ssize_t)sl) {
    int e = -errno;
    close(tcp);
    return ferry_err_sys(err, e ? e : -EIO, "page server %s: send the secret", *page_server);
  }
  int sp[2];
  if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sp) < 0) {
    int e = -errno;
    close(tcp);
    return ferry_err_sys(err, e, "page server: socket pair");
  }
  /* compressed only when the target said it unpacks (an older agent
   * ignores the request and would hand CRIU the compressed bytes) */
  bool z = o->zpages && ps.zstd;
  int r = relay_start_z(sp[1], tcp, z ? 1 : 0, &o->ps_relay);
  if (r < 0) {
    close(sp[0]);
    close(sp[1]);
    close(tcp);
    return ferry_err_sys(err, r, "page server: relay");
  }
  o->ps_fd = sp[0];
  return 0;
}

static int mem_stream_prepare(struct outgoing *o, struct http_client *c, char **page_server,
                              struct ferry_err *err)
{
  return page_server_connect(o, c, -1, -1, page_server, err);
}

/* precopy: the final dump streams what was written since the last
 * pre-dump round, on top of the rounds the target's page servers kept. */
static int mem_precopy_prepare(struct outgoing *o, struct http_client *c, char **page_server,
                               struct ferry_err *err)
{
  return page_server_connect(o, c, -1, o->pre_last >= 0 ? o->pre_last : -1, page_server, err);
}

/* Ends the stream's relay (after the dump: CRIU has finished with it). */
static int mem_stream_finish(struct outgoing *o, struct ferry_err *err)
{
  if (o->ps_fd >= 0) {
    close(o->ps_fd);
    o->ps_fd = -1;
  }
  if (!o->ps_relay)
    return 0;
  uint64_t wire = 0;
  int r = relay_finish_z(o->ps_relay, 5000, NULL, &wire);
  o->ps_wire = wire;
  o->ps_relay = NULL;
  if (r < 0 && err)
    return ferry_err_sys(err, r, "page-server connection");
  return 0;
}

/* copy: CRIU writes the pages on the source; they go with the other CRIU
 * images in one archive after the dump (what a checkpoint file does). */
static int mem_copy_prepare(struct outgoing *o, struct http_client *c, char **page_server,
                            struct ferry_err *err)
{
  (void)o, (void)c, (void)err;
  *page_server = NULL;
  return 0;
}

/* lazy (post-copy): CRIU writes everything but the lazy pages (most of
 * the memory) on the source and stays, holding those pages, to serve them
 * on a socket pair; the target's lazy-pages daemon connects to a port of
 * this agent (the secret first) at its restore and is relayed to it. */
static int mem_lazy_prepare(struct outgoing *o, struct http_client *c, char **page_server,
                            struct ferry_err *err)
{
  (void)c;
  *page_server = NULL;
  int sp[2];
  if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sp) < 0)
    return ferry_err_sys(err, -errno, "lazy pages: socket pair");
  int lfd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  struct sockaddr_in sa = {.sin_family = AF_INET};
  if (agent_listen_ip(o->a))
    inet_pton(AF_INET, agent_listen_ip(o->a), &sa.sin_addr);
  socklen_t sl = sizeof sa;
  if (lfd < 0 || bind(lfd, (struct sockaddr *)&sa, sizeof sa) < 0 || listen(lfd, 4) < 0 ||
      getsockname(lfd, (struct sockaddr *)&sa, &sl) < 0) {
    int e = -errno;
    if (lfd >= 0)
      close(lfd);
    close(sp[0]);
    close(sp[1]);
    return ferry_err_sys(err, e, "lazy pages: a port for the target");
  }
  o->ps_fd = sp[0];
  o->lazy_sp = sp[1];
  o->lazy_lfd = lfd;
  o->lazy_port = ntohs(sa.sin_port);
  random_hex(o->lazy_secret, 32);
  o->host.lazy = &o->lazy_dump;
  return 0;
}

static const struct mem_strategy mem_strategies[] = {
    {"stream", mem_stream_prepare, false, false},
    {"copy", mem_copy_prepare, false, false},
    {"precopy", mem_precopy_prepare, true, false},
    {"lazy", mem_lazy_prepare, false, true},
};

/* auto picks precopy at or above this much memory, when CRIU tracks
 * memory: below it a round costs about what it saves. */
#define MEM_AUTO_PRECOPY_BYTES (64ll << 20)

/* auto: below this much memory the page server's fixed cost (~100-200 ms
 * of CRIU's page-server handshake inside the freeze, measured with bench/run)
 * outweighs writing the pages here and sending them as one archive. */
#define MEM_AUTO_STREAM_BYTES (32ll << 20)

static const struct mem_strategy *mem_strategy_find(const char *name)
{
  for (size_t i = 0; i < sizeof mem_strategies / sizeof mem_strategies[0]; i++)
    if (strcmp(mem_strategies[i].name, name) == 0)
      return &mem_strategies[i];
  return NULL;
}

/* What the target says of the migration (GET .../incoming/ID), as a code. */
static enum target_state target_state_of(struct http_client *c, const struct mig_peer *peer,
                                         long timeout_s)
{
  const char *mid = peer->mid;
  _cleanup_free_ char *url = mig_peer_path(peer, "", NULL);
  _cleanup_json_ json_t *st = NULL;
  struct ferry_err e = {0};
  http_client_set_timeout(c, timeout_s);
  if (http_call(c, "GET", url, NULL, &st, &e) < 0)
    return e.klass == FERRY_E_NOTFOUND ? T_GONE : T_UNKNOWN;
  struct wire_state w;
  if (wire_state_parse(st, &w, &e) < 0) {
    log_warn("migrate", "outgoing %s: the target's state: %s", mid, e.msg);
    return T_UNKNOWN; /* as if it could not be asked: nothing is decided on it */
  }
  return w.state;
}

/* ---- the target agent as the pipeline's destination ---- */

#define O(p) ((struct outgoing *)(p)->dest_ctx)

static int peer_offer(struct mig_pipe *p, struct ferry_err *err)
{
  struct outgoing *o = O(p);
  pthread_mutex_lock(&agent_migrations(o->a)->out_lock);
  snprintf(o->name, sizeof o->name, "%s", rec_name(p->rec));
  pthread_mutex_unlock(&agent_migrations(o->a)->out_lock);
  json_t *vols = json_array();
  for (size_t i = 0; i < rec_n_volumes(p->rec); i++)
    json_array_append_new(vols, json_string(rec_volume_name(p->rec, i)));
  _cleanup_json_ json_t *ctr = json_deep_copy(p->rec);
  rec_set_op(ctr, OP_NONE);
  rec_clear_migration(ctr);
  struct wire_offer w = {.id = o->id, .source_agent = agent_id(o->a), .container = ctr,
                         .image = p->img, .volumes = vols};
  _cleanup_json_ json_t *offer = wire_offer_json(&w);
  json_decref(vols);
  http_client_set_timeout(o->c, remaining_s(o) < 30 ? remaining_s(o) : 30);
  if (http_call(o->c, "POST", MIG_PEER_OFFER_PATH, offer, &o->offer_resp, err) < 0)
    return ferry_err_wrap(err, "offer to %s", o->to);
  struct wire_offer_answer ans;
  if (wire_offer_answer_parse(o->offer_resp, p->img, &ans, err) < 0)
    return ferry_err_wrap(err, "offer to %s", o->to);
  o->missing_layers = ans.missing_layers; /* borrowed from offer_resp */
  return 0;
}

/* This migration's own directory (ROOT/migrations/out-ID): CRIU's images
 * of the dump (criu/) and of the pre-dump rounds (pre/rN). */
static const char *local_dir(struct outgoing *o)
{
  if (!o->local) {
    _cleanup_free_ char *leaf = xasprintf("out-%s", o->id);
    o->local = path_join(agent_migrations(o->a)->dir, leaf);
  }
  return o->local;
}

/* One batch of keeper_reflect: up to 64 trackers. */
static int keeper_reflect_batch(int fd)
{
  int fds[64];
  char data[64][16];
  size_t lens[64];
  int n = 0, r = 0;
  while (n < 64) {
    char cbuf[CMSG_SPACE(sizeof(int))];
    struct iovec iov = {.iov_base = data[n], .iov_len = sizeof data[n]};
    struct msghdr h = {.msg_iov = &iov, .msg_iovlen = 1, .msg_control = cbuf,
                       .msg_controllen = sizeof cbuf};
    ssize_t got = recvmsg(fd, &h, MSG_DONTWAIT | MSG_CMSG_CLOEXEC);
    if (got < 0) {
      if (errno != EAGAIN && errno != EWOULDBLOCK)
        r = -errno;
      break;
    }
    struct cmsghdr *cm = CMSG_FIRSTHDR(&h);
    if (got == 0 || !cm || cm->cmsg_type != SCM_RIGHTS || cm->cmsg_len != CMSG_LEN(sizeof(int)) ||
        (h.msg_flags & (MSG_TRUNC | MSG_CTRUNC))) {
      r = -EPROTO;
      break;
    }
    memcpy(&fds[n], CMSG_DATA(cm), sizeof(int));
    lens[n++] = (size_t)got;
  }
  for (int i = 0; i < n; i++) {
    char cbuf[CMSG_SPACE(sizeof(int))];
    memset(cbuf, 0, sizeof cbuf);
    struct iovec iov = {.iov_base = data[i], .iov_len = lens[i]};
    struct msghdr h = {.msg_iov = &iov, .msg_iovlen = 1, .msg_control = cbuf,
                       .msg_controllen = sizeof cbuf};
    struct cmsghdr *cm = CMSG_FIRSTHDR(&h);
    cm->cmsg_level = SOL_SOCKET;
    cm->cmsg_type = SCM_RIGHTS;
    cm->cmsg_len = CMSG_LEN(sizeof(int));
    memcpy(CMSG_DATA(cm), &fds[i], sizeof(int));
    if (r == 0 && sendmsg(fd, &h, MSG_DONTWAIT | MSG_NOSIGNAL) < 0)
      r = -errno;
    close(fds[i]);
  }
  return r < 0 ? r : n;
}

/* Hands the trackers CRIU left in the keeper back to its other end, for
 * the next CRIU run: they stay in flight in the socket pair between runs
 * (criu/README.md). Every one of them: one left behind would come back
 * later beside a newer tracker of the same process. Returns how many, or
 * -errno. */
static int keeper_reflect(int fd)
{
  int total = 0;
  for (int b = 0; b < 1024; b++) {
    int n = keeper_reflect_batch(fd);
    if (n < 0)
      return n;
    total += n;
    if (n < 64)
      return total;
  }
  return -E2BIG;
}

static void keeper_close(struct outgoing *o)
{
  for (int i = 0; i < 2; i++)
    if (o->keeper[i] >= 0) {
      close(o->keeper[i]);
      o->keeper[i] = -1;
    }
}

#define PRECOPY_MAX_ROUNDS 8

/* precopy: pre-dump rounds while the container runs, each streamed to a
 * page server of the target, each sending only what was written since the
 * round before (CRIU's trackers, kept in o->keeper between rounds). Stops
 * when the last round's bytes would cross within the downtime target at
 * the rate the first round measured, when a round sends more than 90% of
 * the one before (round 1 included: a writer that rewrites all of its memory
 * within a round gains nothing from more), or after
 * PRECOPY_MAX_ROUNDS; the final dump sends the rest. A round that fails
 * ends the rounds: the dump builds on the last complete one (or on none). */
static void precopy_rounds(struct outgoing *o, struct mig_pipe *p)
{
  json_t *rounds = json_array();
  const char *stopped = "round limit";
  json_t *pc = json_pack("{s:o, s:i, s:b}", "rounds", rounds, "downtime_target_ms",
                         o->downtime_target_ms, "compressed", o->zpages);
  pthread_mutex_lock(&agent_migrations(o->a)->out_lock);
  o->precopy = pc;
  pthread_mutex_unlock(&agent_migrations(o->a)->out_lock);
  if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, o->keeper) < 0) {
    o->keeper[0] = o->keeper[1] = -1;
    stopped = "no keeper socket";
    goto out;
  }
  uint64_t rate_bps = 0, prev_bytes = 0, prev_t0 = 0;
  for (int k = 0; k < PRECOPY_MAX_ROUNDS; k++) {
    /* half of the move's time is kept for the dump and what follows */
    if (k >= 1 && remaining_s(o) * 2 < o->timeout_s) {
      stopped = "half of the timeout spent";
      break;
    }
    struct ferry_err err = {0};
    _cleanup_free_ char *rel = xasprintf("pre/r%d", k);
    _cleanup_free_ char *dir = path_join(local_dir(o), rel);
    _cleanup_free_ char *parent = k ? xasprintf("../r%d", k - 1) : NULL;
    _cleanup_free_ char *ps = NULL;
    _cleanup_json_ json_t *stats = NULL;
    uint64_t t0 = now_mono_ms();
    int r = mkdir_p(dir, 0700, &err);
    if (r == 0)
      r = page_server_connect(o, o->c, k, -1, &ps, &err);
    if (r == 0) {
      struct ckpt_dump_opts co = CKPT_DUMP_OPTS_INIT;
      co.page_server = ps;
      co.ps_fd = o->ps_fd;
      co.pre_dump = true;
      co.parent = parent;
      co.keeper_fd = o->keeper[1];
      co.timeout_ms = (int)remaining_s(o) * 1000;
      r = agent_ctr_dump(o->host.claim, dir, &co, &stats, &err);
    }
    struct ferry_err e2 = {0};
    int rr = mem_stream_finish(o, &e2);
    if (r == 0 && rr < 0) {
      r = rr;
      err = e2;
    }
    int kept = r == 0 ? keeper_reflect(o->keeper[0]) : 0;
    if (r == 0 && kept < 0) {
      r = kept;
      ferry_err_sys(&err, kept, "memory trackers' keeper");
    }
    uint64_t ms = now_mono_ms() - t0;
    pthread_mutex_lock(&agent_migrations(o->a)->out_lock);
    if (r < 0) {
      json_array_append_new(rounds, json_pack("{s:i, s:s, s:I}", "round", k, "error", err.msg,
                                              "ms", (json_int_t)ms));
      pthread_mutex_unlock(&agent_migrations(o->a)->out_lock);
      log_warn("migrate", "outgoing %s: pre-dump round %d failed (the dump sends all memory "
                          "written since round %d): %s", o->id, k, k - 1, err.msg);
      stopped = "round failed";
      break;
    }
    uint64_t pages = (uint64_t)json_integer_value(json_object_get(stats, "pages_written"));
    uint64_t bytes = pages * 4096;
    if (k == 0 && ms > 0)
      rate_bps = bytes * 1000 / ms;
    json_t *row = json_pack("{s:i, s:I, s:I, s:I, s:I, s:i}", "round", k, "pages", (json_int_t)pages,
                            "bytes", (json_int_t)bytes, "wire_bytes",
                            (json_int_t)(o->zpages ? o->ps_wire : bytes), "ms", (json_int_t)ms,
                            "trackers", kept);
    /* written between the start of the round before and this one's */
    uint64_t dirty_bps = k && t0 > prev_t0 ? bytes * 1000 / (t0 - prev_t0) : 0;
    if (k && t0 > prev_t0)
      json_object_set_new(row, "dirty_bytes_per_s", json_integer((json_int_t)dirty_bps));
    json_array_append_new(rounds, row);
    pthread_mutex_unlock(&agent_migrations(o->a)->out_lock);
    add_bytes(o, "pages", o->zpages ? o->ps_wire : bytes);
    o->pre_last = k;
    if (k >= 1 && rate_bps && bytes * 1000 / rate_bps <= (uint64_t)o->downtime_target_ms) {
      stopped = "within the downtime target";
      break;
    }
    /* round 1 too: one that resends 90% of what round 0 sent (all of the
     * memory) shows a writer that rewrites everything within a round; more
     * rounds would only send it again (the dump sends it once more anyway) */
    if (k >= 1 && bytes * 10 > prev_bytes * 9) {
      stopped = "rounds stopped shrinking";
      break;
    }
    /* it writes at least as fast as the link carries: another round
     * would not send less */
    if (k >= 1 && rate_bps && dirty_bps >= rate_bps) {
      stopped = "written faster than sent";
      break;
    }
    if (kept == 0) {
      stopped = "no process tracked";
      break;
    }
    prev_bytes = bytes;
    prev_t0 = t0;
  }
  if (rate_bps) {
    pthread_mutex_lock(&agent_migrations(o->a)->out_lock);
    json_object_set_new(pc, "rate_bytes_per_s", json_integer((json_int_t)rate_bps));
    pthread_mutex_unlock(&agent_migrations(o->a)->out_lock);
  }
  if (o->pre_last >= 0) {
    snprintf(o->mem_parent.parent, sizeof o->mem_parent.parent, "../pre/r%d", o->pre_last);
    o->mem_parent.keeper_fd = o->keeper[1];
    o->host.mem = &o->mem_parent;
  }
out:
  pthread_mutex_lock(&agent_migrations(o->a)->out_lock);
  json_object_set_new(pc, "stopped", json_string(stopped));
  pthread_mutex_unlock(&agent_migrations(o->a)->out_lock);
}

/* The layers the target lacks, every volume and the rootfs changes, while
 * the container runs. */
static int peer_precopy(struct mig_pipe *p, struct ferry_err *err)
{
  struct outgoing *o = O(p);
  struct tar_opts full = {.zstd = o->compress};
  size_t i;
  json_t *l;
  json_array_foreach(o->missing_layers, i, l)
  {
    const char *dg = json_string_value(l);
    _cleanup_free_ char *url = mig_peer_part_path(&o->peer, WP_LAYER, dg);
    struct upload up = {.part = PART_LAYER, .name = dg};
    if (put_tar(o, o->c, &up, &full, url, "layers", err) < 0)
      return ferry_err_wrap(err, "send layer %.19s", dg);
  }
  int r = send_volumes(o, o->c, p->rec, &full, WP_VOLUME, err);
  if (r < 0)
    return r;
  _cleanup_free_ char *url = mig_peer_part_path(&o->peer, WP_ROOTFS, NULL);
  struct upload up = {.part = PART_ROOTFS, .rec = p->rec};
  if (put_tar(o, o->c, &up, &full, url, "rootfs", err) < 0)
    return ferry_err_wrap(err, "send rootfs changes");
  if (o->mem->precopy)
    precopy_rounds(o, p);
  return 0;
}

static int peer_memory_prepare(struct mig_pipe *p, char **page_server, int *ps_fd,
                               struct ferry_err *err)
{
  struct outgoing *o = O(p);
  int r = o->mem->prepare(o, o->c, page_server, err);
  *ps_fd = o->ps_fd;
  o->streamed = r == 0 && *page_server;
  return r;
}

static int peer_memory_finish(struct mig_pipe *p, struct ferry_err *err)
{
  return mem_stream_finish(O(p), err);
}

static int peer_criu_dir(struct mig_pipe *p, char **dir, struct ferry_err *err)
{
  struct outgoing *o = O(p);
  *dir = path_join(local_dir(o), "criu");
  mig_dir_remove(*dir);
  return mkdir_p(*dir, 0700, err);
}

/* The files changed since pre-copy began, as tars of what changed plus a
 * manifest of every path, so that the target also removes what went. With
 * the restore prepared before the freeze, the rootfs's go only if there
 * are any (the target then takes its overlay down and up again around
 * them). */
static int send_deltas(struct outgoing *o, struct http_client *c, json_t *rec, time_t since,
                       struct ferry_err *err)
{
  struct tar_opts delta = {.zstd = o->compress, .since = since, .manifest = true};
  if (!o->prepared_early || agent_ctr_rootfs_changed_since(o->a, rec, since)) {
    _cleanup_free_ char *rurl = mig_peer_part_path(&o->peer, WP_ROOTFS_DELTA, NULL);
    struct upload changes = {.part = PART_ROOTFS, .rec = rec};
    if (put_tar(o, c, &changes, &delta, rurl, "rootfs", err) < 0)
      return ferry_err_wrap(err, "send rootfs changes");
  }
  return send_volumes(o, c, rec, &delta, WP_VOLUME_DELTA, err);
}

/* With the files in place there, the target starts its restore while
 * CRIU still dumps here, held before CRIU until the images are in (docs/
 * migration.md): not for a lazy restore. A target that cannot (409, or an
 * older agent: 404) restores the usual way; one whose prepare failed has
 * failed the move, which the next step finds out. */
static bool prepare_restore(struct outgoing *o, struct http_client *c)
{
  if (o->mem->precopy || o->mem->lazy)
    return false;
  _cleanup_json_ json_t *desc = agent_ctr_descriptors(o->a, o->pipe.rec);
  if (!desc)
    return false;
  _cleanup_free_ char *url = mig_peer_path(&o->peer, "/prepare", NULL);
  _cleanup_json_ json_t *req = wire_prepare_json(&(struct wire_prepare){.descriptors = desc});
  _cleanup_json_ json_t *ans = NULL;
  struct ferry_err e = {0};
  http_client_set_timeout(c, remaining_s(o));
  if (http_call(c, "POST", url, req, &ans, &e) < 0) {
    log_info("migrate", "outgoing %s: the target did not prepare its restore ahead: %s", o->id,
             e.msg);
    return false;
  }
  return true;
}

/* Right before the freeze, the files of pre-copy being there: the target
 * prepares its restore now (docs/migration.md, step 5), so that it is
 * ready by the time the dump is; the changes made since go after it. */
static void peer_prepare(struct mig_pipe *p)
{
  struct outgoing *o = O(p);
  /* A container that changed its rootfs during pre-copy likely does so
   * again before the freeze: its target would prepare twice (the overlay
   * taken down and up again around the changes), which costs more than
   * preparing once after them. FERRY_PREPARE_EARLY=always in the agent's
   * environment prepares early anyway (tests). */
  const char *force = getenv("FERRY_PREPARE_EARLY");
  if (!(force && strcmp(force, "always") == 0) &&
      agent_ctr_rootfs_changed_since(o->a, p->rec, p->precopy_since))
    return;
  o->prepared_early = prepare_restore(o, o->c);
}

static void *delta_main(void *arg)
{
  struct outgoing *o = arg;
  struct migrations *m = agent_migrations(o->a);
  int r = send_deltas(o, o->delta_c, o->pipe.rec, o->pipe.precopy_since, &o->delta_err);
  pthread_mutex_lock(&m->out_lock);
  o->delta_r = r;
  o->deltas_sent = true;
  pthread_cond_broadcast(&m->out_cond);
  pthread_mutex_unlock(&m->out_lock);
  if (r == 0 && !o->prepared_early)
    prepare_restore(o, o->delta_c);
  return NULL;
}

/* Frozen: nothing in the container writes its files any more, so their
 * changes go now, on a second connection, while CRIU dumps (one request
 * at a time per migration on the target: the CRIU images wait for them). */
static void peer_frozen(struct mig_pipe *p)
{
  struct outgoing *o = O(p);
  struct ferry_err e = {0};
  if (mig_peer_client(&o->peer, o->token ? o->token : agent_token(o->a), agent_tls_ca(o->a),
                      &o->delta_c, &e) < 0)
    return; /* transfer sends them itself */
  o->delta_r = 0;
  o->deltas_sent = false;
  o->delta_err = (struct ferry_err){0};
  if (pthread_create(&o->delta_thread, NULL, delta_main, o) == 0) {
    o->delta_running = true;
  } else {
    http_client_free(o->delta_c);
    o->delta_c = NULL;
  }
}

/* Waits for peer_frozen's sending: its result (1: it did not run). */
static int deltas_join(struct outgoing *o, struct ferry_err *err)
{
  if (!o->delta_running)
    return 1;
  pthread_join(o->delta_thread, NULL);
  o->delta_running = false;
  http_client_free(o->delta_c);
  o->delta_c = NULL;
  if (o->delta_r < 0 && err)
    *err = o->delta_err;
  return o->delta_r;
}

/* Waits until peer_frozen's thread has sent the file changes (the
 * restore's prepare may go on after): its result (1: it did not run). */
static int deltas_wait(struct outgoing *o, struct ferry_err *err)
{
  if (!o->delta_running)
    return 1;
  struct migrations *m = agent_migrations(o->a);
  pthread_mutex_lock(&m->out_lock);
  while (!o->deltas_sent)
    pthread_cond_wait(&m->out_cond, &m->out_lock);
  int r = o->delta_r;
  if (r < 0 && err)
    *err = o->delta_err;
  pthread_mutex_unlock(&m->out_lock);
  return r;
}

/* CRIU's small images (or all of them, with the pages, for "copy") and the
 * files changed since pre-copy began (unless peer_frozen sent them). The
 * images go while the target may still prepare its restore: it takes them
 * once that is done. */
static int peer_transfer(struct mig_pipe *p, const char *criu, struct ferry_err *err)
{
  struct outgoing *o = O(p);
  if (o->streamed && p->criu)
    add_bytes(o, "pages", o->zpages ? o->ps_wire
                                    : (uint64_t)json_integer_value(json_object_get(p->criu, "pages_written")) * 4096);
  pthread_mutex_lock(&agent_migrations(o->a)->out_lock);
  json_decref(o->criu);
  o->criu = json_incref(p->criu);
  pthread_mutex_unlock(&agent_migrations(o->a)->out_lock);
  struct tar_opts plain = {.zstd = o->compress};
  int dr = deltas_wait(o, err);
  if (dr < 0)
    return dr;
  /* CRIU's link to the last pre-dump: the target's page server made its own */
  _cleanup_free_ char *plink = path_join(criu, "parent");
  unlink(plink);
  _cleanup_free_ char *curl = mig_peer_part_path(&o->peer, WP_CRIU, NULL);
  struct upload images = {.own_dir = criu};
  if (put_tar(o, o->c, &images, &plain, curl, o->streamed ? "other" : "pages", err) < 0)
    return ferry_err_wrap(err, "send CRIU images");
  return dr == 1 ? send_deltas(o, o->c, p->rec, p->precopy_since, err) : 0;
}

/* lazy: waits (bounded by the move's time, 200 ms at a time to notice
 * lazy_stop) for the target's lazy-pages daemon; a connection that does not
 * send the secret first is closed. The first that does is relayed to CRIU. */
static void *lazy_gate_main(void *arg)
{
  struct outgoing *o = arg;
  for (int n = 0; n < 100000 && !__atomic_load_n(&o->lazy_stop, __ATOMIC_ACQUIRE) &&
                  remaining_s(o) > 1;
       n++) {
    struct pollfd pf = {.fd = o->lazy_lfd, .events = POLLIN};
    if (poll(&pf, 1, 200) <= 0)
      continue;
    int c = accept4(o->lazy_lfd, NULL, NULL, SOCK_CLOEXEC);
    if (c < 0)
      continue;
    if (!relay_secret_ok(c, o->lazy_secret, 32)) {
      log_warn("migrate", "outgoing %s: lazy pages: refused a connection without the "
               "migration's secret", o->id);
      close(c);
      continue;
    }
    /* a target that vanishes (host lost, no FIN) ends the serving within
     * about a minute: the relay breaks, CRIU sees its end */
    int one = 1;
    setsockopt(c, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    relay_keepalive(c);
    struct relay *rl = NULL;
    if (relay_start(o->lazy_sp, c, &rl) < 0) {
      close(c);
      break;
    }
    o->lazy_sp = -1; /* the relay's */
    o->ps_relay = rl;
    break;
  }
  return NULL;
}

/* Ends the lazy gate (the relay, if it started, stays for mem_stream_finish). */
static void lazy_gate_stop(struct outgoing *o)
{
  if (o->lazy_thread_running) {
    __atomic_store_n(&o->lazy_stop, 1, __ATOMIC_RELEASE);
    pthread_join(o->lazy_thread, NULL);
    o->lazy_thread_running = false;
  }
  if (o->lazy_lfd >= 0) {
    close(o->lazy_lfd);
    o->lazy_lfd = -1;
  }
  if (o->lazy_sp >= 0) {
    close(o->lazy_sp);
    o->lazy_sp = -1;
  }
}

static int peer_restore(struct mig_pipe *p, json_t *neigh, struct ferry_err *err)
{
  struct outgoing *o = O(p);
  deltas_join(o, NULL); /* the prepare's answer first */
  _cleanup_free_ char *url = mig_peer_path(&o->peer, "/restore", NULL);
  _cleanup_json_ json_t *none = json_array();
  struct wire_restore w = {.neighbours = neigh ? neigh : none};
  /* pre-copied memory is on the target already: its copy runs at once and
   * faults its pages in there while the rest is pushed (docs/migration.md) */
  w.lazy_memory = o->mem->precopy;
  /* post-copy: the rest comes from the dump here, through the lazy gate */
  if (o->mem->lazy && o->lazy_lfd >= 0) {
    if (!o->lazy_thread_running) {
      if (pthread_create(&o->lazy_thread, NULL, lazy_gate_main, o) != 0)
        return ferry_err_sys(err, -EAGAIN, "lazy pages: gate thread");
      o->lazy_thread_running = true;
    }
    w.has_lazy_pages = true;
    w.lazy_pages = (struct wire_lazy_pages){
        .address = agent_listen_ip(o->a), .port = o->lazy_port, .secret = o->lazy_secret};
  }
  _cleanup_json_ json_t *req = wire_restore_json(&w);
  http_client_set_timeout(o->c, remaining_s(o));
  json_decref(o->tr);
  o->tr = NULL;
  struct wire_state ans;
  int r = http_call(o->c, "POST", url, req, &o->tr, err);
  if (r == 0)
    r = wire_state_parse(o->tr, &ans, err);
  return r < 0 ? ferry_err_wrap(err, "restore on %s", o->to) : 0;
}

static enum target_state peer_state(struct mig_pipe *p, long timeout_s)
{
  return target_state_of(O(p)->c, &O(p)->peer, timeout_s);
}

static int peer_commit(struct mig_pipe *p, struct ferry_err *err)
{
  struct outgoing *o = O(p);
  _cleanup_free_ char *url = mig_peer_path(&o->peer, "/commit", NULL);
  json_t *ans = NULL;
  http_client_set_timeout(o->c, 5);
  if (http_call(o->c, "POST", url, NULL, &ans, err) < 0)
    return ferry_err_wrap(err, "commit on %s", o->to);
  json_decref(o->tr);
  o->tr = ans;
  struct wire_state w;
  if (wire_state_parse(ans, &w, err) < 0)
    return ferry_err_wrap(err, "commit on %s", o->to);
  return 0;
}

static void peer_abort(struct mig_pipe *p)
{
  struct outgoing *o = O(p);
  deltas_join(o, NULL); /* its requests end before the withdrawal */
  _cleanup_free_ char *durl = mig_peer_path(&o->peer, "", NULL);
  http_client_set_timeout(o->c, 3);
  struct ferry_err e2 = {0};
  if (http_call(o->c, "DELETE", durl, NULL, NULL, &e2) < 0 && e2.klass != FERRY_E_NOTFOUND)
    log_warn("migrate", "outgoing %s: target cleanup: %s (it abandons the migration by itself)",
             o->id, e2.msg);
}

static void peer_cleanup(struct mig_pipe *p)
{
  struct outgoing *o = O(p);
  deltas_join(o, NULL);
  if (o->lazy_dump.pid > 0) {
    /* the commit was sent and its answer never came: the target may run
     * the copy and need its pages; the dump serves them a while yet */
    struct ferry_err e = {0};
    if (ckpt_lazy_wait(o->lazy_dump.pid, o->lazy_dump.dir, MIG_COMMIT_PATIENCE_S * 1000, false,
                       &e) < 0)
      log_warn("migrate", "outgoing %s: %s", o->id, e.msg);
    o->lazy_dump.pid = 0;
  }
  lazy_gate_stop(o);
  bool served = o->mem->lazy && o->ps_relay;
  mem_stream_finish(o, NULL);
  if (served)
    add_bytes(o, "pages", o->ps_wire); /* what the dump served after the commit */
  /* the trackers end with the move, whatever its outcome */
  o->host.mem = NULL;
  keeper_close(o);
  if (o->local)
    mig_dir_remove(o->local);
}

static const struct mig_dest_ops peer_dest = {
    .offer = peer_offer,
    .precopy = peer_precopy,
    .memory_prepare = peer_memory_prepare,
    .memory_finish = peer_memory_finish,
    .criu_dir = peer_criu_dir,
    .frozen = peer_frozen,
    .prepare = peer_prepare,
    .transfer = peer_transfer,
    .restore = peer_restore,
    .state = peer_state,
    .commit = peer_commit,
    .abort = peer_abort,
    .cleanup = peer_cleanup,
};

static void on_pipe_phase(struct mig_pipe *p, enum mig_phase ph)
{
  set_phase(O(p), mig_phase_name(ph));
}

static void *source_main(void *arg)
{
  struct outgoing *o = arg;
  struct agent *a = o->a;
  struct migrations *m = agent_migrations(a);
  struct mig_pipe *p = &o->pipe;
  int r = mig_peer_client(&o->peer, o->token ? o->token : agent_token(a), agent_tls_ca(a), &o->c,
                          &p->err);
  if (r == 0) {
    http_client_set_progress(o->c, on_progress, o);
    mig_pipe_run(p);
  } else {
    snprintf(p->failed_phase, sizeof p->failed_phase, "%s", mig_phase_name(PH_OFFER));
    p->outcome = MIG_REFUSED;
  }
  pthread_mutex_lock(&m->out_lock);
  o->total_ms = (int64_t)(now_mono_ms() - o->t0);
  /* the dump's serving, written by the run's thread, is read under the lock
   * from here on */
  if (o->mem->lazy && o->lazy_dump.served_ms >= 0) {
    o->post_copy = json_pack("{s:I}", "served_ms", (json_int_t)o->lazy_dump.served_ms);
    if (o->lazy_dump.error[0])
      json_object_set_new(o->post_copy, "error", json_string(o->lazy_dump.error));
  }
  if (p->outcome == MIG_DONE) {
    o->target = json_incref(json_object_get(o->tr, "restore"));
    o->downtime_ms = p->downtime_ms;
    snprintf(o->status, sizeof o->status, "succeeded");
    agent_metrics_sent(a, true, o->phases, o->bytes, o->downtime_ms);
  } else {
    snprintf(o->failed_phase, sizeof o->failed_phase, "%s", p->failed_phase);
    snprintf(o->status, sizeof o->status, "failed");
    snprintf(o->error, sizeof o->error, "%s", p->err.msg[0] ? p->err.msg : "migration failed");
    o->error_class = p->err.klass;
    o->resumed = p->outcome == MIG_RESUMED;
    agent_metrics_sent(a, false, o->phases, o->bytes, -1);
  }
  pthread_mutex_unlock(&m->out_lock);
  if (p->outcome == MIG_DONE)
    log_info("migrate", "outgoing %s: %s now runs on %s (downtime %" PRId64 " ms)", o->id, o->name,
             o->to, o->downtime_ms);
  else
    log_warn("migrate", "outgoing %s: %s: %s%s", o->id, o->name[0] ? o->name : o->ref, o->error,
             p->outcome == MIG_IN_DOUBT
                 ? " (the container stays frozen here until the target can be asked: restart "
                   "the agent to ask again)"
             : p->outcome == MIG_RESUMED ? " (the container runs on here as before)"
                                         : "");
  http_client_free(o->c);
  o->c = NULL;
  json_decref(o->tr);
  o->tr = NULL;
  json_decref(o->offer_resp);
  o->offer_resp = NULL;
  o->missing_layers = NULL;
  mig_pipe_fini(p);
  pthread_mutex_lock(&m->out_lock);
  m->out_running--;
  pthread_cond_broadcast(&m->out_cond);
  pthread_mutex_unlock(&m->out_lock);
  return NULL;
}

int migrate_start(struct agent *a, const char *ref, json_t *req, json_t **out,
                  struct ferry_err *err)
{
  struct migrations *m = agent_migrations(a);
  const char *to, *token, *memory = NULL, *want_id = NULL;
  bool keep = false, compress = true, hold = true;
  int r;
  if (!json_is_object(req))
    return FERRY_INVALID(err, "request body must be a JSON object");
  /* "id": the caller's own (a coordinator's): asking again with an id this
   * agent knows answers with that move instead of starting another */
  if ((r = json_get_str(req, "id", false, &want_id, err)) < 0)
    return r;
  if (want_id && (strlen(want_id) != 16 || strspn(want_id, "0123456789abcdef") != 16))
    return FERRY_INVALID(err, "id \"%.40s\": expected 16 lowercase hex digits", want_id);
  if (want_id) {
    pthread_mutex_lock(&m->out_lock);
    struct outgoing *known = m->out;
    while (known && strcmp(known->id, want_id) != 0)
      known = known->next;
    json_t *same = known ? json_pack("{s:s, s:s, s:s}", "id", known->id, "container", known->name,
                                     "to", known->to)
                         : NULL;
    pthread_mutex_unlock(&m->out_lock);
    if (same) {
      *out = same;
      return 0;
    }
  }
  if ((r = json_get_str(req, "to", true, &to, err)) < 0 ||
      (r = json_get_str(req, "token", false, &token, err)) < 0 ||
      (r = json_get_bool(req, "keep", false, &keep, err)) < 0 ||
      (r = json_get_str(req, "memory", false, &memory, err)) < 0 ||
      (r = json_get_bool(req, "compress", true, &compress, err)) < 0 ||
      (r = json_get_bool(req, "hold", true, &hold, err)) < 0)
    return r;
  bool mem_auto = !memory || strcmp(memory, "auto") == 0;
  const struct mem_strategy *mem = mem_strategy_find(mem_auto ? "stream" : memory);
  if (!mem)
    return FERRY_INVALID(err, "memory \"%s\": expected \"auto\", \"stream\", \"precopy\", "
                              "\"lazy\" or \"copy\"", memory);
  json_t *dtj = json_object_get(req, "downtime_target_ms");
  if (dtj && (!json_is_integer(dtj) || json_integer_value(dtj) < 1 ||
              json_integer_value(dtj) > 600000))
    return FERRY_INVALID(err, "downtime_target_ms must be a number of milliseconds 1..600000");
  if (mem->precopy && !ckpt_can_track_memory())
    return FERRY_INVALID(err, "memory \"precopy\": the CRIU in use cannot track memory changes "
                              "on this kernel (`criu check --feature mem_dirty_track`; "
                              "scripts/setup builds one that can, see criu/README.md)");
  if (strncmp(to, "tcp://", 6) != 0 && strncmp(to, "http://", 7) != 0 &&
      strncmp(to, "https://", 8) != 0)
    return FERRY_INVALID(err, "target \"%s\": expected tcp://ADDR:PORT or https://ADDR:PORT", to);
  /* Between agents that speak TLS, memory goes inside their TLS connection
   * too (copy): CRIU's page server would carry it in the clear. */
  bool tls = strncmp(to, "https://", 8) == 0;
  if (tls && !mem_auto && strcmp(mem->name, "copy") != 0)
    return FERRY_INVALID(err, "memory \"%s\" would send the container's memory outside the "
                              "agents' TLS connection: use \"copy\" (or \"auto\", which picks it "
                              "with https)", mem->name);
  if (tls && mem_auto)
    mem = mem_strategy_find("copy");
  /* The target's host: an address, or a name resolved here once. */
  struct mig_peer peer;
  if ((r = mig_peer_open(&peer, to, NULL, err)) < 0)
    return r;
  json_t *tj = json_object_get(req, "timeout");
  json_t *rj = json_object_get(req, "redirect_for");
  if (rj && (!json_is_integer(rj) || json_integer_value(rj) < 0 || json_integer_value(rj) > 86400))
    return FERRY_INVALID(err, "redirect_for must be a number of seconds 0..86400");
  /* Check now what can be checked, so that the caller gets a plain error. */
  int64_t used = -1;
  if ((r = agent_ctr_movable(a, ref, &used, err)) < 0)
    return r;
  if (mem_auto && !tls && used >= 0 && used < MEM_AUTO_STREAM_BYTES)
    mem = mem_strategy_find("copy");
  else if (mem_auto && !tls && used >= MEM_AUTO_PRECOPY_BYTES && ckpt_can_track_memory())
    mem = mem_strategy_find("precopy");
  struct outgoing *o = calloc(1, sizeof *o);
  if (!o)
    abort();
  if (want_id)
    snprintf(o->id, sizeof o->id, "%s", want_id);
  else
    random_hex(o->id, 16);
  o->a = a;
  o->ref = xstrdup(ref);
  o->to = xstrdup(to);
  o->token = token ? xstrdup(token) : NULL;
  o->keep = keep;
  o->redirect_s = rj ? (int)json_integer_value(rj) : MIGRATE_REDIRECT_S;
  o->compress = compress;
  o->mem = mem;
  o->ps_fd = -1;
  o->lazy_lfd = o->lazy_sp = -1;
  o->lazy_dump.served_ms = -1;
  o->keeper[0] = o->keeper[1] = -1;
  o->pre_last = -1;
  o->downtime_target_ms = dtj ? (int)json_integer_value(dtj) : 200;
  /* pre-copied pages cross compressed: most of them while the container
   * runs, where compressing costs the pause nothing */
  o->zpages = compress && mem->precopy;
  o->timeout_s = json_is_integer(tj) && json_integer_value(tj) > 0 ? (int)json_integer_value(tj) : 300;
  o->t0 = now_mono_ms();
  o->phases = json_object();
  o->bytes = json_pack("{s:i, s:i, s:i, s:i, s:i}", "layers", 0, "volumes", 0, "rootfs", 0,
                       "pages", 0, "other", 0);
  o->downtime_ms = o->total_ms = -1;
  snprintf(o->status, sizeof o->status, "running");
  snprintf(o->name, sizeof o->name, "%s", ref);
  o->peer = peer;
  snprintf(o->peer.mid, sizeof o->peer.mid, "%s", o->id);
  o->redirect_to = xstrdup(o->peer.addr);
  o->host = (struct mig_host){.a = a, .ref = o->ref, .op = OP_MIGRATION, .to = o->to,
                              .mid = o->id,
                              .after = keep ? AFTER_KEEP : AFTER_REMOVE,
                              .redirect_to = o->redirect_to, .redirect_s = o->redirect_s,
                              .no_hold = !hold};
  o->pipe = (struct mig_pipe){.id = o->id, .fault_prefix = "source", .host = &mig_agent_host,
                              .dest = &peer_dest, .host_ctx = &o->host, .dest_ctx = o,
                              .timeout_s = o->timeout_s, .on_phase = on_pipe_phase};
  pthread_mutex_lock(&m->out_lock);
  o->next = m->out;
  m->out = o;
  m->out_running++;
  pthread_mutex_unlock(&m->out_lock);
  pthread_t th;
  pthread_attr_t at;
  pthread_attr_init(&at);
  pthread_attr_setdetachstate(&at, PTHREAD_CREATE_DETACHED);
  if (pthread_create(&th, &at, source_main, o) != 0) {
    pthread_mutex_lock(&m->out_lock);
    m->out_running--;
    snprintf(o->status, sizeof o->status, "failed");
    snprintf(o->error, sizeof o->error, "cannot start the migration thread");
    pthread_mutex_unlock(&m->out_lock);
    pthread_attr_destroy(&at);
    return FERRY_INTERNAL(err, "cannot start the migration thread");
  }
  pthread_attr_destroy(&at);
  log_info("migrate", "outgoing %s: %s to %s", o->id, ref, to);
  *out = json_pack("{s:s, s:s, s:s}", "id", o->id, "container", ref, "to", to);
  return 0;
}

json_t *migrate_get(struct agent *a, const char *id)
{
  struct migrations *m = agent_migrations(a);
  json_t *j = NULL;
  pthread_mutex_lock(&m->out_lock);
  for (struct outgoing *o = m->out; o; o = o->next)
    if (strcmp(o->id, id) == 0)
      j = report_locked(o);
  pthread_mutex_unlock(&m->out_lock);
  if (!j)
    incoming_get(a, id, &j, NULL);
  return j;
}

json_t *migrate_list(struct agent *a)
{
  struct migrations *m = agent_migrations(a);
  json_t *arr = json_array();
  pthread_mutex_lock(&m->out_lock);
  for (struct outgoing *o = m->out; o; o = o->next)
    json_array_append_new(arr, report_locked(o));
  pthread_mutex_unlock(&m->out_lock);
  pthread_mutex_lock(&m->in_lock);
  for (struct incoming *in = m->in; in; in = in->next)
    json_array_append_new(arr, json_pack("{s:s, s:s, s:s, s:s}", "id", in->id, "role", "target",
                                         "state", target_state_name(in->state), "container",
                                         json_str_or(json_object_get(in->offer, "container"), "name", "")));
  pthread_mutex_unlock(&m->in_lock);
  return arr;
}

json_t *migrate_wait(struct agent *a, const char *id, int timeout_s)
{
  uint64_t deadline = now_mono_ms() + (uint64_t)timeout_s * 1000;
  for (;;) {
    json_t *j = migrate_get(a, id);
    if (!j || strcmp(json_str_or(j, "status", ""), "running") != 0 || now_mono_ms() >= deadline)
      return j;
    json_decref(j);
    usleep(50000);
  }
}

void outgoing_free_all(struct migrations *m)
{
  for (struct outgoing *o = m->out; o;) {
    struct outgoing *next = o->next;
    free(o->ref);
    free(o->to);
    free(o->token);
    json_decref(o->phases);
    json_decref(o->bytes);
    json_decref(o->criu);
    json_decref(o->target);
    json_decref(o->precopy);
    json_decref(o->post_copy);
    free(o->redirect_to);
    free(o->local);
    free(o);
    o = next;
  }
  m->out = NULL;
}

/* Containers that were being migrated away when the agent stopped: ask the
 * target how the migration ended. It runs the container: the copy here
 * goes. It has none (failed, gone, or never got past the restore): resume
 * here. It cannot be asked: resume only if the commit was never sent;
 * otherwise the container stays frozen (the target may run it) and the
 * next start of the agent asks again. */
void source_recover(struct agent *a)
{
  _cleanup_json_ json_t *all = agent_ctr_marked(a, OP_MIGRATION);
  size_t i;
  json_t *rec;
  json_array_foreach(all, i, rec)
  {
    /* copies: resuming here removes the migration mark they are read from */
    _cleanup_free_ char *mid = xstrdup(rec_migration_mid(rec));
    _cleanup_free_ char *to = xstrdup(rec_migration_to(rec));
    _cleanup_free_ char *name = xstrdup(rec_name(rec));
    bool commit_sent = rec_commit_sent(rec);
    /* the same pipeline's recovery step, towards the same target */
    struct outgoing o = {.a = a, .to = to, .ps_fd = -1, .keeper = {-1, -1}, .pre_last = -1};
    snprintf(o.id, sizeof o.id, "%s", mid);
    struct mig_host h = {.a = a, .ref = name, .op = OP_MIGRATION, .to = to, .after = AFTER_REMOVE};
    struct ferry_err ce = {0};
    if (agent_claim_marked(a, rec, &h.claim, &ce) < 0) {
      log_error("migrate", "container %s: migration %s: %s: not recovered", name, mid, ce.msg);
      continue;
    }
    struct mig_pipe p = {.id = o.id, .fault_prefix = "source", .host = &mig_agent_host,
                         .dest = &peer_dest, .host_ctx = &h, .dest_ctx = &o, .timeout_s = 30,
                         .rec = json_incref(agent_claim_rec(h.claim))};
    enum recover_action act = RA_STAY_FROZEN;
    /* a target that cannot be resolved cannot be asked (as when it does
     * not answer) */
    if (migration_id_valid(mid) && strlen(mid) < sizeof o.id &&
        mig_peer_open(&o.peer, to, mid, NULL) == 0 &&
        mig_peer_client(&o.peer, agent_token(a), agent_tls_ca(a), &o.c, NULL) == 0) {
      act = mig_pipe_recover(&p, commit_sent);
      http_client_free(o.c);
    } else if (!commit_sent) {
      /* no target to ask: without the commit it never runs the container */
      act = RA_RESUME_HERE;
      mig_agent_host.thaw(&p);
      mig_agent_host.release(&p, true);
    }
    if (h.claim) /* it stays frozen, its mark kept: the next start asks again */
      mig_agent_host.release(&p, false);
    json_decref(o.tr);
    mig_pipe_fini(&p);
    if (act == RA_REMOVE_HERE)
      log_warn("migrate", "container %s: migration %s completed on %s while the agent was down: "
                          "removed the copy here", name, mid, to);
    else if (act == RA_STAY_FROZEN || act == RA_COMMIT_AGAIN)
      log_warn("migrate", "container %s: migration %s: the commit was sent but %s cannot be asked "
                          "whether it runs the container: it stays frozen here", name, mid, to);
    else
      log_warn("migrate", "container %s: migration %s did not complete: resumed it here", name, mid);
  }
}
