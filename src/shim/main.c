/* ferry-shim: one per running container, like conmon. It runs
 * `runc run -d` or `runc restore -d` with the container's stdio on its pipes,
 * becomes the container's parent (child subreaper), copies its output to the
 * log, and writes exit.json when the container's init exits. It tells the
 * agent "ok PID" or "error MESSAGE" on the sync fd once runc is done, so the
 * agent never waits on the container itself and can restart at any time. */
#include <fcntl.h>
#include <getopt.h>
#include <poll.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/signalfd.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "util/cleanup.h"
#include "util/fs.h"
#include "util/json.h"
#include "util/spawn.h"

struct opts {
  const char *log, *exit_file, *pid_file, *runc_log;
  int sync_fd;
  uint64_t log_max; /* bytes; 0: no cap */
};

/* The container's output, capped: when the log would pass log_max it
 * becomes LOG.1 (replacing the older one) and a new LOG begins, so that a
 * chatty container keeps at most twice log_max on disk. */
struct logf {
  int fd;
  uint64_t size;
};

static void log_write(struct logf *l, const struct opts *o, const char *buf, size_t n)
{
  if (o->log_max > 0 && l->size > 0 && l->size + n > o->log_max) {
    char old[4096];
    snprintf(old, sizeof old, "%s.1", o->log);
    if (rename(o->log, old) == 0) {
      int fd = open(o->log, O_WRONLY | O_CREAT | O_APPEND | O_TRUNC | O_CLOEXEC, 0600);
      if (fd >= 0) {
        close(l->fd);
        l->fd = fd;
        l->size = 0;
      }
    }
  }
  ssize_t w = write(l->fd, buf, n);
  if (w > 0)
    l->size += (uint64_t)w;
}

static void say(int fd, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void say(int fd, const char *fmt, ...)
{
  if (fd < 0)
    return;
  va_list ap;
  va_start(ap, fmt);
  vdprintf(fd, fmt, ap);
  va_end(ap);
}

static char *runc_error(const char *runc_log)
{
  /* runc's text log: lines with level=error carry msg="..." */
  _cleanup_free_ char *buf = NULL;
  if (read_file(runc_log, 1u << 20, &buf, NULL, NULL) < 0)
    return xstrdup("runc failed (no log)");
  char *best = NULL;
  for (char *line = strtok(buf, "\n"); line; line = strtok(NULL, "\n")) {
    if (strstr(line, "level=error")) {
      char *m = strstr(line, "msg=");
      free(best);
      best = xstrdup(m ? m + 4 : line);
    }
  }
  return best ? best : tail_lines(buf, 400);
}

static void write_exit(const char *path, int status)
{
  json_t *j = json_object();
  if (WIFEXITED(status)) {
    json_object_set_new(j, "exit_code", json_integer(WEXITSTATUS(status)));
  } else if (WIFSIGNALED(status)) {
    json_object_set_new(j, "exit_code", json_integer(128 + WTERMSIG(status)));
    json_object_set_new(j, "signal", json_integer(WTERMSIG(status)));
  }
  char ts[40];
  format_time(now_wall_ms(), ts, sizeof ts);
  json_object_set_new(j, "finished_at", json_string(ts));
  json_save_atomic(path, j, NULL);
  json_decref(j);
}

int main(int argc, char **argv)
{
  struct opts o = {.sync_fd = -1};
  static const struct option lo[] = {{"log", required_argument, 0, 'l'},
                                     {"exit-file", required_argument, 0, 'e'},
                                     {"pid-file", required_argument, 0, 'p'},
                                     {"runc-log", required_argument, 0, 'r'},
                                     {"sync-fd", required_argument, 0, 's'},
                                     {"log-max", required_argument, 0, 'm'},
                                     {0, 0, 0, 0}};
  int c;
  while ((c = getopt_long(argc, argv, "+", lo, NULL)) != -1) {
    switch (c) {
    case 'l': o.log = optarg; break;
    case 'e': o.exit_file = optarg; break;
    case 'p': o.pid_file = optarg; break;
    case 'r': o.runc_log = optarg; break;
    case 's': o.sync_fd = atoi(optarg); break;
    case 'm': o.log_max = strtoull(optarg, NULL, 10); break;
    default: return 2;
    }
  }
  if (!o.log || !o.exit_file || !o.pid_file || optind >= argc) {
    fprintf(stderr, "usage: ferry-shim --log F --exit-file F --pid-file F [--runc-log F] "
                    "[--sync-fd N] [--log-max BYTES] -- RUNC-ARGV...\n");
    return 2;
  }
  char **rargv = argv + optind;
  setsid();
  prctl(PR_SET_CHILD_SUBREAPER, 1);
  signal(SIGPIPE, SIG_IGN);
  sigset_t mask;
  sigemptyset(&mask);
  sigaddset(&mask, SIGCHLD);
  sigaddset(&mask, SIGTERM);
  sigaddset(&mask, SIGINT);
  sigaddset(&mask, SIGHUP);
  sigprocmask(SIG_BLOCK, &mask, NULL);
  int sfd = signalfd(-1, &mask, SFD_CLOEXEC | SFD_NONBLOCK);

  struct logf lf = {.fd = open(o.log, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600)};
  struct stat lst;
  if (lf.fd >= 0 && fstat(lf.fd, &lst) == 0)
    lf.size = (uint64_t)lst.st_size;
  int outp[2], errp[2];
  if (lf.fd < 0 || sfd < 0 || pipe2(outp, O_CLOEXEC) < 0 || pipe2(errp, O_CLOEXEC) < 0) {
    say(o.sync_fd, "error ferry-shim: setup: %s\n", strerror(errno));
    return 1;
  }
  pid_t runc = fork();
  if (runc == 0) {
    sigprocmask(SIG_UNBLOCK, &mask, NULL);
    int nul = open("/dev/null", O_RDONLY);
    dup2(nul, 0);
    dup2(outp[1], 1);
    dup2(errp[1], 2);
    if (o.sync_fd >= 0)
      close(o.sync_fd);
    execvp(rargv[0], rargv);
    _exit(127);
  }
  close(outp[1]);
  close(errp[1]);
  if (runc < 0) {
    say(o.sync_fd, "error ferry-shim: fork: %s\n", strerror(errno));
    return 1;
  }

  pid_t ctr = 0;
  int ctr_status = 0;
  bool ctr_done = false, runc_done = false;
  /* Exits reaped before we knew the container's pid. */
  pid_t early_pid[64];
  int early_status[64], nearly = 0;
  struct pollfd pfd[3] = {{.fd = sfd, .events = POLLIN},
                          {.fd = outp[0], .events = POLLIN},
                          {.fd = errp[0], .events = POLLIN}};
  uint64_t done_at = 0;
  for (;;) {
    int timeout = -1;
    if (ctr_done) {
      if (pfd[1].fd < 0 && pfd[2].fd < 0)
        break;
      if (!done_at)
        done_at = now_mono_ms();
      uint64_t el = now_mono_ms() - done_at;
      if (el >= 2000)
        break; /* something else holds the pipes; the container is gone */
      timeout = (int)(2000 - el);
    }
    int pr = poll(pfd, 3, timeout);
    if (pr < 0 && errno != EINTR)
      break;
    for (int i = 1; i < 3; i++) {
      if (pfd[i].fd >= 0 && (pfd[i].revents & (POLLIN | POLLHUP | POLLERR))) {
        char buf[16384];
        ssize_t n = read(pfd[i].fd, buf, sizeof buf);
        if (n > 0) {
          log_write(&lf, &o, buf, (size_t)n);
        } else if (n == 0 || errno != EINTR) {
          close(pfd[i].fd);
          pfd[i].fd = -1;
        }
      }
    }
    if (pfd[0].revents & POLLIN) {
      struct signalfd_siginfo si;
      while (read(sfd, &si, sizeof si) == (ssize_t)sizeof si) {
        if (si.ssi_signo != SIGCHLD)
          continue; /* the container's fate is runc's business, not ours */
      }
      for (;;) {
        int st;
        pid_t p = waitpid(-1, &st, WNOHANG);
        if (p <= 0)
          break;
        if (p == runc) {
          runc_done = true;
          if (!(WIFEXITED(st) && WEXITSTATUS(st) == 0)) {
            _cleanup_free_ char *msg = o.runc_log ? runc_error(o.runc_log) : xstrdup("runc failed");
            say(o.sync_fd, "error %s\n", msg);
            return 1;
          }
          _cleanup_free_ char *pidtxt = NULL;
          if (read_file(o.pid_file, 64, &pidtxt, NULL, NULL) < 0 || atoi(pidtxt) <= 0) {
            say(o.sync_fd, "error runc gave no container pid\n");
            return 1;
          }
          ctr = atoi(pidtxt);
          say(o.sync_fd, "ok %d\n", ctr);
          if (o.sync_fd >= 0)
            close(o.sync_fd);
          o.sync_fd = -1;
          for (int k = 0; k < nearly; k++) {
            if (early_pid[k] == ctr) {
              ctr_done = true;
              ctr_status = early_status[k];
            }
          }
        } else if (ctr && p == ctr) {
          ctr_done = true;
          ctr_status = st;
        } else if (!runc_done && nearly < 64) {
          early_pid[nearly] = p;
          early_status[nearly++] = st;
        }
      }
    }
  }
  write_exit(o.exit_file, ctr_status);
  return 0;
}
