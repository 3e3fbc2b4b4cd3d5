/* The migration protocol's decisions, as pure functions of the states the
 * two sides report (docs/migration.md, "exactly one copy"). source.c and
 * target.c act on them; tests/unit/test-protocol.c checks every case.
 *
 * The invariant: the source never resumes its copy while the target may run
 * one on the network, and the target never puts a copy on the network
 * without the source's commit. */
#pragma once
#include <stdbool.h>

/* What the target says of a migration (GET /v1/migrations/incoming/ID). */
enum target_state {
  T_UNKNOWN,   /* it could not be asked */
  T_OFFERED,   /* accepted; parts arrive */
  T_RESTORING, /* the restore step runs */
  T_RESTORED,  /* a copy runs there off the network, waiting for the commit */
  T_RUNNING,   /* committed: the target's copy is the container */
  T_FAILED,    /* nothing of it runs there */
  T_GONE,      /* 404: aborted, expired or never offered */
};

enum target_state target_state_parse(const char *s);
const char *target_state_name(enum target_state st);

/* The source, after its restore request got no answer, asked the target. */
enum restore_verdict {
  RV_WAIT,   /* ask again later */
  RV_COMMIT, /* the copy is restored there: go on to commit */
  RV_ABORT,  /* there is no copy and will be none: abort and resume here */
};
/* unreachable_long: the target could not be asked for the patience time;
 * out_of_time: the migration's timeout (and its grace) passed. */
enum restore_verdict restore_verdict(enum target_state st, bool unreachable_long, bool out_of_time);

/* The source sent the commit and asks how it went. */
enum commit_verdict {
  CV_DONE,   /* the target runs it: remove the copy here */
  CV_RETRY,  /* the commit did not arrive: send it again */
  CV_RESUME, /* the target has no copy: resume here */
  CV_WAIT,   /* the target cannot be asked: keep the copy frozen */
};
enum commit_verdict commit_verdict(enum target_state st);

/* A source agent that restarts finds a container marked with a migration. */
enum recover_action {
  RA_REMOVE_HERE,  /* the target runs it */
  RA_COMMIT_AGAIN, /* restored there, commit sent before the restart: commit */
  RA_RESUME_HERE,  /* the target has no copy that could ever run */
  RA_STAY_FROZEN,  /* the commit was sent and the target cannot be asked */
};
enum recover_action source_recover_action(enum target_state st, bool commit_sent);

/* The target, on restart or when the fence time passed: may it remove its
 * copy? Only while the source has no commit answer from it. */
bool target_may_remove_copy(enum target_state st);

/* The target's state machine: every change of an incoming migration's
 * state is one of these steps (target.c runs them; test-protocol checks the
 * table's promises). A step begins in one of its "from" states, may record
 * a state before it acts ("during", written durably first), and ends in
 * "ok" or "fail" or where it began. T_GONE stands for "no such migration"
 * (before the offer, after its removal). */
enum target_step {
  TS_OFFER,       /* the source offers the container */
  TS_PART,        /* a layer, volume, rootfs change or CRIU's images arrive */
  TS_PAGE_SERVER, /* a page server is started for a pre-dump round or the dump */
  TS_PREPARE,     /* the restore is prepared ahead, held until the images are in */
  TS_RESTORE,     /* the copy is restored, off the network */
  TS_COMMIT,      /* the source's commit: the copy joins the network */
  TS_ABORT,       /* the source withdraws */
  TS_EXPIRE,      /* the source went quiet (or a failed one was kept long enough) */
  TS_FENCE,       /* a restored copy was not committed in time: killed */
  TS_PRUNE,       /* committed long ago: only its tombstone stays */
  TS_RESTART,     /* the agent restarted with the migration under way */
  TS_N
};
#define TS_BIT(st) (1u << (st))
struct target_rule {
  const char *name;
  unsigned from;               /* TS_BIT()s of the states it may begin in */
  enum target_state during;    /* T_UNKNOWN: none */
  enum target_state ok, fail;  /* where it may end (besides where it began) */
};
const struct target_rule *target_rule(enum target_step s);
/* Whether step s may begin in state st. */
bool target_step_may(enum target_step s, enum target_state st);
/* Whether step s, begun in from, may end in to. */
bool target_step_ends_ok(enum target_step s, enum target_state from, enum target_state to);

/* The parts a migration uploads to its target, one per request:
 * PUT /v1/migrations/incoming/ID/SEGMENT[/NAME]. Spelled only in
 * protocol.c. */
enum wire_part {
  WP_NONE = -1,
  WP_LAYER,        /* "layers/DIGEST": an image layer the target lacks */
  WP_VOLUME,       /* "volumes/NAME": a volume, whole */
  WP_VOLUME_DELTA, /* "volume-delta/NAME": what changed in it since */
  WP_ROOTFS,       /* "rootfs": the rootfs changes, whole */
  WP_ROOTFS_DELTA, /* "rootfs-delta": what changed in them since */
  WP_CRIU,         /* "criu": CRIU's images */
};
/* The URL segment ("layers"), and the part a segment names (WP_NONE). */
const char *wire_part_segment(enum wire_part p);
enum wire_part wire_part_parse(const char *segment);
/* Whether the part's URL names one (a layer's digest, a volume's name). */
bool wire_part_named(enum wire_part p);
/* What an error calls it ("layer", "volume delta"). */
const char *wire_part_noun(enum wire_part p);
