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

#define B TS_BIT
static const struct target_rule rules[TS_N] = {
    [TS_OFFER] = {"offer", B(T_GONE), T_UNKNOWN, T_OFFERED, T_GONE},
    [TS_PART] = {"part", B(T_OFFERED), T_UNKNOWN, T_OFFERED, T_FAILED},
    [TS_PAGE_SERVER] = {"page server", B(T_OFFERED), T_UNKNOWN, T_OFFERED, T_OFFERED},
    [TS_PREPARE] = {"prepare", B(T_OFFERED), T_UNKNOWN, T_OFFERED, T_FAILED},
    [TS_RESTORE] = {"restore", B(T_OFFERED), T_RESTORING, T_RESTORED, T_FAILED},
    /* the decision is written before the copy is brought up */
    [TS_COMMIT] = {"commit", B(T_RESTORED), T_RUNNING, T_RUNNING, T_RUNNING},
    /* never a committed one: its copy is the container */
    [TS_ABORT] = {"abort", B(T_OFFERED) | B(T_RESTORING) | B(T_RESTORED) | B(T_FAILED), T_UNKNOWN,
                  T_GONE, T_GONE},
    [TS_EXPIRE] = {"expiry", B(T_OFFERED) | B(T_FAILED), T_UNKNOWN, T_GONE, T_GONE},
    [TS_FENCE] = {"fence", B(T_RESTORED), T_FAILED, T_GONE, T_FAILED},
    [TS_PRUNE] = {"prune", B(T_RUNNING), T_UNKNOWN, T_GONE, T_RUNNING},
    /* a committed one stays (and is brought up); anything else fails and goes */
    [TS_RESTART] = {"restart", B(T_UNKNOWN) | B(T_OFFERED) | B(T_RESTORING) | B(T_RESTORED) | B(T_RUNNING) |
                                   B(T_FAILED),
                    T_UNKNOWN, T_RUNNING, T_FAILED},
};
#undef B

const struct target_rule *target_rule(enum target_step s)
{
  return s >= 0 && s < TS_N ? &rules[s] : NULL;
}

bool target_step_may(enum target_step s, enum target_state st)
{
  const struct target_rule *r = target_rule(s);
  return r && st >= T_UNKNOWN && st <= T_GONE && (r->from & TS_BIT(st));
}

bool target_step_ends_ok(enum target_step s, enum target_state from, enum target_state to)
{
  const struct target_rule *r = target_rule(s);
  if (!r || !target_step_may(s, from))
    return false;
  /* running: only a commit makes it, only a prune ends it */
  if (to == T_RUNNING && from != T_RUNNING && s != TS_COMMIT)
    return false;
  if (from == T_RUNNING && to != T_RUNNING && s != TS_PRUNE)
    return false;
  if (to == r->ok || to == r->fail)
    return true;
  /* a step that wrote its state first never goes back to where it began */
  if (r->during != T_UNKNOWN)
    return to == r->during;
  return to == from;
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
