/* Internal to migrate/: the state shared by source.c and target.c. */
#pragma once
#include <jansson.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>

#include "agent/agent.h"

struct incoming {
  char id[33];
  char *dir;            /* ROOT/migrations/in-<id> */
  json_t *offer;        /* {"container", "image", "volumes", "source_agent"} */
  char state[16];       /* offered, restoring, running, failed */
  int ps_pid;           /* CRIU page server, 0 when none */
  uint64_t deadline_ms; /* monotonic: abandoned after this */
  json_t *received;     /* layer digests this migration added to the store */
  bool image_added;     /* the image record was added by this migration */
  json_t *report;       /* restore report once running */
  struct incoming *next;
};

struct outgoing;

struct migrations {
  char *dir;                 /* ROOT/migrations */
  pthread_mutex_t in_lock;   /* incoming list; taken before the agent lock */
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
