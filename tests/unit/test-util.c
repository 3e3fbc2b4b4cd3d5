/* util: errors, spawning, JSON getters, atomic files, digests. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include "util/cleanup.h"
#include "util/digest.h"
#include "util/fs.h"
#include "util/json.h"
#include "util/config.h"
#include "util/relay.h"
#include "util/spawn.h"

static void err_wrap_names_context(void **state)
{
  (void)state;
  struct ferry_err e = {0};
  int r = FERRY_NOTFOUND(&e, "layer %d missing", 3);
  assert_int_equal(r, -ENOENT);
  ferry_err_wrap(&e, "image %s", "busybox");
  assert_string_equal(e.msg, "image busybox: layer 3 missing");
  assert_int_equal(e.klass, FERRY_E_NOTFOUND);
  /* a very long context does not overflow */
  char big[3000];
  memset(big, 'a', sizeof big - 1);
  big[sizeof big - 1] = '\0';
  ferry_err_wrap(&e, "%s", big);
  assert_true(strlen(e.msg) < FERRY_ERR_MSG);
}

static void spawn_captures_output_and_status(void **state)
{
  (void)state;
  struct spawn_result r = {0};
  struct ferry_err e = {0};
  const char *argv[] = {"sh", "-c", "echo out; echo err >&2; exit 4", NULL};
  assert_int_equal(spawn_run(argv, NULL, &r, &e), 0);
  assert_int_equal(r.exit_code, 4);
  assert_string_equal(r.out, "out\n");
  assert_string_equal(r.errout, "err\n");
  spawn_result_free(&r);
  /* spawn_check puts the program's stderr into the error */
  assert_true(spawn_check(argv, NULL, &e) < 0);
  assert_non_null(strstr(e.msg, "exit status 4"));
  assert_non_null(strstr(e.msg, "err"));
}

static void spawn_times_out_and_reports_missing_program(void **state)
{
  (void)state;
  struct spawn_result r = {0};
  struct ferry_err e = {0};
  const char *slow[] = {"sleep", "5", NULL};
  struct spawn_opts o = {.timeout_ms = 200};
  uint64_t t0 = now_mono_ms();
  assert_int_equal(spawn_run(slow, &o, &r, &e), -ETIMEDOUT);
  assert_true(now_mono_ms() - t0 < 2000);
  assert_non_null(strstr(e.msg, "timed out"));
  const char *none[] = {"/nonexistent/program", NULL};
  assert_true(spawn_run(none, NULL, &r, &e) < 0);
  assert_non_null(strstr(e.msg, "/nonexistent/program"));
}

static void tail_lines_keeps_the_end(void **state)
{
  (void)state;
  _cleanup_free_ char *t = tail_lines("one\ntwo\nthree\n", 100);
  assert_string_equal(t, "one; two; three");
  _cleanup_free_ char *t2 = tail_lines("aaaa\nbbbb\ncccc\n", 6);
  assert_string_equal(t2, "cccc");
}

static void json_getters_name_the_field(void **state)
{
  (void)state;
  struct ferry_err e = {0};
  json_t *j = NULL;
  assert_true(json_parse("{\"a\": 1", 7, "body", &j, &e) < 0);
  assert_non_null(strstr(e.msg, "body: malformed JSON"));
  assert_int_equal(e.klass, FERRY_E_INVALID);
  assert_true(json_parse("{\"a\":1,\"a\":2}", 13, "body", &j, &e) < 0);
  assert_int_equal(json_parse("{\"s\": 5, \"v\": [\"x\", 2], \"b\": \"yes\"}", 35, "b", &j, &e), 0);
  const char *s;
  assert_true(json_get_str(j, "s", false, &s, &e) < 0);
  assert_string_equal(e.msg, "field \"s\" must be a string");
  assert_true(json_get_str(j, "missing", true, &s, &e) < 0);
  assert_string_equal(e.msg, "field \"missing\" is required");
  char **v = NULL;
  assert_true(json_get_strv(j, "v", &v, &e) < 0);
  assert_string_equal(e.msg, "field \"v\"[1] must be a string");
  bool b;
  assert_true(json_get_bool(j, "b", false, &b, &e) < 0);
  json_decref(j);
}

static void atomic_write_and_digest(void **state)
{
  (void)state;
  char dir[] = "/tmp/ferry-unit-XXXXXX";
  assert_non_null(mkdtemp(dir));
  _cleanup_free_ char *p = path_join(dir, "f");
  struct ferry_err e = {0};
  assert_int_equal(write_file_atomic(p, "abc", 3, 0600, &e), 0);
  char dg[DIGEST_STR_LEN + 1];
  uint64_t size = 0;
  assert_int_equal(sha256_file(p, dg, &size, &e), 0);
  assert_string_equal(dg, "sha256:ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
  assert_int_equal(size, 3);
  assert_true(digest_valid(dg));
  assert_false(digest_valid("sha256:ABC"));
  assert_false(digest_valid("md5:ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"));
  char *buf = NULL;
  assert_true(read_file(p, 2, &buf, NULL, &e) < 0); /* over the size limit */
  assert_int_equal(rm_rf(dir, &e), 0);
  assert_false(path_exists(dir));
}

/* A compressed relay into relay_unzstd_exec: the program at the other end
 * (a shell: one request answered, then it counts the rest, as CRIU's page
 * server answers small replies to a large stream) gets the plain bytes,
 * request by request, and its answers come back plain; the wire carried
 * fewer bytes than went in. */
static void relay_zstd_round_trip(void **state)
{
  (void)state;
  int a[2], n[2];
  assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, a), 0); /* a[0]: the writer */
  assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, n), 0); /* n: the "network" */
  pid_t far = fork();
  if (far == 0) {
    close(a[0]);
    close(a[1]);
    close(n[0]);
    char fd[16], script[160];
    snprintf(fd, sizeof fd, "%d", n[1]);
    /* a request/reply step first (one line, answered), then a count of the rest */
    snprintf(script, sizeof script, "read -r l <&%s; echo \"got $l\" >&%s; wc -c <&%s >&%s", fd, fd,
             fd, fd);
    char *argv[] = {"sh", "-c", script, NULL};
    _exit(relay_unzstd_exec(n[1], argv));
  }
  close(n[1]);
  struct relay *r = NULL;
  assert_int_equal(relay_start_z(a[1], n[0], 1, &r), 0);
  assert_int_equal(write(a[0], "hello\n", 6), 6);
  char ans[16] = {0};
  size_t got = 0;
  while (got < 10) {
    ssize_t k = read(a[0], ans + got, 10 - got);
    assert_true(k > 0);
    got += (size_t)k;
  }
  assert_memory_equal(ans, "got hello\n", 10);
  size_t big = 2u << 20;
  char *out = calloc(1, big), *in = malloc(big);
  for (size_t i = 0; i < big; i += 4096)
    out[i] = (char)i; /* compresses well */
  pid_t w = fork();
  if (w == 0) {
    size_t off = 0;
    while (off < big) {
      ssize_t k = write(a[0], out + off, big - off);
      if (k <= 0)
        _exit(1);
      off += (size_t)k;
    }
    shutdown(a[0], SHUT_WR);
    _exit(0);
  }
  got = 0;
  for (;;) {
    ssize_t k = read(a[0], in + got, big - got);
    assert_true(k >= 0);
    if (k == 0)
      break;
    got += (size_t)k;
  }
  in[got] = 0;
  assert_int_equal(strtoul(in, NULL, 10), big); /* every byte arrived, uncompressed */
  uint64_t moved = 0, wire = 0;
  assert_int_equal(relay_finish_z(r, 5000, &moved, &wire), 0);
  assert_int_equal(moved, big + 6);
  assert_true(wire > 0 && wire < moved / 10);
  int st;
  waitpid(w, &st, 0);
  assert_true(WIFEXITED(st) && WEXITSTATUS(st) == 0);
  waitpid(far, &st, 0);
  assert_true(WIFEXITED(st) && WEXITSTATUS(st) == 0);
  close(a[0]);
  free(out);
  free(in);
}

/* The relay carries bytes both ways, passes each side's end on, and a relay
 * whose sides never finish is stopped at its deadline. */
static void relay_moves_bytes_both_ways(void **state)
{
  (void)state;
  int a[2], b[2];
  assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, a), 0);
  assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, b), 0);
  struct relay *r = NULL;
  assert_int_equal(relay_start(a[1], b[1], &r), 0); /* a[0] <-> relay <-> b[0] */
  size_t big = 3u << 20;
  char *out = malloc(big), *in = malloc(big);
  for (size_t i = 0; i < big; i++)
    out[i] = (char)(i * 7 + i / 4096);
  /* 3 MiB from a to b (more than a socket buffer: the relay must keep up) */
  pid_t w = fork();
  if (w == 0) {
    size_t off = 0;
    while (off < big) {
      ssize_t n = write(a[0], out + off, big - off);
      if (n <= 0)
        _exit(1);
      off += (size_t)n;
    }
    shutdown(a[0], SHUT_WR);
    _exit(0);
  }
  size_t got = 0;
  for (;;) {
    ssize_t n = read(b[0], in + got, big - got);
    assert_true(n >= 0);
    if (n == 0)
      break; /* a's end of sending reached b */
    got += (size_t)n;
  }
  assert_int_equal(got, big);
  assert_memory_equal(in, out, big);
  /* and an answer back */
  assert_int_equal(write(b[0], "ok", 2), 2);
  char ans[3] = {0};
  assert_int_equal(read(a[0], ans, 2), 2);
  assert_string_equal(ans, "ok");
  shutdown(b[0], SHUT_WR);
  uint64_t moved = 0;
  assert_int_equal(relay_finish(r, 5000, &moved), 0);
  assert_int_equal(moved, big);
  int st;
  waitpid(w, &st, 0);
  assert_true(WIFEXITED(st) && WEXITSTATUS(st) == 0);
  close(a[0]);
  close(b[0]);

  /* sides that never end: stopped at the deadline, reported as such */
  assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, a), 0);
  assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, b), 0);
  assert_int_equal(relay_start(a[1], b[1], &r), 0);
  assert_int_equal(relay_finish(r, 50, NULL), -ETIMEDOUT);
  close(a[0]);
  close(b[0]);
  free(out);
  free(in);
}

/* A configuration file's options go before the command line's; bad lines
 * name the file and the line. */
static void config_file_before_flags(void **state)
{
  (void)state;
  static const struct option lo[] = {{"listen", required_argument, 0, 'l'},
                                     {"debug", no_argument, 0, 'd'},
                                     {"insecure-no-token", no_argument, 0, 'I'},
                                     {"config", required_argument, 0, 'F'},
                                     {0, 0, 0, 0}};
  char dir[] = "/tmp/ferry-test-conf-XXXXXX";
  assert_non_null(mkdtemp(dir));
  char *p = path_join(dir, "d.conf");
  const char good[] = "# the agent\nlisten = 10.0.0.1:9000  # TCP\n\ndebug\ninsecure-no-token = false\n";
  assert_int_equal(write_file_atomic(p, good, sizeof good - 1, 0600, NULL), 0);
  char *argv[] = {"ferryd", "--config", p, "--listen", "10.0.0.2:9000", NULL};
  const char *found = NULL;
  struct ferry_err e = {0};
  assert_int_equal(config_find(5, argv, "/nonexistent/ferryd.conf", &found, &e), 0);
  assert_string_equal(found, p);
  int n = 0;
  char **v = NULL;
  assert_int_equal(config_argv(found, lo, 5, argv, &n, &v, &e), 0);
  assert_int_equal(n, 7);
  assert_string_equal(v[1], "--listen=10.0.0.1:9000");
  assert_string_equal(v[2], "--debug"); /* insecure-no-token = false: left out */
  assert_string_equal(v[3], "--config");
  assert_string_equal(v[5], "--listen"); /* the flag comes later: it wins */
  assert_null(v[7]);
  for (int i = 0; v[i]; i++)
    free(v[i]);
  free(v);
  static const char *bad[][2] = {{"lisen = x\n", "unknown option \"lisen\""},
                                 {"listen\n", "needs a value"},
                                 {"debug = 3\n", "takes no value"}};
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
    assert_int_equal(write_file_atomic(p, bad[i][0], strlen(bad[i][0]), 0600, NULL), 0);
    v = NULL;
    assert_true(config_argv(p, lo, 1, argv, &n, &v, &e) < 0);
    assert_non_null(strstr(e.msg, ":1: "));
    assert_non_null(strstr(e.msg, bad[i][1]));
  }
  /* "#" inside a value is part of it; a comment follows a space */
  const char hashv[] = "listen = 10.0.0.1:9000#x # a comment\n";
  assert_int_equal(write_file_atomic(p, hashv, sizeof hashv - 1, 0600, NULL), 0);
  v = NULL;
  assert_int_equal(config_argv(p, lo, 1, argv, &n, &v, &e), 0);
  assert_string_equal(v[1], "--listen=10.0.0.1:9000#x");
  for (int i = 0; v[i]; i++)
    free(v[i]);
  free(v);
  /* a NUL byte does not silently end the file: refused, its line named */
  const char nul[] = "debug\nlisten = 1.2.3.4:1\0\nlisten = 5.6.7.8:1\n";
  assert_int_equal(write_file_atomic(p, nul, sizeof nul - 1, 0600, NULL), 0);
  v = NULL;
  assert_true(config_argv(p, lo, 1, argv, &n, &v, &e) < 0);
  assert_non_null(strstr(e.msg, ":2: a NUL byte"));
  /* a FIFO is refused at once, not waited for */
  char *fifo = path_join(dir, "fifo.conf");
  assert_int_equal(mkfifo(fifo, 0600), 0);
  v = NULL;
  assert_true(config_argv(fifo, lo, 1, argv, &n, &v, &e) < 0);
  assert_non_null(strstr(e.msg, "not a regular file"));
  free(fifo);
  char *missing[] = {"ferryd", "--config=/nonexistent/x.conf", NULL};
  assert_true(config_find(2, missing, NULL, &found, &e) < 0);
  char *none[] = {"ferryd", NULL};
  assert_int_equal(config_find(1, none, "/nonexistent/ferryd.conf", &found, &e), 0);
  assert_null(found);
  rm_rf(dir, NULL);
  free(p);
}

/* Sizes as people write them: 10G is ten gibibytes, not ten bytes. */
static void sizes_with_suffixes(void **state)
{
  (void)state;
  uint64_t v = 0;
  assert_int_equal(parse_size("10G", &v), 0);
  assert_true(v == (10ull << 30));
  assert_int_equal(parse_size("512MiB", &v), 0);
  assert_true(v == (512ull << 20));
  assert_int_equal(parse_size("64k", &v), 0);
  assert_true(v == 65536);
  assert_int_equal(parse_size("1000", &v), 0);
  assert_true(v == 1000);
  static const char *bad[] = {"", "G", "10X", "1.5G", "-1", "+5", "10 G", "10GB2", "99999999999T"};
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
    assert_true(parse_size(bad[i], &v) < 0);
}

int main(void)
{
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(err_wrap_names_context),
      cmocka_unit_test(spawn_captures_output_and_status),
      cmocka_unit_test(spawn_times_out_and_reports_missing_program),
      cmocka_unit_test(tail_lines_keeps_the_end),
      cmocka_unit_test(json_getters_name_the_field),
      cmocka_unit_test(atomic_write_and_digest),
      cmocka_unit_test(relay_moves_bytes_both_ways),
      cmocka_unit_test(relay_zstd_round_trip),
      cmocka_unit_test(config_file_before_flags),
      cmocka_unit_test(sizes_with_suffixes),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
