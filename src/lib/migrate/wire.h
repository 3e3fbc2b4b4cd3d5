/* The messages two agents exchange during a migration, as C structs; their
 * JSON is written and read only in wire.c (docs/api.md lists the routes).
 *
 * A parse checks shape and form (types, ids, digests, names, ports, secrets)
 * and refuses anything else with 400 naming the field: what a peer sends is
 * hostile until then. Meaning (is that name free here?) stays the
 * receiver's to check. A parsed struct borrows from the JSON it was read
 * from: the caller keeps that alive while it uses the struct. The _json
 * functions return a new reference. */
#pragma once
#include <jansson.h>
#include <stdbool.h>

#include "ckpt/ckpt.h"
#include "migrate/protocol.h"
#include "util/err.h"

/* POST /v1/migrations/incoming: the source offers a container. */
struct wire_offer {
  const char *id;           /* the migration's id (migration_id_valid) */
  const char *source_agent; /* the source agent's id; "" when not said */
  json_t *container;        /* its record as the source has it: ctr_record_sanitize before use */
  json_t *image;            /* its image record: "id" and "layers", each a digest */
  json_t *volumes;          /* the names of the volumes it mounts (an array, never NULL) */
};
json_t *wire_offer_json(const struct wire_offer *m);
int wire_offer_parse(json_t *j, struct wire_offer *m, struct ferry_err *err);

/* Its answer: the offer is taken. missing_layers: the image's layers the
 * target lacks (a parse checks they are layers of `image`). */
struct wire_offer_answer {
  const char *id;
  const char *target_agent;
  json_t *missing_layers;
};
json_t *wire_offer_answer_json(const struct wire_offer_answer *m);
int wire_offer_answer_parse(json_t *j, json_t *image, struct wire_offer_answer *m,
                            struct ferry_err *err);

/* POST .../ID/page-server: a CRIU page server for pre-dump round `round`
 * (>= 0), or for the dump (-1) on top of the rounds up to parent_round (-1:
 * none); zstd: the pages come compressed. */
#define WIRE_ROUNDS_MAX 64
struct wire_page_server_req {
  int round;
  int parent_round;
  bool zstd;
};
json_t *wire_page_server_req_json(const struct wire_page_server_req *m);
int wire_page_server_req_parse(json_t *j, struct wire_page_server_req *m, struct ferry_err *err);

/* Its answer: where it listens (address "": where the offer was sent), the
 * secret a connection sends first, and whether it unpacks zstd. */
struct wire_page_server {
  const char *address;
  int port;
  const char *secret;
  bool zstd;
};
json_t *wire_page_server_json(const struct wire_page_server *m);
int wire_page_server_parse(json_t *j, struct wire_page_server *m, struct ferry_err *err);

/* POST .../ID/prepare: the restore made ready before the source's dump;
 * descriptors: the stdio runc's restore reconnects (runc's state's
 * external_descriptors). */
struct wire_prepare {
  json_t *descriptors;
};
json_t *wire_prepare_json(const struct wire_prepare *m);
int wire_prepare_parse(json_t *j, struct wire_prepare *m, struct ferry_err *err);

/* POST .../ID/restore. neighbours: the ARP entries the container knew
 * ([{"ip", "mac"}]; NULL: none); lazy_memory: its pages are on the target
 * already (pre-copy), restored lazily there; lazy_pages (has_lazy_pages):
 * post-copy, the source's dump serves the rest at address:port (""
 * address: the offer's sender), secret first. */
#define WIRE_SECRET_LEN CKPT_PS_SECRET_LEN /* the page server's, same form */
struct wire_lazy_pages {
  const char *address;
  int port;
  const char *secret;
};
struct wire_restore {
  json_t *neighbours;
  bool lazy_memory;
  bool has_lazy_pages;
  struct wire_lazy_pages lazy_pages;
};
json_t *wire_restore_json(const struct wire_restore *m);
int wire_restore_parse(json_t *j, struct wire_restore *m, struct ferry_err *err);

/* What the target says of a migration: GET .../ID, and the answers of
 * prepare, restore and commit. restore: its restore report (NULL: none
 * yet); prepared: the prepare's answer; pruned: committed long ago. */
struct wire_state {
  const char *id;        /* NULL in a step's answer */
  const char *container; /* the container's name; NULL in a step's answer */
  enum target_state state;
  json_t *restore;
  bool prepared;
  bool pruned;
};
json_t *wire_state_json(const struct wire_state *m);
int wire_state_parse(json_t *j, struct wire_state *m, struct ferry_err *err);

/* DELETE .../ID: withdrawn at once, or (aborting) when the step under way
 * ends. */
struct wire_abort_answer {
  bool aborting;
};
json_t *wire_abort_answer_json(const struct wire_abort_answer *m);
int wire_abort_answer_parse(json_t *j, struct wire_abort_answer *m, struct ferry_err *err);

/* The answer to a part's upload (PUT .../ID/SEGMENT[/NAME]): bytes stored. */
json_t *wire_part_answer_json(uint64_t bytes);
