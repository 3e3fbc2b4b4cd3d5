#include <fcntl.h>
#include <microhttpd.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "api/api.h"
#include "util/cleanup.h"
#include "util/fs.h"
#include "util/log.h"

#define MAX_JSON_BODY (4u << 20)

struct api_server {
  struct MHD_Daemon *mhd;
  struct agent *agent;
  int listen_fd;
  char *unix_path;
  uint64_t max_upload;
};

/* Per-request state, kept in MHD's con_cls. */
struct conn {
  bool upload;
  char *body;
  size_t len, cap;
  int fd;
  char *upload_path;
  uint64_t uploaded;
  bool too_large;
  bool write_failed;
};

static void conn_free(struct conn *c)
{
  if (!c)
    return;
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

static enum MHD_Result send_json(struct MHD_Connection *con, int status, json_t *j)
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
  enum MHD_Result ret = MHD_queue_response(con, (unsigned)status, r);
  MHD_destroy_response(r);
  return ret;
}

static enum MHD_Result send_error(struct MHD_Connection *con, int status, const char *msg)
{
  json_t *j = json_pack("{s:s, s:s}", "status", "error", "message", msg);
  enum MHD_Result r = send_json(con, status, j);
  json_decref(j);
  return r;
}

static enum MHD_Result handler(void *cls, struct MHD_Connection *con, const char *url,
                               const char *method, const char *version, const char *upload_data,
                               size_t *upload_data_size, void **con_cls)
{
  (void)version;
  struct api_server *s = cls;
  struct conn *c = *con_cls;
  if (!c) {
    c = calloc(1, sizeof *c);
    if (!c)
      return MHD_NO;
    c->fd = -1;
    c->upload = api_route_wants_upload(method, url);
    if (c->upload) {
      c->upload_path = path_join(s->agent->images.tmp_dir, "upload-XXXXXX");
      c->fd = mkstemp(c->upload_path);
      if (c->fd < 0) {
        free(c->upload_path);
        c->upload_path = NULL;
        c->write_failed = true;
      }
    }
    *con_cls = c;
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
  /* The whole request is here. */
  if (c->too_large)
    return send_error(con, 413,
                      c->upload ? "upload is larger than this agent accepts"
                                : "request body is larger than 4 MiB");
  if (c->write_failed)
    return send_error(con, 507, "cannot store the upload (disk full?)");
  if (c->fd >= 0 && fsync(c->fd) < 0)
    return send_error(con, 507, "cannot store the upload (disk full?)");
  struct api_request req = {.method = method,
                            .path = url,
                            .body = c->body ? c->body : "",
                            .body_len = c->len,
                            .upload_path = c->upload_path,
                            .query = query_get,
                            .query_ctx = con};
  struct api_response resp = {0};
  api_dispatch(s->agent, &req, &resp);
  enum MHD_Result ret;
  if (resp.raw) {
    struct MHD_Response *r =
        MHD_create_response_from_buffer(resp.raw_len, resp.raw, MHD_RESPMEM_MUST_FREE);
    MHD_add_response_header(r, "Content-Type", "text/plain");
    ret = MHD_queue_response(con, (unsigned)resp.status, r);
    MHD_destroy_response(r);
  } else {
    ret = send_json(con, resp.status, resp.json ? resp.json : json_null());
    json_decref(resp.json);
  }
  return ret;
}

int api_server_start(struct agent *a, const struct api_server_options *o, struct api_server **out,
                     struct ferry_err *err)
{
  struct api_server *s = calloc(1, sizeof *s);
  if (!s)
    abort();
  s->agent = a;
  s->listen_fd = -1;
  s->max_upload = o->max_upload ? o->max_upload : (64ull << 30);
  struct sockaddr_un sa = {.sun_family = AF_UNIX};
  if (strlen(o->unix_path) >= sizeof sa.sun_path) {
    free(s);
    return FERRY_INVALID(err, "socket path %s is too long", o->unix_path);
  }
  strcpy(sa.sun_path, o->unix_path);
  _cleanup_free_ char *dir = xstrdup(o->unix_path);
  char *slash = strrchr(dir, '/');
  if (slash && slash != dir) {
    *slash = '\0';
    mkdir_p(dir, 0755, NULL);
  }
  int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) {
    free(s);
    return ferry_err_sys(err, -errno, "socket");
  }
  /* A socket file left by an agent that died is replaced; a live agent is not. */
  if (connect(fd, (struct sockaddr *)&sa, sizeof sa) == 0) {
    close(fd);
    free(s);
    return FERRY_CONFLICT(err, "socket %s: another agent is listening there", o->unix_path);
  }
  unlink(o->unix_path);
  mode_t old = umask(0117);
  int br = bind(fd, (struct sockaddr *)&sa, sizeof sa);
  umask(old);
  if (br < 0 || listen(fd, 64) < 0) {
    int e = -errno;
    close(fd);
    free(s);
    return ferry_err_sys(err, e, "listen on %s", o->unix_path);
  }
  s->listen_fd = fd;
  s->unix_path = xstrdup(o->unix_path);
  s->mhd = MHD_start_daemon(MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_THREAD_PER_CONNECTION |
                                MHD_USE_ERROR_LOG,
                            0, NULL, NULL, handler, s, MHD_OPTION_LISTEN_SOCKET, fd,
                            MHD_OPTION_NOTIFY_COMPLETED, completed, NULL,
                            MHD_OPTION_CONNECTION_TIMEOUT, (unsigned)3600, MHD_OPTION_END);
  if (!s->mhd) {
    close(fd);
    unlink(o->unix_path);
    free(s->unix_path);
    free(s);
    return FERRY_INTERNAL(err, "cannot start the HTTP server on %s", o->unix_path);
  }
  *out = s;
  return 0;
}

void api_server_stop(struct api_server *s)
{
  if (!s)
    return;
  MHD_stop_daemon(s->mhd);
  if (s->listen_fd >= 0)
    close(s->listen_fd);
  if (s->unix_path) {
    unlink(s->unix_path);
    free(s->unix_path);
  }
  free(s);
}
