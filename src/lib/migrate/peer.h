/* Internal to migrate/: the target agent of a move as its source reaches it.
 * One place owns its URL, the one address its host name resolved to (every
 * connection of the move goes there: a name that resolves elsewhere
 * halfway cannot split a move), the path of every request, its HTTP
 * connections and the TCP connections a move makes to it (CRIU's page
 * server). */
#pragma once
#include <stdbool.h>

#include "http/http.h"
#include "migrate/protocol.h"
#include "util/err.h"

struct mig_peer {
  char url[512];  /* tcp://HOST:PORT, http:// or https:// as given */
  char host[254]; /* HOST as the URL names it ... */
  char port[8];
  char addr[16];  /* ... and the address it resolved to, once */
  char mid[33];   /* the migration's id: its requests' paths */
  bool tls;
};

/* Checks url's form (tcp://, http:// or https://HOST[:PORT][/]) and
 * resolves its host once; 400 naming the URL otherwise. mid: the move's id. */
int mig_peer_open(struct mig_peer *p, const char *url, const char *mid, struct ferry_err *err);
/* A connection to it: pinned to the resolved address, with the token (the
 * agent's own when NULL) and the CA (NULL: none). Caller frees it. */
int mig_peer_client(const struct mig_peer *p, const char *token, const char *ca,
                    struct http_client **out, struct ferry_err *err);
/* The path of one of the move's requests: /v1/migrations/incoming/ID then
 * step ("/restore", "" for the move itself) and arg (escaped; NULL: none);
 * a part's upload path (wire_part_segment). Caller frees. */
char *mig_peer_path(const struct mig_peer *p, const char *step, const char *arg);
char *mig_peer_part_path(const struct mig_peer *p, enum wire_part part, const char *arg);
/* The path of its offer (no id yet in the URL). */
#define MIG_PEER_OFFER_PATH "/v1/migrations/incoming"
/* A TCP connection to port at addr ("" or NULL: the peer's own address),
 * within timeout_s; a negative errno if it cannot be made. *endpoint gets
 * "ADDR:PORT" (caller frees; NULL: not wanted). */
int mig_peer_connect(const struct mig_peer *p, const char *addr, int port, int timeout_s,
                     char **endpoint);
