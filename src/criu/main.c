/* ferry-criu: the program runc runs as CRIU (runc --criu) for ferry's
 * restores. runc asks CRIU for its version before every checkpoint and
 * restore, by starting `criu swrk` for that one question: a CRIU start
 * (~12 ms on these machines) inside the pause of every move. ferry-criu
 * answers a VERSION request with the answer CRIU itself gave before, kept
 * in the file $FERRY_CRIU_CACHE with the identity (device, inode, size,
 * modification time) of the criu binary it came from, and asks CRIU again
 * whenever that binary changed. Every other run (the restore itself, a
 * feature check) is handed to the real criu unchanged: exec, the same
 * arguments and descriptors.
 *
 * With $FERRY_CRIU_GATE (a unix socket of ferryd's), a RESTORE request is
 * held: ferry-criu connects there, says "ready", and runs criu only when
 * it reads "g"; anything else (the agent closing it) ends it with an error,
 * so runc's restore fails and cleans up. ferryd starts a migration's
 * `runc restore` so while the source still dumps, and lets it go once the
 * images are there: runc's start, its cgroups and its CRIU start are no
 * longer inside the pause.
 *
 * CRIU's own start (exec, its libraries: ~15 ms of CPU here, more in time
 * on a busy machine) is also made before the gate opens: ferry-criu takes
 * runc's request, starts `criu swrk` on a socket pair of its own (CRIU
 * then waits for a request), and at "g" hands it the request and relays
 * every message between the two (with the descriptors they carry) until
 * CRIU ends, whose exit status it then exits with; CRIU's answer that the
 * restore succeeded is also said to the agent on the gate's connection
 * ("done PID"), ahead of runc's end. CRIU opens the images
 * and work directories runc names as descriptors of its peer's; its peer
 * being ferry-criu now, ferry-criu opens runc's and names its own. */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/prctl.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include "ckpt/criu-log-level.h"
#include "ckpt/criu-ready.h"
#include "criu-rpc.pb-c.h"

#define MSG_MAX (64 * 1024)
#define CACHE_MAGIC "ferry-criu-version 1"

/* The criu on PATH, resolved as execvp would, into out. */
static int criu_path(char *out, size_t n)
{
  const char *path = getenv("PATH");
  if (!path || !*path)
    path = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";
  while (*path) {
    const char *end = strchr(path, ':');
    size_t len = end ? (size_t)(end - path) : strlen(path);
    if (len > 0 && len + 6 < n) {
      memcpy(out, path, len);
      memcpy(out + len, "/criu", 6);
      if (access(out, X_OK) == 0)
        return 0;
    }
    path += len + (end ? 1 : 0);
  }
  return -1;
}

/* What identifies the criu binary (after links): an answer kept for
 * another binary is not used. */
static int criu_identity(char *out, size_t n)
{
  char p[PATH_MAX];
  struct stat st;
  if (criu_path(p, sizeof p) < 0 || stat(p, &st) < 0)
    return -1;
  snprintf(out, n, "%llu %llu %lld %lld.%09ld", (unsigned long long)st.st_dev,
           (unsigned long long)st.st_ino, (long long)st.st_size, (long long)st.st_mtim.tv_sec,
           st.st_mtim.tv_nsec);
  return 0;
}

/* Whether buf (n bytes) is CRIU's successful answer to VERSION. */
static int version_answer_ok(const uint8_t *buf, size_t n)
{
  CriuResp *r = criu_resp__unpack(NULL, n, buf);
  int ok = r && r->type == CRIU_REQ_TYPE__VERSION && r->success && r->version;
  if (r)
    criu_resp__free_unpacked(r, NULL);
  return ok;
}

static ssize_t read_cache(const char *cache, const char *ident, uint8_t *buf, size_t cap)
{
  FILE *f = fopen(cache, "re");
  if (!f)
    return -1;
  char line[512], want[400];
  size_t len = 0;
  ssize_t r = -1;
  int wl = snprintf(want, sizeof want, "%s %s ", CACHE_MAGIC, ident);
  if (wl > 0 && wl < (int)sizeof want && fgets(line, sizeof line, f) &&
      strncmp(line, want, (size_t)wl) == 0) {
    char *end;
    len = strtoul(line + wl, &end, 10);
    if (*end == '\n' && len > 0 && len <= cap && fread(buf, 1, len, f) == len &&
        version_answer_ok(buf, len))
      r = (ssize_t)len;
  }
  fclose(f);
  return r;
}

static void write_cache(const char *cache, const char *ident, const uint8_t *buf, size_t n)
{
  char tmp[PATH_MAX];
  if (snprintf(tmp, sizeof tmp, "%s.%d", cache, (int)getpid()) >= (int)sizeof tmp)
    return;
  FILE *f = fopen(tmp, "we");
  if (!f)
    return;
  int ok = fprintf(f, "%s %s %zu\n", CACHE_MAGIC, ident, n) > 0 && fwrite(buf, 1, n, f) == n;
  ok = (fclose(f) == 0) && ok;
  if (!ok || rename(tmp, cache) < 0)
    unlink(tmp);
}

/* In a forked child: becomes `criu swrk` serving socket sk (kept across
 * the exec); exits 127 if it cannot. */
static void exec_swrk(int sk) __attribute__((noreturn));
static void exec_swrk(int sk)
{
  char fd[16];
  if (fcntl(sk, F_SETFD, 0) < 0)
    _exit(127);
  snprintf(fd, sizeof fd, "%d", sk);
  /* its libraries' symbols bound now, before the restore (see the agent's
   * ckpt_criu_env): bound lazily, each task CRIU forks resolves them and
   * copies the pages that hold them, inside the pause */
  setenv("LD_BIND_NOW", "1", 1);
  execlp("criu", "criu", "swrk", fd, (char *)NULL);
  _exit(127);
}

/* CRIU's own answer to VERSION: `criu swrk` on a socket pair, one request. */
static ssize_t ask_criu(uint8_t *buf, size_t cap)
{
  int sv[2];
  if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv) < 0)
    return -1;
  pid_t pid = fork();
  if (pid < 0) {
    close(sv[0]);
    close(sv[1]);
    return -1;
  }
  if (pid == 0)
    exec_swrk(sv[1]);
  close(sv[1]);
  ssize_t n = -1;
  CriuReq req = CRIU_REQ__INIT;
  req.type = CRIU_REQ_TYPE__VERSION;
  uint8_t out[64];
  size_t len = criu_req__get_packed_size(&req);
  if (len <= sizeof out) {
    criu_req__pack(&req, out);
    struct pollfd p = {.fd = sv[0], .events = POLLIN};
    if (send(sv[0], out, len, MSG_NOSIGNAL) == (ssize_t)len && poll(&p, 1, 10000) == 1)
      n = recv(sv[0], buf, cap, 0);
  }
  close(sv[0]); /* swrk ends at the end of its requests */
  int st;
  while (waitpid(pid, &st, 0) < 0 && errno == EINTR)
    ;
  if (n <= 0 || !version_answer_ok(buf, (size_t)n))
    return -1;
  return n;
}

/* The request's type on fd, peeked (it stays for criu); -1 if unknown. */
static int request_type(int fd)
{
  static uint8_t in[MSG_MAX];
  ssize_t n = recv(fd, in, sizeof in, MSG_PEEK);
  if (n <= 0)
    return -1;
  CriuReq *req = criu_req__unpack(NULL, (size_t)n, in);
  int t = req ? (int)req->type : -1;
  if (req)
    criu_req__free_unpacked(req, NULL);
  return t;
}

/* Holds a restore until the agent says go: 0 go (or no gate to wait at),
 * -1 refused. With keep, the connection stays open as *keep (to say when
 * CRIU's restore is done), else it is closed. */
static int wait_at_gate(const char *path, int *keep)
{
  struct sockaddr_un sa = {.sun_family = AF_UNIX};
  if (strlen(path) >= sizeof sa.sun_path)
    return -1;
  memcpy(sa.sun_path, path, strlen(path));
  int s = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (s < 0)
    return -1;
  if (connect(s, (struct sockaddr *)&sa, sizeof sa) < 0) {
    close(s);
    return -1;
  }
  char c = 0;
  ssize_t r = -1;
  if (write(s, "ready\n", 6) == 6) {
    do
      r = read(s, &c, 1);
    while (r < 0 && errno == EINTR);
  }
  bool go = r == 1 && c == 'g';
  if (go && keep)
    *keep = s;
  else
    close(s);
  return go ? 0 : -1;
}

/* CRIU's answer that the restore succeeded (its processes run: CRIU
 * resumes them before it answers) goes to the agent on the gate's
 * connection as "done PID": it need not wait for CRIU's exit, runc's end
 * and ferry-shim's word (10-15 ms here) before the copy counts as
 * restored. Anything else says nothing; the agent then waits for the
 * shim as before. */
static void tell_done(int *gs, const uint8_t *msg, size_t len)
{
  if (*gs < 0)
    return;
  CriuResp *resp = criu_resp__unpack(NULL, len, msg);
  if (!resp)
    return;
  if (resp->type == CRIU_REQ_TYPE__RESTORE && resp->success && resp->restore &&
      resp->restore->pid > 0) {
    char line[32];
    int n = snprintf(line, sizeof line, "done %d\n", resp->restore->pid);
    if (write(*gs, line, (size_t)n) != n) {
      /* the agent went: runc and ferry-shim still finish the restore */
    }
    close(*gs);
    *gs = -1;
  }
  criu_resp__free_unpacked(resp, NULL);
}

/* runc's VERSION request on fd (request_type said so), answered here: 0;
 * -1 when anything fails, for the real criu to take. */
static int answer_version(int fd, const char *cache)
{
  static uint8_t in[MSG_MAX], ans[MSG_MAX];
  ssize_t n = recv(fd, in, sizeof in, MSG_PEEK);
  if (n <= 0)
    return -1;
  char ident[256];
  if (criu_identity(ident, sizeof ident) < 0)
    return -1;
  ssize_t len = read_cache(cache, ident, ans, sizeof ans);
  if (len < 0) {
    if ((len = ask_criu(ans, sizeof ans)) < 0)
      return -1;
    write_cache(cache, ident, ans, (size_t)len);
  }
  if (recv(fd, in, sizeof in, 0) != n) /* the request, taken */
    return -1;
  return send(fd, ans, (size_t)len, MSG_NOSIGNAL) == len ? 0 : 1;
}

/* One message from `from` to `to`, with the descriptors it carries: 1
 * passed, 0 end of file on from, -1 error. */
static uint8_t relay_buf[MSG_MAX];
static size_t relay_len; /* of the last message relayed, in relay_buf */

/* CRIU's notifications during a restore that runc does nothing for (its
 * handler has no case for them, or one that acts only on networks runc
 * made itself, which a ferry container has none of): answered here, each a
 * round trip through runc less inside the pause (0.3-3 ms apiece on these
 * machines). setup-namespaces (runc's hooks), post-restore (runc's state),
 * orphan-pts-master (a descriptor), status-ready and anything else go on
 * to runc. */
static const char *const notify_here[] = {"pre-restore", "post-setup-namespaces", "network-lock",
                                          "network-unlock", "pre-resume", "post-resume"};

/* Answers CRIU's message msg (n bytes, nfd descriptors) on fd x when it is
 * such a notification: true then (it is not for runc). */
static bool answered_here(int x, const uint8_t *msg, size_t n, int nfd)
{
  if (nfd > 0)
    return false;
  CriuResp *resp = criu_resp__unpack(NULL, n, msg);
  if (!resp)
    return false;
  bool here = false;
  if (resp->type == CRIU_REQ_TYPE__NOTIFY && resp->success && resp->notify && resp->notify->script)
    for (size_t i = 0; i < sizeof notify_here / sizeof *notify_here; i++)
      if (strcmp(resp->notify->script, notify_here[i]) == 0)
        here = true;
  criu_resp__free_unpacked(resp, NULL);
  if (!here)
    return false;
  CriuReq ans = CRIU_REQ__INIT;
  ans.type = CRIU_REQ_TYPE__NOTIFY;
  ans.has_notify_success = true;
  ans.notify_success = true;
  return ckpt_criu_send_small(x, &ans) == 0;
}

/* One message from `from` to `to` (unless answer, given, takes it: then
 * nothing goes to `to`), with the descriptors it carries: 1 passed or
 * answered, 0 end of file on from, -1 error. */
static int relay_one(int from, int to, bool (*answer)(int, const uint8_t *, size_t, int))
{
  uint8_t *buf = relay_buf;
  union {
    char b[CMSG_SPACE(16 * sizeof(int))];
    struct cmsghdr align;
  } ctl;
  struct iovec iov = {.iov_base = buf, .iov_len = sizeof relay_buf};
  struct msghdr mh = {.msg_iov = &iov, .msg_iovlen = 1, .msg_control = ctl.b,
                      .msg_controllen = sizeof ctl.b};
  ssize_t n;
  do
    n = recvmsg(from, &mh, MSG_CMSG_CLOEXEC);
  while (n < 0 && errno == EINTR);
  if (n <= 0)
    return n == 0 ? 0 : -1;
  int fds[16], nfd = 0;
  for (struct cmsghdr *c = CMSG_FIRSTHDR(&mh); c; c = CMSG_NXTHDR(&mh, c))
    if (c->cmsg_level == SOL_SOCKET && c->cmsg_type == SCM_RIGHTS)
      for (size_t k = 0; k < (c->cmsg_len - CMSG_LEN(0)) / sizeof(int) && nfd < 16; k++)
        memcpy(&fds[nfd++], CMSG_DATA(c) + k * sizeof(int), sizeof(int));
  relay_len = (size_t)n;
  if (answer && answer(from, buf, (size_t)n, nfd))
    return 1;
  iov.iov_len = (size_t)n;
  struct msghdr out = {.msg_iov = &iov, .msg_iovlen = 1};
  union {
    char b[CMSG_SPACE(16 * sizeof(int))];
    struct cmsghdr align;
  } octl;
  if (nfd > 0) {
    memset(&octl, 0, sizeof octl);
    out.msg_control = octl.b;
    out.msg_controllen = CMSG_SPACE((size_t)nfd * sizeof(int));
    struct cmsghdr *c = CMSG_FIRSTHDR(&out);
    c->cmsg_level = SOL_SOCKET;
    c->cmsg_type = SCM_RIGHTS;
    c->cmsg_len = CMSG_LEN((size_t)nfd * sizeof(int));
    memcpy(CMSG_DATA(c), fds, (size_t)nfd * sizeof(int));
  }
  ssize_t w;
  do
    w = sendmsg(to, &out, MSG_NOSIGNAL);
  while (w < 0 && errno == EINTR);
  for (int k = 0; k < nfd; k++)
    close(fds[k]);
  return w == n ? 1 : -1;
}

/* runc's descriptor fd (a directory), as one of ferry-criu's: -1 if it
 * cannot be opened. */
static int reopen_runc_fd(int fd)
{
  char p[64];
  snprintf(p, sizeof p, "/proc/%d/fd/%d", (int)getppid(), fd);
  return open(p, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
}

/* The restore on runc's socket rfd with CRIU started ahead (see the top):
 * returns only when it could not set that up (nothing taken from runc: the
 * caller goes on the usual way); otherwise exits with CRIU's status. */
static int restore_ahead(int rfd, const char *gate)
{
  static uint8_t in[MSG_MAX];
  ssize_t n = recv(rfd, in, sizeof in, MSG_PEEK | MSG_TRUNC);
  if (n <= 0 || (size_t)n > sizeof in)
    return -1;
  CriuReq *req = criu_req__unpack(NULL, (size_t)n, in);
  if (!req || req->type != CRIU_REQ_TYPE__RESTORE || !req->opts || req->opts->images_dir_fd < 0 ||
      req->opts->has_status_fd || req->opts->has_pidfd_store_sk) {
    if (req)
      criu_req__free_unpacked(req, NULL);
    return -1; /* what this does not know how to hand over */
  }
  int dfd = reopen_runc_fd(req->opts->images_dir_fd), wfd = -1;
  if (dfd >= 0 && req->opts->has_work_dir_fd && (wfd = reopen_runc_fd(req->opts->work_dir_fd)) < 0) {
    close(dfd);
    dfd = -1;
  }
  int sv[2] = {-1, -1};
  if (dfd < 0 || socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv) < 0) {
    if (dfd >= 0)
      close(dfd);
    if (wfd >= 0)
      close(wfd);
    criu_req__free_unpacked(req, NULL);
    return -1;
  }
  req->opts->images_dir_fd = dfd;
  if (wfd >= 0)
    req->opts->work_dir_fd = wfd;
  /* runc asks for CRIU's debug log, ~1,700 lines for a small container,
   * each a system call of CRIU's inside the pause: the agent's level
   * instead (ckpt/criu-log-level.h) */
  req->opts->has_log_level = true;
  req->opts->log_level = ckpt_criu_log_level();
  size_t len = criu_req__get_packed_size(req);
  uint8_t *out = len <= sizeof in ? malloc(len) : NULL;
  if (out)
    criu_req__pack(req, out);
  criu_req__free_unpacked(req, NULL);
  pid_t me = getpid();
  pid_t pid = out ? fork() : -1;
  if (pid == 0) {
    /* CRIU, waiting for the request on sv[1]; it dies with ferry-criu */
    prctl(PR_SET_PDEATHSIG, SIGKILL);
    if (getppid() != me)
      _exit(127);
    close(rfd); /* runc's socket is ferry-criu's: runc sees its end when ferry-criu ends */
    exec_swrk(sv[1]);
  }
  close(sv[1]);
  if (pid < 0) {
    free(out);
    close(sv[0]);
    close(dfd);
    if (wfd >= 0)
      close(wfd);
    return -1;
  }
  if (ckpt_criu_ready(sv[0], 30000) < 0)
    fprintf(stderr, "ferry-criu: criu swrk did not answer before the restore (it goes on)\n");
  /* from here runc's request is this program's to deliver */
  if (recv(rfd, in, sizeof in, 0) != n) {
    fprintf(stderr, "ferry-criu: runc's request could not be taken\n");
    kill(pid, SIGKILL);
    waitpid(pid, NULL, 0);
    exit(1);
  }
  int gs = -1;
  if (wait_at_gate(gate, &gs) < 0) {
    fprintf(stderr, "ferry-criu: the restore was called off by the agent\n");
    kill(pid, SIGKILL);
    waitpid(pid, NULL, 0);
    exit(1);
  }
  int x = sv[0];
  if (send(x, out, len, MSG_NOSIGNAL) != (ssize_t)len) {
    fprintf(stderr, "ferry-criu: criu swrk did not take the restore: %s\n", strerror(errno));
    kill(pid, SIGKILL);
  }
  free(out);
  bool runc_open = true;
  for (int i = 0; i < 1000000; i++) {
    struct pollfd pf[2] = {{.fd = x, .events = POLLIN}, {.fd = runc_open ? rfd : -1, .events = POLLIN}};
    if (poll(pf, 2, -1) < 0) {
      if (errno == EINTR)
        continue;
      break;
    }
    if (pf[0].revents) {
      if (relay_one(x, rfd, answered_here) <= 0)
        break; /* CRIU is done */
      tell_done(&gs, relay_buf, relay_len);
    }
    if (runc_open && pf[1].revents && relay_one(rfd, x, NULL) <= 0)
      runc_open = false; /* runc went: CRIU finds out when it next talks */
  }
  close(x);
  close(dfd);
  if (wfd >= 0)
    close(wfd);
  if (gs >= 0)
    close(gs);
  int st = 0;
  while (waitpid(pid, &st, 0) < 0 && errno == EINTR)
    ;
  exit(WIFEXITED(st) ? WEXITSTATUS(st) : 128 + (WIFSIGNALED(st) ? WTERMSIG(st) : 0));
}

int main(int argc, char **argv)
{
  const char *cache = getenv("FERRY_CRIU_CACHE"), *gate = getenv("FERRY_CRIU_GATE");
  if (argc == 3 && strcmp(argv[1], "swrk") == 0) {
    char *end;
    long fd = strtol(argv[2], &end, 10);
    if (*argv[2] && !*end && fd >= 0 && fd < INT_MAX) {
      int type = request_type((int)fd);
      if (type == CRIU_REQ_TYPE__VERSION && cache && *cache) {
        int r = answer_version((int)fd, cache);
        if (r >= 0)
          return r; /* answered (1: the answer could not be sent: runc sees that) */
      } else if (type != CRIU_REQ_TYPE__VERSION && gate && *gate) {
        /* CRIU started now, the request held */
        if (type == CRIU_REQ_TYPE__RESTORE && !getenv("FERRY_CRIU_NO_AHEAD"))
          restore_ahead((int)fd, gate);
        /* held: the restore (or a request too large to peek whole, which
         * must not reach CRIU before the images either) */
        if (wait_at_gate(gate, NULL) < 0) {
          fprintf(stderr, "ferry-criu: the restore was called off by the agent\n");
          return 1;
        }
      }
    }
  }
  argv[0] = (char *)"criu";
  execvp("criu", argv);
  fprintf(stderr, "ferry-criu: cannot run criu: %s\n", strerror(errno));
  return 127;
}
