/* CRIU RPC on a worker's socket pair, for ferryd and for ferry-criu (which
 * links nothing of ferry's): a small request sent whole, and whether a CRIU
 * started ahead (`criu swrk`) has started: its
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

/* Sends a small request (no field of variable length: at most 64 bytes
 * packed) to the CRIU worker on sk as one message: 0, -EIO when it does not
 * fit or went out short, or the send's -errno. */
static inline int ckpt_criu_send_small(int sk, const CriuReq *req)
{
  uint8_t out[64];
  size_t len = criu_req__get_packed_size(req);
  if (len > sizeof out)
    return -EIO;
  criu_req__pack(req, out);
  ssize_t w;
  do
    w = send(sk, out, len, MSG_NOSIGNAL);
  while (w < 0 && errno == EINTR);
  if (w < 0)
    return -errno;
  return w == (ssize_t)len ? 0 : -EIO;
}

/* 0 once the worker on sk answered; -ETIMEDOUT after timeout_ms, -EIO for
 * anything but a successful VERSION answer, or the send's -errno. */
static inline int ckpt_criu_ready(int sk, int timeout_ms)
{
  CriuReq req = CRIU_REQ__INIT;
  req.type = CRIU_REQ_TYPE__VERSION;
  req.has_keep_open = true;
  req.keep_open = true;
  int r = ckpt_criu_send_small(sk, &req);
  if (r < 0)
    return r;
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
