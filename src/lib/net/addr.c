#include <arpa/inet.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "net/net.h"
#include "util/cleanup.h"
#include "util/fs.h"

int ip_parse(const char *s, uint32_t *out)
{
  struct in_addr a;
  if (!s || inet_pton(AF_INET, s, &a) != 1)
    return -EINVAL;
  *out = ntohl(a.s_addr);
  return 0;
}

void ip_format(uint32_t ip, char *buf, size_t len)
{
  struct in_addr a = {.s_addr = htonl(ip)};
  inet_ntop(AF_INET, &a, buf, (socklen_t)len);
}

int subnet_parse(const char *cidr, struct subnet *out, struct ferry_err *err)
{
  if (!cidr)
    return FERRY_INVALID(err, "subnet is empty");
  _cleanup_free_ char *c = xstrdup(cidr);
  char *slash = strchr(c, '/');
  if (!slash)
    return FERRY_INVALID(err, "subnet \"%s\": expected ADDRESS/PREFIX", cidr);
  *slash = '\0';
  char *end;
  long p = strtol(slash + 1, &end, 10);
  uint32_t ip;
  if (*end || p < 8 || p > 30 || ip_parse(c, &ip) < 0)
    return FERRY_INVALID(err, "subnet \"%s\": expected an IPv4 ADDRESS/PREFIX with prefix 8..30",
                         cidr);
  uint32_t mask = p == 0 ? 0 : 0xffffffffu << (32 - p);
  out->net = ip & mask;
  out->prefix = (int)p;
  out->gw = out->net + 1;
  return 0;
}

bool subnet_contains(const struct subnet *s, uint32_t ip)
{
  uint32_t mask = 0xffffffffu << (32 - s->prefix);
  return (ip & mask) == s->net;
}

bool subnet_usable(const struct subnet *s, uint32_t ip)
{
  uint32_t bcast = s->net | ~(0xffffffffu << (32 - s->prefix));
  return subnet_contains(s, ip) && ip != s->net && ip != bcast && ip != s->gw;
}

uint32_t subnet_alloc(const struct subnet *s, const uint32_t *used, size_t n)
{
  uint32_t bcast = s->net | ~(0xffffffffu << (32 - s->prefix));
  for (uint32_t ip = s->net + 1; ip < bcast; ip++) {
    if (!subnet_usable(s, ip))
      continue;
    bool taken = false;
    for (size_t i = 0; i < n && !taken; i++)
      taken = used[i] == ip;
    if (!taken)
      return ip;
  }
  return 0;
}

bool mac_valid(const char *s)
{
  if (strlen(s) != 17)
    return false;
  for (int i = 0; i < 17; i++) {
    if (i % 3 == 2 ? s[i] != ':' : !strchr("0123456789abcdefABCDEF", s[i]))
      return false;
  }
  return true;
}

void mac_for_ip(uint32_t ip, char *buf, size_t len)
{
  snprintf(buf, len, "02:fe:%02x:%02x:%02x:%02x", (ip >> 24) & 255, (ip >> 16) & 255,
           (ip >> 8) & 255, ip & 255);
}
