/* Internal to migrate/: this agent's container as a pipeline's host. A
 * migration and a checkpoint differ only in the operation written into the
 * record and in what happens to the container after the commit. */
#pragma once
#include "agent/agent.h"
#include "migrate/pipeline.h"

enum mig_after {
  AFTER_REMOVE,  /* migration: the copy here goes, with the volumes that moved */
  AFTER_KEEP,    /* migration --keep: the record stays, state "migrated" */
  AFTER_RUN_ON,  /* checkpoint --leave-running: it resumes here */
  AFTER_STOP,    /* checkpoint: it ends here, state "checkpointed" */
};

struct mig_host {
  struct agent *a;
  const char *ref;          /* the container, by name or id */
  enum ctr_op op;           /* OP_MIGRATION, OP_CHECKPOINT */
  const char *mid;          /* a migration's id: the record's migration mark (with to) */
  enum mig_after after;
  const char *to;           /* where it went: "migrated_to", the redirect */
  const char *redirect_to;  /* host of the published ports' redirect (NULL: none) */
  int redirect_s;
  bool no_hold;             /* frozen: drop its traffic (link down) rather than hold it */
  const struct mig_mem_parent *mem; /* pre-copied memory the dump builds on (NULL: none) */
  struct mig_lazy_dump *lazy; /* post-copy: the dump serves the memory (NULL: it does not) */
  struct agent_claim *claim;  /* the container's, from the claim step to the release */
  struct ckpt_criu *criu;   /* the dump's CRIU, started before the freeze (host.c's) */
  int criu_ps_fd, criu_keeper_fd; /* the descriptors it was started with */
  struct net_hold *hold_ready; /* the freeze's hold, made before it (host.c's) */
};

/* Post-copy: the dump's CRIU stays after the dump and serves the pages the
 * destination's copy faults in (ckpt_dump_opts.lazy_pid). After the commit
 * the copy here ends only once it has served them all; a thaw (the move
 * was abandoned) stops it first. */
struct mig_lazy_dump {
  int pid;             /* that CRIU, 0 once it ended */
  char dir[512];       /* its images (its log) */
  int64_t served_ms;   /* commit to the last page served, -1 */
  char error[FERRY_ERR_MSG]; /* why it did not serve them all, "" */
};

/* The last pre-dump of a migration's memory pre-copy: the final dump sends
 * only what was written since, CRIU's trackers coming from the keeper. */
struct mig_mem_parent {
  char parent[64]; /* the pre-dump's images, relative to the dump's */
  int keeper_fd;   /* the trackers' keeper (CRIU's --track-mem-keeper) */
};

extern const struct mig_host_ops mig_agent_host;
