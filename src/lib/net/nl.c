#include <errno.h>
#include <linux/netlink.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "net/nl.h"

void *nl_put(struct nlreq *q, const void *data, size_t len)
{
  size_t al = NLMSG_ALIGN(len);
  if (q->len + al > sizeof q->buf)
    abort(); /* the requests made with it are fixed and fit */
  void *at = q->buf + q->len;
  memset(at, 0, al);
  if (data)
    memcpy(at, data, len);
  q->len += al;
  return at;
}

void nl_begin(struct nlreq *q, uint16_t type, uint16_t flags)
{
  q->len = 0;
  struct nlmsghdr *nh = nl_put(q, NULL, sizeof *nh);
  nh->nlmsg_type = type;
  nh->nlmsg_flags = flags;
}

size_t nl_attr(struct nlreq *q, unsigned short type, const void *data, size_t len)
{
  size_t at = q->len;
  struct nlattr a = {.nla_len = (unsigned short)(NLA_HDRLEN + len), .nla_type = type};
  nl_put(q, &a, sizeof a);
  if (len)
    nl_put(q, data, len);
  return at;
}

size_t nl_nest(struct nlreq *q, unsigned short type)
{
  return nl_attr(q, type | NLA_F_NESTED, NULL, 0);
}

void nl_nest_end(struct nlreq *q, size_t at)
{
  ((struct nlattr *)(q->buf + at))->nla_len = (unsigned short)(q->len - at);
}

int nl_ask(int sk, struct nlreq *q, uint32_t seq, const char *ctx, const char *what,
           struct ferry_err *err)
{
  struct nlmsghdr *nh = (struct nlmsghdr *)q->buf;
  nh->nlmsg_len = (uint32_t)q->len;
  nh->nlmsg_seq = seq;
  struct sockaddr_nl kernel = {.nl_family = AF_NETLINK};
  if (sendto(sk, q->buf, q->len, 0, (struct sockaddr *)&kernel, sizeof kernel) != (ssize_t)q->len)
    return ferry_err_sys(err, -errno, "%s: netlink", ctx);
  /* the acknowledgement (an error message, 0 for success) */
  for (int i = 0; i < 16; i++) {
    union {
      unsigned char b[4096];
      struct nlmsghdr align;
    } ans;
    struct pollfd pf = {.fd = sk, .events = POLLIN};
    if (poll(&pf, 1, 5000) != 1)
      return FERRY_INTERNAL(err, "%s: no answer from the kernel to the %s", ctx, what);
    ssize_t n = recv(sk, ans.b, sizeof ans.b, 0);
    if (n < 0)
      return ferry_err_sys(err, -errno, "%s: netlink", ctx);
    for (struct nlmsghdr *r = &ans.align; NLMSG_OK(r, (size_t)n); r = NLMSG_NEXT(r, n)) {
      if (r->nlmsg_seq != seq || r->nlmsg_type != NLMSG_ERROR)
        continue;
      int e = ((struct nlmsgerr *)NLMSG_DATA(r))->error;
      return e == 0 ? 0 : ferry_err_sys(err, e, "%s: %s", ctx, what);
    }
  }
  return FERRY_INTERNAL(err, "%s: no acknowledgement of the %s", ctx, what);
}
