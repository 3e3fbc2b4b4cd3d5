/* The agent's REST/JSON API: a libmicrohttpd server (unix socket or TCP) and
 * the libcurl client the CLI uses. Every error reply is
 *   {"status": "error", "message": "<thing>: <cause>"}
 * with a 4xx/5xx status that matches the error class. */
#pragma once
#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>

#include "agent/agent.h"
#include "util/err.h"

/* ---- server ---- */
struct api_server;

struct api_server_options {
  const char *unix_path;   /* listen on this unix socket (mode 0660) */
  uint64_t max_upload;     /* bytes of an image upload; 0: 64 GiB */
};

int api_server_start(struct agent *a, const struct api_server_options *o, struct api_server **out,
                     struct ferry_err *err);
void api_server_stop(struct api_server *s);

/* ---- routing (routes.c), used by the server ---- */
struct api_request {
  const char *method;
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

/* True when the request's body should be streamed to a file (image upload). */
bool api_route_wants_upload(const char *method, const char *path);
void api_dispatch(struct agent *a, const struct api_request *req, struct api_response *resp);
int api_status_for(const struct ferry_err *err);

/* ---- client ---- */
struct api_client;

/* host: "unix:///path", "tcp://addr:port", or NULL for $FERRY_HOST, else the default socket. */
int api_client_new(const char *host, struct api_client **out, struct ferry_err *err);
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
