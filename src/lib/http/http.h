/* HTTP for ferry's daemons and clients, independent of what they serve: a
 * libmicrohttpd server (unix socket and TCP, bearer token, TLS, limits), a
 * table router, and the libcurl client. JSON bodies; every error reply is
 *   {"status": "error", "message": "<thing>: <cause>"}
 * with the 4xx/5xx status of the error's class (http_status_for). */
#pragma once
#include <jansson.h>
#include <signal.h>
#include <stdbool.h>
#include <sys/types.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "util/err.h"

/* ---- server ---- */
struct http_server;
struct http_request;
struct http_response;

/* Where a request's body goes as it comes (an interactive session's input):
 * write returns < 0 when nothing more can go (the rest is dropped); end is
 * called once, complete when the whole body came. */
struct http_sink {
  int (*write)(void *cls, const char *data, size_t n);
  void (*end)(void *cls, bool complete);
  void *cls;
};

struct http_server_options {
  /* who answers */
  void (*dispatch)(void *ctx, const struct http_request *req, struct http_response *resp);
  /* which requests' bodies are streamed to a file (uploads) */
  bool (*wants_upload)(const char *method, const char *path);
  /* which go to a sink, as they come: 0 with *sink set, 1 when this
   * request is not one, < 0 with err (the answer); the answer of a sink's
   * request is {"status": "success"} once its body ended. Such a
   * connection has no idle timeout. */
  int (*open_sink)(void *ctx, const char *method, const char *path, struct http_sink *sink,
                   struct ferry_err *err);
  void *ctx;
  const char *upload_dir;  /* where uploads are staged */
  const char *unix_path;   /* listen on this unix socket (mode 0660), no token needed */
  const char *listen;      /* also listen on TCP "ADDR:PORT" (NULL: no) */
  const char *token;       /* bearer token required on TCP (NULL: none; GET /health is always open) */
  const char *tls_cert;    /* PEM files: serve HTTPS on TCP when both are given */
  const char *tls_key;
  uint64_t max_upload;     /* bytes of an upload; 0: 64 GiB */
};

/* Constant-time check of an "Authorization" header value against a token. */
bool http_token_ok(const char *header, const char *token);
int http_server_start(const struct http_server_options *o, struct http_server **out,
                      struct ferry_err *err);
void http_server_stop(struct http_server *s);

struct http_request {
  const char *method;
  const char *peer;        /* client IPv4 address on TCP, "" on the unix socket */
  const char *local;       /* our own "ADDR:PORT" of this TCP connection, "" on the unix socket */
  const char *path;        /* without query */
  const char *body;        /* JSON body, NUL-terminated (may be empty) */
  size_t body_len;
  const char *upload_path; /* the uploaded file, when wants_upload said so */
  /* query parameters */
  const char *(*query)(void *ctx, const char *key);
  void *query_ctx;
  /* a request header by name (case-insensitive), or NULL; same ctx */
  const char *(*header)(void *ctx, const char *key);
};

struct http_response {
  int status;
  json_t *json;       /* reply body, or */
  char *raw;          /* a raw text body (logs) */
  size_t raw_len;
  /* or a body produced as it comes (chunked): stream fills buf with up to
   * max bytes, blocking until it has some; returns how many, or -1 at the
   * end. conn_fd is the client's connection, to poll for its hanging up
   * (POLLRDHUP) while nothing comes. stream_free is called once the body
   * ended or the client went (then before the end). */
  ssize_t (*stream)(void *cls, int conn_fd, char *buf, size_t max);
  void (*stream_free)(void *cls);
  void *stream_cls;
  const char *stream_type; /* its Content-Type */
};

/* ---- routing (route.c) ---- */
/* A route: a method and a path pattern of segments, each a literal, "{}"
 * (any one segment, handed to the handler in args) or, last, "{*}" (the
 * rest of the path, slashes included: image references). Empty segments
 * ("//", a trailing "/") do not count. */
#define HTTP_ROUTE_ARGS 4
typedef void (*http_handler)(void *ctx, const struct http_request *req, char **args,
                             struct http_response *resp);
struct http_route {
  const char *method;
  const char *pattern;
  http_handler fn;
};
/* Answers req with the first route whose pattern and method match; a path
 * that some route matches under another method gets 405. Returns false
 * (resp untouched) when no pattern matches the path. */
bool http_route(const struct http_route *routes, size_t n, void *ctx,
                const struct http_request *req, struct http_response *resp);
/* Replies: a JSON body (taken), or the error's status and message. */
void http_reply(struct http_response *resp, int status, json_t *body);
void http_reply_err(struct http_response *resp, const struct ferry_err *err);
/* 200 with j (or {"status": "success"}) when r >= 0, else the error. */
void http_reply_result(struct http_response *resp, int r, json_t *j, const struct ferry_err *err);
/* The request's JSON body ({} when empty). */
int http_body(const struct http_request *req, json_t **out, struct ferry_err *err);
/* ?key=1|true|yes */
bool http_query_bool(const struct http_request *req, const char *key);
/* The HTTP status for an error: its class (400, 404, 409, 401, 503, 500),
 * 507 for a full disk. */
int http_status_for(const struct ferry_err *err);

/* ---- client ---- */
struct http_client;

/* host: "unix:///path", "tcp://addr:port", "https://addr:port", or NULL for
 * $FERRY_HOST, else the default socket. */
int http_client_new(const char *host, struct http_client **out, struct ferry_err *err);
/* Bearer token for TCP peers, and a CA file to verify an HTTPS peer. */
void http_client_set_token(struct http_client *c, const char *token);
void http_client_set_ca(struct http_client *c, const char *ca_file);
/* Per-request timeout in seconds (0: none, the default). */
void http_client_set_timeout(struct http_client *c, long seconds);
/* What c talks to, as an error that cannot reach it names it (default:
 * "the ferry agent", hint "is ferryd running?"; hint NULL: none). */
void http_client_set_peer(struct http_client *c, const char *what, const char *hint);
/* One more header line ("Name: value") on every request of c (NULL: none). */
void http_client_set_header(struct http_client *c, const char *line);
/* Connect to addr whenever the URL names host name at port (no lookup of
 * its own: the address a caller checked is the one used). */
void http_client_pin(struct http_client *c, const char *name, const char *port, const char *addr);
/* Connections kept open between the requests of any client that uses the
 * pool (any thread): a caller that sends many short requests to a few peers
 * skips the connect each time. */
struct http_pool;
struct http_pool *http_pool_new(void);
void http_pool_free(struct http_pool *p);
/* c's requests take and leave their connections in p (NULL: their own). */
void http_client_set_pool(struct http_client *c, struct http_pool *p);
/* Called during uploads with the bytes sent so far and the total. */
typedef void (*http_progress_fn)(void *ud, uint64_t sent, uint64_t total);
void http_client_set_progress(struct http_client *c, http_progress_fn fn, void *ud);
/* Uploads a file with method PUT or POST. */
int http_upload_method(struct http_client *c, const char *method, const char *path,
                       const char *file, json_t **out, struct ferry_err *err);
void http_client_free(struct http_client *c);
const char *http_client_host(struct http_client *c);
/* Sends a request with an optional JSON body; *out gets the parsed reply.
 * HTTP errors become a ferry_err of the status's class carrying the peer's
 * message; a peer that cannot be reached is FERRY_E_UNAVAILABLE with
 * -ECONNREFUSED, one that does not answer in time -ETIMEDOUT. */
int http_call(struct http_client *c, const char *method, const char *path, json_t *body,
              json_t **out, struct ferry_err *err);
/* Uploads a file as the body (PUT/POST, application/octet-stream). */
int http_upload(struct http_client *c, const char *path, const char *file, json_t **out,
                struct ferry_err *err);
/* GET with a raw text reply. */
/* A request whose answer's body is handed to fn as it comes (fn returns
 * false to stop: then -ECANCELED); *cancel (optional) set, by a signal
 * handler say, ends it the same way within a second. An error answer
 * (4xx/5xx) is an error as with http_call. No timeout. */
typedef bool (*http_stream_fn)(void *ud, const char *data, size_t n);
/* An interactive session's two directions at once: the answer of GET
 * out_path goes to fn as it comes while, when in_path is given, what in_fd
 * has is sent as it comes as the body of POST in_path (chunked; its end
 * ends the body). filter (optional) sees each piece of input in buf (n
 * bytes, room for cap) and returns how many bytes of buf to send (it may
 * hold some back, or add some held before), or -1 to stop everything
 * (then -ECANCELED). tick (optional) runs at least every 200 ms. Ends when
 * the output ends; fn returning false or *cancel end it early
 * (-ECANCELED). */
typedef ssize_t (*http_input_fn)(void *ud, char *buf, size_t n, size_t cap);
int http_duplex(struct http_client *c, const char *out_path, const char *in_path, int in_fd,
                http_stream_fn fn, http_input_fn filter, void (*tick)(void *ud), void *ud,
                volatile sig_atomic_t *cancel, struct ferry_err *err);
int http_stream(struct http_client *c, const char *method, const char *path, json_t *body,
                http_stream_fn fn, void *ud, volatile sig_atomic_t *cancel, struct ferry_err *err);
int http_get_raw(struct http_client *c, const char *path, char **out, size_t *len,
                 struct ferry_err *err);
/* Answers larger than this are refused (bytes). */
#define HTTP_REPLY_MAX (64u << 20)
/* URL-escapes s (malloc'd). */
char *http_escape(const char *s);
