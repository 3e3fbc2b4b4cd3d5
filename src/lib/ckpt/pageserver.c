/* CRIU's page server for a migration's memory, behind a gate of ferryd's
 * own: see ckpt.h. */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <ifaddrs.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "ckpt/ckpt.h"
#include "ckpt/swrk.h"
#include "util/cleanup.h"
#include "util/fs.h"
#include "util/relay.h"
#include "util/spawn.h"

/* Who may connect to a migration's page server: the address the offer came
 * from (the source agent); for a local offer, an address of this host. */
#define PS_ALLOW_MAX 32
struct ps_allow {
  int n;
  bool loopback;
  struct in_addr a[PS_ALLOW_MAX];
};

static void ps_allow_fill(struct ps_allow *al, const char *peer)
{
  memset(al, 0, sizeof *al);
  struct in_addr x;
  if (peer && *peer && inet_pton(AF_INET, peer, &x) == 1) {
    al->a[al->n++] = x;
    return;
  }
  al->loopback = true;
  struct ifaddrs *ifs = NULL;
  if (getifaddrs(&ifs) < 0)
    return;
  for (struct ifaddrs *i = ifs; i && al->n < PS_ALLOW_MAX; i = i->ifa_next)
    if (i->ifa_addr && i->ifa_addr->sa_family == AF_INET)
      al->a[al->n++] = ((struct sockaddr_in *)(void *)i->ifa_addr)->sin_addr;
  freeifaddrs(ifs);
}

static bool ps_allowed(const struct ps_allow *al, const struct sockaddr_in *sa)
{
  if (al->loopback && (ntohl(sa->sin_addr.s_addr) >> 24) == 127)
    return true;
  for (int i = 0; i < al->n; i++)
    if (al->a[i].s_addr == sa->sin_addr.s_addr)
      return true;
  return false;
}

/* The gate (ferryd --page-gate, its own process): accepts on fd 3 until the
 * source agent connects from an allowed address and sends the migration's
 * page-server secret (read from fd 4, never on a command line: /proc/PID/
 * cmdline is world-readable) first; others are closed. Then it becomes
 * argv (criu page-server --ps-socket 3) on that connection. */
int ckpt_page_gate_main(int argc, char **argv)
{
  const char *allow = NULL;
  bool local = false;
  uint64_t deadline_ms = 0;
  int i = 1;
  for (; i < argc && strcmp(argv[i], "--") != 0; i++) {
    if (strcmp(argv[i], "--allow") == 0 && i + 1 < argc)
      allow = argv[++i];
    else if (strcmp(argv[i], "--allow-local") == 0)
      local = true;
    else if (strcmp(argv[i], "--deadline-ms") == 0 && i + 1 < argc)
      deadline_ms = strtoull(argv[++i], NULL, 10);
    else
      break;
  }
  if (i >= argc - 1 || strcmp(argv[i], "--") != 0 || (!allow && !local) || !deadline_ms) {
    fprintf(stderr, "ferryd --page-gate: usage: --deadline-ms MONO_MS (--allow ADDR | "
                    "--allow-local) -- PROGRAM ARGS (fd 3: listening socket, fd 4: secret)\n");
    return 2;
  }
  char **prog = argv + i + 1;
  char secret[CKPT_PS_SECRET_LEN + 1] = "";
  size_t have = 0;
  while (have < CKPT_PS_SECRET_LEN) {
    ssize_t n = read(4, secret + have, CKPT_PS_SECRET_LEN - have);
    if (n <= 0)
      break;
    have += (size_t)n;
  }
  close(4);
  if (have != CKPT_PS_SECRET_LEN) {
    fprintf(stderr, "ferryd --page-gate: no secret on fd 4\n");
    return 2;
  }
  struct ps_allow al;
  ps_allow_fill(&al, local ? NULL : allow);
  int lfd = 3;
  for (int n = 0; n < 10000; n++) {
    uint64_t now = now_mono_ms();
    if (now >= deadline_ms)
      break;
    struct pollfd pf = {.fd = lfd, .events = POLLIN};
    uint64_t wait = deadline_ms - now;
    if (poll(&pf, 1, wait > 60000 ? 60000 : (int)wait) <= 0)
      continue;
    struct sockaddr_in sa;
    socklen_t sl = sizeof sa;
    int c = accept4(lfd, (struct sockaddr *)&sa, &sl, 0);
    if (c < 0)
      continue;
    if (!(sl >= sizeof sa && sa.sin_family == AF_INET && ps_allowed(&al, &sa))) {
      fprintf(stderr, "ferryd: page server: refused a connection from an address that is not "
                      "the source agent's\n");
      close(c);
      continue;
    }
    if (!relay_secret_ok(c, secret, CKPT_PS_SECRET_LEN)) {
      fprintf(stderr, "ferryd: page server: refused a connection without the migration's "
                      "secret\n");
      close(c);
      continue;
    }
    close(lfd);
    /* a source that vanishes (host lost, no FIN) ends the page server
     * within about a minute rather than never */
    relay_keepalive(c);
    if (c != 3 && (dup2(c, 3) < 0 || close(c) < 0))
      return 127;
    execvp(prog[0], prog);
    fprintf(stderr, "ferryd: page server: run %s: %s\n", prog[0], strerror(errno));
    return 127;
  }
  fprintf(stderr, "ferryd: page server: the source agent never connected\n");
  return 3;
}

int ckpt_page_server_start(struct ckpt_page_server *ps, struct ferry_err *err)
{
  int r = 0;
  int sp[2] = {-1, -1};
  int lfd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  struct sockaddr_in sa = {.sin_family = AF_INET};
  if (ps->listen_ip)
    inet_pton(AF_INET, ps->listen_ip, &sa.sin_addr);
  socklen_t sl = sizeof sa;
  if (lfd < 0 || bind(lfd, (struct sockaddr *)&sa, sizeof sa) < 0 || listen(lfd, 8) < 0 ||
      getsockname(lfd, (struct sockaddr *)&sa, &sl) < 0) {
    r = ferry_err_sys(err, -errno, "page server port");
    goto out;
  }
  ps->port = ntohs(sa.sin_port);
  /* the secret goes to the gate on a pipe (it fits the pipe's buffer) */
  random_hex(ps->secret, CKPT_PS_SECRET_LEN);
  if (pipe2(sp, O_CLOEXEC) < 0 ||
      write(sp[1], ps->secret, CKPT_PS_SECRET_LEN) != CKPT_PS_SECRET_LEN) {
    r = ferry_err_sys(err, -errno, "page server: secret pipe");
    goto out;
  }
  close(sp[1]);
  sp[1] = -1;
  struct in_addr x;
  bool peer = ps->peer && *ps->peer && inet_pton(AF_INET, ps->peer, &x) == 1;
  char deadline[24];
  snprintf(deadline, sizeof deadline, "%llu", (unsigned long long)ps->deadline_ms);
  const char *argv[24];
  size_t k = 0;
  argv[k++] = "/proc/self/exe";
  argv[k++] = "--page-gate";
  argv[k++] = "--deadline-ms";
  argv[k++] = deadline;
  if (peer) {
    argv[k++] = "--allow";
    argv[k++] = ps->peer;
  } else {
    argv[k++] = "--allow-local";
  }
  argv[k++] = "--";
  /* zstd: the stream comes compressed; ferryd itself (the same binary)
   * unpacks it into a socket pair that criu page-server reads instead */
  if (ps->zstd) {
    argv[k++] = "/proc/self/exe";
    argv[k++] = "--page-relay-zstd";
  }
  argv[k++] = "criu";
  argv[k++] = "page-server";
  argv[k++] = "--images-dir";
  argv[k++] = ps->images_dir;
  argv[k++] = "--ps-socket";
  argv[k++] = "3";
  if (ps->prev_dir) {
    argv[k++] = "--prev-images-dir";
    argv[k++] = ps->prev_dir;
  }
  argv[k] = NULL;
  struct spawn_opts so = {.envp = ckpt_criu_env(), .pass_fd = lfd, .pass_as = 3, .pass_fd2 = sp[0], .pass_as2 = 4};
  int pid = 0;
  if ((r = spawn_bg_opts(argv, ps->log_path, &so, &pid, err)) < 0) {
    ferry_err_wrap(err, "page server");
    goto out;
  }
  ps->pid = pid;
out:
  if (lfd >= 0)
    close(lfd);
  for (int i = 0; i < 2; i++)
    if (sp[i] >= 0)
      close(sp[i]);
  return r;
}

int ckpt_page_server_end(int pid, const char *log_path, int timeout_ms, struct ferry_err *err)
{
  int pr = spawn_reap(pid, timeout_ms, true);
  if (pr == 0)
    return 0;
  _cleanup_free_ char *e = criu_log_errors(log_path, 500);
  return FERRY_INTERNAL(err, "CRIU page server %s: %s",
                        pr == -ETIMEDOUT ? "did not finish" : "failed", e);
}
