/* net: subnets, allocation, MACs, names. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <string.h>

#include "net/net.h"

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

int main(void)
{
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(parses_and_rejects_subnets),
      cmocka_unit_test(allocates_lowest_free_usable),
      cmocka_unit_test(mac_and_names),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
