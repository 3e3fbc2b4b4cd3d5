/* rtnetlink requests built by hand (one request, one acknowledgement):
 * the few ferry makes inside a migration's pause, where starting an ip or
 * tc process would cost milliseconds of CPU. */
#pragma once
#include <stddef.h>
#include <stdint.h>

#include "util/err.h"

/* A request being built: attributes appended, nests closed by the offset
 * they began at. */
struct nlreq {
  unsigned char buf[1024];
  size_t len;
};

/* Starts request q: its header, of type and flags (nl_ask sets its length
 * and sequence). */
void nl_begin(struct nlreq *q, uint16_t type, uint16_t flags);
/* Appends len bytes (zeros when data is NULL), aligned; aborts past the
 * buffer (requests are fixed and small). */
void *nl_put(struct nlreq *q, const void *data, size_t len);
size_t nl_attr(struct nlreq *q, unsigned short type, const void *data, size_t len);
size_t nl_nest(struct nlreq *q, unsigned short type);
void nl_nest_end(struct nlreq *q, size_t at);
/* Sends q (its header's length and sequence set here) on the rtnetlink
 * socket sk and waits (5 s at most) for the kernel's acknowledgement:
 * 0, or its error with what (and ctx, naming the caller) in the message. */
int nl_ask(int sk, struct nlreq *q, uint32_t seq, const char *ctx, const char *what,
           struct ferry_err *err);
