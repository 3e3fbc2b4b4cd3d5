/* The OCI runtime spec (config.json) for a container record. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <fcntl.h>
#include <unistd.h>
#include <sys/resource.h>
#include <sys/stat.h>

#include "runtime/runtime.h"
#include "util/cleanup.h"
#include "util/fs.h"
#include "util/json.h"

/* An image's /etc/passwd or /etc/group, opened inside the rootfs (never a
 * host file through a symlink) and only if it is a regular file of a sane
 * size: a FIFO or a device there must not hang or flood the agent. */
static FILE *open_db(const char *rootfs, const char *file)
{
  int fd = open_in_root(rootfs, file, O_RDONLY | O_NONBLOCK | O_NOCTTY, NULL);
  if (fd < 0)
    return NULL;
  struct stat st;
  if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode) || st.st_size > (16 << 20)) {
    close(fd);
    return NULL;
  }
  FILE *f = fdopen(fd, "r");
  if (!f)
    close(fd);
  return f;
}

static int lookup_db(const char *rootfs, const char *file, const char *name, int field,
                     long *out)
{
  _cleanup_fclose_ FILE *f = open_db(rootfs, file);
  if (!f)
    return -ENOENT;
  char line[1024];
  while (fgets(line, sizeof line, f)) {
    char *save = NULL;
    char *tok = strtok_r(line, ":", &save);
    if (!tok || strcmp(tok, name) != 0)
      continue;
    char *v = NULL;
    for (int i = 0; i < field; i++)
      v = strtok_r(NULL, ":", &save);
    if (!v)
      return -EINVAL;
    char *end;
    long n = strtol(v, &end, 10);
    if (end == v || n < 0)
      return -EINVAL;
    *out = n;
    return 0;
  }
  return -ENOENT;
}

static bool is_number(const char *s) { return *s && strspn(s, "0123456789") == strlen(s); }

int spec_resolve_user(const char *rootfs, const char *user, uint32_t *uid, uint32_t *gid,
                      struct ferry_err *err)
{
  *uid = 0;
  *gid = 0;
  if (!user || !*user)
    return 0;
  _cleanup_free_ char *u = xstrdup(user);
  char *g = strchr(u, ':');
  if (g)
    *g++ = '\0';
  long n;
  if (is_number(u)) {
    if (strlen(u) > 10 || strtoull(u, NULL, 10) >= 4294967295ull)
      return FERRY_INVALID(err, "user \"%s\": a uid must be below 4294967295", u);
    *uid = (uint32_t)strtoul(u, NULL, 10);
    /* primary group from passwd when the user exists there */
    _cleanup_fclose_ FILE *f = open_db(rootfs, "etc/passwd");
    char line[1024];
    while (!g && f && fgets(line, sizeof line, f)) {
      unsigned long fu, fg;
      if (sscanf(line, "%*[^:]:%*[^:]:%lu:%lu:", &fu, &fg) == 2 && fu == *uid) {
        *gid = (uint32_t)fg;
        break;
      }
    }
  } else {
    if (lookup_db(rootfs, "etc/passwd", u, 2, &n) < 0)
      return FERRY_INVALID(err, "user \"%s\": not found in the image's /etc/passwd", u);
    *uid = (uint32_t)n;
    if (!g && lookup_db(rootfs, "etc/passwd", u, 3, &n) == 0)
      *gid = (uint32_t)n;
  }
  if (g) {
    if (is_number(g) && (strlen(g) > 10 || strtoull(g, NULL, 10) >= 4294967295ull))
      return FERRY_INVALID(err, "group \"%s\": a gid must be below 4294967295", g);
    if (is_number(g))
      *gid = (uint32_t)strtoul(g, NULL, 10);
    else if (lookup_db(rootfs, "etc/group", g, 2, &n) == 0)
      *gid = (uint32_t)n;
    else
      return FERRY_INVALID(err, "group \"%s\": not found in the image's /etc/group", g);
  }
  return 0;
}

static json_t *mount_new(const char *dest, const char *type, const char *src, const char *opts)
{
  json_t *m = json_object();
  json_object_set_new(m, "destination", json_string(dest));
  json_object_set_new(m, "type", json_string(type));
  json_object_set_new(m, "source", json_string(src));
  json_t *o = json_array();
  _cleanup_free_ char *copy = xstrdup(opts);
  char *save = NULL;
  for (char *t = strtok_r(copy, ",", &save); t; t = strtok_r(NULL, ",", &save))
    json_array_append_new(o, json_string(t));
  json_object_set_new(m, "options", o);
  return m;
}

static json_t *caps(void)
{
  static const char *names[] = {"CAP_CHOWN", "CAP_DAC_OVERRIDE", "CAP_FSETID", "CAP_FOWNER",
                                "CAP_MKNOD", "CAP_NET_RAW", "CAP_SETGID", "CAP_SETUID",
                                "CAP_SETFCAP", "CAP_SETPCAP", "CAP_NET_BIND_SERVICE",
                                "CAP_SYS_CHROOT", "CAP_KILL", "CAP_AUDIT_WRITE"};
  json_t *a = json_array();
  for (size_t i = 0; i < ARRAY_SIZE(names); i++)
    json_array_append_new(a, json_string(names[i]));
  return a;
}

static json_t *strarr(const char *const *v)
{
  json_t *a = json_array();
  for (size_t i = 0; v[i]; i++)
    json_array_append_new(a, json_string(v[i]));
  return a;
}

int spec_build(struct runtime *rt, json_t *rec, json_t **out, struct ferry_err *err)
{
  const char *id = rec_id(rec);
  json_t *spec = json_object();
  json_object_set_new(spec, "ociVersion", json_string("1.0.2"));

  json_t *proc = json_object();
  json_object_set_new(proc, "terminal", json_boolean(rec_tty(rec)));
  json_t *user = json_object();
  uint32_t uid = 0, gid = 0;
  rec_ids(rec, &uid, &gid);
  json_object_set_new(user, "uid", json_integer(uid));
  json_object_set_new(user, "gid", json_integer(gid));
  json_object_set_new(proc, "user", user);
  json_object_set(proc, "args", rec_args(rec));
  json_object_set(proc, "env", rec_env(rec));
  json_object_set_new(proc, "cwd", json_string((rec_has_cwd(rec) ? rec_cwd(rec) : "/")));
  json_t *cp = json_object();
  json_object_set_new(cp, "bounding", caps());
  json_object_set_new(cp, "effective", caps());
  json_object_set_new(cp, "permitted", caps());
  json_object_set_new(proc, "capabilities", cp);
  /* Stay within the host's hard limits: raising one is refused here. */
  struct rlimit rl;
  json_t *rls = json_array();
  if (getrlimit(RLIMIT_NOFILE, &rl) == 0) {
    rlim_t hard = rl.rlim_max == RLIM_INFINITY || rl.rlim_max > 1048576 ? 1048576 : rl.rlim_max;
    rlim_t soft = hard < 1024 ? hard : 1024;
    json_t *l = json_object();
    json_object_set_new(l, "type", json_string("RLIMIT_NOFILE"));
    json_object_set_new(l, "hard", json_integer((json_int_t)hard));
    json_object_set_new(l, "soft", json_integer((json_int_t)soft));
    json_array_append_new(rls, l);
  }
  json_object_set_new(proc, "rlimits", rls);
  json_object_set_new(proc, "noNewPrivileges", json_true());
  json_object_set_new(spec, "process", proc);

  json_t *root = json_object();
  json_object_set_new(root, "path", json_string("rootfs"));
  json_object_set_new(root, "readonly", json_false());
  json_object_set_new(spec, "root", root);
  json_object_set_new(spec, "hostname", json_string((rec_has_name(rec) ? rec_name(rec) : id)));

  json_t *mounts = json_array();
  json_array_append_new(mounts, mount_new("/proc", "proc", "proc", "nosuid,noexec,nodev"));
  json_array_append_new(mounts, mount_new("/dev", "tmpfs", "tmpfs",
                                          "nosuid,strictatime,mode=755,size=65536k"));
  json_array_append_new(mounts, mount_new("/dev/pts", "devpts", "devpts",
                                          "nosuid,noexec,newinstance,ptmxmode=0666,mode=0620,gid=5"));
  json_array_append_new(mounts, mount_new("/dev/shm", "tmpfs", "shm",
                                          "nosuid,noexec,nodev,mode=1777,size=65536k"));
  json_array_append_new(mounts, mount_new("/dev/mqueue", "mqueue", "mqueue", "nosuid,noexec,nodev"));
  json_array_append_new(mounts, mount_new("/sys", "sysfs", "sysfs", "nosuid,noexec,nodev,ro"));
  json_array_append_new(mounts, mount_new("/sys/fs/cgroup", "cgroup", "cgroup",
                                          "nosuid,noexec,nodev,relatime,ro"));
  for (size_t i = 0; i < rec_n_volumes(rec); i++) {
    const char *name = rec_volume_name(rec, i);
    const char *dest = rec_volume_dest(rec, i);
    _cleanup_free_ char *src = volume_path(rt, name);
    _cleanup_free_ char *rel = xasprintf("%s/_data", name);
    int r = validate_name("volume", name, err);
    if (r == 0)
      r = volume_dest_check(dest, err);
    /* The bind mount's source must be the volume's own directory: resolved
     * inside the volume store, through no symbolic link. */
    int fd = r < 0 ? r : open_beneath(rt->vol_dir, rel, O_PATH | O_DIRECTORY, err);
    if (fd < 0) {
      json_decref(mounts);
      json_decref(spec);
      if (fd == -ENOENT)
        return FERRY_NOTFOUND(err, "volume \"%s\": no such volume", name);
      return ferry_err_wrap(err, "volume \"%s\"", name);
    }
    close(fd);
    json_array_append_new(mounts, mount_new(dest, "bind", src,
                                            rec_volume_readonly(rec, i) ? "rbind,ro" : "rbind,rw"));
  }
  for (size_t i = 0; i < rec_n_tmpfs(rec); i++) {
    const char *dest = rec_tmpfs_dest(rec, i);
    int r = volume_dest_check(dest, err);
    if (r < 0) {
      json_decref(mounts);
      json_decref(spec);
      return ferry_err_wrap(err, "tmpfs");
    }
    json_array_append_new(mounts, mount_new(dest, "tmpfs", "tmpfs", rec_tmpfs_options(rec, i)));
  }
  for (size_t i = 0; i < rec_n_binds(rec); i++) {
    /* a host path: it must still resolve to itself (a link put in its
     * place since would lead elsewhere) */
    const char *src = rec_bind_source(rec, i), *dest = rec_bind_dest(rec, i);
    _cleanup_free_ char *real = realpath(src, NULL);
    int r = volume_dest_check(dest, err);
    if (r == 0 && (!real || strcmp(real, src) != 0))
      r = FERRY_CONFLICT(err, "bind mount %s: %s", src,
                         real ? "it now leads elsewhere (a symbolic link)" : "no longer there");
    if (r < 0) {
      json_decref(mounts);
      json_decref(spec);
      return r;
    }
    json_array_append_new(mounts, mount_new(dest, "bind", src,
                                            rec_bind_readonly(rec, i) ? "rbind,ro" : "rbind,rw"));
  }
  json_object_set_new(spec, "mounts", mounts);

  json_t *linux_ = json_object();
  json_t *ns = json_array();
  static const char *nstypes[] = {"pid", "ipc", "uts", "mount"};
  for (size_t k = 0; k < ARRAY_SIZE(nstypes); k++) {
    json_t *n = json_object();
    json_object_set_new(n, "type", json_string(nstypes[k]));
    json_array_append_new(ns, n);
  }
  json_t *net = json_object();
  json_object_set_new(net, "type", json_string("network"));
  const char *netns = (rec_has_netns(rec) ? rec_netns(rec) : NULL);
  if (netns) {
    _cleanup_free_ char *p = xasprintf("/var/run/netns/%s", netns);
    json_object_set_new(net, "path", json_string(p));
  }
  json_array_append_new(ns, net);
  json_object_set_new(linux_, "namespaces", ns);
  _cleanup_free_ char *cg = xasprintf("%s/%s", rt->cgroup_parent, rec_instance(rec));
  json_object_set_new(linux_, "cgroupsPath", json_string(cg));
  json_t *res = json_object();
  json_t *devs = json_array();
  json_t *deny = json_object();
  json_object_set_new(deny, "allow", json_false());
  json_object_set_new(deny, "access", json_string("rwm"));
  json_array_append_new(devs, deny);
  json_object_set_new(res, "devices", devs);
  json_object_set_new(linux_, "resources", res);
  static const char *masked[] = {"/proc/acpi", "/proc/asound", "/proc/kcore", "/proc/keys",
                                 "/proc/latency_stats", "/proc/timer_list", "/proc/timer_stats",
                                 "/proc/sched_debug", "/sys/firmware", "/proc/scsi", NULL};
  static const char *ro[] = {"/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys",
                             "/proc/sysrq-trigger", NULL};
  json_object_set_new(linux_, "maskedPaths", strarr(masked));
  json_object_set_new(linux_, "readonlyPaths", strarr(ro));
  json_object_set_new(spec, "linux", linux_);
  /* runc gives CRIU this options file on checkpoint and restore. */
  _cleanup_free_ char *criu_conf = ctr_path(rt, id, CTR_CRIU_CONF);
  json_object_set_new(spec, "annotations", json_pack("{s:s}", "org.criu.config", criu_conf));
  *out = spec;
  return 0;
}
