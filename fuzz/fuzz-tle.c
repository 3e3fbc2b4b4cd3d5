/* Fuzzes the TLE parser and SGP4 start-up: three lines from the input (split
 * at newlines), with and without checksums; a TLE that parses is propagated
 * a little. Nothing may crash or hang. */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "orbit/sgp4.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
  char *buf = malloc(size + 1);
  if (!buf)
    abort();
  memcpy(buf, data, size);
  buf[size] = '\0';
  char *lines[3] = {"", "", ""};
  char *p = buf;
  for (int i = 0; i < 3 && p; i++) {
    lines[i] = p;
    char *nl = strchr(p, '\n');
    if (nl)
      *nl = '\0';
    p = nl ? nl + 1 : NULL;
  }
  for (int cs = 0; cs < 2; cs++) {
    struct tle t;
    struct ferry_err err = {0};
    if (tle_parse(lines[0], lines[1], lines[2], cs, &t, &err) == 0) {
      struct sgp4 s;
      if (sgp4_init(&s, &t, &err) == 0) {
        double r[3], v[3];
        for (double m = 0; m <= 1440; m += 360)
          sgp4_propagate(&s, m, r, v);
      }
    }
  }
  free(buf);
  return 0;
}
