#include "image/extract.h"

#include <archive.h>
#include <archive_entry.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/xattr.h>
#include <unistd.h>

#include "util/cleanup.h"
#include "util/fs.h"

const struct extract_limits extract_default_limits = {
    .max_entry_size = 8ull << 30,
    .max_total_size = 64ull << 30,
    .max_entries = 2000000,
};

int extract_clean_name(const char *name, char **out, struct ferry_err *err)
{
  if (!name || !*name)
    return FERRY_INVALID(err, "entry with an empty name");
  /* "/" (or "/./") names the archive root, as some tools write it. */
  if (name[0] == '/' && strspn(name, "/.") != strlen(name))
    return FERRY_INVALID(err, "entry \"%s\": absolute path refused", name);
  if (name[0] == '/' && strstr(name, "..")) 
    return FERRY_INVALID(err, "entry \"%s\": \"..\" in path refused", name);
  size_t n = strlen(name);
  char *res = malloc(n + 1);
  if (!res)
    abort();
  size_t j = 0;
  const char *p = name;
  while (*p) {
    const char *slash = strchr(p, '/');
    size_t len = slash ? (size_t)(slash - p) : strlen(p);
    if (len == 2 && p[0] == '.' && p[1] == '.') {
      free(res);
      return FERRY_INVALID(err, "entry \"%s\": \"..\" in path refused", name);
    }
    if (len > 0 && !(len == 1 && p[0] == '.')) {
      if (j > 0)
        res[j++] = '/';
      memcpy(res + j, p, len);
      j += len;
    }
    p += len;
    if (*p == '/')
      p++;
  }
  res[j] = '\0';
  *out = res;
  return 0;
}

/* Makes sure every directory on the way to rel (excluding rel itself) exists
 * below dest and none of them is a symlink. */
static int safe_parents(const char *dest, const char *rel, const char *entry, struct ferry_err *err)
{
  _cleanup_free_ char *p = xstrdup(rel);
  for (char *s = strchr(p, '/'); s; s = strchr(s + 1, '/')) {
    *s = '\0';
    _cleanup_free_ char *full = path_join(dest, p);
    struct stat st;
    if (lstat(full, &st) == 0) {
      if (S_ISLNK(st.st_mode))
        return FERRY_INVALID(err, "entry \"%s\": path goes through symlink \"%s\": refused", entry,
                             p);
      if (!S_ISDIR(st.st_mode))
        return FERRY_INVALID(err, "entry \"%s\": \"%s\" is not a directory", entry, p);
    } else if (mkdir(full, 0755) < 0) {
      return ferry_err_sys(err, -errno, "entry \"%s\": mkdir %s", entry, p);
    }
    *s = '/';
  }
  return 0;
}

static bool keep_xattr(const char *name, enum extract_mode mode)
{
  if (mode == EXTRACT_UPPER)
    return strncmp(name, "trusted.overlay.opaque", 22) == 0 || strncmp(name, "user.", 5) == 0 ||
           strcmp(name, "security.capability") == 0;
  return strncmp(name, "user.", 5) == 0 || strcmp(name, "security.capability") == 0;
}

static void filter_xattrs(struct archive_entry *e, enum extract_mode mode)
{
  if (archive_entry_xattr_count(e) == 0)
    return;
  struct kept {
    char *name;
    void *val;
    size_t size;
  } kept[32];
  int nk = 0;
  const char *name;
  const void *val;
  size_t size;
  archive_entry_xattr_reset(e);
  while (archive_entry_xattr_next(e, &name, &val, &size) == ARCHIVE_OK) {
    if (nk < 32 && keep_xattr(name, mode)) {
      kept[nk].name = xstrdup(name);
      kept[nk].val = malloc(size ? size : 1);
      if (!kept[nk].val)
        abort();
      memcpy(kept[nk].val, val, size);
      kept[nk].size = size;
      nk++;
    }
  }
  archive_entry_xattr_clear(e);
  for (int i = 0; i < nk; i++) {
    archive_entry_xattr_add_entry(e, kept[i].name, kept[i].val, kept[i].size);
    free(kept[i].name);
    free(kept[i].val);
  }
}

/* Removes whatever is at full unless it is a directory and keep_dir. */
static int clear_target(const char *full, bool keep_dir, struct ferry_err *err)
{
  struct stat st;
  if (lstat(full, &st) < 0)
    return 0;
  if (S_ISDIR(st.st_mode)) {
    if (keep_dir)
      return 0;
    return rm_rf(full, err);
  }
  if (unlink(full) < 0)
    return ferry_err_sys(err, -errno, "remove %s", full);
  return 0;
}

static int whiteout(const char *dest, const char *rel, const char *entry, struct ferry_err *err)
{
  const char *base = strrchr(rel, '/');
  base = base ? base + 1 : rel;
  size_t dirlen = (size_t)(base - rel);
  _cleanup_free_ char *dir = strndup(rel, dirlen > 0 ? dirlen - 1 : 0);
  _cleanup_free_ char *fulldir = path_join(dest, dir);
  if (strcmp(base, ".wh..wh..opq") == 0) {
    if (*dir) {
      struct stat st;
      if (lstat(fulldir, &st) < 0 && mkdir(fulldir, 0755) < 0)
        return ferry_err_sys(err, -errno, "entry \"%s\": mkdir", entry);
      if (lstat(fulldir, &st) == 0 && !S_ISDIR(st.st_mode))
        return FERRY_INVALID(err, "entry \"%s\": opaque marker in a non-directory", entry);
    }
    if (setxattr(fulldir, "trusted.overlay.opaque", "y", 1, 0) < 0)
      return ferry_err_sys(err, -errno, "entry \"%s\": mark %s opaque", entry,
                           *dir ? dir : "/");
    return 0;
  }
  const char *victim = base + 4;
  if (!*victim || strcmp(victim, ".") == 0 || strcmp(victim, "..") == 0)
    return FERRY_INVALID(err, "entry \"%s\": malformed whiteout", entry);
  _cleanup_free_ char *full = path_join(fulldir, victim);
  int r = clear_target(full, false, err);
  if (r < 0)
    return r;
  if (mknod(full, S_IFCHR | 0000, makedev(0, 0)) < 0)
    return ferry_err_sys(err, -errno, "entry \"%s\": whiteout %s", entry, full);
  return 0;
}

/* The running count of an archive being unpacked: its entries, the bytes
 * of its files, and how many its own size allows (a compression bomb). */
struct unpack_count {
  uint64_t entries, total, allowed;
};

static void count_init(struct unpack_count *c, int fd, const struct extract_limits *lim)
{
  *c = (struct unpack_count){.allowed = UINT64_MAX};
  struct stat ast;
  if (lim->max_ratio && fstat(fd, &ast) == 0 &&
      (uint64_t)ast.st_size < UINT64_MAX / lim->max_ratio)
    c->allowed = (uint64_t)ast.st_size * lim->max_ratio > lim->ratio_floor
                     ? (uint64_t)ast.st_size * lim->max_ratio
                     : lim->ratio_floor;
}

/* The next entry of a, counted: 1 with *e, *entry (its name as the archive
 * has it) and *rel (that name made clean, "" for the archive root), both
 * malloc'd; 0 at the end; or the error. */
static int next_entry(struct archive *a, struct unpack_count *c, const struct extract_limits *lim,
                      const char *what, struct archive_entry **e, char **entry, char **rel,
                      struct ferry_err *err)
{
  int h = archive_read_next_header(a, e);
  if (h == ARCHIVE_EOF)
    return 0;
  if (h < ARCHIVE_WARN)
    return FERRY_INVALID(err, "%s: corrupt archive after %" PRIu64 " entries: %s", what,
                         c->entries, archive_error_string(a));
  if (++c->entries > lim->max_entries)
    return FERRY_INVALID(err, "%s: more than %" PRIu64 " entries: refused", what, lim->max_entries);
  const char *name = archive_entry_pathname(*e);
  *entry = xstrdup(name ? name : "");
  int r = extract_clean_name(*entry, rel, err);
  if (r < 0)
    return ferry_err_wrap(err, "%s", what);
  return 1;
}

/* A file of size bytes (entry), counted against the limits: 0 or the error. */
static int count_file(struct unpack_count *c, int64_t size, const struct extract_limits *lim,
                      const char *what, const char *entry, struct ferry_err *err)
{
  if (size < 0 || (uint64_t)size > lim->max_entry_size)
    return FERRY_INVALID(err, "%s: entry \"%s\": %" PRId64 " bytes is over the limit of %" PRIu64
                              " bytes: refused",
                         what, entry, size, lim->max_entry_size);
  c->total += (uint64_t)size;
  if (c->total > c->allowed)
    return FERRY_INVALID(err, "%s: unpacks to more than %" PRIu64 " times its own size (a "
                              "compression bomb?): refused",
                         what, lim->max_ratio);
  if (c->total > lim->max_total_size)
    return FERRY_INVALID(err, "%s: more than %" PRIu64 " bytes in all: refused", what,
                         lim->max_total_size);
  return 0;
}

int extract_archive(const char *archive_path, const char *dest_in, enum extract_mode mode,
                    const struct extract_limits *lim, const char *what, struct ferry_err *err)
{
  int fd = open(archive_path, O_RDONLY | O_CLOEXEC);
  if (fd < 0)
    return ferry_err_sys(err, -errno, "%s: open %s", what, archive_path);
  int r = extract_archive_fd(fd, dest_in, mode, lim, what, err);
  close(fd);
  return r;
}

int extract_archive_fd(int fd, const char *dest_in, enum extract_mode mode,
                       const struct extract_limits *lim, const char *what, struct ferry_err *err)
{
  if (!lim)
    lim = &extract_default_limits;
  _cleanup_free_ char *dest = realpath(dest_in, NULL);
  if (!dest)
    return ferry_err_sys(err, -errno, "%s: destination %s", what, dest_in);
  struct archive *a = archive_read_new();
  archive_read_support_filter_all(a);
  archive_read_support_format_tar(a);
  archive_read_support_format_gnutar(a);
  struct archive *w = archive_write_disk_new();
  int flags = ARCHIVE_EXTRACT_TIME | ARCHIVE_EXTRACT_PERM | ARCHIVE_EXTRACT_OWNER |
              ARCHIVE_EXTRACT_XATTR | ARCHIVE_EXTRACT_SECURE_SYMLINKS |
              ARCHIVE_EXTRACT_SECURE_NODOTDOT;
  archive_write_disk_set_options(w, flags);
  int r = 0;
  if (archive_read_open_fd(a, fd, 65536) != ARCHIVE_OK) {
    r = FERRY_INVALID(err, "%s: not a readable archive: %s", what, archive_error_string(a));
    goto out;
  }
  struct unpack_count cnt;
  count_init(&cnt, fd, lim);
  bool at_end = false;
  while (!at_end) {
    struct archive_entry *e;
    _cleanup_free_ char *entry = NULL, *rel = NULL;
    if ((r = next_entry(a, &cnt, lim, what, &e, &entry, &rel, err)) <= 0)
      goto out;
    if (!*rel)
      continue; /* the archive root "./" */
    mode_t type = archive_entry_filetype(e);
    int64_t size = archive_entry_size(e);
    if (type == AE_IFREG && size > 0 && (r = count_file(&cnt, size, lim, what, entry, err)) < 0)
      goto out;
    r = safe_parents(dest, rel, entry, err);
    if (r < 0) {
      ferry_err_wrap(err, "%s", what);
      goto out;
    }
    const char *base = strrchr(rel, '/');
    base = base ? base + 1 : rel;
    if (mode == EXTRACT_LAYER && strncmp(base, ".wh.", 4) == 0) {
      r = whiteout(dest, rel, entry, err);
      if (r < 0) {
        ferry_err_wrap(err, "%s", what);
        goto out;
      }
      continue;
    }
    _cleanup_free_ char *full = path_join(dest, rel);
    const char *hl = archive_entry_hardlink(e);
    if (hl) {
      if (mode == EXTRACT_PLAIN) {
        r = FERRY_INVALID(err, "%s: entry \"%s\": hard link refused in this archive", what, entry);
        goto out;
      }
      _cleanup_free_ char *hrel = NULL;
      r = extract_clean_name(hl, &hrel, err);
      if (r < 0) {
        ferry_err_wrap(err, "%s: hard link \"%s\"", what, entry);
        goto out;
      }
      r = safe_parents(dest, hrel, hl, err);
      _cleanup_free_ char *hfull = path_join(dest, hrel);
      struct stat st;
      if (r < 0 || lstat(hfull, &st) < 0 || !S_ISREG(st.st_mode)) {
        r = FERRY_INVALID(err, "%s: entry \"%s\": hard link to \"%s\", which is not a file "
                               "extracted earlier: refused",
                          what, entry, hl);
        goto out;
      }
      archive_entry_set_hardlink(e, hfull);
      r = clear_target(full, false, err);
      if (r < 0)
        goto out;
    } else if (type == AE_IFCHR || type == AE_IFBLK) {
      if (mode == EXTRACT_UPPER && type == AE_IFCHR && archive_entry_rdev(e) == 0) {
        /* an overlay whiteout in an upper dir */
      } else {
        continue; /* device nodes are not taken from images: /dev is the runtime's */
      }
    } else if (type != AE_IFREG && type != AE_IFDIR && type != AE_IFLNK && type != AE_IFIFO) {
      r = FERRY_INVALID(err, "%s: entry \"%s\": unsupported file type", what, entry);
      goto out;
    }
    if (mode == EXTRACT_PLAIN && type == AE_IFIFO)
      continue;
    if (!hl) {
      r = clear_target(full, type == AE_IFDIR, err);
      if (r < 0)
        goto out;
    }
    filter_xattrs(e, mode);
    archive_entry_set_pathname(e, full);
    if (archive_write_header(w, e) < ARCHIVE_WARN) {
      r = FERRY_INVALID(err, "%s: entry \"%s\": %s", what, entry, archive_error_string(w));
      goto out;
    }
    if (type == AE_IFREG && size > 0 && !hl) {
      const void *buf;
      size_t len;
      la_int64_t off;
      uint64_t written = 0;
      for (;;) {
        int d = archive_read_data_block(a, &buf, &len, &off);
        if (d == ARCHIVE_EOF)
          break;
        if (d < ARCHIVE_WARN) {
          if (written == (uint64_t)size) {
            /* All data is here; only the tar padding or end blocks are missing
             * (some tools write layers like that). Take the entry, stop. */
            at_end = true;
            break;
          }
          r = FERRY_INVALID(err, "%s: entry \"%s\": truncated or corrupt data: %s", what, entry,
                            archive_error_string(a));
          goto out;
        }
        written += len;
        if (written > (uint64_t)size) {
          r = FERRY_INVALID(err, "%s: entry \"%s\": more data than its header says", what, entry);
          goto out;
        }
        if (archive_write_data_block(w, buf, len, off) < ARCHIVE_WARN) {
          r = ferry_err_set(err, -EIO, FERRY_E_INTERNAL, "%s: entry \"%s\": write: %s", what,
                            entry, archive_error_string(w));
          goto out;
        }
      }
    }
    if (archive_write_finish_entry(w) < ARCHIVE_WARN) {
      r = ferry_err_set(err, -EIO, FERRY_E_INTERNAL, "%s: entry \"%s\": %s", what, entry,
                        archive_error_string(w));
      goto out;
    }
  }
out:
  archive_read_free(a);
  archive_write_free(w);
  return r;
}

/* Writes the current entry's data (size bytes, holes of a sparse entry
 * left as holes) to out. */
static int flat_data(struct archive *a, int out, int64_t size, const char *what, const char *entry,
                     struct ferry_err *err)
{
  for (;;) {
    const void *buf;
    size_t len;
    la_int64_t off;
    int d = archive_read_data_block(a, &buf, &len, &off);
    if (d == ARCHIVE_EOF)
      break;
    if (d < ARCHIVE_WARN)
      return FERRY_INVALID(err, "%s: entry \"%s\": truncated or corrupt data: %s", what, entry,
                           archive_error_string(a));
    if (off < 0 || len > (uint64_t)size || (uint64_t)off > (uint64_t)size - len)
      return FERRY_INVALID(err, "%s: entry \"%s\": more data than its header says", what, entry);
    const char *p = buf;
    while (len > 0) {
      ssize_t w = pwrite(out, p, len, off);
      if (w < 0 && errno == EINTR)
        continue;
      if (w <= 0)
        return ferry_err_sys(err, w < 0 ? -errno : -EIO, "%s: entry \"%s\": write", what, entry);
      p += w;
      off += w;
      len -= (size_t)w;
    }
  }
  if (ftruncate(out, size) < 0) /* a hole at its end */
    return ferry_err_sys(err, -errno, "%s: entry \"%s\": write", what, entry);
  return 0;
}

int extract_flat(const char *archive_path, const char *dest, const struct extract_limits *lim,
                 const char *what, struct ferry_err *err)
{
  if (!lim)
    lim = &extract_default_limits;
  int fd = open(archive_path, O_RDONLY | O_CLOEXEC);
  if (fd < 0)
    return ferry_err_sys(err, -errno, "%s: open %s", what, archive_path);
  int dfd = open(dest, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
  if (dfd < 0) {
    int e = -errno;
    close(fd);
    return ferry_err_sys(err, e, "%s: destination %s", what, dest);
  }
  struct archive *a = archive_read_new();
  archive_read_support_filter_all(a);
  archive_read_support_format_tar(a);
  archive_read_support_format_gnutar(a);
  int r = 0;
  struct unpack_count cnt;
  count_init(&cnt, fd, lim);
  if (archive_read_open_fd(a, fd, 65536) != ARCHIVE_OK) {
    r = FERRY_INVALID(err, "%s: not a readable archive: %s", what, archive_error_string(a));
    goto out;
  }
  for (;;) {
    struct archive_entry *e;
    _cleanup_free_ char *entry = NULL, *rel = NULL;
    if ((r = next_entry(a, &cnt, lim, what, &e, &entry, &rel, err)) <= 0)
      goto out;
    mode_t type = archive_entry_filetype(e);
    if (!*rel && type == AE_IFDIR)
      continue; /* the archive root "./" */
    if (!*rel || strchr(rel, '/') || type != AE_IFREG || archive_entry_hardlink(e)) {
      r = FERRY_INVALID(err, "%s: entry \"%s\": only files, without a directory, belong in it: "
                             "refused",
                        what, entry);
      goto out;
    }
    int64_t size = archive_entry_size(e);
    if ((r = count_file(&cnt, size, lim, what, entry, err)) < 0)
      goto out;
    /* a name taken already (by this archive or a file the page server
     * wrote) is replaced: never followed, never a directory */
    if (unlinkat(dfd, rel, 0) < 0 && errno != ENOENT) {
      r = ferry_err_sys(err, -errno, "%s: entry \"%s\": replace", what, entry);
      goto out;
    }
    int out = openat(dfd, rel, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC,
                     archive_entry_perm(e) & 0666);
    if (out < 0) {
      r = ferry_err_sys(err, -errno, "%s: entry \"%s\": create", what, entry);
      goto out;
    }
    r = flat_data(a, out, size, what, entry, err);
    if (close(out) < 0 && r == 0)
      r = ferry_err_sys(err, -errno, "%s: entry \"%s\": write", what, entry);
    if (r < 0)
      goto out;
  }
out:
  archive_read_free(a);
  close(dfd);
  close(fd);
  return r;
}
