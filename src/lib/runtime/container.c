#include <dirent.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "runtime/runtime.h"
#include "util/cleanup.h"
#include "util/fs.h"
#include "util/json.h"

int runtime_init(struct runtime *rt, const char *root, const char *runc_root, const char *runc,
                 const char *shim, struct ferry_err *err)
{
  memset(rt, 0, sizeof *rt);
  rt->root = xstrdup(root);
  rt->ctr_dir = path_join(root, "containers");
  rt->vol_dir = path_join(root, "volumes");
  rt->runc = xstrdup(runc ? runc : "runc");
  rt->runc_root = xstrdup(runc_root);
  rt->shim = xstrdup(shim);
  /* ferry-criu answers runc's CRIU version question from a copy of CRIU's
   * own answer (src/criu/main.c): one CRIU start less in each restore */
  {
    _cleanup_free_ char *sd = xstrdup(shim);
    char *slash = strrchr(sd, '/');
    if (slash) {
      *slash = '\0';
      char *h = path_join(sd, "ferry-criu");
      if (access(h, X_OK) == 0)
        rt->criu_helper = h;
      else
        free(h);
    }
  }
  rt->criu_cache = path_join(root, "criu-version.cache");
  rt->cgroup_parent = xstrdup("/ferry");
  rt->stop_timeout_s = 10;
  pthread_mutex_init(&rt->state_lock, NULL);
  rt->state_cache = json_object();
  int r;
  if ((r = mkdir_p(rt->ctr_dir, 0700, err)) < 0 || (r = mkdir_p(rt->vol_dir, 0700, err)) < 0 ||
      (r = mkdir_p(rt->runc_root, 0700, err)) < 0)
    return r;
  return 0;
}

void runtime_fini(struct runtime *rt)
{
  free(rt->root);
  free(rt->ctr_dir);
  free(rt->vol_dir);
  free(rt->runc);
  free(rt->runc_root);
  free(rt->shim);
  free(rt->criu_helper);
  free(rt->criu_cache);
  free(rt->cgroup_parent);
  json_decref(rt->state_cache);
  pthread_mutex_destroy(&rt->state_lock);
  memset(rt, 0, sizeof *rt);
}

int validate_name(const char *kind, const char *name, struct ferry_err *err)
{
  if (!name || !*name)
    return FERRY_INVALID(err, "%s name is empty", kind);
  size_t n = strlen(name);
  if (n > 63)
    return FERRY_INVALID(err, "%s name \"%.20s...\" is longer than 63 characters", kind, name);
  for (size_t i = 0; i < n; i++) {
    char c = name[i];
    bool alnum = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9');
    if (!alnum && (i == 0 || (c != '_' && c != '.' && c != '-')))
      return FERRY_INVALID(err, "%s name \"%s\": only letters, digits, '_', '.' and '-' are "
                                "allowed, starting with a letter or digit",
                           kind, name);
  }
  return 0;
}

char *ctr_path(struct runtime *rt, const char *id, const char *leaf)
{
  _cleanup_free_ char *d = path_join(rt->ctr_dir, id);
  return leaf ? path_join(d, leaf) : TAKE_PTR(d);
}

static int cmp_created(const void *a, const void *b)
{
  json_t *ja = *(json_t *const *)a, *jb = *(json_t *const *)b;
  return strcmp(rec_created(ja), rec_created(jb));
}

json_t *ctr_load_all(struct runtime *rt)
{
  json_t *arr = json_array();
  DIR *d = opendir(rt->ctr_dir);
  if (!d)
    return arr;
  struct dirent *de;
  json_t **v = NULL; /* every record: a name or address check must see them all */
  size_t n = 0, cap = 0;
  while ((de = readdir(d))) {
    if (de->d_name[0] == '.')
      continue;
    _cleanup_free_ char *p = ctr_path(rt, de->d_name, "container.json");
    json_t *j = NULL;
    if (json_load(p, &j, NULL) == 0 && json_is_object(j)) {
      if (n == cap) {
        cap = cap ? cap * 2 : 64;
        json_t **nv = realloc(v, cap * sizeof *v);
        if (!nv)
          abort();
        v = nv;
      }
      v[n++] = j;
    } else if (j) {
      json_decref(j);
    }
  }
  closedir(d);
  if (n)
    qsort(v, n, sizeof v[0], cmp_created);
  for (size_t i = 0; i < n; i++)
    json_array_append_new(arr, v[i]);
  free(v);
  return arr;
}

int ctr_save(struct runtime *rt, json_t *rec, struct ferry_err *err)
{
  const char *id = (rec_has_id(rec) ? rec_id(rec) : NULL);
  if (!id)
    return FERRY_INTERNAL(err, "container record without id");
  _cleanup_free_ char *dir = ctr_path(rt, id, NULL);
  int r = mkdir_p(dir, 0700, err);
  if (r < 0)
    return r;
  _cleanup_free_ char *p = ctr_path(rt, id, "container.json");
  /* Live fields are derived, not stored. */
  _cleanup_json_ json_t *copy = json_deep_copy(rec);
  rec_clear_live(copy);
  runtime_changed(rt);
  return json_save_durable(p, copy, err);
}

int ctr_find(struct runtime *rt, const char *ref, json_t **out, struct ferry_err *err)
{
  if (!ref || !*ref)
    return FERRY_INVALID(err, "container name is empty");
  _cleanup_json_ json_t *all = ctr_load_all(rt);
  size_t i;
  json_t *c;
  json_array_foreach(all, i, c)
  {
    if (strcmp(rec_name(c), ref) == 0 || strcmp(rec_id(c), ref) == 0) {
      *out = json_incref(c);
      return 0;
    }
  }
  size_t n = strlen(ref);
  json_t *found = NULL;
  int matches = 0;
  if (n >= 4 && strspn(ref, "0123456789abcdef") == n) {
    json_array_foreach(all, i, c)
    {
      if (strncmp(rec_id(c), ref, n) == 0) {
        found = c;
        matches++;
      }
    }
  }
  if (matches == 1) {
    *out = json_incref(found);
    return 0;
  }
  return FERRY_NOTFOUND(err, "container \"%s\": no such container", ref);
}

void runtime_changed(struct runtime *rt)
{
  pthread_mutex_lock(&rt->state_lock);
  json_object_clear(rt->state_cache);
  pthread_mutex_unlock(&rt->state_lock);
}

/* A file of container inst's cgroup: under controller's hierarchy (cgroup
 * v1), or the unified one (v2) when controller is NULL. */
static char *cgroup_file(struct runtime *rt, const char *controller, const char *inst,
                         const char *leaf)
{
  return xasprintf("/sys/fs/cgroup%s%s%s/%s/%s", controller ? "/" : "", controller ? controller : "",
                   rt->cgroup_parent, inst, leaf);
}

/* Is the container's cgroup frozen (1), thawed (0), or unknown (-1)? */
static int cgroup_frozen(struct runtime *rt, const char *inst)
{
  _cleanup_free_ char *v1 = cgroup_file(rt, "freezer", inst, "freezer.state");
  _cleanup_free_ char *v2 = cgroup_file(rt, NULL, inst, "cgroup.freeze");
  char buf[16] = "";
  _cleanup_fclose_ FILE *f = fopen(v1, "re");
  if (f && fgets(buf, sizeof buf, f))
    return strncmp(buf, "THAWED", 6) != 0;
  _cleanup_fclose_ FILE *g = fopen(v2, "re");
  if (g && fgets(buf, sizeof buf, g))
    return buf[0] == '1';
  return -1;
}

static bool write_word(const char *path, const char *word)
{
  int fd = open(path, O_WRONLY | O_CLOEXEC);
  if (fd < 0)
    return false;
  size_t n = strlen(word);
  bool ok = write(fd, word, n) == (ssize_t)n;
  close(fd);
  return ok;
}

/* Does the file say want (its first line starts so, or for cgroup.events
 * a line is exactly it)? */
static bool file_says(const char *path, const char *want)
{
  char buf[256];
  _cleanup_fclose_ FILE *f = fopen(path, "re");
  while (f && fgets(buf, sizeof buf, f))
    if (strncmp(buf, want, strlen(want)) == 0)
      return true;
  return false;
}

/* cgroup v1 only. The kernel turns its freezer on (a static key: kernel
 * text rewritten on every CPU) when the first cgroup freezes and off when
 * the last one thaws: ~1.3 ms added to a freeze and ~1.1 ms to a thaw on
 * these machines, several times in each move (ferry's freeze, CRIU's seize
 * and its end), and every CPU stalls for it. One empty cgroup kept frozen
 * keeps it on: a freeze then takes ~0.25 ms, a thaw ~0.02 ms. It holds no
 * task, so nothing is ever frozen by it; it is left in place when the
 * agent stops (other agents of the machine share it). */
int runtime_freezer_keep(struct runtime *rt)
{
  _cleanup_free_ char *base = xasprintf("/sys/fs/cgroup/freezer%s", rt->cgroup_parent);
  _cleanup_free_ char *dir = path_join(base, "keep-frozen");
  _cleanup_free_ char *state = path_join(dir, "freezer.state");
  struct stat st;
  if (stat("/sys/fs/cgroup/freezer", &st) < 0)
    return 0; /* no v1 freezer: nothing to keep on */
  if ((mkdir(base, 0755) < 0 && errno != EEXIST) || (mkdir(dir, 0755) < 0 && errno != EEXIST))
    return -errno;
  return write_word(state, "FROZEN") ? 1 : -EIO;
}

int ctr_freeze(struct runtime *rt, json_t *rec, struct ferry_err *err)
{
  const char *inst = rec_instance(rec);
  _cleanup_free_ char *v1 = cgroup_file(rt, "freezer", inst, "freezer.state");
  _cleanup_free_ char *v2 = cgroup_file(rt, NULL, inst, "cgroup.freeze");
  _cleanup_free_ char *v2ev = cgroup_file(rt, NULL, inst, "cgroup.events");
  runtime_changed(rt);
  const char *state = NULL, *done = NULL, *thaw = NULL, *thawed_file = NULL;
  if (write_word(v1, "FROZEN")) {
    state = v1, done = "FROZEN", thaw = "THAWED", thawed_file = v1;
  } else if (write_word(v2, "1")) {
    state = v2ev, done = "frozen 1", thaw = "0", thawed_file = v2;
  }
  /* bounded: ~1 s; a cgroup that does not settle (a task in an
   * uninterruptible sleep) is runc's to retry. Asked every 100 us for the
   * first 10 ms, then every millisecond: a few tasks freeze in well under
   * one, and this is inside the pause. */
  for (int i = 0; state && i < 1090; i++) {
    if (file_says(state, done))
      return 0;
    usleep(i < 100 ? 100 : 1000);
  }
  if (state)
    write_word(thawed_file, thaw);
  int r = runc_simple(rt, "pause", rec_id(rec), err);
  runtime_changed(rt);
  return r;
}

/* A process of the container's cgroup (v2, else v1's freezer), 0 if none. */
static int cgroup_some_pid(struct runtime *rt, const char *inst)
{
  const char *ctl[] = {NULL, "freezer"};
  for (size_t i = 0; i < ARRAY_SIZE(ctl); i++) {
    _cleanup_free_ char *procs = cgroup_file(rt, ctl[i], inst, "cgroup.procs");
    _cleanup_fclose_ FILE *f = fopen(procs, "re");
    int pid = 0;
    if (f && fscanf(f, "%d", &pid) == 1 && pid > 0)
      return pid;
  }
  return 0;
}

/* The bytes waiting in the receive queues of the UDP sockets of pid's
 * network namespace (/proc/PID/net/udp and udp6: "tx_queue:rx_queue" in
 * hex, the fifth column), -1 if neither can be read. */
static long udp_rx_queued(int pid)
{
  long total = -1;
  const char *files[] = {"udp", "udp6"};
  for (size_t i = 0; i < ARRAY_SIZE(files); i++) {
    char path[64];
    snprintf(path, sizeof path, "/proc/%d/net/%s", pid, files[i]);
    _cleanup_fclose_ FILE *f = fopen(path, "re");
    char line[512];
    if (!f || !fgets(line, sizeof line, f)) /* the heading */
      continue;
    if (total < 0)
      total = 0;
    for (int n = 0; n < 65536 && fgets(line, sizeof line, f); n++) {
      unsigned long tx, rx;
      if (sscanf(line, "%*s %*s %*s %*s %lx:%lx", &tx, &rx) == 2)
        total += (long)rx;
    }
  }
  return total;
}

/* How many of the container's threads are running or runnable (state R
 * in /proc/TID/stat), -1 if its cgroup's thread list cannot be read. */
static int threads_running(struct runtime *rt, const char *inst)
{
  const char *ctl[][2] = {{NULL, "cgroup.threads"}, {"freezer", "tasks"}};
  for (size_t i = 0; i < ARRAY_SIZE(ctl); i++) {
    _cleanup_free_ char *list = cgroup_file(rt, ctl[i][0], inst, ctl[i][1]);
    _cleanup_fclose_ FILE *f = fopen(list, "re");
    if (!f)
      continue;
    int tid, running = 0;
    for (int n = 0; n < 4096 && fscanf(f, "%d", &tid) == 1; n++) {
      char path[64], buf[256];
      snprintf(path, sizeof path, "/proc/%d/stat", tid);
      _cleanup_fclose_ FILE *st = fopen(path, "re");
      if (!st || !fgets(buf, sizeof buf, st))
        continue;
      const char *p = strrchr(buf, ')'); /* the command may hold anything */
      if (p && p[1] == ' ' && p[2] == 'R')
        running++;
    }
    return running;
  }
  return -1;
}

long ctr_settle(struct runtime *rt, json_t *rec, int timeout_ms, int udp_timeout_ms,
                long *udp_left)
{
  const char *inst = rec_instance(rec);
  int pid = cgroup_some_pid(rt, inst);
  if (udp_left)
    *udp_left = 0;
  if (pid <= 0)
    return -1;
  uint64_t start = now_mono_ms();
  uint64_t until = start + (uint64_t)timeout_ms;
  uint64_t udp_until = start + (uint64_t)(udp_timeout_ms > timeout_ms ? udp_timeout_ms : timeout_ms);
  long busy = -1, q = 0;
  /* bounded: udp_timeout_ms, asked every 100 us (a request is handled in
   * tens of microseconds; a thread that computes all along keeps it to
   * timeout_ms). Past timeout_ms it waits on only while datagrams are
   * queued and a thread of it is runnable: its reader, woken by them but
   * not yet given a CPU on a loaded host; datagrams nobody reads, or a
   * reader that sleeps on something else, do not keep it. */
  for (int i = 0; i < 100000; i++) {
    q = udp_rx_queued(pid);
    int run = threads_running(rt, inst);
    busy = (q > 0 ? q : 0) + (run > 0 ? run : 0);
    uint64_t now = now_mono_ms();
    if ((q < 0 && run < 0) || busy == 0 || now >= udp_until)
      break;
    if (now >= until && !(q > 0 && run > 0))
      break;
    usleep(100);
  }
  if (udp_left)
    *udp_left = q > 0 ? q : 0;
  return busy;
}

/* runc state, or its answer of a moment ago when nothing changed since:
 * no runc action or record write, no newer exit file, and the cgroup's
 * freezer says what the answer said (a pause behind ferry's back). */
static int state_cached(struct runtime *rt, json_t *rec, char **status, int *pid)
{
  const char *id = rec_id(rec);
  uint64_t now = now_wall_ms();
  _cleanup_free_ char *ef = ctr_path(rt, id, "exit.json");
  struct stat st;
  uint64_t exited_ms = stat(ef, &st) == 0 ? (uint64_t)st.st_mtim.tv_sec * 1000 +
                                                 (uint64_t)st.st_mtim.tv_nsec / 1000000
                                          : 0;
  pthread_mutex_lock(&rt->state_lock);
  json_t *c = json_object_get(rt->state_cache, id);
  uint64_t at = (uint64_t)json_integer_value(json_object_get(c, "at"));
  bool paused = strcmp(json_str_or(c, "status", ""), "paused") == 0;
  int frozen = c ? cgroup_frozen(rt, rec_instance(rec)) : -1;
  if (c && now - at < STATE_CACHE_MS && exited_ms < at && frozen >= 0 && frozen == paused) {
    *status = xstrdup(json_str_or(c, "status", "unknown"));
    *pid = (int)json_integer_value(json_object_get(c, "pid"));
    pthread_mutex_unlock(&rt->state_lock);
    return 0;
  }
  pthread_mutex_unlock(&rt->state_lock);
  int r = runc_state(rt, id, status, pid);
  if (r == 0) {
    pthread_mutex_lock(&rt->state_lock);
    if (json_object_size(rt->state_cache) > 4096)
      json_object_clear(rt->state_cache);
    json_object_set_new(rt->state_cache, id,
                        json_pack("{s:s, s:i, s:I}", "status", *status, "pid", *pid, "at",
                                  (json_int_t)now));
    pthread_mutex_unlock(&rt->state_lock);
  }
  return r;
}

enum ctr_live ctr_refresh(struct runtime *rt, json_t *rec)
{
  static const enum ctr_live of_stored[] = {
      [CS_CREATED] = LIVE_CREATED, [CS_RUNNING] = LIVE_RUNNING, [CS_EXITED] = LIVE_EXITED,
      [CS_CHECKPOINTED] = LIVE_CHECKPOINTED, [CS_MIGRATED] = LIVE_MIGRATED,
  };
  const char *id = rec_id(rec);
  enum ctr_state stored = rec_state(rec);
  enum ctr_live status = (size_t)stored < ARRAY_SIZE(of_stored) ? of_stored[stored] : LIVE_CREATED;
  int pid = 0;
  if (stored == CS_RUNNING) {
    /* runc's word for it ("running", "paused", "stopped", ...) */
    _cleanup_free_ char *rs = NULL;
    bool known = state_cached(rt, rec, &rs, &pid) == 0 && rs;
    status = LIVE_EXITED;
    if (known && strcmp(rs, "running") == 0)
      status = LIVE_RUNNING;
    else if (known && strcmp(rs, "paused") == 0)
      status = LIVE_PAUSED;
  }
  int code;
  if (status == LIVE_EXITED && !rec_exit_code(rec, &code)) {
    _cleanup_free_ char *ef = ctr_path(rt, id, "exit.json");
    _cleanup_json_ json_t *ex = NULL;
    if (json_load(ef, &ex, NULL) == 0)
      rec_set_exit(rec, ex);
  }
  rec_set_status(rec, status, ctr_live_up(status) ? pid : 0);
  return status;
}

bool ctr_wait_exit(struct runtime *rt, const char *id, int timeout_ms)
{
  _cleanup_free_ char *ef = ctr_path(rt, id, "exit.json");
  uint64_t deadline = now_mono_ms() + (uint64_t)timeout_ms;
  while (now_mono_ms() < deadline) {
    if (path_exists(ef))
      return true;
    usleep(20000);
  }
  return path_exists(ef);
}

int64_t ctr_memory_bytes(struct runtime *rt, const char *id)
{
  /* cgroup v1, then v2 */
  _cleanup_free_ char *v1 = cgroup_file(rt, "memory", id, "memory.usage_in_bytes");
  _cleanup_free_ char *v2 = cgroup_file(rt, NULL, id, "memory.current");
  const char *paths[] = {v1, v2};
  for (size_t i = 0; i < 2; i++) {
    _cleanup_fclose_ FILE *f = fopen(paths[i], "re");
    long long n;
    if (f && fscanf(f, "%lld", &n) == 1 && n >= 0)
      return n;
  }
  return -1;
}

/* The first number after "Key:" in /proc/PID/status (the last one with
 * last: NSpid's is the pid in the innermost namespace). */
static long status_field(const char *txt, const char *key, bool last)
{
  const char *p = strstr(txt, key);
  if (!p)
    return -1;
  p += strlen(key);
  long v = -1;
  char *end;
  for (;;) {
    while (*p == ' ' || *p == '\t')
      p++;
    if (*p < '0' || *p > '9')
      break;
    v = strtol(p, &end, 10);
    p = end;
    if (!last)
      break;
  }
  return v;
}

json_t *ctr_processes(struct runtime *rt, const char *id)
{
  json_t *out = json_array();
  _cleanup_free_ char *v1 = cgroup_file(rt, "pids", id, "cgroup.procs");
  _cleanup_free_ char *v1m = cgroup_file(rt, "memory", id, "cgroup.procs");
  _cleanup_free_ char *v2 = cgroup_file(rt, NULL, id, "cgroup.procs");
  const char *paths[] = {v1, v1m, v2};
  _cleanup_fclose_ FILE *f = NULL;
  for (size_t i = 0; i < 3 && !f; i++)
    f = fopen(paths[i], "re");
  if (!f)
    return out;
  long hz = sysconf(_SC_CLK_TCK);
  double uptime = 0;
  _cleanup_fclose_ FILE *u = fopen("/proc/uptime", "re");
  if (!u || fscanf(u, "%lf", &uptime) != 1)
    uptime = 0;
  /* host pid -> pid in the container, for the parents */
  json_t *nspid = json_object();
  long pid;
  while (json_array_size(out) < 4096 && fscanf(f, "%ld", &pid) == 1) {
    char path[64];
    snprintf(path, sizeof path, "/proc/%ld/status", pid);
    _cleanup_free_ char *st = NULL;
    if (read_file(path, 1 << 16, &st, NULL, NULL) < 0)
      continue; /* gone meanwhile */
    snprintf(path, sizeof path, "/proc/%ld/stat", pid);
    _cleanup_free_ char *stat = NULL;
    if (read_file(path, 1 << 16, &stat, NULL, NULL) < 0)
      continue;
    /* after the command's ")" (which may hold anything): state ppid ... */
    char *rp = strrchr(stat, ')');
    unsigned long long ut = 0, stt = 0, start = 0;
    if (!rp || sscanf(rp + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %llu %llu %*d %*d %*d %*d %*d %*d %llu",
                      &ut, &stt, &start) != 3)
      continue;
    snprintf(path, sizeof path, "/proc/%ld/cmdline", pid);
    _cleanup_free_ char *cmd = NULL;
    size_t clen = 0;
    if (read_file(path, 1 << 16, &cmd, &clen, NULL) < 0 || clen == 0) {
      /* a kernel thread's or a zombie's: its name in brackets */
      char *lp = strchr(stat, '(');
      free(cmd);
      cmd = lp && rp > lp ? xasprintf("[%.*s]", (int)(rp - lp - 1), lp + 1) : xstrdup("?");
    } else {
      for (size_t k = 0; k + 1 < clen; k++)
        if (cmd[k] == '\0')
          cmd[k] = ' ';
    }
    double elapsed = uptime - (double)start / (double)hz;
    double cpu = (double)(ut + stt) / (double)hz;
    long np = status_field(st, "\nNSpid:", true);
    char key[24];
    snprintf(key, sizeof key, "%ld", pid);
    json_object_set_new(nspid, key, json_integer(np));
    json_array_append_new(out, json_pack("{s:I, s:I, s:I, s:I, s:f, s:f, s:f, s:s}", "host_pid",
                                         (json_int_t)pid, "pid", (json_int_t)np, "host_ppid",
                                         (json_int_t)status_field(st, "\nPPid:", false), "uid",
                                         (json_int_t)status_field(st, "\nUid:", false),
                                         "cpu_seconds", cpu, "elapsed_seconds",
                                         elapsed > 0 ? elapsed : 0, "cpu_percent",
                                         elapsed > 0 ? 100.0 * cpu / elapsed : 0.0, "command", cmd));
  }
  size_t i;
  json_t *p;
  json_array_foreach(out, i, p)
  {
    char key[24];
    snprintf(key, sizeof key, "%lld", (long long)json_integer_value(json_object_get(p, "host_ppid")));
    json_t *pp = json_object_get(nspid, key);
    json_object_set_new(p, "ppid", json_integer(pp ? json_integer_value(pp) : 0));
    json_object_del(p, "host_ppid");
  }
  json_decref(nspid);
  return out;
}

/* The first number in a cgroup file (v1 then v2 path tried), -1 when
 * neither reads ("max" is -1 too: no limit). */
static long long cg_number(struct runtime *rt, const char *v1ctl, const char *v1leaf,
                           const char *v2leaf, const char *inst)
{
  _cleanup_free_ char *p1 = v1ctl ? cgroup_file(rt, v1ctl, inst, v1leaf) : NULL;
  _cleanup_free_ char *p2 = v2leaf ? cgroup_file(rt, NULL, inst, v2leaf) : NULL;
  const char *paths[] = {p1, p2};
  for (size_t i = 0; i < 2; i++) {
    if (!paths[i])
      continue;
    _cleanup_fclose_ FILE *f = fopen(paths[i], "re");
    long long n;
    if (f && fscanf(f, "%lld", &n) == 1)
      return n;
  }
  return -1;
}

/* Bytes read and written by the cgroup's processes (v1 blkio's Total
 * lines, v2 io.stat's rbytes/wbytes). */
static void cg_block(struct runtime *rt, const char *inst, long long *rd, long long *wr)
{
  *rd = *wr = 0;
  _cleanup_free_ char *p1 = cgroup_file(rt, "blkio", inst, "blkio.throttle.io_service_bytes");
  _cleanup_free_ char *p2 = cgroup_file(rt, NULL, inst, "io.stat");
  char line[512];
  _cleanup_fclose_ FILE *f = fopen(p1, "re");
  while (f && fgets(line, sizeof line, f)) {
    char op[16];
    long long n;
    if (sscanf(line, "%*s %15s %lld", op, &n) == 2) {
      if (strcmp(op, "Read") == 0)
        *rd += n;
      else if (strcmp(op, "Write") == 0)
        *wr += n;
    }
  }
  if (f)
    return;
  _cleanup_fclose_ FILE *g = fopen(p2, "re");
  while (g && fgets(line, sizeof line, g)) {
    const char *r = strstr(line, "rbytes="), *w = strstr(line, "wbytes=");
    if (r)
      *rd += strtoll(r + 7, NULL, 10);
    if (w)
      *wr += strtoll(w + 7, NULL, 10);
  }
}

json_t *ctr_stats(struct runtime *rt, const char *inst, int pid)
{
  long long cpu_ns = cg_number(rt, "cpuacct", "cpuacct.usage", NULL, inst);
  if (cpu_ns < 0) {
    /* v2: usage_usec in cpu.stat */
    _cleanup_free_ char *p2 = cgroup_file(rt, NULL, inst, "cpu.stat");
    _cleanup_fclose_ FILE *f = fopen(p2, "re");
    long long us;
    if (f && fscanf(f, "usage_usec %lld", &us) == 1)
      cpu_ns = us * 1000;
  }
  long long mem = ctr_memory_bytes(rt, inst);
  long long lim = cg_number(rt, "memory", "memory.limit_in_bytes", "memory.max", inst);
  /* v1 says "no limit" with a huge number: the host's memory is the limit */
  long long host = (long long)sysconf(_SC_PHYS_PAGES) * (long long)sysconf(_SC_PAGESIZE);
  if (lim < 0 || lim > host)
    lim = host;
  long long pids = cg_number(rt, "pids", "pids.current", "pids.current", inst);
  long long rd, wr;
  cg_block(rt, inst, &rd, &wr);
  /* the container's network: its init's network namespace */
  long long rx = 0, tx = 0;
  char path[64], line[512];
  snprintf(path, sizeof path, "/proc/%d/net/dev", pid);
  _cleanup_fclose_ FILE *nd = pid > 0 ? fopen(path, "re") : NULL;
  while (nd && fgets(line, sizeof line, nd)) {
    char *c = strchr(line, ':');
    if (!c)
      continue;
    *c = '\0';
    const char *ifn = line + strspn(line, " ");
    if (strcmp(ifn, "lo") == 0)
      continue;
    long long r = 0, t = 0;
    if (sscanf(c + 1, "%lld %*d %*d %*d %*d %*d %*d %*d %lld", &r, &t) == 2) {
      rx += r;
      tx += t;
    }
  }
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return json_pack("{s:f, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I}", "cpu_seconds",
                   cpu_ns >= 0 ? (double)cpu_ns / 1e9 : 0.0, "memory_bytes",
                   (json_int_t)(mem > 0 ? mem : 0), "memory_limit_bytes", (json_int_t)lim,
                   "pids", (json_int_t)(pids > 0 ? pids : 0), "net_rx_bytes", (json_int_t)rx,
                   "net_tx_bytes", (json_int_t)tx, "block_read_bytes", (json_int_t)rd,
                   "block_write_bytes", (json_int_t)wr, "read_at_ms",
                   (json_int_t)((long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000));
}
