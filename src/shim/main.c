/* ferry-shim: one per running container, like conmon. It runs
 * `runc run -d` or `runc restore -d` with the container's stdio on its pipes
 * (or its terminal, received on runc's console socket), becomes the
 * container's parent (child subreaper), copies its output to the log, and
 * writes exit.json when the container's init exits. It tells the agent "ok
 * PID" or "error MESSAGE" on the sync fd once runc is done, so the agent
 * never waits on the container itself and can restart at any time.
 *
 * With --attach, clients (the agent, for `ferry attach` and `run -it`)
 * connect to a unix socket there: each gets the container's output as it
 * comes, in frames (util/frame.h), and may send input, terminal sizes and
 * the end of input. A client that does not read holds the container's output
 * back (as a terminal would) once 1 MiB waits for it.
 *
 * With --exec it is the parent of one `runc exec --detach` command instead:
 * it becomes the command's parent (child subreaper) and exits with its exit
 * code (128+N for a signal) as soon as the command ends, whatever children
 * it left holding its output. Without --console the command has the shim's
 * own stdio (runc passes it through); with --console (and `--tty
 * --console-socket` in runc's arguments: runc hands a terminal's master only
 * to a detached exec) the shim takes the master from that socket, relays
 * the terminal on its own stdin and stdout, and sets its size from what
 * comes on --resize-fd (rows, cols: 16-bit big-endian). */
#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <getopt.h>
#include <poll.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/signalfd.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "util/cleanup.h"
#include "util/fs.h"
#include "util/json.h"
#include "util/frame.h"
#include "util/spawn.h"
#include "util/usock.h"

struct opts {
  const char *log, *exit_file, *pid_file, *runc_log, *attach;
  int sync_fd;
  uint64_t log_max; /* bytes; 0: no cap */
  bool tty, stdin_open, backlog;
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

/* A growing byte queue. */
struct q {
  char *p;
  size_t len, off;
};

static void q_put(struct q *q, const void *d, size_t n)
{
  if (q->off && q->off == q->len)
    q->off = q->len = 0;
  char *np = realloc(q->p, q->len + n);
  if (!np)
    abort();
  q->p = np;
  memcpy(q->p + q->len, d, n);
  q->len += n;
}

static size_t q_size(const struct q *q) { return q->len - q->off; }

/* Writes what it can without blocking; false when fd is broken. */
static bool q_flush(struct q *q, int fd)
{
  while (q_size(q) > 0) {
    ssize_t w = write(fd, q->p + q->off, q_size(q));
    if (w < 0)
      return errno == EAGAIN || errno == EINTR;
    q->off += (size_t)w;
  }
  free(q->p);
  *q = (struct q){0};
  return true;
}

/* --exec: see the top. */
static int exec_main(const char *console, const char *pid_file, int resize_fd, char **rargv)
{
  prctl(PR_SET_CHILD_SUBREAPER, 1);
  signal(SIGPIPE, SIG_IGN);
  sigset_t mask;
  sigemptyset(&mask);
  sigaddset(&mask, SIGCHLD);
  sigprocmask(SIG_BLOCK, &mask, NULL);
  int sfd = signalfd(-1, &mask, SFD_CLOEXEC | SFD_NONBLOCK);
  int lfd = console ? usock_listen(console) : -1;
  if (sfd < 0 || (console && lfd < 0)) {
    fprintf(stderr, "ferry-shim: console socket %s: %s\n", console, strerror(lfd < 0 ? -lfd : errno));
    return 125;
  }
  pid_t runc = fork();
  if (runc == 0) {
    sigprocmask(SIG_UNBLOCK, &mask, NULL);
    if (console) { /* the terminal is ours to relay; runc's own words go to stderr */
      int nul = open("/dev/null", O_RDWR);
      dup2(nul, 0);
      dup2(2, 1);
    }
    execvp(rargv[0], rargv);
    _exit(127);
  }
  if (!console) /* the command's stdio is ours: not read here */
    resize_fd = -1;
  if (runc < 0)
    return 125;
  int master = -1, status = 0;
  pid_t cmd = 0;
  /* children reaped before runc said which one is the command (a command
   * that ends at once can go before runc does): their statuses, so that
   * the command's is not lost */
  struct {
    pid_t pid;
    int st;
  } early[64];
  size_t n_early = 0;
  bool runc_done = false, cmd_done = false, in_open = true;
  struct q to_term = {0};
  struct winsize size = {0};
  uint64_t done_at = 0;
  for (;;) {
    if (cmd_done && (master < 0 || !console))
      break;
    int timeout = -1;
    if (cmd_done) { /* what the terminal still has, for up to 2 s */
      if (!done_at)
        done_at = now_mono_ms();
      uint64_t el = now_mono_ms() - done_at;
      if (el >= 2000)
        break;
      timeout = (int)(2000 - el);
    }
    struct pollfd pf[5] = {{.fd = sfd, .events = POLLIN},
                           {.fd = master < 0 ? lfd : -1, .events = POLLIN},
                           {.fd = master, .events = (short)(POLLIN | (q_size(&to_term) ? POLLOUT : 0))},
                           {.fd = master >= 0 && in_open && q_size(&to_term) < (1u << 20) ? 0 : -1,
                            .events = POLLIN},
                           {.fd = resize_fd, .events = POLLIN}};
    if (poll(pf, 5, timeout) < 0 && errno != EINTR)
      break;
    if (pf[1].revents & POLLIN) {
      int c = accept4(lfd, NULL, NULL, SOCK_CLOEXEC);
      if (c >= 0) {
        master = usock_recv_fd(c);
        close(c);
        if (master >= 0) {
          fcntl(master, F_SETFL, O_NONBLOCK);
          if (size.ws_row)
            ioctl(master, TIOCSWINSZ, &size);
        }
      }
    }
    if (master >= 0 && (pf[2].revents & (POLLIN | POLLHUP | POLLERR))) {
      char buf[16384];
      ssize_t n = read(master, buf, sizeof buf);
      if (n > 0) {
        for (ssize_t off = 0; off < n;) { /* our stdout is the agent's pipe: blocking */
          ssize_t w = write(1, buf + off, (size_t)(n - off));
          if (w <= 0 && errno != EINTR)
            break;
          if (w > 0)
            off += w;
        }
      } else if (n == 0 || (errno != EINTR && errno != EAGAIN)) {
        close(master); /* EIO: the terminal's last user went */
        master = -1;
      }
    }
    if (master >= 0 && (pf[2].revents & POLLOUT) && !q_flush(&to_term, master)) {
      free(to_term.p);
      to_term = (struct q){0};
    }
    if (pf[3].revents & (POLLIN | POLLHUP | POLLERR)) {
      char buf[16384];
      ssize_t n = read(0, buf, sizeof buf);
      if (n > 0) {
        q_put(&to_term, buf, (size_t)n);
        if (!q_flush(&to_term, master)) {
          free(to_term.p);
          to_term = (struct q){0};
        }
      } else if (n == 0 || errno != EINTR) {
        in_open = false;
      }
    }
    if (pf[4].revents & (POLLIN | POLLHUP | POLLERR)) {
      unsigned char rc[4];
      ssize_t n = read(resize_fd, rc, sizeof rc);
      if (n == 4) { /* kept for a terminal that is still to come */
        size = (struct winsize){.ws_row = (unsigned short)(rc[0] << 8 | rc[1]),
                                .ws_col = (unsigned short)(rc[2] << 8 | rc[3])};
        if (master >= 0)
          ioctl(master, TIOCSWINSZ, &size);
      } else if (n <= 0) {
        resize_fd = -1;
      }
    }
    if (pf[0].revents & POLLIN) {
      struct signalfd_siginfo si;
      while (read(sfd, &si, sizeof si) == (ssize_t)sizeof si)
        ;
      for (;;) {
        int st;
        pid_t p = waitpid(-1, &st, WNOHANG);
        if (p <= 0)
          break;
        if (p == runc) {
          runc_done = true;
          if (!(WIFEXITED(st) && WEXITSTATUS(st) == 0))
            return 126; /* runc said why on stderr */
          _cleanup_free_ char *txt = NULL;
          if (read_file(pid_file, 64, &txt, NULL, NULL) < 0 || atoi(txt) <= 0) {
            fprintf(stderr, "ferry-shim: runc gave no pid for the command\n");
            return 125;
          }
          cmd = atoi(txt);
          for (size_t k = 0; k < (n_early < 64 ? n_early : 64) && !cmd_done; k++) {
            if (early[k].pid == cmd) { /* it went before runc: its status was kept */
              cmd_done = true;
              status = early[k].st;
            }
          }
          if (!cmd_done && kill(cmd, 0) < 0 && errno == ESRCH)
            cmd_done = true; /* gone, and not reaped here: its status is lost */
        } else if (runc_done && p == cmd) {
          cmd_done = true;
          status = st;
        } else if (!runc_done) {
          early[n_early % 64].pid = p;
          early[n_early % 64].st = st;
          n_early++;
        }
      }
    }
  }
  if (console)
    unlink(console);
  return WIFSIGNALED(status) ? 128 + WTERMSIG(status) : WEXITSTATUS(status);
}

#define MAX_CLIENTS 8
#define CLIENT_OUT_MAX (1u << 20)
#define BACKLOG_MAX (64u << 10)

struct client {
  int fd;
  struct q out;
  char in[FRAME_HDR + 65536];
  size_t in_len;
};

struct shim {
  struct opts *o;
  struct logf lf;
  int master;      /* the terminal (tty), or -1 */
  int in_w;        /* the container's stdin pipe (stdin without tty), or -1 */
  bool close_in;   /* close in_w once in_q is written */
  struct q in_q;   /* input waiting for the container */
  struct client cl[MAX_CLIENTS];
  struct q backlog;
  bool had_client;
};

static void client_drop(struct client *c)
{
  if (c->fd >= 0)
    close(c->fd);
  free(c->out.p);
  *c = (struct client){.fd = -1};
}

/* Output of the container: to the log, to every client (or the backlog
 * kept for the first one). */
static void output(struct shim *s, int type, const char *buf, size_t n)
{
  log_write(&s->lf, s->o, buf, n);
  char h[FRAME_HDR];
  frame_header(h, type, n);
  bool any = false;
  for (int i = 0; i < MAX_CLIENTS; i++) {
    struct client *c = &s->cl[i];
    if (c->fd < 0)
      continue;
    any = true;
    q_put(&c->out, h, sizeof h);
    q_put(&c->out, buf, n);
    if (!q_flush(&c->out, c->fd))
      client_drop(c);
  }
  if (!any && s->o->backlog && !s->had_client && q_size(&s->backlog) + n + FRAME_HDR <= BACKLOG_MAX) {
    q_put(&s->backlog, h, sizeof h);
    q_put(&s->backlog, buf, n);
  }
}

/* One frame from a client. */
static void client_frame(struct shim *s, int type, const char *d, size_t n)
{
  if (type == FRAME_STDIN && (s->master >= 0 || s->in_w >= 0) && !s->close_in) {
    q_put(&s->in_q, d, n);
  } else if (type == FRAME_RESIZE && n == 4 && s->master >= 0) {
    uint16_t rows, cols;
    memcpy(&rows, d, 2);
    memcpy(&cols, d + 2, 2);
    struct winsize ws = {.ws_row = ntohs(rows), .ws_col = ntohs(cols)};
    ioctl(s->master, TIOCSWINSZ, &ws);
  } else if (type == FRAME_CLOSE && s->in_w >= 0) {
    s->close_in = true; /* a terminal has no end of input: ignored there */
  }
}

static void client_read(struct shim *s, struct client *c)
{
  ssize_t n = read(c->fd, c->in + c->in_len, sizeof c->in - c->in_len);
  if (n <= 0) {
    if (n == 0 || (errno != EINTR && errno != EAGAIN))
      client_drop(c);
    return;
  }
  c->in_len += (size_t)n;
  size_t off = 0;
  while (c->in_len - off >= FRAME_HDR) {
    size_t len = 0;
    int type = frame_parse(c->in + off, &len);
    if (type < 0 || len > sizeof c->in - FRAME_HDR) {
      client_drop(c);
      return;
    }
    if (c->in_len - off < FRAME_HDR + len)
      break;
    client_frame(s, type, c->in + off + FRAME_HDR, len);
    off += FRAME_HDR + len;
  }
  memmove(c->in, c->in + off, c->in_len - off);
  c->in_len -= off;
}

static void client_accept(struct shim *s, int lfd)
{
  int fd = accept4(lfd, NULL, NULL, SOCK_CLOEXEC | SOCK_NONBLOCK);
  if (fd < 0)
    return;
  for (int i = 0; i < MAX_CLIENTS; i++) {
    if (s->cl[i].fd < 0) {
      s->cl[i].fd = fd;
      if (!s->had_client && q_size(&s->backlog)) {
        q_put(&s->cl[i].out, s->backlog.p + s->backlog.off, q_size(&s->backlog));
        free(s->backlog.p);
        s->backlog = (struct q){0};
      }
      s->had_client = true;
      if (!q_flush(&s->cl[i].out, fd))
        client_drop(&s->cl[i]);
      return;
    }
  }
  close(fd); /* full */
}

/* At the end: what clients still wait for, within a second, then they go. */
static void clients_end(struct shim *s)
{
  uint64_t until = now_mono_ms() + 1000;
  for (int i = 0; i < MAX_CLIENTS; i++) {
    struct client *c = &s->cl[i];
    while (c->fd >= 0 && q_size(&c->out) > 0 && now_mono_ms() < until) {
      if (!q_flush(&c->out, c->fd))
        break;
      struct pollfd p = {.fd = c->fd, .events = POLLOUT};
      poll(&p, 1, 100);
    }
    client_drop(c);
  }
}

/* With --tty: runc's console socket, in a private directory. */
static int console_listen(char *dir, size_t dirsz, char *path, size_t pathsz)
{
  snprintf(dir, dirsz, "/tmp/ferry-tty-XXXXXX");
  if (!mkdtemp(dir))
    return -errno;
  snprintf(path, pathsz, "%s/console.sock", dir);
  return usock_listen(path);
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
                                     {"attach", required_argument, 0, 'a'},
                                     {"tty", no_argument, 0, 't'},
                                     {"stdin", no_argument, 0, 'i'},
                                     {"backlog", no_argument, 0, 'b'},
                                     {"exec", no_argument, 0, 'x'},
                                     {"console", required_argument, 0, 'c'},
                                     {"resize-fd", required_argument, 0, 'z'},
                                     {0, 0, 0, 0}};
  bool exec_mode = false;
  const char *console = NULL;
  int resize_fd = -1;
  int c;
  while ((c = getopt_long(argc, argv, "+", lo, NULL)) != -1) {
    switch (c) {
    case 'l': o.log = optarg; break;
    case 'e': o.exit_file = optarg; break;
    case 'p': o.pid_file = optarg; break;
    case 'r': o.runc_log = optarg; break;
    case 's': o.sync_fd = atoi(optarg); break;
    case 'm': o.log_max = strtoull(optarg, NULL, 10); break;
    case 'a': o.attach = optarg; break;
    case 't': o.tty = true; break;
    case 'i': o.stdin_open = true; break;
    case 'b': o.backlog = true; break;
    case 'x': exec_mode = true; break;
    case 'c': console = optarg; break;
    case 'z': resize_fd = atoi(optarg); break;
    default: return 2;
    }
  }
  if (exec_mode) {
    if (!o.pid_file || optind >= argc) {
      fprintf(stderr, "usage: ferry-shim --exec [--console SOCKET [--resize-fd N]] --pid-file F -- "
                      "RUNC-ARGV (exec --detach [--tty --console-socket SOCKET] ...)\n");
      return 2;
    }
    return exec_main(console, o.pid_file, resize_fd, argv + optind);
  }
  if (!o.log || !o.exit_file || !o.pid_file || optind >= argc) {
    fprintf(stderr, "usage: ferry-shim --log F --exit-file F --pid-file F [--runc-log F] "
                    "[--sync-fd N] [--log-max BYTES] [--attach SOCKET [--backlog]] [--tty] "
                    "[--stdin] -- RUNC-ARGV... ID\n"
                    "(with --tty, --console-socket PATH goes into RUNC-ARGV before ID)\n");
    return 2;
  }
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

  struct shim s = {.o = &o, .master = -1, .in_w = -1};
  for (int i = 0; i < MAX_CLIENTS; i++)
    s.cl[i].fd = -1;
  s.lf.fd = open(o.log, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
  struct stat lst;
  if (s.lf.fd >= 0 && fstat(s.lf.fd, &lst) == 0)
    s.lf.size = (uint64_t)lst.st_size;
  int outp[2], errp[2], inp[2] = {-1, -1};
  if (s.lf.fd < 0 || sfd < 0 || pipe2(outp, O_CLOEXEC) < 0 || pipe2(errp, O_CLOEXEC) < 0 ||
      (o.stdin_open && !o.tty && pipe2(inp, O_CLOEXEC) < 0)) {
    say(o.sync_fd, "error ferry-shim: setup: %s\n", strerror(errno));
    return 1;
  }
  int attach_fd = -1;
  if (o.attach && (attach_fd = usock_listen(o.attach)) < 0) {
    say(o.sync_fd, "error ferry-shim: attach socket %s: %s\n", o.attach, strerror(-attach_fd));
    return 1;
  }
  if (attach_fd >= 0)
    fcntl(attach_fd, F_SETFL, O_NONBLOCK);
  /* runc's command line, with the console socket before the id */
  char cdir[64] = "", cpath[96] = "";
  int console_fd = -1;
  size_t rn = (size_t)(argc - optind);
  char **rargv = calloc(rn + 3, sizeof *rargv);
  if (!rargv)
    abort();
  for (size_t i = 0; i + 1 < rn; i++)
    rargv[i] = argv[optind + (int)i];
  if (o.tty) {
    if ((console_fd = console_listen(cdir, sizeof cdir, cpath, sizeof cpath)) < 0) {
      say(o.sync_fd, "error ferry-shim: console socket: %s\n", strerror(-console_fd));
      return 1;
    }
    rargv[rn - 1] = "--console-socket";
    rargv[rn] = cpath;
    rargv[rn + 1] = argv[argc - 1];
  } else {
    rargv[rn - 1] = argv[argc - 1];
  }
  pid_t runc = fork();
  if (runc == 0) {
    sigprocmask(SIG_UNBLOCK, &mask, NULL);
    int in = inp[0] >= 0 ? inp[0] : open("/dev/null", O_RDONLY);
    dup2(in, 0);
    dup2(outp[1], 1);
    dup2(errp[1], 2);
    if (o.sync_fd >= 0)
      close(o.sync_fd);
    execvp(rargv[0], rargv);
    _exit(127);
  }
  close(outp[1]);
  close(errp[1]);
  if (inp[0] >= 0) {
    close(inp[0]);
    s.in_w = inp[1];
    fcntl(s.in_w, F_SETFL, O_NONBLOCK);
  }
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
  /* 0 signals, 1 stdout, 2 stderr, 3 terminal, 4 console socket, 5 attach
   * socket, 6 stdin, 7.. clients */
  enum { P_SIG, P_OUT, P_ERR, P_TTY, P_CONSOLE, P_ATTACH, P_IN, P_CL, P_N = P_CL + MAX_CLIENTS };
  int outfd[3] = {-1, outp[0], errp[0]};
  uint64_t done_at = 0;
  for (;;) {
    int timeout = -1;
    if (ctr_done) {
      if (outfd[1] < 0 && outfd[2] < 0 && s.master < 0)
        break;
      if (!done_at)
        done_at = now_mono_ms();
      uint64_t el = now_mono_ms() - done_at;
      if (el >= 2000)
        break; /* something else holds the pipes; the container is gone */
      timeout = (int)(2000 - el);
    }
    /* a client that does not read holds the output back */
    bool hold = false;
    for (int i = 0; i < MAX_CLIENTS; i++)
      if (s.cl[i].fd >= 0 && q_size(&s.cl[i].out) > CLIENT_OUT_MAX)
        hold = true;
    bool in_full = q_size(&s.in_q) > CLIENT_OUT_MAX;
    int in_fd = s.master >= 0 ? s.master : s.in_w;
    struct pollfd pfd[P_N];
    for (int i = 0; i < P_N; i++)
      pfd[i] = (struct pollfd){.fd = -1};
    pfd[P_SIG] = (struct pollfd){.fd = sfd, .events = POLLIN};
    pfd[P_OUT] = (struct pollfd){.fd = hold ? -1 : outfd[1], .events = POLLIN};
    pfd[P_ERR] = (struct pollfd){.fd = hold ? -1 : outfd[2], .events = POLLIN};
    pfd[P_TTY] = (struct pollfd){.fd = hold ? -1 : s.master, .events = POLLIN};
    pfd[P_CONSOLE] = (struct pollfd){.fd = console_fd, .events = POLLIN};
    pfd[P_ATTACH] = (struct pollfd){.fd = attach_fd, .events = POLLIN};
    pfd[P_IN] = (struct pollfd){.fd = q_size(&s.in_q) && in_fd >= 0 ? in_fd : -1, .events = POLLOUT};
    for (int i = 0; i < MAX_CLIENTS; i++)
      pfd[P_CL + i] = (struct pollfd){
          .fd = s.cl[i].fd,
          .events = (short)((in_full ? 0 : POLLIN) | (q_size(&s.cl[i].out) ? POLLOUT : 0))};
    int pr = poll(pfd, P_N, timeout);
    if (pr < 0 && errno != EINTR)
      break;
    for (int i = P_OUT; i <= P_TTY; i++) {
      if (pfd[i].fd >= 0 && (pfd[i].revents & (POLLIN | POLLHUP | POLLERR))) {
        char buf[16384];
        ssize_t n = read(pfd[i].fd, buf, sizeof buf);
        if (n > 0) {
          output(&s, i == P_ERR ? FRAME_STDERR : FRAME_STDOUT, buf, (size_t)n);
        } else if (n == 0 || errno != EINTR) {
          /* a terminal whose last user went reads EIO */
          close(pfd[i].fd);
          if (i == P_TTY)
            s.master = -1;
          else
            outfd[i] = -1;
        }
      }
    }
    if (pfd[P_CONSOLE].revents & POLLIN) {
      int cfd = accept4(console_fd, NULL, NULL, SOCK_CLOEXEC);
      if (cfd >= 0) {
        int m = usock_recv_fd(cfd);
        close(cfd);
        if (m >= 0) {
          s.master = m;
          fcntl(m, F_SETFL, O_NONBLOCK);
          close(console_fd);
          console_fd = -1;
          unlink(cpath);
          rmdir(cdir);
        }
      }
    }
    if (pfd[P_ATTACH].revents & POLLIN)
      client_accept(&s, attach_fd);
    for (int i = 0; i < MAX_CLIENTS; i++) {
      short rv = pfd[P_CL + i].revents;
      if (s.cl[i].fd < 0 || !rv)
        continue;
      if ((rv & POLLOUT) && !q_flush(&s.cl[i].out, s.cl[i].fd)) {
        client_drop(&s.cl[i]);
        continue;
      }
      if (rv & (POLLIN | POLLHUP | POLLERR))
        client_read(&s, &s.cl[i]);
    }
    in_fd = s.master >= 0 ? s.master : s.in_w;
    if (in_fd >= 0 && q_size(&s.in_q) && !q_flush(&s.in_q, in_fd)) {
      free(s.in_q.p);
      s.in_q = (struct q){0}; /* nobody reads the input any more */
    }
    if (s.close_in && s.in_w >= 0 && !q_size(&s.in_q)) {
      close(s.in_w);
      s.in_w = -1;
    }
    if (pfd[P_SIG].revents & POLLIN) {
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
          if (console_fd >= 0) {
            close(console_fd);
            console_fd = -1;
            unlink(cpath);
            rmdir(cdir);
          }
          if (!(WIFEXITED(st) && WEXITSTATUS(st) == 0)) {
            _cleanup_free_ char *msg = o.runc_log ? runc_error(o.runc_log) : xstrdup("runc failed");
            say(o.sync_fd, "error %s\n", msg);
            if (o.attach)
              unlink(o.attach);
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
  if (o.attach) {
    unlink(o.attach);
    clients_end(&s);
  }
  return 0;
}
