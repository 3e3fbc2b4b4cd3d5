#pragma once

/* The phases of a move or a checkpoint, in their order, as its report and
 * the metrics name them (mig_phase_name: spelled only in phase.c).
 * Those up to PH_SERVE have a duration. */
enum mig_phase {
  PH_OFFER,
  PH_PRECOPY,
  PH_FREEZE,
  PH_DUMP,
  PH_TRANSFER,
  PH_RESTORE,
  PH_COMMIT,
  PH_SERVE, /* the source serves a lazy copy's memory after the commit */
  PH_DONE,
  PH_ABORTED,
};
const char *mig_phase_name(enum mig_phase ph);
