/* The HTTP server (http.h): libmicrohttpd daemons on a unix socket (trusted)
 * and on TCP (bearer token, optional TLS, connection limits), JSON bodies up
 * to 4 MiB, uploads streamed to a file. What answers is the caller's. */
#include <ctype.h>
#include <arpa/inet.h>
#include <fcntl.h>
#include <microhttpd.h>
#include <netinet/in.h>
#include <openssl/crypto.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "http/gate.h"
#include "http/http.h"
#include "util/cleanup.h"
#include "util/fs.h"
#include "util/log.h"

#define MAX_JSON_BODY (4u << 20)

struct http_server;

/* One listening daemon: the unix socket (trusted) or TCP (token). */
struct listener {
  struct http_server *srv;
  struct MHD_Daemon *mhd;
  struct gate *gate; /* TCP: accepts, and passes on complete requests */
  int fd;
  bool need_token;
};

struct http_server {
  struct listener local, tcp;
  void (*dispatch)(void *ctx, const struct http_request *req, struct http_response *resp);
  bool (*wants_upload)(const char *method, const char *path);
  int (*open_sink)(void *ctx, const char *method, const char *path, struct http_sink *sink,
                   struct ferry_err *err);
  void *ctx;
  char *upload_dir;
  char *unix_path;
  char *token;
  char *cert_pem, *key_pem;
  uint64_t max_upload;
};

bool http_token_ok(const char *header, const char *token)
{
  if (!token || !*token)
    return true;
  if (!header || strncasecmp(header, "Bearer ", 7) != 0)
    return false;
  const char *got = header + 7;
  size_t gl = strlen(got), tl = strlen(token);
  /* Compare over the token's length whatever was sent, then the lengths. */
  char *padded = calloc(1, tl + 1);
  if (!padded)
    return false;
  memcpy(padded, got, gl < tl ? gl : tl);
  bool same = CRYPTO_memcmp(padded, token, tl) == 0;
  free(padded);
  return same && gl == tl;
}

/* Per-request state, kept in MHD's con_cls. */
struct conn {
  bool rejected;
  bool ignore_body; /* an open GET /health: any body is dropped unread */
  bool upload;
  char *body;
  size_t len, cap;
  int fd;
  char *upload_path;
  uint64_t uploaded;
  bool too_large;
  bool write_failed;
  int write_errno;  /* why (0: unknown) */
  /* a body that goes to a sink as it comes */
  bool sinking, sink_broken, sink_failed;
  struct http_sink sink;
  struct ferry_err sink_err;
};

static void conn_free(struct conn *c)
{
  if (!c)
    return;
  if (c->sinking)
    c->sink.end(c->sink.cls, false); /* the connection went before the body's end */
  free(c->body);
  if (c->fd >= 0)
    close(c->fd);
  if (c->upload_path) {
    unlink(c->upload_path);
    free(c->upload_path);
  }
  free(c);
}

static void completed(void *cls, struct MHD_Connection *connection, void **con_cls,
                      enum MHD_RequestTerminationCode toe)
{
  (void)cls;
  (void)connection;
  (void)toe;
  conn_free(*con_cls);
  *con_cls = NULL;
}

static const char *query_get(void *ctx, const char *key)
{
  return MHD_lookup_connection_value(ctx, MHD_GET_ARGUMENT_KIND, key);
}

static const char *header_get(void *ctx, const char *key)
{
  return MHD_lookup_connection_value(ctx, MHD_HEADER_KIND, key);
}

static enum MHD_Result send_json_as(struct MHD_Connection *con, int status, json_t *j, bool close_after)
{
  char *s = json_dumps(j, JSON_COMPACT);
  size_t n = s ? strlen(s) : 0;
  char *withnl = malloc(n + 2);
  if (!withnl)
    abort();
  memcpy(withnl, s ? s : "", n);
  withnl[n] = '\n';
  withnl[n + 1] = '\0';
  free(s);
  struct MHD_Response *r = MHD_create_response_from_buffer(n + 1, withnl, MHD_RESPMEM_MUST_FREE);
  MHD_add_response_header(r, "Content-Type", "application/json");
  if (close_after)
    MHD_add_response_header(r, MHD_HTTP_HEADER_CONNECTION, "close");
  enum MHD_Result ret = MHD_queue_response(con, (unsigned)status, r);
  MHD_destroy_response(r);
  return ret;
}


static enum MHD_Result send_error_as(struct MHD_Connection *con, int status, const char *msg,
                                     bool close_after)
{
  json_t *j = json_pack("{s:s, s:s}", "status", "error", "message", msg);
  enum MHD_Result r = send_json_as(con, status, j, close_after);
  json_decref(j);
  return r;
}

static enum MHD_Result send_error(struct MHD_Connection *con, int status, const char *msg)
{
  return send_error_as(con, status, msg, false);
}

/* A streamed body: the route's producer, called from the connection's own
 * thread (one per connection), so it may block. */
struct stream_ctx {
  ssize_t (*read)(void *cls, int conn_fd, char *buf, size_t max);
  void (*free)(void *cls);
  void *cls;
  int conn_fd;
};

static ssize_t stream_read(void *cls, uint64_t pos, char *buf, size_t max)
{
  (void)pos;
  struct stream_ctx *sc = cls;
  ssize_t n = sc->read(sc->cls, sc->conn_fd, buf, max);
  return n < 0 ? MHD_CONTENT_READER_END_OF_STREAM : n;
}

static void stream_done(void *cls)
{
  struct stream_ctx *sc = cls;
  if (sc->free)
    sc->free(sc->cls);
  free(sc);
}

static enum MHD_Result handler(void *cls, struct MHD_Connection *con, const char *url,
                               const char *method, const char *version, const char *upload_data,
                               size_t *upload_data_size, void **con_cls)
{
  (void)version;
  struct listener *ls = cls;
  struct http_server *s = ls->srv;
  struct conn *c = *con_cls;
  if (!c) {
    /* Refuse before reading any body: a wrong token changes nothing. Only
     * GET /health is open, and its body (if any) is never read. */
    bool open_health = strcmp(url, "/health") == 0 &&
                       (strcmp(method, "GET") == 0 || strcmp(method, "HEAD") == 0);
    if (ls->need_token && !open_health &&
        !http_token_ok(MHD_lookup_connection_value(con, MHD_HEADER_KIND, "Authorization"),
                      s->token)) {
      c = calloc(1, sizeof *c);
      if (!c)
        return MHD_NO;
      c->fd = -1;
      c->rejected = true;
      *con_cls = c;
      /* and the connection closes: no caller without the token keeps one */
      return send_error_as(con, 401, "missing or wrong bearer token", true);
    }
    c = calloc(1, sizeof *c);
    if (!c)
      return MHD_NO;
    c->fd = -1;
    c->ignore_body = open_health;
    int sr = s->open_sink && !open_health ? s->open_sink(s->ctx, method, url, &c->sink, &c->sink_err) : 1;
    if (sr == 0) {
      c->sinking = true;
      MHD_set_connection_option(con, MHD_CONNECTION_OPTION_TIMEOUT, 0u);
      *con_cls = c;
      return MHD_YES;
    }
    if (sr < 0) {
      c->sink_failed = true;
      *con_cls = c;
      return MHD_YES;
    }
    c->upload = s->wants_upload && s->upload_dir && s->wants_upload(method, url);
    if (c->upload) {
      c->upload_path = path_join(s->upload_dir, "upload-XXXXXX");
      c->fd = mkstemp(c->upload_path);
      if (c->fd < 0) {
        c->write_errno = errno;
        free(c->upload_path);
        c->upload_path = NULL;
        c->write_failed = true;
      }
    }
    *con_cls = c;
    return MHD_YES;
  }
  if (c->sinking || c->sink_failed) {
    if (*upload_data_size > 0) {
      if (c->sinking && !c->sink_broken &&
          c->sink.write(c->sink.cls, upload_data, *upload_data_size) < 0)
        c->sink_broken = true;
      *upload_data_size = 0;
      return MHD_YES;
    }
    if (c->sink_failed)
      return send_error(con, http_status_for(&c->sink_err), c->sink_err.msg);
    c->sinking = false;
    c->sink.end(c->sink.cls, !c->sink_broken);
    json_t *ok = json_pack("{s:s}", "status", "success");
    enum MHD_Result ret = send_json_as(con, 200, ok, false);
    json_decref(ok);
    return ret;
  }
  if (c->rejected || c->ignore_body) {
    if (c->ignore_body && *upload_data_size == 0)
      goto complete;
    *upload_data_size = 0; /* the body of a refused request is dropped unread */
    return MHD_YES;
  }
  if (*upload_data_size > 0) {
    size_t n = *upload_data_size;
    *upload_data_size = 0;
    if (c->upload) {
      c->uploaded += n;
      if (c->uploaded > s->max_upload)
        c->too_large = true;
      const char *p = upload_data;
      while (!c->too_large && !c->write_failed && n > 0) {
        ssize_t w = write(c->fd, p, n);
        if (w < 0) {
          if (errno == EINTR)
            continue;
          c->write_failed = true;
          c->write_errno = errno;
          break;
        }
        p += w;
        n -= (size_t)w;
      }
    } else {
      if (c->len + n > MAX_JSON_BODY) {
        c->too_large = true;
      } else {
        if (c->len + n + 1 > c->cap) {
          size_t nc = c->cap ? c->cap : 4096;
          while (nc < c->len + n + 1)
            nc *= 2;
          char *nb = realloc(c->body, nc);
          if (!nb)
            return MHD_NO;
          c->body = nb;
          c->cap = nc;
        }
        memcpy(c->body + c->len, upload_data, n);
        c->len += n;
        c->body[c->len] = '\0';
      }
    }
    return MHD_YES;
  }
complete:
  /* The whole request is here. */
  if (c->too_large)
    return send_error(con, 413,
                      c->upload ? "upload is larger than this agent accepts"
                                : "request body is larger than 4 MiB");
  /* No fsync: an upload is a temporary file its handler reads at once
   * and removes (a full disk fails the write above, ext4 and tmpfs
   * reserve the blocks there); an fsync cost a journal commit (10-15 ms
   * here) on every part of a migration, inside the pause for its last. */
  if (c->write_failed) {
    char msg[160];
    int e = c->write_errno;
    snprintf(msg, sizeof msg, "cannot store the upload: %s",
             e == ENOSPC || e == EDQUOT ? "No space left on device (the disk is full)"
             : e                        ? strerror(e)
                                        : "write failed");
    return send_error(con, 507, msg);
  }
  char peer[64] = "";
  const union MHD_ConnectionInfo *ci =
      MHD_get_connection_info(con, MHD_CONNECTION_INFO_CLIENT_ADDRESS);
  if (ci && ci->client_addr && ci->client_addr->sa_family == AF_INET)
    inet_ntop(AF_INET, &((const struct sockaddr_in *)ci->client_addr)->sin_addr, peer, sizeof peer);
  char local[64] = "";
  const union MHD_ConnectionInfo *fdi = MHD_get_connection_info(con, MHD_CONNECTION_INFO_CONNECTION_FD);
  struct sockaddr_in la;
  socklen_t lal = sizeof la;
  if (peer[0] && fdi && getsockname(fdi->connect_fd, (struct sockaddr *)&la, &lal) == 0 &&
      la.sin_family == AF_INET) {
    char ip[INET_ADDRSTRLEN];
    inet_ntop(AF_INET, &la.sin_addr, ip, sizeof ip);
    snprintf(local, sizeof local, "%s:%u", ip, (unsigned)ntohs(la.sin_port));
  }
  struct http_request req = {.method = method,
                            .peer = peer,
                            .local = local,
                            .path = url,
                            .body = c->body ? c->body : "",
                            .body_len = c->len,
                            .upload_path = c->upload_path,
                            .query = query_get,
                            .query_ctx = con,
                            .header = header_get};
  struct http_response resp = {0};
  s->dispatch(s->ctx, &req, &resp);
  enum MHD_Result ret;
  if (resp.stream) {
    struct stream_ctx *sc = malloc(sizeof *sc);
    if (!sc)
      abort();
    *sc = (struct stream_ctx){resp.stream, resp.stream_free, resp.stream_cls,
                              fdi ? fdi->connect_fd : -1};
    struct MHD_Response *r =
        MHD_create_response_from_callback(MHD_SIZE_UNKNOWN, 64 * 1024, stream_read, sc, stream_done);
    MHD_add_response_header(r, "Content-Type", resp.stream_type ? resp.stream_type
                                                                : "application/octet-stream");
    ret = MHD_queue_response(con, (unsigned)(resp.status ? resp.status : 200), r);
    MHD_destroy_response(r);
  } else if (resp.raw) {
    struct MHD_Response *r =
        MHD_create_response_from_buffer(resp.raw_len, resp.raw, MHD_RESPMEM_MUST_FREE);
    MHD_add_response_header(r, "Content-Type", "text/plain");
    ret = MHD_queue_response(con, (unsigned)resp.status, r);
    MHD_destroy_response(r);
  } else {
    ret = send_json_as(con, resp.status, resp.json ? resp.json : json_null(),
                       ls->need_token && c->ignore_body);
    json_decref(resp.json);
  }
  return ret;
}

/* Limits of the TCP listener, where anyone may connect: a flood of slow or
 * idle connections from one address is cut off early, and the total stays
 * well below the agent's file descriptors, so the unix socket (its own
 * daemon and threads) keeps answering local callers. */
#define TCP_MAX_CONNECTIONS 256
#define TCP_MAX_PER_IP 32
#define TCP_IDLE_TIMEOUT_S 30
#define LOCAL_MAX_CONNECTIONS 512
#define LOCAL_IDLE_TIMEOUT_S 3600

/* Percent-decoding of the path and the query, in place, as libmicrohttpd
 * does, except that "%00" stays as it is: decoded, it would end the C
 * string there ("web%00x" would name "web"); kept, the name is refused as
 * what it is. */
static size_t unescape_keep_nul(void *cls, struct MHD_Connection *c, char *s)
{
  (void)cls, (void)c;
  char *w = s;
  for (const char *r = s; *r;) {
    if (r[0] == '%' && isxdigit((unsigned char)r[1]) && isxdigit((unsigned char)r[2])) {
      char hex[3] = {r[1], r[2], 0};
      char v = (char)strtol(hex, NULL, 16);
      if (v != 0) {
        *w++ = v;
        r += 3;
        continue;
      }
    }
    *w++ = *r++;
  }
  *w = '\0';
  return (size_t)(w - s);
}

/* libmicrohttpd's own messages (a client that went mid-answer, a malformed
 * request) into the log, at debug: what a caller must know comes back to it
 * as an answer, and a daemon that cannot start is an error of its own. */
static void mhd_log(void *cls, const char *fmt, va_list ap)
{
  (void)cls;
  char msg[512];
  vsnprintf(msg, sizeof msg, fmt, ap);
  msg[strcspn(msg, "\n")] = '\0';
  log_debug("http", "%s", msg);
}

static struct MHD_Daemon *start_mhd(struct listener *l, unsigned flags, bool tls)
{
  struct http_server *s = l->srv;
  unsigned limit = l->need_token ? TCP_MAX_CONNECTIONS : LOCAL_MAX_CONNECTIONS;
  unsigned per_ip = l->need_token ? TCP_MAX_PER_IP : 0;
  unsigned idle = l->need_token ? TCP_IDLE_TIMEOUT_S : LOCAL_IDLE_TIMEOUT_S;
  struct MHD_OptionItem opts[12];
  size_t n = 0;
#define OPT(o, v, p) opts[n++] = (struct MHD_OptionItem){(o), (intptr_t)(v), (p)}
  /* TCP: the gate accepts; MHD gets the connections whose headers are in */
  if (l->need_token)
    flags |= MHD_USE_NO_LISTEN_SOCKET | MHD_USE_ITC;
  else
    OPT(MHD_OPTION_LISTEN_SOCKET, l->fd, NULL);
  OPT(MHD_OPTION_NOTIFY_COMPLETED, completed, NULL);
  OPT(MHD_OPTION_EXTERNAL_LOGGER, mhd_log, NULL);
  OPT(MHD_OPTION_UNESCAPE_CALLBACK, unescape_keep_nul, NULL);
  OPT(MHD_OPTION_CONNECTION_TIMEOUT, idle, NULL);
  OPT(MHD_OPTION_CONNECTION_LIMIT, limit, NULL);
  OPT(MHD_OPTION_PER_IP_CONNECTION_LIMIT, per_ip, NULL);
  if (tls) {
    flags |= MHD_USE_TLS;
    OPT(MHD_OPTION_HTTPS_MEM_CERT, 0, s->cert_pem);
    OPT(MHD_OPTION_HTTPS_MEM_KEY, 0, s->key_pem);
  }
  OPT(MHD_OPTION_END, 0, NULL);
#undef OPT
  return MHD_start_daemon(flags, 0, NULL, NULL, handler, l, MHD_OPTION_ARRAY, opts, MHD_OPTION_END);
}

static int open_unix(struct http_server *s, const char *path, struct ferry_err *err)
{
  struct sockaddr_un sa = {.sun_family = AF_UNIX};
  if (strlen(path) >= sizeof sa.sun_path)
    return FERRY_INVALID(err, "socket path %s is too long", path);
  strcpy(sa.sun_path, path);
  _cleanup_free_ char *dir = xstrdup(path);
  char *slash = strrchr(dir, '/');
  if (slash && slash != dir) {
    *slash = '\0';
    mkdir_p(dir, 0755, NULL);
  }
  int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0)
    return ferry_err_sys(err, -errno, "socket");
  /* A socket file left by an agent that died is replaced; a live agent is not. */
  if (connect(fd, (struct sockaddr *)&sa, sizeof sa) == 0) {
    close(fd);
    return FERRY_CONFLICT(err, "socket %s: another agent is listening there", path);
  }
  unlink(path);
  mode_t old = umask(0117);
  int br = bind(fd, (struct sockaddr *)&sa, sizeof sa);
  umask(old);
  if (br < 0 || listen(fd, 64) < 0) {
    int e = -errno;
    close(fd);
    return ferry_err_sys(err, e, "listen on %s", path);
  }
  s->local.fd = fd;
  s->unix_path = xstrdup(path);
  return 0;
}

static int open_tcp(struct http_server *s, const char *addr, struct ferry_err *err)
{
  _cleanup_free_ char *a = xstrdup(addr);
  char *colon = strrchr(a, ':');
  if (!colon)
    return FERRY_INVALID(err, "listen address \"%s\": expected ADDR:PORT", addr);
  *colon = '\0';
  char *end;
  long port = strtol(colon + 1, &end, 10);
  struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
  if (*end || port <= 0 || port > 65535 ||
      inet_pton(AF_INET, *a ? a : "0.0.0.0", &sa.sin_addr) != 1)
    return FERRY_INVALID(err, "listen address \"%s\": expected IPv4-ADDR:PORT", addr);
  int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0)
    return ferry_err_sys(err, -errno, "socket");
  int one = 1;
  setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  if (bind(fd, (struct sockaddr *)&sa, sizeof sa) < 0 || listen(fd, 64) < 0) {
    int e = -errno;
    close(fd);
    return ferry_err_sys(err, e, "listen on %s", addr);
  }
  s->tcp.fd = fd;
  return 0;
}

static void server_free(struct http_server *s)
{
  gate_stop(s->tcp.gate);
  if (s->local.mhd)
    MHD_stop_daemon(s->local.mhd);
  if (s->tcp.mhd)
    MHD_stop_daemon(s->tcp.mhd);
  if (s->local.fd >= 0)
    close(s->local.fd);
  if (s->tcp.fd >= 0)
    close(s->tcp.fd);
  if (s->unix_path) {
    unlink(s->unix_path);
    free(s->unix_path);
  }
  free(s->token);
  free(s->upload_dir);
  free(s->cert_pem);
  free(s->key_pem);
  free(s);
}

int http_server_start(const struct http_server_options *o, struct http_server **out,
                      struct ferry_err *err)
{
  struct http_server *s = calloc(1, sizeof *s);
  if (!s)
    abort();
  s->dispatch = o->dispatch;
  s->wants_upload = o->wants_upload;
  s->open_sink = o->open_sink;
  s->ctx = o->ctx;
  s->upload_dir = o->upload_dir ? xstrdup(o->upload_dir) : NULL;
  s->local = (struct listener){.srv = s, .fd = -1};
  s->tcp = (struct listener){.srv = s, .fd = -1, .need_token = true};
  s->max_upload = o->max_upload ? o->max_upload : (64ull << 30);
  s->token = o->token ? xstrdup(o->token) : NULL;
  unsigned flags = MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_THREAD_PER_CONNECTION | MHD_USE_ERROR_LOG;
  int r = 0;
  bool tls = o->tls_cert && o->tls_key;
  if ((o->tls_cert != NULL) != (o->tls_key != NULL)) {
    r = FERRY_INVALID(err, "TLS needs both a certificate and a key");
    goto fail;
  }
  if (tls && ((r = read_file(o->tls_cert, 1u << 20, &s->cert_pem, NULL, err)) < 0 ||
              (r = read_file(o->tls_key, 1u << 20, &s->key_pem, NULL, err)) < 0))
    goto fail;
  if (!o->unix_path) {
    s->local.fd = -1;
  } else if ((r = open_unix(s, o->unix_path, err)) < 0)
    goto fail;
  if (o->unix_path && !(s->local.mhd = start_mhd(&s->local, flags, false))) {
    r = FERRY_INTERNAL(err, "cannot start the HTTP server on %s", o->unix_path);
    goto fail;
  }
  if (o->listen) {
    if ((r = open_tcp(s, o->listen, err)) < 0)
      goto fail;
    if (!(s->tcp.mhd = start_mhd(&s->tcp, flags, tls))) {
      r = FERRY_INTERNAL(err, "cannot start the %s server on %s (bad certificate or key?)",
                         tls ? "HTTPS" : "HTTP", o->listen);
      goto fail;
    }
    if ((r = gate_start(s->tcp.fd, s->tcp.mhd, tls, &s->tcp.gate, err)) < 0)
      goto fail;
  }
  *out = s;
  return 0;
fail:
  server_free(s);
  return r;
}

void http_server_stop(struct http_server *s)
{
  if (s)
    server_free(s);
}
