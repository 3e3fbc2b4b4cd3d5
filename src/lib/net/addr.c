#include <arpa/inet.h>
#include <netdb.h>
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

bool host_name_valid(const char *name)
{
  size_t n = name ? strlen(name) : 0;
  if (n == 0 || n > 253 || name[0] == '-' || name[0] == '.')
    return false;
  for (size_t i = 0; i < n; i++) {
    char c = name[i];
    if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
          c == '-' || c == '.' || c == '_'))
      return false;
  }
  return true;
}

int net_resolve4(const char *host, uint32_t *out, size_t max, size_t *n, struct ferry_err *err)
{
  *n = 0;
  if (max == 0)
    return FERRY_INTERNAL(err, "net_resolve4: no room");
  if (ip_parse(host, &out[0]) == 0) {
    *n = 1;
    return 0;
  }
  if (!host_name_valid(host))
    return FERRY_INVALID(err, "\"%.64s\" is neither an IPv4 address nor a host name", host);
  struct addrinfo hints = {.ai_family = AF_INET, .ai_socktype = SOCK_STREAM}, *res = NULL;
  int g = getaddrinfo(host, NULL, &hints, &res);
  if (g != 0)
    return ferry_err_set(err, -EHOSTUNREACH, FERRY_E_UNAVAILABLE,
                         "host name \"%s\" does not resolve to an IPv4 address: %s", host,
                         g == EAI_SYSTEM ? strerror(errno) : gai_strerror(g));
  for (struct addrinfo *ai = res; ai && *n < max; ai = ai->ai_next) {
    if (ai->ai_family != AF_INET)
      continue;
    uint32_t v = ntohl(((struct sockaddr_in *)ai->ai_addr)->sin_addr.s_addr);
    bool seen = false;
    for (size_t i = 0; i < *n; i++)
      seen |= out[i] == v;
    if (!seen)
      out[(*n)++] = v;
  }
  freeaddrinfo(res);
  if (*n == 0)
    return ferry_err_set(err, -EHOSTUNREACH, FERRY_E_UNAVAILABLE,
                         "host name \"%s\" does not resolve to an IPv4 address", host);
  return 0;
}
