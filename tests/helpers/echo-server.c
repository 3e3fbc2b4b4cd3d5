/* A static echo server for test containers: echoes every byte back on
 * every TCP connection, and every UDP datagram to its sender, on one port.
 * Usage: echo-server PORT */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#define MAXC 64

int main(int argc, char **argv)
{
  int port = argc > 1 ? atoi(argv[1]) : 7000;
  int ls = socket(AF_INET, SOCK_STREAM, 0);
  int one = 1;
  setsockopt(ls, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
  if (bind(ls, (struct sockaddr *)&sa, sizeof sa) < 0 || listen(ls, 16) < 0) {
    perror("echo-server: listen");
    return 1;
  }
  int us = socket(AF_INET, SOCK_DGRAM, 0);
  if (us < 0 || bind(us, (struct sockaddr *)&sa, sizeof sa) < 0) {
    perror("echo-server: udp");
    return 1;
  }
  printf("echo-server: listening on %d (tcp and udp)\n", port);
  fflush(stdout);
  struct pollfd p[MAXC + 2];
  int n = 2;
  p[0].fd = ls;
  p[0].events = POLLIN;
  p[1].fd = us;
  p[1].events = POLLIN;
  for (;;) {
    if (poll(p, (nfds_t)n, -1) < 0)
      continue;
    if (p[1].revents & POLLIN) {
      char d[2048];
      struct sockaddr_in from;
      socklen_t fl = sizeof from;
      ssize_t r = recvfrom(us, d, sizeof d, MSG_DONTWAIT, (struct sockaddr *)&from, &fl);
      if (r > 0)
        sendto(us, d, (size_t)r, MSG_DONTWAIT, (struct sockaddr *)&from, fl);
    }
    if ((p[0].revents & POLLIN) && n <= MAXC + 1) {
      int c = accept(ls, NULL, NULL);
      if (c >= 0) {
        p[n].fd = c;
        p[n].events = POLLIN;
        n++;
      }
    }
    for (int i = 2; i < n; i++) {
      if (!(p[i].revents & (POLLIN | POLLHUP | POLLERR)))
        continue;
      char buf[65536];
      ssize_t r = read(p[i].fd, buf, sizeof buf);
      ssize_t off = 0;
      while (r > 0 && off < r) {
        ssize_t w = write(p[i].fd, buf + off, (size_t)(r - off));
        if (w <= 0)
          break;
        off += w;
      }
      if (r <= 0) {
        close(p[i].fd);
        p[i] = p[--n];
        i--;
      }
    }
  }
}
