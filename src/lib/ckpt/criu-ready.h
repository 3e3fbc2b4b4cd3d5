/* Whether a CRIU started ahead (`criu swrk` on a socket pair) has started,
 * for ferryd and for ferry-criu (which links nothing of ferry's): its
 * answer to a VERSION request asked with keep_open (the worker then waits
 * for its next request). Waited for before the freeze, its start (exec,
 * ~15 libraries linked, the kernel's features learnt: 15-25 ms of CPU
 * here) is not spent beside a dump on the same CPUs. */
#pragma once
#include <errno.h>
#include <poll.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <sys/socket.h>

#include "criu-rpc.pb-c.h"

/* 0 once the worker on sk answered; -ETIMEDOUT after timeout_ms, -EIO for
 * anything but a successful VERSION answer, or the send's -errno. */
static inline int ckpt_criu_ready(int sk, int timeout_ms)
{
  CriuReq req = CRIU_REQ__INIT;
  req.type = CRIU_REQ_TYPE__VERSION;
  req.has_keep_open = true;
  req.keep_open = true;
  uint8_t out[64];
  size_t len = criu_req__get_packed_size(&req);
  if (len > sizeof out)
    return -EIO;
  criu_req__pack(&req, out);
  if (send(sk, out, len, MSG_NOSIGNAL) != (ssize_t)len)
    return errno ? -errno : -EIO;
  struct pollfd pf = {.fd = sk, .events = POLLIN};
  int pr;
  do
    pr = poll(&pf, 1, timeout_ms);
  while (pr < 0 && errno == EINTR);
  if (pr != 1)
    return -ETIMEDOUT;
  enum { ANSWER_MAX = 64 * 1024 };
  uint8_t *in = malloc(ANSWER_MAX);
  if (!in)
    abort();
  ssize_t n = recv(sk, in, ANSWER_MAX, 0);
  CriuResp *resp = n > 0 ? criu_resp__unpack(NULL, (size_t)n, in) : NULL;
  free(in);
  bool ok = resp && resp->type == CRIU_REQ_TYPE__VERSION && resp->success;
  if (resp)
    criu_resp__free_unpacked(resp, NULL);
  return ok ? 0 : -EIO;
}
