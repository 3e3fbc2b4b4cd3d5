/* Files between a running container and the caller (ferry cp). Every name
 * is resolved as the container sees it: a child of the agent chroots into
 * /proc/PID/root (the container's own mount tree, its volumes included), so
 * that its symlinks lead only inside it; what is written there comes from an
 * archive extracted with extract_archive's checks (no "..", no absolute
 * names, no path through a symlink, no devices or hard links). */
#include <archive.h>
#include <archive_entry.h>
#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <sys/wait.h>
#include <unistd.h>

#include "image/extract.h"
#include "runtime/runtime.h"
#include "util/cleanup.h"
#include "util/fs.h"
#include "util/json.h"
#include "util/spawn.h"

/* The container's root as its processes see it (volumes included) while
 * it runs; its root file system alone (its overlay, mounted from creation
 * on) when it does not. 409 when there is neither (a moved container). */
static int copy_root(struct runtime *rt, json_t *rec, char *root, size_t n, struct ferry_err *err)
{
  enum ctr_live st = ctr_refresh(rt, rec);
  int pid = (int)json_integer_value(json_object_get(rec, "pid"));
  if (ctr_live_up(st) && pid > 0) {
    snprintf(root, n, "/proc/%d/root", pid);
    return 0;
  }
  _cleanup_free_ char *rootfs = ctr_path(rt, rec_id(rec), "bundle/rootfs");
  if (strlen(rootfs) < n && path_is_mountpoint(rootfs)) {
    snprintf(root, n, "%s", rootfs);
    return 0;
  }
  return FERRY_CONFLICT(err, "container \"%s\" is %s and its files are not here: start it to "
                             "copy files", rec_has_name(rec) ? rec_name(rec) : rec_id(rec), ctr_live_name(st));
}

static int path_check(const char *path, struct ferry_err *err)
{
  if (!path || path[0] != '/' || strlen(path) > 4096 || strchr(path, '\n'))
    return FERRY_INVALID(err, "path \"%s\": an absolute path in the container is needed",
                         path ? path : "");
  return 0;
}

int ctr_copy_stat(struct runtime *rt, json_t *rec, const char *path, json_t **out,
                  struct ferry_err *err)
{
  char root[4096];
  int r;
  if ((r = path_check(path, err)) < 0 || (r = copy_root(rt, rec, root, sizeof root, err)) < 0)
    return r;
  int fd = open_in_root(root, path[1] ? path + 1 : ".", O_PATH, err);
  if (fd < 0) {
    if (fd == -ENOENT || fd == -ENOTDIR)
      return FERRY_NOTFOUND(err, "%s: no such file or directory in the container", path);
    return fd;
  }
  struct stat st;
  r = fstat(fd, &st);
  close(fd);
  if (r < 0)
    return ferry_err_sys(err, -errno, "stat %s", path);
  const char *type = S_ISDIR(st.st_mode) ? "dir" : S_ISREG(st.st_mode) ? "file" : "other";
  *out = json_pack("{s:s, s:s, s:I, s:i}", "path", path, "type", type, "size",
                   (json_int_t)st.st_size, "mode", (int)(st.st_mode & 07777));
  return 0;
}

/* A child entering the container's root: 0 in the child (chrooted, at "/"),
 * its pid in the parent. */
static int enter_root(const char *root, struct ferry_err *err)
{
  pid_t parent = getpid();
  pid_t pid = fork();
  if (pid < 0)
    return ferry_err_sys(err, -errno, "fork");
  if (pid > 0)
    return pid;
  prctl(PR_SET_PDEATHSIG, SIGKILL);
  if (getppid() != parent)
    _exit(127);
  sigset_t all;
  sigemptyset(&all);
  sigprocmask(SIG_SETMASK, &all, NULL);
  if (chroot(root) < 0 || chdir("/") < 0)
    _exit(126);
  return 0;
}

static int child_wait(pid_t pid)
{
  int st;
  while (waitpid(pid, &st, 0) < 0)
    if (errno != EINTR)
      return -1;
  return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

static bool pseudo_fs(long type)
{
  static const long types[] = {0x9fa0 /* proc */,      0x62656572 /* sysfs */,
                               0x27e0eb /* cgroup */,  0x63677270 /* cgroup2 */,
                               0x1cd1 /* devpts */,    0x19800202 /* mqueue */,
                               0x64626720 /* debugfs */, 0x73636673 /* securityfs */,
                               0x74726163 /* tracefs */, 0xcafe4a11 /* bpf */};
  for (size_t i = 0; i < sizeof types / sizeof types[0]; i++)
    if (type == types[i])
      return true;
  return false;
}

int copy_tar_to_fd(const char *name, const char *as, int fd)
{
  size_t nl = strlen(name);
  struct archive *disk = archive_read_disk_new();
  struct archive *w = archive_write_new();
  archive_read_disk_set_standard_lookup(disk);
  archive_read_disk_set_symlink_physical(disk);
  archive_write_set_format_pax_restricted(w);
  int rc = 1;
  if (archive_write_open_fd(w, fd) != ARCHIVE_OK || archive_read_disk_open(disk, name) != ARCHIVE_OK)
    goto out;
  for (;;) {
    struct archive_entry *e = archive_entry_new();
    int h = archive_read_next_header2(disk, e);
    if (h == ARCHIVE_EOF) {
      archive_entry_free(e);
      rc = 0;
      break;
    }
    if (h < ARCHIVE_WARN) {
      archive_entry_free(e);
      break;
    }
    /* the kernel's own file systems (/proc, /sys, /dev/pts) are not copied
     * into: their files never end */
    struct statfs sf;
    if (archive_entry_filetype(e) != AE_IFDIR || statfs(archive_entry_sourcepath(e), &sf) != 0 ||
        !pseudo_fs(sf.f_type))
      archive_read_disk_descend(disk);
    const char *pn = archive_entry_pathname(e);
    if (as && pn && strncmp(pn, name, nl) == 0 && (pn[nl] == '\0' || pn[nl] == '/')) {
      _cleanup_free_ char *np = xasprintf("%s%s", as, pn + nl);
      archive_entry_set_pathname(e, np);
    }
    mode_t type = archive_entry_filetype(e);
    if (type != AE_IFREG && type != AE_IFDIR && type != AE_IFLNK) {
      archive_entry_free(e); /* sockets, fifos, devices stay */
      continue;
    }
    if (archive_write_header(w, e) < ARCHIVE_WARN) {
      archive_entry_free(e);
      break;
    }
    if (type == AE_IFREG && archive_entry_size(e) > 0) {
      int in = open(archive_entry_sourcepath(e), O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
      char buf[65536];
      ssize_t n;
      int64_t left = archive_entry_size(e);
      while (in >= 0 && left > 0 && (n = read(in, buf, sizeof buf)) > 0) {
        if (n > left)
          n = (ssize_t)left;
        if (archive_write_data(w, buf, (size_t)n) < 0)
          break;
        left -= n;
      }
      if (in >= 0)
        close(in);
      if (left > 0) { /* the file shrank while read: the archive would lie */
        archive_entry_free(e);
        break;
      }
    }
    archive_entry_free(e);
  }
out:
  archive_read_free(disk);
  if (archive_write_close(w) != ARCHIVE_OK)
    rc = 1;
  archive_write_free(w);
  return rc;
}

int ctr_copy_out(struct runtime *rt, json_t *rec, const char *path, int *fd_out, int *pid_out,
                 struct ferry_err *err)
{
  json_t *st = NULL;
  int r = ctr_copy_stat(rt, rec, path, &st, err); /* a missing path is a 404, not a cut tar */
  if (r < 0)
    return r;
  json_decref(st);
  char root[4096];
  if ((r = copy_root(rt, rec, root, sizeof root, err)) < 0)
    return r;
  _cleanup_free_ char *d1 = xstrdup(path), *d2 = xstrdup(path);
  const char *dir = dirname(d1), *base = basename(d2);
  if (strcmp(base, "/") == 0)
    base = ".";
  int p[2];
  if (pipe2(p, O_CLOEXEC) < 0)
    return ferry_err_sys(err, -errno, "pipe");
  int pid = enter_root(root, err);
  if (pid == 0) {
    close(p[0]);
    _exit(chdir(dir) < 0 ? 125 : copy_tar_to_fd(base, NULL, p[1]));
  }
  close(p[1]);
  if (pid < 0) {
    close(p[0]);
    return pid;
  }
  *fd_out = p[0];
  *pid_out = pid;
  return 0;
}

int ctr_copy_out_end(int fd, int pid)
{
  if (fd >= 0)
    close(fd);
  if (pid > 0) {
    kill(pid, SIGKILL); /* when the reader went early; a finished child is a zombie still */
    return child_wait(pid);
  }
  return -1;
}

int ctr_copy_in(struct runtime *rt, json_t *rec, const char *dir, const char *tarfile,
                struct ferry_err *err)
{
  json_t *st = NULL;
  int r = ctr_copy_stat(rt, rec, dir, &st, err);
  if (r < 0)
    return r;
  bool is_dir = strcmp(json_str_or(st, "type", ""), "dir") == 0;
  json_decref(st);
  if (!is_dir)
    return FERRY_CONFLICT(err, "%s is not a directory in the container", dir);
  char root[4096];
  if ((r = copy_root(rt, rec, root, sizeof root, err)) < 0)
    return r;
  int tar = open(tarfile, O_RDONLY | O_CLOEXEC);
  if (tar < 0)
    return ferry_err_sys(err, -errno, "open %s", tarfile);
  int ep[2];
  if (pipe2(ep, O_CLOEXEC) < 0) {
    close(tar);
    return ferry_err_sys(err, -errno, "pipe");
  }
  int pid = enter_root(root, err);
  if (pid == 0) {
    close(ep[0]);
    struct ferry_err e = {0};
    if (extract_archive_fd(tar, dir, EXTRACT_PLAIN, NULL, "copy", &e) < 0) {
      (void)!write(ep[1], e.msg, strlen(e.msg));
      _exit(e.klass == FERRY_E_INVALID ? 2 : 1);
    }
    _exit(0);
  }
  close(tar);
  close(ep[1]);
  if (pid < 0) {
    close(ep[0]);
    return pid;
  }
  char msg[FERRY_ERR_MSG];
  size_t len = 0;
  ssize_t n;
  while (len < sizeof msg - 1 && (n = read(ep[0], msg + len, sizeof msg - 1 - len)) != 0) {
    if (n < 0) {
      if (errno == EINTR)
        continue;
      break;
    }
    len += (size_t)n;
  }
  msg[len] = '\0';
  close(ep[0]);
  int code = child_wait(pid);
  if (code == 0)
    return 0;
  if (code == 2)
    return FERRY_INVALID(err, "%s", msg);
  return FERRY_INTERNAL(err, "copy into %s: %s", dir, len ? msg : "the copy failed");
}
