/* The VXLAN overlay between member agents (see overlay.h). */
#include "net/overlay.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "net/net.h"
#include "net/ports.h"
#include "util/cleanup.h"
#include "util/fs.h"
#include "util/json.h"
#include "util/spawn.h"

#define VXLAN_OVERHEAD 50 /* outer IPv4 20 + UDP 8 + VXLAN 8 + inner Ethernet 14 */

/* An address a member may have: unicast, not 0/8, loopback, multicast,
 * reserved or the broadcast address. */
static bool member_addr_ok(uint32_t ip)
{
  uint8_t a = (uint8_t)(ip >> 24);
  return a != 0 && a != 127 && a < 224 && ip != 0xffffffffu;
}

static void table_name(const struct overlay *ov, char *buf, size_t len)
{
  snprintf(buf, len, "ferryov_%u", ov->vni);
}

/* The JSON of an `ip -j`/`bridge -j` command, NULL when it fails. */
static json_t *cmd_json(const char *const *argv)
{
  _cleanup_free_ char *out = NULL;
  json_t *j = NULL;
  if (spawn_check(argv, &out, NULL) < 0 || !out)
    return NULL;
  if (json_parse(out, strlen(out), argv[0], &j, NULL) < 0)
    return NULL;
  return j;
}

/* The link holding addr and its MTU. */
static int underlay_link(uint32_t addr, char *dev, size_t dlen, int *mtu, struct ferry_err *err)
{
  char want[16];
  ip_format(addr, want, sizeof want);
  _cleanup_json_ json_t *j = cmd_json((const char *const[]){"ip", "-j", "-4", "addr", "show", NULL});
  size_t i, k;
  json_t *l, *ai;
  json_array_foreach(j, i, l)
  {
    json_array_foreach(json_object_get(l, "addr_info"), k, ai)
    {
      if (strcmp(json_str_or(ai, "local", ""), want) == 0) {
        snprintf(dev, dlen, "%s", json_str_or(l, "ifname", ""));
        *mtu = (int)json_integer_value(json_object_get(l, "mtu"));
        if (*mtu <= 0)
          *mtu = 1500;
        return 0;
      }
    }
  }
  return FERRY_INVALID(err, "overlay: %s is not an address of this host (--underlay)", want);
}

/* The source address this host uses towards peer. */
static int source_towards(uint32_t peer, uint32_t *out, struct ferry_err *err)
{
  char p[16];
  ip_format(peer, p, sizeof p);
  _cleanup_json_ json_t *j =
      cmd_json((const char *const[]){"ip", "-j", "route", "get", p, NULL});
  const char *src = json_str_or(json_array_get(j, 0), "prefsrc", NULL);
  if (!src || ip_parse(src, out) < 0)
    return ferry_err_set(err, -EHOSTUNREACH, FERRY_E_UNAVAILABLE, "overlay: no route to the member %s (give --underlay)", p);
  return 0;
}

/* The VXLAN device as wanted: made, or re-made when it differs. */
static int device_ensure(struct overlay *ov, const char *bridge, struct ferry_err *err)
{
  char local[16], vni[16], port[12], mtu[12];
  ip_format(ov->local, local, sizeof local);
  snprintf(vni, sizeof vni, "%u", ov->vni);
  snprintf(port, sizeof port, "%d", ov->port);
  snprintf(mtu, sizeof mtu, "%d", ov->mtu);
  _cleanup_json_ json_t *j =
      cmd_json((const char *const[]){"ip", "-d", "-j", "link", "show", "dev", ov->dev, NULL});
  if (j) {
    json_t *d = json_object_get(json_object_get(json_array_get(j, 0), "linkinfo"), "info_data");
    bool same = json_integer_value(json_object_get(d, "id")) == (json_int_t)ov->vni &&
                strcmp(json_str_or(d, "local", ""), local) == 0 &&
                json_integer_value(json_object_get(d, "port")) == ov->port &&
                !json_is_true(json_object_get(d, "learning"));
    if (!same) {
      int r = spawn_check((const char *const[]){"ip", "link", "del", ov->dev, NULL}, NULL, err);
      if (r < 0)
        return ferry_err_wrap(err, "overlay device %s", ov->dev);
      j = NULL;
    }
  }
  int r;
  if (!j && (r = spawn_check((const char *const[]){"ip", "link", "add", ov->dev, "type", "vxlan",
                                                    "id", vni, "local", local, "dstport", port,
                                                    "nolearning", NULL},
                             NULL, err)) < 0)
    return ferry_err_wrap(err, "overlay device %s", ov->dev);
  if ((r = spawn_check((const char *const[]){"ip", "link", "set", ov->dev, "mtu", mtu, "master",
                                             bridge, "up", NULL},
                       NULL, err)) < 0)
    return ferry_err_wrap(err, "overlay device %s", ov->dev);
  /* the bridge takes its ports' smallest MTU; said explicitly, it stays so
   * when containers come and go */
  if ((r = spawn_check((const char *const[]){"ip", "link", "set", bridge, "mtu", mtu, NULL}, NULL,
                       err)) < 0)
    return ferry_err_wrap(err, "bridge %s", bridge);
  return 0;
}

/* The forwarding entries (one all-zeros entry per member) as the members
 * say: entries of members that left are removed. */
static int fdb_sync(struct overlay *ov, struct ferry_err *err)
{
  _cleanup_json_ json_t *j =
      cmd_json((const char *const[]){"bridge", "-j", "fdb", "show", "dev", ov->dev, NULL});
  bool have[OVERLAY_MAX_PEERS] = {false};
  size_t i;
  json_t *e;
  int r = 0;
  json_array_foreach(j, i, e)
  {
    const char *dst = json_str_or(e, "dst", NULL);
    uint32_t ip;
    if (!dst || strcmp(json_str_or(e, "mac", ""), "00:00:00:00:00:00") != 0 || ip_parse(dst, &ip) < 0)
      continue;
    size_t k;
    for (k = 0; k < ov->n_peers && ov->peers[k] != ip; k++)
      ;
    if (k < ov->n_peers) {
      have[k] = true;
      continue;
    }
    int q = spawn_check((const char *const[]){"bridge", "fdb", "del", "00:00:00:00:00:00", "dev",
                                              ov->dev, "dst", dst, NULL},
                        NULL, r < 0 ? NULL : err);
    if (q < 0 && r == 0)
      r = q;
  }
  for (size_t k = 0; k < ov->n_peers; k++) {
    if (have[k])
      continue;
    char dst[16];
    ip_format(ov->peers[k], dst, sizeof dst);
    int q = spawn_check((const char *const[]){"bridge", "fdb", "append", "00:00:00:00:00:00", "dev",
                                              ov->dev, "dst", dst, NULL},
                        NULL, r < 0 ? NULL : err);
    if (q < 0 && r == 0)
      r = q;
  }
  return r < 0 ? ferry_err_wrap(err, "overlay %s: forwarding entries", ov->dev) : 0;
}

/* The filter: UDP to the overlay's port from anyone but a member is dropped
 * before the VXLAN device sees it. */
static int filter_sync(struct overlay *ov, struct ferry_err *err)
{
  char t[32];
  table_name(ov, t, sizeof t);
  char *s = NULL;
  size_t slen = 0;
  FILE *f = open_memstream(&s, &slen);
  if (!f)
    abort();
  fprintf(f,
          "add table ip %s\ndelete table ip %s\nadd table ip %s\n"
          "add set ip %s members { type ipv4_addr ; }\n"
          "add chain ip %s in { type filter hook input priority -160 ; policy accept ; }\n"
          "add rule ip %s in udp dport %d ip saddr != @members counter drop\n",
          t, t, t, t, t, t, ov->port);
  if (ov->n_peers) {
    fprintf(f, "add element ip %s members { ", t);
    for (size_t k = 0; k < ov->n_peers; k++) {
      char a[16];
      ip_format(ov->peers[k], a, sizeof a);
      fprintf(f, "%s%s", k ? ", " : "", a);
    }
    fprintf(f, " }\n");
  }
  if (fclose(f) != 0) {
    free(s);
    return FERRY_INTERNAL(err, "nftables: cannot build the overlay's filter");
  }
  int r = nft_script_run(t, s, err);
  free(s);
  return r;
}

static bool in_list(const uint32_t *l, size_t n, uint32_t ip)
{
  for (size_t i = 0; i < n; i++)
    if (l[i] == ip)
      return true;
  return false;
}

/* Static members and more (the registry's, n of them) -> ov->peers; true
 * when that changed the list. Under ov->lock. */
static bool peers_merge(struct overlay *ov, const uint32_t *more, size_t n)
{
  uint32_t next[OVERLAY_MAX_PEERS];
  size_t m = 0;
  for (size_t i = 0; i < ov->n_static && m < OVERLAY_MAX_PEERS; i++)
    if (!in_list(next, m, ov->static_peers[i]))
      next[m++] = ov->static_peers[i];
  for (size_t i = 0; i < n && m < OVERLAY_MAX_PEERS; i++)
    if (more[i] != ov->local && member_addr_ok(more[i]) && !in_list(next, m, more[i]))
      next[m++] = more[i];
  bool changed = m != ov->n_peers;
  for (size_t i = 0; !changed && i < m; i++)
    changed = !in_list(ov->peers, ov->n_peers, next[i]);
  memcpy(ov->peers, next, m * sizeof *next);
  ov->n_peers = m;
  return changed;
}

int overlay_open(struct overlay *ov, const struct overlay_options *o, const char *bridge,
                 struct ferry_err *err)
{
  memset(ov, 0, sizeof *ov);
  pthread_mutex_init(&ov->lock, NULL);
  if (o->vni < 1 || o->vni > 16777215)
    return FERRY_INVALID(err, "--overlay %u: a VXLAN network identifier is 1..16777215", o->vni);
  ov->vni = o->vni;
  ov->port = o->port ? o->port : OVERLAY_DEFAULT_PORT;
  if (ov->port < 1 || ov->port > 65535)
    return FERRY_INVALID(err, "--overlay-port %d: expected 1..65535", ov->port);
  snprintf(ov->dev, sizeof ov->dev, "fx%u", ov->vni);
  int r;
  for (size_t i = 0; o->peers && o->peers[i]; i++) {
    uint32_t ips[8];
    size_t n = 0;
    if ((r = net_resolve4(o->peers[i], ips, 8, &n, err)) < 0)
      return ferry_err_wrap(err, "--overlay-peer");
    for (size_t k = 0; k < n; k++) {
      if (!member_addr_ok(ips[k]))
        return FERRY_INVALID(err, "--overlay-peer %s: not a unicast IPv4 address", o->peers[i]);
      if (ov->n_static >= OVERLAY_MAX_PEERS)
        return FERRY_INVALID(err, "--overlay-peer: at most %d members", OVERLAY_MAX_PEERS);
      if (!in_list(ov->static_peers, ov->n_static, ips[k]))
        ov->static_peers[ov->n_static++] = ips[k];
    }
  }
  if (o->local) {
    if (ip_parse(o->local, &ov->local) < 0 || !member_addr_ok(ov->local))
      return FERRY_INVALID(err, "--underlay \"%s\": expected this host's IPv4 address", o->local);
  } else if (ov->n_static == 0) {
    return FERRY_INVALID(err, "--overlay needs --underlay ADDR (this host's address on the network "
                              "between the hosts) or an --overlay-peer to find it from");
  } else if ((r = source_towards(ov->static_peers[0], &ov->local, err)) < 0) {
    return r;
  }
  /* a host listing itself among the members (one list for every host) */
  size_t w = 0;
  for (size_t i = 0; i < ov->n_static; i++)
    if (ov->static_peers[i] != ov->local)
      ov->static_peers[w++] = ov->static_peers[i];
  ov->n_static = w;
  int link_mtu = 0;
  if ((r = underlay_link(ov->local, ov->underlay_dev, sizeof ov->underlay_dev, &link_mtu, err)) < 0)
    return r;
  ov->mtu = link_mtu - VXLAN_OVERHEAD;
  if (ov->mtu < 576)
    return FERRY_INVALID(err, "overlay: the underlay link %s has an MTU of %d, too small for VXLAN",
                         ov->underlay_dev, link_mtu);
  peers_merge(ov, NULL, 0);
  /* the filter first: the device then never listens unguarded */
  if ((r = filter_sync(ov, err)) < 0 || (r = device_ensure(ov, bridge, err)) < 0 ||
      (r = fdb_sync(ov, err)) < 0)
    return r;
  /* the agent is the way in for hosts outside the overlay (a route to the
   * container subnet via any member) and back out for its containers */
  return ipv4_forwarding_on(err);
}

int overlay_members_set(struct overlay *ov, json_t *addrs, struct ferry_err *err)
{
  if (!ov->vni)
    return 0;
  uint32_t more[OVERLAY_MAX_PEERS];
  size_t n = 0, i;
  json_t *v;
  json_array_foreach(addrs, i, v)
  {
    uint32_t ip;
    if (n < OVERLAY_MAX_PEERS && json_is_string(v) && ip_parse(json_string_value(v), &ip) == 0)
      more[n++] = ip;
  }
  pthread_mutex_lock(&ov->lock);
  int r = 0;
  if (peers_merge(ov, more, n) || ov->last_error[0]) {
    ov->updates++;
    /* the filter admits a new member before frames are sent to it */
    struct ferry_err e = {0};
    if ((r = filter_sync(ov, &e)) < 0 || (r = fdb_sync(ov, &e)) < 0) {
      snprintf(ov->last_error, sizeof ov->last_error, "%.255s", e.msg);
      if (err)
        *err = e;
    } else
      ov->last_error[0] = '\0';
    r = r < 0 ? r : 1;
  }
  pthread_mutex_unlock(&ov->lock);
  return r;
}

json_t *overlay_info(struct overlay *ov)
{
  if (!ov->vni)
    return json_null();
  pthread_mutex_lock(&ov->lock);
  char local[16];
  ip_format(ov->local, local, sizeof local);
  json_t *members = json_array();
  for (size_t i = 0; i < ov->n_peers; i++) {
    char a[16];
    ip_format(ov->peers[i], a, sizeof a);
    json_array_append_new(members, json_pack("{s:s, s:s}", "address", a, "from",
                                             in_list(ov->static_peers, ov->n_static, ov->peers[i])
                                                 ? "static"
                                                 : "registry"));
  }
  json_t *j = json_pack("{s:I, s:s, s:s, s:s, s:i, s:i, s:o, s:I}", "vni", (json_int_t)ov->vni,
                        "device", ov->dev, "local", local, "underlay_device", ov->underlay_dev,
                        "port", ov->port, "mtu", ov->mtu, "members", members, "updates",
                        (json_int_t)ov->updates);
  if (ov->last_error[0])
    json_object_set_new(j, "error", json_string(ov->last_error));
  pthread_mutex_unlock(&ov->lock);
  return j;
}

int overlay_remove_stale(const char *bridge)
{
  _cleanup_json_ json_t *j =
      cmd_json((const char *const[]){"ip", "-d", "-j", "link", "show", "master", bridge, NULL});
  int n = 0;
  size_t i;
  json_t *l;
  json_array_foreach(j, i, l)
  {
    json_t *li = json_object_get(l, "linkinfo");
    const char *name = json_str_or(l, "ifname", "");
    if (strcmp(json_str_or(li, "info_kind", ""), "vxlan") != 0 || strncmp(name, "fx", 2) != 0)
      continue;
    json_int_t vni = json_integer_value(json_object_get(json_object_get(li, "info_data"), "id"));
    if (spawn_check((const char *const[]){"ip", "link", "del", name, NULL}, NULL, NULL) < 0)
      continue;
    struct overlay tmp = {.vni = (uint32_t)vni};
    char t[32];
    table_name(&tmp, t, sizeof t);
    _cleanup_free_ char *script = xasprintf("add table ip %s\ndelete table ip %s\n", t, t);
    nft_script_run(t, script, NULL);
    n++;
  }
  return n;
}
