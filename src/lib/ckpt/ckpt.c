/* Checkpoint and restore of one container through runc and CRIU. */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <string.h>
#include <sys/stat.h>
#include <stdlib.h>
#include <stdio.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include "ckpt/ckpt.h"
#include "ckpt/swrk.h"
#include "runtime/runtime.h"
#include "util/cleanup.h"
#include "util/fs.h"
#include "util/json.h"
#include "util/spawn.h"
#include "util/strv.h"


/* Adds (or removes again) the lines block in the container's criu.conf. */
static int conf_block(struct runtime *rt, const char *id, const char *block, bool add,
                      struct ferry_err *err)
{
  _cleanup_free_ char *p = ctr_path(rt, id, CTR_CRIU_CONF);
  _cleanup_free_ char *cur = NULL;
  size_t n = 0;
  if (read_file(p, 65536, &cur, &n, NULL) < 0) {
    cur = xstrdup("");
    n = 0;
  }
  char *at = strstr(cur, block);
  if (add == (at != NULL))
    return 0;
  if (add) {
    _cleanup_free_ char *next = xasprintf("%s%s", cur, block);
    return write_file_atomic(p, next, strlen(next), 0644, err);
  }
  size_t bl = strlen(block);
  memmove(at, at + bl, strlen(at + bl) + 1);
  return write_file_atomic(p, cur, strlen(cur), 0644, err);
}

/* Adds (or, with add false, removes again) "KEY N" in the container's
 * criu.conf, which runc hands to CRIU: "ps-socket 100" makes CRIU use the
 * connection it inherits at that fd instead of connecting to the page
 * server itself, "track-mem-keeper 101" names the trackers' keeper. */
static int conf_fd_line(struct runtime *rt, const char *id, const char *key, int fd, bool add,
                        struct ferry_err *err)
{
  char line[48];
  snprintf(line, sizeof line, "%s %d\n", key, fd);
  return conf_block(rt, id, line, add, err);
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

/* The mountpoint path of field 5 of a mountinfo line, unescaped (\040 and
 * the like), into out. */
static void mountinfo_point(const char *line, char *out, size_t n)
{
  const char *p = line;
  for (int f = 0; f < 4 && p; f++) {
    p = strchr(p, ' ');
    if (p)
      p++;
  }
  size_t k = 0;
  while (p && *p && *p != ' ' && k + 1 < n) {
    if (p[0] == '\\' && p[1] >= '0' && p[1] <= '3' && p[2] && p[3]) {
      out[k++] = (char)(((p[1] - '0') << 6) | ((p[2] - '0') << 3) | (p[3] - '0'));
      p += 4;
    } else {
      out[k++] = *p++;
    }
  }
  out[k] = '\0';
}

static void push_ext_mnt(char ***argv, const char *key, const char *val)
{
  _cleanup_free_ char *e = xasprintf("mnt[%s]:%s", key, val);
  strv_push(argv, "--external");
  strv_push(argv, e);
}

/* The CRIU command line runc checkpoint would make for container id (its
 * RPC options, libcontainer's Checkpoint), from runc's state.json: the
 * dump without runc's start and its CRIU version run (~40 ms of every
 * freeze on these machines). runc's state is not touched by a dump that
 * leaves the processes, and its restore takes these images (same external
 * mount keys, descriptors.json). -ENOENT when the state says something
 * this does not know how to mirror: runc checkpoint then. */
static int direct_dump_argv(struct runtime *rt, const char *id, const char *images_dir,
                            const struct ckpt_dump_opts *o, char ***out)
{
  _cleanup_free_ char *sp = xasprintf("%s/%s/state.json", rt->runc_root, id);
  _cleanup_free_ char *txt = NULL;
  size_t n = 0;
  _cleanup_json_ json_t *st = NULL;
  if (read_file(sp, 4 << 20, &txt, &n, NULL) < 0 || json_parse(txt, n, "runc state", &st, NULL) < 0)
    return -ENOENT;
  json_t *cfg = json_object_get(st, "config");
  int pid = (int)json_integer_value(json_object_get(st, "init_process_pid"));
  const char *rootfs = json_str_or(cfg, "rootfs", "");
  const char *freezer = json_str_or(json_object_get(st, "cgroup_paths"), "freezer", "");
  json_t *labels = json_object_get(cfg, "labels");
  if (pid <= 0 || !rootfs[0] || !freezer[0] || !json_is_array(labels) || json_array_size(labels) == 0)
    return -ENOENT;
  /* what libcontainer checks or sets and ferry's containers never have */
  if (json_is_true(json_object_get(st, "rootless")) ||
      json_array_size(json_object_get(cfg, "uid_mappings")) > 0)
    return -ENOENT;
  const char *conf = NULL;
  size_t i;
  json_t *v;
  json_array_foreach(labels, i, v)
  {
    const char *l = json_string_value(v);
    if (l && strncmp(l, "org.criu.config=", 16) == 0)
      conf = l + 16;
  }
  bool cgroupns = false, netns_path = false;
  json_array_foreach(json_object_get(cfg, "namespaces"), i, v)
  {
    const char *t = json_str_or(v, "type", "");
    if (strcmp(t, "NEWCGROUP") == 0)
      cgroupns = true;
    if (strcmp(t, "NEWNET") == 0 && json_str_or(v, "path", "")[0])
      netns_path = true;
    if (strcmp(t, "NEWPID") == 0 && json_str_or(v, "path", "")[0])
      return -ENOENT; /* an external pid namespace: runc's business */
  }
  if (!conf)
    return -ENOENT;

  char **argv = strv_new();
  char verb[8];
  snprintf(verb, sizeof verb, "-v%d", ckpt_criu_log_level());
  const char *fixed[] = {"criu", o->pre_dump ? "pre-dump" : "dump", "--images-dir", images_dir,
                         "--work-dir", images_dir, "--log-file", "dump.log", verb, "--root",
                         rootfs, "--config", conf, "--freeze-cgroup", freezer};
  for (size_t k = 0; k < ARRAY_SIZE(fixed); k++)
    strv_push(&argv, fixed[k]);
  char pids[16];
  snprintf(pids, sizeof pids, "%d", pid);
  strv_push(&argv, "--tree");
  strv_push(&argv, pids);
  if (!o->pre_dump) {
    strv_push(&argv, "--tcp-established");
    strv_push(&argv, "--file-locks");
    if (o->leave_running)
      strv_push(&argv, "--leave-running");
  }
  if (o->lazy_pid) {
    char fd[16];
    snprintf(fd, sizeof fd, "%d", CKPT_STATUS_FD);
    strv_push(&argv, "--lazy-pages");
    strv_push(&argv, "--status-fd");
    strv_push(&argv, fd);
  }
  if (netns_path) {
    struct stat ns;
    _cleanup_free_ char *nsp = xasprintf("/proc/%d/ns/net", pid);
    if (stat(nsp, &ns) < 0) {
      strv_free(argv);
      return -ENOENT;
    }
    _cleanup_free_ char *e = xasprintf("net[%llu]:extRootNetNS", (unsigned long long)ns.st_ino);
    strv_push(&argv, "--external");
    strv_push(&argv, e);
  }
  if (o->parent) {
    strv_push(&argv, "--prev-images-dir");
    strv_push(&argv, o->parent);
    strv_push(&argv, "--track-mem");
  }
  if (o->page_server) {
    const char *colon = strrchr(o->page_server, ':');
    if (!colon) {
      strv_free(argv);
      return -ENOENT;
    }
    _cleanup_free_ char *addr = strndup(o->page_server, (size_t)(colon - o->page_server));
    strv_push(&argv, "--page-server");
    strv_push(&argv, "--address");
    strv_push(&argv, addr);
    strv_push(&argv, "--port");
    strv_push(&argv, colon + 1);
  }
  if (o->ps_fd >= 0) {
    char fd[16];
    snprintf(fd, sizeof fd, "%d", CKPT_PS_FD);
    strv_push(&argv, "--ps-socket");
    strv_push(&argv, fd);
  }
  if (o->keeper_fd >= 0) {
    char fd[16];
    snprintf(fd, sizeof fd, "%d", CKPT_KEEPER_FD);
    strv_push(&argv, "--track-mem-keeper");
    strv_push(&argv, fd);
  }
  if (!o->pre_dump) {
    /* the external mounts, keyed as runc's restore names them: bind
     * mounts and devices by their destination, masked files as /dev/null,
     * cgroup v1's per-controller bind mounts by their mountpoint */
    json_array_foreach(json_object_get(cfg, "mounts"), i, v)
    {
      const char *dev = json_str_or(v, "device", ""), *dst = json_str_or(v, "destination", "");
      if (strcmp(dev, "bind") == 0 && dst[0] == '/')
        push_ext_mnt(&argv, dst, dst);
      else if (strcmp(dev, "cgroup") == 0 && !cgroupns) {
        /* the controllers runc bound under dst: the container's own view */
        _cleanup_free_ char *mi = xasprintf("/proc/%d/mountinfo", pid);
        _cleanup_fclose_ FILE *f = fopen(mi, "re");
        char line[4096], point[1024];
        size_t dl = strlen(dst);
        while (f && fgets(line, sizeof line, f)) {
          const char *sep = strstr(line, " - ");
          mountinfo_point(line, point, sizeof point);
          if (sep && strncmp(sep + 3, "cgroup ", 7) == 0 && strncmp(point, dst, dl) == 0 &&
              point[dl] == '/')
            push_ext_mnt(&argv, point, point);
        }
      }
    }
    json_array_foreach(json_object_get(cfg, "mask_paths"), i, v)
    {
      const char *mp = json_string_value(v);
      struct stat ms;
      _cleanup_free_ char *in = mp ? xasprintf("/proc/%d/root%s", pid, mp) : NULL;
      if (in && stat(in, &ms) == 0 && !S_ISDIR(ms.st_mode))
        push_ext_mnt(&argv, mp, "/dev/null");
    }
    json_array_foreach(json_object_get(cfg, "devices"), i, v)
    {
      const char *dp = json_str_or(v, "path", "");
      if (dp[0] == '/')
        push_ext_mnt(&argv, dp, dp);
    }
    /* the stdio the restore reconnects (runc's descriptors.json) */
    json_t *ed = json_object_get(st, "external_descriptors");
    _cleanup_free_ char *dj = json_is_array(ed) ? json_dumps(ed, JSON_COMPACT) : NULL;
    _cleanup_free_ char *dp = path_join(images_dir, "descriptors.json");
    if (!dj || write_file_atomic(dp, dj, strlen(dj), 0600, NULL) < 0) {
      strv_free(argv);
      return -ENOENT;
    }
  }
  *out = argv;
  return 0;
}

/* Whether dumps go through runc checkpoint (FERRY_DUMP_VIA_RUNC=1 in
 * ferryd's environment: to compare, or where the direct dump fails). */
static bool dump_via_runc(void)
{
  static int v = -1;
  int k = __atomic_load_n(&v, __ATOMIC_ACQUIRE);
  if (k < 0) {
    const char *e = getenv("FERRY_DUMP_VIA_RUNC");
    k = e && strcmp(e, "1") == 0;
    __atomic_store_n(&v, k, __ATOMIC_RELEASE);
  }
  return k == 1;
}

/* A lazy dump that failed (what), with CRIU's errors from its log. */
static int lazy_dump_error(const char *images_dir, const char *what, struct ferry_err *err)
{
  _cleanup_free_ char *logp = path_join(images_dir, "dump.log");
  _cleanup_free_ char *cerr = criu_log_errors(logp, 700);
  return FERRY_INTERNAL(err, "criu dump --lazy-pages %s%s%s", what, *cerr ? ": CRIU: " : "", cerr);
}

/* The lazy dump: CRIU in the background (it outlives the agent, as any
 * dump), its status fd saying when the images are written and it serves
 * the lazy pages on ps_fd. */
static int lazy_dump_start(char **argv, const char *images_dir, const struct ckpt_dump_opts *o,
                           struct ferry_err *err)
{
  if (o->ps_fd < 0 || o->keeper_fd >= 0 || o->pre_dump)
    return FERRY_INVALID(err, "a lazy dump needs a page-server connection and no trackers");
  int st[2];
  if (pipe2(st, O_CLOEXEC) < 0)
    return ferry_err_sys(err, -errno, "pipe");
  _cleanup_free_ char *out = path_join(images_dir, "criu-lazy.out");
  struct spawn_opts so = {.envp = ckpt_criu_env(), .outlive_parent = true, .pass_fd = o->ps_fd, .pass_as = CKPT_PS_FD,
                          .pass_fd2 = st[1], .pass_as2 = CKPT_STATUS_FD};
  int pid = -1;
  int r = spawn_bg_opts((const char *const *)argv, out, &so, &pid, err);
  close(st[1]);
  if (r < 0) {
    close(st[0]);
    return r;
  }
  /* one byte when the images are written; end of file if CRIU ended */
  struct pollfd pf = {.fd = st[0], .events = POLLIN};
  int timeout = o->timeout_ms > 0 ? o->timeout_ms : 120000;
  char c;
  int pr = poll(&pf, 1, timeout);
  bool ready = pr == 1 && read(st[0], &c, 1) == 1;
  close(st[0]);
  if (ready) {
    *o->lazy_pid = pid;
    return 0;
  }
  spawn_reap(pid, pr == 1 ? 10000 : 0, true);
  return lazy_dump_error(images_dir, pr == 0 ? "did not finish its images in time" : "failed", err);
}

int ckpt_lazy_wait(int pid, const char *images_dir, int timeout_ms, bool kill_now,
                   struct ferry_err *err)
{
  if (pid <= 0)
    return 0;
  if (kill_now)
    kill(pid, SIGKILL);
  int code = spawn_reap(pid, kill_now ? 10000 : timeout_ms, true);
  if (code == 0)
    return 0;
  if (kill_now)
    return FERRY_INTERNAL(err, "the lazy dump was stopped");
  return lazy_dump_error(images_dir,
                         code == -ETIMEDOUT ? "did not serve every page in time" : "failed", err);
}

int ckpt_dump(struct runtime *rt, const char *id, const char *images_dir,
              const struct ckpt_dump_opts *o, json_t **stats, struct ferry_err *err)
{
  runtime_changed(rt);
  _cleanup_strv_ char **argv = NULL;
  bool direct = !dump_via_runc() && direct_dump_argv(rt, id, images_dir, o, &argv) == 0;
  if (o->lazy_pid) {
    if (!direct)
      return FERRY_INVALID(err, "container %s: memory \"lazy\" needs CRIU run directly (not "
                                "through runc: FERRY_DUMP_VIA_RUNC, or a container runc "
                                "itself must checkpoint)", id);
    int r = lazy_dump_start(argv, images_dir, o, err);
    runtime_changed(rt);
    return r;
  }
  if (!direct) {
    argv = strv_new();
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
  }
  struct spawn_result res = {0};
  /* runc leaves its CRIU running when it is killed; the direct CRIU must
   * outlive the agent the same way (the restart waits for it) */
  struct spawn_opts so = {.envp = ckpt_criu_env(), .timeout_ms = o->timeout_ms, .outlive_parent = direct};
  bool ps_line = false, keeper_line = false;
  uint64_t run_ms = 0;
  int r = 0;
  if (direct && !o->pre_dump && ckpt_criu_fits(o->criu, o->ps_fd, o->keeper_fd)) {
    /* the CRIU started ahead takes it as its request */
    _cleanup_free_ char *why = NULL;
    uint64_t t_run = now_mono_ms();
    r = ckpt_criu_dump(o->criu, argv, images_dir, o->timeout_ms, &why, err);
    run_ms = now_mono_ms() - t_run;
    runtime_changed(rt);
    if (r == -EIO) {
      _cleanup_free_ char *logp = path_join(images_dir, "dump.log");
      _cleanup_free_ char *cerr = criu_log_errors(logp, 700);
      r = FERRY_INTERNAL(err, "criu dump failed: %s%s%s", why, *cerr ? "; CRIU: " : "", cerr);
    }
    if (r != -ENOTSUP)
      goto stats;
    r = 0; /* not asked: CRIU is started here */
  }
  /* the direct command line names the fds itself; runc hands CRIU the
   * container's criu.conf, which then does */
  if (o->ps_fd >= 0) {
    if (!direct && (r = conf_fd_line(rt, id, "ps-socket", CKPT_PS_FD, true, err)) < 0) {
      ferry_err_wrap(err, "page-server connection for CRIU");
      goto out;
    }
    ps_line = !direct;
    so.pass_fd = o->ps_fd;
    so.pass_as = CKPT_PS_FD;
  }
  if (o->keeper_fd >= 0) {
    if (!direct && (r = conf_fd_line(rt, id, "track-mem-keeper", CKPT_KEEPER_FD, true, err)) < 0) {
      ferry_err_wrap(err, "memory trackers' keeper for CRIU");
      goto out;
    }
    keeper_line = !direct;
    so.pass_fd2 = o->keeper_fd;
    so.pass_as2 = CKPT_KEEPER_FD;
  }
  uint64_t t_run = now_mono_ms();
  r = spawn_run((const char *const *)argv, &so, &res, err);
  run_ms = now_mono_ms() - t_run;
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
    r = FERRY_INTERNAL(err, "%s failed%s%s%s%s",
                       direct ? (o->pre_dump ? "criu pre-dump" : "criu dump")
                              : (o->pre_dump ? "runc checkpoint --pre-dump" : "runc checkpoint"),
                       *t ? ": " : "", t, *cerr ? (*t ? "; CRIU: " : ": CRIU: ") : "", cerr);
  }
  spawn_result_free(&res);
stats:
  if (r == 0 && stats) {
    _cleanup_free_ char *sp = path_join(images_dir, "stats-dump");
    *stats = NULL;
    criu_stats_read(sp, stats, NULL);
    /* the program's whole run as the agent saw it (start, CRIU's work,
     * exit): what the freeze pays beyond CRIU's own figures */
    if (*stats)
      json_object_set_new(*stats, "process_ms", json_integer((json_int_t)run_ms));
  }
  return r;
}

/* criu lazy-pages for a restore from images_dir in work (its socket,
 * "lazy-pages.socket", is made there): in a session of its own and without
 * a parent-death signal, since it must outlive the thread and even the
 * agent that started it: the restored processes fault their pages in
 * through it while it pushes the rest, then it exits. */
static int lazy_daemon_start(const char *images_dir, const char *work, int ps_fd, int *pid_out,
                             struct ferry_err *err)
{
  _cleanup_free_ char *sock = path_join(work, "lazy-pages.socket");
  const char *argv[] = {"criu", "lazy-pages", "--images-dir", images_dir, "--work-dir", work,
                        "-o", "lazy-pages.log", "-v2", NULL, NULL, NULL, NULL};
  if (ps_fd > 2) {
    /* the pages not here come from the dumping CRIU, on this connection */
    argv[9] = "--page-server";
    argv[10] = "--ps-socket";
    argv[11] = "3";
  }
  struct spawn_opts so = {.envp = ckpt_criu_env(), .outlive_parent = true};
  if (ps_fd > 2) {
    so.pass_fd = ps_fd;
    so.pass_as = 3;
  }
  int pid = 0;
  int r = spawn_bg_opts(argv, "/dev/null", &so, &pid, err);
  if (r < 0)
    return ferry_err_wrap(err, "criu lazy-pages");
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

/* The mountinfo fields 4 (root) and 5 (mount point) of line, unescaped. */
static void mountinfo_root_point(const char *line, char *root, size_t rn, char *point, size_t pn)
{
  const char *p = line;
  for (int f = 0; f < 3 && p; f++) {
    p = strchr(p, ' ');
    if (p)
      p++;
  }
  size_t k = 0;
  while (p && *p && *p != ' ' && k + 1 < rn)
    root[k++] = *p++;
  root[k] = '\0';
  mountinfo_point(line, point, pn);
}

/* CRIU config lines that mount, at each cgroup v1 bind mount of the
 * container (/sys/fs/cgroup/NAME, a runc container without a cgroup
 * namespace), the container's own cgroup in that hierarchy on this host.
 * runc's restore maps those mounts to the cgroups runc itself runs in (the
 * host's root hierarchy here), so that a restored container saw every
 * cgroup of the host and the host's limits instead of its own; entries of
 * the config file are looked up before runc's. NULL when there is none. */
static char *cgroup_map_block(struct runtime *rt, json_t *rec)
{
  _cleanup_fclose_ FILE *f = fopen("/proc/self/mountinfo", "re");
  if (!f)
    return NULL;
  _cleanup_free_ char *cg = xasprintf("%s/%s", rt->cgroup_parent, rec_instance(rec));
  char *block = NULL;
  size_t blen = 0;
  FILE *b = open_memstream(&block, &blen);
  if (!b)
    abort();
  fputs("# ferry: this restore's cgroups\n", b);
  int n = 0;
  char line[4096], root[1024], point[1024];
  while (fgets(line, sizeof line, f)) {
    const char *sep = strstr(line, " - ");
    if (!sep || strncmp(sep + 3, "cgroup ", 7) != 0)
      continue;
    mountinfo_root_point(line, root, sizeof root, point, sizeof point);
    const char *base = strrchr(point, '/');
    if (!base || !base[1] || strcspn(point, " \t\n:") != strlen(point))
      continue;
    const char *rel = cg;
    size_t rl = strlen(root);
    if (strcmp(root, "/") != 0) { /* a hierarchy mounted from below its root */
      if (strncmp(cg, root, rl) != 0 || cg[rl] != '/')
        continue;
      rel = cg + rl;
    }
    fprintf(b, "ext-mount-map /sys/fs/cgroup/%s:%s%s\n", base + 1, point, rel);
    n++;
  }
  fclose(b);
  if (n == 0) {
    free(block);
    return NULL;
  }
  return block;
}

/* The restore's CRIU work dir in the container's directory, made afresh. */
static int restore_work_dir(struct runtime *rt, const char *id, char **out, struct ferry_err *err)
{
  char *work = ctr_path(rt, id, "restore-work");
  rm_rf(work, NULL);
  int r = mkdir_p(work, 0700, err);
  if (r < 0) {
    free(work);
    return r;
  }
  *out = work;
  return 0;
}

/* After runc's restore ended with r: a failure gets CRIU's log errors, a
 * success its figures into *stats (optional). */
static void restore_outcome(const char *work, int r, json_t **stats, struct ferry_err *err)
{
  if (r < 0) {
    _cleanup_free_ char *logp = path_join(work, "restore.log");
    _cleanup_free_ char *cerr = criu_log_errors(logp, 700);
    if (*cerr)
      ferry_err_wrap(err, "CRIU: %s; runc", cerr);
  } else if (stats) {
    _cleanup_free_ char *sp = path_join(work, "stats-restore");
    *stats = NULL;
    criu_stats_read(sp, stats, NULL);
  }
}

int ckpt_restore(struct runtime *rt, json_t *rec, const char *images_dir, struct ckpt_lazy *lazy,
                 int *pid, json_t **stats, struct ferry_err *err)
{
  const char *id = rec_id(rec);
  _cleanup_free_ char *work = NULL;
  int r = restore_work_dir(rt, id, &work, err);
  if (r < 0)
    return r;
  int daemon = -1;
  if (lazy && (r = lazy_daemon_start(images_dir, work, lazy->ps_fd, &daemon, err)) < 0)
    return r;
  char *rargs[] = {"--image-path", (char *)images_dir, "--work-path", work, "--tcp-established",
                   "--file-locks", lazy ? "--lazy-pages" : NULL, NULL};
  _cleanup_free_ char *cgmap = cgroup_map_block(rt, rec);
  if (cgmap && (r = conf_block(rt, id, cgmap, true, err)) < 0) {
    if (daemon > 0) {
      kill(daemon, SIGKILL);
      waitpid(daemon, NULL, 0);
    }
    return ferry_err_wrap(err, "container %s: CRIU's cgroup mounts", id);
  }
  r = runc_launch(rt, rec, rargs, pid, err);
  if (cgmap)
    conf_block(rt, id, cgmap, false, NULL);
  restore_outcome(work, r, stats, err);
  if (r < 0) {
    if (daemon > 0) {
      kill(daemon, SIGKILL);
      waitpid(daemon, NULL, 0);
    }
    return r;
  }
  if (lazy) {
    lazy->pid = daemon;
    lazy->copy_pid = *pid;
    snprintf(lazy->log, sizeof lazy->log, "%s/lazy-pages.log", work);
  }
  return 0;
}

/* ---- a restore started ahead and held at ferry-criu's gate ---- */

struct ckpt_restore_job {
  char *id, *work, *cgmap;
  int sync_fd; /* the shim's answer */
  int gate_fd; /* ferry-criu's connection, waiting for "g" */
};

static void job_free(struct runtime *rt, struct ckpt_restore_job *j)
{
  if (j->cgmap)
    conf_block(rt, j->id, j->cgmap, false, NULL);
  if (j->gate_fd >= 0)
    close(j->gate_fd);
  if (j->sync_fd >= 0)
    close(j->sync_fd);
  free(j->id);
  free(j->work);
  free(j->cgmap);
  free(j);
}

int ckpt_restore_start(struct runtime *rt, json_t *rec, const char *images_dir, json_t *descriptors,
                       struct ckpt_restore_job **out, struct ferry_err *err)
{
  const char *id = rec_id(rec);
  if (!rt->criu_helper)
    return ferry_err_set(err, -ENOTSUP, FERRY_E_CONFLICT, "no ferry-criu to hold the restore");
  _cleanup_free_ char *gate = xasprintf("%s/gate-%.16s.sock", rt->root, id);
  struct sockaddr_un sa = {.sun_family = AF_UNIX};
  if (strlen(gate) >= sizeof sa.sun_path)
    return ferry_err_set(err, -ENOTSUP, FERRY_E_CONFLICT, "the gate's path is too long: %s", gate);
  memcpy(sa.sun_path, gate, strlen(gate));
  /* runc reads the descriptors at its start, before any image is here */
  _cleanup_free_ char *dj = json_is_array(descriptors) ? json_dumps(descriptors, JSON_COMPACT) : NULL;
  _cleanup_free_ char *dp = path_join(images_dir, "descriptors.json");
  int r;
  if (!dj || (r = write_file_atomic(dp, dj, strlen(dj), 0600, err)) < 0)
    return dj ? r : FERRY_INVALID(err, "descriptors must be an array");
  struct ckpt_restore_job *j = calloc(1, sizeof *j);
  if (!j)
    abort();
  j->sync_fd = j->gate_fd = -1;
  j->id = xstrdup(id);
  if ((r = restore_work_dir(rt, id, &j->work, err)) < 0) {
    job_free(rt, j);
    return r;
  }
  j->cgmap = cgroup_map_block(rt, rec);
  if (j->cgmap && (r = conf_block(rt, id, j->cgmap, true, err)) < 0) {
    free(j->cgmap);
    j->cgmap = NULL;
    job_free(rt, j);
    return r;
  }
  int lfd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  unlink(gate);
  if (lfd < 0 || bind(lfd, (struct sockaddr *)&sa, sizeof sa) < 0 || listen(lfd, 1) < 0) {
    r = ferry_err_sys(err, -errno, "restore gate %s", gate);
    if (lfd >= 0)
      close(lfd);
    job_free(rt, j);
    return r;
  }
  char *rargs[] = {"--image-path", (char *)images_dir, "--work-path", j->work, "--tcp-established",
                   "--file-locks", NULL};
  if ((r = runc_launch_start(rt, rec, rargs, gate, &j->sync_fd, err)) < 0) {
    close(lfd);
    unlink(gate);
    job_free(rt, j);
    return r;
  }
  /* until ferry-criu waits at the gate (runc has made the cgroups and bound
   * the rootfs), or runc gave up before */
  uint64_t deadline = now_mono_ms() + 30000;
  while (j->gate_fd < 0) {
    uint64_t now = now_mono_ms();
    if (now >= deadline)
      break;
    struct pollfd pf[2] = {{.fd = lfd, .events = POLLIN}, {.fd = j->sync_fd, .events = POLLIN}};
    int pr = poll(pf, 2, (int)(deadline - now));
    if (pr < 0 && errno == EINTR)
      continue;
    if (pr <= 0 || (pf[1].revents && !(pf[0].revents & POLLIN)))
      break;
    int c = accept4(lfd, NULL, NULL, SOCK_CLOEXEC);
    if (c < 0)
      continue;
    char line[8] = "";
    struct pollfd cp = {.fd = c, .events = POLLIN};
    if (poll(&cp, 1, 5000) == 1 && read(c, line, 6) == 6 && memcmp(line, "ready\n", 6) == 0)
      j->gate_fd = c;
    else
      close(c);
  }
  close(lfd);
  unlink(gate);
  if (j->gate_fd < 0) {
    int pid = 0;
    int sync = j->sync_fd;
    j->sync_fd = -1;
    r = runc_launch_finish(sync, true, &pid, err);
    if (r == 0) /* it restored without the gate: not what was asked */
      r = FERRY_INTERNAL(err, "runc restore did not wait at the gate");
    job_free(rt, j);
    return ferry_err_wrap(err, "restore held ahead");
  }
  *out = j;
  return 0;
}

struct ckpt_restore_tail {
  char *work;
  int sync_fd;
};

/* ferry-criu's "done PID" on the gate's connection (CRIU's restore
 * succeeded, its processes run), or the shim's answer first (a failure,
 * or a ferry-criu that says nothing): true and *pid for the former.
 * Bounded: 120 s, as the shim's answer. */
static bool restore_done_early(int gate_fd, int sync_fd, int *pid)
{
  char buf[64];
  size_t len = 0;
  uint64_t deadline = now_mono_ms() + 120000;
  for (int i = 0; i < 1000 && gate_fd >= 0; i++) {
    uint64_t now = now_mono_ms();
    if (now >= deadline)
      return false;
    struct pollfd p[2] = {{.fd = gate_fd, .events = POLLIN}, {.fd = sync_fd, .events = POLLIN}};
    int pr = poll(p, 2, (int)(deadline - now));
    if (pr < 0 && errno == EINTR)
      continue;
    if (pr <= 0 || (p[1].revents && !(p[0].revents & POLLIN)))
      return false;
    ssize_t n = read(gate_fd, buf + len, sizeof buf - 1 - len);
    if (n <= 0)
      return false;
    len += (size_t)n;
    buf[len] = '\0';
    if (strchr(buf, '\n') || len >= sizeof buf - 1)
      return sscanf(buf, "done %d", pid) == 1 && *pid > 0;
  }
  return false;
}

int ckpt_restore_go(struct runtime *rt, struct ckpt_restore_job *j, int *pid, json_t **stats,
                    struct ckpt_restore_tail **tail, struct ferry_err *err)
{
  runtime_changed(rt);
  int r = write(j->gate_fd, "g", 1) == 1 ? 0 : ferry_err_sys(err, -errno, "restore gate");
  if (tail)
    *tail = NULL;
  if (r == 0 && tail && restore_done_early(j->gate_fd, j->sync_fd, pid)) {
    /* restored: runc's and the shim's end is the tail's */
    restore_outcome(j->work, 0, stats, err);
    struct ckpt_restore_tail *t = calloc(1, sizeof *t);
    if (!t)
      abort();
    t->work = j->work;
    t->sync_fd = j->sync_fd;
    j->work = NULL;
    j->sync_fd = -1;
    job_free(rt, j);
    *tail = t;
    return 0;
  }
  close(j->gate_fd);
  j->gate_fd = -1;
  int sync = j->sync_fd;
  j->sync_fd = -1;
  int rr = runc_launch_finish(sync, true, pid, err);
  if (r == 0)
    r = rr;
  restore_outcome(j->work, r, stats, err);
  job_free(rt, j);
  return r;
}

int ckpt_restore_tail_end(struct runtime *rt, struct ckpt_restore_tail *t, struct ferry_err *err)
{
  if (!t)
    return 0;
  int pid = 0;
  int r = runc_launch_finish(t->sync_fd, true, &pid, err);
  if (r < 0)
    restore_outcome(t->work, r, NULL, err);
  runtime_changed(rt);
  free(t->work);
  free(t);
  return r;
}

void ckpt_restore_cancel(struct runtime *rt, struct ckpt_restore_job *j)
{
  if (!j)
    return;
  /* ferry-criu reads the end: CRIU never runs, runc's restore fails and
   * removes what it made */
  if (j->gate_fd >= 0) {
    close(j->gate_fd);
    j->gate_fd = -1;
  }
  int pid = 0, sync = j->sync_fd;
  j->sync_fd = -1;
  if (sync >= 0)
    runc_launch_finish(sync, true, &pid, NULL);
  runtime_changed(rt);
  job_free(rt, j);
}

json_t *ckpt_descriptors(struct runtime *rt, const char *id)
{
  _cleanup_free_ char *sp = xasprintf("%s/%s/state.json", rt->runc_root, id);
  _cleanup_free_ char *txt = NULL;
  size_t n = 0;
  _cleanup_json_ json_t *st = NULL;
  if (read_file(sp, 4 << 20, &txt, &n, NULL) < 0 || json_parse(txt, n, "runc state", &st, NULL) < 0)
    return NULL;
  json_t *ed = json_object_get(st, "external_descriptors");
  return json_is_array(ed) ? json_deep_copy(ed) : NULL;
}
