/* Holding a frozen container's traffic (hold.h). */
#include <errno.h>
#include <fcntl.h>
#include <linux/if_tun.h>
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
#include <unistd.h>

#include "net/hold.h"
#include "util/fs.h"
#include "util/spawn.h"

#define FRAME_MAX 65536

struct frame {
  uint32_t len;
  unsigned char *data;
};

struct net_hold {
  char veth[IFNAMSIZ], tap[IFNAMSIZ];
  unsigned char mac[ETH_ALEN]; /* the container's */
  int tapfd, stopfd;
  pthread_t th;
  pthread_mutex_t lock;
  struct frame *frames;
  size_t n;
  uint64_t bytes;
  unsigned dropped;
};

#define TC(...) ((const char *const[]){"tc", __VA_ARGS__, NULL})

static void keep(struct net_hold *h, const unsigned char *buf, size_t len)
{
  if (len < ETH_HLEN || memcmp(buf + ETH_ALEN, h->mac, ETH_ALEN) == 0)
    return; /* what the container itself sent: it never leaves */
  pthread_mutex_lock(&h->lock);
  if (h->n >= NET_HOLD_FRAMES || h->bytes + len > NET_HOLD_BYTES) {
    h->dropped++;
  } else {
    unsigned char *d = malloc(len);
    if (!d)
      abort();
    memcpy(d, buf, len);
    h->frames[h->n++] = (struct frame){.len = (uint32_t)len, .data = d};
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
  int s = -1;
  if (ioctl(fd, TUNSETIFF, &ifr) < 0 || (s = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0)) < 0 ||
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

void net_hold_clear(const char *veth)
{
  struct spawn_result r = {0};
  if (spawn_run(TC("qdisc", "del", "dev", veth, "clsact"), NULL, &r, NULL) == 0)
    spawn_result_free(&r);
}

int net_hold_start(const char *veth, const char *mac, struct net_hold **out,
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
  /* One tc run (it is inside the freeze): the qdisc, the egress filter
   * (what comes for the container, to the TAP), and the ingress filter:
   * nothing leaves it either — a frozen container's kernel still sends (TCP
   * retransmissions, with timestamps its restored copy would be behind of:
   * the client would drop the copy's segments). There is no drop action in
   * these kernels (only mirred): its frames go to the same TAP, where the
   * reader knows them by their source address. */
  {
    static const char *const dirs[] = {"egress", "ingress"};
    char *script = NULL;
    size_t slen = 0;
    FILE *bf = open_memstream(&script, &slen);
    if (!bf)
      abort();
    fprintf(bf, "qdisc replace dev %s clsact\n", veth);
    for (int k = 0; k < 2; k++)
      fprintf(bf, "filter add dev %s %s pref 1 protocol all u32 match u32 0 0 action mirred egress redirect dev %s\n",
              veth, dirs[k], h->tap);
    fclose(bf);
    r = spawn_batch(TC("-batch"), script, err);
    free(script);
    if (r < 0) {
      net_hold_clear(veth);
      ferry_err_wrap(err, "hold the traffic of %s", veth);
      goto fail;
    }
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

int net_hold_end(struct net_hold *h, const char *dev, uint64_t *bytes, unsigned *dropped)
{
  return hold_end(h, dev, false, bytes, dropped);
}

int net_hold_end_as(struct net_hold *h, const char *dev, uint64_t *bytes, unsigned *dropped)
{
  return hold_end(h, dev, true, bytes, dropped);
}

static int hold_end(struct net_hold *h, const char *dev, bool restamp, uint64_t *bytes,
                    unsigned *dropped)
{
  if (!h)
    return 0;
  /* the filter first (nothing more is redirected), then what the TAP has;
   * frames for another host leave a veth that is down and goes: its filter
   * is left to go with it */
  if (!restamp)
    net_hold_clear(h->veth);
  uint64_t one = 1;
  if (write(h->stopfd, &one, sizeof one) < 0) {
    /* the reader then ends at its next poll timeout */
  }
  pthread_join(h->th, NULL);
  int sent = 0;
  uint64_t sb = 0;
  int ps = dev ? socket(AF_PACKET, SOCK_RAW | SOCK_CLOEXEC, 0) : -1;
  unsigned idx = dev ? if_nametoindex(dev) : 0;
  unsigned char mac[ETH_ALEN];
  if (restamp && dev) {
    struct ifreq ifr = {0};
    snprintf(ifr.ifr_name, sizeof ifr.ifr_name, "%s", dev);
    if (ps < 0 || ioctl(ps, SIOCGIFHWADDR, &ifr) < 0)
      idx = 0; /* no address to send them from: dropped rather than misleading */
    else
      memcpy(mac, ifr.ifr_hwaddr.sa_data, ETH_ALEN);
  }
  for (size_t i = 0; i < h->n; i++) {
    if (ps >= 0 && idx) {
      struct sockaddr_ll to = {.sll_family = AF_PACKET, .sll_ifindex = (int)idx,
                               .sll_halen = ETH_ALEN};
      if (h->frames[i].len >= ETH_HLEN) {
        memcpy(to.sll_addr, h->frames[i].data, ETH_ALEN);
        if (restamp)
          memcpy(h->frames[i].data + ETH_ALEN, mac, ETH_ALEN);
      }
      if (sendto(ps, h->frames[i].data, h->frames[i].len, 0, (struct sockaddr *)&to, sizeof to) ==
          (ssize_t)h->frames[i].len) {
        sent++;
        sb += h->frames[i].len;
      }
      /* paced (32 frames a millisecond): a burst overflows the receiving
       * socket's buffer (a UDP service's 200 KiB fill with ~200 datagrams) */
      if (i % 32 == 31)
        usleep(1000);
    }
    free(h->frames[i].data);
  }
  if (ps >= 0)
    close(ps);
  if (bytes)
    *bytes = sb;
  if (dropped)
    *dropped = h->dropped;
  close(h->tapfd);
  close(h->stopfd);
  free(h->frames);
  pthread_mutex_destroy(&h->lock);
  free(h);
  return sent;
}
