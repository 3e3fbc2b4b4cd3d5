/* The benchmark's client: measures what a client of a migrating service
 * sees, and fills redis with incompressible data.
 *
 *   bench-client tcp ADDR PORT INTERVAL_MS STOP_FILE LOG.csv
 *       One TCP connection; sends a 64-byte numbered message every
 *       INTERVAL_MS whether or not the echoes came back, checks every echoed
 *       byte, and writes "seq,sent_ms,echo_ms" per message (wall-clock ms)
 *       to LOG.csv. Stops when STOP_FILE exists (at most 1 hour), waits up to
 *       10 s for the last echoes, and prints one line:
 *       "tcp sent=N echoed=N max_gap_ms=G max_rtt_ms=R reconnects=N error=none|WHAT".
 *       The gap is the longest time between two consecutive echoes while
 *       messages were outstanding: the pause the client sees. If the
 *       connection breaks, the client does what a real one does: it
 *       reconnects (within 30 s) and goes on; the gap then includes the
 *       reconnection, the lost messages are never echoed, and "error" names
 *       the first break.
 *   bench-client rr ADDR PORT INTERVAL_MS STOP_FILE LOG.csv
 *       The same, request/response: the next message goes only once the
 *       last one's echo came back (and its interval passed), as a redis-cli
 *       or HTTP client waits for each answer; one segment is in flight, so
 *       a lost one costs a retransmission timeout. Prints
 *       "rr sent=N echoed=N max_gap_ms=G ..." (G: its longest wait).
 *   bench-client udp ADDR PORT RATE STOP_FILE
 *       RATE datagrams per second to an echo service, each numbered; prints
 *       "udp sent=N received=N lost=N max_gap_ms=G last_echoed=S lost_at=R"
 *       (lost: never echoed within 2 s after the end; S: the highest number
 *       echoed, -1 for none: the flow is alive at the end when S is close to
 *       N; R: the first 8 ranges of numbers lost, "A-B,C-D", or "none").
 *   bench-client churn ADDR PORT INTERVAL_MS STOP_FILE
 *       A new TCP connection every INTERVAL_MS (non-blocking connect, one
 *       byte sent and echoed, closed), as clients that come and go do;
 *       prints "churn opened=N echoed=N failed=N" (a connection that got no
 *       echo within 5 s counts as failed; the service pausing for a move
 *       delays them, it should not fail them).
 *   bench-client redis-fill ADDR PORT MB VALUE_BYTES
 *       SET bench:N to random (incompressible) values until MB megabytes of
 *       values are stored, pipelined; prints "redis-fill keys=N bytes=B".
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>
#include "util/redisfill.h"

#define MSG 64
#define MAX_MSGS (3600 * 1000) /* one hour at 1 ms */

static double wall_ms(void)
{
  struct timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  return (double)ts.tv_sec * 1000.0 + (double)ts.tv_nsec / 1e6;
}

static double mono_ms(void)
{
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec * 1000.0 + (double)ts.tv_nsec / 1e6;
}

static int connect_to(const char *addr, int port, int type)
{
  struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
  if (inet_pton(AF_INET, addr, &sa.sin_addr) != 1) {
    fprintf(stderr, "bench-client: bad address %s\n", addr);
    return -1;
  }
  double start = mono_ms();
  for (int i = 0; i < 100; i++) { /* the service may still be starting: 10 s */
    int s = socket(AF_INET, type, 0);
    if (s < 0)
      return -1;
    if (connect(s, (struct sockaddr *)&sa, sizeof sa) == 0)
      return s;
    close(s);
    if (mono_ms() - start > 10000)
      break;
    usleep(100000);
  }
  fprintf(stderr, "bench-client: connect %s:%d: %s\n", addr, port, strerror(errno));
  return -1;
}

static void fill_msg(unsigned char *m, uint64_t seq)
{
  for (size_t i = 0; i < MSG; i++)
    m[i] = (unsigned char)((seq * 131 + i * 7) & 0xff);
}

/* The connection broke: note the first error, log the messages that were
 * outstanding as never echoed, and reconnect (within 30 s). */
static int broken(int *s, const char *addr, int port, const char **error, const char *what,
                  int *reconnects, FILE *log, double *sent_at, uint64_t *echoed, uint64_t sent,
                  size_t *partial)
{
  static char first[128];
  if (strcmp(*error, "none") == 0) {
    snprintf(first, sizeof first, "%s", what);
    *error = first;
  }
  for (uint64_t i = *echoed; i < sent; i++) {
    fprintf(log, "%llu,%.3f,\n", (unsigned long long)i, sent_at[i]);
  }
  *echoed = sent;
  *partial = 0;
  close(*s);
  *s = -1;
  if (*reconnects >= 100)
    return -1;
  (*reconnects)++;
  double until = mono_ms() + 30000;
  struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
  inet_pton(AF_INET, addr, &sa.sin_addr);
  while (mono_ms() < until) {
    int c = socket(AF_INET, SOCK_STREAM, 0);
    if (c < 0)
      return -1;
    struct timeval tv = {1, 0};
    setsockopt(c, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
    if (connect(c, (struct sockaddr *)&sa, sizeof sa) == 0) {
      int one = 1;
      setsockopt(c, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
      *s = c;
      return 0;
    }
    close(c);
    usleep(10000);
  }
  return -1;
}

static int run_tcp(const char *addr, int port, int interval, const char *stop, const char *logf,
                   bool rr)
{
  int s = connect_to(addr, port, SOCK_STREAM);
  if (s < 0)
    return 1;
  int one = 1;
  setsockopt(s, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  FILE *log = fopen(logf, "w");
  if (!log) {
    perror("bench-client: log");
    return 1;
  }
  double *sent_at = calloc(MAX_MSGS, sizeof *sent_at);
  if (!sent_at)
    return 1;
  uint64_t sent = 0, echoed = 0;
  size_t partial = 0;
  unsigned char back[MSG];
  double next = mono_ms(), t_end = mono_ms() + 3600e3, drain_until = 0;
  double last_echo = 0, max_gap = 0, max_rtt = 0;
  const char *error = "none";
  int reconnects = 0;
  bool reconnected = false; /* the gap since the last echo goes on through a reconnection */
  for (;;) {
    double now = mono_ms();
    if (drain_until == 0 && (access(stop, F_OK) == 0 || now > t_end))
      drain_until = now + 10000;
    if (drain_until > 0 && (echoed == sent || now > drain_until))
      break;
    if (drain_until == 0 && now >= next && sent < MAX_MSGS && (!rr || echoed == sent)) {
      unsigned char m[MSG];
      fill_msg(m, sent);
      ssize_t w = send(s, m, MSG, MSG_NOSIGNAL | MSG_DONTWAIT);
      if (w == MSG) {
        if (echoed == sent && !reconnected)
          last_echo = now; /* nothing was outstanding: the gap starts now */
        sent_at[sent++] = wall_ms();
      } else if (w >= 0 || (errno != EAGAIN && errno != EWOULDBLOCK)) {
        if (broken(&s, addr, port, &error, w < 0 ? strerror(errno) : "short send", &reconnects,
                   log, sent_at, &echoed, sent, &partial) < 0)
          break;
        reconnected = true;
        continue;
      }
      next += interval;
      if (next < now - 1000)
        next = now; /* the sender itself was descheduled: do not burst */
    }
    int wait = drain_until > 0 ? 50 : (int)(next - now) + 1;
    struct pollfd p = {.fd = s, .events = POLLIN};
    int pr = poll(&p, 1, wait < 1 ? 1 : wait);
    if (pr <= 0)
      continue;
    ssize_t r = recv(s, back + partial, MSG - partial, MSG_DONTWAIT);
    if (r <= 0) {
      if (r < 0 && (errno == EAGAIN || errno == EINTR))
        continue;
      if (broken(&s, addr, port, &error, r == 0 ? "connection closed" : strerror(errno),
                 &reconnects, log, sent_at, &echoed, sent, &partial) < 0)
        break;
      reconnected = true;
      continue;
    }
    partial += (size_t)r;
    if (partial < MSG)
      continue;
    partial = 0;
    unsigned char m[MSG];
    fill_msg(m, echoed);
    if (memcmp(m, back, MSG) != 0) {
      error = "wrong bytes echoed";
      break;
    }
    double t = mono_ms(), tw = wall_ms();
    if (t - last_echo > max_gap)
      max_gap = t - last_echo;
    last_echo = t;
    reconnected = false;
    if (tw - sent_at[echoed] > max_rtt)
      max_rtt = tw - sent_at[echoed];
    fprintf(log, "%llu,%.3f,%.3f\n", (unsigned long long)echoed, sent_at[echoed], tw);
    echoed++;
  }
  for (uint64_t i = echoed; i < sent; i++)
    fprintf(log, "%llu,%.3f,\n", (unsigned long long)i, sent_at[i]);
  fclose(log);
  if (strcmp(error, "none") == 0 && echoed != sent)
    error = "echoes missing";
  char ew[128]; /* one word per field */
  snprintf(ew, sizeof ew, "%s", error);
  for (char *c = ew; *c; c++)
    if (*c == ' ')
      *c = '_';
  printf("%s sent=%llu echoed=%llu max_gap_ms=%.1f max_rtt_ms=%.1f reconnects=%d error=%s\n",
         rr ? "rr" : "tcp", (unsigned long long)sent, (unsigned long long)echoed, max_gap, max_rtt, reconnects, ew);
  free(sent_at);
  close(s);
  return strcmp(error, "none") == 0 ? 0 : 1;
}

static int run_udp(const char *addr, int port, int rate, const char *stop)
{
  int s = connect_to(addr, port, SOCK_DGRAM);
  if (s < 0)
    return 1;
  if (rate < 1 || rate > 100000)
    rate = 1000;
  unsigned char *got = calloc(MAX_MSGS, 1);
  if (!got)
    return 1;
  double period = 1000.0 / rate, next = mono_ms(), t_end = mono_ms() + 3600e3, drain_until = 0;
  double last_rx = 0, max_gap = 0;
  uint64_t sent = 0, received = 0;
  long long last_echoed = -1;
  for (;;) {
    double now = mono_ms();
    if (drain_until == 0 && (access(stop, F_OK) == 0 || now > t_end))
      drain_until = now + 2000;
    if (drain_until > 0 && (received == sent || now > drain_until))
      break;
    while (drain_until == 0 && now >= next && sent < MAX_MSGS) {
      uint64_t seq = sent;
      if (send(s, &seq, sizeof seq, MSG_DONTWAIT) == (ssize_t)sizeof seq || errno == ECONNREFUSED ||
          errno == EAGAIN)
        sent++;
      next += period;
      if (next < now - 1000)
        next = now;
    }
    struct pollfd p = {.fd = s, .events = POLLIN};
    int wait = drain_until > 0 ? 20 : (int)(next - now) + 1;
    if (poll(&p, 1, wait < 1 ? 1 : wait) <= 0)
      continue;
    uint64_t seq;
    for (int k = 0; k < 64; k++) {
      ssize_t r = recv(s, &seq, sizeof seq, MSG_DONTWAIT);
      if (r != (ssize_t)sizeof seq)
        break;
      if (seq >= sent || got[seq])
        continue;
      got[seq] = 1;
      received++;
      if ((long long)seq > last_echoed)
        last_echoed = (long long)seq;
      double t = mono_ms();
      if (last_rx > 0 && t - last_rx > max_gap)
        max_gap = t - last_rx;
      last_rx = t;
    }
  }
  /* where the losses were (the first ranges of numbers never echoed):
   * one run of consecutive numbers is a pause's, scattered ones a burst's */
  char ranges[256] = "";
  size_t rl = 0;
  int nr = 0;
  for (uint64_t i = 0; i < sent && nr < 8;) {
    if (got[i]) {
      i++;
      continue;
    }
    uint64_t j = i;
    while (j + 1 < sent && !got[j + 1])
      j++;
    int w = snprintf(ranges + rl, sizeof ranges - rl, "%s%llu-%llu", nr ? "," : "",
                     (unsigned long long)i, (unsigned long long)j);
    if (w < 0 || (size_t)w >= sizeof ranges - rl)
      break;
    rl += (size_t)w;
    nr++;
    i = j + 1;
  }
  printf("udp sent=%llu received=%llu lost=%llu max_gap_ms=%.1f last_echoed=%lld lost_at=%s\n",
         (unsigned long long)sent, (unsigned long long)received,
         (unsigned long long)(sent - received), max_gap, last_echoed, rl ? ranges : "none");
  free(got);
  close(s);
  return 0;
}

static int run_redis_fill(const char *addr, int port, uint64_t mb, size_t vsize)
{
  int s = connect_to(addr, port, SOCK_STREAM);
  if (s < 0)
    return 1;
  if (vsize < 16 || vsize > (1 << 20))
    vsize = 1024;
  struct ferry_err err = {0};
  uint64_t keys = 0;
  if (redis_fill(s, "bench", mb * 1000 * 1000, vsize, &keys, &err) < 0) {
    fprintf(stderr, "bench-client: %s\n", err.msg);
    close(s);
    return 1;
  }
  printf("redis-fill keys=%llu bytes=%llu\n", (unsigned long long)keys,
         (unsigned long long)(keys * vsize));
  close(s);
  return 0;
}

#define CHURN_MAX 256 /* connections in flight */

static int run_churn(const char *addr, int port, int interval, const char *stop)
{
  struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
  if (inet_pton(AF_INET, addr, &sa.sin_addr) != 1)
    return 2;
  struct pollfd p[CHURN_MAX];
  double t_open[CHURN_MAX];
  int n = 0;
  unsigned long opened = 0, echoed = 0, failed = 0;
  double next = mono_ms(), t_end = mono_ms() + 3600e3;
  bool stopping = false;
  for (;;) {
    double now = mono_ms();
    if (!stopping && (access(stop, F_OK) == 0 || now > t_end))
      stopping = true;
    if (stopping && n == 0)
      break;
    if (!stopping && now >= next && n < CHURN_MAX) {
      int s = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
      if (s >= 0) {
        connect(s, (struct sockaddr *)&sa, sizeof sa);
        p[n].fd = s;
        p[n].events = POLLOUT;
        t_open[n++] = now;
        opened++;
      }
      next += interval;
      if (next < now - 1000)
        next = now;
    }
    poll(p, (nfds_t)n, 5);
    now = mono_ms();
    for (int i = 0; i < n; i++) {
      bool done = false, ok = false;
      if (p[i].revents & POLLOUT) {
        if (send(p[i].fd, "x", 1, MSG_NOSIGNAL) == 1)
          p[i].events = POLLIN;
        else
          done = true;
      } else if (p[i].revents & POLLIN) {
        char c;
        ok = recv(p[i].fd, &c, 1, 0) == 1 && c == 'x';
        done = true;
      } else if (p[i].revents & (POLLERR | POLLHUP)) {
        done = true;
      }
      if (!done && now - t_open[i] > 5000)
        done = true;
      if (done) {
        if (ok)
          echoed++;
        else
          failed++;
        close(p[i].fd);
        p[i] = p[n - 1];
        t_open[i] = t_open[n - 1];
        n--;
        i--;
      }
    }
  }
  printf("churn opened=%lu echoed=%lu failed=%lu\n", opened, echoed, failed);
  return 0;
}

int main(int argc, char **argv)
{
  if (argc >= 7 && strcmp(argv[1], "tcp") == 0)
    return run_tcp(argv[2], atoi(argv[3]), atoi(argv[4]), argv[5], argv[6], false);
  if (argc >= 7 && strcmp(argv[1], "rr") == 0)
    return run_tcp(argv[2], atoi(argv[3]), atoi(argv[4]), argv[5], argv[6], true);
  if (argc >= 6 && strcmp(argv[1], "udp") == 0)
    return run_udp(argv[2], atoi(argv[3]), atoi(argv[4]), argv[5]);
  if (argc >= 6 && strcmp(argv[1], "churn") == 0)
    return run_churn(argv[2], atoi(argv[3]), atoi(argv[4]), argv[5]);
  if (argc >= 6 && strcmp(argv[1], "redis-fill") == 0)
    return run_redis_fill(argv[2], atoi(argv[3]), strtoull(argv[4], NULL, 10),
                          strtoul(argv[5], NULL, 10));
  fprintf(stderr, "usage: bench-client tcp|rr ADDR PORT INTERVAL_MS STOP_FILE LOG.csv\n"
                  "       bench-client udp ADDR PORT RATE STOP_FILE\n"
                  "       bench-client churn ADDR PORT INTERVAL_MS STOP_FILE\n"
                  "       bench-client redis-fill ADDR PORT MB VALUE_BYTES\n");
  return 2;
}
