#include "util/spawn.h"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include "util/cleanup.h"
#include "util/fs.h"

extern char **environ;

void spawn_result_free(struct spawn_result *r)
{
  if (!r)
    return;
  free(r->out);
  free(r->errout);
  r->out = r->errout = NULL;
}

struct buf {
  char *p;
  size_t len, cap, max;
};

static void buf_add(struct buf *b, const char *d, size_t n)
{
  if (b->len + n > b->max)
    n = b->max > b->len ? b->max - b->len : 0;
  if (n == 0)
    return;
  if (b->len + n + 1 > b->cap) {
    size_t nc = b->cap ? b->cap : 4096;
    while (nc < b->len + n + 1)
      nc *= 2;
    char *np = realloc(b->p, nc);
    if (!np)
      return;
    b->p = np;
    b->cap = nc;
  }
  memcpy(b->p + b->len, d, n);
  b->len += n;
  b->p[b->len] = '\0';
}

/* Forks and runs argv (looked up on PATH) with stdout and stderr on out_fd
 * and err_fd (the caller's: it closes them), stdin from opts->stdin_path
 * (default /dev/null), opts' working directory, environment and passed
 * fds. The child dies with the agent when pdeath, unless opts say it must
 * outlive it. Fails with the exec's errno when the program could not run. */
static int fork_exec(const char *const *argv, const struct spawn_opts *opts, bool pdeath,
                     int in_fd, int out_fd, int err_fd, pid_t *pid_out, struct ferry_err *err)
{
  int execp[2];
  if (pipe2(execp, O_CLOEXEC) < 0)
    return ferry_err_sys(err, -errno, "pipe");
  pid_t parent = getpid();
  pid_t pid = fork();
  if (pid < 0) {
    int e = -errno;
    close(execp[0]);
    close(execp[1]);
    return ferry_err_sys(err, e, "fork %s", argv[0]);
  }
  if (pid == 0) {
    if (opts->outlive_parent) {
      signal(SIGPIPE, SIG_IGN);
      setsid();
    } else if (pdeath) {
      prctl(PR_SET_PDEATHSIG, SIGKILL);
      if (getppid() != parent)
        _exit(127);
    }
    sigset_t all;
    sigemptyset(&all);
    sigprocmask(SIG_SETMASK, &all, NULL);
    int in = in_fd >= 0 ? in_fd : open(opts->stdin_path ? opts->stdin_path : "/dev/null", O_RDONLY);
    int from1 = -1, from2 = -1, from3 = -1;
    if (in < 0 || dup2(in, 0) < 0 || dup2(out_fd, 1) < 0 || dup2(err_fd, 2) < 0)
      goto fail;
    if (opts->cwd && chdir(opts->cwd) < 0)
      goto fail;
    /* Each passed fd goes through a copy above both targets first, so that
     * the first dup2 cannot replace the second fd. */
    if (opts->pass_as > 2 && (from1 = fcntl(opts->pass_fd, F_DUPFD_CLOEXEC, 1024)) < 0)
      goto fail;
    if (opts->pass_as2 > 2 && (from2 = fcntl(opts->pass_fd2, F_DUPFD_CLOEXEC, 1024)) < 0)
      goto fail;
    if (opts->pass_as3 > 2 && (from3 = fcntl(opts->pass_fd3, F_DUPFD_CLOEXEC, 1024)) < 0)
      goto fail;
    if ((from1 >= 0 && dup2(from1, opts->pass_as) < 0) ||
        (from2 >= 0 && dup2(from2, opts->pass_as2) < 0) ||
        (from3 >= 0 && dup2(from3, opts->pass_as3) < 0))
      goto fail;
    if (opts->envp)
      execvpe(argv[0], (char *const *)argv, (char *const *)opts->envp);
    else
      execvp(argv[0], (char *const *)argv);
  fail:;
    int e = errno;
    (void)!write(execp[1], &e, sizeof e);
    _exit(127);
  }
  close(execp[1]);
  int child_errno = 0;
  ssize_t n;
  while ((n = read(execp[0], &child_errno, sizeof child_errno)) < 0 && errno == EINTR)
    ;
  close(execp[0]);
  if (n == (ssize_t)sizeof child_errno) {
    while (waitpid(pid, NULL, 0) < 0 && errno == EINTR)
      ;
    return ferry_err_sys(err, -child_errno, "run %s", argv[0]);
  }
  *pid_out = pid;
  return 0;
}

/* fork_exec with stdout and stderr on pipes whose read ends it returns
 * (close-on-exec); the child dies with the agent unless opts say otherwise. */
static int start_piped(const char *const *argv, const struct spawn_opts *opts, pid_t *pid_out,
                       int *in_fd, int *out_fd, int *err_fd, struct ferry_err *err)
{
  int outp[2] = {-1, -1}, errp[2] = {-1, -1}, inp[2] = {-1, -1};
  if (pipe2(outp, O_CLOEXEC) < 0 || pipe2(errp, O_CLOEXEC) < 0 ||
      (in_fd && pipe2(inp, O_CLOEXEC) < 0)) {
    int r = ferry_err_sys(err, -errno, "pipe");
    for (int i = 0; i < 2; i++) {
      if (outp[i] >= 0)
        close(outp[i]);
      if (errp[i] >= 0)
        close(errp[i]);
      if (inp[i] >= 0)
        close(inp[i]);
    }
    return r;
  }
  int r = fork_exec(argv, opts, true, inp[0], outp[1], errp[1], pid_out, err);
  close(outp[1]);
  close(errp[1]);
  if (inp[0] >= 0)
    close(inp[0]);
  if (r < 0) {
    close(outp[0]);
    close(errp[0]);
    if (inp[1] >= 0)
      close(inp[1]);
    return r;
  }
  if (in_fd)
    *in_fd = inp[1];
  *out_fd = outp[0];
  *err_fd = errp[0];
  return 0;
}

int spawn_run(const char *const *argv, const struct spawn_opts *opts, struct spawn_result *res,
              struct ferry_err *err)
{
  static const struct spawn_opts defaults = {0};
  if (!opts)
    opts = &defaults;
  int out_fd, err_fd;
  pid_t pid;
  int fr = start_piped(argv, opts, &pid, NULL, &out_fd, &err_fd, err);
  if (fr < 0)
    return fr;

  size_t max = opts->max_output ? opts->max_output : (1u << 20);
  struct buf bo = {.max = max}, be = {.max = max};
  int timeout = opts->timeout_ms > 0 ? opts->timeout_ms : 120000;
  uint64_t deadline = now_mono_ms() + (uint64_t)timeout;
  struct pollfd pfd[2] = {{.fd = out_fd, .events = POLLIN}, {.fd = err_fd, .events = POLLIN}};
  int open_fds = 2;
  bool timed_out = false;
  while (open_fds > 0) {
    uint64_t now = now_mono_ms();
    if (now >= deadline) {
      timed_out = true;
      break;
    }
    int pr = poll(pfd, 2, (int)(deadline - now));
    if (pr < 0) {
      if (errno == EINTR)
        continue;
      break;
    }
    for (int i = 0; i < 2; i++) {
      if (pfd[i].fd < 0 || !(pfd[i].revents & (POLLIN | POLLHUP | POLLERR)))
        continue;
      char tmp[8192];
      ssize_t r = read(pfd[i].fd, tmp, sizeof tmp);
      if (r > 0) {
        buf_add(i == 0 ? &bo : &be, tmp, (size_t)r);
      } else if (r == 0 || (errno != EINTR && errno != EAGAIN)) {
        close(pfd[i].fd);
        pfd[i].fd = -1;
        open_fds--;
      }
    }
  }
  for (int i = 0; i < 2; i++)
    if (pfd[i].fd >= 0)
      close(pfd[i].fd);
  if (timed_out)
    kill(pid, SIGKILL);
  int status = 0;
  while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
    ;
  if (timed_out) {
    free(bo.p);
    free(be.p);
    return ferry_err_set(err, -ETIMEDOUT, FERRY_E_INTERNAL, "%s: timed out after %d ms", argv[0],
                         timeout);
  }
  res->out = bo.p ? bo.p : xstrdup("");
  res->errout = be.p ? be.p : xstrdup("");
  if (WIFEXITED(status)) {
    res->exit_code = WEXITSTATUS(status);
    res->term_signal = 0;
  } else {
    res->exit_code = -1;
    res->term_signal = WIFSIGNALED(status) ? WTERMSIG(status) : 0;
  }
  return 0;
}

char *tail_lines(const char *s, size_t max)
{
  if (!s)
    return xstrdup("");
  size_t len = strlen(s);
  while (len > 0 && (s[len - 1] == '\n' || s[len - 1] == ' '))
    len--;
  size_t start = len > max ? len - max : 0;
  if (start > 0) {
    const char *nl = memchr(s + start, '\n', len - start);
    if (nl)
      start = (size_t)(nl - s) + 1;
  }
  char *o = malloc(2 * (len - start) + 1);
  if (!o)
    abort();
  size_t j = 0;
  for (size_t i = start; i < len; i++) {
    if (s[i] == '\n') {
      if (j > 0 && o[j - 1] != ' ') {
        o[j++] = ';';
        o[j++] = ' ';
      }
    } else {
      o[j++] = s[i];
    }
  }
  o[j] = '\0';
  return o;
}

int spawn_check(const char *const *argv, char **out, struct ferry_err *err)
{
  struct spawn_result res = {0};
  int r = spawn_run(argv, NULL, &res, err);
  if (r < 0)
    return r;
  if (res.exit_code != 0) {
    _cleanup_free_ char *t = tail_lines(res.errout[0] ? res.errout : res.out, 600);
    if (res.term_signal)
      r = ferry_err_set(err, -EIO, FERRY_E_INTERNAL, "%s %s: killed by signal %d: %s", argv[0],
                        argv[1] ? argv[1] : "", res.term_signal, t);
    else
      r = ferry_err_set(err, -EIO, FERRY_E_INTERNAL, "%s %s: exit status %d: %s", argv[0],
                        argv[1] ? argv[1] : "", res.exit_code, t);
    spawn_result_free(&res);
    return r;
  }
  if (out)
    *out = TAKE_PTR(res.out);
  spawn_result_free(&res);
  return 0;
}

int spawn_batch(const char *const *argv, const char *script, struct ferry_err *err)
{
  char path[] = "/tmp/ferry-batch-XXXXXX";
  int fd = mkstemp(path);
  if (fd < 0)
    return ferry_err_sys(err, -errno, "%s: batch file", argv[0]);
  size_t len = strlen(script), off = 0;
  while (off < len) {
    ssize_t w = write(fd, script + off, len - off);
    if (w < 0 && errno == EINTR)
      continue;
    if (w <= 0) {
      int e = -errno;
      close(fd);
      unlink(path);
      return ferry_err_sys(err, e ? e : -EIO, "%s: batch file", argv[0]);
    }
    off += (size_t)w;
  }
  close(fd);
  size_t n = 0;
  while (argv[n])
    n++;
  const char **full = calloc(n + 2, sizeof *full);
  if (!full)
    abort();
  memcpy(full, argv, n * sizeof *full);
  full[n] = path;
  int r = spawn_check(full, NULL, err);
  free(full);
  unlink(path);
  return r;
}

int spawn_bg(const char *const *argv, const char *log_path, int *pid_out, struct ferry_err *err)
{
  return spawn_bg_opts(argv, log_path, NULL, pid_out, err);
}

int spawn_bg_opts(const char *const *argv, const char *log_path, const struct spawn_opts *opts,
                  int *pid_out, struct ferry_err *err)
{
  static const struct spawn_opts none = {0};
  int logfd = open(log_path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
  if (logfd < 0)
    return ferry_err_sys(err, -errno, "open %s", log_path);
  pid_t pid;
  int r = fork_exec(argv, opts ? opts : &none, false, -1, logfd, logfd, &pid, err);
  close(logfd);
  if (r == 0)
    *pid_out = pid;
  return r;
}

int spawn_piped(const char *const *argv, int *pid_out, int *out_fd, int *err_fd,
                struct ferry_err *err)
{
  static const struct spawn_opts none = {0};
  return start_piped(argv, &none, pid_out, NULL, out_fd, err_fd, err);
}

int spawn_piped_in(const char *const *argv, const struct spawn_opts *opts, int *pid_out, int *in_fd,
                   int *out_fd, int *err_fd, struct ferry_err *err)
{
  return start_piped(argv, opts, pid_out, in_fd, out_fd, err_fd, err);
}

int spawn_reap(int pid, int timeout_ms, bool kill_after)
{
  uint64_t deadline = now_mono_ms() + (uint64_t)timeout_ms;
  int status;
  for (;;) {
    pid_t r = waitpid(pid, &status, WNOHANG);
    if (r == pid)
      return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + (WIFSIGNALED(status) ? WTERMSIG(status) : 0);
    if (r < 0)
      return -ECHILD;
    if (now_mono_ms() >= deadline)
      break;
    usleep(20000);
  }
  if (!kill_after)
    return -ETIMEDOUT;
  kill(pid, SIGKILL);
  waitpid(pid, &status, 0);
  return -ETIMEDOUT;
}
