/* The container network across routed hosts: a VXLAN port on the agent's
 * bridge carries the container subnet to the other member agents over their
 * underlay addresses (docs/networking.md "Hosts on different networks").
 *
 * - unicast VXLAN, one all-zeros forwarding entry per member (frames for a
 *   MAC this bridge has not learned, broadcasts and ARP go to every member;
 *   the bridge learns where a container's MAC lives from its frames, and a
 *   moved container's gratuitous ARP re-teaches every member at once);
 *   the VXLAN device itself learns nothing (nolearning): a forged source
 *   cannot add a member;
 * - an nftables table of its own (ip ferryov_<vni>) drops UDP to the VXLAN
 *   port from any address that is not a member's;
 * - the overlay's MTU (the underlay link's minus 50) is given to every
 *   container from its start, so a move never shrinks a connection's path.
 *
 * Members: the --overlay-peer addresses, plus those the coordinator's node
 * registry answers with each heartbeat (overlay_members_set). */
#pragma once
#include <jansson.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>

#include "util/err.h"

#define OVERLAY_MAX_PEERS 1024
#define OVERLAY_DEFAULT_PORT 4789

struct overlay {
  uint32_t vni;          /* 1..16777215; 0: no overlay */
  uint32_t local;        /* this agent's underlay address (host order) */
  int port;              /* UDP port (default 4789) */
  int mtu;               /* the containers' and the VXLAN port's */
  char dev[16];          /* the VXLAN device, "fx<vni>" */
  char underlay_dev[16]; /* the link that holds the underlay address */
  pthread_mutex_t lock;
  uint32_t static_peers[OVERLAY_MAX_PEERS];
  size_t n_static;
  uint32_t peers[OVERLAY_MAX_PEERS]; /* members now (static ones and the registry's), never local */
  size_t n_peers;
  uint64_t updates;      /* member list changes applied */
  char last_error[256];  /* the last failed update, "" */
};

struct overlay_options {
  uint32_t vni;
  const char *local;                /* underlay address; NULL: the address the first peer is reached from */
  int port;                         /* 0: 4789 */
  const char *const *peers;         /* addresses or host names (NULL-terminated) */
};

/* Sets ov up on bridge: the VXLAN device (re-made when its VNI, address or
 * port differ), its forwarding entries and the filter. Idempotent: an agent
 * restart finds them in place and only reconciles. */
int overlay_open(struct overlay *ov, const struct overlay_options *o, const char *bridge,
                 struct ferry_err *err);
/* The members the coordinator's registry names now (besides the static
 * ones): entries that are not IPv4 unicast addresses, and this agent's own,
 * are skipped. Applies the difference (forwarding entries, filter) and
 * returns 1 when the member list changed, 0 when not. */
int overlay_members_set(struct overlay *ov, json_t *addrs, struct ferry_err *err);
/* {"vni", "device", "local", "port", "mtu", "members": [...]} */
json_t *overlay_info(struct overlay *ov);
/* An agent started without --overlay: the VXLAN ports of an earlier
 * overlay on bridge and their filters are removed (the bridge then leads
 * nowhere else). Returns how many. */
int overlay_remove_stale(const char *bridge);
