/* The node agent's operations, independent of HTTP. The agent is the only
 * owner of its containers.
 *
 * Locking: one operation at a time owns a container (agent_claim: an
 * in-memory claim, and for operations a restart must resolve — checkpoint,
 * restore, migration — an "op" field in the record). The agent-wide store
 * lock guards only the instant a claim is taken or released, a name or
 * address is checked and reserved, or the store is listed; it is never held
 * while runc, CRIU or another host is waited for. Results are jansson objects
 * that the API layer sends as they are. */
#pragma once
#include <jansson.h>
#include <pthread.h>
#include <stdbool.h>
#include <sys/types.h>

#include "agent/phase.h"
#include "ckpt/ckpt.h"
#include "image/store.h"
#include "net/net.h"
#include "net/overlay.h"
#include "runtime/runtime.h"
#include "util/err.h"

struct agent_options {
  const char *root;       /* default /var/lib/ferry */
  const char *runc_root;  /* default /run/ferry/runc */
  const char *runc;       /* default "runc" */
  const char *shim;       /* ferry-shim path */
  const char *bridge;     /* default ferry0 */
  const char *subnet;     /* default 10.89.0.0/24 */
  uint64_t max_entry_size; /* image archive entries; 0: default */
  const char *gateway;    /* the bridge's address (default: the subnet's first) */
  const char *token;      /* bearer token of this agent's TCP API, also sent to peers */
  const char *tls_ca;     /* CA file to verify peer agents over HTTPS */
  const char *listen;     /* ADDR:PORT of the TCP API, for the page server's address */
  int migration_timeout_s; /* an incoming migration is abandoned after this; 0: 600 */
  const char *seed_config; /* JSON file: seed container name -> what /start_container runs */
  const char *const *peer_allow; /* NULL-terminated CIDRs a seed pull may contact; NULL: the
                                  * networks this host is directly on */
  const struct overlay_options *overlay; /* NULL or vni 0: the bridge's own segment only */
};

/* The agent: opaque outside agent/ (agent_private.h); what the other
 * layers may know of it, through these. */
struct agent;
const char *agent_id(const struct agent *a);
const char *agent_root(const struct agent *a);
const char *agent_token(const struct agent *a);
const char *agent_tls_ca(const struct agent *a);
/* NULL when the API is not on a specific address */
const char *agent_listen_ip(const struct agent *a);
/* the TCP API's port, "" when not listening */
const char *agent_listen_port(const struct agent *a);
int agent_migration_timeout_s(const struct agent *a);
/* where an upload is written while it arrives (the image store's scratch) */
const char *agent_upload_dir(const struct agent *a);
/* the bridge, the subnet, the overlay (ferryd's start-up line and its
 * coordinator announcements) */
const char *agent_bridge(const struct agent *a);
const char *agent_subnet(const struct agent *a);
struct overlay *agent_overlay(struct agent *a);
/* The slot migrate/ hangs its state on (agent/ never looks inside). */
struct migrations *agent_migrations(const struct agent *a);
void agent_set_migrations(struct agent *a, struct migrations *m);

/* May this agent send its token to host (an IPv4 address or a host name,
 * resolved once here)? Every address it resolves to must be in the
 * allow-list (--peer-allow; by default a network this host is directly on,
 * its containers' subnet excepted) and none may be a container of this
 * host; 403 otherwise, 503 (-EHOSTUNREACH) for a name that does not
 * resolve. addr (>= 16) gets the address to connect to. */
int agent_peer_check(struct agent *a, const char *host, char *addr, size_t alen,
                     struct ferry_err *err);

/* A container record's "op" says an operation owns it (checkpoint, migrate,
 * restore): other changes are refused with 409 until it ends. */
int agent_check_idle(json_t *rec, struct ferry_err *err);

/* A new agent (*out, freed by agent_close). */
int agent_open(struct agent **out, const struct agent_options *o, struct ferry_err *err);
void agent_close(struct agent *a);

/* Coordinator fencing (agent_fence.c). agent_term_enter: header is the
 * request's X-Ferry-Term; 0 and the term held (read) until agent_term_leave,
 * or an error (409 for a term older than one seen; nothing held). */
void agent_term_load(struct agent *a);
int agent_term_enter(struct agent *a, const char *header, struct ferry_err *err);
void agent_term_leave(struct agent *a);
/* Resolves what an earlier run left half done (a pause that was never
 * resumed, a restore that never finished). Called by agent_open. */
void agent_recover(struct agent *a);

json_t *agent_info(struct agent *a);

int agent_image_import(struct agent *a, const char *path, const char *name, const char *display,
                       json_t **out, struct ferry_err *err);
/* The registry options of a pull or push request: "authfile"?, "cert_dir"?,
 * "credentials"?, "tls_verify"? (default true); the strings stay req's. */
int agent_registry_opts(json_t *req, struct pull_opts *o, struct ferry_err *err);
/* req: {"reference", and the registry options} */
int agent_image_pull(struct agent *a, json_t *req, json_t **out, struct ferry_err *err);
/* Pushes image ref to req's "destination" (registry/repository[:tag]), with
 * the pull's options; the layers are written as an OCI layout from the store
 * (agent_push.c). 503 with skopeo's reason when the registry refuses. */
/* An OCI archive of image ref (an OCI layout in a tar, the name it was asked
 * by, or its first, as the manifest's ref.name), written to the store's
 * scratch space and read out with agent_image_save_read/free (the body of
 * a streamed answer; the file goes at the free). */
int agent_image_save(struct agent *a, const char *ref, void **out, struct ferry_err *err);
ssize_t agent_image_save_read(void *cls, int conn_fd, char *buf, size_t max);
void agent_image_save_free(void *cls);
int agent_image_push(struct agent *a, const char *ref, json_t *req, json_t **out,
                     struct ferry_err *err);
json_t *agent_image_list(struct agent *a);
int agent_image_inspect(struct agent *a, const char *ref, json_t **out, struct ferry_err *err);
int agent_image_remove(struct agent *a, const char *ref, struct ferry_err *err);
/* Gives the image ref one more name (podman's tag); 409 when the name is
 * another image's. *out: the image record. */
int agent_image_tag(struct agent *a, const char *ref, const char *name, json_t **out,
                    struct ferry_err *err);

/* req: {"name", "image", "cmd": [..], "env": ["K=V"], "volumes": ["vol:/path"],
 *       "ip", "workdir", "user", "start": bool} */
int agent_ctr_create(struct agent *a, json_t *req, json_t **out, struct ferry_err *err);
int agent_ctr_start(struct agent *a, const char *ref, json_t **out, struct ferry_err *err);
int agent_ctr_stop(struct agent *a, const char *ref, int timeout_s, json_t **out,
                   struct ferry_err *err);
int agent_ctr_kill(struct agent *a, const char *ref, int sig, json_t **out, struct ferry_err *err);
/* Thaws a paused container (link up, resume): 409 when it is not paused or
 * an operation owns it. */
/* podman's pause: the container's processes frozen (its network stays);
 * resume (unpause) thaws it. 409 unless it runs. */
int agent_ctr_pause(struct agent *a, const char *ref, json_t **out, struct ferry_err *err);
int agent_ctr_resume(struct agent *a, const char *ref, json_t **out, struct ferry_err *err);
int agent_ctr_remove(struct agent *a, const char *ref, bool force, struct ferry_err *err);
json_t *agent_ctr_list(struct agent *a, bool all);
int agent_ctr_inspect(struct agent *a, const char *ref, json_t **out, struct ferry_err *err);
/* The processes of a running (or paused) container (ctr_processes); 409
 * otherwise. */
int agent_ctr_top(struct agent *a, const char *ref, json_t **out, struct ferry_err *err);
/* A running (or paused) container's resource use now (ctr_stats, with its
 * "id" and "name"); 409 otherwise. */
int agent_ctr_stats(struct agent *a, const char *ref, json_t **out, struct ferry_err *err);
int agent_ctr_logs(struct agent *a, const char *ref, uint64_t offset, char **out, size_t *len,
                   struct ferry_err *err);
/* req: {"cmd": [..], "env": [..], "timeout": seconds} -> {"exit_code", "stdout", "stderr"} */
int agent_ctr_exec(struct agent *a, const char *ref, json_t *req, json_t **out,
                   struct ferry_err *err);
/* The same, its output streamed as it comes: *out is the stream for
 * agent_exec_stream_read/free (the body of a chunked answer), the frames of
 * util/frame.h, the last FRAME_EXIT with {"exit_code": N}. It ends when the
 * command does (children it left holding its output do not keep it open).
 * A client that hangs up ends the command (SIGKILL). */
int agent_ctr_exec_stream(struct agent *a, const char *ref, json_t *req, void **out,
                          struct ferry_err *err);
#define agent_exec_stream_read agent_session_read
#define agent_exec_stream_free agent_session_release
/* An exec request checked (internal): command, environment, the running
 * container's record; *code 126/127 and podman's *msg when the command
 * cannot run there. */
int agent_exec_prepare(struct agent *a, const char *ref, json_t *req, char ***cmd, char ***env,
                       json_t **rec, int *code, char **msg, struct ferry_err *err);

/* ferry cp: a running container's file or directory (runtime.h's
 * ctr_copy_*): its stat; a tar of it, streamed (agent_archive_read/free);
 * a tar extracted into one of its directories. */
int agent_ctr_archive_stat(struct agent *a, const char *ref, const char *path, json_t **out,
                           struct ferry_err *err);
int agent_ctr_archive_get(struct agent *a, const char *ref, const char *path, void **out,
                          struct ferry_err *err);
ssize_t agent_archive_read(void *cls, int conn_fd, char *buf, size_t max);
void agent_archive_free(void *cls);
int agent_ctr_archive_put(struct agent *a, const char *ref, const char *dir, const char *tarfile,
                          struct ferry_err *err);

/* Interactive sessions (agent_session.c): exec with a terminal or input
 * ({"cmd", "env", "tty", "stdin", "rows", "cols"}), attach to a running
 * container ({"stdin", "rows", "cols"}); both answer {"session": ID,
 * "tty": B}. The output stream (agent_session_read, freed by
 * agent_session_release: a stream not read to its end kills an exec, and
 * detaches an attach) carries FRAME_STDOUT/STDERR and ends with FRAME_EXIT
 * (util/frame.h; {} when an attached container's exit is unknown). Input
 * goes in through input_open/input/input_end (complete: the client's input
 * ended, so the command's stdin closes); resize: {"rows", "cols"}. */
int agent_session_exec(struct agent *a, const char *ref, json_t *req, json_t **out,
                       struct ferry_err *err);
int agent_session_attach(struct agent *a, const char *ref, json_t *req, json_t **out,
                         struct ferry_err *err);
int agent_session_stream(struct agent *a, const char *id, void **out, struct ferry_err *err);
ssize_t agent_session_read(void *cls, int conn_fd, char *buf, size_t max);
void agent_session_release(void *cls);
int agent_session_resize(struct agent *a, const char *id, json_t *req, struct ferry_err *err);
int agent_session_input_open(struct agent *a, const char *id, void **out, struct ferry_err *err);
int agent_session_input(void *cls, const char *data, size_t n);
void agent_session_input_end(void *cls, bool complete);

int agent_volume_create(struct agent *a, const char *name, json_t **out, struct ferry_err *err);
json_t *agent_volume_list(struct agent *a);
int agent_volume_inspect(struct agent *a, const char *name, json_t **out, struct ferry_err *err);
int agent_volume_remove(struct agent *a, const char *name, struct ferry_err *err);

/* The format of a checkpoint directory's checkpoint.json (written by
 * migrate_checkpoint, a migration to a directory). */
#define CKPT_FORMAT 1
/* req: {"dir", "name"}; out: the restored container and the restore report. */
int agent_restore(struct agent *a, json_t *req, json_t **out, struct ferry_err *err);

/* ---- one container, for the migration engine ---- */
/* One operation's hold on one container. The steps below that change a
 * container take its claim; only the claim's holder ends it (a release of
 * a claim that no longer holds is refused, and logged). */
struct agent_claim;
/* Claims container ref for operation op: refused with 409 while another
 * claim holds it, or its record has an op (or, with want_running, when it
 * does not run). An operation a restart must resolve writes its "op" into
 * the record. */
int agent_claim(struct agent *a, const char *ref, const char *op, bool want_running,
                struct agent_claim **out, struct ferry_err *err);
/* A restart's recovery: claims rec (found with the op an operation of the
 * agent's last run wrote into it) for the step that resolves it; 409 if a
 * claim holds it. */
int agent_claim_marked(struct agent *a, json_t *rec, struct agent_claim **out,
                       struct ferry_err *err);
/* The claimed record (the claim's reference: valid until the release). */
json_t *agent_claim_rec(const struct agent_claim *c);
/* Ends the claim and frees it (NULL ok); with save, the record is written
 * without its "op" first. */
void agent_release(struct agent_claim *c, bool save);
/* Writes the claimed container's record. */
int agent_claim_save(struct agent_claim *c, struct ferry_err *err);
/* Freeze: take the container off the network (its traffic held, with
 * hold, net/hold.h; else its link down: no packet reaches a frozen
 * socket), then pause it; with neighbours, the ARP entries it knew are
 * returned (net_neigh_list) for its restored copy. Thaw undoes both.
 * ready: a hold made ahead (agent_ctr_hold_prepare), taken over; NULL:
 * made here. */
struct net_hold;
int agent_ctr_freeze(struct agent_claim *c, bool hold, struct net_hold *ready,
                     json_t **neighbours, struct ferry_err *err);
/* The part of a freeze's hold that can be made while the container still
 * runs (its TAP, reader and qdisc): NULL if it could not (the freeze then
 * makes it all). One not given to agent_ctr_freeze is ended with
 * agent_ctr_hold_unprepare (NULL ok). */
struct net_hold *agent_ctr_hold_prepare(struct agent_claim *c);
void agent_ctr_hold_unprepare(struct net_hold *ready);
void agent_ctr_thaw(struct agent_claim *c);
/* The frozen container runs elsewhere on the segment now: its link goes
 * down here and the traffic held while it was frozen (net/hold.h) is sent
 * into the bridge, which forwards it to where the container was announced. */
void agent_ctr_hand_over(struct agent_claim *c);
/* At shutdown: every hold ends, its frames dropped. */
void agent_holds_drop(struct agent *a);
/* The CRIU of a dump started ahead of the freeze (ckpt_criu_start, its
 * early output in the agent's root), and its end (NULL ok). */
int agent_dump_criu_start(struct agent *a, int ps_fd, int keeper_fd, struct ckpt_criu **out,
                          struct ferry_err *err);
void agent_dump_criu_end(struct ckpt_criu *c);
/* Dump a frozen container into dir (CRIU images), or pre-dump the memory
 * of a running one, as o says (ckpt_dump). */
int agent_ctr_dump(struct agent_claim *c, const char *dir, const struct ckpt_dump_opts *o,
                   json_t **stats, struct ferry_err *err);
/* Ends a frozen container's processes (killed while frozen: never back on
 * the network); its record and files stay. */
void agent_ctr_end_frozen(struct agent_claim *c);
/* The container now runs elsewhere: its copy here ends (killed while frozen,
 * never back on the network); with keep, the record stays as "migrated",
 * otherwise it goes with its volumes (those no other container here uses). */
void agent_ctr_commit_away(struct agent_claim *c, bool keep, const char *to);
/* Removes rec's volumes that no other container here mounts (rec itself is
 * gone or going). */
void agent_volumes_release(struct agent *a, json_t *rec);
/* Is volume name mounted by a container other than except_id? */
bool agent_volume_in_use(struct agent *a, const char *name, const char *except_id);
/* Reserves name and address for a restored copy and writes its record
 * (op "restore", claimed: *out): rec must have been through
 * agent_restored_record. */
int agent_restore_reserve(struct agent *a, json_t *rec, struct agent_claim **out,
                          struct ferry_err *err);
/* How a restored copy's files arrive. place() puts its volumes and its
 * rootfs changes (the upper dir) in place once its record is reserved;
 * undo() (may be NULL) removes what place() made when a later step fails.
 * Fault points: PREFIX-reserved, PREFIX-criu-restore, PREFIX-launched. */
struct restore_source {
  const char *fault_prefix; /* "restore" (a checkpoint), "incoming" (a migration) */
  struct ckpt_lazy *lazy;   /* non-NULL: memory restored lazily; gets the lazy-pages
                             * daemon's pid (ckpt_restore) */
  int (*place)(struct agent *a, json_t *rec, void *ctx, struct ferry_err *err);
  void (*undo)(struct agent *a, json_t *rec, void *ctx);
  void *ctx;
};
struct restore_times {
  uint64_t files_ms, setup_ms, restore_ms;
  json_t *criu;   /* CRIU's restore figures (the caller's), or NULL */
  int neighbours; /* ARP entries given to the copy */
};
/* The one restore of a copy, for a checkpoint directory and an incoming
 * migration alike: rec (through agent_restored_record) is reserved, its
 * files placed, its overlay mounted and network made (link down), CRIU
 * restores it from criu_dir, it gets neighbours; with link_up it joins the
 * network. On success *claim (op "restore") holds the copy; on failure
 * everything it made goes (the record, the network, what place() made). */
int agent_restore_copy(struct agent *a, json_t *rec, json_t *img, const char *criu_dir,
                       const struct restore_source *src, json_t *neighbours, bool link_up,
                       struct restore_times *t, struct agent_claim **claim,
                       struct ferry_err *err);
/* agent_restore_copy in two halves, for a migration's target while the
 * source still dumps: prepare reserves, places the files, mounts, and
 * starts the restore held before CRIU (ckpt_restore_start: descriptors are
 * runc's, from the source); launch, once the images are in criu_dir, lets
 * CRIU restore and seeds the neighbours. Either failing, or abandon,
 * removes everything as agent_restore_copy's failure does. Not lazy. Only
 * where agent_restore_can_hold (ferry-criu is there). */
struct agent_restore_job;
bool agent_restore_can_hold(struct agent *a);
int agent_restore_prepare(struct agent *a, json_t *rec, json_t *img, const char *criu_dir,
                          const struct restore_source *src, json_t *descriptors,
                          struct agent_restore_job **out, struct ferry_err *err);
/* With tail (not NULL), launch returns once CRIU restored the processes
 * (they run, the copy is claimed) and *tail may hold runc's end, which
 * agent_restore_tail_end waits for, exactly once, before the copy is
 * used or removed: its failure means the restore failed after all. */
struct agent_restore_tail;
int agent_restore_launch(struct agent *a, struct agent_restore_job *j, json_t *neighbours,
                         struct restore_times *t, struct agent_claim **claim,
                         struct agent_restore_tail **tail, struct ferry_err *err);
int agent_restore_tail_end(struct agent_restore_tail *t, struct ferry_err *err);
void agent_restore_abandon(struct agent *a, struct agent_restore_job *j);
/* File changes that come after a prepared restore placed its files (the
 * source prepared it before its freeze): a volume's (volume != NULL)
 * into that volume; the rootfs's into its upper dir, the held restore
 * called off, the overlay taken down and both made again around it. On a
 * failure the caller abandons j. */
int agent_restore_prepared_delta(struct agent *a, struct agent_restore_job *j, const char *volume,
                                 const char *tar, const char *what, struct ferry_err *err);
/* Undoes a restored copy agent_restore_copy made (its caller failed
 * after it): everything goes, as when the step itself fails. */
void agent_restore_discard(struct agent_claim *c, const struct restore_source *src,
                           struct restore_times *t);
/* Mounts, sets up the network (link down) and restores the claimed record's
 * container from the CRIU images in criu_dir. The link stays down until
 * agent_ctr_link_up: a migration brings it up only at commit. */
int agent_ctr_restore_from(struct agent *a, json_t *rec, json_t *img, const char *criu_dir,
                           struct ckpt_lazy *lazy, json_t **stats, struct ferry_err *err);
int agent_ctr_link_up(struct agent_claim *c, struct ferry_err *err);
/* Removes the claimed container whatever it runs (a copy not committed),
 * and ends the claim. */
void agent_ctr_discard(struct agent_claim *c);
/* The network namespace and veth (link down) of the container that will
 * have id, made ahead: a migration's target makes them at the offer, while
 * the source still runs, and the restore finds them (~20 ms less freeze).
 * agent_net_discard removes them if no container came. */
int agent_net_prepare(struct agent *a, const char *id, const char *ip, const char *mac,
                      struct ferry_err *err);
void agent_net_discard(struct agent *a, const char *id);

/* ---- a container's parts as a migration or checkpoint moves them
 * (agent_parts.c): migrate/ reaches the stores' files only through these ---- */
enum agent_part {
  PART_LAYER,  /* an image layer, by digest */
  PART_VOLUME, /* a named volume */
  PART_ROOTFS, /* the container's rootfs changes (its overlay upper dir) */
};
/* A tar of a part into the file out (tar_opts: zstd, changed since, the
 * delta manifest). */
int agent_part_tar(struct agent *a, enum agent_part part, json_t *rec, const char *name,
                   const char *out, const struct tar_opts *to, uint64_t *bytes,
                   struct ferry_err *err);
/* The stdio runc's restore of rec reconnects (its runc state's
 * external_descriptors), or NULL. */
json_t *agent_ctr_descriptors(struct agent *a, json_t *rec);
/* The image record of the container rec runs. */
int agent_image_of(struct agent *a, json_t *rec, json_t **img, struct ferry_err *err);
/* The container's output so far, copied to dst. */
int agent_ctr_log_copy(struct agent *a, json_t *rec, const char *dst, struct ferry_err *err);
/* 0 when ref is a running container no operation owns (404/409 otherwise);
 * *mem: the memory its cgroup uses (bytes, -1 unknown). */
int agent_ctr_movable(struct agent *a, const char *ref, int64_t *mem, struct ferry_err *err);
/* 409 for a container with a terminal or an open stdin (run -t/-i): its
 * shim holds them, and no checkpoint carries them. */
int agent_ctr_checkpointable(struct agent *a, const char *ref, struct ferry_err *err);
/* Before a dump or a restore, outside the freeze: CRIU's kernel-feature
 * cache is there and was made by the CRIU installed now (ckpt_kdat_prime;
 * a stat when it is). A failure is logged: CRIU then probes on each run. */
void agent_criu_ready(struct agent *a);
/* Removes the containers created with "remove" (run -d --rm) that have
 * exited; called every second. */
void agent_autoremove_tick(struct agent *a);
/* The records of the containers an operation owns (a restart resolves them). */
json_t *agent_ctr_marked(struct agent *a, enum ctr_op op);
/* Unpacking what a peer sent, with the image store's limits and escape
 * checks: fresh (dest replaced), a delta (then its manifest applied: what
 * the source removed goes), or CRIU images. */
int agent_extract_fresh(struct agent *a, const char *tar, const char *dest, const char *what,
                        struct ferry_err *err);
int agent_extract_delta(struct agent *a, const char *tar, const char *dest, const char *what,
                        struct ferry_err *err);
/* CRIU's images (a flat archive of files: extract_flat) into dest. */
int agent_extract_images(struct agent *a, const char *tar, const char *dest, const char *what,
                         struct ferry_err *err);
bool agent_layer_present(struct agent *a, const char *digest);
/* A layer into the store (unless there); *added when this call put it. */
int agent_layer_receive(struct agent *a, const char *digest, const char *tar, const char *what,
                        bool *added, struct ferry_err *err);
/* Removes the layers (digests) that no image uses. */
/* Pins (pin true) or unpins an image's layers: an incoming migration told
 * that layers are present here keeps them from a concurrent image
 * removal until its image record refers to them (or it ends). */
void agent_layers_pin(struct agent *a, json_t *digests, bool pin);
void agent_layers_forget(struct agent *a, json_t *digests);
/* Registers an image record whose layers are all here (names another
 * image holds stay with it); *added when it was new. */
int agent_image_adopt(struct agent *a, json_t *img, bool *added, struct ferry_err *err);
bool agent_volume_exists(struct agent *a, const char *name);
/* A received volume (the directory src) becomes the store's volume name,
 * marked with mark until agent_volume_unmark. */
int agent_volume_adopt(struct agent *a, const char *name, const char *src, const char *mark,
                       struct ferry_err *err);
void agent_volume_unmark(struct agent *a, const char *name);
/* Removes volume name if it still carries mark (never a volume in use). */
void agent_volume_drop_marked(struct agent *a, const char *name, const char *mark);
/* The record of the copy an incoming migration mid made here, or NULL. */
json_t *agent_ctr_by_migration(struct agent *a, const char *mid);
/* The received rootfs changes (directory src) become rec's upper dir. */
int agent_ctr_adopt_changes(struct agent *a, json_t *rec, const char *src, struct ferry_err *err);
/* Whether anything in the container's rootfs changed since `since` (an
 * entry of its upper dir with a newer change time: a write, a new or
 * removed entry, a change of mode or owner; true when it cannot tell). */
bool agent_ctr_rootfs_changed_since(struct agent *a, json_t *rec, time_t since);
/* An unsolicited ARP for the container's address from its namespace. */
int agent_ctr_announce(struct agent_claim *c, struct ferry_err *err);


/* ---- metrics (agent_metrics.c): GET /metrics, Prometheus text ---- */
void agent_metrics_init(struct agent *a);
void agent_metrics_fini(struct agent *a);
/* A migration from here ended: phases {"name": ms}, bytes {"kind": n},
 * downtime_ms (< 0 when it failed). */
void agent_metrics_sent(struct agent *a, bool ok, json_t *phases, json_t *bytes,
                        int64_t downtime_ms);
/* A migration to here ended: committed (the container runs here) or not. */
void agent_metrics_received(struct agent *a, bool committed);
/* The exposition text (malloc'd), *len its length. */
char *agent_metrics_text(struct agent *a, size_t *len);

/* ---- published ports (agent_ports.c) ---- */
/* Rebuilds the forwarding table from the records and the redirects. */
int agent_ports_sync(struct agent *a, struct ferry_err *err);
/* Refuses (409) ports a container here other than except_id, or a redirect
 * of a container other than name, publishes already, and ports a program
 * of this host listens on (the agent's own API included); 400 for a
 * host_ip that is not this host's. Caller holds the
 * store lock. */
int agent_ports_taken(struct agent *a, json_t *ports, const char *except_id, const char *name,
                      struct ferry_err *err);
/* A restored copy publishes on all of this host's addresses where its
 * source's address is not one of them. */
void agent_ports_localize(json_t *rec);
/* After rec moved away: for seconds, its host ports here lead to to_ip (the
 * new host; the container's own address when to_ip is not an IPv4 address).
 * Takes effect with the next agent_ports_sync. */
void agent_ports_redirect(struct agent *a, json_t *rec, const char *to_ip, int seconds);
/* Ends the redirects of container name (it is back here). */
void agent_ports_unredirect(struct agent *a, const char *name);
/* Ends the redirects whose time is up (called every second). */
void agent_ports_expire(struct agent *a);
void agent_ports_load(struct agent *a);
/* The seed API's defaults: built in (redis), overridden by the file's
 * entries {"NAME": {"image", "cmd": [..], "ports": [..], "volumes": [..],
 * "env": [..]}}. */
int agent_seed_defaults_load(struct agent *a, const char *path, struct ferry_err *err);
/* Runs name afresh: an existing container of that name goes first, with its
 * volumes; what runs is name's default, else what the old one ran. 404
 * when neither exists. */
int agent_seed_run(struct agent *a, const char *name, json_t **out, struct ferry_err *err);
/* Fills the redis server in container name (port 6379) with random values:
 * out {"keys", "bytes", "bytes_per_key", "duration_ms"}. */
int agent_seed_fill(struct agent *a, const char *name, uint64_t total_bytes, size_t value_bytes,
                    json_t **out, struct ferry_err *err);

/* Internal to the agent module (agent.c and agent_ckpt.c). */
/* Removes a container the caller owns (claimed, or not yet visible). */
int agent_ctr_destroy(struct agent *a, json_t *rec, bool force, struct ferry_err *err);
/* Mounts the rootfs, writes the bundle and makes the network namespace; its
 * veth is left down unless net_up (a restore brings it up once CRIU is done). */
int agent_ctr_materialize(struct agent *a, json_t *rec, json_t *img, bool net_up,
                          struct ferry_err *err);
void agent_ctr_unmaterialize(struct agent *a, json_t *rec);
/* Is id a well-formed container id (64 hex digits) that no container here
 * has? A copy keeps its container's id when it is. */
bool agent_ctr_id_free(struct agent *a, const char *id);
/* Turns a checkpointed or migrated record into the record of its restored
 * copy with id `id` (the container's own when free here) and instance key
 * `local` (host-side names derive from it: rec_instance), state "created"
 * under op "restore", the live fields of the old copy dropped. */
void agent_restored_record(json_t *rec, const char *id, const char *local);
/* An incoming copy of ctr (a record already sanitised) may come here: its
 * name and address free, its published ports (made this host's first)
 * free, none of its volumes vols here. It keeps the id keep_id (its own,
 * NULL when another incoming copy has it) when no container here has it,
 * else gets a new one at its restore. The image's layers are pinned (they stay while the
 * copy comes: agent_layers_pin(a, layers, false) lets them go) and
 * *missing lists those not here. Takes the store lock for an instant; 409
 * with the reason otherwise, nothing pinned. */
int agent_offer_reserve(struct agent *a, json_t *ctr, const char *keep_id, json_t *vols,
                        json_t *layers, json_t **missing, struct ferry_err *err);
/* agent_name_check under the store lock (taken here for an instant): an
 * answer that may change as soon as it is given, for refusing early. */
int agent_name_free(struct agent *a, const char *name, struct ferry_err *err);
/* 0 if name is free for a new container here; 409 if a container has it,
 * or if it reads as the beginning of a container's id (4+ hex digits).
 * Caller holds the store lock. */
int agent_name_check(struct agent *a, const char *name, struct ferry_err *err);
int agent_ip_check(struct agent *a, const char *ip, const char *except_id, struct ferry_err *err);
