/* The verbosity of CRIU's dump and restore logs, for ferryd and for
 * ferry-criu (which links nothing of ferry's): 2 (errors and warnings,
 * what ferry quotes when CRIU fails), or $FERRY_CRIU_LOG_LEVEL (0-4) in
 * ferryd's environment. CRIU writes each line of its log with a system
 * call of its own, and at 4 (debug, ~1,700 lines for a small container's
 * restore) that cost ~10 ms of a small move's freeze here. */
#pragma once
#include <stdlib.h>

static inline int ckpt_criu_log_level(void)
{
  const char *v = getenv("FERRY_CRIU_LOG_LEVEL");
  return v && v[0] >= '0' && v[0] <= '4' && !v[1] ? v[0] - '0' : 2;
}
