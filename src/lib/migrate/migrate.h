/* Live migration between agents (docs/migration.md).
 *
 * Source (push): migrate_start() runs the phases in a thread of its own —
 * offer, pre-copy (layers the target lacks, volumes, rootfs changes) while the
 * container runs, freeze (pause + take it off the network), dump with memory
 * pages streamed into the target's CRIU page server, transfer of the small
 * CRIU images and the files changed since pre-copy, restore on the target,
 * commit. Any failure before the target confirms resumes the container on the
 * source, with its memory, files and TCP connections as they were.
 *
 * Target: the incoming_* calls, one per step, driven by the source over the
 * agent API under /v1/migrations/incoming/{id}. */
#pragma once
#include <jansson.h>

#include "agent/agent.h"
#include "migrate/protocol.h"
#include "util/err.h"

int migrate_init(struct agent *a, struct ferry_err *err);
void migrate_fini(struct agent *a);

/* ---- source ---- */
/* After a move, the source's published ports lead to the target this long
 * (seconds) unless the request says "redirect_for". */
#define MIGRATE_REDIRECT_S 60
/* req: {"to": URL, "token": optional, "keep": bool, "timeout": seconds,
 *       "memory", "compress", "redirect_for": seconds}.
 * *out: {"id": ...}; the migration runs on in the background. */
int migrate_start(struct agent *a, const char *ref, json_t *req, json_t **out,
                  struct ferry_err *err);
/* The report of a migration this agent sent or received; NULL if unknown. */
json_t *migrate_get(struct agent *a, const char *id);
json_t *migrate_list(struct agent *a);
/* Blocks until the migration ends (or timeout_s); returns its report. */
json_t *migrate_wait(struct agent *a, const char *id, int timeout_s);

/* ---- a checkpoint: the same pipeline, into a directory ---- */
/* req: {"dir", "leave_running"}; out: the checkpoint's report (timings, CRIU figures). */
int migrate_checkpoint(struct agent *a, const char *ref, json_t *req, json_t **out,
                       struct ferry_err *err);

/* ---- target ---- */
int incoming_offer(struct agent *a, json_t *req, const char *peer, json_t **out,
                   struct ferry_err *err);
/* A copy restored with lazy memory faults its pages in until its lazy-pages
 * daemon has pushed them all: dumping it before would miss the pages not in
 * yet. Waits (up to timeout_ms) until no such daemon works for the container
 * ref (name or id) here; 409 if one still does. */
int incoming_memory_settle(struct agent *a, const char *ref, int timeout_ms,
                           struct ferry_err *err);
/* kind: "layer", "volume", "rootfs", "criu", "rootfs-delta", "volume-delta";
 * file: the uploaded tar. */
int incoming_put(struct agent *a, const char *id, enum wire_part part, const char *name,
                 const char *file, json_t **out, struct ferry_err *err);
/* Starts a CRIU page server for the migration's memory. body: {} for the
 * dump's pages (into criu/); {"round": N}: pre-dump round N (into pre/rN,
 * on top of round N-1; rounds come in order); {"parent_round": K}: the
 * dump's pages on top of round K. A round's page server must have ended
 * well for later ones to build on it. */
int incoming_page_server(struct agent *a, const char *id, json_t *body, json_t **out,
                         struct ferry_err *err);
/* Restores the container with its link down: state "restored". */
/* req may carry "neighbours": [{"ip", "mac"}] the source's copy knew; the
 * restored copy gets them before it joins the network. */
/* While the source dumps, after the files changed since pre-copy arrived:
 * the copy's files placed and its `runc restore` started and held before
 * CRIU (ferry-criu's gate) until the restore request, which then only lets
 * CRIU restore. req: {"descriptors": runc's, from the source}. 409 when
 * this agent cannot hold a restore (the source then restores the usual
 * way); a failure otherwise fails the migration here. */
int incoming_prepare(struct agent *a, const char *id, json_t *req, json_t **out,
                     struct ferry_err *err);
int incoming_restore(struct agent *a, const char *id, json_t *req, json_t **out,
                     struct ferry_err *err);
/* The source's word that its copy is gone for good: link up, "running". */
int incoming_commit(struct agent *a, const char *id, json_t **out, struct ferry_err *err);
/* Withdraws the migration; refused (409) once it was committed. */
int incoming_abort(struct agent *a, const char *id, json_t **out, struct ferry_err *err);
int incoming_get(struct agent *a, const char *id, json_t **out, struct ferry_err *err);
