/* Holding a frozen container's traffic (hold.h). */
#include <errno.h>
#include <fcntl.h>
#include <linux/if_tun.h>
#include <linux/netlink.h>
#include <linux/pkt_cls.h>
#include <linux/pkt_sched.h>
#include <linux/rtnetlink.h>
#include <linux/tc_act/tc_mirred.h>
#include <net/if.h>
#include <netpacket/packet.h>
#include <net/ethernet.h>
#include <poll.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <arpa/inet.h>
#include <unistd.h>

#include "net/hold.h"
#include "net/net.h"
#include "net/nl.h"
#include "util/cleanup.h"
#include "util/fs.h"
#include "util/spawn.h"

#define FRAME_MAX 65536

struct frame {
  uint32_t len;
  bool own; /* sent by the container (kept only while capturing) */
  unsigned char *data;
};

struct net_hold {
  char veth[IFNAMSIZ], tap[IFNAMSIZ];
  unsigned char mac[ETH_ALEN]; /* the container's */
  int tapfd, stopfd;
  pthread_t th;
  pthread_mutex_t lock;
  bool keep_own; /* net_hold_capture: the container's own frames are kept, not the others */
  struct frame *frames;
  size_t n;
  uint64_t bytes;
  unsigned dropped;
};

#define TC(...) ((const char *const[]){"tc", __VA_ARGS__, NULL})

static void keep(struct net_hold *h, const unsigned char *buf, size_t len)
{
  if (len < ETH_HLEN)
    return;
  bool own = memcmp(buf + ETH_ALEN, h->mac, ETH_ALEN) == 0;
  pthread_mutex_lock(&h->lock);
  if (own != h->keep_own) {
    /* holding a frozen container: what it sent never leaves; capturing a
     * restored copy's: what comes for it before its commit is what the
     * segment floods to every port (its source holds the rest), dropped */
  } else if (h->n >= NET_HOLD_FRAMES || h->bytes + len > NET_HOLD_BYTES) {
    h->dropped++;
  } else {
    unsigned char *d = malloc(len);
    if (!d)
      abort();
    memcpy(d, buf, len);
    h->frames[h->n++] = (struct frame){.len = (uint32_t)len, .own = own, .data = d};
    h->bytes += len;
  }
  pthread_mutex_unlock(&h->lock);
}

/* Everything the TAP has queued now, without waiting. */
static void drain(struct net_hold *h, unsigned char *buf)
{
  for (;;) {
    ssize_t r = read(h->tapfd, buf, FRAME_MAX);
    if (r <= 0)
      return;
    keep(h, buf, (size_t)r);
  }
}

static void *reader(void *arg)
{
  struct net_hold *h = arg;
  unsigned char *buf = malloc(FRAME_MAX);
  if (!buf)
    abort();
  for (;;) {
    struct pollfd p[2] = {{.fd = h->tapfd, .events = POLLIN}, {.fd = h->stopfd, .events = POLLIN}};
    if (poll(p, 2, 1000) < 0 && errno != EINTR)
      break;
    if (p[0].revents & POLLIN)
      drain(h, buf);
    if (p[1].revents & POLLIN)
      break;
  }
  drain(h, buf);
  free(buf);
  return NULL;
}

static int tap_open(const char *name, struct ferry_err *err)
{
  int fd = open("/dev/net/tun", O_RDWR | O_CLOEXEC | O_NONBLOCK);
  if (fd < 0)
    return ferry_err_sys(err, -errno, "hold: /dev/net/tun");
  struct ifreq ifr = {0};
  ifr.ifr_flags = IFF_TAP | IFF_NO_PI;
  snprintf(ifr.ifr_name, sizeof ifr.ifr_name, "%s", name);
  int s = -1, set = -1;
  /* a TAP of the same name whose last close is still under way (holds
   * close theirs off the commit's path, util/fs.h close_async) is busy a
   * few ms: waited for, bounded (100 ms) */
  for (int i = 0; i < 50; i++) {
    if ((set = ioctl(fd, TUNSETIFF, &ifr)) == 0 || errno != EBUSY)
      break;
    struct timespec ts = {0, 2 * 1000 * 1000};
    nanosleep(&ts, NULL);
  }
  if (set < 0 || (s = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0)) < 0 ||
      ioctl(s, SIOCGIFFLAGS, &ifr) < 0 || ((ifr.ifr_flags |= IFF_UP), ioctl(s, SIOCSIFFLAGS, &ifr)) < 0) {
    int e = -errno;
    if (s >= 0)
      close(s);
    close(fd);
    return ferry_err_sys(err, e, "hold: TAP device %s", name);
  }
  close(s);
  return fd;
}

/* Starts a tc request of type and flags on q: its tcmsg, for ifindex and
 * parent, the rest zero. */
static struct tcmsg *tc_begin(struct nlreq *q, uint16_t type, uint16_t flags, unsigned ifindex,
                              uint32_t parent)
{
  nl_begin(q, type, flags);
  struct tcmsg *tm = nl_put(q, NULL, sizeof *tm);
  tm->tcm_family = AF_UNSPEC;
  tm->tcm_ifindex = (int)ifindex;
  tm->tcm_parent = parent;
  return tm;
}

/* `tc filter add dev IFINDEX {egress|ingress} pref 1 protocol all u32 match
 * u32 0 0 action mirred egress redirect dev TO` as one rtnetlink request:
 * the hold's filters, set while the container is frozen, without a tc
 * process (its start was most of the freeze's time here). */
static int tc_redirect_all(int sk, unsigned ifindex, bool egress, unsigned to, uint32_t seq,
                           struct ferry_err *err)
{
  struct nlreq q;
  struct tcmsg *tm =
      tc_begin(&q, RTM_NEWTFILTER, NLM_F_REQUEST | NLM_F_ACK | NLM_F_CREATE | NLM_F_EXCL, ifindex,
               TC_H_MAKE(TC_H_CLSACT, egress ? TC_H_MIN_EGRESS : TC_H_MIN_INGRESS));
  tm->tcm_info = TC_H_MAKE(1u << 16, htons(ETH_P_ALL));
  nl_attr(&q, TCA_KIND, "u32", 4);
  size_t opts = nl_nest(&q, TCA_OPTIONS);
  /* a selector with one key, mask 0 and value 0: every frame */
  unsigned char sel[sizeof(struct tc_u32_sel) + sizeof(struct tc_u32_key)];
  memset(sel, 0, sizeof sel);
  struct tc_u32_sel hdr = {.flags = TC_U32_TERMINAL, .nkeys = 1};
  memcpy(sel, &hdr, sizeof hdr);
  nl_attr(&q, TCA_U32_SEL, sel, sizeof sel);
  size_t acts = nl_nest(&q, TCA_U32_ACT);
  size_t act = nl_nest(&q, 1);
  nl_attr(&q, TCA_ACT_KIND, "mirred", 7);
  size_t aopts = nl_nest(&q, TCA_ACT_OPTIONS);
  struct tc_mirred m;
  memset(&m, 0, sizeof m);
  m.action = TC_ACT_STOLEN;
  m.eaction = TCA_EGRESS_REDIR;
  m.ifindex = to;
  nl_attr(&q, TCA_MIRRED_PARMS, &m, sizeof m);
  nl_nest_end(&q, aopts);
  nl_nest_end(&q, act);
  nl_nest_end(&q, acts);
  nl_nest_end(&q, opts);
  return nl_ask(sk, &q, seq, "hold", egress ? "egress filter" : "ingress filter", err);
}

/* `tc qdisc add dev IFINDEX clsact` as one rtnetlink request; one there
 * already is fine. */
static int tc_clsact_add(int sk, unsigned ifindex, uint32_t seq, struct ferry_err *err)
{
  struct nlreq q;
  struct tcmsg *tm = tc_begin(&q, RTM_NEWQDISC, NLM_F_REQUEST | NLM_F_ACK | NLM_F_CREATE | NLM_F_EXCL,
                              ifindex, TC_H_CLSACT);
  tm->tcm_handle = TC_H_MAKE(TC_H_CLSACT, 0);
  nl_attr(&q, TCA_KIND, "clsact", 7);
  struct ferry_err e = {0};
  int r = nl_ask(sk, &q, seq, "clsact", "qdisc", &e);
  if (r == -EEXIST)
    return 0;
  if (r < 0 && err)
    *err = e;
  return r;
}

/* `tc filter del dev IFINDEX {egress|ingress}`: every filter of that
 * side goes (none there is fine). */
static void tc_filters_del(int sk, unsigned ifindex, bool egress, uint32_t seq)
{
  struct nlreq q;
  tc_begin(&q, RTM_DELTFILTER, NLM_F_REQUEST | NLM_F_ACK, ifindex,
           TC_H_MAKE(TC_H_CLSACT, egress ? TC_H_MIN_EGRESS : TC_H_MIN_INGRESS));
  nl_ask(sk, &q, seq, "hold", "filters' removal", NULL);
}

int net_clsact_ensure(const char *dev, struct ferry_err *err)
{
  unsigned di = if_nametoindex(dev);
  if (!di)
    return ferry_err_sys(err, -errno, "clsact: %s", dev);
  int sk = socket(AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC, NETLINK_ROUTE);
  if (sk < 0)
    return ferry_err_sys(err, -errno, "clsact: netlink");
  int r = tc_clsact_add(sk, di, 3, err);
  close(sk);
  return r < 0 ? ferry_err_wrap(err, "clsact qdisc on %s", dev) : 0;
}

void net_hold_clear(const char *veth)
{
  /* the filters only: adding or removing the qdisc itself takes the
   * device's queues down for an RCU grace period, and what is sent to the
   * container meanwhile is dropped (a request lost that way waited for its
   * client's retransmission timeout); no filter: nothing to clear */
  unsigned vi = if_nametoindex(veth);
  if (!vi)
    return;
  int sk = socket(AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC, NETLINK_ROUTE);
  if (sk >= 0) {
    tc_filters_del(sk, vi, true, 4);
    tc_filters_del(sk, vi, false, 5);
    close(sk);
    return;
  }
  struct spawn_result r = {0};
  if (spawn_run(TC("filter", "del", "dev", veth, "egress"), NULL, &r, NULL) == 0)
    spawn_result_free(&r);
  struct spawn_result r2 = {0};
  if (spawn_run(TC("filter", "del", "dev", veth, "ingress"), NULL, &r2, NULL) == 0)
    spawn_result_free(&r2);
}

int net_hold_prepare(const char *veth, const char *mac, struct net_hold **out,
                     struct ferry_err *err)
{
  if (strlen(veth) < 3 || strlen(veth) >= IFNAMSIZ)
    return FERRY_INVALID(err, "hold: veth name \"%s\"", veth);
  unsigned m[ETH_ALEN];
  if (!mac || sscanf(mac, "%x:%x:%x:%x:%x:%x", &m[0], &m[1], &m[2], &m[3], &m[4], &m[5]) != 6)
    return FERRY_INVALID(err, "hold: MAC address \"%s\"", mac ? mac : "");
  struct net_hold *h = calloc(1, sizeof *h);
  if (!h)
    abort();
  for (int i = 0; i < ETH_ALEN; i++)
    h->mac[i] = (unsigned char)m[i];
  snprintf(h->veth, sizeof h->veth, "%s", veth);
  snprintf(h->tap, sizeof h->tap, "fh%s", veth + 2);
  h->stopfd = -1;
  pthread_mutex_init(&h->lock, NULL);
  h->frames = calloc(NET_HOLD_FRAMES, sizeof *h->frames);
  if (!h->frames)
    abort();
  int r;
  if ((h->tapfd = tap_open(h->tap, err)) < 0) {
    r = h->tapfd;
    goto fail;
  }
  if ((h->stopfd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK)) < 0) {
    r = ferry_err_sys(err, -errno, "hold: eventfd");
    goto fail;
  }
  /* the qdisc the filters hang on (without them it changes nothing),
   * made with the veth (net_ctr_setup): here only for a container started
   * before it was */
  if ((r = net_clsact_ensure(veth, err)) < 0) {
    ferry_err_wrap(err, "hold the traffic of %s", veth);
    goto fail;
  }
  if (pthread_create(&h->th, NULL, reader, h) != 0) {
    net_hold_clear(veth);
    r = FERRY_INTERNAL(err, "hold: cannot start its reader");
    goto fail;
  }
  *out = h;
  return 0;
fail:
  if (h->tapfd >= 0)
    close(h->tapfd);
  if (h->stopfd >= 0)
    close(h->stopfd);
  free(h->frames);
  pthread_mutex_destroy(&h->lock);
  free(h);
  return r;
}

static int hold_end(struct net_hold *h, const char *dev, bool restamp, uint64_t *bytes,
                    unsigned *dropped);

/* One of the hold's filters: egress (what the bridge sends the container)
 * or ingress (what the container sends), to the TAP. */
static int hold_filter(struct net_hold *h, bool egress, struct ferry_err *err)
{
  unsigned vi = if_nametoindex(h->veth), ti = if_nametoindex(h->tap);
  if (!vi || !ti)
    return ferry_err_sys(err, -errno, "hold: %s", vi ? h->tap : h->veth);
  int sk = socket(AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC, NETLINK_ROUTE);
  if (sk < 0)
    return ferry_err_sys(err, -errno, "hold: netlink");
  int r = tc_redirect_all(sk, vi, egress, ti, egress ? 1 : 2, err);
  close(sk);
  return r < 0 ? ferry_err_wrap(err, "hold the traffic of %s", h->veth) : 0;
}

int net_hold_engage(struct net_hold *h, struct ferry_err *err)
{
  return hold_filter(h, true, err);
}

int net_hold_seal(struct net_hold *h, struct ferry_err *err)
{
  /* There is no drop action in these kernels (only mirred): its frames go
   * to the same TAP, where the reader knows them by their source address. */
  return hold_filter(h, false, err);
}

void net_hold_abandon(struct net_hold *h)
{
  hold_end(h, NULL, false, NULL, NULL);
}


int net_hold_end(struct net_hold *h, const char *dev, uint64_t *bytes, unsigned *dropped)
{
  return hold_end(h, dev, false, bytes, dropped);
}

int net_hold_end_as(struct net_hold *h, const char *dev, uint64_t *bytes, unsigned *dropped)
{
  return hold_end(h, dev, true, bytes, dropped);
}

/* The reader stops; what the TAP still had is kept first. */
static void hold_stop(struct net_hold *h)
{
  uint64_t one = 1;
  if (write(h->stopfd, &one, sizeof one) < 0) {
    /* the reader then ends at its next poll timeout */
  }
  pthread_join(h->th, NULL);
}

/* Sends the frames kept whose `own` is own out of dev, in order (with
 * restamp, each with dev's MAC as its source); how many, their bytes
 * added to *sb. */
static int hold_send(struct net_hold *h, const char *dev, bool own, bool restamp, uint64_t *sb)
{
  int sent = 0;
  int ps = socket(AF_PACKET, SOCK_RAW | SOCK_CLOEXEC, 0);
  unsigned idx = if_nametoindex(dev);
  unsigned char mac[ETH_ALEN];
  if (restamp) {
    struct ifreq ifr = {0};
    snprintf(ifr.ifr_name, sizeof ifr.ifr_name, "%s", dev);
    if (ps < 0 || ioctl(ps, SIOCGIFHWADDR, &ifr) < 0)
      idx = 0; /* no address to send them from: dropped rather than misleading */
    else
      memcpy(mac, ifr.ifr_hwaddr.sa_data, ETH_ALEN);
  }
  size_t k = 0;
  for (size_t i = 0; ps >= 0 && idx && i < h->n; i++) {
    struct frame *f = &h->frames[i];
    if (f->own != own || f->len < ETH_HLEN)
      continue;
    struct sockaddr_ll to = {.sll_family = AF_PACKET, .sll_ifindex = (int)idx,
                             .sll_halen = ETH_ALEN};
    memcpy(to.sll_addr, f->data, ETH_ALEN);
    if (restamp)
      memcpy(f->data + ETH_ALEN, mac, ETH_ALEN);
    if (sendto(ps, f->data, f->len, 0, (struct sockaddr *)&to, sizeof to) == (ssize_t)f->len) {
      sent++;
      *sb += f->len;
    }
    /* paced (32 frames a millisecond): a burst overflows the receiving
     * socket's buffer (a UDP service's 200 KiB fill with ~200 datagrams) */
    if (++k % 32 == 0)
      usleep(1000);
  }
  close_async(ps); /* an RCU grace period (util/fs.h) */
  return sent;
}

static void hold_free(struct net_hold *h, uint64_t *bytes, uint64_t sb, unsigned *dropped)
{
  if (bytes)
    *bytes = sb;
  if (dropped)
    *dropped = h->dropped;
  for (size_t i = 0; i < h->n; i++)
    free(h->frames[i].data);
  /* the TAP's removal (10-25 ms) is not waited for: at a commit the
   * source waits for the answer with the client's frames held */
  close_async(h->tapfd);
  close(h->stopfd);
  free(h->frames);
  pthread_mutex_destroy(&h->lock);
  free(h);
}

static int hold_end(struct net_hold *h, const char *dev, bool restamp, uint64_t *bytes,
                    unsigned *dropped)
{
  if (!h)
    return 0;
  /* the filter first (nothing more is redirected), then what the TAP has;
   * frames for another host leave a veth that is down and goes: its filter
   * is left to go with it. A restored copy's capture that ends without its
   * commit (the copy goes, or the agent stops) keeps its filters, which
   * lead nowhere once the TAP is gone (the kernel drops what they take),
   * and its link goes down: the copy never joins the network this way */
  if (h->keep_own)
    net_link_set(h->veth, false, NULL);
  else if (!restamp)
    net_hold_clear(h->veth);
  hold_stop(h);
  uint64_t sb = 0;
  int sent = dev ? hold_send(h, dev, false, restamp, &sb) : 0;
  hold_free(h, bytes, sb, dropped);
  return sent;
}

int net_hold_capture(struct net_hold *h, struct ferry_err *err)
{
  pthread_mutex_lock(&h->lock);
  h->keep_own = true;
  pthread_mutex_unlock(&h->lock);
  int r = hold_filter(h, true, err);
  if (r == 0)
    r = hold_filter(h, false, err);
  return r;
}

int net_hold_release(struct net_hold *h, const char *netns, uint64_t *bytes, unsigned *dropped)
{
  if (!h)
    return 0;
  /* the filters go (two rtnetlink requests: this is inside the commit; the
   * qdisc stays, its removal would drop what comes meanwhile), then what
   * the copy sent goes on, out of its own eth0 as
   * it sent it: its bridge learns its port and forwards each frame (to the
   * host itself too, a gateway's) */
  net_hold_clear(h->veth);
  hold_stop(h);
  uint64_t sb = 0;
  unsigned char **fr = calloc(h->n + 1, sizeof *fr);
  uint32_t *ln = calloc(h->n + 1, sizeof *ln);
  if (!fr || !ln)
    abort();
  size_t k = 0;
  for (size_t i = 0; i < h->n; i++)
    if (h->frames[i].own) {
      fr[k] = h->frames[i].data;
      ln[k++] = h->frames[i].len;
    }
  int sent = net_send_from(netns, "eth0", fr, ln, k, &sb, NULL);
  free(fr);
  free(ln);
  hold_free(h, bytes, sb, dropped);
  return sent < 0 ? 0 : sent;
}
