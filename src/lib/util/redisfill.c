/* redis_fill: see redisfill.h. Speaks RESP, redis's wire protocol: "*3 $3
 * SET $n key $m value" per key; each reply is "+OK" or an error line. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>

#include "util/redisfill.h"

static int send_all(int s, const char *b, size_t n)
{
  while (n > 0) {
    ssize_t w = send(s, b, n, MSG_NOSIGNAL);
    if (w < 0 && errno == EINTR)
      continue;
    if (w <= 0)
      return -1;
    b += w;
    n -= (size_t)w;
  }
  return 0;
}

struct replies {
  char buf[4096];
  size_t have;
};

/* Reads `want` replies; the first that is not "+..." ends the fill. */
static int read_oks(int s, struct replies *rp, uint64_t want, struct ferry_err *err)
{
  uint64_t n = 0;
  while (n < want) {
    char *nl;
    while (n < want && (nl = memchr(rp->buf, '\n', rp->have))) {
      if (rp->buf[0] != '+') {
        int len = (int)(nl - rp->buf);
        while (len > 0 && (rp->buf[len - 1] == '\r'))
          len--;
        return FERRY_INTERNAL(err, "redis answered: %.*s", len > 200 ? 200 : len, rp->buf);
      }
      size_t used = (size_t)(nl - rp->buf) + 1;
      memmove(rp->buf, rp->buf + used, rp->have - used);
      rp->have -= used;
      n++;
    }
    if (n == want)
      break;
    if (rp->have == sizeof rp->buf)
      return FERRY_INTERNAL(err, "redis answered a line longer than %zu bytes", sizeof rp->buf);
    ssize_t r = recv(s, rp->buf + rp->have, sizeof rp->buf - rp->have, 0);
    if (r < 0 && errno == EINTR)
      continue;
    if (r == 0)
      return FERRY_INTERNAL(err, "redis closed the connection");
    if (r < 0)
      return ferry_err_sys(err, -errno, "redis: no answer");
    rp->have += (size_t)r;
  }
  return 0;
}

int redis_fill(int fd, const char *prefix, uint64_t total_bytes, size_t vsize, uint64_t *keys_out,
               struct ferry_err *err)
{
  if (vsize < 1 || vsize > REDIS_FILL_VALUE_MAX)
    return FERRY_INVALID(err, "value size %zu: expected 1..%u bytes", vsize, REDIS_FILL_VALUE_MAX);
  if (!prefix || strlen(prefix) > 64)
    return FERRY_INVALID(err, "key prefix is missing or too long");
  uint64_t keys = total_bytes / vsize, done = 0;
  uint64_t x = 88172645463325252ull ^ (uint64_t)time(NULL) ^ ((uint64_t)(uintptr_t)&x << 16);
  char *cmd = malloc(vsize + 160);
  struct replies *rp = calloc(1, sizeof *rp);
  if (!cmd || !rp)
    abort();
  const uint64_t batch = 1000;
  int r = 0;
  while (done < keys) {
    uint64_t n = keys - done < batch ? keys - done : batch;
    for (uint64_t i = 0; i < n; i++) {
      char key[96];
      int kl = snprintf(key, sizeof key, "%s:%llu", prefix, (unsigned long long)(done + i));
      int hl = snprintf(cmd, 160, "*3\r\n$3\r\nSET\r\n$%d\r\n%s\r\n$%zu\r\n", kl, key, vsize);
      char *v = cmd + hl;
      for (size_t j = 0; j < vsize; j += 8) {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        memcpy(v + j, &x, vsize - j < 8 ? vsize - j : 8);
      }
      memcpy(v + vsize, "\r\n", 2);
      if (send_all(fd, cmd, (size_t)hl + vsize + 2) < 0) {
        r = ferry_err_sys(err, -errno, "redis: send");
        goto out;
      }
    }
    if ((r = read_oks(fd, rp, n, err)) < 0)
      goto out;
    done += n;
  }
  if (keys_out)
    *keys_out = keys;
out:
  free(cmd);
  free(rp);
  return r;
}
