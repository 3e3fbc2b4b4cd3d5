/* A container record's fields, each with its C type, declared here once.
 *
 * The record itself stays a jansson object: it is what container.json holds
 * and what the API sends. Everything else — agent/, migrate/, the runtime,
 * the network and checkpoint code — reads and writes its fields only
 * through these accessors, so that a field's JSON key is spelled in this
 * file alone (and in record.c, which checks records from outside), its
 * states and operations are enums decided by code, and a typo is a compile
 * error rather than a silently missing field.
 *
 *   text fields        rec_NAME(rec) -> const char * ("" when absent),
 *                      rec_set_NAME(rec, value or NULL to remove)
 *   state              the stored lifecycle state (enum ctr_state)
 *   status, pid        the live status, derived by ctr_refresh (never stored)
 *   op                 the operation a restart must resolve (enum ctr_op)
 *   migration          the source's mark of an outgoing migration
 *   exit_code          with finished_at, from the shim's exit file
 *   volumes            [{name, destination}] the container mounts
 *   args, env, ports   JSON arrays (strings; net/ports.h mappings)
 *   uid, gid           resolved at create (0..4294967294)
 *   id, local_id       the container's id (kept across moves) and the key
 *                      of its instance here (rec_instance) */
#pragma once
#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>
#include <string.h>

/* X(field) for every text field: its key is its name. */
#define CTR_TEXT_FIELDS(X)                                                                         \
  X(id)                                                                                            \
  X(local_id)                                                                                      \
  X(name)                                                                                          \
  X(image)                                                                                         \
  X(image_name)                                                                                    \
  X(ip)                                                                                            \
  X(mac)                                                                                           \
  X(netns)                                                                                         \
  X(veth)                                                                                          \
  X(cwd)                                                                                           \
  X(user)                                                                                          \
  X(created)                                                                                       \
  X(started_at)                                                                                    \
  X(finished_at)                                                                                   \
  X(restored_from)                                                                                 \
  X(migrated_to)                                                                                   \
  X(migrated_from)                                                                                 \
  X(migrated_at)                                                                                   \
  X(migration_id)

#define CTR_TEXT_ACCESSORS(f)                                                                      \
  static inline const char *rec_##f(const json_t *rec)                                             \
  {                                                                                                \
    const char *s = json_string_value(json_object_get(rec, #f));                                   \
    return s ? s : "";                                                                             \
  }                                                                                                \
  static inline bool rec_has_##f(const json_t *rec)                                                \
  {                                                                                                \
    return json_is_string(json_object_get(rec, #f));                                               \
  }                                                                                                \
  static inline void rec_set_##f(json_t *rec, const char *v)                                       \
  {                                                                                                \
    if (v)                                                                                         \
      json_object_set_new(rec, #f, json_string(v));                                                \
    else                                                                                           \
      json_object_del(rec, #f);                                                                    \
  }
CTR_TEXT_FIELDS(CTR_TEXT_ACCESSORS)
#undef CTR_TEXT_ACCESSORS

/* The key of this host's instance of the container: what its host-side
 * names (network namespace, veth, cgroup) derive from, unique on the
 * machine. A container keeps its id across migrations and restores (as
 * podman's restore does); its copy on another agent, perhaps on the same
 * machine and while the original still exists, gets its own local_id.
 * Records without one (created here) use their id. */
static inline const char *rec_instance(const json_t *rec)
{
  return rec_has_local_id(rec) ? rec_local_id(rec) : rec_id(rec);
}

/* ---- the stored lifecycle state ---- */
enum ctr_state {
  CS_CREATED,      /* made, never started (the default) */
  CS_RUNNING,      /* started: runc and the shim say whether it still runs */
  CS_EXITED,       /* stopped by the agent */
  CS_CHECKPOINTED, /* ended by a checkpoint */
  CS_MIGRATED,     /* moved away, record kept (--keep) */
};
const char *ctr_state_name(enum ctr_state s);
enum ctr_state rec_state(const json_t *rec);
void rec_set_state(json_t *rec, enum ctr_state s);
/* podman's run --rm with -d: the agent removes it once it has exited
 * (stopped, or ended by itself); it goes with the container's moves. */
bool rec_autoremove(const json_t *rec);
void rec_set_autoremove(json_t *rec, bool on);
/* A terminal for the container's process (run -t), its stdin kept open for
 * attached clients (run -i). Neither moves: such a container is not
 * checkpointed (agent_ctr_movable). */
bool rec_tty(const json_t *rec);
bool rec_stdin(const json_t *rec);
void rec_set_stdio(json_t *rec, bool tty, bool in);

/* ---- the live status (ctr_refresh), never stored ---- */
enum ctr_live {
  LIVE_UNKNOWN,      /* "": before ctr_refresh */
  LIVE_CREATED,      /* "created": made, never started */
  LIVE_RUNNING,      /* "running" */
  LIVE_PAUSED,       /* "paused": frozen (ferry pause, or a move's freeze) */
  LIVE_EXITED,       /* "exited": started, its processes gone */
  LIVE_CHECKPOINTED, /* "checkpointed": ended by a checkpoint */
  LIVE_MIGRATED,     /* "migrated": moved away, record kept */
};
/* The name the API shows ("running"); its inverse (LIVE_UNKNOWN for
 * anything else). The only place they are spelled. */
const char *ctr_live_name(enum ctr_live s);
enum ctr_live ctr_live_parse(const char *s);
/* Its processes exist (running or paused). */
static inline bool ctr_live_up(enum ctr_live s)
{
  return s == LIVE_RUNNING || s == LIVE_PAUSED;
}
enum ctr_live rec_status(const json_t *rec);
static inline const char *rec_status_name(const json_t *rec)
{
  return ctr_live_name(rec_status(rec));
}
void rec_set_status(json_t *rec, enum ctr_live status, int pid);
/* Drops the live fields (status, pid) before an operation changes it. */
void rec_clear_live(json_t *rec);

/* ---- the operation a restart must resolve ---- */
enum ctr_op {
  OP_NONE,
  OP_CHECKPOINT, /* a checkpoint froze it: a restart resumes it */
  OP_MIGRATION,  /* moving away: a restart asks the target (the migration mark) */
  OP_RESTORE,    /* being restored here (a local restore or an incoming migration) */
  OP_OTHER,      /* one this version does not know: it owns the container, no
                  * recovery acts on it */
};
const char *ctr_op_name(enum ctr_op op);
enum ctr_op rec_op(const json_t *rec);
void rec_set_op(json_t *rec, enum ctr_op op);

/* ---- the source's mark of an outgoing migration ---- */
void rec_set_migration(json_t *rec, const char *id, const char *to);
bool rec_has_migration(const json_t *rec);
const char *rec_migration_to(const json_t *rec);
const char *rec_migration_mid(const json_t *rec);
bool rec_commit_sent(const json_t *rec);
void rec_set_commit_sent(json_t *rec);
void rec_clear_commit_sent(json_t *rec);
void rec_clear_migration(json_t *rec);

/* ---- exit ---- */
/* false when the container has not exited (or its code is unknown). */
bool rec_exit_code(const json_t *rec, int *code);
/* exit_code and finished_at as the shim wrote them (exit.json) */
void rec_set_exit(json_t *rec, const json_t *exit_json);
void rec_clear_exit(json_t *rec);

/* ---- volumes ---- */
size_t rec_n_volumes(const json_t *rec);
const char *rec_volume_name(const json_t *rec, size_t i);
const char *rec_volume_dest(const json_t *rec, size_t i);
bool rec_volume_readonly(const json_t *rec, size_t i);
/* Appends {name, destination}; volumes, if absent, becomes an array. */
void rec_add_volume(json_t *rec, const char *name, const char *dest);
/* Sets the list: an array of {name, destination} (a reference is taken). */
void rec_set_volumes(json_t *rec, json_t *vols);
/* Bind mounts of host paths (podman's -v /host/path:/dst[:ro]): "binds",
 * [{"source" (the resolved host path), "destination", "readonly"}]. They
 * stay on their host: a container with any is not moved. */
size_t rec_n_binds(const json_t *rec);
const char *rec_bind_source(const json_t *rec, size_t i);
const char *rec_bind_dest(const json_t *rec, size_t i);
bool rec_bind_readonly(const json_t *rec, size_t i);
void rec_set_binds(json_t *rec, json_t *binds);
/* tmpfs mounts (podman's --tmpfs, --mount type=tmpfs): "tmpfs",
 * [{"destination", "options" (normalised by tmpfs_parse)}]. Their contents
 * move with the container (CRIU carries them). */
size_t rec_n_tmpfs(const json_t *rec);
const char *rec_tmpfs_dest(const json_t *rec, size_t i);
const char *rec_tmpfs_options(const json_t *rec, size_t i);
void rec_set_tmpfs(json_t *rec, json_t *tmpfs);
/* The volume list itself (borrowed), for copying into an offer. */
json_t *rec_volumes(const json_t *rec);

/* ---- command, environment, ports ---- */
json_t *rec_args(const json_t *rec); /* borrowed; array of strings */
json_t *rec_env(const json_t *rec);
json_t *rec_ports(const json_t *rec); /* NULL when it publishes none */
void rec_set_args(json_t *rec, json_t *args); /* steals the reference */
void rec_set_env(json_t *rec, json_t *env);
void rec_set_ports(json_t *rec, json_t *ports); /* a reference is taken; NULL or empty: none */

/* ---- user ---- */
bool rec_ids(const json_t *rec, uint32_t *uid, uint32_t *gid);
void rec_set_ids(json_t *rec, uint32_t uid, uint32_t gid);
