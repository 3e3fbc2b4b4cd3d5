/* The phases' names (phase.h): spelled here only. */
#include "agent/phase.h"

#include <stddef.h>

static const char *const phase_names[] = {
    [PH_OFFER] = "offer",       [PH_PRECOPY] = "precopy", [PH_FREEZE] = "freeze",
    [PH_DUMP] = "dump",         [PH_TRANSFER] = "transfer", [PH_RESTORE] = "restore",
    [PH_COMMIT] = "commit",     [PH_SERVE] = "serve",     [PH_DONE] = "done",
    [PH_ABORTED] = "aborted"};

const char *mig_phase_name(enum mig_phase ph)
{
  return (size_t)ph < sizeof phase_names / sizeof phase_names[0] ? phase_names[ph] : "unknown";
}
