#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <ifaddrs.h>
#include <net/ethernet.h>
#include <net/if_arp.h>
#include <netpacket/packet.h>
#include <net/if.h>
#include <netinet/in.h>
#include <linux/neighbour.h>
#include <linux/netlink.h>
#include <linux/rtnetlink.h>
#include <poll.h>
#include <pthread.h>
#include <sched.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <time.h>
#include <string.h>
#include <unistd.h>

#include "net/hold.h"
#include "net/net.h"
#include "net/nl.h"
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
  char mtu[12];
  snprintf(mtu, sizeof mtu, "%d", nc->mtu > 0 ? nc->mtu : 1500);
  int r;
  if ((r = spawn_check(IP("netns", "add", netns), NULL, err)) < 0 ||
      (r = spawn_check(IP("link", "add", veth, "mtu", mtu, "type", "veth", "peer", "name", peer,
                          "mtu", mtu, "netns", netns),
                       NULL, err)) < 0 ||
      /* the qdisc a migration's hold needs, made while the link is down:
       * made later it would drop what is sent through it meanwhile */
      (r = net_clsact_ensure(veth, err)) < 0 ||
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

/* Waits (at most max_ms) until link name is operationally up, as the socket
 * fd's namespace sees it. The kernel brings a link whose carrier just came
 * on into service a moment later (its queueing discipline is attached
 * then): until that moment it drops what is sent through it, and a bridge
 * does not forward from it. */
static bool wait_running(int fd, const char *name, int max_ms)
{
  uint64_t until = now_mono_ms() + (uint64_t)max_ms;
  for (int i = 0; i < 100000; i++) {
    struct ifreq ifr = {0};
    memcpy(ifr.ifr_name, name, strlen(name) + 1);
    if (ioctl(fd, SIOCGIFFLAGS, &ifr) < 0)
      return false;
    if (ifr.ifr_flags & IFF_RUNNING)
      return true;
    if (now_mono_ms() > until)
      return false;
    struct timespec ts = {0, 200 * 1000};
    nanosleep(&ts, NULL);
  }
  return false;
}

int net_link_set(const char *veth, bool up, struct ferry_err *err)
{
  /* An ioctl, not `ip link set`: this runs inside the freeze and the commit. */
  struct ifreq ifr = {0};
  if (!veth || !*veth || strlen(veth) >= sizeof ifr.ifr_name)
    return FERRY_INVALID(err, "link name \"%s\" is not valid", veth ? veth : "");
  memcpy(ifr.ifr_name, veth, strlen(veth) + 1);
  int fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  if (fd < 0)
    return ferry_err_sys(err, -errno, "link %s: socket", veth);
  int r = 0;
  if (ioctl(fd, SIOCGIFFLAGS, &ifr) < 0) {
    r = ferry_err_sys(err, -errno, "link %s", veth);
  } else {
    if (up)
      ifr.ifr_flags |= IFF_UP;
    else
      ifr.ifr_flags &= ~IFF_UP;
    if (ioctl(fd, SIOCSIFFLAGS, &ifr) < 0)
      r = ferry_err_sys(err, -errno, "link %s: set %s", veth, up ? "up" : "down");
    else if (up)
      wait_running(fd, veth, 200); /* else the first frames are lost */
  }
  close(fd);
  return r;
}

/* An ARP packet for Ethernet and IPv4, as it travels (after the link header). */
struct arp_pkt {
  struct arphdr h;
  unsigned char sha[ETH_ALEN], spa[4], tha[ETH_ALEN], tpa[4];
} __attribute__((packed));

/* A socket made in network namespace netns (by this thread alone, for the
 * socket() call: a socket belongs to the namespace it was made in). */
static int socket_in(const char *netns, int domain, int type, int proto, struct ferry_err *err)
{
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
  int fd = -1, e = 0;
  if (setns(target, CLONE_NEWNET) < 0) {
    e = -errno;
  } else {
    fd = socket(domain, type | SOCK_CLOEXEC, proto);
    if (fd < 0)
      e = -errno;
    if (setns(self, CLONE_NEWNET) < 0)
      abort(); /* a request thread must never stay in a container's namespace */
  }
  close(target);
  close(self);
  if (fd < 0)
    return ferry_err_sys(err, e, "socket in network namespace %s", netns);
  return fd;
}

/* An unsolicited ARP request (sender and target address both ip, as
 * `arping -U` sends) from the container's eth0: the switch learns where
 * its MAC address is now, neighbours refresh their entry. Made here, not by
 * a helper process: it is the last step of a migration's downtime. */
int net_announce(const char *netns, const char *ip, struct ferry_err *err)
{
  struct in_addr addr;
  if (inet_pton(AF_INET, ip, &addr) != 1)
    return FERRY_INVALID(err, "announce: \"%s\" is not an IPv4 address", ip);
  int fd = socket_in(netns, AF_PACKET, SOCK_DGRAM, htons(ETH_P_ARP), err);
  if (fd < 0)
    return ferry_err_wrap(err, "announce %s", ip);
  struct ifreq ifr = {0};
  memcpy(ifr.ifr_name, "eth0", 5);
  int r = 0;
  if (ioctl(fd, SIOCGIFINDEX, &ifr) < 0) {
    r = ferry_err_sys(err, -errno, "announce %s: eth0 in %s", ip, netns);
    goto out;
  }
  int ifindex = ifr.ifr_ifindex;
  wait_running(fd, "eth0", 200); /* else the kernel drops the request */
  if (ioctl(fd, SIOCGIFHWADDR, &ifr) < 0) {
    r = ferry_err_sys(err, -errno, "announce %s: address of eth0 in %s", ip, netns);
    goto out;
  }
  struct arp_pkt pkt = {.h = {.ar_hrd = htons(ARPHRD_ETHER), .ar_pro = htons(ETH_P_IP),
                              .ar_hln = ETH_ALEN, .ar_pln = 4, .ar_op = htons(ARPOP_REQUEST)}};
  memcpy(pkt.sha, ifr.ifr_hwaddr.sa_data, ETH_ALEN);
  memcpy(pkt.spa, &addr, 4);
  memcpy(pkt.tpa, &addr, 4);
  struct sockaddr_ll to = {.sll_family = AF_PACKET, .sll_protocol = htons(ETH_P_ARP),
                           .sll_ifindex = ifindex, .sll_halen = ETH_ALEN};
  memset(to.sll_addr, 0xff, ETH_ALEN);
  if (sendto(fd, &pkt, sizeof pkt, 0, (struct sockaddr *)&to, sizeof to) != (ssize_t)sizeof pkt)
    r = ferry_err_sys(err, -errno, "announce %s: send", ip);
out:
  close_async(fd);
  return r;
}

int net_send_from(const char *netns, const char *dev, unsigned char *const *frames,
                  const uint32_t *lens, size_t n, uint64_t *bytes, struct ferry_err *err)
{
  if (n == 0)
    return 0;
  int fd = socket_in(netns, AF_PACKET, SOCK_RAW, 0, err);
  if (fd < 0)
    return ferry_err_wrap(err, "send from %s", dev);
  struct ifreq ifr = {0};
  snprintf(ifr.ifr_name, sizeof ifr.ifr_name, "%s", dev);
  int sent = 0;
  if (ioctl(fd, SIOCGIFINDEX, &ifr) < 0) {
    sent = ferry_err_sys(err, -errno, "%s in %s", dev, netns);
    goto out;
  }
  wait_running(fd, dev, 200); /* else the kernel drops what is sent */
  for (size_t i = 0; i < n; i++) {
    if (lens[i] < ETH_HLEN)
      continue;
    struct sockaddr_ll to = {.sll_family = AF_PACKET, .sll_ifindex = ifr.ifr_ifindex,
                             .sll_halen = ETH_ALEN};
    memcpy(to.sll_addr, frames[i], ETH_ALEN);
    if (sendto(fd, frames[i], lens[i], 0, (struct sockaddr *)&to, sizeof to) == (ssize_t)lens[i]) {
      sent++;
      if (bytes)
        *bytes += lens[i];
    }
  }
out:
  close_async(fd);
  return sent;
}

int net_link_mac(const char *dev, char *buf, size_t len)
{
  struct ifreq ifr = {0};
  if (strlen(dev) >= sizeof ifr.ifr_name)
    return -EINVAL;
  memcpy(ifr.ifr_name, dev, strlen(dev) + 1);
  int fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  if (fd < 0)
    return -errno;
  int r = ioctl(fd, SIOCGIFHWADDR, &ifr) < 0 ? -errno : 0;
  close(fd);
  if (r == 0) {
    const unsigned char *m = (const unsigned char *)ifr.ifr_hwaddr.sa_data;
    snprintf(buf, len, "%02x:%02x:%02x:%02x:%02x:%02x", m[0], m[1], m[2], m[3], m[4], m[5]);
  }
  return r;
}

static bool ipv4_valid(const char *s)
{
  uint32_t ip;
  return ip_parse(s, &ip) == 0;
}

/* A file opened in network namespace netns (/proc/thread-self/net/...
 * opened there shows that namespace's tables). */
static int open_in(const char *netns, const char *path)
{
  _cleanup_free_ char *p = xasprintf("/var/run/netns/%s", netns);
  int target = open(p, O_RDONLY | O_CLOEXEC);
  if (target < 0)
    return -errno;
  int self = open("/proc/thread-self/ns/net", O_RDONLY | O_CLOEXEC);
  if (self < 0) {
    int e = -errno;
    close(target);
    return e;
  }
  int fd = -1;
  if (setns(target, CLONE_NEWNET) == 0) {
    fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
      fd = -errno;
    if (setns(self, CLONE_NEWNET) < 0)
      abort(); /* a request thread must never stay in a container's namespace */
  } else {
    fd = -errno;
  }
  close(target);
  close(self);
  return fd;
}

/* The container's complete IPv4 neighbour entries on eth0, from the
 * kernel's ARP table as /proc shows it in its namespace (read here, not by
 * an ip process: this runs inside the freeze). */
json_t *net_neigh_list(const char *netns)
{
  json_t *out = json_array();
  int fd = open_in(netns, "/proc/thread-self/net/arp");
  if (fd < 0)
    return out;
  _cleanup_fclose_ FILE *f = fdopen(fd, "re");
  if (!f) {
    close(fd);
    return out;
  }
  char line[512];
  bool header = true;
  while (fgets(line, sizeof line, f)) {
    if (header) { /* "IP address  HW type  Flags  HW address  Mask  Device" */
      header = false;
      continue;
    }
    char ip[64], hwtype[16], flags[16], mac[64], mask[64], dev[IFNAMSIZ + 1];
    if (sscanf(line, "%63s %15s %15s %63s %63s %16s", ip, hwtype, flags, mac, mask, dev) != 6)
      continue;
    unsigned long fl = strtoul(flags, NULL, 16);
    if (strcmp(dev, "eth0") != 0 || !(fl & ATF_COM) || strcmp(mac, "00:00:00:00:00:00") == 0)
      continue;
    if (json_array_size(out) < NET_NEIGH_MAX && ipv4_valid(ip) && mac_valid(mac))
      json_array_append_new(out, json_pack("{s:s, s:s}", "ip", ip, "mac", mac));
  }
  return out;
}

/* `ip neigh replace IP lladdr MAC dev eth0 nud stale` as one rtnetlink
 * request on sk (a socket of the container's namespace). */
static int neigh_replace(int sk, int ifindex, const char *ip, const char *mac, uint32_t seq)
{
  struct in_addr a;
  unsigned m[ETH_ALEN];
  if (inet_pton(AF_INET, ip, &a) != 1 ||
      sscanf(mac, "%x:%x:%x:%x:%x:%x", &m[0], &m[1], &m[2], &m[3], &m[4], &m[5]) != 6)
    return -EINVAL;
  unsigned char ll[ETH_ALEN];
  for (int i = 0; i < ETH_ALEN; i++)
    ll[i] = (unsigned char)m[i];
  struct nlreq q;
  nl_begin(&q, RTM_NEWNEIGH, NLM_F_REQUEST | NLM_F_ACK | NLM_F_CREATE | NLM_F_REPLACE);
  struct ndmsg *nd = nl_put(&q, NULL, sizeof *nd);
  nd->ndm_family = AF_INET;
  nd->ndm_ifindex = ifindex;
  nd->ndm_state = NUD_STALE;
  nd->ndm_type = RTN_UNICAST;
  nl_attr(&q, NDA_DST, &a, sizeof a);
  nl_attr(&q, NDA_LLADDR, ll, sizeof ll);
  return nl_ask(sk, &q, seq, "neighbours", "entry", NULL);
}

int net_neigh_seed(const char *netns, json_t *neighbours)
{
  /* rtnetlink requests from here, not an ip process: this runs inside the
   * pause, beside CRIU's restore (an ip start costs ~8 ms of CPU) */
  int sk = socket_in(netns, AF_NETLINK, SOCK_RAW, NETLINK_ROUTE, NULL);
  int io = socket_in(netns, AF_INET, SOCK_DGRAM, 0, NULL);
  struct ifreq ifr = {0};
  memcpy(ifr.ifr_name, "eth0", 5);
  int n = 0;
  if (sk >= 0 && io >= 0 && ioctl(io, SIOCGIFINDEX, &ifr) == 0) {
    size_t i;
    json_t *e;
    uint32_t seq = 1;
    json_array_foreach(neighbours, i, e)
    {
      const char *ip = json_str_or(e, "ip", ""), *mac = json_str_or(e, "mac", "");
      if (n >= NET_NEIGH_MAX || !ipv4_valid(ip) || !mac_valid(mac))
        continue;
      /* one that fails does not stop the others */
      if (neigh_replace(sk, ifr.ifr_ifindex, ip, mac, seq++) == 0)
        n++;
    }
  }
  if (sk >= 0)
    close(sk);
  if (io >= 0)
    close(io);
  return n;
}

bool net_segment_shared(const char *bridge)
{
  _cleanup_free_ char *out = NULL;
  _cleanup_json_ json_t *j = NULL;
  if (spawn_check(IP("-j", "link", "show", "master", bridge), &out, NULL) < 0 ||
      json_parse(out, strlen(out), "ip link", &j, NULL) < 0 || !json_is_array(j))
    return false;
  size_t i;
  json_t *l;
  json_array_foreach(j, i, l) if (strncmp(json_str_or(l, "ifname", "fv"), "fv", 2) != 0) return true;
  return false;
}

int net_addr_in_use(const char *bridge, const char *ip, int wait_ms, struct ferry_err *err)
{
  struct in_addr want;
  if (inet_pton(AF_INET, ip, &want) != 1)
    return FERRY_INVALID(err, "\"%s\" is not an IPv4 address", ip);
  struct ifreq ifr = {0};
  if (strlen(bridge) >= sizeof ifr.ifr_name)
    return FERRY_INVALID(err, "bridge name \"%s\" is too long", bridge);
  memcpy(ifr.ifr_name, bridge, strlen(bridge) + 1);
  int fd = socket(AF_PACKET, SOCK_DGRAM | SOCK_CLOEXEC, htons(ETH_P_ARP));
  if (fd < 0)
    return ferry_err_sys(err, -errno, "address probe: packet socket");
  int r = 0;
  if (ioctl(fd, SIOCGIFINDEX, &ifr) < 0) {
    r = ferry_err_sys(err, -errno, "address probe: bridge %s", bridge);
    goto out;
  }
  int ifindex = ifr.ifr_ifindex;
  if (ioctl(fd, SIOCGIFHWADDR, &ifr) < 0) {
    r = ferry_err_sys(err, -errno, "address probe: address of %s", bridge);
    goto out;
  }
  struct sockaddr_ll me = {.sll_family = AF_PACKET, .sll_protocol = htons(ETH_P_ARP),
                           .sll_ifindex = ifindex};
  if (bind(fd, (struct sockaddr *)&me, sizeof me) < 0) {
    r = ferry_err_sys(err, -errno, "address probe: bind to %s", bridge);
    goto out;
  }
  /* An ARP probe (RFC 5227): sender address 0.0.0.0, so that no neighbour
   * learns anything from it; whoever holds ip answers. */
  struct arp_pkt pkt = {.h = {.ar_hrd = htons(ARPHRD_ETHER), .ar_pro = htons(ETH_P_IP),
                              .ar_hln = ETH_ALEN, .ar_pln = 4, .ar_op = htons(ARPOP_REQUEST)}};
  memcpy(pkt.sha, ifr.ifr_hwaddr.sa_data, ETH_ALEN);
  memcpy(pkt.tpa, &want, 4);
  struct sockaddr_ll to = me;
  to.sll_halen = ETH_ALEN;
  memset(to.sll_addr, 0xff, ETH_ALEN);
  if (sendto(fd, &pkt, sizeof pkt, 0, (struct sockaddr *)&to, sizeof to) != (ssize_t)sizeof pkt) {
    r = ferry_err_sys(err, -errno, "address probe: send on %s", bridge);
    goto out;
  }
  uint64_t until = now_mono_ms() + (uint64_t)wait_ms;
  for (int n = 0; n < 10000; n++) {
    uint64_t now = now_mono_ms();
    if (now >= until)
      break;
    struct pollfd pf = {.fd = fd, .events = POLLIN};
    if (poll(&pf, 1, (int)(until - now)) <= 0)
      continue;
    struct arp_pkt in;
    ssize_t got = recv(fd, &in, sizeof in, 0);
    if (got == (ssize_t)sizeof in && memcmp(in.spa, &want, 4) == 0 &&
        memcmp(in.sha, pkt.sha, ETH_ALEN) != 0) {
      r = 1; /* someone on the segment has it */
      break;
    }
  }
out:
  close_async(fd);
  return r;
}

int net_connect_in(const char *netns, const char *ip, int port, int timeout_s,
                   struct ferry_err *err)
{
  struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
  if (inet_pton(AF_INET, ip, &sa.sin_addr) != 1)
    return FERRY_INVALID(err, "\"%s\" is not an IPv4 address", ip);
  int fd = socket_in(netns, AF_INET, SOCK_STREAM, 0, err), e;
  if (fd < 0)
    return fd;
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
