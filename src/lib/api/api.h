/* The agent's REST/JSON API: a libmicrohttpd server (unix socket or TCP) and
 * the libcurl client the CLI uses. Every error reply is
 *   {"status": "error", "message": "<thing>: <cause>"}
 * with a 4xx/5xx status that matches the error class. */
#pragma once
#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "agent/agent.h"
#include "util/err.h"

/* ---- server ---- */
struct api_server;

struct api_request;
struct api_response;

struct api_server_options {
  /* who answers: the agent's routes by default (api_server_start with an agent) */
  void (*dispatch)(void *ctx, const struct api_request *req, struct api_response *resp);
  bool (*wants_upload)(const char *method, const char *path);
  void *ctx;
  const char *upload_dir;  /* where uploads are staged */
  const char *unix_path;   /* listen on this unix socket (mode 0660), no token needed */
  const char *listen;      /* also listen on TCP "ADDR:PORT" (NULL: no) */
  const char *token;       /* bearer token required on TCP (NULL: none; /health is always open) */
  const char *tls_cert;    /* PEM files: serve HTTPS on TCP when both are given */
  const char *tls_key;
  uint64_t max_upload;     /* bytes of an upload; 0: 64 GiB */
};

/* Constant-time check of an "Authorization" header value against a token. */
bool api_token_ok(const char *header, const char *token);

/* With a != NULL, serves the agent's API (dispatch, uploads and ctx are set
 * from it); otherwise o->dispatch and o->ctx answer. */
int api_server_start(struct agent *a, const struct api_server_options *o, struct api_server **out,
                     struct ferry_err *err);
void api_server_stop(struct api_server *s);

/* ---- routing (routes.c), used by the server ---- */
struct api_request {
  const char *method;
  const char *peer;        /* client IPv4 address on TCP, "" on the unix socket */
  const char *local;       /* our own "ADDR:PORT" of this TCP connection, "" on the unix socket */
  const char *path;        /* without query */
  const char *body;        /* JSON body, NUL-terminated (may be empty) */
  size_t body_len;
  const char *upload_path; /* the uploaded file, for import */
  /* query parameters */
  const char *(*query)(void *ctx, const char *key);
  void *query_ctx;
};

struct api_response {
  int status;
  json_t *json;       /* reply body, or */
  char *raw;          /* a raw text body (logs) */
  size_t raw_len;
};

/* The seeds' API (seed.c): returns false when the path is not one of it. */
bool api_seed_dispatch(struct agent *a, const struct api_request *req, struct api_response *resp);

/* True when the request's body should be streamed to a file (image upload). */
bool api_route_wants_upload(const char *method, const char *path);
void api_dispatch(struct agent *a, const struct api_request *req, struct api_response *resp);
int api_status_for(const struct ferry_err *err);

/* ---- client ---- */
struct api_client;

/* host: "unix:///path", "tcp://addr:port", "https://addr:port", or NULL for
 * $FERRY_HOST, else the default socket. */
int api_client_new(const char *host, struct api_client **out, struct ferry_err *err);
/* Bearer token for TCP agents, and a CA file to verify an HTTPS agent. */
void api_client_set_token(struct api_client *c, const char *token);
void api_client_set_ca(struct api_client *c, const char *ca_file);
/* Per-request timeout in seconds (0: none, the default). */
void api_client_set_timeout(struct api_client *c, long seconds);
/* Called during uploads with the bytes sent so far and the total. */
typedef void (*api_progress_fn)(void *ud, uint64_t sent, uint64_t total);
void api_client_set_progress(struct api_client *c, api_progress_fn fn, void *ud);
/* Uploads a file with method PUT or POST. */
int api_upload_method(struct api_client *c, const char *method, const char *path,
                      const char *file, json_t **out, struct ferry_err *err);
void api_client_free(struct api_client *c);
const char *api_client_host(struct api_client *c);
/* Sends a request with an optional JSON body; *out gets the parsed reply.
 * HTTP errors become a ferry_err carrying the agent's message. */
int api_call(struct api_client *c, const char *method, const char *path, json_t *body,
             json_t **out, struct ferry_err *err);
/* Uploads a file as the body (PUT/POST, application/octet-stream). */
int api_upload(struct api_client *c, const char *path, const char *file, json_t **out,
               struct ferry_err *err);
/* GET with a raw text reply. */
int api_get_raw(struct api_client *c, const char *path, char **out, size_t *len,
                struct ferry_err *err);
/* URL-escapes s (malloc'd). */
char *api_escape(const char *s);
