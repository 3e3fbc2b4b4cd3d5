/* A dump's CRIU started ahead of the freeze: `criu swrk` (CRIU's RPC
 * worker, what runc and libcriu use) waits on a socket pair for its one
 * request. The dump's options, the same ones the direct command line would
 * have (ckpt.c), go into a config file CRIU reads with the request; the
 * request itself carries only what RPC requires (the images directory as a
 * descriptor of the agent's, the tree's pid, the log). */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "ckpt/criu-ready.h"
#include "ckpt/swrk.h"
#include "criu-rpc.pb-c.h"
#include "util/cleanup.h"
#include "util/fs.h"
#include "util/spawn.h"

/* The fd the worker finds its socket at (past those ckpt.c passes). */
#define SWRK_FD 103
#define RESP_MAX (64 * 1024)

struct ckpt_criu {
  int pid;
  int sk;
  int ps_fd, keeper_fd; /* what it was started with (the caller's: not closed here) */
  bool used;
};

static char **criu_env;
static pthread_once_t criu_env_once = PTHREAD_ONCE_INIT;

static void criu_env_make(void)
{
  criu_env = strv_new();
  for (char **e = environ; e && *e; e++)
    if (strncmp(*e, "LD_BIND_NOW=", 12) != 0)
      strv_push(&criu_env, *e);
  strv_push(&criu_env, "LD_BIND_NOW=1");
}

const char *const *ckpt_criu_env(void)
{
  pthread_once(&criu_env_once, criu_env_make);
  return (const char *const *)criu_env;
}

int ckpt_criu_start(int ps_fd, int keeper_fd, const char *out_path, struct ckpt_criu **out,
                    struct ferry_err *err)
{
  *out = NULL;
  int sv[2];
  if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv) < 0)
    return ferry_err_sys(err, -errno, "socketpair");
  char fd[16];
  snprintf(fd, sizeof fd, "%d", SWRK_FD);
  const char *argv[] = {"criu", "swrk", fd, NULL};
  /* as any dump: once it works on the container it must outlive the agent
   * (a dump killed halfway leaves its parasite in the processes); before
   * its request, the agent's end closing ends it */
  struct spawn_opts so = {.envp = ckpt_criu_env(), .outlive_parent = true, .pass_fd = sv[1],
                          .pass_as = SWRK_FD};
  if (ps_fd >= 0) {
    so.pass_fd2 = ps_fd;
    so.pass_as2 = CKPT_PS_FD;
  }
  if (keeper_fd >= 0) {
    so.pass_fd3 = keeper_fd;
    so.pass_as3 = CKPT_KEEPER_FD;
  }
  int pid = -1;
  int r = spawn_bg_opts(argv, out_path, &so, &pid, err);
  close(sv[1]);
  if (r < 0) {
    close(sv[0]);
    return r;
  }
  /* its start over before the freeze (ckpt/criu-ready.h) */
  if ((r = ckpt_criu_ready(sv[0], 10000)) < 0) {
    close(sv[0]); /* it ends at the end of its requests */
    spawn_reap(pid, 2000, true);
    return ferry_err_sys(err, r, "criu swrk did not start (asked whether it is ready)");
  }
  struct ckpt_criu *c = calloc(1, sizeof *c);
  if (!c)
    abort();
  c->pid = pid;
  c->sk = sv[0];
  c->ps_fd = ps_fd;
  c->keeper_fd = keeper_fd;
  *out = c;
  return 0;
}

void ckpt_criu_end(struct ckpt_criu *c)
{
  if (!c)
    return;
  close(c->sk); /* an unused worker ends at the end of its requests */
  spawn_reap(c->pid, 10000, true);
  free(c);
}

bool ckpt_criu_fits(const struct ckpt_criu *c, int ps_fd, int keeper_fd)
{
  return c && !c->used && c->ps_fd == ps_fd && c->keeper_fd == keeper_fd;
}

/* A value as a config file line's quoted parameter: CRIU's parser takes
 * everything up to the next quote not preceded by a backslash and keeps
 * the backslashes, so a value with a quote, a line break or a trailing
 * backslash cannot be written. */
static bool conf_value_ok(const char *v)
{
  size_t n = strlen(v);
  return !strpbrk(v, "\"\n\r") && !(n > 0 && v[n - 1] == '\\');
}

/* The config file of the dump command line argv ("criu", "dump", options):
 * each "--name [value]" as a line "name "value"", the lines of the file
 * --config named, and without what the request says (the images and work
 * directory, the log, the tree's pid, which goes into *tree). -ENOTSUP
 * when a value cannot be written so. */
static int conf_of_argv(char **argv, char **conf, int *tree)
{
  char *s = NULL;
  size_t len = 0;
  FILE *f = open_memstream(&s, &len);
  if (!f)
    abort();
  int r = 0;
  *tree = 0;
  size_t n = strv_len(argv);
  for (size_t i = 2; i < n && r == 0; i++) {
    const char *a = argv[i];
    if (strncmp(a, "--", 2) != 0)
      continue; /* "-vN": the request's log level */
    const char *name = a + 2;
    const char *val = i + 1 < n && argv[i + 1][0] != '-' ? argv[++i] : NULL;
    if (!strcmp(name, "images-dir") || !strcmp(name, "work-dir") || !strcmp(name, "log-file"))
      continue;
    if (!strcmp(name, "tree")) {
      *tree = val ? atoi(val) : 0;
      continue;
    }
    if (!strcmp(name, "config")) {
      _cleanup_free_ char *txt = NULL;
      size_t tl = 0;
      if (!val || read_file(val, 65536, &txt, &tl, NULL) < 0)
        r = -ENOTSUP;
      else
        fprintf(f, "%s%s", txt, tl && txt[tl - 1] != '\n' ? "\n" : "");
      continue;
    }
    if (val && !conf_value_ok(val))
      r = -ENOTSUP;
    else if (val)
      fprintf(f, "%s \"%s\"\n", name, val);
    else
      fprintf(f, "%s\n", name);
  }
  fclose(f);
  if (r == 0 && *tree <= 0)
    r = -ENOTSUP;
  if (r < 0) {
    free(s);
    return r;
  }
  *conf = s;
  return 0;
}

int ckpt_criu_dump(struct ckpt_criu *c, char **argv, const char *images_dir, int timeout_ms,
                   char **why, struct ferry_err *err)
{
  *why = NULL;
  _cleanup_free_ char *conf = NULL;
  int tree = 0;
  if (c->used || conf_of_argv(argv, &conf, &tree) < 0)
    return -ENOTSUP;
  _cleanup_free_ char *conf_path = path_join(images_dir, "dump.conf");
  int r = write_file_atomic(conf_path, conf, strlen(conf), 0600, err);
  if (r < 0)
    return r;
  int dfd = open(images_dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (dfd < 0)
    return ferry_err_sys(err, -errno, "open %s", images_dir);

  CriuOpts opts = CRIU_OPTS__INIT;
  opts.images_dir_fd = dfd; /* CRIU opens it through /proc/<the agent>/fd */
  opts.has_pid = true;
  opts.pid = tree;
  opts.has_log_level = true;
  opts.log_level = ckpt_criu_log_level();
  opts.log_file = (char *)"dump.log";
  opts.config_file = conf_path;
  CriuReq req = CRIU_REQ__INIT;
  req.type = CRIU_REQ_TYPE__DUMP;
  req.opts = &opts;
  size_t len = criu_req__get_packed_size(&req);
  _cleanup_free_ uint8_t *out = malloc(len);
  if (!out)
    abort();
  criu_req__pack(&req, out);
  c->used = true;
  if (send(c->sk, out, len, MSG_NOSIGNAL) != (ssize_t)len) {
    r = -errno;
    close(dfd);
    /* it ended before its request: nothing was done, a dump started here can still run */
    return r == -EPIPE || r == -ECONNRESET ? -ENOTSUP : ferry_err_sys(err, r, "criu swrk request");
  }
  _cleanup_free_ uint8_t *in = malloc(RESP_MAX);
  if (!in)
    abort();
  uint64_t deadline = now_mono_ms() + (uint64_t)(timeout_ms > 0 ? timeout_ms : 120000);
  ssize_t n = -1;
  for (;;) {
    uint64_t now = now_mono_ms();
    struct pollfd pf = {.fd = c->sk, .events = POLLIN};
    int pr = now < deadline ? poll(&pf, 1, (int)(deadline - now)) : 0;
    if (pr < 0 && errno == EINTR)
      continue;
    if (pr <= 0) {
      kill(c->pid, SIGKILL);
      close(dfd);
      return FERRY_INTERNAL(err, "criu dump did not end in time (%d s): stopped",
                            (timeout_ms > 0 ? timeout_ms : 120000) / 1000);
    }
    n = recv(c->sk, in, RESP_MAX, 0);
    if (n < 0 && errno == EINTR)
      continue;
    break;
  }
  close(dfd);
  if (n <= 0) {
    *why = xstrdup("it ended without an answer");
    return -EIO;
  }
  CriuResp *resp = criu_resp__unpack(NULL, (size_t)n, in);
  if (!resp) {
    *why = xstrdup("its answer does not parse");
    return -EIO;
  }
  if (resp->type != CRIU_REQ_TYPE__DUMP || !resp->success) {
    *why = resp->cr_errmsg && *resp->cr_errmsg
               ? xstrdup(resp->cr_errmsg)
               : xasprintf("it failed%s%s", resp->has_cr_errno ? ": " : "",
                           resp->has_cr_errno ? strerror(resp->cr_errno) : "");
    r = -EIO;
  }
  criu_resp__free_unpacked(resp, NULL);
  return r;
}
