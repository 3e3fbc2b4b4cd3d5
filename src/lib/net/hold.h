/* Holding a frozen container's traffic instead of losing it.
 *
 * While a container is frozen for a move, the frames the host's bridge
 * sends it (TCP segments of its clients, UDP datagrams, ARP) would be lost:
 * its link is down, or its kernel takes them in while no process runs. A
 * hold takes them off its veth instead — a tc egress filter on the
 * host-side veth redirects every frame (act_mirred) to a TAP device of the
 * agent's (and an ingress filter drops what the container sends: off the
 * network both ways, as with its link down), whose reader thread keeps them, in order, up to NET_HOLD_BYTES
 * and NET_HOLD_FRAMES (past that, frames are dropped as before). When the
 * move ends they are sent on, in order: into the container's veth when it
 * resumes here, or into the bridge once the container lives elsewhere on
 * the segment (the bridge forwards them to where its address was last
 * announced). So a client's segments are answered as soon as the container
 * runs again, with no retransmission timeout on either side.
 *
 * Kernel facts used (docs/migration.md): sch_ingress's clsact, cls_u32,
 * act_mirred, TUN/TAP; `tc` from iproute2. Where any is missing the caller
 * falls back to taking the link down. */
#pragma once
#include <stddef.h>
#include <stdint.h>

#include "util/err.h"

#define NET_HOLD_BYTES (16u << 20)
#define NET_HOLD_FRAMES 20000

struct net_hold;

/* A hold in three steps. net_hold_prepare, while the container still runs:
 * its TAP, its reader, the veth's clsact qdisc (veth's container has MAC
 * mac); no filter, nothing is held yet. net_hold_engage, before the
 * freeze: the frames veth sends its container are held from now on.
 * net_hold_seal, once it is frozen: what the container sends is dropped —
 * a frozen container's kernel still sends (TCP retransmissions, with
 * timestamps its restored copy would be behind of: the client would drop
 * the copy's segments), while what it sent before it froze (the answer to
 * a request read just before) must reach its client: dropped, it would be
 * sent again by the restored copy only after a retransmission timeout.
 * Each filter is one rtnetlink request (no process). On a failure of
 * either, h stays the caller's (net_hold_abandon or net_hold_end). */
int net_hold_prepare(const char *veth, const char *mac, struct net_hold **out,
                     struct ferry_err *err);
int net_hold_engage(struct net_hold *h, struct ferry_err *err);
int net_hold_seal(struct net_hold *h, struct ferry_err *err);
/* The other way round, for a copy restored before it may run on the
 * network (a migration's target until the commit): its link can be up,
 * nothing reaches it and nothing it sends leaves, and what it sends is
 * kept (an answer it writes as soon as it is restored, to a request its
 * source read just before its freeze); what comes for it is dropped (the
 * segment's floods: its source holds its traffic). Both filters at once,
 * on a prepared hold. net_hold_release at the commit: the filters go, the
 * copy's frames are sent out of eth0 in its namespace netns, as it sent
 * them (its bridge learns its port, as from any frame of it); h is freed.
 * net_hold_abandon if it never runs. */
int net_hold_capture(struct net_hold *h, struct ferry_err *err);
int net_hold_release(struct net_hold *h, const char *netns, uint64_t *bytes, unsigned *dropped);
/* Ends a hold that holds nothing worth sending (not engaged, or its frames
 * dropped): the qdisc goes, h is freed. */
void net_hold_abandon(struct net_hold *h);
/* Stops holding (the filter goes, the frames held so far are kept), sends
 * the held frames out of device dev (NULL: drops them), frees h. Returns
 * how many were sent; *bytes (when not NULL) their size, *dropped (when not
 * NULL) how many did not fit. */
int net_hold_end(struct net_hold *h, const char *dev, uint64_t *bytes, unsigned *dropped);
/* The same, each frame sent with dev's own MAC address as its source: for
 * frames sent into a bridge on their way to another host, which must not
 * teach the segment's switches that their senders live behind this host
 * (the answers to them would go astray). */
int net_hold_end_as(struct net_hold *h, const char *dev, uint64_t *bytes, unsigned *dropped);
/* A clsact qdisc on dev (the hold's filters hang on it), unless it has
 * one: made with a container's veth, before its link is up, and never
 * removed: adding or removing it on a device that carries traffic drops
 * what is sent through it meanwhile. */
int net_clsact_ensure(const char *dev, struct ferry_err *err);
/* Removes a hold's filters (not its qdisc) left by an agent that died (its
 * TAP went with it, and the filters would drop every frame), or at a
 * hold's end: idempotent. */
void net_hold_clear(const char *veth);
