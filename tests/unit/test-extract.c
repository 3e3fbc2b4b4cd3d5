/* image/extract: archive member names, escapes, limits, whiteouts. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <archive.h>
#include <archive_entry.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/xattr.h>
#include <unistd.h>

#include "ckpt/ckpt.h"
#include "image/extract.h"
#include "util/cleanup.h"
#include "util/fs.h"

struct entry {
  const char *name;
  int type;          /* AE_IFREG, AE_IFDIR, AE_IFLNK */
  const char *link;  /* symlink target, or hardlink target for AE_IFREG */
  const char *data;
};

static char *tmp;

static int setup(void **state)
{
  (void)state;
  tmp = xstrdup("/tmp/ferry-unit-extract-XXXXXX");
  return mkdtemp(tmp) ? 0 : -1;
}

static int teardown(void **state)
{
  (void)state;
  rm_rf(tmp, NULL);
  free(tmp);
  return 0;
}

static char *make_tar(const char *leaf, const struct entry *es, size_t n)
{
  char *path = path_join(tmp, leaf);
  struct archive *a = archive_write_new();
  archive_write_set_format_pax_restricted(a);
  assert_int_equal(archive_write_open_filename(a, path), ARCHIVE_OK);
  for (size_t i = 0; i < n; i++) {
    struct archive_entry *e = archive_entry_new();
    archive_entry_set_pathname(e, es[i].name);
    archive_entry_set_filetype(e, (unsigned)es[i].type);
    archive_entry_set_perm(e, es[i].type == AE_IFDIR ? 0755 : 0644);
    size_t len = es[i].data ? strlen(es[i].data) : 0;
    if (es[i].type == AE_IFLNK)
      archive_entry_set_symlink(e, es[i].link);
    else if (es[i].link)
      archive_entry_set_hardlink(e, es[i].link);
    archive_entry_set_size(e, (la_int64_t)len);
    archive_write_header(a, e);
    if (len)
      archive_write_data(a, es[i].data, len);
    archive_entry_free(e);
  }
  archive_write_close(a);
  archive_write_free(a);
  return path;
}

static char *fresh_dest(const char *leaf)
{
  char *d = path_join(tmp, leaf);
  rm_rf(d, NULL);
  mkdir_p(d, 0755, NULL);
  return d;
}

static void clean_names(void **state)
{
  (void)state;
  struct {
    const char *in, *out;
  } ok[] = {{"./a/b", "a/b"}, {"a//b/", "a/b"}, {"./", ""}, {"/", ""}, {"a/./b", "a/b"},
            {"..a/b..", "..a/b.."}};
  for (size_t i = 0; i < sizeof ok / sizeof ok[0]; i++) {
    char *o = NULL;
    assert_int_equal(extract_clean_name(ok[i].in, &o, NULL), 0);
    assert_string_equal(o, ok[i].out);
    free(o);
  }
  const char *bad[] = {"/etc/passwd", "../x", "a/../../x", "a/..", ""};
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
    char *o = NULL;
    struct ferry_err e = {0};
    assert_true(extract_clean_name(bad[i], &o, &e) < 0);
    assert_int_equal(e.klass, FERRY_E_INVALID);
  }
}

static void extracts_files_links_and_dirs(void **state)
{
  (void)state;
  const struct entry es[] = {{"./", AE_IFDIR, NULL, NULL},
                             {"etc/", AE_IFDIR, NULL, NULL},
                             {"etc/hostname", AE_IFREG, NULL, "box\n"},
                             {"etc/hn2", AE_IFREG, "etc/hostname", NULL},
                             {"bin/sh", AE_IFLNK, "/bin/busybox", NULL}};
  _cleanup_free_ char *t = make_tar("good.tar", es, 5);
  _cleanup_free_ char *d = fresh_dest("good");
  struct ferry_err e = {0};
  assert_int_equal(extract_archive(t, d, EXTRACT_LAYER, NULL, "good.tar", &e), 0);
  _cleanup_free_ char *hn = path_join(d, "etc/hn2");
  _cleanup_free_ char *txt = NULL;
  assert_int_equal(read_file(hn, 100, &txt, NULL, NULL), 0);
  assert_string_equal(txt, "box\n");
  _cleanup_free_ char *sh = path_join(d, "bin/sh");
  char target[64] = {0};
  assert_true(readlink(sh, target, sizeof target - 1) > 0);
  assert_string_equal(target, "/bin/busybox"); /* absolute symlinks are fine: read in the container */
}

static void refuses_escapes(void **state)
{
  (void)state;
  _cleanup_free_ char *outside = path_join(tmp, "outside");
  mkdir_p(outside, 0755, NULL);
  struct {
    struct entry es[2];
    size_t n;
    const char *msg;
  } cases[] = {
      {{{"/abs", AE_IFREG, NULL, "x"}}, 1, "absolute path refused"},
      {{{"a/../../up", AE_IFREG, NULL, "x"}}, 1, "\"..\" in path refused"},
      {{{"l", AE_IFLNK, "PLACEHOLDER", NULL}, {"l/pwned", AE_IFREG, NULL, "x"}}, 2,
       "goes through symlink \"l\": refused"},
      {{{"h", AE_IFREG, "../outside/f", NULL}}, 1, "\"..\" in path refused"},
      {{{"h", AE_IFREG, "/etc/passwd", NULL}}, 1, "absolute path refused"},
      {{{"h", AE_IFREG, "nothere", NULL}}, 1, "not a file extracted earlier"},
  };
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    if (cases[i].es[0].link && strcmp(cases[i].es[0].link, "PLACEHOLDER") == 0)
      cases[i].es[0].link = outside;
    char leaf[32];
    snprintf(leaf, sizeof leaf, "bad%zu.tar", i);
    _cleanup_free_ char *t = make_tar(leaf, cases[i].es, cases[i].n);
    _cleanup_free_ char *d = fresh_dest("bad");
    struct ferry_err e = {0};
    assert_true(extract_archive(t, d, EXTRACT_LAYER, NULL, leaf, &e) < 0);
    if (!strstr(e.msg, cases[i].msg))
      fail_msg("case %zu: \"%s\" does not say \"%s\"", i, e.msg, cases[i].msg);
    assert_non_null(strstr(e.msg, leaf)); /* names the archive */
    assert_true(dir_is_empty(outside));
    _cleanup_free_ char *up = path_join(tmp, "up");
    assert_false(path_exists(up));
  }
}

static void enforces_limits(void **state)
{
  (void)state;
  const struct entry es[] = {{"a", AE_IFREG, NULL, "0123456789"}, {"b", AE_IFREG, NULL, "0123456789"}};
  _cleanup_free_ char *t = make_tar("big.tar", es, 2);
  _cleanup_free_ char *d = fresh_dest("big");
  struct extract_limits lim = {.max_entry_size = 5, .max_total_size = 100, .max_entries = 10};
  struct ferry_err e = {0};
  assert_true(extract_archive(t, d, EXTRACT_LAYER, &lim, "big.tar", &e) < 0);
  assert_non_null(strstr(e.msg, "entry \"a\": 10 bytes is over the limit of 5 bytes"));
  lim.max_entry_size = 10;
  lim.max_total_size = 15;
  assert_true(extract_archive(t, d, EXTRACT_LAYER, &lim, "big.tar", &e) < 0);
  assert_non_null(strstr(e.msg, "more than 15 bytes in all"));
  lim.max_total_size = 100;
  lim.max_entries = 1;
  assert_true(extract_archive(t, d, EXTRACT_LAYER, &lim, "big.tar", &e) < 0);
  assert_non_null(strstr(e.msg, "more than 1 entries"));
}

/* A gzip'd tar of one file of n bytes: zeros, or incompressible bytes. */
static char *make_gz(const char *leaf, size_t n, bool zeros)
{
  char *path = path_join(tmp, leaf);
  struct archive *a = archive_write_new();
  archive_write_set_format_pax_restricted(a);
  archive_write_add_filter_gzip(a);
  assert_int_equal(archive_write_open_filename(a, path), ARCHIVE_OK);
  struct archive_entry *e = archive_entry_new();
  archive_entry_set_pathname(e, "data");
  archive_entry_set_filetype(e, AE_IFREG);
  archive_entry_set_perm(e, 0644);
  archive_entry_set_size(e, (la_int64_t)n);
  archive_write_header(a, e);
  char *buf = calloc(1, n);
  assert_non_null(buf);
  uint64_t x = 88172645463325252ull;
  for (size_t i = 0; !zeros && i + 8 <= n; i += 8) {
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    memcpy(buf + i, &x, 8);
  }
  archive_write_data(a, buf, n);
  free(buf);
  archive_entry_free(e);
  archive_write_close(a);
  archive_write_free(a);
  return path;
}

static void refuses_compression_bombs(void **state)
{
  (void)state;
  struct extract_limits lim = {.max_entry_size = 1ull << 30, .max_total_size = 1ull << 30,
                               .max_entries = 10, .max_ratio = 20, .ratio_floor = 1u << 20};
  struct ferry_err e = {0};
  /* 8 MiB of zeros in a few KiB: refused, nothing left behind */
  _cleanup_free_ char *bomb = make_gz("bomb.tar.gz", 8u << 20, true);
  _cleanup_free_ char *d = fresh_dest("bomb");
  assert_true(extract_archive(bomb, d, EXTRACT_LAYER, &lim, "bomb.tar.gz", &e) < 0);
  assert_non_null(strstr(e.msg, "compression bomb"));
  _cleanup_free_ char *f = path_join(d, "data");
  assert_false(path_exists(f));
  /* without a ratio (ferry's own archives, the default limits) the same bytes unpack */
  struct extract_limits own = lim;
  own.max_ratio = 0;
  assert_int_equal(extract_archive(bomb, d, EXTRACT_UPPER, &own, "upper", &e), 0);
  assert_true(path_exists(f));
  assert_int_equal(extract_default_limits.max_ratio, 0);
  /* incompressible data of the same size passes; small zeros under the floor too */
  _cleanup_free_ char *rnd = make_gz("rnd.tar.gz", 8u << 20, false);
  _cleanup_free_ char *d2 = fresh_dest("rnd");
  assert_int_equal(extract_archive(rnd, d2, EXTRACT_LAYER, &lim, "rnd.tar.gz", &e), 0);
  _cleanup_free_ char *small = make_gz("small.tar.gz", 512u << 10, true);
  _cleanup_free_ char *d3 = fresh_dest("small");
  assert_int_equal(extract_archive(small, d3, EXTRACT_LAYER, &lim, "small.tar.gz", &e), 0);
}

static void refuses_garbage(void **state)
{
  (void)state;
  _cleanup_free_ char *p = path_join(tmp, "garbage");
  char junk[4096];
  for (size_t i = 0; i < sizeof junk; i++)
    junk[i] = (char)(i * 7 + 3);
  write_file_atomic(p, junk, sizeof junk, 0600, NULL);
  _cleanup_free_ char *d = fresh_dest("g");
  struct ferry_err e = {0};
  assert_true(extract_archive(p, d, EXTRACT_LAYER, NULL, "garbage", &e) < 0);
  assert_int_equal(e.klass, FERRY_E_INVALID);
  assert_true(dir_is_empty(d));
}

static bool skipped; /* a test could not run here (it said why) */

static void converts_whiteouts(void **state)
{
  (void)state;
  if (geteuid() != 0) {
    fprintf(stderr, "SKIPPED: whiteout conversion needs root (mknod, trusted.* xattrs)\n");
    skipped = true;
    skip();
  }
  const struct entry es[] = {{"dir/.wh..wh..opq", AE_IFREG, NULL, NULL},
                             {"dir/", AE_IFDIR, NULL, NULL},
                             {".wh.gone", AE_IFREG, NULL, NULL}};
  _cleanup_free_ char *t = make_tar("wh.tar", es, 3);
  _cleanup_free_ char *d = fresh_dest("wh");
  struct ferry_err e = {0};
  assert_int_equal(extract_archive(t, d, EXTRACT_LAYER, NULL, "wh.tar", &e), 0);
  _cleanup_free_ char *gone = path_join(d, "gone");
  struct stat st;
  assert_int_equal(lstat(gone, &st), 0);
  assert_true(S_ISCHR(st.st_mode));
  assert_int_equal(st.st_rdev, 0);
  _cleanup_free_ char *dir = path_join(d, "dir");
  char v[4] = {0};
  assert_int_equal(getxattr(dir, "trusted.overlay.opaque", v, sizeof v), 1);
  assert_int_equal(v[0], 'y');
  _cleanup_free_ char *marker = path_join(d, ".wh.gone");
  assert_false(path_exists(marker));
}


/* CRIU's images: flat_dir_to_tar and extract_flat carry files, modes and
 * contents; a link in the directory is not sent. */
static void flat_round_trip(void **state)
{
  (void)state;
  _cleanup_free_ char *src = fresh_dest("images");
  _cleanup_free_ char *a = path_join(src, "core-1.img");
  _cleanup_free_ char *b = path_join(src, "pages-1.img");
  _cleanup_free_ char *l = path_join(src, "parent");
  assert_int_equal(write_file_atomic(a, "core", 4, 0644, NULL), 0);
  char *big = malloc(200000);
  assert_non_null(big);
  for (size_t i = 0; i < 200000; i++)
    big[i] = (char)(i * 7 + i / 4096);
  assert_int_equal(write_file_atomic(b, big, 200000, 0600, NULL), 0);
  assert_int_equal(symlink("/etc", l), 0);
  _cleanup_free_ char *t = path_join(tmp, "images.tar");
  uint64_t bytes = 0;
  struct ferry_err e = {0};
  assert_int_equal(flat_dir_to_tar(src, t, true, &bytes, &e), 0);
  assert_true(bytes > 0 && bytes < 200000); /* compressed */
  _cleanup_free_ char *d = fresh_dest("images-out");
  assert_int_equal(extract_flat(t, d, NULL, "images", &e), 0);
  _cleanup_free_ char *a2 = path_join(d, "core-1.img");
  _cleanup_free_ char *b2 = path_join(d, "pages-1.img");
  _cleanup_free_ char *l2 = path_join(d, "parent");
  _cleanup_free_ char *txt = NULL;
  size_t n = 0;
  assert_int_equal(read_file(a2, 100, &txt, &n, NULL), 0);
  assert_int_equal(n, 4);
  assert_memory_equal(txt, "core", 4);
  _cleanup_free_ char *bt = NULL;
  assert_int_equal(read_file(b2, 1 << 20, &bt, &n, NULL), 0);
  assert_int_equal(n, 200000);
  assert_memory_equal(bt, big, 200000);
  free(big);
  struct stat st;
  assert_int_equal(stat(a2, &st), 0);
  assert_int_equal(st.st_mode & 0777, 0644);
  assert_int_equal(stat(b2, &st), 0);
  assert_int_equal(st.st_mode & 0777, 0600);
  assert_false(path_exists(l2));
}

/* Anything but files named by one component is refused, nothing is
 * written outside, and a link already in dest is replaced, not followed. */
static void flat_refuses_all_but_files(void **state)
{
  (void)state;
  _cleanup_free_ char *outside = path_join(tmp, "outside");
  mkdir_p(outside, 0755, NULL);
  struct {
    struct entry es[1];
    const char *msg;
  } cases[] = {
      {{{"sub/", AE_IFDIR, NULL, NULL}}, "only files"},
      {{{"a/b", AE_IFREG, NULL, "x"}}, "only files"},
      {{{"l", AE_IFLNK, "/etc", NULL}}, "only files"},
      {{{"h", AE_IFREG, "core", NULL}}, "only files"},
      {{{"../x", AE_IFREG, NULL, "x"}}, "\"..\" in path refused"},
      {{{"/abs", AE_IFREG, NULL, "x"}}, "absolute path refused"},
  };
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    char leaf[32];
    snprintf(leaf, sizeof leaf, "flat%zu.tar", i);
    _cleanup_free_ char *t = make_tar(leaf, cases[i].es, 1);
    _cleanup_free_ char *d = fresh_dest("flat");
    struct ferry_err e = {0};
    assert_true(extract_flat(t, d, NULL, leaf, &e) < 0);
    assert_int_equal(e.klass, FERRY_E_INVALID);
    if (!strstr(e.msg, cases[i].msg))
      fail_msg("case %zu: \"%s\" does not say \"%s\"", i, e.msg, cases[i].msg);
    assert_true(dir_is_empty(outside));
    assert_true(dir_is_empty(d));
  }
  /* a name that is a link in dest: replaced by the file */
  _cleanup_free_ char *d = fresh_dest("flat-link");
  _cleanup_free_ char *victim = path_join(outside, "f");
  _cleanup_free_ char *link = path_join(d, "core-1.img");
  assert_int_equal(symlink(victim, link), 0);
  const struct entry es[] = {{"core-1.img", AE_IFREG, NULL, "restored"}};
  _cleanup_free_ char *t = make_tar("flat-link.tar", es, 1);
  struct ferry_err e = {0};
  assert_int_equal(extract_flat(t, d, NULL, "flat-link.tar", &e), 0);
  assert_false(path_exists(victim));
  struct stat st;
  assert_int_equal(lstat(link, &st), 0);
  assert_true(S_ISREG(st.st_mode));
  /* over the limit of one file */
  const struct entry bigs[] = {{"a", AE_IFREG, NULL, "0123456789"}};
  _cleanup_free_ char *tb = make_tar("flat-big.tar", bigs, 1);
  struct extract_limits lim = {.max_entry_size = 5, .max_total_size = 100, .max_entries = 10};
  _cleanup_free_ char *d2 = fresh_dest("flat-big");
  assert_true(extract_flat(tb, d2, &lim, "flat-big.tar", &e) < 0);
  assert_non_null(strstr(e.msg, "over the limit of 5 bytes"));
}

int main(void)
{
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(clean_names),
      cmocka_unit_test_setup_teardown(extracts_files_links_and_dirs, setup, teardown),
      cmocka_unit_test_setup_teardown(refuses_escapes, setup, teardown),
      cmocka_unit_test_setup_teardown(enforces_limits, setup, teardown),
      cmocka_unit_test_setup_teardown(refuses_compression_bombs, setup, teardown),
      cmocka_unit_test_setup_teardown(refuses_garbage, setup, teardown),
      cmocka_unit_test_setup_teardown(converts_whiteouts, setup, teardown),
      cmocka_unit_test_setup_teardown(flat_round_trip, setup, teardown),
      cmocka_unit_test_setup_teardown(flat_refuses_all_but_files, setup, teardown),
  };
  int failed = cmocka_run_group_tests(tests, NULL, NULL);
  /* a skip is not a pass: meson counts exit 77 as skipped */
  return failed ? failed : skipped ? 77 : 0;
}
