/* runtime/spec: users from the image, the generated OCI config. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>

#include "runtime/runtime.h"
#include "util/cleanup.h"
#include "util/fs.h"
#include "util/json.h"

static void resolves_users(void **state)
{
  (void)state;
  char dir[] = "/tmp/ferry-unit-spec-XXXXXX";
  assert_non_null(mkdtemp(dir));
  _cleanup_free_ char *etc = path_join(dir, "etc");
  mkdir_p(etc, 0755, NULL);
  _cleanup_free_ char *pw = path_join(etc, "passwd");
  _cleanup_free_ char *gr = path_join(etc, "group");
  const char *p = "root:x:0:0:root:/root:/bin/sh\nredis:x:999:998::/data:/bin/false\n";
  const char *g = "root:x:0:\nredis:x:998:\nstaff:x:50:\n";
  write_file_atomic(pw, p, strlen(p), 0644, NULL);
  write_file_atomic(gr, g, strlen(g), 0644, NULL);
  uint32_t uid, gid;
  struct ferry_err e = {0};
  assert_int_equal(spec_resolve_user(dir, "redis", &uid, &gid, &e), 0);
  assert_int_equal(uid, 999);
  assert_int_equal(gid, 998);
  assert_int_equal(spec_resolve_user(dir, "redis:staff", &uid, &gid, &e), 0);
  assert_int_equal(gid, 50);
  assert_int_equal(spec_resolve_user(dir, "999", &uid, &gid, &e), 0);
  assert_int_equal(gid, 998); /* primary group from passwd */
  assert_int_equal(spec_resolve_user(dir, "1234:77", &uid, &gid, &e), 0);
  assert_int_equal(uid, 1234);
  assert_int_equal(gid, 77);
  assert_int_equal(spec_resolve_user(dir, "", &uid, &gid, &e), 0);
  assert_int_equal(uid, 0);
  assert_true(spec_resolve_user(dir, "nobody", &uid, &gid, &e) < 0);
  assert_non_null(strstr(e.msg, "user \"nobody\": not found"));
  assert_true(spec_resolve_user(dir, "redis:nogroup", &uid, &gid, &e) < 0);
  rm_rf(dir, NULL);
}

static void builds_the_oci_config(void **state)
{
  (void)state;
  char dir[] = "/tmp/ferry-unit-spec-XXXXXX";
  assert_non_null(mkdtemp(dir));
  struct runtime rt;
  _cleanup_free_ char *rr = path_join(dir, "runc");
  assert_int_equal(runtime_init(&rt, dir, rr, "runc", "/bin/true", NULL), 0);
  struct ferry_err e = {0};
  assert_int_equal(volume_create(&rt, "data", false, NULL, &e), 0);
  _cleanup_json_ json_t *rec = json_pack(
      "{s:s, s:s, s:[s,s], s:[s], s:s, s:i, s:i, s:s, s:[{s:s, s:s}]}", "id", "abc123", "name",
      "web", "args", "/bin/sh", "-c", "env", "A=1", "cwd", "/srv", "uid", 5, "gid", 6, "netns",
      "ferry-abc123", "volumes", "name", "data", "destination", "/data");
  json_t *spec = NULL;
  assert_int_equal(spec_build(&rt, rec, &spec, &e), 0);
  assert_string_equal(json_str_or(spec, "hostname", ""), "web");
  json_t *proc = json_object_get(spec, "process");
  assert_string_equal(json_str_or(proc, "cwd", ""), "/srv");
  assert_int_equal(json_integer_value(json_object_get(json_object_get(proc, "user"), "uid")), 5);
  /* NOFILE stays within the host's hard limit */
  struct rlimit rl;
  getrlimit(RLIMIT_NOFILE, &rl);
  json_t *nofile = json_array_get(json_object_get(proc, "rlimits"), 0);
  assert_true((rlim_t)json_integer_value(json_object_get(nofile, "hard")) <= rl.rlim_max);
  /* the network namespace is the one ferry made */
  size_t i;
  json_t *ns;
  bool found = false;
  json_array_foreach(json_object_get(json_object_get(spec, "linux"), "namespaces"), i, ns)
  {
    if (strcmp(json_str_or(ns, "type", ""), "network") == 0) {
      assert_string_equal(json_str_or(ns, "path", ""), "/var/run/netns/ferry-abc123");
      found = true;
    }
  }
  assert_true(found);
  /* the volume is a bind mount of its _data dir */
  json_t *m;
  found = false;
  json_array_foreach(json_object_get(spec, "mounts"), i, m)
  {
    if (strcmp(json_str_or(m, "destination", ""), "/data") == 0) {
      assert_string_equal(json_str_or(m, "type", ""), "bind");
      assert_non_null(strstr(json_str_or(m, "source", ""), "/volumes/data/_data"));
      found = true;
    }
  }
  assert_true(found);
  json_decref(spec);
  /* a missing volume is named */
  json_object_set_new(json_array_get(json_object_get(rec, "volumes"), 0), "name", json_string("gone"));
  assert_true(spec_build(&rt, rec, &spec, &e) < 0);
  assert_string_equal(e.msg, "volume \"gone\": no such volume");
  runtime_fini(&rt);
  rm_rf(dir, NULL);
}

static void validates_names(void **state)
{
  (void)state;
  struct ferry_err e = {0};
  assert_int_equal(validate_name("container", "web-1.a_b", &e), 0);
  assert_true(validate_name("container", "-web", &e) < 0);
  assert_true(validate_name("container", "a/b", &e) < 0);
  assert_true(validate_name("container", "", &e) < 0);
  assert_true(validate_name("volume", "../x", &e) < 0);
  assert_non_null(strstr(e.msg, "volume name \"../x\""));
  char longname[80];
  memset(longname, 'a', 70);
  longname[70] = '\0';
  assert_true(validate_name("container", longname, &e) < 0);
}

int main(void)
{
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(resolves_users),
      cmocka_unit_test(builds_the_oci_config),
      cmocka_unit_test(validates_names),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
