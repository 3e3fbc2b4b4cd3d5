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
 * longer inside the pause. */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

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
  if (pid == 0) {
    char fd[16];
    if (fcntl(sv[1], F_SETFD, 0) < 0)
      _exit(127);
    snprintf(fd, sizeof fd, "%d", sv[1]);
    execlp("criu", "criu", "swrk", fd, (char *)NULL);
    _exit(127);
  }
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
 * -1 refused. */
static int wait_at_gate(const char *path)
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
  close(s);
  return r == 1 && c == 'g' ? 0 : -1;
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
        /* held: the restore (or a request too large to peek whole, which
         * must not reach CRIU before the images either) */
        if (wait_at_gate(gate) < 0) {
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
