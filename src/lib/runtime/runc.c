/* Driving runc. Containers are started and restored through ferry-shim, which
 * owns their stdio and reports their exit (like conmon); everything else is a
 * plain runc call. */
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include "runtime/runtime.h"
#include "util/cleanup.h"
#include "util/fs.h"
#include "util/json.h"
#include "util/spawn.h"
#include "util/strv.h"

static char **runc_argv(struct runtime *rt, const char *logfile)
{
  char **v = strv_new();
  strv_push(&v, rt->runc);
  strv_push(&v, "--root");
  strv_push(&v, rt->runc_root);
  if (rt->criu_helper) {
    strv_push(&v, "--criu");
    strv_push(&v, rt->criu_helper);
  }
  if (logfile) {
    strv_push(&v, "--log");
    strv_push(&v, logfile);
  }
  return v;
}

int runc_launch_start(struct runtime *rt, json_t *rec, char *const *restore_args, const char *gate,
                      int *sync_out, struct ferry_err *err)
{
  runtime_changed(rt);
  const char *id = rec_id(rec);
  _cleanup_free_ char *bundle = ctr_path(rt, id, "bundle");
  _cleanup_free_ char *pidfile = ctr_path(rt, id, "pid");
  _cleanup_free_ char *logfile = ctr_path(rt, id, "ctr.log");
  _cleanup_free_ char *exitfile = ctr_path(rt, id, "exit.json");
  _cleanup_free_ char *runclog = ctr_path(rt, id, "runc.log");
  unlink(pidfile);
  unlink(exitfile);
  unlink(runclog);
  _cleanup_strv_ char **argv = strv_new();
  strv_push(&argv, rt->shim);
  strv_push(&argv, "--log");
  strv_push(&argv, logfile);
  strv_push(&argv, "--exit-file");
  strv_push(&argv, exitfile);
  strv_push(&argv, "--pid-file");
  strv_push(&argv, pidfile);
  strv_push(&argv, "--runc-log");
  strv_push(&argv, runclog);
  strv_push(&argv, "--sync-fd");
  strv_push(&argv, "3");
  char logmax[32];
  snprintf(logmax, sizeof logmax, "%llu", (unsigned long long)CTR_LOG_MAX);
  strv_push(&argv, "--log-max");
  strv_push(&argv, logmax);
  /* clients attach at the shim's socket (agent_ctr_attach); what the
   * container says before the first comes is kept for it when it takes
   * input (run -it: its prompt) */
  _cleanup_free_ char *attach = ctr_path(rt, id, "attach.sock");
  strv_push(&argv, "--attach");
  strv_push(&argv, attach);
  if (rec_tty(rec))
    strv_push(&argv, "--tty");
  if (rec_stdin(rec))
    strv_push(&argv, "--stdin");
  if (rec_tty(rec) || rec_stdin(rec))
    strv_push(&argv, "--backlog");
  strv_push(&argv, "--");
  _cleanup_strv_ char **rv = runc_argv(rt, runclog);
  for (size_t i = 0; rv[i]; i++)
    strv_push(&argv, rv[i]);
  if (restore_args) {
    strv_push(&argv, "restore");
    for (size_t i = 0; restore_args[i]; i++)
      strv_push(&argv, restore_args[i]);
  } else {
    strv_push(&argv, "run");
  }
  strv_push(&argv, "-d");
  strv_push(&argv, "--bundle");
  strv_push(&argv, bundle);
  strv_push(&argv, "--pid-file");
  strv_push(&argv, pidfile);
  strv_push(&argv, id);

  /* the environment runc passes on to ferry-criu: where CRIU's version
   * answer is kept (made here: no allocation after the fork) */
  _cleanup_strv_ char **envp = strv_new();
  for (char **e = environ; *e; e++)
    if (strncmp(*e, "FERRY_CRIU_CACHE=", 17) != 0)
      strv_push(&envp, *e);
  {
    _cleanup_free_ char *ce = xasprintf("FERRY_CRIU_CACHE=%s", rt->criu_cache);
    strv_push(&envp, ce);
  }
  if (gate) { /* ferry-criu holds the restore's CRIU until told (src/criu/main.c) */
    _cleanup_free_ char *ge = xasprintf("FERRY_CRIU_GATE=%s", gate);
    strv_push(&envp, ge);
  }
  int sync[2];
  if (pipe2(sync, O_CLOEXEC) < 0)
    return ferry_err_sys(err, -errno, "container %s: pipe", id);
  pid_t mid = fork();
  if (mid < 0) {
    close(sync[0]);
    close(sync[1]);
    return ferry_err_sys(err, -errno, "container %s: fork", id);
  }
  if (mid == 0) {
    /* Double fork: the shim outlives the agent and is not its child. */
    setsid();
    pid_t shim = fork();
    if (shim != 0)
      _exit(shim < 0 ? 1 : 0);
    if (sync[1] == 3) {
      if (fcntl(3, F_SETFD, 0) < 0)
        _exit(127);
    } else if (dup2(sync[1], 3) < 0) {
      _exit(127);
    }
    int nul = open("/dev/null", O_RDWR);
    if (nul >= 0) {
      dup2(nul, 0);
      dup2(nul, 1);
      dup2(nul, 2);
    }
    close_range(4, ~0U, 0);
    sigset_t all;
    sigemptyset(&all);
    sigprocmask(SIG_SETMASK, &all, NULL);
    execve(argv[0], argv, envp);
    dprintf(3, "error cannot run %s: %s\n", argv[0], strerror(errno));
    _exit(127);
  }
  close(sync[1]);
  int st;
  while (waitpid(mid, &st, 0) < 0 && errno == EINTR)
    ;
  *sync_out = sync[0];
  return 0;
}

int runc_launch_finish(int sync_fd, bool restore, int *pid_out, struct ferry_err *err)
{
  char buf[4096];
  size_t len = 0;
  uint64_t deadline = now_mono_ms() + 120000;
  for (;;) {
    uint64_t now = now_mono_ms();
    if (now >= deadline)
      break;
    struct pollfd p = {.fd = sync_fd, .events = POLLIN};
    int pr = poll(&p, 1, (int)(deadline - now));
    if (pr < 0 && errno == EINTR)
      continue;
    if (pr <= 0)
      break;
    ssize_t r = read(sync_fd, buf + len, sizeof buf - 1 - len);
    if (r <= 0)
      break;
    len += (size_t)r;
    if (len >= sizeof buf - 1)
      break;
  }
  close(sync_fd);
  buf[len] = '\0';
  int pid = 0;
  if (sscanf(buf, "ok %d", &pid) == 1 && pid > 0) {
    *pid_out = pid;
    return 0;
  }
  char *nl = strrchr(buf, '\n');
  if (nl && nl[1] == '\0')
    *nl = '\0';
  const char *msg = strncmp(buf, "error ", 6) == 0 ? buf + 6 : (len ? buf : "ferry-shim gave no answer");
  return ferry_err_set(err, -EIO, FERRY_E_INTERNAL, "runc %s: %s", restore ? "restore" : "run", msg);
}

int runc_launch(struct runtime *rt, json_t *rec, char *const *restore_args, int *pid_out,
                struct ferry_err *err)
{
  int sync = -1;
  int r = runc_launch_start(rt, rec, restore_args, NULL, &sync, err);
  if (r < 0)
    return r;
  return runc_launch_finish(sync, restore_args != NULL, pid_out, err);
}

int runc_state(struct runtime *rt, const char *id, char **status, int *pid)
{
  _cleanup_strv_ char **argv = runc_argv(rt, NULL);
  strv_push(&argv, "state");
  strv_push(&argv, id);
  struct spawn_result res = {0};
  struct spawn_opts o = {.timeout_ms = 10000};
  if (spawn_run((const char *const *)argv, &o, &res, NULL) < 0)
    return -EIO;
  int r = -ENOENT;
  if (res.exit_code == 0) {
    _cleanup_json_ json_t *j = NULL;
    if (json_parse(res.out, strlen(res.out), "runc state", &j, NULL) == 0) {
      *status = xstrdup(json_str_or(j, "status", "unknown"));
      *pid = (int)json_integer_value(json_object_get(j, "pid"));
      r = 0;
    }
  }
  spawn_result_free(&res);
  return r;
}

int runc_signal(struct runtime *rt, const char *id, int sig, bool all, struct ferry_err *err)
{
  runtime_changed(rt);
  _cleanup_strv_ char **argv = runc_argv(rt, NULL);
  strv_push(&argv, "kill");
  if (all)
    strv_push(&argv, "--all");
  strv_push(&argv, id);
  _cleanup_free_ char *s = xasprintf("%d", sig);
  strv_push(&argv, s);
  return spawn_check((const char *const *)argv, NULL, err);
}

int runc_delete(struct runtime *rt, const char *id, bool force, struct ferry_err *err)
{
  runtime_changed(rt);
  _cleanup_strv_ char **argv = runc_argv(rt, NULL);
  strv_push(&argv, "delete");
  if (force)
    strv_push(&argv, "--force");
  strv_push(&argv, id);
  struct spawn_result res = {0};
  int r = spawn_run((const char *const *)argv, NULL, &res, err);
  if (r < 0)
    return r;
  if (res.exit_code != 0 && !strstr(res.errout, "does not exist") && !strstr(res.errout, "not exist")) {
    _cleanup_free_ char *t = tail_lines(res.errout, 400);
    r = FERRY_INTERNAL(err, "runc delete %s: %s", id, t);
  }
  spawn_result_free(&res);
  return r;
}

int runc_simple(struct runtime *rt, const char *verb, const char *id, struct ferry_err *err)
{
  runtime_changed(rt);
  _cleanup_strv_ char **argv = runc_argv(rt, NULL);
  strv_push(&argv, verb);
  strv_push(&argv, id);
  return spawn_check((const char *const *)argv, NULL, err);
}

/* runc exec's command line for cmd in the container of rec (its user,
 * working directory and environment, then env), with --pid-file when given. */
static char **exec_argv(struct runtime *rt, json_t *rec, char *const *cmd, char *const *env,
                        const char *pid_file, bool detach, const char *console)
{
  char **argv = runc_argv(rt, NULL);
  strv_push(&argv, "exec");
  if (detach)
    strv_push(&argv, "--detach");
  if (console) {
    strv_push(&argv, "--tty");
    strv_push(&argv, "--console-socket");
    strv_push(&argv, console);
  }
  uint32_t uid = 0, gid = 0;
  rec_ids(rec, &uid, &gid);
  strv_push(&argv, "--user");
  strv_push_take(&argv, xasprintf("%u:%u", uid, gid));
  strv_push(&argv, "--cwd");
  strv_push(&argv, (rec_has_cwd(rec) ? rec_cwd(rec) : "/"));
  if (pid_file) {
    strv_push(&argv, "--pid-file");
    strv_push(&argv, pid_file);
  }
  size_t i;
  json_t *e;
  json_array_foreach(rec_env(rec), i, e)
  {
    strv_push(&argv, "--env");
    strv_push(&argv, json_string_value(e));
  }
  for (size_t k = 0; env && env[k]; k++) {
    strv_push(&argv, "--env");
    strv_push(&argv, env[k]);
  }
  strv_push(&argv, rec_id(rec));
  for (size_t k = 0; cmd[k]; k++)
    strv_push(&argv, cmd[k]);
  return argv;
}

int runc_exec_start(struct runtime *rt, json_t *rec, char *const *cmd, char *const *env,
                    unsigned flags, struct exec_proc *p, struct ferry_err *err)
{
  *p = (struct exec_proc){.runc_pid = -1, .out_fd = -1, .err_fd = -1, .in_fd = -1, .resize_fd = -1, .exit_fd = -1};
  const char *name = rec_has_name(rec) ? rec_name(rec) : rec_id(rec);
  char tmpl[] = "/tmp/ferry-exec-XXXXXX";
  if (!mkdtemp(tmpl))
    return ferry_err_sys(err, -errno, "exec: temporary directory");
  p->pid_dir = xstrdup(tmpl);
  _cleanup_free_ char *pf = path_join(tmpl, "pid");
  _cleanup_free_ char *cs = path_join(tmpl, "console.sock");
  bool tty = flags & EXEC_TTY;
  _cleanup_strv_ char **rv = exec_argv(rt, rec, cmd, env, pf, true, tty ? cs : NULL);
  _cleanup_strv_ char **argv = strv_new();
  int rz[2] = {-1, -1};
  struct spawn_opts o = {0};
  /* ferry-shim is the command's parent (src/shim/main.c): it ends when the
   * command does, whatever its children keep open, and relays a terminal
   * (runc gives a terminal's master only to a detached exec) */
  strv_push(&argv, rt->shim);
  strv_push(&argv, "--exec");
  strv_push(&argv, "--pid-file");
  strv_push(&argv, pf);
  if (tty) {
    if (pipe2(rz, O_CLOEXEC) < 0) {
      int e = ferry_err_sys(err, -errno, "exec in container %s: pipe", name);
      runc_exec_end(p, false);
      return e;
    }
    strv_push(&argv, "--console");
    strv_push(&argv, cs);
    strv_push(&argv, "--resize-fd");
    strv_push(&argv, "3");
    o.pass_fd = rz[0];
    o.pass_as = 3;
  }
  strv_push(&argv, "--");
  for (size_t i = 0; rv[i]; i++)
    strv_push(&argv, rv[i]);
  int r = spawn_piped_in((const char *const *)argv, &o, &p->runc_pid,
                         (flags & (EXEC_STDIN | EXEC_TTY)) ? &p->in_fd : NULL, &p->out_fd,
                         &p->err_fd, err);
  if (rz[0] >= 0)
    close(rz[0]);
  p->resize_fd = rz[1];
  if (r < 0) {
    runc_exec_end(p, false);
    return ferry_err_wrap(err, "exec in container %s", name);
  }
  p->exit_fd = (int)syscall(SYS_pidfd_open, p->runc_pid, 0);
  return 0;
}

int runc_exec_end(struct exec_proc *p, bool kill_it)
{
  int code = -1;
  if (p->runc_pid > 0) {
    if (kill_it) {
      /* the command itself (runc exec waits for it, and would leave it
       * running in the container if only runc went) */
      _cleanup_free_ char *pf = p->pid_dir ? path_join(p->pid_dir, "pid") : NULL;
      _cleanup_free_ char *txt = NULL;
      long pid = 0;
      for (int i = 0; i < 50 && pf && pid <= 0; i++) { /* bounded: 1 s, runc writes it at start */
        free(txt);
        txt = NULL;
        if (read_file(pf, 64, &txt, NULL, NULL) == 0)
          pid = strtol(txt, NULL, 10);
        if (pid <= 0)
          usleep(20000);
      }
      if (pid > 1)
        kill((pid_t)pid, SIGKILL);
    }
    code = spawn_reap(p->runc_pid, kill_it ? 5000 : 24 * 3600 * 1000, true);
    p->runc_pid = -1;
  }
  if (p->out_fd >= 0)
    close(p->out_fd);
  if (p->err_fd >= 0)
    close(p->err_fd);
  if (p->in_fd >= 0)
    close(p->in_fd);
  if (p->resize_fd >= 0)
    close(p->resize_fd);
  if (p->exit_fd >= 0)
    close(p->exit_fd);
  p->out_fd = p->err_fd = p->in_fd = p->resize_fd = p->exit_fd = -1;
  if (p->pid_dir) {
    _cleanup_free_ char *pf = path_join(p->pid_dir, "pid");
    unlink(pf);
    rmdir(p->pid_dir);
    free(p->pid_dir);
    p->pid_dir = NULL;
  }
  return code;
}

int runc_exec(struct runtime *rt, json_t *rec, char *const *cmd, char *const *env,
              int timeout_ms, struct exec_result *res, struct ferry_err *err)
{
  const char *id = rec_id(rec);
  _cleanup_strv_ char **argv = exec_argv(rt, rec, cmd, env, NULL, false, NULL);
  struct spawn_result sr = {0};
  struct spawn_opts o = {.timeout_ms = timeout_ms, .max_output = 16u << 20};
  int r = spawn_run((const char *const *)argv, &o, &sr, err);
  if (r < 0)
    return ferry_err_wrap(err, "exec in container %s", (rec_has_name(rec) ? rec_name(rec) : id));
  res->exit_code = sr.exit_code >= 0 ? sr.exit_code : 128 + sr.term_signal;
  res->out = TAKE_PTR(sr.out);
  res->errout = TAKE_PTR(sr.errout);
  return 0;
}
