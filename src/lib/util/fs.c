#include "util/fs.h"
#include "util/log.h"

#include <dirent.h>
#include <fcntl.h>
#include <ftw.h>
#include <libgen.h>
#include <linux/openat2.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "util/cleanup.h"

char *xasprintf(const char *fmt, ...)
{
  va_list ap;
  char *s = NULL;
  va_start(ap, fmt);
  int r = vasprintf(&s, fmt, ap);
  va_end(ap);
  if (r < 0)
    abort();
  return s;
}

char *xstrdup(const char *s)
{
  char *r = strdup(s ? s : "");
  if (!r)
    abort();
  return r;
}

char *path_join(const char *a, const char *b)
{
  size_t la = strlen(a);
  while (*b == '/')
    b++;
  if (la > 0 && a[la - 1] == '/')
    return xasprintf("%s%s", a, b);
  return xasprintf("%s/%s", a, b);
}

int mkdir_p(const char *path, mode_t mode, struct ferry_err *err)
{
  _cleanup_free_ char *p = xstrdup(path);
  size_t n = strlen(p);
  for (size_t i = 1; i <= n; i++) {
    if (p[i] != '/' && p[i] != '\0')
      continue;
    char c = p[i];
    p[i] = '\0';
    if (mkdir(p, mode) < 0 && errno != EEXIST)
      return ferry_err_sys(err, -errno, "mkdir %s", p);
    p[i] = c;
  }
  struct stat st;
  if (stat(path, &st) < 0)
    return ferry_err_sys(err, -errno, "stat %s", path);
  if (!S_ISDIR(st.st_mode))
    return ferry_err_set(err, -ENOTDIR, FERRY_E_CONFLICT, "%s: exists and is not a directory", path);
  return 0;
}

static int write_atomic(const char *path, const void *data, size_t len, mode_t mode, bool sync,
                        struct ferry_err *err)
{
  _cleanup_free_ char *tmp = xasprintf("%s.tmp.%d", path, (int)getpid());
  int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, mode);
  if (fd < 0)
    return ferry_err_sys(err, -errno, "create %s", tmp);
  const char *p = data;
  size_t left = len;
  while (left > 0) {
    ssize_t w = write(fd, p, left);
    if (w < 0) {
      if (errno == EINTR)
        continue;
      int e = -errno;
      close(fd);
      unlink(tmp);
      return ferry_err_sys(err, e, "write %s", tmp);
    }
    p += w;
    left -= (size_t)w;
  }
  if (sync && fsync(fd) < 0) {
    int e = -errno;
    close(fd);
    unlink(tmp);
    return ferry_err_sys(err, e, "fsync %s", tmp);
  }
  close(fd);
  if (rename(tmp, path) < 0) {
    int e = -errno;
    unlink(tmp);
    return ferry_err_sys(err, e, "rename %s", path);
  }
  return 0;
}

int write_file_atomic(const char *path, const void *data, size_t len, mode_t mode,
                      struct ferry_err *err)
{
  return write_atomic(path, data, len, mode, true, err);
}

int write_file_replace(const char *path, const void *data, size_t len, mode_t mode,
                       struct ferry_err *err)
{
  return write_atomic(path, data, len, mode, false, err);
}

int read_file(const char *path, size_t max, char **out, size_t *out_len, struct ferry_err *err)
{
  _cleanup_close_ int fd = open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0)
    return ferry_err_sys(err, -errno, "open %s", path);
  size_t cap = 4096, len = 0;
  _cleanup_free_ char *buf = malloc(cap);
  if (!buf)
    return ferry_err_sys(err, -ENOMEM, "read %s", path);
  for (;;) {
    if (len + 1 >= cap) {
      if (cap > max + 1)
        return ferry_err_set(err, -EFBIG, FERRY_E_INVALID, "%s: larger than %zu bytes", path, max);
      cap *= 2;
      char *nb = realloc(buf, cap);
      if (!nb)
        return ferry_err_sys(err, -ENOMEM, "read %s", path);
      buf = nb;
    }
    ssize_t r = read(fd, buf + len, cap - len - 1);
    if (r < 0) {
      if (errno == EINTR)
        continue;
      return ferry_err_sys(err, -errno, "read %s", path);
    }
    if (r == 0)
      break;
    len += (size_t)r;
    if (len > max)
      return ferry_err_set(err, -EFBIG, FERRY_E_INVALID, "%s: larger than %zu bytes", path, max);
  }
  buf[len] = '\0';
  if (out_len)
    *out_len = len;
  *out = TAKE_PTR(buf);
  return 0;
}

int read_regular_file(const char *path, size_t max, char **out, size_t *out_len,
                      struct ferry_err *err)
{
  struct stat st;
  if (stat(path, &st) < 0)
    return ferry_err_sys(err, -errno, "%s", path);
  if (S_ISCHR(st.st_mode) && major(st.st_rdev) == 1 && minor(st.st_rdev) == 3) {
    *out = xstrdup(""); /* /dev/null: "no file", as people write it */
    if (out_len)
      *out_len = 0;
    return 0;
  }
  if (!S_ISREG(st.st_mode))
    return FERRY_INVALID(err, "%s is not a regular file", path);
  return read_file(path, max, out, out_len, err);
}

int parse_size(const char *s, uint64_t *out)
{
  char *end = NULL;
  if (!s || !*s || *s == '-' || *s == '+')
    return -EINVAL;
  errno = 0;
  unsigned long long v = strtoull(s, &end, 10);
  if (errno || end == s)
    return -EINVAL;
  unsigned shift = 0;
  if (*end) {
    switch (*end) {
    case 'k': case 'K': shift = 10; break;
    case 'm': case 'M': shift = 20; break;
    case 'g': case 'G': shift = 30; break;
    case 't': case 'T': shift = 40; break;
    default: return -EINVAL;
    }
    end++;
    if (*end == 'i')
      end++;
    if (*end == 'B' || *end == 'b')
      end++;
    if (*end)
      return -EINVAL;
  }
  if (shift && v > (UINT64_MAX >> shift))
    return -ERANGE;
  *out = (uint64_t)v << shift;
  return 0;
}

int read_token_file(const char *path, char **out, struct ferry_err *err)
{
  char *tok = NULL;
  struct stat st;
  if (stat(path, &st) == 0 && S_ISREG(st.st_mode) && (st.st_mode & 0044))
    log_warn("auth", "token file %s is readable by other users (mode %03o): chmod 600 it", path,
             (unsigned)(st.st_mode & 0777));
  int r = read_regular_file(path, 4096, &tok, NULL, err);
  if (r < 0)
    return ferry_err_wrap(err, "token file");
  tok[strcspn(tok, "\r\n")] = '\0';
  if (!*tok) {
    free(tok);
    return FERRY_INVALID(err, "token file %s is empty", path);
  }
  *out = tok;
  return 0;
}

static int rm_cb(const char *fpath, const struct stat *sb, int typeflag, struct FTW *ftwbuf)
{
  (void)sb;
  (void)ftwbuf;
  int r = (typeflag == FTW_DP || typeflag == FTW_D) ? rmdir(fpath) : unlink(fpath);
  if (r < 0 && errno != ENOENT)
    return -errno;
  return 0;
}

int rm_rf(const char *path, struct ferry_err *err)
{
  struct stat st;
  if (lstat(path, &st) < 0)
    return errno == ENOENT ? 0 : ferry_err_sys(err, -errno, "stat %s", path);
  if (!S_ISDIR(st.st_mode)) {
    if (unlink(path) < 0 && errno != ENOENT)
      return ferry_err_sys(err, -errno, "remove %s", path);
    return 0;
  }
  int r = nftw(path, rm_cb, 32, FTW_DEPTH | FTW_PHYS | FTW_MOUNT);
  if (r != 0)
    return ferry_err_sys(err, r < 0 ? r : -EIO, "remove %s", path);
  return 0;
}

int copy_file(const char *src, const char *dst, struct ferry_err *err)
{
  _cleanup_close_ int in = open(src, O_RDONLY | O_CLOEXEC);
  if (in < 0)
    return ferry_err_sys(err, -errno, "open %s", src);
  _cleanup_close_ int out = open(dst, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
  if (out < 0)
    return ferry_err_sys(err, -errno, "create %s", dst);
  char buf[65536];
  for (;;) {
    ssize_t r = read(in, buf, sizeof buf);
    if (r < 0 && errno == EINTR)
      continue;
    if (r < 0)
      return ferry_err_sys(err, -errno, "read %s", src);
    if (r == 0)
      break;
    for (ssize_t off = 0; off < r;) {
      ssize_t w = write(out, buf + off, (size_t)(r - off));
      if (w < 0 && errno == EINTR)
        continue;
      if (w < 0)
        return ferry_err_sys(err, -errno, "write %s", dst);
      off += w;
    }
  }
  return 0;
}

bool path_exists(const char *path)
{
  struct stat st;
  return lstat(path, &st) == 0;
}

bool dir_is_empty(const char *path)
{
  DIR *d = opendir(path);
  if (!d)
    return true;
  struct dirent *de;
  bool empty = true;
  while ((de = readdir(d))) {
    if (strcmp(de->d_name, ".") && strcmp(de->d_name, "..")) {
      empty = false;
      break;
    }
  }
  closedir(d);
  return empty;
}

static uint64_t size_acc;
static int size_cb(const char *fpath, const struct stat *sb, int typeflag, struct FTW *ftwbuf)
{
  (void)fpath;
  (void)ftwbuf;
  if (typeflag == FTW_F && S_ISREG(sb->st_mode))
    size_acc += (uint64_t)sb->st_size;
  return 0;
}

uint64_t dir_size(const char *path)
{
  /* nftw has no user pointer; serialise the accumulator. */
  static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
  pthread_mutex_lock(&lock);
  size_acc = 0;
  nftw(path, size_cb, 32, FTW_PHYS | FTW_MOUNT);
  uint64_t r = size_acc;
  pthread_mutex_unlock(&lock);
  return r;
}

static void *closer_main(void *arg)
{
  close((int)(intptr_t)arg);
  return NULL;
}

void close_async(int fd)
{
  if (fd < 0)
    return;
  pthread_t t;
  pthread_attr_t at;
  pthread_attr_init(&at);
  pthread_attr_setdetachstate(&at, PTHREAD_CREATE_DETACHED);
  if (pthread_create(&t, &at, closer_main, (void *)(intptr_t)fd) != 0)
    close(fd);
  pthread_attr_destroy(&at);
}

void random_hex(char *out, size_t nhex)
{
  unsigned char b[32];
  size_t nb = (nhex + 1) / 2;
  if (nb > sizeof b)
    nb = sizeof b;
  size_t got = 0;
  while (got < nb) {
    ssize_t r = getrandom(b + got, nb - got, 0);
    if (r > 0)
      got += (size_t)r;
  }
  static const char hx[] = "0123456789abcdef";
  for (size_t i = 0; i < nhex && i / 2 < nb; i++)
    out[i] = hx[(i % 2 == 0) ? (b[i / 2] >> 4) : (b[i / 2] & 15)];
  out[nhex] = '\0';
}

uint64_t now_mono_ms(void)
{
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

uint64_t now_wall_ms(void)
{
  struct timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

void format_time(uint64_t wall_ms, char *buf, size_t len)
{
  time_t t = (time_t)(wall_ms / 1000);
  struct tm tm;
  gmtime_r(&t, &tm);
  snprintf(buf, len, "%04d-%02d-%02dT%02d:%02d:%02d.%03uZ", tm.tm_year + 1900, tm.tm_mon + 1,
           tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, (unsigned)(wall_ms % 1000));
}

static int open_how_at(const char *root, const char *rel, int flags, uint64_t resolve,
                       struct ferry_err *err)
{
  int dfd = open(root, O_PATH | O_DIRECTORY | O_CLOEXEC);
  if (dfd < 0)
    return ferry_err_sys(err, -errno, "%s", root);
  struct open_how how = {.flags = (uint64_t)(flags | O_CLOEXEC), .resolve = resolve};
  int fd = (int)syscall(SYS_openat2, dfd, rel, &how, sizeof how);
  int e = errno;
  close(dfd);
  if (fd >= 0)
    return fd;
  if (e == ELOOP || e == EXDEV)
    return ferry_err_set(err, -e, FERRY_E_INVALID,
                         "%s/%s: the path goes through a symbolic link or leaves %s", root, rel,
                         root);
  return ferry_err_sys(err, -e, "%s/%s", root, rel);
}

int open_beneath(const char *root, const char *rel, int flags, struct ferry_err *err)
{
  return open_how_at(root, rel, flags, RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS | RESOLVE_NO_MAGICLINKS,
                     err);
}

int open_in_root(const char *root, const char *rel, int flags, struct ferry_err *err)
{
  return open_how_at(root, rel, flags, RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS, err);
}

bool path_is_mountpoint(const char *path)
{
  struct stat a, b;
  _cleanup_free_ char *parent = path_join(path, "..");
  if (stat(path, &a) < 0 || stat(parent, &b) < 0)
    return false;
  if (a.st_dev != b.st_dev)
    return true;
  /* same device (bind mount of the same fs): consult mountinfo */
  _cleanup_free_ char *real = realpath(path, NULL);
  if (!real)
    return false;
  _cleanup_fclose_ FILE *f = fopen("/proc/self/mountinfo", "re");
  if (!f)
    return false;
  char line[4096];
  while (fgets(line, sizeof line, f)) {
    char mp[4096];
    if (sscanf(line, "%*s %*s %*s %*s %4095s", mp) == 1 && strcmp(mp, real) == 0)
      return true;
  }
  return false;
}

int scratch_tmpfs(const char *dir, struct ferry_err *err)
{
  int r = mkdir_p(dir, 0700, err);
  if (r < 0)
    return r;
  if (path_is_mountpoint(dir))
    return 0;
  if (mount("ferry-scratch", dir, "tmpfs", MS_NOSUID | MS_NODEV | MS_NOEXEC, "mode=0700") < 0)
    return ferry_err_sys(err, -errno, "tmpfs on %s", dir);
  return 0;
}

void scratch_remove(const char *dir)
{
  if (path_is_mountpoint(dir))
    umount2(dir, MNT_DETACH);
  rm_rf(dir, NULL);
}
