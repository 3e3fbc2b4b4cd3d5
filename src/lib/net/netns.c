#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <ifaddrs.h>
#include <net/if.h>
#include <netinet/in.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <string.h>
#include <unistd.h>

#include "net/net.h"
#include "util/cleanup.h"
#include "util/fs.h"
#include "util/json.h"
#include "util/spawn.h"

#define IP(...) ((const char *const[]){"ip", __VA_ARGS__, NULL})

void net_names(const char *ctr_id, char *netns, size_t nlen, char *veth, size_t vlen)
{
  snprintf(netns, nlen, "ferry-%.12s", ctr_id);
  snprintf(veth, vlen, "fv%.11s", ctr_id); /* IFNAMSIZ: 15 characters */
}

bool net_netns_exists(const char *netns)
{
  _cleanup_free_ char *p = xasprintf("/var/run/netns/%s", netns);
  return path_exists(p);
}

static bool link_exists(const char *name)
{
  _cleanup_free_ char *p = xasprintf("/sys/class/net/%s", name);
  if (path_exists(p))
    return true;
  /* /sys may belong to another netns than ours (nsenter --net): ask ip. */
  struct spawn_result r = {0};
  if (spawn_run(IP("link", "show", "dev", name), NULL, &r, NULL) < 0)
    return false;
  bool ok = r.exit_code == 0;
  spawn_result_free(&r);
  return ok;
}

int net_bridge_ensure(const struct net_config *nc, struct ferry_err *err)
{
  char gw[16];
  ip_format(nc->subnet.gw, gw, sizeof gw);
  _cleanup_free_ char *cidr = xasprintf("%s/%d", gw, nc->subnet.prefix);
  int r;
  if (!link_exists(nc->bridge)) {
    if ((r = spawn_check(IP("link", "add", nc->bridge, "type", "bridge"), NULL, err)) < 0)
      return ferry_err_wrap(err, "bridge %s", nc->bridge);
  }
  _cleanup_free_ char *out = NULL;
  if ((r = spawn_check(IP("-j", "addr", "show", "dev", nc->bridge), &out, err)) < 0)
    return ferry_err_wrap(err, "bridge %s", nc->bridge);
  _cleanup_json_ json_t *j = NULL;
  bool have = false;
  if (json_parse(out, strlen(out), "ip addr", &j, NULL) == 0) {
    json_t *ai = json_object_get(json_array_get(j, 0), "addr_info");
    size_t i;
    json_t *a;
    json_array_foreach(ai, i, a)
    {
      if (strcmp(json_str_or(a, "local", ""), gw) == 0)
        have = true;
    }
  }
  if (!have && (r = spawn_check(IP("addr", "add", cidr, "dev", nc->bridge), NULL, err)) < 0)
    return ferry_err_wrap(err, "bridge %s", nc->bridge);
  /* A bridge whose address was never set takes the lowest of its ports' and
   * changes it when containers come and go: neighbours would keep a stale ARP
   * entry for the agent. Setting it once pins it. */
  const char *mac = json_str_or(json_array_get(j, 0), "address", NULL);
  if (mac && (r = spawn_check(IP("link", "set", "dev", nc->bridge, "address", mac), NULL, err)) < 0)
    return ferry_err_wrap(err, "bridge %s", nc->bridge);
  if ((r = spawn_check(IP("link", "set", nc->bridge, "up"), NULL, err)) < 0)
    return ferry_err_wrap(err, "bridge %s", nc->bridge);
  return 0;
}

int net_ctr_setup(const struct net_config *nc, const char *netns, const char *veth,
                  const char *ip, const char *mac, bool up, struct ferry_err *err)
{
  net_ctr_teardown(netns, veth, NULL);
  char gw[16];
  ip_format(nc->subnet.gw, gw, sizeof gw);
  _cleanup_free_ char *cidr = xasprintf("%s/%d", ip, nc->subnet.prefix);
  char peer[16];
  snprintf(peer, sizeof peer, "fp%.11s", veth + 2);
  int r;
  if ((r = spawn_check(IP("netns", "add", netns), NULL, err)) < 0 ||
      (r = spawn_check(IP("link", "add", veth, "type", "veth", "peer", "name", peer, "netns", netns),
                       NULL, err)) < 0 ||
      (r = spawn_check(IP("link", "set", veth, "master", nc->bridge, up ? "up" : "down"), NULL,
                       err)) < 0 ||
      (r = spawn_check(IP("-n", netns, "link", "set", peer, "name", "eth0"), NULL, err)) < 0 ||
      (r = spawn_check(IP("-n", netns, "link", "set", "eth0", "address", mac), NULL, err)) < 0 ||
      (r = spawn_check(IP("-n", netns, "addr", "add", cidr, "dev", "eth0"), NULL, err)) < 0 ||
      (r = spawn_check(IP("-n", netns, "link", "set", "eth0", "up"), NULL, err)) < 0 ||
      (r = spawn_check(IP("-n", netns, "link", "set", "lo", "up"), NULL, err)) < 0 ||
      (r = spawn_check(IP("-n", netns, "route", "add", "default", "via", gw), NULL, err)) < 0) {
    net_ctr_teardown(netns, veth, NULL);
    return ferry_err_wrap(err, "network %s (%s)", netns, ip);
  }
  return 0;
}

int net_ctr_teardown(const char *netns, const char *veth, struct ferry_err *err)
{
  struct spawn_result r = {0};
  if (veth && spawn_run(IP("link", "del", veth), NULL, &r, NULL) == 0)
    spawn_result_free(&r);
  if (netns && net_netns_exists(netns)) {
    int rc = spawn_check(IP("netns", "del", netns), NULL, err);
    if (rc < 0)
      return rc;
  }
  return 0;
}

int net_link_set(const char *veth, bool up, struct ferry_err *err)
{
  return spawn_check(IP("link", "set", "dev", veth, up ? "up" : "down"), NULL, err);
}

int net_announce(const char *netns, const char *ip, struct ferry_err *err)
{
  _cleanup_free_ char *ns = xasprintf("--net=/var/run/netns/%s", netns);
  const char *argv[] = {"nsenter", ns, "busybox", "arping", "-U", "-c", "1",
                        "-I", "eth0", ip, NULL};
  struct spawn_result r = {0};
  struct spawn_opts o = {.timeout_ms = 5000};
  int rc = spawn_run(argv, &o, &r, err);
  if (rc == 0 && r.exit_code != 0 && r.exit_code != 1) {
    _cleanup_free_ char *t = tail_lines(r.errout, 300);
    rc = FERRY_INTERNAL(err, "announce %s: arping: %s", ip, t);
  }
  spawn_result_free(&r);
  return rc;
}

static bool ipv4_valid(const char *s)
{
  uint32_t ip;
  return ip_parse(s, &ip) == 0;
}

json_t *net_neigh_list(const char *netns)
{
  json_t *out = json_array();
  _cleanup_free_ char *raw = NULL;
  _cleanup_json_ json_t *j = NULL;
  if (spawn_check(IP("-n", netns, "-4", "-j", "neigh", "show", "dev", "eth0"), &raw, NULL) < 0 ||
      json_parse(raw, strlen(raw), "ip neigh", &j, NULL) < 0 || !json_is_array(j))
    return out;
  size_t i;
  json_t *e;
  json_array_foreach(j, i, e)
  {
    const char *ip = json_str_or(e, "dst", ""), *mac = json_str_or(e, "lladdr", "");
    if (json_array_size(out) < NET_NEIGH_MAX && ipv4_valid(ip) && mac_valid(mac))
      json_array_append_new(out, json_pack("{s:s, s:s}", "ip", ip, "mac", mac));
  }
  return out;
}

int net_neigh_seed(const char *netns, json_t *neighbours)
{
  int n = 0;
  size_t i;
  json_t *e;
  json_array_foreach(neighbours, i, e)
  {
    const char *ip = json_str_or(e, "ip", ""), *mac = json_str_or(e, "mac", "");
    if (n >= NET_NEIGH_MAX || !ipv4_valid(ip) || !mac_valid(mac))
      continue;
    if (spawn_check(IP("-n", netns, "neigh", "replace", ip, "lladdr", mac, "dev", "eth0", "nud", "stale"),
                    NULL, NULL) == 0)
      n++;
  }
  return n;
}

int net_connect_in(const char *netns, const char *ip, int port, int timeout_s,
                   struct ferry_err *err)
{
  struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
  if (inet_pton(AF_INET, ip, &sa.sin_addr) != 1)
    return FERRY_INVALID(err, "\"%s\" is not an IPv4 address", ip);
  _cleanup_free_ char *p = xasprintf("/var/run/netns/%s", netns);
  int target = open(p, O_RDONLY | O_CLOEXEC);
  if (target < 0)
    return ferry_err_sys(err, -errno, "network namespace %s", netns);
  int self = open("/proc/thread-self/ns/net", O_RDONLY | O_CLOEXEC);
  if (self < 0) {
    int e = -errno;
    close(target);
    return ferry_err_sys(err, e, "this thread's network namespace");
  }
  /* Only this thread enters the namespace, for the socket() call: a socket
   * belongs to the namespace it was made in. */
  int fd = -1, e = 0;
  if (setns(target, CLONE_NEWNET) < 0) {
    e = -errno;
  } else {
    fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
      e = -errno;
    if (setns(self, CLONE_NEWNET) < 0)
      abort(); /* a request thread must never stay in a container's namespace */
  }
  close(target);
  close(self);
  if (fd < 0)
    return ferry_err_sys(err, e, "socket in network namespace %s", netns);
  struct timeval tv = {.tv_sec = timeout_s};
  setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
  if (connect(fd, (struct sockaddr *)&sa, sizeof sa) < 0) {
    e = -errno;
    close(fd);
    return ferry_err_sys(err, e, "connect to %s:%d in %s", ip, port, netns);
  }
  return fd;
}

/* Walks this namespace's IPv4 addresses: local (an address of ours) or on
 * link (inside the network of a non-loopback address of ours). */
static bool addr_match(const char *ip, bool on_link)
{
  struct in_addr want;
  if (inet_pton(AF_INET, ip, &want) != 1)
    return false;
  struct ifaddrs *ifs = NULL;
  if (getifaddrs(&ifs) < 0)
    return false;
  bool found = false;
  for (struct ifaddrs *i = ifs; i && !found; i = i->ifa_next) {
    if (!i->ifa_addr || i->ifa_addr->sa_family != AF_INET)
      continue;
    uint32_t a = ((struct sockaddr_in *)(void *)i->ifa_addr)->sin_addr.s_addr;
    if (!on_link) {
      found = a == want.s_addr;
    } else if (i->ifa_netmask && !(i->ifa_flags & IFF_LOOPBACK)) {
      uint32_t m = ((struct sockaddr_in *)(void *)i->ifa_netmask)->sin_addr.s_addr;
      found = (a & m) == (want.s_addr & m);
    }
  }
  freeifaddrs(ifs);
  return found;
}

bool net_ip_is_local(const char *ip)
{
  return addr_match(ip, false);
}

bool net_ip_on_link(const char *ip)
{
  return addr_match(ip, true);
}
