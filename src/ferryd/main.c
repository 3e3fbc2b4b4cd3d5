/* ferryd: the ferry node agent. Owns this host's containers and serves the
 * REST/JSON API (docs/api.md) on a unix socket. */
#include <getopt.h>
#include <libgen.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>
#include <sys/stat.h>
#include <unistd.h>

#include "agent/agent.h"
#include "migrate/migrate.h"
#include "ckpt/ckpt.h"
#include "api/api.h"
#include "util/cleanup.h"
#include "util/config.h"
#include "util/fs.h"
#include "util/json.h"
#include "util/log.h"
#include "util/relay.h"
#include "util/strv.h"

#ifndef FERRY_LIBEXECDIR
#define FERRY_LIBEXECDIR "/usr/local/libexec"
#endif

#define FERRYD_CONF "/etc/ferry/ferryd.conf"

static void usage(FILE *f)
{
  fprintf(f,
          "Usage: ferryd [OPTIONS]\n"
          "The ferry node agent.\n\n"
          "  --root DIR            state directory (default /var/lib/ferry)\n"
          "  --socket PATH         API unix socket (default /run/ferry/ferryd.sock)\n"
          "  --runc-root DIR       runc state directory (default /run/ferry/runc)\n"
          "  --runc PATH           runc binary (default: runc on PATH)\n"
          "  --shim PATH           ferry-shim binary (default: next to ferryd)\n"
          "  --bridge NAME         container bridge (default ferry0)\n"
          "  --subnet CIDR         container subnet (default 10.89.0.0/24)\n"
          "  --max-entry-size N    largest file accepted in an image archive (bytes, or 64M, 2G)\n"
          "  --max-upload N        largest image upload accepted (bytes, or 512M, 10G)\n"
          "  --gateway ADDR        the bridge's address (default: the subnet's first)\n"
          "  --listen ADDR:PORT    also serve the API on TCP (for migrations and remote CLIs)\n"
          "  --token-file FILE     bearer token required on TCP, also used towards peer agents\n"
          "  --insecure-no-token   allow --listen without a token (anyone who reaches the port\n"
          "                        controls the agent: only for a closed test network)\n"
          "  --tls-cert FILE, --tls-key FILE   serve HTTPS on TCP\n"
          "  --tls-ca FILE         CA that signed the peer agents' certificates\n"
          "  --migration-timeout S abandon an incoming migration after S seconds (default 600)\n"
          "  --peer-allow CIDR     addresses the seed API's /start_migration may pull from\n"
          "                        (repeatable; default: the networks this host is on)\n"
          "  --seed-config FILE    what the seed API's /start_container runs for each name\n"
          "                        (JSON: {\"NAME\": {\"image\", \"cmd\", \"ports\", \"volumes\"}};\n"
          "                        built in: redis -> image redis, -p 6379:6379)\n"
          "  --coord URL[,URL...]  register with this coordinator (the first of several that\n"
          "                        answers) and send heartbeats\n"
          "  --node-name NAME      this node's name there (default: the agent id)\n"
          "  --advertise URL       how peers reach this agent (default tcp://LISTEN)\n"
          "  --satellite NAME      the satellite (TLE name) this node runs on\n"
          "  --heartbeat S         seconds between heartbeats (default 5)\n"
          "  --overlay VNI         join the container networks of hosts on other networks\n"
          "                        over VXLAN (docs/networking.md); members from\n"
          "                        --overlay-peer and the coordinator's registry\n"
          "  --underlay ADDR       this host's address between the hosts (default: the\n"
          "                        source address towards the first --overlay-peer)\n"
          "  --overlay-peer ADDR   another member's underlay address or name (repeatable)\n"
          "  --overlay-port N      the overlay's UDP port (default 4789)\n"
          "  --config FILE         options, one per line as NAME = VALUE (default\n"
          "                        " FERRYD_CONF " if it exists); flags override it\n"
          "  --debug               verbose logs\n"
          "  -h, --help            this help\n");
}

/* Registration with a coordinator: the agent says who and where it is, again
 * every interval (the heartbeat). */
struct announce {
  const char *coord, *name, *url, *satellite, *token, *ca;
  struct overlay *overlay; /* vni 0: not a member of one */
  char *secret_path; /* ROOT/coord-node.json: the secret the coordinator bound our name to */
  int interval_s;
  pthread_mutex_t lock;
  pthread_cond_t cond;
  bool stop;
};

/* Whether two --coord lists name a coordinator in common (coordinators that
 * share etcd share the nodes' secrets). */
static bool coords_overlap(const char *a, const char *b)
{
  _cleanup_free_ char *copy = xstrdup(a);
  char *save = NULL;
  size_t bl = strlen(b);
  for (char *t = strtok_r(copy, ",", &save); t; t = strtok_r(NULL, ",", &save)) {
    size_t tl = strlen(t);
    for (const char *p = strstr(b, t); p; p = strstr(p + 1, t))
      if ((p == b || p[-1] == ',') && (p + tl == b + bl || p[tl] == ','))
        return true;
  }
  return false;
}

/* The secret the coordinator gave this node's name, if it was this
 * coordinator (one of these) and this name (NULL otherwise). */
static char *secret_load(struct announce *an)
{
  json_t *j = NULL;
  char *s = NULL;
  if (json_load(an->secret_path, &j, NULL) == 0 &&
      coords_overlap(json_str_or(j, "coord", ""), an->coord) &&
      strcmp(json_str_or(j, "name", ""), an->name) == 0 && json_str_or(j, "secret", NULL))
    s = xstrdup(json_str_or(j, "secret", ""));
  json_decref(j);
  return s;
}

/* One registration (the heartbeat) with the coordinator at coord: 0,
 * -EHOSTUNREACH when it could not be reached (or had nobody to answer), or
 * another error when it answered and refused. */
static int announce_once(struct announce *an, const char *coord, char **secretp, bool *was_ok)
{
  struct http_client *c = NULL;
  struct ferry_err err = {0};
  char *secret = *secretp;
  if (http_client_new(coord, &c, &err) < 0)
    return -EINVAL;
  http_client_set_peer(c, "the coordinator", "is ferry-coord running?");
  http_client_set_token(c, an->token);
  http_client_set_ca(c, an->ca);
  http_client_set_timeout(c, 5);
  json_t *body = json_pack("{s:s, s:s}", "name", an->name, "url", an->url);
  if (an->satellite)
    json_object_set_new(body, "satellite", json_string(an->satellite));
  if (secret)
    json_object_set_new(body, "node_secret", json_string(secret));
  if (an->overlay && an->overlay->vni) {
    char u[16];
    ip_format(an->overlay->local, u, sizeof u);
    json_object_set_new(body, "underlay", json_string(u));
    json_object_set_new(body, "overlay", json_integer(an->overlay->vni));
  }
  json_t *got = NULL;
  int r = http_call(c, "POST", "/v1/nodes", body, &got, &err);
  json_decref(body);
  http_client_free(c);
  const char *fresh = json_str_or(got, "node_secret", NULL);
  if (r == 0 && fresh) {
    /* our name is bound to this secret from now on: kept (0600) */
    free(secret);
    secret = *secretp = xstrdup(fresh);
    json_t *keep = json_pack("{s:s, s:s, s:s}", "coord", an->coord, "name", an->name,
                             "secret", secret);
    mode_t old = umask(0077);
    if (json_save_atomic(an->secret_path, keep, &err) < 0)
      log_warn("ferryd", "coordinator %s: cannot keep the node secret: %s", coord, err.msg);
    umask(old);
    json_decref(keep);
  }
  /* the registry's members of our overlay, as of now */
  json_t *members = json_object_get(got, "overlay_members");
  struct ferry_err oerr = {0};
  if (r == 0 && json_is_array(members) && overlay_members_set(an->overlay, members, &oerr) < 0)
    log_warn("ferryd", "overlay: %s", oerr.msg);
  json_decref(got);
  if (r < 0 && *was_ok)
    log_warn("ferryd", "coordinator %s: %s", coord, err.msg);
  else if (r == 0 && !*was_ok)
    log_info("ferryd", "registered with coordinator %s as node %s", coord, an->name);
  *was_ok = r == 0;
  if (r < 0 && (err.code != -EIO || err.klass == FERRY_E_UNAVAILABLE))
    return -EHOSTUNREACH;
  return r;
}

static void *announce_main(void *arg)
{
  struct announce *an = arg;
  bool was_ok = false;
  char *secret = secret_load(an);
  pthread_mutex_lock(&an->lock);
  /* --coord URL[,URL...]: several coordinators (sharing etcd); the one that
   * answered last is asked first */
  _cleanup_strv_ char **coords = NULL;
  {
    _cleanup_free_ char *list = xstrdup(an->coord);
    char *save = NULL;
    for (char *t = strtok_r(list, ",", &save); t; t = strtok_r(NULL, ",", &save))
      strv_push(&coords, t);
  }
  size_t ncoord = strv_len(coords), cur = 0;
  while (!an->stop) {
    pthread_mutex_unlock(&an->lock);
    for (size_t k = 0; k < ncoord; k++) {
      const char *coord = coords[(cur + k) % ncoord];
      int r = announce_once(an, coord, &secret, &was_ok);
      if (r == 0) {
        cur = (cur + k) % ncoord;
        break;
      }
      if (r != -EHOSTUNREACH)
        break; /* answered, and refused: the others would say the same */
    }
    pthread_mutex_lock(&an->lock);
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    ts.tv_sec += an->interval_s;
    if (!an->stop)
      pthread_cond_timedwait(&an->cond, &an->lock, &ts);
  }
  pthread_mutex_unlock(&an->lock);
  free(secret);
  return NULL;
}

static char *default_shim(void)
{
  char exe[PATH_MAX];
  ssize_t n = readlink("/proc/self/exe", exe, sizeof exe - 1);
  if (n > 0) {
    exe[n] = '\0';
    char *p = path_join(dirname(exe), "ferry-shim");
    if (access(p, X_OK) == 0)
      return p;
    free(p);
  }
  return xstrdup(FERRY_LIBEXECDIR "/ferry/ferry-shim");
}

/* File descriptors up to the hard limit: the API's connection limits then
 * stay far below what the agent may open. */
static void raise_nofile(void)
{
  struct rlimit rl;
  if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
    rl.rlim_cur = rl.rlim_max;
    setrlimit(RLIMIT_NOFILE, &rl);
  }
}

int main(int argc, char **argv)
{
  /* A migration's page server, its stream compressed: the target's gate
   * runs "ferryd --page-relay-zstd criu page-server ..." on the accepted
   * connection at fd 3 (migrate/target.c). */
  if (argc >= 3 && strcmp(argv[1], "--page-relay-zstd") == 0)
    return relay_unzstd_exec(3, argv + 2);
  /* ... behind its gate (ckpt_page_server_start): the listening socket at
   * fd 3, the migration's secret on fd 4 */
  if (argc >= 2 && strcmp(argv[1], "--page-gate") == 0)
    return ckpt_page_gate_main(argc - 1, argv + 1);
  raise_nofile();
  struct agent_options o = {0};
  bool no_token_ok = false;
  const char *socket_path = "/run/ferry/ferryd.sock";
  uint64_t max_upload = 0;
  _cleanup_free_ char *shim = NULL;
  _cleanup_free_ char *token = NULL;
  const char *token_file = NULL, *tls_cert = NULL, *tls_key = NULL;
  struct announce an = {.interval_s = 5, .lock = PTHREAD_MUTEX_INITIALIZER,
                        .cond = PTHREAD_COND_INITIALIZER};
  _cleanup_free_ char *advertise = NULL;
  static const struct option lo[] = {
      {"root", required_argument, 0, 'r'},      {"socket", required_argument, 0, 's'},
      {"runc-root", required_argument, 0, 'R'}, {"runc", required_argument, 0, 'c'},
      {"shim", required_argument, 0, 'S'},      {"bridge", required_argument, 0, 'b'},
      {"subnet", required_argument, 0, 'n'},    {"max-entry-size", required_argument, 0, 'm'},
      {"max-upload", required_argument, 0, 'u'}, {"debug", no_argument, 0, 'd'},
      {"gateway", required_argument, 0, 'g'},   {"listen", required_argument, 0, 'l'},
      {"token-file", required_argument, 0, 't'}, {"tls-cert", required_argument, 0, 'C'},
      {"tls-key", required_argument, 0, 'K'},   {"tls-ca", required_argument, 0, 'A'},
      {"migration-timeout", required_argument, 0, 'M'}, {"seed-config", required_argument, 0, 'D'},
      {"peer-allow", required_argument, 0, 'P'},
      {"coord", required_argument, 0, 'O'},     {"node-name", required_argument, 0, 'N'},
      {"advertise", required_argument, 0, 'V'}, {"satellite", required_argument, 0, 'T'},
      {"heartbeat", required_argument, 0, 'B'}, {"insecure-no-token", no_argument, 0, 'I'},
      {"config", required_argument, 0, 'F'},    {"help", no_argument, 0, 'h'},
      {"overlay", required_argument, 0, 'X'},   {"underlay", required_argument, 0, 'U'},
      {"overlay-peer", required_argument, 0, 'Y'}, {"overlay-port", required_argument, 0, 'Z'},
      {0, 0, 0, 0}};
  /* the configuration file's options, then the command line's (freed at
   * return: the options point into it until then) */
  _cleanup_strv_ char **conf_argv = NULL;
  {
    struct ferry_err cerr = {0};
    if (config_args(FERRYD_CONF, lo, &argc, &argv, &conf_argv, &cerr) < 0) {
      fprintf(stderr, "ferryd: %s\n", cerr.msg);
      return 2;
    }
  }
  const char *allow[65] = {0};
  size_t n_allow = 0;
  static const char *ov_peers[OVERLAY_MAX_PEERS + 1];
  size_t n_ov_peers = 0;
  struct overlay_options ovo = {.peers = ov_peers};
  int c;
  while ((c = getopt_long(argc, argv, "h", lo, NULL)) != -1) {
    switch (c) {
    case 'F': break; /* read above */
    case 'r': o.root = optarg; break;
    case 's': socket_path = optarg; break;
    case 'R': o.runc_root = optarg; break;
    case 'c': o.runc = optarg; break;
    case 'S': shim = xstrdup(optarg); break;
    case 'b': o.bridge = optarg; break;
    case 'n': o.subnet = optarg; break;
    case 'm':
    case 'u':
      if (parse_size(optarg, c == 'm' ? &o.max_entry_size : &max_upload) < 0) {
        fprintf(stderr, "ferryd: --%s \"%s\": expected a size in bytes, or with K, M, G or T\n",
                c == 'm' ? "max-entry-size" : "max-upload", optarg);
        return 125;
      }
      break;
    case 'd': ferry_log_set_level(FERRY_LOG_DEBUG); break;
    case 'g': o.gateway = optarg; break;
    case 'l': o.listen = optarg; break;
    case 'I': no_token_ok = true; break;
    case 't': token_file = optarg; break;
    case 'C': tls_cert = optarg; break;
    case 'K': tls_key = optarg; break;
    case 'A': o.tls_ca = optarg; break;
    case 'M': o.migration_timeout_s = atoi(optarg); break;
    case 'D': o.seed_config = optarg; break;
    case 'P':
      if (n_allow + 1 >= sizeof allow / sizeof allow[0]) {
        fprintf(stderr, "ferryd: at most %zu --peer-allow\n", sizeof allow / sizeof allow[0] - 1);
        return 2;
      }
      allow[n_allow++] = optarg;
      o.peer_allow = allow;
      break;
    case 'O': an.coord = optarg; break;
    case 'N': an.name = optarg; break;
    case 'V': an.url = optarg; break;
    case 'T': an.satellite = optarg; break;
    case 'B': an.interval_s = atoi(optarg); break;
    case 'X':
    case 'Z': {
      char *end = NULL;
      long v = strtol(optarg, &end, 10);
      if (!*optarg || *end || v < 1 || v > (c == 'X' ? 16777215 : 65535)) {
        fprintf(stderr, "ferryd: --%s \"%s\": expected %s\n", c == 'X' ? "overlay" : "overlay-port",
                optarg, c == 'X' ? "a VXLAN network identifier, 1..16777215" : "a port, 1..65535");
        return 2;
      }
      if (c == 'X')
        ovo.vni = (uint32_t)v;
      else
        ovo.port = (int)v;
      break;
    }
    case 'U': ovo.local = optarg; break;
    case 'Y':
      if (n_ov_peers >= OVERLAY_MAX_PEERS) {
        fprintf(stderr, "ferryd: at most %d --overlay-peer\n", OVERLAY_MAX_PEERS);
        return 2;
      }
      ov_peers[n_ov_peers++] = optarg;
      break;
    case 'h': usage(stdout); return 0;
    default: usage(stderr); return 2;
    }
  }
  if (!ovo.vni && (ovo.local || n_ov_peers || ovo.port)) {
    fprintf(stderr, "ferryd: --underlay, --overlay-peer and --overlay-port need --overlay VNI\n");
    return 2;
  }
  o.overlay = &ovo;
  if (optind < argc) {
    fprintf(stderr, "ferryd: unexpected argument \"%s\"\n", argv[optind]);
    return 2;
  }
  if (geteuid() != 0) {
    fprintf(stderr, "ferryd: must run as root (it mounts overlays and creates namespaces)\n");
    return 1;
  }
  if (token_file) {
    struct ferry_err terr = {0};
    if (read_token_file(token_file, &token, &terr) < 0) {
      fprintf(stderr, "ferryd: %s\n", terr.msg);
      return 1;
    }
    if (strlen(token) < 16) {
      fprintf(stderr, "ferryd: token in %s is shorter than 16 characters\n", token_file);
      return 1;
    }
    o.token = token;
  }
  if (o.listen && !token && !no_token_ok) {
    fprintf(stderr, "ferryd: --listen %s needs --token-file (anyone who reaches the port would "
                    "control this agent; --insecure-no-token to accept that)\n", o.listen);
    return 2;
  }
  if (o.listen && !token)
    log_warn("ferryd", "listening on %s WITHOUT a token: anyone who reaches it controls this agent",
             o.listen);
  if (!shim)
    shim = default_shim();
  o.shim = shim;
  if (access(shim, X_OK) < 0) {
    fprintf(stderr, "ferryd: ferry-shim not found at %s (use --shim)\n", shim);
    return 1;
  }
  sigset_t mask;
  sigemptyset(&mask);
  sigaddset(&mask, SIGTERM);
  sigaddset(&mask, SIGINT);
  sigaddset(&mask, SIGHUP);
  pthread_sigmask(SIG_BLOCK, &mask, NULL);
  signal(SIGPIPE, SIG_IGN);

  struct agent *a = NULL;
  struct ferry_err err = {0};
  if (ckpt_kdat_prime(NULL, &err) < 0)
    log_warn("ferryd", "%s: every checkpoint and restore probes the kernel again (~30 ms each)",
             err.msg);
  err = (struct ferry_err){0};
  if (agent_open(&a, &o, &err) < 0) {
    fprintf(stderr, "ferryd: %s\n", err.msg);
    return 1;
  }
  /* migrations drive the agent (never the other way round): started on
   * top of it, they resolve what a restart left half moved */
  if (migrate_init(a, &err) < 0) {
    fprintf(stderr, "ferryd: %s\n", err.msg);
    migrate_fini(a);
    agent_close(a);
    return 1;
  }
  struct http_server *srv = NULL;
  struct http_server_options so = {.unix_path = socket_path, .max_upload = max_upload,
                                  .listen = o.listen, .token = token, .tls_cert = tls_cert,
                                  .tls_key = tls_key};
  if (api_server_start(a, &so, &srv, &err) < 0) {
    fprintf(stderr, "ferryd: %s\n", err.msg);
    migrate_fini(a);
    agent_close(a);
    return 1;
  }
  log_info("ferryd", "agent %s ready on unix://%s%s%s (root %s, bridge %s, subnet %s)", agent_id(a),
           socket_path, o.listen ? (tls_cert ? " and https://" : " and tcp://") : "",
           o.listen ? o.listen : "", agent_root(a), agent_bridge(a), agent_subnet(a));
  pthread_t anth;
  bool announcing = false;
  if (an.coord) {
    if (!an.url && o.listen)
      an.url = advertise = xasprintf("%s://%s", tls_cert ? "https" : "tcp", o.listen);
    if (!an.url) {
      log_error("ferryd", "--coord needs --listen or --advertise: peers must reach this agent");
    } else {
      an.name = an.name ? an.name : agent_id(a);
      an.token = token;
      an.ca = o.tls_ca;
      an.secret_path = path_join(agent_root(a), "coord-node.json");
      an.overlay = agent_overlay(a);
      if (an.interval_s < 1)
        an.interval_s = 1;
      announcing = pthread_create(&anth, NULL, announce_main, &an) == 0;
    }
  }
  int sig = 0;
  sigwait(&mask, &sig);
  if (announcing) {
    pthread_mutex_lock(&an.lock);
    an.stop = true;
    pthread_cond_broadcast(&an.cond);
    pthread_mutex_unlock(&an.lock);
    pthread_join(anth, NULL);
  }
  free(an.secret_path);
  log_info("ferryd", "signal %d: shutting down (containers keep running)", sig);
  /* A request stuck on a dead peer must not keep the agent from stopping:
   * the containers do not depend on it (ferry-shim owns them). */
  signal(SIGALRM, SIG_DFL);
  alarm(10);
  http_server_stop(srv);
  migrate_fini(a);
  agent_close(a);
  return 0;
}
