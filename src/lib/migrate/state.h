/* Internal to migrate/: the state shared by source.c and target.c. */
#pragma once
#include <jansson.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>

#include "agent/agent.h"
#include "migrate/protocol.h"
#include "util/cleanup.h"
#include "util/fs.h"

/* Removes a migration's scratch directory (ROOT/migrations/in-ID or out-ID),
 * unmounting the tmpfs of its CRIU images ("criu") first. */
static inline void mig_dir_remove(const char *dir)
{
  _cleanup_free_ char *criu = path_join(dir, "criu");
  scratch_remove(criu);
  rm_rf(dir, NULL);
}

/* An incoming migration's state (enum target_state, protocol.h), reported
 * to the source by its name:
 *   offered    accepted; parts arrive
 *   restoring  the restore step runs
 *   restored   the copy here runs, off the network, until the source commits
 *              (or the fence time passes: then it is killed, "failed")
 *   running    committed: the copy here is the container
 *   failed     nothing of it runs here
 * and, once it is removed, the source hears 404 ("gone"). */
/* A restored copy that the source has not committed within this many
 * seconds is killed by the target (the source never resumes its own copy
 * after it sent the commit, unless the target says it failed). */
#define MIGRATION_FENCE_S 30

struct incoming {
  char id[33];
  char *dir;            /* ROOT/migrations/in-<id> */
  json_t *offer;        /* {"container", "image", "volumes", "source_agent"} */
  enum target_state state; /* T_OFFERED .. T_FAILED */
  bool busy;            /* a step runs (without in_lock held) ... */
  enum target_step step; /* ... this one (protocol.h's table), */
  enum target_state began_in; /* begun in this state */
  bool abort_requested; /* the source withdrew while a step ran */
  int ps_pid;           /* CRIU page server, 0 when none */
  int ps_round;         /* the pre-dump round it receives; -1: the dump */
  int pre_ok;           /* pre-dump rounds 0..pre_ok-1 arrived whole */
  int lazy_pid;         /* criu lazy-pages filling the copy's memory, 0 when none */
  int lazy_copy_pid;    /* the copy's first process, killed if that daemon fails */
  char lazy_log[512];   /* that daemon's log */
  bool images_spent;    /* committed, its lazy-pages daemon gone: the reaper removes criu/ */
  char copy_id[65];     /* the restored copy's container id (it stays after the commit) */
  uint64_t deadline_ms; /* monotonic: abandoned after this */
  uint64_t fence_ms;    /* monotonic: a restored copy not committed by then is killed */
  json_t *received;     /* layer digests this migration added to the store */
  bool image_added;     /* the image record was added by this migration */
  struct agent *pinned_by; /* the agent whose store pins the offered layers */
  char cid[65];         /* the id its container gets here (its netns is made at the offer) */
  struct agent_claim *claim; /* the restored copy's (restored state) */
  struct agent_restore_tail *launch_tail; /* runc's end of its restore, not yet awaited
                                           * (agent_restore_launch): before its commit,
                                           * or before it is removed */
  struct agent_restore_job *prep; /* a restore prepared while the source dumps, held
                                   * until the images are in (incoming_prepare) */
  json_t *prep_rec;     /* the prepared copy's record */
  json_t *report;       /* restore report once running */
  char *saved;          /* state.json's content as last written (compact), or NULL */
  struct incoming *next;
};

struct outgoing;
struct agent_restore_job;
struct agent_restore_tail;

struct migrations {
  char *dir;                 /* ROOT/migrations */
  pthread_mutex_t in_lock;   /* incoming list and states: held for instants, never across a step */
  pthread_cond_t in_cond;    /* an incoming step ended (in_end) */
  struct incoming *in;
  pthread_mutex_t out_lock;  /* outgoing list and progress; a leaf lock */
  pthread_cond_t out_cond;
  struct outgoing *out;
  int out_running;
  pthread_t reaper;
  bool reaper_started;
  bool stopping;
  pthread_cond_t reaper_cond;
};

/* Valid migration ids are 16..32 lowercase hex digits. */
bool migration_id_valid(const char *id);
void source_recover(struct agent *a);
void outgoing_free_all(struct migrations *m);
