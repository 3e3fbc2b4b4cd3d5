/* Checkpoint and restore of one container through runc and CRIU. */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "ckpt/ckpt.h"
#include "runtime/runtime.h"
#include "util/cleanup.h"
#include "util/fs.h"
#include "util/json.h"
#include "util/spawn.h"
#include "util/strv.h"

/* The fd numbers CRIU is told to find its page-server connection and its
 * memory trackers' keeper at. */
#define CKPT_PS_FD 100
#define CKPT_KEEPER_FD 101

/* Adds (or, with add false, removes again) "KEY N" in the container's
 * criu.conf, which runc hands to CRIU: "ps-socket 100" makes CRIU use the
 * connection it inherits at that fd instead of connecting to the page
 * server itself, "track-mem-keeper 101" names the trackers' keeper. */
static int conf_fd_line(struct runtime *rt, const char *id, const char *key, int fd, bool add,
                        struct ferry_err *err)
{
  _cleanup_free_ char *p = ctr_path(rt, id, CTR_CRIU_CONF);
  _cleanup_free_ char *cur = NULL;
  size_t n = 0;
  if (read_file(p, 65536, &cur, &n, NULL) < 0) {
    cur = xstrdup("");
    n = 0;
  }
  char line[48];
  int ln = snprintf(line, sizeof line, "%s %d\n", key, fd);
  char *at = strstr(cur, line);
  if (add == (at != NULL))
    return 0;
  if (add) {
    _cleanup_free_ char *next = xasprintf("%s%s", cur, line);
    return write_file_atomic(p, next, n + (size_t)ln, 0644, err);
  }
  memmove(at, at + ln, strlen(at + ln) + 1);
  return write_file_atomic(p, cur, strlen(cur), 0644, err);
}

bool ckpt_can_track_memory(void)
{
  static int known = -1; /* the same answer whichever thread asks first */
  int k = __atomic_load_n(&known, __ATOMIC_ACQUIRE);
  if (k < 0) {
    const char *argv[] = {"criu", "check", "--feature", "mem_dirty_track", NULL};
    struct spawn_result res = {0};
    struct spawn_opts so = {.timeout_ms = 20000};
    k = spawn_run(argv, &so, &res, NULL) == 0 && res.exit_code == 0;
    spawn_result_free(&res);
    __atomic_store_n(&known, k, __ATOMIC_RELEASE);
  }
  return k == 1;
}

int ckpt_dump(struct runtime *rt, const char *id, const char *images_dir,
              const struct ckpt_dump_opts *o, json_t **stats, struct ferry_err *err)
{
  runtime_changed(rt);
  _cleanup_strv_ char **argv = strv_new();
  const char *fixed[] = {rt->runc, "--root", rt->runc_root, "checkpoint", "--image-path",
                         images_dir, "--work-path", images_dir};
  for (size_t i = 0; i < ARRAY_SIZE(fixed); i++)
    strv_push(&argv, fixed[i]);
  if (o->pre_dump) {
    strv_push(&argv, "--pre-dump");
  } else {
    strv_push(&argv, "--tcp-established");
    strv_push(&argv, "--file-locks");
  }
  if (o->parent) {
    strv_push(&argv, "--parent-path");
    strv_push(&argv, o->parent);
  }
  if (o->page_server) {
    strv_push(&argv, "--page-server");
    strv_push(&argv, o->page_server);
  }
  if (o->leave_running && !o->pre_dump)
    strv_push(&argv, "--leave-running");
  strv_push(&argv, id);
  struct spawn_result res = {0};
  struct spawn_opts so = {.timeout_ms = o->timeout_ms};
  bool ps_line = false, keeper_line = false;
  int r = 0;
  if (o->ps_fd >= 0) {
    if ((r = conf_fd_line(rt, id, "ps-socket", CKPT_PS_FD, true, err)) < 0) {
      ferry_err_wrap(err, "page-server connection for CRIU");
      goto out;
    }
    ps_line = true;
    so.pass_fd = o->ps_fd;
    so.pass_as = CKPT_PS_FD;
  }
  if (o->keeper_fd >= 0) {
    if ((r = conf_fd_line(rt, id, "track-mem-keeper", CKPT_KEEPER_FD, true, err)) < 0) {
      ferry_err_wrap(err, "memory trackers' keeper for CRIU");
      goto out;
    }
    keeper_line = true;
    so.pass_fd2 = o->keeper_fd;
    so.pass_as2 = CKPT_KEEPER_FD;
  }
  r = spawn_run((const char *const *)argv, &so, &res, err);
  runtime_changed(rt);
out:
  if (ps_line)
    conf_fd_line(rt, id, "ps-socket", CKPT_PS_FD, false, NULL);
  if (keeper_line)
    conf_fd_line(rt, id, "track-mem-keeper", CKPT_KEEPER_FD, false, NULL);
  if (r == 0 && res.exit_code != 0) {
    _cleanup_free_ char *logp = path_join(images_dir, "dump.log") /* runc names it so for a pre-dump too */;
    _cleanup_free_ char *cerr = criu_log_errors(logp, 700);
    _cleanup_free_ char *t = tail_lines(res.errout, 300);
    r = FERRY_INTERNAL(err, "runc checkpoint%s failed: %s%s%s", o->pre_dump ? " --pre-dump" : "", t,
                       *cerr ? "; CRIU: " : "", cerr);
  }
  spawn_result_free(&res);
  if (r == 0 && stats) {
    _cleanup_free_ char *sp = path_join(images_dir, "stats-dump");
    *stats = NULL;
    criu_stats_read(sp, stats, NULL);
  }
  return r;
}

/* criu lazy-pages for a restore from images_dir in work (its socket,
 * "lazy-pages.socket", is made there): in a session of its own and without
 * a parent-death signal, since it must outlive the thread and even the
 * agent that started it: the restored processes fault their pages in
 * through it while it pushes the rest, then it exits. */
static int lazy_daemon_start(const char *images_dir, const char *work, int *pid_out,
                             struct ferry_err *err)
{
  _cleanup_free_ char *sock = path_join(work, "lazy-pages.socket");
  const char *argv[] = {"criu", "lazy-pages", "--images-dir", images_dir, "--work-dir", work,
                        "-o", "lazy-pages.log", "-v2", NULL};
  pid_t pid = fork();
  if (pid < 0)
    return ferry_err_sys(err, -errno, "fork criu lazy-pages");
  if (pid == 0) {
    setsid();
    sigset_t none;
    sigemptyset(&none);
    sigprocmask(SIG_SETMASK, &none, NULL);
    int nul = open("/dev/null", O_RDWR);
    if (nul >= 0 && (dup2(nul, 0) < 0 || dup2(nul, 1) < 0 || dup2(nul, 2) < 0))
      _exit(127);
    execvp(argv[0], (char *const *)argv);
    _exit(127);
  }
  for (int i = 0; i < 500; i++) {
    if (access(sock, F_OK) == 0) {
      *pid_out = pid;
      return 0;
    }
    if (waitpid(pid, NULL, WNOHANG) == pid)
      return FERRY_INTERNAL(err, "criu lazy-pages ended at once (see %s/lazy-pages.log)", work);
    usleep(10000);
  }
  kill(pid, SIGKILL);
  waitpid(pid, NULL, 0);
  return FERRY_INTERNAL(err, "criu lazy-pages did not come up within 5 s");
}

int ckpt_restore(struct runtime *rt, json_t *rec, const char *images_dir, int *lazy_pid, int *pid,
                 json_t **stats, struct ferry_err *err)
{
  const char *id = rec_id(rec);
  _cleanup_free_ char *work = ctr_path(rt, id, "restore-work");
  rm_rf(work, NULL);
  int r = mkdir_p(work, 0700, err);
  if (r < 0)
    return r;
  int daemon = -1;
  if (lazy_pid && (r = lazy_daemon_start(images_dir, work, &daemon, err)) < 0)
    return r;
  char *rargs[] = {"--image-path", (char *)images_dir, "--work-path", work, "--tcp-established",
                   "--file-locks", lazy_pid ? "--lazy-pages" : NULL, NULL};
  if ((r = runc_launch(rt, rec, rargs, pid, err)) < 0) {
    if (daemon > 0) {
      kill(daemon, SIGKILL);
      waitpid(daemon, NULL, 0);
    }
    _cleanup_free_ char *logp = path_join(work, "restore.log");
    _cleanup_free_ char *cerr = criu_log_errors(logp, 700);
    if (*cerr)
      ferry_err_wrap(err, "CRIU: %s; runc", cerr);
    return r;
  }
  if (stats) {
    _cleanup_free_ char *sp = path_join(work, "stats-restore");
    *stats = NULL;
    criu_stats_read(sp, stats, NULL);
  }
  if (lazy_pid)
    *lazy_pid = daemon;
  return 0;
}
