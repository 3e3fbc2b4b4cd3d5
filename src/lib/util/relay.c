/* A byte relay between two connected stream sockets, on a thread of its
 * own: what one side sends, the other receives, until both have finished
 * sending (each end's shutdown is passed on). */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <signal.h>
#include <string.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <unistd.h>
#include <zstd.h>

#include "util/fs.h"
#include "util/relay.h"

#define RELAY_BUF (1 << 20)

struct relay {
  int fd[2];
  ZSTD_CCtx *z;      /* non-NULL: what fd[0] sends goes to fd[1] compressed */
  uint64_t wire;     /* bytes written to fd[1] (compressed, with z) */
  pthread_t th;
  pthread_mutex_t lock;
  pthread_cond_t cond;
  bool done;
  int error; /* errno of the first failure, 0 if none */
  uint64_t bytes[2]; /* from fd[0] to fd[1], and back */
};

static int write_all(int fd, const char *p, size_t n)
{
  for (size_t off = 0; off < n;) {
    ssize_t w = write(fd, p + off, n - off);
    if (w < 0) {
      if (errno == EINTR)
        continue;
      return -errno;
    }
    off += (size_t)w;
  }
  return 0;
}

/* Moves what is readable on from to to; 0 at EOF, 1 when it moved bytes,
 * -errno on failure. */
static int pump(int from, int to, char *buf, uint64_t *count)
{
  ssize_t n = read(from, buf, RELAY_BUF);
  if (n < 0)
    return errno == EINTR || errno == EAGAIN ? 1 : -errno;
  if (n == 0)
    return 0;
  int r = write_all(to, buf, (size_t)n);
  if (r < 0)
    return r;
  *count += (uint64_t)n;
  return 1;
}

/* Compresses what is readable on from into to, one zstd flush per read
 * (the other side may wait for a reply to what it has sent so far); at EOF
 * the frame ends. 0 at EOF, 1 when it moved bytes, -errno on failure. */
static int pump_z(ZSTD_CCtx *z, int from, int to, char *buf, char *zbuf, size_t zcap,
                  uint64_t *count, uint64_t *wire)
{
  ssize_t n = read(from, buf, RELAY_BUF);
  if (n < 0)
    return errno == EINTR || errno == EAGAIN ? 1 : -errno;
  ZSTD_inBuffer in = {buf, (size_t)n, 0};
  ZSTD_EndDirective mode = n == 0 ? ZSTD_e_end : ZSTD_e_flush;
  for (;;) {
    ZSTD_outBuffer out = {zbuf, zcap, 0};
    size_t left = ZSTD_compressStream2(z, &out, &in, mode);
    if (ZSTD_isError(left))
      return -EIO;
    int r = write_all(to, zbuf, out.pos);
    if (r < 0)
      return r;
    *wire += out.pos;
    if (left == 0 && in.pos == in.size)
      break;
  }
  *count += (uint64_t)n;
  return n == 0 ? 0 : 1;
}

static void *relay_main(void *arg)
{
  struct relay *r = arg;
  char *buf = malloc(RELAY_BUF);
  size_t zcap = r->z ? ZSTD_CStreamOutSize() : 0;
  char *zbuf = r->z ? malloc(zcap) : NULL;
  bool open_in[2] = {true, true}; /* fd[i] may still send */
  int error = buf && (!r->z || zbuf) ? 0 : ENOMEM;
  while (!error && (open_in[0] || open_in[1])) {
    struct pollfd p[2];
    int n = 0, idx[2];
    for (int i = 0; i < 2; i++) {
      if (open_in[i]) {
        p[n] = (struct pollfd){.fd = r->fd[i], .events = POLLIN};
        idx[n++] = i;
      }
    }
    if (poll(p, (nfds_t)n, -1) < 0) {
      if (errno != EINTR)
        error = errno;
      continue;
    }
    for (int k = 0; k < n && !error; k++) {
      if (!(p[k].revents & (POLLIN | POLLHUP | POLLERR)))
        continue;
      int i = idx[k];
      int rc = i == 0 && r->z ? pump_z(r->z, r->fd[0], r->fd[1], buf, zbuf, zcap, &r->bytes[0], &r->wire)
                              : pump(r->fd[i], r->fd[1 - i], buf, &r->bytes[i]);
      if (rc < 0) {
        error = -rc;
      } else if (rc == 0) {
        open_in[i] = false;
        shutdown(r->fd[1 - i], SHUT_WR);
      }
    }
  }
  if (error) {
    /* a broken side: the other must not wait for bytes that cannot come
     * (a program at that end sees the end of its stream, or an error) */
    shutdown(r->fd[0], SHUT_RDWR);
    shutdown(r->fd[1], SHUT_RDWR);
  }
  free(buf);
  free(zbuf);
  pthread_mutex_lock(&r->lock);
  r->done = true;
  r->error = error;
  pthread_cond_broadcast(&r->cond);
  pthread_mutex_unlock(&r->lock);
  return NULL;
}

int relay_start(int a, int b, struct relay **out)
{
  return relay_start_z(a, b, 0, out);
}

int relay_start_z(int a, int b, int level, struct relay **out)
{
  struct relay *r = calloc(1, sizeof *r);
  if (!r)
    return -ENOMEM;
  r->fd[0] = a;
  r->fd[1] = b;
  if (level > 0) {
    r->z = ZSTD_createCCtx();
    if (!r->z || ZSTD_isError(ZSTD_CCtx_setParameter(r->z, ZSTD_c_compressionLevel, level))) {
      ZSTD_freeCCtx(r->z);
      free(r);
      return -ENOMEM;
    }
  }
  pthread_mutex_init(&r->lock, NULL);
  pthread_cond_init(&r->cond, NULL);
  int e = pthread_create(&r->th, NULL, relay_main, r);
  if (e != 0) {
    pthread_mutex_destroy(&r->lock);
    pthread_cond_destroy(&r->cond);
    ZSTD_freeCCtx(r->z);
    free(r);
    return -e;
  }
  *out = r;
  return 0;
}

int relay_finish(struct relay *r, int timeout_ms, uint64_t *bytes_ab)
{
  return relay_finish_z(r, timeout_ms, bytes_ab, NULL);
}

int relay_finish_z(struct relay *r, int timeout_ms, uint64_t *bytes_ab, uint64_t *wire_ab)
{
  if (!r)
    return 0;
  uint64_t until = now_mono_ms() + (uint64_t)(timeout_ms > 0 ? timeout_ms : 0);
  pthread_mutex_lock(&r->lock);
  while (!r->done && now_mono_ms() < until) {
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    ts.tv_nsec += 20 * 1000 * 1000;
    if (ts.tv_nsec >= 1000000000) {
      ts.tv_sec++;
      ts.tv_nsec -= 1000000000;
    }
    pthread_cond_timedwait(&r->cond, &r->lock, &ts);
  }
  bool done = r->done;
  pthread_mutex_unlock(&r->lock);
  if (!done) { /* wake it: both sockets shut, the thread sees EOF or an error */
    shutdown(r->fd[0], SHUT_RDWR);
    shutdown(r->fd[1], SHUT_RDWR);
  }
  pthread_join(r->th, NULL);
  int rc = !done ? -ETIMEDOUT : r->error ? -r->error : 0;
  if (bytes_ab)
    *bytes_ab = r->bytes[0];
  if (wire_ab)
    *wire_ab = r->z ? r->wire : r->bytes[0];
  close(r->fd[0]);
  close(r->fd[1]);
  pthread_mutex_destroy(&r->lock);
  pthread_cond_destroy(&r->cond);
  ZSTD_freeCCtx(r->z);
  free(r);
  return rc;
}

int relay_unzstd_exec(int net, char *const *argv)
{
  int sv[2];
  if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) < 0)
    return 127;
  pid_t pid = fork();
  if (pid < 0)
    return 127;
  if (pid == 0) {
    /* the program gets the plain stream where the connection was */
    if (dup2(sv[1], net) < 0)
      _exit(127);
    execvp(argv[0], argv);
    _exit(127);
  }
  close(sv[1]);
  int local = sv[0];
  ZSTD_DCtx *z = ZSTD_createDCtx();
  size_t cap = ZSTD_DStreamOutSize();
  char *in = malloc(RELAY_BUF), *out = malloc(cap), *back = malloc(RELAY_BUF);
  bool net_open = true, local_open = true;
  int rc = z && in && out && back ? 0 : -ENOMEM;
  while (rc == 0 && (net_open || local_open)) {
    struct pollfd p[2] = {{.fd = net_open ? net : -1, .events = POLLIN},
                          {.fd = local_open ? local : -1, .events = POLLIN}};
    if (poll(p, 2, -1) < 0) {
      if (errno != EINTR)
        rc = -errno;
      continue;
    }
    if (net_open && (p[0].revents & (POLLIN | POLLHUP | POLLERR))) {
      ssize_t n = read(net, in, RELAY_BUF);
      if (n < 0 && errno != EINTR && errno != EAGAIN) {
        rc = -errno;
      } else if (n == 0) {
        net_open = false;
        shutdown(local, SHUT_WR);
      } else if (n > 0) {
        ZSTD_inBuffer ib = {in, (size_t)n, 0};
        while (rc == 0 && ib.pos < ib.size) {
          ZSTD_outBuffer ob = {out, cap, 0};
          if (ZSTD_isError(ZSTD_decompressStream(z, &ob, &ib)))
            rc = -EPROTO;
          else
            rc = write_all(local, out, ob.pos);
        }
        /* what the decompressor holds back without more input */
        for (;;) {
          ZSTD_outBuffer ob = {out, cap, 0};
          ZSTD_inBuffer none = {in, 0, 0};
          if (rc || ZSTD_isError(ZSTD_decompressStream(z, &ob, &none)) || ob.pos == 0)
            break;
          rc = write_all(local, out, ob.pos);
        }
      }
    }
    if (rc == 0 && local_open && (p[1].revents & (POLLIN | POLLHUP | POLLERR))) {
      uint64_t replied = 0;
      int k = pump(local, net, back, &replied); /* the program's replies, as they are */
      if (k < 0) {
        rc = k;
      } else if (k == 0) {
        local_open = false;
        shutdown(net, SHUT_WR);
      }
    }
  }
  ZSTD_freeDCtx(z);
  free(in);
  free(out);
  free(back);
  if (rc < 0) {
    /* the stream is broken: the program must not take half of it as all */
    kill(pid, SIGKILL);
  }
  close(local);
  int st = 0;
  while (waitpid(pid, &st, 0) < 0 && errno == EINTR)
    ;
  if (rc < 0)
    return 126;
  return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
}

/* A TCP connection to host:port within timeout_s; -errno on failure. */
int relay_tcp_connect(const char *host, int port, int timeout_s)
{
  struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
  if (inet_pton(AF_INET, host, &sa.sin_addr) != 1)
    return -EINVAL;
  int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0)
    return -errno;
  struct timeval tv = {.tv_sec = timeout_s};
  setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
  if (connect(fd, (struct sockaddr *)&sa, sizeof sa) < 0) {
    int e = -errno;
    close(fd);
    return e;
  }
  struct timeval none = {0};
  setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &none, sizeof none);
  int one = 1;
  setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  return fd;
}

bool relay_secret_ok(int c, const char *secret, size_t len)
{
  char got[64];
  if (len > sizeof got)
    return false;
  size_t have = 0;
  uint64_t until = now_mono_ms() + 5000;
  while (have < len) {
    uint64_t now = now_mono_ms();
    if (now >= until)
      return false;
    struct pollfd pf = {.fd = c, .events = POLLIN};
    if (poll(&pf, 1, (int)(until - now)) <= 0)
      return false;
    ssize_t n = read(c, got + have, len - have);
    if (n <= 0)
      return false;
    have += (size_t)n;
  }
  unsigned char diff = 0; /* the same time whatever the bytes */
  for (size_t i = 0; i < len; i++)
    diff |= (unsigned char)(got[i] ^ secret[i]);
  return diff == 0;
}

void relay_keepalive(int fd)
{
  int on = 1, idle = 30, intvl = 10, cnt = 3;
  setsockopt(fd, SOL_SOCKET, SO_KEEPALIVE, &on, sizeof on);
  setsockopt(fd, IPPROTO_TCP, TCP_KEEPIDLE, &idle, sizeof idle);
  setsockopt(fd, IPPROTO_TCP, TCP_KEEPINTVL, &intvl, sizeof intvl);
  setsockopt(fd, IPPROTO_TCP, TCP_KEEPCNT, &cnt, sizeof cnt);
}
