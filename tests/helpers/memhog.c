/* Holds N MiB of incompressible memory: a container whose dump takes a
 * while. With --keep-writing it goes on rewriting that memory with new random
 * bytes (1 MiB every 10 ms, in a ring), as a busy service dirties its pages;
 * without, it sleeps. Usage: memhog MIB [--keep-writing]. Static, so that it
 * runs in a busybox rootfs. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

int main(int argc, char **argv)
{
  size_t mib = argc > 1 ? strtoul(argv[1], NULL, 10) : 64;
  size_t n = mib << 17; /* 8-byte words */
  uint64_t *p = malloc(n * sizeof *p);
  if (!p)
    return 1;
  uint64_t x = 88172645463325252ull ^ (uint64_t)getpid();
  for (size_t i = 0; i < n; i++) {
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    p[i] = x;
  }
  if (argc > 2 && strcmp(argv[2], "--keep-writing") == 0) {
    const size_t chunk = 1u << 17; /* 1 MiB in words */
    for (size_t off = 0;; off = (off + chunk) % n) {
      size_t end = off + chunk < n ? off + chunk : n;
      for (size_t i = off; i < end; i++) {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        p[i] = x;
      }
      struct timespec ts = {0, 10 * 1000 * 1000};
      nanosleep(&ts, NULL);
    }
  }
  for (;;)
    pause();
}
