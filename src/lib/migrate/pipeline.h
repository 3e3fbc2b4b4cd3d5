/* One pipeline moves a container's state out of this agent: a live
 * migration to another agent and a checkpoint into a directory run the same
 * phases (docs/migration.md),
 *
 *   offer -> precopy -> freeze -> dump -> transfer -> restore -> commit
 *
 * over two sets of operations: the host (the container here: agent/ in
 * ferryd, a fake runtime in tests/unit/test-pipeline.c) and the destination
 * (a peer agent over HTTP, a checkpoint directory, a fake peer). The
 * protocol's decisions (protocol.h) are taken here, once, by the state codes
 * the destination reports, never by message text.
 *
 * The guarantee: until the destination has committed, the container stays
 * whole on the host (frozen and off the network at worst) and any failure
 * resumes it; after the commit was sent the host never resumes its copy
 * unless the destination says it has none. */
#pragma once
#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>
#include <time.h>

#include "agent/phase.h"
#include "migrate/protocol.h"
#include "util/err.h"

struct mig_pipe;

/* The container on this host, as the pipeline drives it. */
struct mig_host_ops {
  /* Claims the container for this run (409 while another operation owns
   * it, or when it does not run) and marks its record with the operation, so
   * that a restart resolves it; sets p->rec (and p->img when the
   * destination needs the image record). */
  int (*claim)(struct mig_pipe *p, struct ferry_err *err);
  /* Optional: whatever the freeze and the dump can make before the freeze
   * (the hold of its traffic, the dump's CRIU), the pages going to ps_fd
   * when >= 0. Called once the offer is taken (ps_fd -1) and again right
   * before the freeze: what was made first is kept if it still fits. A
   * failure only costs time: the freeze and the dump then make it. */
  void (*dump_prepare)(struct mig_pipe *p, int ps_fd);
  /* Off the network, then paused; *neigh: the ARP entries it knew. */
  int (*freeze)(struct mig_pipe *p, json_t **neigh, struct ferry_err *err);
  /* CRIU images into criu_dir, pages to page_server through ps_fd when
   * given; the processes stay, frozen. */
  int (*dump)(struct mig_pipe *p, const char *criu_dir, const char *page_server, int ps_fd,
              json_t **stats, struct ferry_err *err);
  /* Undoes the freeze. */
  void (*thaw)(struct mig_pipe *p);
  /* Writes into the record that the commit was sent (before it is). A
   * failure (a full disk) means no commit is sent: the move is abandoned
   * and the container resumes here, since a restart could not know that
   * the destination may run it. */
  int (*commit_sent)(struct mig_pipe *p, struct ferry_err *err);
  /* The destination has the container: the copy here ends (or runs on,
   * for a checkpoint that leaves it running), the claim ends. */
  void (*done)(struct mig_pipe *p);
  /* Ends the claim after a failure. resumed: the container runs here as
   * before (the operation leaves its record); otherwise it stays frozen and
   * marked, for a restart to ask the destination again. */
  void (*release)(struct mig_pipe *p, bool resumed);
  /* A fault point (util/fault.h) named "<p->fault_prefix>-<point>". Its
   * action "stop" (and a fake host) sets p->died: the agent stops there,
   * nothing is undone. */
  int (*fault)(struct mig_pipe *p, const char *point, struct ferry_err *err);
  /* The clock; NULL: the monotonic clock and usleep. */
  uint64_t (*now_ms)(struct mig_pipe *p);
  void (*sleep_ms)(struct mig_pipe *p, unsigned ms);
};

/* Where the container goes. */
struct mig_dest_ops {
  /* Offers the container (p->rec, p->img); nothing is copied yet. */
  int (*offer)(struct mig_pipe *p, struct ferry_err *err);
  /* While the container runs: what can be sent ahead (NULL: nothing). */
  int (*precopy)(struct mig_pipe *p, struct ferry_err *err);
  /* Just before the freeze: where CRIU's memory pages go. *page_server
   * ("HOST:PORT", malloc'd) and *ps_fd (CRIU's end of the connection), or
   * NULL and -1: into the CRIU directory with the other images. */
  int (*memory_prepare)(struct mig_pipe *p, char **page_server, int *ps_fd, struct ferry_err *err);
  /* After the dump (also after a failed one): the page connection ends. */
  int (*memory_finish)(struct mig_pipe *p, struct ferry_err *err);
  /* The directory CRIU writes its images into (malloc'd). */
  int (*criu_dir)(struct mig_pipe *p, char **dir, struct ferry_err *err);
  /* Frozen, before the dump (NULL: nothing): the container's files no
   * longer change, so their changes may start on their way while CRIU
   * dumps; transfer waits for them. Its failure shows in transfer. */
  void (*frozen)(struct mig_pipe *p);
  /* Optional, right before the freeze (the files of pre-copy there): the
   * destination prepares what it can of its restore. A failure only means
   * it does so later (or not at all). */
  void (*prepare)(struct mig_pipe *p);
  /* While frozen, after the dump: the CRIU images and the files changed
   * since p->precopy_since (what frozen did not send already). */
  int (*transfer)(struct mig_pipe *p, const char *criu_dir, struct ferry_err *err);
  /* The destination makes its copy, off the network. 0: restored. < 0
   * with err->klass FERRY_E_UNAVAILABLE: no answer (lost or late): the
   * pipeline then asks state() until the outcome is known. */
  int (*restore)(struct mig_pipe *p, json_t *neigh, struct ferry_err *err);
  /* What the destination says of this migration, within timeout_s. */
  enum target_state (*state)(struct mig_pipe *p, long timeout_s);
  /* Its copy is the container now. 0: the destination confirmed. */
  int (*commit)(struct mig_pipe *p, struct ferry_err *err);
  /* Withdraws: the destination removes what it has (best effort). */
  void (*abort)(struct mig_pipe *p);
  /* Scratch space of this run goes (NULL: none); always called last. */
  void (*cleanup)(struct mig_pipe *p);
};

enum mig_outcome {
  MIG_PENDING,
  MIG_DONE,     /* the destination has the container */
  MIG_RESUMED,  /* failed; the container runs on here as before */
  MIG_REFUSED,  /* failed before the container was claimed: nothing changed */
  MIG_IN_DOUBT, /* commit sent, destination unreachable: frozen here, marked */
  MIG_DIED,     /* (tests) the host stopped at a fault point */
};

struct mig_pipe {
  /* set by the caller */
  const char *id;
  const char *fault_prefix; /* "source", "checkpoint" */
  const struct mig_host_ops *host;
  const struct mig_dest_ops *dest;
  void *host_ctx, *dest_ctx;
  int timeout_s;
  /* called at each phase change, with the phase's name */
  void (*on_phase)(struct mig_pipe *p, enum mig_phase ph);

  /* filled as it runs */
  uint64_t t0;          /* start (the host's clock) */
  json_t *rec, *img;    /* the container's record and image record (the pipeline's) */
  time_t precopy_since; /* files changed after this go in the transfer */
  json_t *criu;         /* CRIU's dump figures, if any */
  uint64_t t_freeze;
  int64_t downtime_ms;  /* freeze to the destination's commit answer; -1 */
  bool died;            /* set by a fake host's fault point */

  /* the end */
  enum mig_outcome outcome;
  char failed_phase[24];
  struct ferry_err err;
  char phase[24];
};

/* Runs every phase; returns 0 when the destination has the container, < 0
 * otherwise (p->err, p->outcome say what happened and what runs where). */
int mig_pipe_run(struct mig_pipe *p);
/* Frees what the run kept (rec, img, criu). */
void mig_pipe_fini(struct mig_pipe *p);

/* A step of the host's own inside a phase ("serve": after the commit, a
 * post-copy dump serves the memory before the copy here ends). */
void mig_pipe_phase(struct mig_pipe *p, enum mig_phase ph);
/* Time left (seconds, at least 1) of the run's timeout. */
long mig_pipe_remaining_s(struct mig_pipe *p);
uint64_t mig_pipe_now(struct mig_pipe *p);

/* A host that restarted and found its container marked with this
 * migration (p->rec, commit_sent as recorded): asks the destination and
 * acts (host done, thaw + release, or nothing: stays frozen). */
enum recover_action mig_pipe_recover(struct mig_pipe *p, bool commit_sent);

/* How long the source keeps asking after it sent the commit. */
#define MIG_COMMIT_PATIENCE_S 60
/* A target that cannot be asked for this long while it restores is given
 * up: its copy never joins the network without the commit. */
#define MIG_UNREACHABLE_PATIENCE_MS 5000
