#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ckpt/ckpt.h"
#include "criu-stats.pb-c.h"
#include "util/cleanup.h"
#include "util/fs.h"
#include "util/spawn.h"

/* CRIU image files start with one or two 32-bit magics, then a 32-bit length
 * and the protobuf message. */
#define CRIU_IMG_COMMON_MAGIC 0x54564319u
#define CRIU_IMG_SERVICE_MAGIC 0x55105940u

int criu_stats_read(const char *path, json_t **out, struct ferry_err *err)
{
  if (!path_exists(path))
    return -ENOENT;
  _cleanup_free_ char *buf = NULL;
  size_t len = 0;
  int r = read_file(path, 1u << 20, &buf, &len, err);
  if (r < 0)
    return r;
  size_t off = 0;
  uint32_t w;
  if (len < 12)
    return FERRY_INVALID(err, "%s: too short for a CRIU image", path);
  memcpy(&w, buf, 4);
  off = 4;
  if (w == CRIU_IMG_COMMON_MAGIC || w == CRIU_IMG_SERVICE_MAGIC)
    off = 8; /* second magic names the image type */
  uint32_t msglen;
  memcpy(&msglen, buf + off, 4);
  off += 4;
  if (msglen > len - off)
    return FERRY_INVALID(err, "%s: truncated CRIU image", path);
  FerryCriuStats *st = ferry_criu_stats__unpack(NULL, msglen, (const uint8_t *)buf + off);
  if (!st)
    return FERRY_INVALID(err, "%s: cannot decode CRIU statistics", path);
  json_t *j = json_object();
  if (st->dump) {
    FerryCriuDumpStats *d = st->dump;
    json_object_set_new(j, "freezing_time_us", json_integer(d->freezing_time));
    json_object_set_new(j, "frozen_time_us", json_integer(d->frozen_time));
    json_object_set_new(j, "memdump_time_us", json_integer(d->memdump_time));
    json_object_set_new(j, "memwrite_time_us", json_integer(d->memwrite_time));
    json_object_set_new(j, "pages_scanned", json_integer((json_int_t)d->pages_scanned));
    json_object_set_new(j, "pages_written", json_integer((json_int_t)d->pages_written));
  }
  if (st->restore) {
    FerryCriuRestoreStats *rs = st->restore;
    json_object_set_new(j, "forking_time_us", json_integer(rs->forking_time));
    json_object_set_new(j, "restore_time_us", json_integer(rs->restore_time));
    json_object_set_new(j, "pages_restored", json_integer((json_int_t)rs->pages_restored));
  }
  ferry_criu_stats__free_unpacked(st, NULL);
  *out = j;
  return 0;
}

char *criu_log_errors(const char *log_path, size_t max)
{
  _cleanup_free_ char *buf = NULL;
  if (read_file(log_path, 64u << 20, &buf, NULL, NULL) < 0)
    return xstrdup("");
  size_t cap = max + 1, len = 0;
  char *o = calloc(1, cap);
  if (!o)
    abort();
  for (char *line = strtok(buf, "\n"); line; line = strtok(NULL, "\n")) {
    if (!strstr(line, "Error") && !strstr(line, "error"))
      continue;
    if (strstr(line, "RLIMIT_NOFILE"))
      continue; /* harmless on these kernels, printed on every run */
    size_t n = strlen(line);
    if (len + n + 3 > max)
      break;
    if (len) {
      memcpy(o + len, "; ", 2);
      len += 2;
    }
    memcpy(o + len, line, n);
    len += n;
    o[len] = '\0';
  }
  return o;
}
