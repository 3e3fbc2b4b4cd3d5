/* net: subnets, allocation, MACs, names. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <string.h>

#include "net/net.h"
#include "net/ports.h"
#include "util/json.h"

static void parses_and_rejects_subnets(void **state)
{
  (void)state;
  struct subnet s;
  struct ferry_err e = {0};
  assert_int_equal(subnet_parse("198.18.5.77/24", &s, &e), 0);
  char buf[16];
  ip_format(s.net, buf, sizeof buf);
  assert_string_equal(buf, "198.18.5.0");
  ip_format(s.gw, buf, sizeof buf);
  assert_string_equal(buf, "198.18.5.1");
  assert_int_equal(s.prefix, 24);
  assert_true(subnet_parse("198.18.5.0", &s, &e) < 0);
  assert_non_null(strstr(e.msg, "ADDRESS/PREFIX"));
  assert_true(subnet_parse("198.18.5.0/31", &s, &e) < 0);
  assert_true(subnet_parse("300.1.1.1/24", &s, &e) < 0);
  assert_true(subnet_parse("198.18.5.0/24x", &s, &e) < 0);
}

static void allocates_lowest_free_usable(void **state)
{
  (void)state;
  struct subnet s;
  subnet_parse("198.18.0.0/29", &s, NULL); /* .0 net, .1 gw, .7 broadcast */
  uint32_t ip;
  ip_parse("198.18.0.2", &ip);
  uint32_t used[5];
  assert_int_equal(subnet_alloc(&s, NULL, 0), ip);
  for (int i = 0; i < 5; i++)
    used[i] = ip + (uint32_t)i; /* .2 .. .6 */
  assert_int_equal(subnet_alloc(&s, used, 4), ip + 4);
  assert_int_equal(subnet_alloc(&s, used, 5), 0); /* full */
  uint32_t gw, bc, out;
  ip_parse("198.18.0.1", &gw);
  ip_parse("198.18.0.7", &bc);
  ip_parse("198.18.1.2", &out);
  assert_false(subnet_usable(&s, gw));
  assert_false(subnet_usable(&s, bc));
  assert_false(subnet_usable(&s, s.net));
  assert_false(subnet_usable(&s, out));
  assert_true(subnet_usable(&s, ip));
}

static void mac_and_names(void **state)
{
  (void)state;
  uint32_t ip;
  ip_parse("198.18.12.10", &ip);
  char mac[18];
  mac_for_ip(ip, mac, sizeof mac);
  assert_string_equal(mac, "02:fe:c6:12:0c:0a");
  char ns[32], veth[16];
  net_names("0123456789abcdef0123", ns, sizeof ns, veth, sizeof veth);
  assert_string_equal(ns, "ferry-0123456789ab");
  assert_true(strlen(veth) <= 15); /* IFNAMSIZ - 1 */
  assert_string_equal(veth, "fv0123456789a");
}

static void port_mappings(void **state)
{
  (void)state;
  struct ferry_err err = {0};
  json_t *m = NULL;
  assert_int_equal(port_spec_parse("6379:6379", &m, &err), 0);
  assert_string_equal(json_str_or(m, "host_ip", "x"), "");
  assert_int_equal(json_integer_value(json_object_get(m, "host_port")), 6379);
  assert_string_equal(json_str_or(m, "protocol", ""), "tcp");
  json_t *n = NULL;
  assert_int_equal(port_spec_parse("198.18.0.1:80:8080/udp", &n, &err), 0);
  assert_string_equal(json_str_or(n, "host_ip", ""), "198.18.0.1");
  assert_int_equal(json_integer_value(json_object_get(n, "container_port")), 8080);
  assert_string_equal(json_str_or(n, "protocol", ""), "udp");
  /* same port, other protocol: no conflict; all addresses vs one: conflict */
  json_t *o = NULL;
  assert_int_equal(port_spec_parse("198.18.0.1:6379:1", &o, &err), 0);
  assert_true(port_conflict(m, o));
  assert_false(port_conflict(m, n));
  json_t *p = NULL;
  assert_int_equal(port_spec_parse("198.18.0.2:6379:1", &p, &err), 0);
  assert_false(port_conflict(o, p));
  json_t *both = json_pack("[O, O]", m, n);
  char *f = ports_format(both);
  assert_string_equal(f, "0.0.0.0:6379->6379/tcp, 198.18.0.1:80->8080/udp");
  free(f);
  json_decref(both);
  static const char *bad[] = {"", "6379", "0:1", "1:65536", "a:1", "1:2:3:4", "1.2.3:1:2", "1:2/sctp",
                              "-1:2", "1:2/", ":1", "1:"};
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
    json_t *x = NULL;
    assert_int_equal(port_spec_parse(bad[i], &x, &err) < 0, 1);
    assert_int_equal(err.klass, FERRY_E_INVALID);
    assert_null(x);
  }
  /* a list from a peer: strings or objects, duplicates refused */
  json_t *in = json_pack("[s, {s:s, s:i, s:i, s:s}]", "1:2", "host_ip", "", "host_port", 3,
                         "container_port", 4, "protocol", "udp");
  json_t *out = NULL;
  assert_int_equal(ports_check(in, &out, &err), 0);
  assert_int_equal(json_array_size(out), 2);
  json_decref(out);
  json_array_append_new(in, json_string("0.0.0.0:1:9"));
  out = NULL;
  assert_true(ports_check(in, &out, &err) < 0);
  assert_null(out);
  json_t *evil = json_pack("[{s:s, s:i, s:i}]", "host_ip", "1.2.3.4; flush ruleset", "host_port", 1,
                           "container_port", 1);
  assert_true(ports_check(evil, &out, &err) < 0);
  json_decref(evil);
  json_decref(in);
  json_decref(m);
  json_decref(n);
  json_decref(o);
  json_decref(p);
}

int main(void)
{
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(parses_and_rejects_subnets),
      cmocka_unit_test(allocates_lowest_free_usable),
      cmocka_unit_test(mac_and_names),
      cmocka_unit_test(port_mappings),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
