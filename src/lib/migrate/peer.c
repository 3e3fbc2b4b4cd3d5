/* The target agent of a move as its source reaches it (peer.h). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "net/net.h"
#include "migrate/peer.h"
#include "util/cleanup.h"
#include "util/fs.h"
#include "util/relay.h"

#define FORM "expected tcp://HOST:PORT or https://HOST:PORT"

int mig_peer_open(struct mig_peer *p, const char *url, const char *mid, struct ferry_err *err)
{
  *p = (struct mig_peer){0};
  const char *schemes[] = {"tcp://", "http://", "https://"};
  const char *rest = NULL;
  for (size_t i = 0; i < sizeof schemes / sizeof schemes[0] && !rest; i++)
    if (strncmp(url, schemes[i], strlen(schemes[i])) == 0)
      rest = url + strlen(schemes[i]);
  if (!rest || strlen(url) >= sizeof p->url)
    return FERRY_INVALID(err, "target \"%s\": %s", url, FORM);
  p->tls = strncmp(url, "https://", 8) == 0;
  size_t hl = strcspn(rest, ":/");
  if (hl == 0 || hl >= sizeof p->host)
    return FERRY_INVALID(err, "target \"%s\": %s", url, FORM);
  memcpy(p->host, rest, hl);
  const char *after = rest + hl;
  if (*after == ':') {
    size_t pl = strspn(after + 1, "0123456789");
    if (pl == 0 || pl >= sizeof p->port || (after[1 + pl] && strcmp(after + 1 + pl, "/") != 0))
      return FERRY_INVALID(err, "target \"%s\": %s", url, FORM);
    memcpy(p->port, after + 1, pl);
  } else if (*after && strcmp(after, "/") != 0) {
    return FERRY_INVALID(err, "target \"%s\": %s", url, FORM);
  } else {
    snprintf(p->port, sizeof p->port, "%s", p->tls ? "443" : "80");
  }
  uint32_t addrs[4];
  size_t n = 0;
  int r = net_resolve4(p->host, addrs, sizeof addrs / sizeof addrs[0], &n, err);
  if (r < 0)
    return ferry_err_wrap(err, "target \"%s\"", url);
  ip_format(addrs[0], p->addr, sizeof p->addr);
  snprintf(p->url, sizeof p->url, "%s", url);
  snprintf(p->mid, sizeof p->mid, "%s", mid ? mid : "");
  return 0;
}

int mig_peer_client(const struct mig_peer *p, const char *token, const char *ca,
                    struct http_client **out, struct ferry_err *err)
{
  int r = http_client_new(p->url, out, err);
  if (r < 0)
    return r;
  http_client_pin(*out, p->host, p->port, p->addr);
  http_client_set_token(*out, token);
  http_client_set_ca(*out, ca);
  return 0;
}

char *mig_peer_path(const struct mig_peer *p, const char *step, const char *arg)
{
  _cleanup_free_ char *e = arg ? http_escape(arg) : NULL;
  return xasprintf(MIG_PEER_OFFER_PATH "/%s%s%s%s", p->mid, step, e ? "/" : "", e ? e : "");
}

char *mig_peer_part_path(const struct mig_peer *p, enum wire_part part, const char *arg)
{
  _cleanup_free_ char *seg = xasprintf("/%s", wire_part_segment(part));
  return mig_peer_path(p, seg, arg);
}

int mig_peer_connect(const struct mig_peer *p, const char *addr, int port, int timeout_s,
                     char **endpoint)
{
  const char *to = addr && *addr ? addr : p->addr;
  if (endpoint)
    *endpoint = xasprintf("%s:%d", to, port);
  return relay_tcp_connect(to, port, timeout_s);
}
