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
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "ckpt/ckpt.h"
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

/* The forked gate: accepts until the source agent connects from its address
 * and sends the migration's page-server secret first (others are closed),
 * then becomes `criu page-server --ps-socket 3` on that connection. The
 * parent may have threads: system calls only. */
static _Noreturn void ps_gate(int lfd, const struct ps_allow *al, const char *secret,
                              uint64_t deadline_ms, int logfd, char *const *argv)
{
  sigset_t none;
  sigemptyset(&none);
  sigprocmask(SIG_SETMASK, &none, NULL);
  int nul = open("/dev/null", O_RDONLY);
  if (nul < 0 || dup2(nul, 0) < 0 || dup2(logfd, 1) < 0 || dup2(logfd, 2) < 0)
    _exit(127);
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
    if (!(sl >= sizeof sa && sa.sin_family == AF_INET && ps_allowed(al, &sa))) {
      static const char msg[] = "ferryd: page server: refused a connection from an address that "
                                "is not the source agent's\n";
      (void)!write(2, msg, sizeof msg - 1);
      close(c);
      continue;
    }
    if (!relay_secret_ok(c, secret, CKPT_PS_SECRET_LEN)) {
      static const char msg[] = "ferryd: page server: refused a connection without the "
                                "migration's secret\n";
      (void)!write(2, msg, sizeof msg - 1);
      close(c);
      continue;
    }
    close(lfd);
    /* a source that vanishes (host lost, no FIN) ends the page server
     * within about a minute rather than never */
    relay_keepalive(c);
    if (c != 3 && (dup2(c, 3) < 0 || close(c) < 0))
      _exit(127);
    execvp(argv[0], argv);
    _exit(127);
  }
  static const char tmo[] = "ferryd: page server: the source agent never connected\n";
  (void)!write(2, tmo, sizeof tmo - 1);
  _exit(3);
}

int ckpt_page_server_start(struct ckpt_page_server *ps, struct ferry_err *err)
{
  int r = 0, logfd = -1;
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
  if ((logfd = open(ps->log_path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600)) < 0) {
    r = ferry_err_sys(err, -errno, "%s", ps->log_path);
    goto out;
  }
  struct ps_allow al;
  ps_allow_fill(&al, ps->peer);
  random_hex(ps->secret, CKPT_PS_SECRET_LEN);
  /* zstd: the stream comes compressed; ferryd itself (the same binary)
   * unpacks it into a socket pair that criu page-server reads instead */
  char *argv[] = {"/proc/self/exe", "--page-relay-zstd", "criu", "page-server", "--images-dir",
                  (char *)ps->images_dir, "--ps-socket", "3", NULL, NULL, NULL};
  char **av = ps->zstd ? argv : argv + 2;
  if (ps->prev_dir) {
    argv[8] = "--prev-images-dir";
    argv[9] = (char *)ps->prev_dir;
  }
  pid_t pid = fork();
  if (pid < 0) {
    r = ferry_err_sys(err, -errno, "page server: fork");
    goto out;
  }
  if (pid == 0)
    ps_gate(lfd, &al, ps->secret, ps->deadline_ms, logfd, av);
  ps->pid = pid;
out:
  if (lfd >= 0)
    close(lfd);
  if (logfd >= 0)
    close(logfd);
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
