/* Writes hostile or broken tar archives for the image import tests.
 * Usage: mkhostile KIND OUT [ARG]
 *   abs PATH        an entry with the absolute name PATH
 *   dotdot          an entry "a/../../escaped"
 *   symlink TARGET  "link" -> TARGET (a directory outside), then "link/pwned"
 *   hardlink TARGET a hard link "hl" to TARGET (outside or absolute)
 *   big BYTES       one regular file of BYTES bytes
 *   truncated       a valid header announcing 1 MiB, then the archive ends
 * Every archive also has an innocent first entry "ok.txt". */
#include <archive.h>
#include <archive_entry.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static void add(struct archive *a, const char *name, int type, const char *link, int64_t size)
{
  struct archive_entry *e = archive_entry_new();
  archive_entry_set_pathname(e, name);
  archive_entry_set_filetype(e, (unsigned)type);
  archive_entry_set_perm(e, type == AE_IFDIR ? 0755 : 0644);
  if (type == AE_IFLNK)
    archive_entry_set_symlink(e, link);
  if (link && type == AE_IFREG)
    archive_entry_set_hardlink(e, link);
  archive_entry_set_size(e, link ? 0 : size);
  archive_write_header(a, e);
  static char buf[65536];
  memset(buf, 'x', sizeof buf);
  for (int64_t left = link ? 0 : size; left > 0;) {
    size_t n = left > (int64_t)sizeof buf ? sizeof buf : (size_t)left;
    archive_write_data(a, buf, n);
    left -= (int64_t)n;
  }
  archive_entry_free(e);
}

int main(int argc, char **argv)
{
  if (argc < 3) {
    fprintf(stderr, "usage: mkhostile KIND OUT [ARG]\n");
    return 2;
  }
  const char *kind = argv[1], *out = argv[2], *arg = argc > 3 ? argv[3] : "";
  if (strcmp(kind, "truncated") == 0) {
    struct archive *a = archive_write_new();
    archive_write_set_format_pax_restricted(a);
    archive_write_open_filename(a, out);
    add(a, "ok.txt", AE_IFREG, NULL, 3);
    add(a, "big.bin", AE_IFREG, NULL, 1 << 20);
    archive_write_close(a);
    archive_write_free(a);
    /* keep the headers and the first part of the data only */
    if (truncate(out, 4096) < 0)
      return 1;
    return 0;
  }
  struct archive *a = archive_write_new();
  archive_write_set_format_pax_restricted(a);
  if (archive_write_open_filename(a, out) != ARCHIVE_OK) {
    fprintf(stderr, "mkhostile: %s\n", archive_error_string(a));
    return 1;
  }
  add(a, "ok.txt", AE_IFREG, NULL, 3);
  if (strcmp(kind, "abs") == 0) {
    add(a, arg, AE_IFREG, NULL, 5);
  } else if (strcmp(kind, "dotdot") == 0) {
    add(a, "a/../../escaped", AE_IFREG, NULL, 5);
  } else if (strcmp(kind, "symlink") == 0) {
    add(a, "link", AE_IFLNK, arg, 0);
    add(a, "link/pwned", AE_IFREG, NULL, 5);
  } else if (strcmp(kind, "hardlink") == 0) {
    add(a, "hl", AE_IFREG, arg, 0);
  } else if (strcmp(kind, "big") == 0) {
    add(a, "big.bin", AE_IFREG, NULL, atoll(arg));
  } else {
    fprintf(stderr, "mkhostile: unknown kind %s\n", kind);
    return 2;
  }
  archive_write_close(a);
  archive_write_free(a);
  return 0;
}
