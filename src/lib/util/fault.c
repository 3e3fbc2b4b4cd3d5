#include "util/fault.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "util/log.h"

int ferry_fault(const char *point, struct ferry_err *err)
{
  const char *spec = getenv("FERRY_FAULT");
  if (!spec || !*spec)
    return 0;
  size_t pl = strlen(point);
  for (const char *p = spec; p && *p; p = strchr(p, ',') ? strchr(p, ',') + 1 : NULL) {
    if (strncmp(p, point, pl) != 0 || p[pl] != ':')
      continue;
    const char *act = p + pl + 1;
    log_warn("fault", "injecting %.*s at %s", (int)strcspn(act, ","), act, point);
    if (strncmp(act, "exit", 4) == 0)
      _exit(137);
    if (strncmp(act, "stop", 4) == 0)
      return ferry_err_set(err, -ECANCELED, FERRY_E_INTERNAL, "the agent stops at %s (injected)",
                           point);
    if (strncmp(act, "fail", 4) == 0)
      return FERRY_INTERNAL(err, "injected fault at %s", point);
    if (strncmp(act, "enospc", 6) == 0)
      return ferry_err_set(err, -ENOSPC, FERRY_E_INTERNAL, "%s: No space left on device (injected)",
                           point);
    if (strncmp(act, "hang", 4) == 0) {
      sleep(3600);
      return 0;
    }
    if (strncmp(act, "delay=", 6) == 0) {
      usleep((useconds_t)atoi(act + 6) * 1000);
      return 0;
    }
  }
  return 0;
}
