/* Container networking on one host: a bridge owned by the agent, one network
 * namespace per container with a veth on that bridge, addresses from a
 * configurable IPv4 subnet. Uses iproute2 (`ip`), never touches interfaces
 * or namespaces it did not create. */
#pragma once
#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>

#include "util/err.h"

struct subnet {
  uint32_t net;    /* host order */
  int prefix;      /* 8..30 */
  uint32_t gw;     /* host order; default net+1 */
};

int subnet_parse(const char *cidr, struct subnet *out, struct ferry_err *err);
int ip_parse(const char *s, uint32_t *out);
void ip_format(uint32_t ip, char *buf, size_t len); /* buf >= 16 */
bool subnet_contains(const struct subnet *s, uint32_t ip);
/* A usable host address (not the network, broadcast or gateway address)? */
bool subnet_usable(const struct subnet *s, uint32_t ip);
/* Lowest usable address not in used[] (n entries); 0 when full. */
uint32_t subnet_alloc(const struct subnet *s, const uint32_t *used, size_t n);
/* A DNS-style host name (letters, digits, '-', '.', '_'; at most 253)? */
bool host_name_valid(const char *name);
/* The IPv4 addresses of host (an address itself, or a name resolved once by
 * the host's resolver: /etc/hosts, DNS), at most max, duplicates dropped.
 * A name that does not resolve: -EHOSTUNREACH (class unavailable), the name
 * in the message. */
int net_resolve4(const char *host, uint32_t *out, size_t max, size_t *n, struct ferry_err *err);
/* Locally administered MAC derived from the address: 02:fe:a:b:c:d. */
void mac_for_ip(uint32_t ip, char *buf, size_t len); /* buf >= 18 */
/* "aa:bb:cc:dd:ee:ff" (hex digits, either case) */
bool mac_valid(const char *s);

struct net_config {
  char *bridge;
  struct subnet subnet;
  int mtu; /* the containers' links; 0: the kernel's default (1500) */
};

/* Creates the bridge if missing and gives it the gateway address. */
int net_bridge_ensure(const struct net_config *nc, struct ferry_err *err);

/* Names derived from a container id, unique on the machine. */
void net_names(const char *ctr_id, char *netns, size_t nlen, char *veth, size_t vlen);

/* Creates netns and a veth on the bridge with ip/mac; idempotent: an existing
 * netns of that name is replaced. With up false the host side stays down (no
 * packet reaches the netns) until net_link_set(veth, true): a restore keeps
 * it down until CRIU has restored the sockets, else a client's retransmission
 * would meet no socket and get a reset. */
int net_ctr_setup(const struct net_config *nc, const char *netns, const char *veth,
                  const char *ip, const char *mac, bool up, struct ferry_err *err);
/* Removes the veth and the netns; missing ones are fine. */
int net_ctr_teardown(const char *netns, const char *veth, struct ferry_err *err);
bool net_netns_exists(const char *netns);
/* Takes a container's host-side veth down (off the network) or up again. */
int net_link_set(const char *veth, bool up, struct ferry_err *err);
/* The IPv4 neighbours (ARP entries with an address) of a container's eth0,
 * as [{"ip", "mac"}], at most NET_NEIGH_MAX; empty when none or on error. */
#define NET_NEIGH_MAX 64
json_t *net_neigh_list(const char *netns);
/* Puts such entries into a container's netns as STALE (usable at once,
 * confirmed by the kernel later); entries that are not an IPv4 address and
 * a MAC are skipped. Returns how many were set. */
int net_neigh_seed(const char *netns, json_t *neighbours);
/* The MAC address of link dev in this network namespace, as "aa:bb:..."
 * (buf >= 18); a negative errno when there is no such link. */
int net_link_mac(const char *dev, char *buf, size_t len);
/* Sends n whole Ethernet frames out of dev in network namespace netns, as
 * the namespace's own sends (they cross its veth into the host's bridge,
 * which learns where their source is). Returns how many went (their bytes
 * added to *bytes), or a negative errno. */
int net_send_from(const char *netns, const char *dev, unsigned char *const *frames,
                  const uint32_t *lens, size_t n, uint64_t *bytes, struct ferry_err *err);
/* Tells the neighbours that ip now lives here: unsolicited ARP from inside netns. */
int net_announce(const char *netns, const char *ip, struct ferry_err *err);
/* Does bridge lead to other hosts (a port that is not a container's veth)? */
bool net_segment_shared(const char *bridge);
/* Asks the segment behind bridge whether some host holds ip (an ARP probe,
 * RFC 5227), waiting up to wait_ms for an answer: 1 if one came, 0 if none,
 * < 0 if the probe could not be sent. */
int net_addr_in_use(const char *bridge, const char *ip, int wait_ms, struct ferry_err *err);

/* A TCP connection to ip:port made from inside netns (a container's own
 * 127.0.0.1 included); send and receive time out after timeout_s. Returns
 * the socket. */
int net_connect_in(const char *netns, const char *ip, int port, int timeout_s,
                   struct ferry_err *err);
/* Is ip one of this network namespace's own addresses? */
bool net_ip_is_local(const char *ip);
/* Is ip inside a network this namespace is directly on (loopback aside)? */
bool net_ip_on_link(const char *ip);
