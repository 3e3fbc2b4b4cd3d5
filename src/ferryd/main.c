/* ferryd: the ferry node agent. Owns this host's containers and serves the
 * REST/JSON API (docs/api.md) on a unix socket. */
#include <getopt.h>
#include <libgen.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "agent/agent.h"
#include "api/api.h"
#include "util/cleanup.h"
#include "util/fs.h"
#include "util/log.h"

#ifndef FERRY_LIBEXECDIR
#define FERRY_LIBEXECDIR "/usr/local/libexec"
#endif

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
          "  --max-entry-size N    largest file accepted in an image archive, bytes\n"
          "  --max-upload N        largest image upload accepted, bytes\n"
          "  --gateway ADDR        the bridge's address (default: the subnet's first)\n"
          "  --listen ADDR:PORT    also serve the API on TCP (for migrations and remote CLIs)\n"
          "  --token-file FILE     bearer token required on TCP, also used towards peer agents\n"
          "  --tls-cert FILE, --tls-key FILE   serve HTTPS on TCP\n"
          "  --tls-ca FILE         CA that signed the peer agents' certificates\n"
          "  --migration-timeout S abandon an incoming migration after S seconds (default 600)\n"
          "  --debug               verbose logs\n"
          "  -h, --help            this help\n");
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

int main(int argc, char **argv)
{
  struct agent_options o = {0};
  const char *socket_path = "/run/ferry/ferryd.sock";
  uint64_t max_upload = 0;
  _cleanup_free_ char *shim = NULL;
  _cleanup_free_ char *token = NULL;
  const char *token_file = NULL, *tls_cert = NULL, *tls_key = NULL;
  static const struct option lo[] = {
      {"root", required_argument, 0, 'r'},      {"socket", required_argument, 0, 's'},
      {"runc-root", required_argument, 0, 'R'}, {"runc", required_argument, 0, 'c'},
      {"shim", required_argument, 0, 'S'},      {"bridge", required_argument, 0, 'b'},
      {"subnet", required_argument, 0, 'n'},    {"max-entry-size", required_argument, 0, 'm'},
      {"max-upload", required_argument, 0, 'u'}, {"debug", no_argument, 0, 'd'},
      {"gateway", required_argument, 0, 'g'},   {"listen", required_argument, 0, 'l'},
      {"token-file", required_argument, 0, 't'}, {"tls-cert", required_argument, 0, 'C'},
      {"tls-key", required_argument, 0, 'K'},   {"tls-ca", required_argument, 0, 'A'},
      {"migration-timeout", required_argument, 0, 'M'},
      {"help", no_argument, 0, 'h'},            {0, 0, 0, 0}};
  int c;
  while ((c = getopt_long(argc, argv, "h", lo, NULL)) != -1) {
    switch (c) {
    case 'r': o.root = optarg; break;
    case 's': socket_path = optarg; break;
    case 'R': o.runc_root = optarg; break;
    case 'c': o.runc = optarg; break;
    case 'S': shim = xstrdup(optarg); break;
    case 'b': o.bridge = optarg; break;
    case 'n': o.subnet = optarg; break;
    case 'm': o.max_entry_size = strtoull(optarg, NULL, 10); break;
    case 'u': max_upload = strtoull(optarg, NULL, 10); break;
    case 'd': ferry_log_set_level(FERRY_LOG_DEBUG); break;
    case 'g': o.gateway = optarg; break;
    case 'l': o.listen = optarg; break;
    case 't': token_file = optarg; break;
    case 'C': tls_cert = optarg; break;
    case 'K': tls_key = optarg; break;
    case 'A': o.tls_ca = optarg; break;
    case 'M': o.migration_timeout_s = atoi(optarg); break;
    case 'h': usage(stdout); return 0;
    default: usage(stderr); return 2;
    }
  }
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
    if (read_file(token_file, 4096, &token, NULL, &terr) < 0) {
      fprintf(stderr, "ferryd: token file: %s\n", terr.msg);
      return 1;
    }
    token[strcspn(token, "\r\n")] = '\0';
    if (strlen(token) < 16) {
      fprintf(stderr, "ferryd: token in %s is shorter than 16 characters\n", token_file);
      return 1;
    }
    o.token = token;
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

  struct agent a;
  struct ferry_err err = {0};
  if (agent_open(&a, &o, &err) < 0) {
    fprintf(stderr, "ferryd: %s\n", err.msg);
    return 1;
  }
  struct api_server *srv = NULL;
  struct api_server_options so = {.unix_path = socket_path, .max_upload = max_upload,
                                  .listen = o.listen, .token = token, .tls_cert = tls_cert,
                                  .tls_key = tls_key};
  if (api_server_start(&a, &so, &srv, &err) < 0) {
    fprintf(stderr, "ferryd: %s\n", err.msg);
    agent_close(&a);
    return 1;
  }
  log_info("ferryd", "agent %s ready on unix://%s%s%s (root %s, bridge %s, subnet %s)", a.id,
           socket_path, o.listen ? (tls_cert ? " and https://" : " and tcp://") : "",
           o.listen ? o.listen : "", a.root, a.net.bridge, a.subnet_str);
  int sig = 0;
  sigwait(&mask, &sig);
  log_info("ferryd", "signal %d: shutting down (containers keep running)", sig);
  /* A request stuck on a dead peer must not keep the agent from stopping:
   * the containers do not depend on it (ferry-shim owns them). */
  signal(SIGALRM, SIG_DFL);
  alarm(10);
  api_server_stop(srv);
  agent_close(&a);
  return 0;
}
