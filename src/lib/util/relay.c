/* A byte relay between two connected stream sockets, on a thread of its
 * own: what one side sends, the other receives, until both have finished
 * sending (each end's shutdown is passed on). */
#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <unistd.h>

#include "util/fs.h"
#include "util/relay.h"

#define RELAY_BUF (1 << 20)

struct relay {
  int fd[2];
  pthread_t th;
  pthread_mutex_t lock;
  pthread_cond_t cond;
  bool done;
  int error; /* errno of the first failure, 0 if none */
  uint64_t bytes[2]; /* from fd[0] to fd[1], and back */
};

/* Moves what is readable on from to to; 0 at EOF, 1 when it moved bytes,
 * -errno on failure. */
static int pump(int from, int to, char *buf, uint64_t *count)
{
  ssize_t n = read(from, buf, RELAY_BUF);
  if (n < 0)
    return errno == EINTR || errno == EAGAIN ? 1 : -errno;
  if (n == 0)
    return 0;
  for (ssize_t off = 0; off < n;) {
    ssize_t w = write(to, buf + off, (size_t)(n - off));
    if (w < 0) {
      if (errno == EINTR)
        continue;
      return -errno;
    }
    off += w;
  }
  *count += (uint64_t)n;
  return 1;
}

static void *relay_main(void *arg)
{
  struct relay *r = arg;
  char *buf = malloc(RELAY_BUF);
  bool open_in[2] = {true, true}; /* fd[i] may still send */
  int error = buf ? 0 : ENOMEM;
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
      int rc = pump(r->fd[i], r->fd[1 - i], buf, &r->bytes[i]);
      if (rc < 0) {
        error = -rc;
      } else if (rc == 0) {
        open_in[i] = false;
        shutdown(r->fd[1 - i], SHUT_WR);
      }
    }
  }
  free(buf);
  pthread_mutex_lock(&r->lock);
  r->done = true;
  r->error = error;
  pthread_cond_broadcast(&r->cond);
  pthread_mutex_unlock(&r->lock);
  return NULL;
}

int relay_start(int a, int b, struct relay **out)
{
  struct relay *r = calloc(1, sizeof *r);
  if (!r)
    return -ENOMEM;
  r->fd[0] = a;
  r->fd[1] = b;
  pthread_mutex_init(&r->lock, NULL);
  pthread_cond_init(&r->cond, NULL);
  int e = pthread_create(&r->th, NULL, relay_main, r);
  if (e != 0) {
    pthread_mutex_destroy(&r->lock);
    pthread_cond_destroy(&r->cond);
    free(r);
    return -e;
  }
  *out = r;
  return 0;
}

int relay_finish(struct relay *r, int timeout_ms, uint64_t *bytes_ab)
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
  close(r->fd[0]);
  close(r->fd[1]);
  pthread_mutex_destroy(&r->lock);
  pthread_cond_destroy(&r->cond);
  free(r);
  return rc;
}
