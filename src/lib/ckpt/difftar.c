#include <archive.h>
#include <archive_entry.h>
#include <fcntl.h>
#include <dirent.h>
#include <errno.h>
#include <ftw.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "ckpt/ckpt.h"
#include "util/cleanup.h"
#include "util/fs.h"

int dir_to_tar(const char *dir, const char *out, uint64_t *bytes, struct ferry_err *err)
{
  static const struct tar_opts plain = {0};
  return dir_to_tar_opts(dir, out, &plain, bytes, err);
}

static void buf_append(char **b, size_t *len, size_t *cap, const char *s, size_t n)
{
  if (*len + n + 1 > *cap) {
    size_t nc = *cap ? *cap * 2 : 4096;
    while (nc < *len + n + 1)
      nc *= 2;
    char *nb = realloc(*b, nc);
    if (!nb)
      abort();
    *b = nb;
    *cap = nc;
  }
  memcpy(*b + *len, s, n);
  *len += n;
}

int dir_to_tar_opts(const char *dir, const char *out, const struct tar_opts *o, uint64_t *bytes,
                    struct ferry_err *err)
{
  char *man = NULL;
  size_t man_len = 0, man_cap = 0;
  struct archive *disk = archive_read_disk_new();
  struct archive *w = archive_write_new();
  archive_read_disk_set_standard_lookup(disk);
  archive_read_disk_set_behavior(disk, ARCHIVE_READDISK_NO_TRAVERSE_MOUNTS |
                                           ARCHIVE_READDISK_NO_FFLAGS);
  archive_write_set_format_pax_restricted(w);
  if (o->zstd) {
    archive_write_add_filter_zstd(w);
    archive_write_set_filter_option(w, "zstd", "compression-level", "1");
  }
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
    if (o->manifest)
      buf_append(&man, &man_len, &man_cap, rel, strlen(rel) + 1);
    if (o->since > 0 && archive_entry_ctime(e) < o->since && archive_entry_mtime(e) < o->since) {
      archive_entry_free(e);
      continue;
    }
    archive_entry_set_pathname(e, rel);
    bool opaque = false;
    if (o->oci) {
      /* overlay's forms of "deleted" and "replaced" become the OCI ones */
      if (archive_entry_filetype(e) == AE_IFCHR && archive_entry_rdev(e) == 0) {
        _cleanup_free_ char *copy = xstrdup(rel);
        char *slash = strrchr(copy, '/');
        _cleanup_free_ char *wh = slash ? (*slash = '\0', xasprintf("%s/.wh.%s", copy, slash + 1))
                                        : xasprintf(".wh.%s", copy);
        archive_entry_set_pathname(e, wh);
        archive_entry_set_filetype(e, AE_IFREG);
        archive_entry_set_rdev(e, 0);
        archive_entry_set_size(e, 0);
      }
      const char *xn, *xv;
      size_t xs;
      archive_entry_xattr_reset(e);
      while (archive_entry_xattr_next(e, &xn, (const void **)&xv, &xs) == ARCHIVE_OK)
        if (strcmp(xn, "trusted.overlay.opaque") == 0 && xs >= 1 && xv[0] == 'y')
          opaque = true;
      /* no xattr of overlay's in the layer */
      struct archive_entry *c = archive_entry_clone(e);
      archive_entry_xattr_clear(e);
      archive_entry_xattr_reset(c);
      while (archive_entry_xattr_next(c, &xn, (const void **)&xv, &xs) == ARCHIVE_OK)
        if (strncmp(xn, "trusted.overlay.", 16) != 0)
          archive_entry_xattr_add_entry(e, xn, xv, xs);
      archive_entry_free(c);
    }
    if (archive_write_header(w, e) < ARCHIVE_WARN) {
      r = ferry_err_set(err, -EIO, FERRY_E_INTERNAL, "tar %s: %s", rel, archive_error_string(w));
      archive_entry_free(e);
      goto done;
    }
    if (archive_entry_filetype(e) == AE_IFREG && archive_entry_size(e) > 0) {
      int fd = open(full, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
      if (fd < 0 && errno == ENOENT) {
        /* gone since it was listed: a running container renamed or removed
         * it while its volume is copied ahead. Its entry stays (zeros: the
         * header is out); the copy made after the freeze, with the list of
         * every path then, sends what it became. */
        archive_entry_free(e);
        continue;
      }
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
    if (opaque) {
      struct archive_entry *oe = archive_entry_new();
      _cleanup_free_ char *op = xasprintf("%s/.wh..wh..opq", rel);
      archive_entry_set_pathname(oe, op);
      archive_entry_set_filetype(oe, AE_IFREG);
      archive_entry_set_perm(oe, 0644);
      archive_entry_set_size(oe, 0);
      if (archive_write_header(w, oe) < ARCHIVE_WARN)
        r = ferry_err_set(err, -EIO, FERRY_E_INTERNAL, "tar %s: %s", op, archive_error_string(w));
      archive_entry_free(oe);
      if (r < 0) {
        archive_entry_free(e);
        goto done;
      }
    }
    archive_entry_free(e);
  }
  if (o->manifest) {
    struct archive_entry *e = archive_entry_new();
    archive_entry_set_pathname(e, DELTA_MANIFEST);
    archive_entry_set_filetype(e, AE_IFREG);
    archive_entry_set_perm(e, 0600);
    archive_entry_set_size(e, (la_int64_t)man_len);
    if (archive_write_header(w, e) < ARCHIVE_WARN ||
        (man_len && archive_write_data(w, man, man_len) < 0))
      r = ferry_err_set(err, -EIO, FERRY_E_INTERNAL, "tar manifest: %s", archive_error_string(w));
    archive_entry_free(e);
  }
done:
  free(man);
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

/* nftw has no user pointer: the set of kept paths is passed through these. */
static pthread_mutex_t delta_lock = PTHREAD_MUTEX_INITIALIZER;
static char **delta_paths;
static size_t delta_n;
static size_t delta_root_len;

static int cmp_str(const void *a, const void *b)
{
  return strcmp(*(char *const *)a, *(char *const *)b);
}

static int prune_cb(const char *fpath, const struct stat *sb, int typeflag, struct FTW *ftwbuf)
{
  (void)sb;
  if (ftwbuf->level == 0)
    return 0;
  const char *rel = fpath + delta_root_len;
  while (*rel == '/')
    rel++;
  if (bsearch(&rel, delta_paths, delta_n, sizeof(char *), cmp_str))
    return 0;
  if (typeflag == FTW_DP || typeflag == FTW_D)
    rmdir(fpath);
  else
    unlink(fpath);
  return 0;
}

int apply_delta_manifest(const char *dir, struct ferry_err *err)
{
  _cleanup_free_ char *mp = path_join(dir, DELTA_MANIFEST);
  _cleanup_free_ char *buf = NULL;
  size_t len = 0;
  int r = read_file(mp, 1u << 30, &buf, &len, err);
  if (r < 0)
    return ferry_err_wrap(err, "delta for %s has no manifest", dir);
  unlink(mp);
  size_t n = 0;
  for (size_t i = 0; i < len; i++)
    if (buf[i] == '\0')
      n++;
  char **v = calloc(n + 1, sizeof *v);
  if (!v)
    abort();
  size_t k = 0;
  for (size_t i = 0; i < len && k < n; i += strlen(buf + i) + 1)
    v[k++] = buf + i;
  qsort(v, k, sizeof *v, cmp_str);
  pthread_mutex_lock(&delta_lock);
  delta_paths = v;
  delta_n = k;
  delta_root_len = strlen(dir);
  int fr = nftw(dir, prune_cb, 32, FTW_DEPTH | FTW_PHYS | FTW_MOUNT);
  delta_paths = NULL;
  pthread_mutex_unlock(&delta_lock);
  free(v);
  if (fr != 0)
    return ferry_err_sys(err, -EIO, "apply delta to %s", dir);
  return 0;
}

int flat_dir_to_tar(const char *dir, const char *out, bool zstd, uint64_t *bytes,
                    struct ferry_err *err)
{
  int dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (dfd < 0)
    return ferry_err_sys(err, -errno, "read %s", dir);
  DIR *d = fdopendir(dfd);
  if (!d) {
    int e = -errno;
    close(dfd);
    return ferry_err_sys(err, e, "read %s", dir);
  }
  struct archive *w = archive_write_new();
  archive_write_set_format_pax_restricted(w);
  if (zstd) {
    archive_write_add_filter_zstd(w);
    /* zstd's first fast level: CRIU's images (pages above all) shrink
     * about as much as at level 1 (a small redis: 2.9 MB -> 328 KB, 321 KB
     * at 1) in half the time or less (4.3 ms, 5-9.5 at 1), which is inside
     * the pause */
    archive_write_set_filter_option(w, "zstd", "compression-level", "-1");
  }
  int r = 0;
  char *buf = NULL;
  if (archive_write_open_filename(w, out) != ARCHIVE_OK) {
    r = ferry_err_set(err, -EIO, FERRY_E_INTERNAL, "create %s: %s", out, archive_error_string(w));
    goto done;
  }
  buf = malloc(1 << 16);
  if (!buf)
    abort();
  struct dirent *de;
  while ((de = readdir(d))) {
    if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0)
      continue;
    int fd = openat(dfd, de->d_name, O_RDONLY | O_NOFOLLOW | O_CLOEXEC | O_NONBLOCK);
    struct stat st;
    if (fd < 0 && errno == ELOOP)
      continue; /* a link (CRIU's to an earlier round): not sent */
    if (fd < 0 || fstat(fd, &st) < 0) {
      r = ferry_err_sys(err, -errno, "read %s/%s", dir, de->d_name);
      if (fd >= 0)
        close(fd);
      goto done;
    }
    if (!S_ISREG(st.st_mode)) {
      close(fd);
      r = ferry_err_set(err, -EINVAL, FERRY_E_INTERNAL, "%s/%s: not a file", dir, de->d_name);
      goto done;
    }
    struct archive_entry *e = archive_entry_new();
    archive_entry_set_pathname(e, de->d_name);
    archive_entry_set_filetype(e, AE_IFREG);
    archive_entry_set_perm(e, st.st_mode & 0666);
    archive_entry_set_size(e, st.st_size);
    archive_entry_set_mtime(e, st.st_mtim.tv_sec, st.st_mtim.tv_nsec);
    int h = archive_write_header(w, e);
    archive_entry_free(e);
    int64_t left = st.st_size;
    while (h >= ARCHIVE_WARN && left > 0) {
      ssize_t n = read(fd, buf, left < (1 << 16) ? (size_t)left : (1 << 16));
      if (n < 0 && errno == EINTR)
        continue;
      if (n <= 0) { /* it shrank: what the header says cannot be written */
        h = ARCHIVE_FATAL;
        break;
      }
      if (archive_write_data(w, buf, (size_t)n) != n)
        h = ARCHIVE_FATAL;
      left -= n;
    }
    close(fd);
    if (h < ARCHIVE_WARN) {
      r = ferry_err_set(err, -EIO, FERRY_E_INTERNAL, "archive %s/%s: %s", dir, de->d_name,
                        archive_error_string(w) ? archive_error_string(w) : "file changed");
      goto done;
    }
  }
  if (archive_write_close(w) != ARCHIVE_OK)
    r = ferry_err_set(err, -EIO, FERRY_E_INTERNAL, "write %s: %s", out, archive_error_string(w));
done:
  free(buf);
  archive_write_free(w);
  closedir(d);
  if (r == 0 && bytes) {
    struct stat st;
    *bytes = stat(out, &st) == 0 ? (uint64_t)st.st_size : 0;
  }
  return r;
}
