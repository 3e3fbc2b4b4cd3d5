/* runtime/spec: users from the image, the generated OCI config. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

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
  /* a uid that would wrap to root */
  assert_true(spec_resolve_user(dir, "4294967296", &uid, &gid, &e) < 0);
  assert_non_null(strstr(e.msg, "below 4294967295"));
  assert_true(spec_resolve_user(dir, "5:99999999999", &uid, &gid, &e) < 0);
  /* a FIFO as /etc/passwd (or a symlink to a host device) must not hang */
  assert_int_equal(rm_rf(pw, NULL), 0);
  assert_int_equal(mkfifo(pw, 0644), 0);
  assert_true(spec_resolve_user(dir, "redis", &uid, &gid, &e) < 0);
  assert_int_equal(spec_resolve_user(dir, "1234", &uid, &gid, &e), 0);
  assert_int_equal(rm_rf(pw, NULL), 0);
  assert_int_equal(symlink("/dev/zero", pw), 0);
  assert_true(spec_resolve_user(dir, "redis", &uid, &gid, &e) < 0);
  /* a symlink out of the rootfs resolves inside it: the host's passwd is not read */
  assert_int_equal(rm_rf(pw, NULL), 0);
  assert_int_equal(symlink("/etc/passwd", pw), 0);
  assert_true(spec_resolve_user(dir, "root", &uid, &gid, &e) < 0);
  rm_rf(dir, NULL);
}

/* A runtime whose root is a fresh directory dir (a mkdtemp template). */
static void tmp_runtime(char *dir, struct runtime *rt)
{
  assert_non_null(mkdtemp(dir));
  _cleanup_free_ char *rr = path_join(dir, "runc");
  assert_int_equal(runtime_init(rt, dir, rr, "runc", "/bin/true", NULL), 0);
}

static void builds_the_oci_config(void **state)
{
  (void)state;
  char dir[] = "/tmp/ferry-unit-spec-XXXXXX";
  struct runtime rt;
  tmp_runtime(dir, &rt);
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

/* A volume whose directory is a symlink (or a name with a slash, planted by
 * a peer) is never bind-mounted: the host path it points to stays out. */
static void refuses_volume_paths_through_symlinks(void **state)
{
  (void)state;
  char dir[] = "/tmp/ferry-unit-spec-XXXXXX";
  struct runtime rt;
  tmp_runtime(dir, &rt);
  struct ferry_err e = {0};
  assert_int_equal(volume_create(&rt, "ev4", false, NULL, &e), 0);
  /* what a container could plant inside its own volume */
  _cleanup_free_ char *data = volume_path(&rt, "ev4");
  _cleanup_free_ char *evil = path_join(data, "evil");
  assert_int_equal(mkdir_p(evil, 0755, NULL), 0);
  _cleanup_free_ char *evil_data = path_join(evil, "_data");
  assert_int_equal(symlink("/etc", evil_data), 0);
  _cleanup_json_ json_t *rec = json_pack("{s:s, s:s, s:[s], s:[{s:s, s:s}]}", "id", "abc", "name",
                                         "x", "args", "/bin/sh", "volumes", "name",
                                         "ev4/_data/evil", "destination", "/host");
  json_t *spec = NULL;
  assert_true(spec_build(&rt, rec, &spec, &e) < 0);
  assert_null(spec);
  assert_non_null(strstr(e.msg, "volume name \"ev4/_data/evil\""));
  /* a volume directory replaced by a symlink to the host */
  assert_int_equal(volume_create(&rt, "sl", false, NULL, &e), 0);
  _cleanup_free_ char *sl = volume_path(&rt, "sl");
  assert_int_equal(rm_rf(sl, NULL), 0);
  assert_int_equal(symlink("/etc", sl), 0);
  json_t *v0 = json_array_get(json_object_get(rec, "volumes"), 0);
  json_object_set_new(v0, "name", json_string("sl"));
  assert_true(spec_build(&rt, rec, &spec, &e) < 0);
  assert_null(spec);
  assert_non_null(strstr(e.msg, "symbolic link"));
  /* hostile destinations */
  json_object_set_new(v0, "name", json_string("ev4"));
  const char *bad[] = {"//", "/.", "/a/../../etc", "relative", "/a//b", "/a/"};
  for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
    json_object_set_new(v0, "destination", json_string(bad[i]));
    assert_true(spec_build(&rt, rec, &spec, &e) < 0);
    assert_non_null(strstr(e.msg, "destination"));
  }
  runtime_fini(&rt);
  rm_rf(dir, NULL);
}

/* A record from a peer or a checkpoint keeps only known, valid fields. */
static void sanitizes_foreign_records(void **state)
{
  (void)state;
  struct ferry_err e = {0};
  const char *img = "sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";
  _cleanup_json_ json_t *good = json_pack(
      "{s:s, s:s, s:s, s:s, s:s, s:[s], s:[s], s:s, s:s, s:i, s:[{s:s, s:s}], s:s, s:s, s:s}",
      "id", "feed", "name", "web", "image", img, "ip", "198.18.0.5", "mac", "02:42:c6:12:00:05",
      "args", "/bin/sh", "env", "A=1", "cwd", "/srv", "user", "redis", "uid", 7, "volumes", "name",
      "data", "destination", "/data", "netns", "/proc/1/ns/net", "veth", "eth0", "op", "restore");
  json_t *out = NULL;
  assert_int_equal(ctr_record_sanitize(good, &out, &e), 0);
  assert_string_equal(json_str_or(out, "name", ""), "web");
  assert_int_equal(json_integer_value(json_object_get(out, "uid")), 7);
  /* host names from the peer are dropped, not trusted */
  assert_null(json_object_get(out, "netns"));
  assert_null(json_object_get(out, "veth"));
  assert_null(json_object_get(out, "op"));
  assert_null(json_object_get(out, "id"));
  json_decref(out);
  /* a tmpfs comes through with its options normalised */
  {
    _cleanup_json_ json_t *t = json_deep_copy(good);
    json_object_set_new(t, "tmpfs", json_pack("[{s:s, s:s}]", "destination", "/scratch", "options",
                                              "size=1m,exec,mode=1777"));
    out = NULL;
    assert_int_equal(ctr_record_sanitize(t, &out, &e), 0);
    assert_string_equal(rec_tmpfs_options(out, 0), "rw,exec,nosuid,nodev,size=1m,mode=1777");
    assert_string_equal(rec_tmpfs_dest(out, 0), "/scratch");
    json_decref(out);
  }
  struct {
    const char *key;
    json_t *val;
    const char *msg;
  } bad[] = {
      {"volumes", json_pack("[{s:s, s:s}]", "name", "ev4/_data/evil", "destination", "/x"), "volume name"},
      {"volumes", json_pack("[{s:s, s:s}]", "name", "..", "destination", "/x"), "volume name"},
      {"volumes", json_pack("[{s:s, s:s}]", "name", "ok", "destination", "/x/../.."), "destination"},
      {"volumes", json_pack("[s]", "ok:/x"), "not an object"},
      {"name", json_string("../x"), "container name"},
      {"image", json_string("sha256:../../x"), "digest"},
      {"ip", json_string("198.18.0.5; rm"), "IPv4"},
      {"mac", json_string("zz:zz"), "MAC"},
      {"args", json_array(), "non-empty"},
      {"args", json_pack("[i]", 3), "plain string"},
      {"env", json_pack("[{}]"), "plain string"},
      {"cwd", json_string("/a/../../b/.."), "cwd"},
      {"uid", json_integer(4294967296LL), "uid"},
      {"gid", json_string("0"), "gid"},
      /* a peer's tmpfs: only the options a user may give */
      {"tmpfs", json_pack("[{s:s, s:s}]", "destination", "/t", "options", "rw,uid=0"), "unknown option"},
      {"tmpfs", json_pack("[{s:s, s:s}]", "destination", "/t", "options", "size=1m;rm"), "not a number"},
      {"tmpfs", json_pack("[{s:s, s:s}]", "destination", "/t/../..", "options", "rw"), "normalised"},
      {"tmpfs", json_pack("[{s:s, s:s}]", "destination", "/t:x", "options", "rw"), "destination"},
      {"tmpfs", json_pack("[{s:s}]", "options", "rw"), "destination"},
      {"tmpfs", json_string("/t"), "array"},
  };
  for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
    _cleanup_json_ json_t *r = json_deep_copy(good);
    json_object_set_new(r, bad[i].key, bad[i].val);
    out = NULL;
    assert_true(ctr_record_sanitize(r, &out, &e) < 0);
    assert_null(out);
    if (!strstr(e.msg, bad[i].msg))
      fail_msg("case %zu (%s): message \"%s\" lacks \"%s\"", i, bad[i].key, e.msg, bad[i].msg);
  }
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

/* Every record is listed, however many (a name or address check that missed
 * some would hand out a name or address twice). */
static void lists_every_record(void **state)
{
  (void)state;
  char dir[] = "/tmp/ferry-test-records-XXXXXX";
  struct runtime rt;
  tmp_runtime(dir, &rt);
  const int n = 5000;
  for (int i = 0; i < n; i++) {
    char id[65];
    snprintf(id, sizeof id, "%064x", i);
    json_t *rec = json_pack("{s:s, s:s, s:s}", "id", id, "name", "c", "created", "2026");
    json_object_set_new(rec, "name", json_sprintf("c%d", i));
    assert_int_equal(ctr_save(&rt, rec, NULL), 0);
    json_decref(rec);
  }
  json_t *all = ctr_load_all(&rt);
  assert_int_equal(json_array_size(all), n);
  json_decref(all);
  json_t *last = NULL;
  struct ferry_err e = {0};
  assert_int_equal(ctr_find(&rt, "c4999", &last, &e), 0);
  json_decref(last);
  rm_rf(dir, NULL);
  runtime_fini(&rt);
}

/* The typed fields of a record: what a restart or a migration decides by. */
static void typed_record_fields(void **state)
{
  (void)state;
  _cleanup_json_ json_t *rec = json_pack("{s:s, s:s, s:s}", "id", "ab12", "state", "running",
                                         "op", "checkpoint");
  assert_string_equal(rec_id(rec), "ab12");
  assert_string_equal(rec_netns(rec), ""); /* absent */
  assert_false(rec_has_netns(rec));
  assert_int_equal(rec_state(rec), CS_RUNNING);
  assert_int_equal(rec_op(rec), OP_CHECKPOINT);
  rec_set_op(rec, OP_NONE);
  assert_int_equal(rec_op(rec), OP_NONE);
  /* an operation another version wrote still owns the container */
  json_object_set_new(rec, "op", json_string("defragment"));
  assert_int_equal(rec_op(rec), OP_OTHER);
  json_object_set_new(rec, "state", json_string("bogus"));
  assert_int_equal(rec_state(rec), CS_CREATED);
  rec_set_state(rec, CS_CHECKPOINTED);
  assert_string_equal(json_string_value(json_object_get(rec, "state")), "checkpointed");

  /* the migration mark a restarted source decides by */
  assert_false(rec_has_migration(rec));
  assert_false(rec_commit_sent(rec));
  rec_set_migration(rec, "0123456789abcdef", "tcp://198.18.0.2:9000");
  rec_set_commit_sent(rec);
  assert_true(rec_commit_sent(rec));
  assert_string_equal(rec_migration_mid(rec), "0123456789abcdef");
  assert_string_equal(rec_migration_to(rec), "tcp://198.18.0.2:9000");
  rec_clear_migration(rec);
  assert_false(rec_commit_sent(rec));

  int code = 0;
  assert_false(rec_exit_code(rec, &code));
  _cleanup_json_ json_t *ex = json_pack("{s:i, s:s}", "exit_code", 3, "finished_at", "2026-01-01T00:00:00Z");
  rec_set_exit(rec, ex);
  assert_true(rec_exit_code(rec, &code));
  assert_int_equal(code, 3);
  rec_clear_exit(rec);
  assert_false(rec_exit_code(rec, &code));
  assert_false(rec_has_finished_at(rec));

  assert_int_equal(rec_n_volumes(rec), 0);
  rec_add_volume(rec, "data", "/var/lib/data");
  rec_add_volume(rec, "logs", "/logs");
  assert_int_equal(rec_n_volumes(rec), 2);
  assert_string_equal(rec_volume_name(rec, 1), "logs");
  assert_string_equal(rec_volume_dest(rec, 0), "/var/lib/data");
  assert_string_equal(rec_volume_name(rec, 7), ""); /* out of range: nothing */

  uint32_t uid = 1, gid = 1;
  assert_false(rec_ids(rec, &uid, &gid));
  rec_set_ids(rec, 4294967294u, 0);
  assert_true(rec_ids(rec, &uid, &gid));
  assert_true(uid == 4294967294u && gid == 0);

  rec_set_status(rec, LIVE_PAUSED, 42);
  assert_int_equal(rec_status(rec), LIVE_PAUSED);
  assert_string_equal(json_string_value(json_object_get(rec, "status")), "paused"); /* the API's word */
  assert_int_equal(json_integer_value(json_object_get(rec, "pid")), 42);
  rec_clear_live(rec);
  assert_int_equal(rec_status(rec), LIVE_UNKNOWN);
  assert_string_equal(rec_status_name(rec), "");
  assert_null(json_object_get(rec, "pid"));
  /* every live state has one name, read back as itself */
  for (int st = LIVE_CREATED; st <= LIVE_MIGRATED; st++) {
    assert_true(*ctr_live_name((enum ctr_live)st));
    assert_int_equal(ctr_live_parse(ctr_live_name((enum ctr_live)st)), st);
  }
  assert_int_equal(ctr_live_parse("stopped"), LIVE_UNKNOWN); /* runc's word, not ours */
  assert_int_equal(ctr_live_parse(NULL), LIVE_UNKNOWN);
}

int main(void)
{
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(resolves_users),
      cmocka_unit_test(builds_the_oci_config),
      cmocka_unit_test(validates_names),
      cmocka_unit_test(refuses_volume_paths_through_symlinks),
      cmocka_unit_test(sanitizes_foreign_records),
      cmocka_unit_test(lists_every_record),
      cmocka_unit_test(typed_record_fields),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
