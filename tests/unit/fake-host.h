/* A fake host for the migration's real code (tests/unit/test-target.c,
 * test-move.c): the agent's calls that make, change and move a container
 * (agent/, ckpt/) are these functions, joined at link time. A source keeps
 * its one container as a record (frozen, gone, on the network); a target
 * keeps its copies as records and counts what reached the network. */
#pragma once
#include <jansson.h>
#include <pthread.h>
#include <stdbool.h>

struct migrations;

struct agent {
  struct migrations *m;
  char root[128];
  const char *name;       /* its agent id */
  /* as a target */
  json_t *copies;         /* the records of the copies here */
  int link_ups, announces, discards, nets;
  bool restore_fails;     /* CRIU's restore fails */
  /* the restore waits until the test lets it go on */
  bool restore_blocks, restore_waiting, restore_go;
  pthread_mutex_t lock;
  pthread_cond_t cond;
  /* as a source: its one container */
  json_t *ctr;            /* its record (NULL: none) */
  bool frozen, gone, claimed;
  bool save_fails;        /* writing its record fails (a full disk) */
  int dumps, thaws;
  struct agent_claim *held; /* the claim on it, if any (claims live in memory) */
};

struct agent_claim {
  struct agent *a;
  json_t *rec;
};

/* A fake agent with its root in a new directory under /tmp, and its end. */
struct agent *fake_agent_new(const char *name);
void fake_agent_free(struct agent *a);
/* The agent stopped: the claims it held in memory are gone (its records,
 * and the containers themselves, stay as they were). */
void fake_agent_stopped(struct agent *a);
/* Whether a's container (source) or its one copy (target) is on the network. */
bool fake_source_on_net(const struct agent *a);
bool fake_copy_on_net(const struct agent *a);
/* a source's container: web, 198.18.0.5, image D1 */
json_t *fake_container(void);
#define FAKE_D1 "sha256:1111111111111111111111111111111111111111111111111111111111111111"
