#include <archive.h>
#include <archive_entry.h>
#include <fcntl.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "ckpt/ckpt.h"
#include "util/cleanup.h"
#include "util/fs.h"

int dir_to_tar(const char *dir, const char *out, uint64_t *bytes, struct ferry_err *err)
{
  struct archive *disk = archive_read_disk_new();
  struct archive *w = archive_write_new();
  archive_read_disk_set_standard_lookup(disk);
  archive_read_disk_set_behavior(disk, ARCHIVE_READDISK_NO_TRAVERSE_MOUNTS |
                                           ARCHIVE_READDISK_NO_FFLAGS);
  archive_write_set_format_pax_restricted(w);
  int r = 0;
  size_t dlen = strlen(dir);
  if (archive_write_open_filename(w, out) != ARCHIVE_OK) {
    r = ferry_err_set(err, -EIO, FERRY_E_INTERNAL, "create %s: %s", out, archive_error_string(w));
    goto done;
  }
  if (archive_read_disk_open(disk, dir) != ARCHIVE_OK) {
    r = ferry_err_set(err, -EIO, FERRY_E_INTERNAL, "read %s: %s", dir, archive_error_string(disk));
    goto done;
  }
  for (;;) {
    struct archive_entry *e = archive_entry_new();
    int h = archive_read_next_header2(disk, e);
    if (h == ARCHIVE_EOF) {
      archive_entry_free(e);
      break;
    }
    if (h < ARCHIVE_WARN) {
      r = ferry_err_set(err, -EIO, FERRY_E_INTERNAL, "read %s: %s", dir, archive_error_string(disk));
      archive_entry_free(e);
      goto done;
    }
    archive_read_disk_descend(disk);
    const char *full = archive_entry_sourcepath(e);
    if (!full)
      full = archive_entry_pathname(e);
    const char *rel = full + (strncmp(full, dir, dlen) == 0 ? dlen : 0);
    while (*rel == '/')
      rel++;
    if (!*rel) {
      archive_entry_free(e);
      continue;
    }
    archive_entry_set_pathname(e, rel);
    if (archive_write_header(w, e) < ARCHIVE_WARN) {
      r = ferry_err_set(err, -EIO, FERRY_E_INTERNAL, "tar %s: %s", rel, archive_error_string(w));
      archive_entry_free(e);
      goto done;
    }
    if (archive_entry_filetype(e) == AE_IFREG && archive_entry_size(e) > 0) {
      int fd = open(full, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
      if (fd < 0) {
        r = ferry_err_sys(err, -errno, "tar: open %s", full);
        archive_entry_free(e);
        goto done;
      }
      char buf[65536];
      ssize_t n;
      while ((n = read(fd, buf, sizeof buf)) > 0) {
        if (archive_write_data(w, buf, (size_t)n) < 0) {
          r = ferry_err_set(err, -EIO, FERRY_E_INTERNAL, "tar %s: %s", rel, archive_error_string(w));
          break;
        }
      }
      close(fd);
      if (r < 0) {
        archive_entry_free(e);
        goto done;
      }
    }
    archive_entry_free(e);
  }
done:
  archive_read_free(disk);
  if (archive_write_close(w) != ARCHIVE_OK && r == 0)
    r = ferry_err_set(err, -EIO, FERRY_E_INTERNAL, "write %s: %s", out, archive_error_string(w));
  archive_write_free(w);
  if (r < 0) {
    unlink(out);
    return r;
  }
  if (bytes) {
    struct stat st;
    *bytes = stat(out, &st) == 0 ? (uint64_t)st.st_size : 0;
  }
  return 0;
}
