/* image/store + import: records, names, lookups, removal, failed imports. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <archive.h>
#include <archive_entry.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "image/store.h"
#include "util/cleanup.h"
#include "util/fs.h"
#include "util/json.h"

static char *tmp;
static struct image_store st;

static int setup(void **state)
{
  (void)state;
  tmp = xstrdup("/tmp/ferry-unit-store-XXXXXX");
  if (!mkdtemp(tmp))
    return -1;
  _cleanup_free_ char *root = path_join(tmp, "root");
  return image_store_open(&st, root, NULL);
}

static int teardown(void **state)
{
  (void)state;
  image_store_close(&st);
  rm_rf(tmp, NULL);
  free(tmp);
  return 0;
}

static char *rootfs_tar(const char *leaf, const char *content)
{
  char *path = path_join(tmp, leaf);
  struct archive *a = archive_write_new();
  archive_write_set_format_pax_restricted(a);
  archive_write_open_filename(a, path);
  struct archive_entry *e = archive_entry_new();
  archive_entry_set_pathname(e, "hello.txt");
  archive_entry_set_filetype(e, AE_IFREG);
  archive_entry_set_perm(e, 0644);
  archive_entry_set_size(e, (la_int64_t)strlen(content));
  archive_write_header(a, e);
  archive_write_data(a, content, strlen(content));
  archive_entry_free(e);
  archive_write_close(a);
  archive_write_free(a);
  return path;
}

static size_t count_entries(const char *dir)
{
  _cleanup_free_ char *d = path_join(st.root, dir);
  _cleanup_free_ char *cmd = xasprintf("ls -A %s | wc -l", d);
  FILE *p = popen(cmd, "r");
  size_t n = 0;
  if (p) {
    if (fscanf(p, "%zu", &n) != 1)
      n = 0;
    pclose(p);
  }
  return n;
}

static void names(void **state)
{
  (void)state;
  char *o = NULL;
  assert_int_equal(image_normalize_name("busybox", &o, NULL), 0);
  assert_string_equal(o, "busybox:latest");
  free(o);
  assert_int_equal(image_normalize_name("localhost:5000/a/b", &o, NULL), 0);
  assert_string_equal(o, "localhost:5000/a/b:latest");
  free(o);
  assert_int_equal(image_normalize_name("a/b:v1.2", &o, NULL), 0);
  assert_string_equal(o, "a/b:v1.2");
  free(o);
  struct ferry_err e = {0};
  assert_true(image_normalize_name("Bad Name", &o, &e) < 0);
  assert_non_null(strstr(e.msg, "not allowed"));
  assert_true(image_normalize_name("", &o, &e) < 0);
  assert_true(image_normalize_name("x:", &o, &e) < 0);
  /* path components as the distribution spec has them */
  static const char *bad[] = {"../../x", "a/../b", "./a", "a//b", "-a", "a/.b:v1", "a:.v1", "a_/b"};
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
    o = NULL;
    assert_true(image_normalize_name(bad[i], &o, &e) < 0);
    assert_null(o);
  }
  assert_int_equal(image_normalize_name("my-reg.example:5000/team_a/app-1:v_2.0", &o, NULL), 0);
  free(o);
}

static void import_lookup_and_remove(void **state)
{
  (void)state;
  _cleanup_free_ char *t = rootfs_tar("My-Rootfs.tar", "hello\n");
  struct ferry_err e = {0};
  _cleanup_json_ json_t *img = NULL;
  assert_int_equal(image_import(&st, t, NULL, "My-Rootfs.tar", &img, &e), 0);
  assert_string_equal(json_string_value(json_array_get(json_object_get(img, "names"), 0)),
                      "my-rootfs:latest");
  const char *id = json_str_or(img, "id", "");
  assert_true(strncmp(id, "sha256:", 7) == 0);
  _cleanup_free_ char *ld = image_layer_dir(&st, id);
  _cleanup_free_ char *f = path_join(ld, "hello.txt");
  assert_true(path_exists(f));

  /* lookups: name, short name, id, id prefix */
  json_t *l = NULL;
  assert_int_equal(image_lookup(&st, "my-rootfs", &l, &e), 0);
  json_decref(l);
  char prefix[13];
  memcpy(prefix, id + 7, 12);
  prefix[12] = '\0';
  assert_int_equal(image_lookup(&st, prefix, &l, &e), 0);
  json_decref(l);
  assert_true(image_lookup(&st, "other", &l, &e) < 0);
  assert_int_equal(e.klass, FERRY_E_NOTFOUND);

  /* same content under a second name: one image, two names, one layer */
  _cleanup_json_ json_t *img2 = NULL;
  assert_int_equal(image_import(&st, t, "second:v2", NULL, &img2, &e), 0);
  assert_string_equal(json_str_or(img2, "id", ""), id);
  assert_int_equal(json_array_size(json_object_get(img2, "names")), 2);
  assert_int_equal(count_entries("layers"), 1);

  /* a name moves to the image imported last */
  _cleanup_free_ char *t2 = rootfs_tar("b.tar", "other\n");
  _cleanup_json_ json_t *img3 = NULL;
  assert_int_equal(image_import(&st, t2, "second:v2", NULL, &img3, &e), 0);
  assert_int_equal(image_lookup(&st, "second:v2", &l, &e), 0);
  assert_string_equal(json_str_or(l, "id", ""), json_str_or(img3, "id", ""));
  json_decref(l);

  /* rm by the only name removes image and layer: the layer leaves the
   * store at once (into the trash), and is deleted when the trash is emptied */
  char **trash = NULL;
  assert_int_equal(image_remove(&st, "second:v2", &trash, &e), 0);
  assert_int_equal(count_entries("layers"), 1);
  assert_non_null(trash);
  assert_int_equal(count_entries("tmp"), 1);
  image_trash_empty(trash);
  assert_int_equal(count_entries("tmp"), 0);
  trash = NULL;
  assert_int_equal(image_remove(&st, "my-rootfs", &trash, &e), 0);
  image_trash_empty(trash);
  assert_int_equal(count_entries("layers"), 0);
  assert_int_equal(count_entries("images"), 0);
  assert_int_equal(count_entries("tmp"), 0);
}

static void failed_import_leaves_nothing(void **state)
{
  (void)state;
  _cleanup_free_ char *bad = path_join(tmp, "bad.tar");
  write_file_atomic(bad, "this is not an archive at all, not even close......", 50, 0600, NULL);
  struct ferry_err e = {0};
  json_t *img = NULL;
  assert_true(image_import(&st, bad, "x", NULL, &img, &e) < 0);
  assert_int_equal(e.klass, FERRY_E_INVALID);
  assert_int_equal(count_entries("layers"), 0);
  assert_int_equal(count_entries("images"), 0);
  assert_int_equal(count_entries("tmp"), 0);
  _cleanup_free_ char *t = rootfs_tar("c.tar", "x");
  assert_true(image_import(&st, t, "Bad Name", NULL, &img, &e) < 0);
  assert_int_equal(count_entries("images"), 0);
}

/* A layer something counts on (an import reusing it, a migration told it
 * is here) outlives the removal of the last image that referred to it. */
static void pinned_layer_outlives_removal(void **state)
{
  (void)state;
  _cleanup_free_ char *t = rootfs_tar("p.tar", "pinned\n");
  struct ferry_err e = {0};
  _cleanup_json_ json_t *img = NULL;
  assert_int_equal(image_import(&st, t, "p:1", NULL, &img, &e), 0);
  json_t *layers = json_object_get(img, "layers");
  assert_int_equal(json_array_size(layers), 1);
  const char *dg = json_string_value(json_array_get(layers, 0));
  image_layer_pin(&st, dg);
  image_layer_pin(&st, dg); /* counted: two holders */
  char **trash = NULL;
  assert_int_equal(image_remove(&st, "p:1", &trash, &e), 0);
  assert_null(trash);
  assert_int_equal(count_entries("images"), 0);
  assert_int_equal(count_entries("layers"), 1);
  image_layer_unpin(&st, dg);
  image_layers_drop_unused(&st, layers, &trash);
  assert_null(trash);
  assert_int_equal(count_entries("layers"), 1); /* one holder left */
  image_layer_unpin(&st, dg);
  image_layer_unpin(&st, dg); /* unbalanced: nothing happens */
  image_layers_drop_unused(&st, layers, &trash);
  image_trash_empty(trash);
  assert_int_equal(count_entries("layers"), 0);
  assert_int_equal(count_entries("tmp"), 0);
}

int main(void)
{
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(names),
      cmocka_unit_test_setup_teardown(import_lookup_and_remove, setup, teardown),
      cmocka_unit_test_setup_teardown(failed_import_leaves_nothing, setup, teardown),
      cmocka_unit_test_setup_teardown(pinned_layer_outlives_removal, setup, teardown),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
