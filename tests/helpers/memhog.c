/* Holds N MiB of incompressible memory and sleeps: a container whose dump
 * takes a while. Usage: memhog MIB. Static, so that it runs in a busybox
 * rootfs. */
#include <stdint.h>
#include <stdlib.h>
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
  for (;;)
    pause();
}
