/* Fuzzes the archive extractor with whatever bytes (tar, gzip, zstd, ...):
 * nothing may be written outside the destination, crash or hang. Each
 * input is unpacked in every mode, and as CRIU's flat images, into a fresh
 * directory under a private temporary root, which is then checked and
 * removed. */
#include <limits.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "image/extract.h"
#include "util/fs.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static char root[PATH_MAX];

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
  if (!root[0]) {
    snprintf(root, sizeof root, "/tmp/ferry-fuzz-extract.XXXXXX");
    if (!mkdtemp(root))
      abort();
  }
  char in[PATH_MAX + 16], dest[PATH_MAX + 16], outside[PATH_MAX + 16];
  snprintf(in, sizeof in, "%s/in", root);
  snprintf(dest, sizeof dest, "%s/dest", root);
  snprintf(outside, sizeof outside, "%s/escaped", root);
  FILE *f = fopen(in, "w");
  if (!f || fwrite(data, 1, size, f) != size || fclose(f) != 0)
    abort();
  rm_rf(dest, NULL);
  if (mkdir_p(dest, 0755, NULL) < 0)
    abort();
  struct extract_limits lim = {.max_entry_size = 1u << 20, .max_total_size = 4u << 20,
                               .max_entries = 1000, .max_ratio = 200, .ratio_floor = 1u << 20};
  struct ferry_err err = {0};
  for (int mode = EXTRACT_LAYER; mode <= EXTRACT_UPPER; mode++) {
    extract_archive(in, dest, (enum extract_mode)mode, &lim, "fuzz", &err);
    /* nothing beside dest and the input may appear in the root */
    if (path_exists(outside))
      abort();
    rm_rf(dest, NULL);
    mkdir_p(dest, 0755, NULL);
  }
  /* and as CRIU's images (files only, one directory) */
  extract_flat(in, dest, &lim, "fuzz", &err);
  if (path_exists(outside))
    abort();
  rm_rf(dest, NULL);
  return 0;
}
