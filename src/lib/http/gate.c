/* The TCP listener's gate (gate.h): connections wait here, outside
 * libmicrohttpd, until their request headers are complete. */
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <unistd.h>

#include "http/gate.h"
#include "util/fs.h"
#include "util/log.h"

#define PEEK_MAX 16384

struct pending {
  int fd;
  struct sockaddr_in addr;
  uint64_t since_ms;
};

struct gate {
  int lfd, efd, stopfd;
  bool tls;
  struct MHD_Daemon *mhd;
  pthread_t th;
  struct pending *p; /* GATE_MAX_PENDING slots; fd -1 when free */
  size_t n;
};

static void drop(struct gate *g, size_t i)
{
  epoll_ctl(g->efd, EPOLL_CTL_DEL, g->p[i].fd, NULL);
  close(g->p[i].fd);
  g->p[i].fd = -1;
  g->n--;
}

static void pass(struct gate *g, size_t i)
{
  epoll_ctl(g->efd, EPOLL_CTL_DEL, g->p[i].fd, NULL);
  /* MHD owns (and closes) the socket from here, also when it refuses it
   * (its own total and per-address limits). */
  MHD_add_connection(g->mhd, g->p[i].fd, (const struct sockaddr *)&g->p[i].addr,
                     sizeof g->p[i].addr);
  g->p[i].fd = -1;
  g->n--;
}

/* Ready for libmicrohttpd: a TLS hello began, or the headers are complete
 * (or too long to be anything but refused there). */
static int ready(struct gate *g, int fd)
{
  static __thread char buf[PEEK_MAX];
  ssize_t r = recv(fd, buf, sizeof buf, MSG_PEEK | MSG_DONTWAIT);
  if (r == 0)
    return -1;
  if (r < 0)
    return errno == EAGAIN || errno == EINTR ? 0 : -1;
  if (g->tls || (size_t)r == sizeof buf)
    return 1;
  return memmem(buf, (size_t)r, "\r\n\r\n", 4) || memmem(buf, (size_t)r, "\n\n", 2) ? 1 : 0;
}

static size_t per_addr(struct gate *g, uint32_t a)
{
  size_t n = 0;
  for (size_t i = 0; i < GATE_MAX_PENDING; i++)
    n += g->p[i].fd >= 0 && g->p[i].addr.sin_addr.s_addr == a;
  return n;
}

static void admit(struct gate *g)
{
  for (int k = 0; k < 256; k++) {
    struct sockaddr_in sa;
    socklen_t sl = sizeof sa;
    int fd = accept4(g->lfd, (struct sockaddr *)&sa, &sl, SOCK_CLOEXEC | SOCK_NONBLOCK);
    if (fd < 0)
      return;
    if (sa.sin_family != AF_INET || per_addr(g, sa.sin_addr.s_addr) >= GATE_MAX_PER_ADDR) {
      close(fd);
      continue;
    }
    size_t slot = GATE_MAX_PENDING, oldest = GATE_MAX_PENDING;
    for (size_t i = 0; i < GATE_MAX_PENDING && slot == GATE_MAX_PENDING; i++)
      if (g->p[i].fd < 0)
        slot = i;
    if (slot == GATE_MAX_PENDING) {
      /* full: the longest waiter goes (a client that sends its request
       * at once never waits long) */
      for (size_t i = 0; i < GATE_MAX_PENDING; i++)
        if (oldest == GATE_MAX_PENDING || g->p[i].since_ms < g->p[oldest].since_ms)
          oldest = i;
      drop(g, oldest);
      slot = oldest;
    }
    g->p[slot] = (struct pending){.fd = fd, .addr = sa, .since_ms = now_mono_ms()};
    g->n++;
    struct epoll_event ev = {.events = EPOLLIN | EPOLLRDHUP, .data.u64 = slot};
    if (epoll_ctl(g->efd, EPOLL_CTL_ADD, fd, &ev) < 0)
      drop(g, slot);
  }
}

static void *gate_main(void *arg)
{
  struct gate *g = arg;
  struct epoll_event evs[64];
  for (;;) {
    int n = epoll_wait(g->efd, evs, 64, 250);
    for (int i = 0; i < n; i++) {
      uint64_t d = evs[i].data.u64;
      if (d == UINT64_MAX)
        return NULL; /* stop */
      if (d == UINT64_MAX - 1) {
        admit(g);
        continue;
      }
      size_t s = (size_t)d;
      if (s >= GATE_MAX_PENDING || g->p[s].fd < 0)
        continue;
      int r = ready(g, g->p[s].fd);
      if (r > 0)
        pass(g, s);
      else if (r < 0)
        drop(g, s);
    }
    uint64_t now = now_mono_ms();
    for (size_t s = 0; s < GATE_MAX_PENDING && g->n; s++)
      if (g->p[s].fd >= 0 && now - g->p[s].since_ms > GATE_HEADER_MS)
        drop(g, s);
  }
}

int gate_start(int lfd, struct MHD_Daemon *mhd, bool tls, struct gate **out, struct ferry_err *err)
{
  struct gate *g = calloc(1, sizeof *g);
  if (!g)
    abort();
  g->p = calloc(GATE_MAX_PENDING, sizeof *g->p);
  if (!g->p)
    abort();
  for (size_t i = 0; i < GATE_MAX_PENDING; i++)
    g->p[i].fd = -1;
  g->lfd = lfd;
  g->mhd = mhd;
  g->tls = tls;
  g->efd = epoll_create1(EPOLL_CLOEXEC);
  g->stopfd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
  int fl = fcntl(lfd, F_GETFL);
  struct epoll_event le = {.events = EPOLLIN, .data.u64 = UINT64_MAX - 1};
  struct epoll_event se = {.events = EPOLLIN, .data.u64 = UINT64_MAX};
  if (g->efd < 0 || g->stopfd < 0 || fl < 0 || fcntl(lfd, F_SETFL, fl | O_NONBLOCK) < 0 ||
      epoll_ctl(g->efd, EPOLL_CTL_ADD, lfd, &le) < 0 ||
      epoll_ctl(g->efd, EPOLL_CTL_ADD, g->stopfd, &se) < 0 ||
      pthread_create(&g->th, NULL, gate_main, g) != 0) {
    int e = -errno;
    if (g->efd >= 0)
      close(g->efd);
    if (g->stopfd >= 0)
      close(g->stopfd);
    free(g->p);
    free(g);
    return ferry_err_sys(err, e ? e : -EIO, "the TCP listener's gate");
  }
  *out = g;
  return 0;
}

void gate_stop(struct gate *g)
{
  if (!g)
    return;
  uint64_t one = 1;
  if (write(g->stopfd, &one, sizeof one) < 0)
    log_warn("http", "gate: cannot signal its thread");
  pthread_join(g->th, NULL);
  for (size_t i = 0; i < GATE_MAX_PENDING; i++)
    if (g->p[i].fd >= 0)
      close(g->p[i].fd);
  close(g->efd);
  close(g->stopfd);
  free(g->p);
  free(g);
}
