/* ckpt/stats: CRIU's stats-dump image decoded. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "ckpt/ckpt.h"
#include "criu-stats.pb-c.h"
#include "util/cleanup.h"
#include "util/fs.h"

static char *write_image(const char *dir, int magics, uint32_t frozen, uint64_t pages, size_t cut)
{
  FerryCriuDumpStats d = FERRY_CRIU_DUMP_STATS__INIT;
  d.has_frozen_time = 1;
  d.frozen_time = frozen;
  d.has_pages_written = 1;
  d.pages_written = pages;
  d.has_freezing_time = 1;
  d.freezing_time = 1234;
  FerryCriuStats s = FERRY_CRIU_STATS__INIT;
  s.dump = &d;
  size_t n = ferry_criu_stats__get_packed_size(&s);
  uint8_t buf[512];
  size_t off = 0;
  uint32_t m1 = 0x55105940u, m2 = 0x57093306u, len = (uint32_t)n;
  if (magics >= 1) {
    memcpy(buf + off, &m1, 4);
    off += 4;
  }
  if (magics >= 2) {
    memcpy(buf + off, &m2, 4);
    off += 4;
  }
  memcpy(buf + off, &len, 4);
  off += 4;
  ferry_criu_stats__pack(&s, buf + off);
  off += n;
  char *p = path_join(dir, "stats-dump");
  write_file_atomic(p, buf, off - cut, 0600, NULL);
  return p;
}

static void decodes_dump_stats(void **state)
{
  (void)state;
  char dir[] = "/tmp/ferry-unit-stats-XXXXXX";
  assert_non_null(mkdtemp(dir));
  _cleanup_free_ char *p = write_image(dir, 2, 75000, 36, 0);
  json_t *j = NULL;
  struct ferry_err e = {0};
  assert_int_equal(criu_stats_read(p, &j, &e), 0);
  assert_int_equal(json_integer_value(json_object_get(j, "frozen_time_us")), 75000);
  assert_int_equal(json_integer_value(json_object_get(j, "pages_written")), 36);
  assert_int_equal(json_integer_value(json_object_get(j, "freezing_time_us")), 1234);
  json_decref(j);
  _cleanup_free_ char *p2 = write_image(dir, 2, 1, 2, 3);
  assert_true(criu_stats_read(p2, &j, &e) < 0);
  assert_non_null(strstr(e.msg, "stats-dump"));
  _cleanup_free_ char *none = path_join(dir, "nothing");
  assert_int_equal(criu_stats_read(none, &j, &e), -ENOENT);
  rm_rf(dir, NULL);
}

static void picks_error_lines_from_criu_log(void **state)
{
  (void)state;
  char dir[] = "/tmp/ferry-unit-stats-XXXXXX";
  assert_non_null(mkdtemp(dir));
  _cleanup_free_ char *p = path_join(dir, "dump.log");
  const char *log = "(00.001) Version: 4.2\n"
                    "(00.002) Error (criu/rlimit.c:1): rlimit: Can't setup RLIMIT_NOFILE for self\n"
                    "(00.100) Error (criu/sk-inet.c:2): inet: Can't dump socket\n"
                    "(00.200) Dumping finished\n";
  write_file_atomic(p, log, strlen(log), 0600, NULL);
  _cleanup_free_ char *errs = criu_log_errors(p, 500);
  assert_string_equal(errs, "(00.100) Error (criu/sk-inet.c:2): inet: Can't dump socket");
  rm_rf(dir, NULL);
}

int main(void)
{
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(decodes_dump_stats),
      cmocka_unit_test(picks_error_lines_from_criu_log),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
