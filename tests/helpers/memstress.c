/* memstress: keeps writing memory in a pattern that can be checked page by
 * page, so that a move that restores any page stale (or not at all) is
 * caught. Each page holds words derived from its index and its version; a
 * table (in other pages) says which version each page must have, 0 meaning
 * "zero" (after MADV_DONTNEED, a fresh mapping). On SIGUSR1 each process
 * checks every page and prints one line "CHECK PID OK ..." or
 * "CHECK PID BAD <where>", and passes the signal to its child.
 *
 *   --mib N      private anonymous memory (default 64)
 *   --rate P     pages written per second (default 20000; 0: as fast as it can)
 *   --thp        ask for transparent huge pages (madvise)
 *   --dontneed   every 500 writes: MADV_DONTNEED on 16 pages, one written again
 *   --remap      a 64-page mapping moved with mremap every 1000 writes, and
 *                replaced by a fresh one (munmap + mmap) every 3000
 *   --fork       a child (a copy of the memory that goes on writing its own
 *                way) replaced every 3000 writes
 *   --shared     256 pages of shared anonymous memory written too
 *   --uffd       holds a userfaultfd of its own
 *   --churn      one more process that starts short-lived children as fast
 *                as it can (each exits at once or is killed; SIGCHLD ignored,
 *                so the kernel reaps them): processes end while a dump runs
 *   --all        all of the above but --uffd
 * Static, so that it runs in a busybox rootfs. */
#include <fcntl.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#define PG 4096UL
#define WORDS (PG / 8)

struct region {
  const char *name;
  uint8_t *mem;
  uint64_t *ver; /* version of each page: 0 = must read as zero */
  size_t pages;
  int shared; /* others write it too: a page may be half rewritten when read */
};

static volatile sig_atomic_t want_check;
static uint64_t rng = 88172645463325252ULL;

static uint64_t xr(void)
{
  rng ^= rng << 13;
  rng ^= rng >> 7;
  rng ^= rng << 17;
  return rng;
}

static uint64_t word(size_t idx, uint64_t v, size_t k)
{
  uint64_t x = (idx + 1) * 0x9E3779B97F4A7C15ULL ^ (v * 0xC2B2AE3D27D4EB4FULL) ^
               (k * 0x165667B19E3779F9ULL);
  return x ^ (x >> 31);
}

static void put(struct region *r, size_t i, uint64_t v)
{
  uint64_t *p = (uint64_t *)(r->mem + i * PG);
  for (size_t k = 0; k < WORDS; k++)
    p[k] = word(i, v, k);
  r->ver[i] = v;
}

/* 0 when page i of r holds its version's words, else -1 with why filled. */
static int page_ok(const struct region *r, size_t i, char *why, size_t whylen)
{
  const volatile uint64_t *p = (const volatile uint64_t *)(r->mem + i * PG);
  uint64_t v = ((const volatile uint64_t *)r->ver)[i];
  for (size_t k = 0; k < WORDS; k++) {
    uint64_t want = v ? word(i, v, k) : 0;
    uint64_t got = p[k];
    if (got != want) {
      snprintf(why, whylen, "%s page %zu (version %llu): word %zu is %llx, not %llx", r->name, i,
               (unsigned long long)v, k, (unsigned long long)got, (unsigned long long)want);
      return -1;
    }
  }
  return 0;
}

/* Pages checked, or -1 with why filled. A shared page that another
 * process may be rewriting (its words first, then its version) is read
 * again, up to 50 times 1 ms apart: a stale page stays wrong. */
static long check(const struct region *r, char *why, size_t whylen)
{
  for (size_t i = 0; i < r->pages; i++) {
    int tries = r->shared ? 50 : 1;
    while (page_ok(r, i, why, whylen) < 0) {
      if (--tries == 0)
        return -1;
      struct timespec d = {0, 1000000};
      nanosleep(&d, NULL);
    }
  }
  return (long)r->pages;
}

static void on_usr1(int s)
{
  (void)s;
  want_check = 1;
}

static void *map(size_t len, int shared)
{
  void *m = mmap(NULL, len, PROT_READ | PROT_WRITE, (shared ? MAP_SHARED : MAP_PRIVATE) | MAP_ANONYMOUS,
                 -1, 0);
  if (m == MAP_FAILED) {
    perror("memstress: mmap");
    exit(2);
  }
  return m;
}

static void region_init(struct region *r, const char *name, size_t pages, int shared, int thp)
{
  r->name = name;
  r->pages = pages;
  r->shared = shared;
  r->mem = map(pages * PG, shared);
  if (thp)
    madvise(r->mem, pages * PG, MADV_HUGEPAGE);
  r->ver = map(pages * sizeof(uint64_t), shared);
  for (size_t i = 0; i < pages; i++)
    put(r, i, 1);
}

int main(int argc, char **argv)
{
  size_t mib = 64;
  int thp = 0, dontneed = 0, forks = 0, remap = 0, shared = 0, uffd = 0, churn = 0;
  long rate = 20000;
  for (int i = 1; i < argc; i++) {
    if (!strcmp(argv[i], "--mib") && i + 1 < argc)
      mib = strtoul(argv[++i], NULL, 10);
    else if (!strcmp(argv[i], "--rate") && i + 1 < argc)
      rate = strtol(argv[++i], NULL, 10);
    else if (!strcmp(argv[i], "--thp"))
      thp = 1;
    else if (!strcmp(argv[i], "--dontneed"))
      dontneed = 1;
    else if (!strcmp(argv[i], "--fork"))
      forks = 1;
    else if (!strcmp(argv[i], "--remap"))
      remap = 1;
    else if (!strcmp(argv[i], "--shared"))
      shared = 1;
    else if (!strcmp(argv[i], "--uffd"))
      uffd = 1;
    else if (!strcmp(argv[i], "--churn"))
      churn = 1;
    else if (!strcmp(argv[i], "--all"))
      thp = dontneed = forks = remap = shared = 1;
    else {
      fprintf(stderr, "usage: memstress [--mib N] [--rate PAGES_PER_S] [--thp] [--dontneed] "
                      "[--remap] [--fork] [--shared] [--uffd] [--churn] [--all]\n");
      return 2;
    }
  }
  if (mib < 1 || mib > 65536) {
    fprintf(stderr, "memstress: --mib 1..65536\n");
    return 2;
  }
  setvbuf(stdout, NULL, _IOLBF, 0);
  signal(SIGUSR1, on_usr1);
  signal(SIGCHLD, SIG_IGN);
  if (churn && fork() == 0) {
    signal(SIGUSR1, SIG_IGN);
    for (uint64_t k = 0;; k++) {
      pid_t c = fork();
      if (c == 0) {
        if (k % 2)
          pause();
        _exit(0);
      }
      if (c > 0 && k % 2)
        kill(c, SIGKILL);
      struct timespec d = {0, 200000};
      nanosleep(&d, NULL);
    }
  }
  struct region priv, rem = {0}, sh = {0};
  region_init(&priv, "private", mib * 256, 0, thp);
  const size_t nrem = 64;
  if (remap)
    region_init(&rem, "remapped", nrem, 0, 0);
  if (shared)
    region_init(&sh, "shared", 256, 1, 0);
  if (uffd && syscall(SYS_userfaultfd, O_CLOEXEC | 1 /* UFFD_USER_MODE_ONLY */) < 0) {
    perror("memstress: userfaultfd");
    return 2;
  }
  pid_t child = 0, leader = getpid();
  uint64_t version = 1, n = 0;
  printf("memstress: ready, pid %d, %zu MiB\n", (int)leader, mib);
  for (;;) {
    if (want_check) {
      want_check = 0;
      char why[256] = "";
      long a = check(&priv, why, sizeof why), b = 0, c = 0;
      if (a >= 0 && remap)
        b = check(&rem, why, sizeof why);
      if (a >= 0 && b >= 0 && shared)
        c = check(&sh, why, sizeof why);
      if (a < 0 || b < 0 || c < 0)
        printf("CHECK %d BAD %s\n", (int)getpid(), why);
      else
        printf("CHECK %d OK %ld pages, version %llu%s\n", (int)getpid(), a + b + c,
               (unsigned long long)version, getpid() == leader ? "" : " (child)");
      if (child > 0)
        kill(child, SIGUSR1);
    }
    version++;
    put(&priv, xr() % priv.pages, version);
    n++;
    if (shared && getpid() == leader && n % 7 == 0)
      put(&sh, xr() % sh.pages, version);
    if (dontneed && n % 500 == 0) {
      size_t at = xr() % (priv.pages - 16);
      madvise(priv.mem + at * PG, 16 * PG, MADV_DONTNEED);
      for (size_t i = at; i < at + 16; i++)
        priv.ver[i] = 0;
      put(&priv, at + 3, version);
    }
    if (remap && n % 1000 == 0) {
      if (n % 3000 == 0) { /* a fresh mapping in its place */
        munmap(rem.mem, nrem * PG);
        rem.mem = map(nrem * PG, 0);
        for (size_t i = 0; i < nrem; i++)
          rem.ver[i] = 0;
      } else { /* moved, contents kept */
        void *to = mremap(rem.mem, nrem * PG, nrem * PG * 2, MREMAP_MAYMOVE);
        if (to == MAP_FAILED || (to = mremap(to, nrem * PG * 2, nrem * PG, 0)) == MAP_FAILED) {
          perror("memstress: mremap");
          return 2;
        }
        rem.mem = to;
      }
      put(&rem, xr() % nrem, version);
    }
    if (forks && getpid() == leader && n % 3000 == 0) {
      if (child > 0)
        kill(child, SIGKILL);
      child = fork();
      if (child == 0) {
        child = -1;
        rng ^= (uint64_t)getpid() << 20;
      }
    }
    if (rate > 0 && n % 100 == 0) {
      struct timespec d = {0, (long)(100 * 1000000000LL / rate)};
      nanosleep(&d, NULL);
    }
  }
}
