/* Published ports: parsing, checking and the nftables table (see ports.h). */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>
#include <nftables/libnftables.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "net/net.h"
#include "net/ports.h"
#include "util/cleanup.h"
#include "util/fs.h"
#include "util/json.h"

#define PORTS_MAX 256
/* Marks the connections ferry forwarded (conntrack mark), for the masquerade. */
#define NAT_MARK "0x6665"

static int port_num(const char *s, size_t n, const char *what, const char *spec,
                    struct ferry_err *err)
{
  long v = 0;
  if (n == 0 || n > 5)
    goto bad;
  for (size_t i = 0; i < n; i++) {
    if (s[i] < '0' || s[i] > '9')
      goto bad;
    v = v * 10 + (s[i] - '0');
  }
  if (v >= 1 && v <= 65535)
    return (int)v;
bad:
  return FERRY_INVALID(err, "port mapping \"%s\": %s port must be a number 1..65535", spec, what);
}

static json_t *mapping(const char *host_ip, int hp, int cp, const char *proto)
{
  return json_pack("{s:s, s:i, s:i, s:s}", "host_ip", host_ip, "host_port", hp, "container_port",
                   cp, "protocol", proto);
}

int port_spec_parse(const char *spec, json_t **out, struct ferry_err *err)
{
  if (!spec || !*spec || strlen(spec) > 64)
    return FERRY_INVALID(err, "port mapping \"%s\": expected [IP:]HOSTPORT:CTRPORT[/tcp|udp]",
                         spec ? spec : "");
  char buf[65];
  snprintf(buf, sizeof buf, "%s", spec);
  const char *proto = "tcp";
  char *slash = strchr(buf, '/');
  if (slash) {
    *slash = '\0';
    if (strcmp(slash + 1, "tcp") == 0 || strcmp(slash + 1, "udp") == 0)
      proto = slash + 1;
    else
      return FERRY_INVALID(err, "port mapping \"%s\": protocol must be tcp or udp", spec);
  }
  char *parts[3] = {0};
  int n = 0;
  for (char *p = buf, *c; n < 3; p = c + 1) {
    parts[n++] = p;
    if (!(c = strchr(p, ':')))
      break;
    *c = '\0';
    if (n == 3)
      return FERRY_INVALID(err, "port mapping \"%s\": expected [IP:]HOSTPORT:CTRPORT[/tcp|udp]",
                           spec);
  }
  if (n < 2)
    return FERRY_INVALID(err, "port mapping \"%s\": expected [IP:]HOSTPORT:CTRPORT[/tcp|udp] "
                              "(a host port must be given)",
                         spec);
  const char *ip = n == 3 ? parts[0] : "";
  if (strcmp(ip, "localhost") == 0) /* podman's spelling of the loopback address */
    ip = "127.0.0.1";
  uint32_t v;
  if (*ip && ip_parse(ip, &v) < 0)
    return FERRY_INVALID(err, "port mapping \"%s\": \"%s\" is not an IPv4 address", spec, ip);
  if (*ip && v == 0)
    ip = "";
  int hp = port_num(parts[n - 2], strlen(parts[n - 2]), "host", spec, err);
  if (hp < 0)
    return hp;
  int cp = port_num(parts[n - 1], strlen(parts[n - 1]), "container", spec, err);
  if (cp < 0)
    return cp;
  *out = mapping(ip, hp, cp, proto);
  return 0;
}

static int mapping_check(json_t *m, json_t **out, struct ferry_err *err)
{
  if (json_is_string(m))
    return port_spec_parse(json_string_value(m), out, err);
  if (!json_is_object(m))
    return FERRY_INVALID(err, "a port mapping must be a string or an object");
  const char *ip = json_str_or(m, "host_ip", "");
  const char *proto = json_str_or(m, "protocol", "tcp");
  json_t *hp = json_object_get(m, "host_port"), *cp = json_object_get(m, "container_port");
  uint32_t v;
  if (*ip && ip_parse(ip, &v) < 0)
    return FERRY_INVALID(err, "port mapping: host_ip \"%.64s\" is not an IPv4 address", ip);
  if (strcmp(proto, "tcp") != 0 && strcmp(proto, "udp") != 0)
    return FERRY_INVALID(err, "port mapping: protocol must be tcp or udp");
  if (!json_is_integer(hp) || json_integer_value(hp) < 1 || json_integer_value(hp) > 65535 ||
      !json_is_integer(cp) || json_integer_value(cp) < 1 || json_integer_value(cp) > 65535)
    return FERRY_INVALID(err, "port mapping: host_port and container_port must be integers 1..65535");
  *out = mapping(*ip && v ? ip : "", (int)json_integer_value(hp), (int)json_integer_value(cp), proto);
  return 0;
}

bool port_conflict(json_t *a, json_t *b)
{
  if (json_integer_value(json_object_get(a, "host_port")) !=
          json_integer_value(json_object_get(b, "host_port")) ||
      strcmp(json_str_or(a, "protocol", ""), json_str_or(b, "protocol", "")) != 0)
    return false;
  const char *ia = json_str_or(a, "host_ip", ""), *ib = json_str_or(b, "host_ip", "");
  return !*ia || !*ib || strcmp(ia, ib) == 0;
}

int ports_check(json_t *in, json_t **out, struct ferry_err *err)
{
  if (in && !json_is_array(in))
    return FERRY_INVALID(err, "field \"ports\" must be an array of \"[IP:]HOSTPORT:CTRPORT[/tcp|udp]\"");
  if (json_array_size(in) > PORTS_MAX)
    return FERRY_INVALID(err, "at most %d published ports", PORTS_MAX);
  _cleanup_json_ json_t *res = json_array();
  size_t i, k;
  json_t *m, *o;
  json_array_foreach(in, i, m)
  {
    json_t *c = NULL;
    int r = mapping_check(m, &c, err);
    if (r < 0)
      return r;
    json_array_foreach(res, k, o) if (port_conflict(o, c))
    {
      json_decref(c);
      return FERRY_INVALID(err, "host port %d/%s is published twice",
                           (int)json_integer_value(json_object_get(o, "host_port")),
                           json_str_or(o, "protocol", ""));
    }
    json_array_append_new(res, c);
  }
  *out = json_incref(res);
  return 0;
}

char *ports_format(json_t *ports)
{
  char *s = xstrdup("");
  size_t i;
  json_t *m;
  json_array_foreach(ports, i, m)
  {
    const char *ip = json_str_or(m, "host_ip", "");
    char *n = xasprintf("%s%s%s:%lld->%lld/%s", s, i ? ", " : "", *ip ? ip : "0.0.0.0",
                        json_integer_value(json_object_get(m, "host_port")),
                        json_integer_value(json_object_get(m, "container_port")),
                        json_str_or(m, "protocol", "tcp"));
    free(s);
    s = n;
  }
  return s;
}

int port_host_free(json_t *m, struct ferry_err *err)
{
  const char *ip = json_str_or(m, "host_ip", ""), *proto = json_str_or(m, "protocol", "tcp");
  long long hp = json_integer_value(json_object_get(m, "host_port"));
  struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)hp)};
  if (*ip && inet_pton(AF_INET, ip, &sa.sin_addr) != 1)
    return FERRY_INVALID(err, "port mapping: host_ip \"%.64s\" is not an IPv4 address", ip);
  bool udp = strcmp(proto, "udp") == 0;
  int fd = socket(AF_INET, (udp ? SOCK_DGRAM : SOCK_STREAM) | SOCK_CLOEXEC, 0);
  if (fd < 0)
    return ferry_err_sys(err, -errno, "host port %lld/%s: socket", hp, proto);
  int one = 1;
  /* SO_REUSEADDR: a connection of the past (TIME_WAIT) does not hold the
   * port; a listening (or, for UDP, bound) socket does. */
  setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  int r = bind(fd, (struct sockaddr *)&sa, sizeof sa) < 0 ? -errno : 0;
  close(fd);
  if (r == -EADDRINUSE)
    return ferry_err_set(err, r, FERRY_E_CONFLICT,
                         "host port %s%s%lld/%s is in use by a program of this host", ip,
                         *ip ? ":" : "", hp, proto);
  if (r == -EADDRNOTAVAIL)
    return ferry_err_set(err, r, FERRY_E_INVALID,
                         "port mapping: %s is not an address of this host", ip);
  if (r < 0 && r != -EACCES && r != -EPERM)
    return ferry_err_sys(err, r, "host port %lld/%s", hp, proto);
  return 0;
}

json_t *nat_rule(json_t *m, const char *to_ip, int to_port)
{
  return json_pack("{s:s, s:I, s:s, s:s, s:i}", "host_ip", json_str_or(m, "host_ip", ""),
                   "host_port", json_integer_value(json_object_get(m, "host_port")), "protocol",
                   json_str_or(m, "protocol", "tcp"), "to_ip", to_ip, "to_port", to_port);
}

/* The table's name: ferry_ and the bridge's name, other characters as '_'. */
static void table_name(const char *bridge, char *buf, size_t len)
{
  snprintf(buf, len, "ferry_%s", bridge);
  for (char *p = buf; *p; p++)
    if (!((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || (*p >= '0' && *p <= '9')))
      *p = '_';
}

static pthread_mutex_t nft_lock = PTHREAD_MUTEX_INITIALIZER;

/* The host ports (as "tcp/6379") the forwarding tables of OTHER agents in
 * this network namespace (tables ip ferry_*, not ours) forward. */
json_t *nat_ports_of_others(const char *bridge)
{
  char mine[48];
  table_name(bridge, mine, sizeof mine);
  json_t *found = json_object();
  pthread_mutex_lock(&nft_lock);
  struct nft_ctx *ctx = nft_ctx_new(NFT_CTX_DEFAULT);
  if (ctx) {
    nft_ctx_output_set_flags(ctx, NFT_CTX_OUTPUT_JSON);
    nft_ctx_buffer_output(ctx);
    nft_ctx_buffer_error(ctx);
    if (nft_run_cmd_from_buffer(ctx, "list ruleset ip\n") == 0) {
      const char *out = nft_ctx_get_output_buffer(ctx);
      json_t *j = out ? json_loads(out, 0, NULL) : NULL;
      size_t i;
      json_t *e;
      json_array_foreach(json_object_get(j, "nftables"), i, e)
      {
        /* this version's tables: the key sets' elements */
        json_t *set = json_object_get(e, "set");
        const char *st = json_str_or(set, "table", "");
        if (set && strncmp(st, "ferry_", 6) == 0 && strcmp(st, mine) != 0) {
          size_t k;
          json_t *el;
          json_array_foreach(json_object_get(set, "elem"), k, el)
          {
            json_t *cc = json_object_get(el, "concat");
            size_t m = json_array_size(cc);
            if (m < 2)
              continue;
            json_t *pr = json_array_get(cc, m - 2), *po = json_array_get(cc, m - 1);
            if (json_is_string(pr) && json_is_integer(po)) {
              char key[32];
              snprintf(key, sizeof key, "%s/%lld", json_string_value(pr),
                       (long long)json_integer_value(po));
              json_object_set_new(found, key, json_string(st));
            }
          }
          continue;
        }
        /* and an earlier version's: one rule per mapping */
        json_t *rule = json_object_get(e, "rule");
        const char *t = json_str_or(rule, "table", "");
        if (!rule || strncmp(t, "ferry_", 6) != 0 || strcmp(t, mine) == 0)
          continue;
        size_t k;
        json_t *x;
        json_array_foreach(json_object_get(rule, "expr"), k, x)
        {
          json_t *m = json_object_get(x, "match");
          json_t *pl = json_object_get(json_object_get(m, "left"), "payload");
          json_t *right = json_object_get(m, "right");
          if (pl && json_is_integer(right) && strcmp(json_str_or(pl, "field", ""), "dport") == 0) {
            char key[32];
            snprintf(key, sizeof key, "%s/%lld", json_str_or(pl, "protocol", ""),
                     (long long)json_integer_value(right));
            json_object_set_new(found, key, json_string(t));
          }
        }
      }
      json_decref(j);
    }
    nft_ctx_free(ctx);
  }
  pthread_mutex_unlock(&nft_lock);
  return found;
}

int port_other_agent(json_t *others, json_t *m, struct ferry_err *err)
{
  char key[32];
  snprintf(key, sizeof key, "%s/%lld", json_str_or(m, "protocol", "tcp"),
           (long long)json_integer_value(json_object_get(m, "host_port")));
  const char *t = json_str_or(others, key, NULL);
  if (t)
    return FERRY_CONFLICT(err, "host port %s is forwarded by another agent in this network "
                               "namespace (nftables table %s)", key, t);
  return 0;
}

int nat_apply(const char *bridge, json_t *rules, struct ferry_err *err)
{
  char t[48];
  table_name(bridge, t, sizeof t);
  /* Everything is re-checked here: the script is built from these values.
   * The mappings are elements of sets and maps (one lookup per packet, one
   * element per mapping, however many), written in one pass. */
  char *s = NULL;
  size_t slen = 0;
  FILE *f = open_memstream(&s, &slen);
  if (!f)
    abort();
  fprintf(f, "add table ip %s\ndelete table ip %s\n", t, t);
  size_t n = json_array_size(rules), i, nany = 0, naddr = 0;
  json_t *r;
  json_array_foreach(rules, i, r)
  {
    const char *hip = json_str_or(r, "host_ip", ""), *to = json_str_or(r, "to_ip", "");
    const char *proto = json_str_or(r, "protocol", "");
    long long hp = json_integer_value(json_object_get(r, "host_port"));
    long long tp = json_integer_value(json_object_get(r, "to_port"));
    uint32_t v;
    if ((*hip && ip_parse(hip, &v) < 0) || ip_parse(to, &v) < 0 ||
        (strcmp(proto, "tcp") != 0 && strcmp(proto, "udp") != 0) || hp < 1 || hp > 65535 ||
        tp < 1 || tp > 65535) {
      fclose(f);
      free(s);
      return FERRY_INVALID(err, "port forwarding rule %zu is malformed", i);
    }
    if (*hip)
      naddr++;
    else
      nany++;
  }
  if (n) {
    /* Only ever traffic addressed to this host (fib daddr type local): a
     * mapping on an address that is not (or no longer) the host's must not
     * capture the host's own connections to that address (a peer agent's,
     * say). Keys: protocol . port (any of the host's addresses), or
     * address . protocol . port; the maps give the container's address and
     * port. */
    fprintf(f,
            "add table ip %s\n"
            "add set ip %s anyk { type inet_proto . inet_service ; }\n"
            "add map ip %s anym { type inet_proto . inet_service : ipv4_addr . inet_service ; }\n"
            "add set ip %s addrk { type ipv4_addr . inet_proto . inet_service ; }\n"
            "add map ip %s addrm { type ipv4_addr . inet_proto . inet_service : ipv4_addr . inet_service ; }\n"
            "add chain ip %s pre { type nat hook prerouting priority -100 ; policy accept ; }\n"
            "add chain ip %s out { type nat hook output priority -100 ; policy accept ; }\n"
            "add chain ip %s post { type nat hook postrouting priority 100 ; policy accept ; }\n"
            "add rule ip %s post ct mark " NAT_MARK " counter masquerade\n",
            t, t, t, t, t, t, t, t, t);
    /* The host's own connections to 127.0.0.0/8 reach only mappings bound
     * to a loopback address (-p 127.0.0.1:...), as podman's: the rule of
     * the addresses takes them, the rule of any address does not. */
    static const char *const chains[] = {"pre", "out"};
    for (int k = 0; k < 2; k++) {
      const char *lo = k ? "ip daddr != 127.0.0.0/8 " : "";
      fprintf(f,
              "add rule ip %s %s fib daddr type local ip daddr . meta l4proto . th dport @addrk "
              "counter ct mark set " NAT_MARK " dnat ip to ip daddr . meta l4proto . th dport map @addrm\n"
              "add rule ip %s %s %sfib daddr type local meta l4proto . th dport @anyk "
              "counter ct mark set " NAT_MARK " dnat ip to meta l4proto . th dport map @anym\n",
              t, chains[k], t, chains[k], lo);
    }
    for (int pass = 0; pass < 4; pass++) {
      /* anyk, anym, addrk, addrm */
      bool addr = pass >= 2, map = pass % 2;
      if ((addr ? naddr : nany) == 0)
        continue;
      fprintf(f, "add element ip %s %s { ", t, addr ? (map ? "addrm" : "addrk") : (map ? "anym" : "anyk"));
      bool first = true;
      /* a key once: the first rule wins (a container's own before the
       * redirect it takes its port back from) */
      _cleanup_json_ json_t *seen = json_object();
      json_array_foreach(rules, i, r)
      {
        const char *hip = json_str_or(r, "host_ip", "");
        if ((*hip != '\0') != addr)
          continue;
        char key[48];
        snprintf(key, sizeof key, "%s/%s/%lld", hip, json_str_or(r, "protocol", ""),
                 json_integer_value(json_object_get(r, "host_port")));
        if (json_object_get(seen, key))
          continue;
        json_object_set_new(seen, key, json_true());
        fprintf(f, "%s", first ? "" : ", ");
        first = false;
        if (addr)
          fprintf(f, "%s . ", hip);
        fprintf(f, "%s . %lld", json_str_or(r, "protocol", ""),
                json_integer_value(json_object_get(r, "host_port")));
        if (map)
          fprintf(f, " : %s . %lld", json_str_or(r, "to_ip", ""),
                  json_integer_value(json_object_get(r, "to_port")));
      }
      fprintf(f, " }\n");
    }
  }
  if (fclose(f) != 0) {
    free(s);
    return FERRY_INTERNAL(err, "nftables: cannot build the script");
  }
  int ret = nft_script_run(t, s, err);
  free(s);
  if (ret == 0 && n)
    /* Forwarding from the bridge back onto it (and beyond) is what a
     * published port is: as podman does, turn it on (in this namespace). */
    ret = ipv4_forwarding_on(err);
  bool loopback = false;
  json_array_foreach(rules, i, r)
  {
    uint32_t v;
    const char *hip = json_str_or(r, "host_ip", "");
    if (*hip && ip_parse(hip, &v) == 0 && (v >> 24) == 127)
      loopback = true;
  }
  if (ret == 0 && loopback) {
    /* a connection from 127.0.0.1 DNATed to a container leaves through the
     * bridge with that source until it is masqueraded: the bridge (ours)
     * must route it (netavark does the same) */
    _cleanup_free_ char *path = xasprintf("/proc/sys/net/ipv4/conf/%s/route_localnet", bridge);
    FILE *fl = fopen(path, "w");
    bool ok = fl && fputs("1\n", fl) >= 0;
    if (fl && fclose(fl) != 0)
      ok = false;
    if (!ok)
      ret = FERRY_INTERNAL(err, "%s: %s", path, strerror(errno));
  }
  return ret;
}

int nft_script_run(const char *table, const char *script, struct ferry_err *err)
{
  int ret = 0;
  pthread_mutex_lock(&nft_lock);
  struct nft_ctx *ctx = nft_ctx_new(NFT_CTX_DEFAULT);
  if (!ctx) {
    ret = FERRY_INTERNAL(err, "nftables: cannot make a context");
  } else {
    nft_ctx_buffer_output(ctx);
    nft_ctx_buffer_error(ctx);
    if (nft_run_cmd_from_buffer(ctx, script) != 0) {
      const char *e = nft_ctx_get_error_buffer(ctx);
      ret = ferry_err_set(err, -EIO, FERRY_E_INTERNAL, "nftables table %s: %.400s", table,
                          e && *e ? e : "failed");
    }
    nft_ctx_free(ctx);
  }
  pthread_mutex_unlock(&nft_lock);
  return ret;
}

int ipv4_forwarding_on(struct ferry_err *err)
{
  FILE *fw = fopen("/proc/sys/net/ipv4/ip_forward", "w");
  bool ok = fw && fputs("1\n", fw) >= 0;
  if (fw && fclose(fw) != 0)
    ok = false;
  if (!ok)
    return FERRY_INTERNAL(err, "cannot enable IPv4 forwarding: %s", strerror(errno));
  return 0;
}
