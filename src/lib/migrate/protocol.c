#include "migrate/protocol.h"

#include <string.h>

static const char *const names[] = {
    [T_UNKNOWN] = "unknown", [T_OFFERED] = "offered", [T_RESTORING] = "restoring",
    [T_RESTORED] = "restored", [T_RUNNING] = "running", [T_FAILED] = "failed", [T_GONE] = "gone",
};

enum target_state target_state_parse(const char *s)
{
  for (int i = T_OFFERED; i <= T_FAILED; i++)
    if (s && strcmp(s, names[i]) == 0)
      return (enum target_state)i;
  return T_UNKNOWN;
}

const char *target_state_name(enum target_state st)
{
  return st >= T_UNKNOWN && st <= T_GONE ? names[st] : "unknown";
}

enum restore_verdict restore_verdict(enum target_state st, bool unreachable_long, bool out_of_time)
{
  switch (st) {
  case T_RESTORED:
  case T_RUNNING:
    return RV_COMMIT;
  case T_FAILED:
  case T_GONE:
  case T_OFFERED: /* the restore request never arrived */
    return RV_ABORT;
  case T_RESTORING:
    return out_of_time ? RV_ABORT : RV_WAIT;
  case T_UNKNOWN:
  default:
    /* safe to give up: a copy there never joins the network uncommitted */
    return unreachable_long || out_of_time ? RV_ABORT : RV_WAIT;
  }
}

enum commit_verdict commit_verdict(enum target_state st)
{
  switch (st) {
  case T_RUNNING:
    return CV_DONE;
  case T_RESTORED:
    return CV_RETRY;
  case T_FAILED:
  case T_GONE:
  case T_OFFERED:
  case T_RESTORING:
    return CV_RESUME;
  case T_UNKNOWN:
  default:
    return CV_WAIT;
  }
}

enum recover_action source_recover_action(enum target_state st, bool commit_sent)
{
  if (st == T_RUNNING)
    return RA_REMOVE_HERE;
  if (st == T_RESTORED && commit_sent)
    return RA_COMMIT_AGAIN;
  if (st == T_UNKNOWN && commit_sent)
    return RA_STAY_FROZEN;
  return RA_RESUME_HERE;
}

bool target_may_remove_copy(enum target_state st)
{
  return st != T_RUNNING;
}

static const struct {
  const char *segment, *noun;
  bool named;
} wire_parts[] = {
    [WP_LAYER] = {"layers", "layer", true},
    [WP_VOLUME] = {"volumes", "volume", true},
    [WP_VOLUME_DELTA] = {"volume-delta", "volume delta", true},
    [WP_ROOTFS] = {"rootfs", "rootfs", false},
    [WP_ROOTFS_DELTA] = {"rootfs-delta", "rootfs delta", false},
    [WP_CRIU] = {"criu", "CRIU images", false},
};
#define N_WIRE_PARTS (sizeof wire_parts / sizeof wire_parts[0])

const char *wire_part_segment(enum wire_part p)
{
  return p >= 0 && (size_t)p < N_WIRE_PARTS ? wire_parts[p].segment : "";
}

enum wire_part wire_part_parse(const char *segment)
{
  for (size_t i = 0; segment && i < N_WIRE_PARTS; i++)
    if (strcmp(wire_parts[i].segment, segment) == 0)
      return (enum wire_part)i;
  return WP_NONE;
}

bool wire_part_named(enum wire_part p)
{
  return p >= 0 && (size_t)p < N_WIRE_PARTS && wire_parts[p].named;
}

const char *wire_part_noun(enum wire_part p)
{
  return p >= 0 && (size_t)p < N_WIRE_PARTS ? wire_parts[p].noun : "part";
}
