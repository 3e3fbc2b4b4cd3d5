/* CRIU's kernel-feature cache. Every CRIU run starts by probing the kernel
 * (pagemap, uffd, netns link ids, vdso, ...: ~15 ms per run, ~30 ms of a
 * dump and again of a restore, both inside the freeze) unless it finds the
 * result of an earlier probe in /run/criu.kdat. CRIU writes that file
 * itself, but only onto a tmpfs (so that a reboot drops it); on a machine
 * whose /run is not a tmpfs it probes on every run. There ferryd primes the
 * cache at start: `criu check` in a private mount namespace whose /run is a
 * tmpfs, the file it wrote copied into the real /run. A cache older than the
 * current boot, or than the CRIU binary (another build takes the cache of
 * the one before for stale and deletes it), is made again. */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "ckpt/ckpt.h"
#include "util/fs.h"
#include "util/log.h"
#include "util/spawn.h"

#ifndef TMPFS_MAGIC
#define TMPFS_MAGIC 0x01021994
#endif

#define KDAT_DIR "/run"
#define KDAT_NAME "criu.kdat"

static long long boot_time_s(void)
{
  FILE *f = fopen("/proc/stat", "re");
  if (!f)
    return -1;
  char line[256];
  long long bt = -1;
  while (fgets(line, sizeof line, f))
    if (sscanf(line, "btime %lld", &bt) == 1)
      break;
  fclose(f);
  return bt;
}

/* The child: private mount namespace, tmpfs on /run, `criu check`, copy out.
 * Only system calls from here on (the parent may have threads). */
static int prime_child(const char *criu)
{
  if (unshare(CLONE_NEWNS) < 0 || mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL) < 0)
    return 1;
  int real = open(KDAT_DIR, O_PATH | O_DIRECTORY | O_CLOEXEC);
  if (real < 0 || mount("ferry-kdat", KDAT_DIR, "tmpfs", MS_NOSUID | MS_NODEV | MS_NOEXEC,
                        "mode=0755,size=1m") < 0)
    return 1;
  pid_t p = fork();
  if (p < 0)
    return 1;
  if (p == 0) {
    int nul = open("/dev/null", O_RDWR);
    if (nul >= 0) {
      dup2(nul, 0);
      dup2(nul, 1);
      dup2(nul, 2);
    }
    execlp(criu, criu, "check", (char *)NULL);
    _exit(127);
  }
  int st;
  while (waitpid(p, &st, 0) < 0)
    if (errno != EINTR)
      return 1;
  /* `criu check` may report a missing feature and still have probed. */
  int in = open(KDAT_DIR "/" KDAT_NAME, O_RDONLY | O_CLOEXEC);
  if (in < 0)
    return 2;
  static char buf[1 << 16];
  ssize_t n = read(in, buf, sizeof buf);
  if (n <= 0 || n == (ssize_t)sizeof buf)
    return 2;
  char tmp[64];
  snprintf(tmp, sizeof tmp, ".%s.ferry-%d", KDAT_NAME, (int)getpid());
  int out = openat(real, tmp, O_CREAT | O_EXCL | O_WRONLY | O_CLOEXEC, 0600);
  if (out < 0)
    return 3;
  if (write(out, buf, (size_t)n) != n || fsync(out) < 0 || close(out) < 0 ||
      renameat(real, tmp, real, KDAT_NAME) < 0) {
    unlinkat(real, tmp, 0);
    return 3;
  }
  return 0;
}

/* The modification time of the CRIU binary criu (a name looked up on PATH,
 * links followed), or -1. */
static long long binary_mtime(const char *criu)
{
  struct stat st;
  if (strchr(criu, '/'))
    return stat(criu, &st) == 0 ? (long long)st.st_mtime : -1;
  const char *path = getenv("PATH");
  if (!path)
    path = FERRY_DEFAULT_PATH;
  while (*path) {
    size_t n = strcspn(path, ":");
    char full[4096];
    if (n > 0 && (size_t)snprintf(full, sizeof full, "%.*s/%s", (int)n, path, criu) < sizeof full &&
        stat(full, &st) == 0 && S_ISREG(st.st_mode) && access(full, X_OK) == 0)
      return (long long)st.st_mtime;
    path += n + (path[n] == ':');
  }
  return -1;
}

static pthread_mutex_t prime_lock = PTHREAD_MUTEX_INITIALIZER;

static int prime_locked(const char *criu, struct ferry_err *err);

int ckpt_kdat_prime(const char *criu, struct ferry_err *err)
{
  pthread_mutex_lock(&prime_lock);
  int r = prime_locked(criu, err);
  pthread_mutex_unlock(&prime_lock);
  return r;
}

static int prime_locked(const char *criu, struct ferry_err *err)
{
  struct statfs sf;
  if (statfs(KDAT_DIR, &sf) < 0)
    return ferry_err_sys(err, -errno, "CRIU's cache: %s", KDAT_DIR);
  if (sf.f_type == TMPFS_MAGIC)
    return 0; /* CRIU keeps its cache there itself */
  struct stat st;
  long long bt = boot_time_s();
  if (stat(KDAT_DIR "/" KDAT_NAME, &st) == 0 && bt > 0 && (long long)st.st_mtime >= bt &&
      (long long)st.st_mtime >= binary_mtime(criu ? criu : "criu"))
    return 0; /* made since this boot, by this CRIU */
  uint64_t t0 = now_mono_ms();
  pid_t p = fork();
  if (p < 0)
    return ferry_err_sys(err, -errno, "CRIU's cache: fork");
  if (p == 0)
    _exit(prime_child(criu ? criu : "criu"));
  int status = 0;
  uint64_t deadline = t0 + 60000;
  for (;;) {
    pid_t w = waitpid(p, &status, WNOHANG);
    if (w == p)
      break;
    if (w < 0 && errno != EINTR)
      return ferry_err_sys(err, -errno, "CRIU's cache: wait");
    if (now_mono_ms() > deadline) {
      kill(p, SIGKILL);
      waitpid(p, &status, 0);
      return ferry_err_set(err, -ETIMEDOUT, FERRY_E_INTERNAL,
                           "CRIU's cache: `criu check` did not finish in 60 s");
    }
    struct timespec ts = {0, 20 * 1000 * 1000};
    nanosleep(&ts, NULL);
  }
  if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
    static const char *why[] = {"", "no private mount namespace with a tmpfs /run",
                                "`criu check` wrote no cache", "cannot write " KDAT_DIR};
    int c = WIFEXITED(status) ? WEXITSTATUS(status) : 0;
    return ferry_err_set(err, -EIO, FERRY_E_INTERNAL, "CRIU's cache: %s",
                         c >= 1 && c <= 3 ? why[c] : "the helper died");
  }
  log_info("ckpt", "CRIU's kernel-feature cache written to %s/%s in %" PRIu64 " ms (%s is not a "
           "tmpfs, where CRIU would keep it itself; without it every CRIU run probes the kernel)",
           KDAT_DIR, KDAT_NAME, now_mono_ms() - t0, KDAT_DIR);
  return 0;
}
