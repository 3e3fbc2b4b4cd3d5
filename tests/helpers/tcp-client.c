/* A TCP client that checks an echo service across checkpoint/restore and
 * migration: it sends numbered messages on ONE connection and checks that
 * every byte echoed back is the byte it sent. It reports the largest gap
 * between a send and its echo. Bounded in time: it stops after --duration.
 *
 * Usage: tcp-client ADDR PORT DURATION_MS INTERVAL_MS [STOP_FILE]
 * Prints "ok messages=N bytes=B max_gap_ms=G" and exits 0, or "FAIL ..." and
 * exits 1 (connection reset, closed, timeout, or a wrong byte). */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

static uint64_t now_ms(void)
{
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

int main(int argc, char **argv)
{
  if (argc < 5) {
    fprintf(stderr, "usage: tcp-client ADDR PORT DURATION_MS INTERVAL_MS [STOP_FILE]\n");
    return 2;
  }
  const char *addr = argv[1];
  int port = atoi(argv[2]);
  uint64_t duration = strtoull(argv[3], NULL, 10);
  int interval = atoi(argv[4]);
  const char *stop = argc > 5 ? argv[5] : NULL;
  int s = socket(AF_INET, SOCK_STREAM, 0);
  struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
  if (inet_pton(AF_INET, addr, &sa.sin_addr) != 1) {
    printf("FAIL bad address %s\n", addr);
    return 1;
  }
  uint64_t start = now_ms();
  /* The service may still be starting: retry the connect for up to 10 s. */
  for (;;) {
    if (connect(s, (struct sockaddr *)&sa, sizeof sa) == 0)
      break;
    if (now_ms() - start > 10000) {
      printf("FAIL connect %s:%d: %s\n", addr, port, strerror(errno));
      return 1;
    }
    close(s);
    s = socket(AF_INET, SOCK_STREAM, 0);
    usleep(100000);
  }
  int one = 1;
  setsockopt(s, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  start = now_ms();
  uint64_t seq = 0, bytes = 0, max_gap = 0;
  while (now_ms() - start < duration) {
    if (stop && access(stop, F_OK) == 0)
      break;
    unsigned char msg[64], back[64];
    for (size_t i = 0; i < sizeof msg; i++)
      msg[i] = (unsigned char)((seq * 131 + i * 7) & 0xff);
    uint64_t t0 = now_ms();
    if (send(s, msg, sizeof msg, MSG_NOSIGNAL) != (ssize_t)sizeof msg) {
      printf("FAIL send after %llu messages: %s\n", (unsigned long long)seq, strerror(errno));
      return 1;
    }
    size_t got = 0;
    while (got < sizeof back) {
      struct pollfd p = {.fd = s, .events = POLLIN};
      int pr = poll(&p, 1, 30000);
      if (pr == 0) {
        printf("FAIL no echo for 30 s after %llu messages\n", (unsigned long long)seq);
        return 1;
      }
      ssize_t r = recv(s, back + got, sizeof back - got, 0);
      if (r == 0) {
        printf("FAIL connection closed by peer after %llu messages\n", (unsigned long long)seq);
        return 1;
      }
      if (r < 0) {
        if (errno == EINTR)
          continue;
        printf("FAIL recv after %llu messages: %s\n", (unsigned long long)seq, strerror(errno));
        return 1;
      }
      got += (size_t)r;
    }
    if (memcmp(msg, back, sizeof msg) != 0) {
      printf("FAIL message %llu: echoed bytes differ from the bytes sent\n", (unsigned long long)seq);
      return 1;
    }
    uint64_t gap = now_ms() - t0;
    if (gap > max_gap)
      max_gap = gap;
    seq++;
    bytes += sizeof msg;
    usleep((useconds_t)interval * 1000);
  }
  close(s);
  printf("ok messages=%llu bytes=%llu max_gap_ms=%llu\n", (unsigned long long)seq,
         (unsigned long long)bytes, (unsigned long long)max_gap);
  return seq > 0 ? 0 : 1;
}
