#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "util/usock.h"

/* sa for path; a long path as /proc/self/fd/N/LEAF with *dirfd = N. */
static int usock_addr(const char *path, struct sockaddr_un *sa, int *dirfd)
{
  *dirfd = -1;
  *sa = (struct sockaddr_un){.sun_family = AF_UNIX};
  size_t n = strlen(path);
  if (n < sizeof sa->sun_path) {
    memcpy(sa->sun_path, path, n);
    return 0;
  }
  const char *slash = strrchr(path, '/');
  if (!slash || slash == path || strlen(slash + 1) > 64)
    return -ENAMETOOLONG;
  char dir[4096];
  size_t dl = (size_t)(slash - path);
  if (dl >= sizeof dir)
    return -ENAMETOOLONG;
  memcpy(dir, path, dl);
  dir[dl] = '\0';
  int d = open(dir, O_PATH | O_DIRECTORY | O_CLOEXEC);
  if (d < 0)
    return -errno;
  snprintf(sa->sun_path, sizeof sa->sun_path, "/proc/self/fd/%d/%s", d, slash + 1);
  *dirfd = d;
  return 0;
}

/* A socket and the address of path; the socket, or -errno. *dirfd is
 * closed by the caller once bound or connected. */
static int usock_open(const char *path, struct sockaddr_un *sa, int *dirfd)
{
  int r = usock_addr(path, sa, dirfd);
  if (r < 0)
    return r;
  int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) {
    r = -errno;
    if (*dirfd >= 0)
      close(*dirfd);
    return r;
  }
  return fd;
}

int usock_listen(const char *path)
{
  struct sockaddr_un sa;
  int d, fd = usock_open(path, &sa, &d);
  if (fd < 0)
    return fd;
  unlink(sa.sun_path);
  mode_t old = umask(0177);
  int r = bind(fd, (struct sockaddr *)&sa, sizeof sa) < 0 || listen(fd, 16) < 0 ? -errno : fd;
  umask(old);
  if (r < 0)
    close(fd);
  if (d >= 0)
    close(d);
  return r;
}

int usock_connect(const char *path)
{
  struct sockaddr_un sa;
  int d, fd = usock_open(path, &sa, &d);
  if (fd < 0)
    return fd;
  int r = connect(fd, (struct sockaddr *)&sa, sizeof sa) < 0 ? -errno : fd;
  if (r < 0)
    close(fd);
  if (d >= 0)
    close(d);
  return r;
}

int usock_recv_fd(int fd)
{
  char data[4096];
  struct iovec iov = {.iov_base = data, .iov_len = sizeof data};
  union {
    struct cmsghdr h;
    char buf[CMSG_SPACE(sizeof(int) * 4)];
  } u;
  struct msghdr m = {.msg_iov = &iov, .msg_iovlen = 1, .msg_control = u.buf,
                     .msg_controllen = sizeof u.buf};
  ssize_t n;
  while ((n = recvmsg(fd, &m, MSG_CMSG_CLOEXEC)) < 0 && errno == EINTR)
    ;
  if (n < 0)
    return -errno;
  int got = -EPROTO;
  for (struct cmsghdr *c = CMSG_FIRSTHDR(&m); c; c = CMSG_NXTHDR(&m, c)) {
    if (c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS)
      continue;
    size_t k = (c->cmsg_len - CMSG_LEN(0)) / sizeof(int);
    int fds[4];
    memcpy(fds, CMSG_DATA(c), k * sizeof(int) < sizeof fds ? k * sizeof(int) : sizeof fds);
    for (size_t i = 0; i < k && i < 4; i++) {
      if (got < 0)
        got = fds[i];
      else
        close(fds[i]);
    }
  }
  return got;
}
