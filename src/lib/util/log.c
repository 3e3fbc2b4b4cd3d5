#include "util/log.h"

#include <stdarg.h>
#include <stdio.h>
#include <time.h>

static enum ferry_log_level min_level = FERRY_LOG_INFO;

void ferry_log_set_level(enum ferry_log_level lvl) { min_level = lvl; }

void ferry_log(enum ferry_log_level lvl, const char *module, const char *fmt, ...)
{
  static const char *names[] = {"debug", "info", "warn", "error"};
  if (lvl < min_level)
    return;
  char msg[2048];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(msg, sizeof msg, fmt, ap);
  va_end(ap);
  struct timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  struct tm tm;
  gmtime_r(&ts.tv_sec, &tm);
  fprintf(stderr, "%04d-%02d-%02dT%02d:%02d:%02d.%03ldZ %s %s: %s\n", tm.tm_year + 1900,
          tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, ts.tv_nsec / 1000000,
          names[lvl], module, msg);
}
