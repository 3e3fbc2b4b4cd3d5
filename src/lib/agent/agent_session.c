/* Interactive sessions: `ferry exec -i/-t` (a runc exec of ours, with a
 * terminal or a stdin pipe) and `ferry attach` / `run -it` (a connection to
 * the container's ferry-shim, which owns its terminal or stdin). A client
 * makes one (agent_session_exec/attach), then reads its output stream (the
 * frames of util/frame.h, ending with FRAME_EXIT), sends its input as the
 * body of another request, and its terminal's size. A session lives until
 * its output stream ends; one never read goes after SESSION_UNREAD_S.
 *
 * An exec's command starts when its output is first read, on the thread
 * that reads it: its ferry-shim --exec dies with the thread that started it
 * (a parent-death signal), and that thread lives as long as the session. */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "agent/agent_private.h"
#include "util/cleanup.h"
#include "util/fs.h"
#include "util/json.h"
#include "util/frame.h"
#include "util/strv.h"
#include "util/usock.h"

#define SESSION_UNREAD_S 60
#define SESSIONS_MAX 64

struct session {
  struct session *next;
  struct agent *a;
  char id[33];
  int refs;          /* under sess_lock */
  bool attach;       /* a shim's client (else our own runc exec) */
  bool tty, in;
  bool streaming;    /* its output is being read */
  bool started;      /* exec: its command started (under wlock) */
  bool ended;        /* its output ended */
  uint64_t made_ms;
  /* exec */
  struct exec_proc p;
  json_t *rec;       /* what to start: the container */
  char **cmd, **env;
  unsigned flags;
  uint16_t rows, cols; /* its terminal's size at the start */
  char *prelude;     /* exec: podman's message for a command that cannot run */
  int code;          /* ... and its exit code */
  /* attach */
  int sock;
  char *ctr_id;
  /* input: attach writes frames to sock, exec to in_fd */
  pthread_mutex_t wlock;
  int in_fd;
  bool out_open, err_open;
  bool exited;          /* exec: its command ended; what is left in the pipes is read */
  uint64_t deadline_ms; /* exec: killed when its output is still read then (0: never) */
};

static pthread_mutex_t sess_lock = PTHREAD_MUTEX_INITIALIZER;
static struct session *sessions;

static void session_destroy(struct session *s)
{
  if (!s->attach && (s->p.runc_pid > 0 || s->p.out_fd >= 0))
    runc_exec_end(&s->p, !s->ended);
  if (s->sock >= 0)
    close(s->sock);
  if (s->in_fd >= 0)
    close(s->in_fd);
  free(s->prelude);
  free(s->ctr_id);
  json_decref(s->rec);
  strv_free(s->cmd);
  strv_free(s->env);
  pthread_mutex_destroy(&s->wlock);
  free(s);
}

static void session_unref(struct session *s)
{
  pthread_mutex_lock(&sess_lock);
  bool last = --s->refs == 0;
  pthread_mutex_unlock(&sess_lock);
  if (last)
    session_destroy(s);
}

/* Takes s out of the table (it lives on while referenced). Caller holds
 * sess_lock. */
static void unlink_locked(struct session *s)
{
  for (struct session **pp = &sessions; *pp; pp = &(*pp)->next) {
    if (*pp == s) {
      *pp = s->next;
      s->refs--; /* the table's reference */
      return;
    }
  }
}

/* Adds s (one reference for the table); sessions never read are dropped. */
static int session_add(struct session *s, struct ferry_err *err)
{
  struct session *stale = NULL;
  pthread_mutex_lock(&sess_lock);
  size_t n = 0;
  uint64_t now = now_mono_ms();
  for (struct session *x = sessions, *nx; x; x = nx) {
    nx = x->next;
    if (!x->streaming && now - x->made_ms > SESSION_UNREAD_S * 1000ull) {
      unlink_locked(x);
      if (x->refs == 0) { /* destroyed below, outside the lock */
        x->next = stale;
        stale = x;
      }
      continue;
    }
    n++;
  }
  int r = 0;
  if (n >= SESSIONS_MAX) {
    r = FERRY_CONFLICT(err, "too many open exec/attach sessions (%d): try again later", SESSIONS_MAX);
  } else {
    s->refs = 1;
    s->next = sessions;
    sessions = s;
  }
  pthread_mutex_unlock(&sess_lock);
  while (stale) {
    struct session *nx = stale->next;
    session_destroy(stale);
    stale = nx;
  }
  return r;
}

static struct session *session_get(struct agent *a, const char *id, struct ferry_err *err)
{
  struct session *s = NULL;
  pthread_mutex_lock(&sess_lock);
  for (struct session *x = sessions; x; x = x->next)
    if (x->a == a && strcmp(x->id, id) == 0) {
      s = x;
      s->refs++;
      break;
    }
  pthread_mutex_unlock(&sess_lock);
  if (!s)
    FERRY_NOTFOUND(err, "no session \"%s\" (it ended, or was never read)", id);
  return s;
}

static struct session *session_new(struct agent *a)
{
  struct session *s = calloc(1, sizeof *s);
  if (!s)
    abort();
  s->a = a;
  random_hex(s->id, 32);
  s->made_ms = now_mono_ms();
  s->p = (struct exec_proc){.runc_pid = -1, .out_fd = -1, .err_fd = -1, .in_fd = -1, .resize_fd = -1, .exit_fd = -1};
  s->sock = s->in_fd = -1;
  pthread_mutex_init(&s->wlock, NULL);
  return s;
}

static int size_get(json_t *req, uint16_t *rows, uint16_t *cols, struct ferry_err *err)
{
  json_t *r = json_object_get(req, "rows"), *c = json_object_get(req, "cols");
  *rows = *cols = 0;
  if (!r && !c)
    return 0;
  if (!json_is_integer(r) || !json_is_integer(c) || json_integer_value(r) < 1 ||
      json_integer_value(r) > 10000 || json_integer_value(c) < 1 || json_integer_value(c) > 10000)
    return FERRY_INVALID(err, "\"rows\" and \"cols\" must be integers 1..10000");
  *rows = (uint16_t)json_integer_value(r);
  *cols = (uint16_t)json_integer_value(c);
  return 0;
}

static int write_all(int fd, const void *d, size_t n)
{
  const char *p = d;
  while (n > 0) {
    ssize_t w = write(fd, p, n);
    if (w < 0 && errno == EINTR)
      continue;
    if (w <= 0)
      return -1;
    p += w;
    n -= (size_t)w;
  }
  return 0;
}

static int send_frame(struct session *s, int type, const void *d, size_t n)
{
  char h[FRAME_HDR];
  frame_header(h, type, n);
  pthread_mutex_lock(&s->wlock);
  int r = write_all(s->sock, h, sizeof h);
  if (r == 0 && n)
    r = write_all(s->sock, d, n);
  pthread_mutex_unlock(&s->wlock);
  return r;
}

static void session_size(struct session *s, uint16_t rows, uint16_t cols)
{
  if (!rows || !s->tty)
    return;
  if (s->attach) {
    uint16_t be[2] = {htons(rows), htons(cols)};
    send_frame(s, FRAME_RESIZE, be, sizeof be);
  } else if (s->p.resize_fd >= 0) {
    uint16_t be[2] = {htons(rows), htons(cols)};
    (void)!write(s->p.resize_fd, be, sizeof be);
  }
}

/* A session for an exec request (agent_exec_prepare's checks): its command
 * kept for exec_start, or podman's message when it cannot run there. */
static int exec_session(struct agent *a, const char *ref, json_t *req, unsigned flags,
                        struct session **out, struct ferry_err *err)
{
  _cleanup_strv_ char **cmd = NULL;
  _cleanup_strv_ char **env = NULL;
  _cleanup_json_ json_t *rec = NULL;
  char *msg = NULL;
  int code = 0;
  int r = agent_exec_prepare(a, ref, req, &cmd, &env, &rec, &code, &msg, err);
  if (r < 0)
    return r;
  struct session *s = session_new(a);
  s->tty = flags & EXEC_TTY;
  s->in = flags & EXEC_STDIN;
  if (code) {
    s->prelude = msg;
    s->code = code;
  } else {
    s->rec = TAKE_PTR(rec);
    s->cmd = TAKE_PTR(cmd);
    s->env = TAKE_PTR(env);
    s->flags = flags;
  }
  *out = s;
  return 0;
}

/* An exec's command starts, on the thread that will read its output. */
static int exec_start(struct session *s, struct ferry_err *err)
{
  int r = runc_exec_start(&s->a->rt, s->rec, s->cmd, s->env, s->flags, &s->p, err);
  pthread_mutex_lock(&s->wlock);
  if (r < 0) {
    s->ended = true;
    pthread_mutex_unlock(&s->wlock);
    return r;
  }
  /* the input is the session's: it outlives the command's end */
  s->in_fd = s->p.in_fd;
  s->p.in_fd = -1;
  s->started = true;
  uint16_t rows = s->rows, cols = s->cols;
  pthread_mutex_unlock(&s->wlock);
  s->out_open = true;
  s->err_open = true;
  session_size(s, rows, cols);
  return 0;
}

int agent_session_exec(struct agent *a, const char *ref, json_t *req, json_t **out,
                       struct ferry_err *err)
{
  bool tty, in;
  uint16_t rows, cols;
  struct session *s = NULL;
  int r;
  if (!json_is_object(req))
    return FERRY_INVALID(err, "request body must be a JSON object");
  if ((r = json_get_bool(req, "tty", false, &tty, err)) < 0 ||
      (r = json_get_bool(req, "stdin", false, &in, err)) < 0 ||
      (r = size_get(req, &rows, &cols, err)) < 0 ||
      (r = exec_session(a, ref, req, (tty ? EXEC_TTY : 0) | (in ? EXEC_STDIN : 0), &s, err)) < 0)
    return r;
  s->rows = rows;
  s->cols = cols;
  if ((r = session_add(s, err)) < 0) {
    session_destroy(s);
    return r;
  }
  *out = json_pack("{s:s, s:b}", "session", s->id, "tty", tty);
  return 0;
}

int agent_session_attach(struct agent *a, const char *ref, json_t *req, json_t **out,
                         struct ferry_err *err)
{
  _cleanup_json_ json_t *rec = NULL;
  bool in;
  uint16_t rows, cols;
  int r;
  if (!json_is_object(req))
    return FERRY_INVALID(err, "request body must be a JSON object");
  if ((r = json_get_bool(req, "stdin", true, &in, err)) < 0 ||
      (r = size_get(req, &rows, &cols, err)) < 0 || (r = ctr_find(&a->rt, ref, &rec, err)) < 0)
    return r;
  enum ctr_live st = ctr_refresh(&a->rt, rec);
  if (st != LIVE_RUNNING)
    return FERRY_CONFLICT(err, "container \"%s\" is not running (%s): nothing to attach to", ref, ctr_live_name(st));
  _cleanup_free_ char *path = ctr_path(&a->rt, rec_id(rec), "attach.sock");
  int fd = usock_connect(path);
  if (fd < 0)
    return FERRY_CONFLICT(err, "container \"%s\" cannot be attached to (it was started by an "
                               "older ferry, or restored from a checkpoint before attach came): "
                               "restart it", ref);
  struct session *s = session_new(a);
  s->attach = true;
  s->sock = fd;
  s->tty = rec_tty(rec);
  s->in = in && (rec_stdin(rec) || rec_tty(rec));
  s->ctr_id = xstrdup(rec_id(rec));
  session_size(s, rows, cols);
  if ((r = session_add(s, err)) < 0) {
    session_destroy(s);
    return r;
  }
  *out = json_pack("{s:s, s:b, s:b}", "session", s->id, "tty", s->tty, "stdin", s->in);
  return 0;
}

int agent_session_stream(struct agent *a, const char *id, void **out, struct ferry_err *err)
{
  struct session *s = session_get(a, id, err);
  if (!s)
    return -ENOENT;
  pthread_mutex_lock(&sess_lock);
  bool taken = s->streaming;
  s->streaming = true;
  pthread_mutex_unlock(&sess_lock);
  if (taken) {
    session_unref(s);
    return FERRY_CONFLICT(err, "session \"%s\" is already being read", id);
  }
  int r;
  if (s->rec && (r = exec_start(s, err)) < 0) { /* an exec: its command starts now */
    agent_session_release(s);
    return r;
  }
  *out = s;
  return 0;
}

/* The container's exit code once its shim wrote it (up to 5 s). */
static int attach_exit(struct session *s)
{
  _cleanup_free_ char *f = ctr_path(&s->a->rt, s->ctr_id, "exit.json");
  for (int i = 0; i < 100; i++) { /* bounded: 5 s */
    _cleanup_json_ json_t *j = NULL;
    if (json_load(f, &j, NULL) == 0 && json_is_integer(json_object_get(j, "exit_code")))
      return (int)json_integer_value(json_object_get(j, "exit_code"));
    usleep(50000);
  }
  return -1;
}

static ssize_t exit_frame(char *buf, int code)
{
  char j[64];
  int n = code >= 0 ? snprintf(j, sizeof j, "{\"exit_code\": %d}", code) : snprintf(j, sizeof j, "{}");
  frame_header(buf, FRAME_EXIT, (size_t)n);
  memcpy(buf + FRAME_HDR, j, (size_t)n);
  return FRAME_HDR + n;
}

/* An attach: the shim's frames, passed on as they are, until it closes. */
static ssize_t attach_read(struct session *s, int conn_fd, char *buf, size_t max)
{
  for (;;) {
    struct pollfd pf[2] = {{.fd = s->sock, .events = POLLIN}, {.fd = conn_fd, .events = POLLRDHUP}};
    int n = poll(pf, 2, 1000);
    if (n < 0 && errno != EINTR)
      return -1;
    if (n <= 0)
      continue;
    if (pf[1].revents & (POLLRDHUP | POLLHUP | POLLERR))
      return -1; /* the client went: detached */
    if (!(pf[0].revents & (POLLIN | POLLHUP | POLLERR)))
      continue;
    ssize_t got = read(s->sock, buf, max);
    if (got > 0)
      return got;
    if (got < 0 && (errno == EINTR || errno == EAGAIN))
      continue;
    s->ended = true;
    return exit_frame(buf, attach_exit(s));
  }
}

/* An exec: its stdout and stderr in frames until the command ended (its
 * shim's pidfd) and what it wrote is read, then its exit code. Children it
 * left holding the pipes do not keep the stream open. */
static ssize_t exec_read(struct session *s, int conn_fd, char *buf, size_t max)
{
  size_t room = max - FRAME_HDR;
  int fds[2] = {s->p.out_fd, s->p.err_fd};
  bool *open_[2] = {&s->out_open, &s->err_open};
  while (s->out_open || s->err_open) {
    if (!s->exited) {
      struct pollfd pf[4] = {{.fd = s->out_open ? fds[0] : -1, .events = POLLIN},
                             {.fd = s->err_open ? fds[1] : -1, .events = POLLIN},
                             {.fd = conn_fd, .events = POLLRDHUP},
                             {.fd = s->p.exit_fd, .events = POLLIN}};
      int wait = 1000;
      if (s->deadline_ms) {
        uint64_t now = now_mono_ms();
        if (now >= s->deadline_ms)
          return -1; /* out of time: killed at the release */
        wait = (int)(s->deadline_ms - now < 1000 ? s->deadline_ms - now : 1000);
      }
      int n = poll(pf, 4, wait);
      if (n < 0 && errno != EINTR)
        return -1;
      if (n <= 0)
        continue;
      if (pf[2].revents & (POLLRDHUP | POLLHUP | POLLERR))
        return -1; /* the client went (Ctrl-C): the command is killed at the release */
      if (pf[3].revents & POLLIN) {
        /* what it wrote is in the pipes now: read to their end or empty */
        s->exited = true;
        for (int k = 0; k < 2; k++)
          if (fds[k] >= 0)
            fcntl(fds[k], F_SETFL, fcntl(fds[k], F_GETFL) | O_NONBLOCK);
      }
    }
    for (int k = 0; k < 2; k++) {
      if (!*open_[k])
        continue;
      ssize_t got = read(fds[k], buf + FRAME_HDR, room);
      if (got > 0) {
        frame_header(buf, k ? FRAME_STDERR : FRAME_STDOUT, (size_t)got);
        return FRAME_HDR + got;
      }
      if (got < 0 && errno == EINTR)
        continue;
      if (got < 0 && errno == EAGAIN && !s->exited)
        continue;
      if (got == 0 || s->exited || (got < 0 && errno != EAGAIN))
        *open_[k] = false;
    }
  }
  s->ended = true;
  if (s->p.runc_pid > 0)
    s->code = runc_exec_end(&s->p, false);
  return exit_frame(buf, s->code);
}

ssize_t agent_session_read(void *cls, int conn_fd, char *buf, size_t max)
{
  struct session *s = cls;
  if (s->ended)
    return -1;
  if (max < 128)
    return 0; /* called again with more room */
  if (s->prelude) {
    size_t n = strlen(s->prelude);
    n = n < max - FRAME_HDR ? n : max - FRAME_HDR;
    frame_header(buf, FRAME_STDERR, n);
    memcpy(buf + FRAME_HDR, s->prelude, n);
    free(s->prelude);
    s->prelude = NULL;
    return (ssize_t)(FRAME_HDR + n);
  }
  if (s->attach)
    return attach_read(s, conn_fd, buf, max);
  return exec_read(s, conn_fd, buf, max);
}

int agent_ctr_exec_stream(struct agent *a, const char *ref, json_t *req, void **out,
                          struct ferry_err *err)
{
  /* a session of its own, outside the table: started here, on the thread
   * that reads it */
  struct session *s = NULL;
  int r = exec_session(a, ref, req, 0, &s, err);
  if (r < 0)
    return r;
  s->refs = 1;
  s->streaming = true;
  json_t *tj = json_object_get(req, "timeout");
  if (json_is_integer(tj) && json_integer_value(tj) > 0)
    s->deadline_ms = now_mono_ms() + (uint64_t)json_integer_value(tj) * 1000;
  if (s->rec && (r = exec_start(s, err)) < 0) {
    session_destroy(s);
    return r;
  }
  *out = s;
  return 0;
}

void agent_session_release(void *cls)
{
  struct session *s = cls;
  if (!s)
    return;
  if (!s->attach && !s->ended && (s->p.runc_pid > 0 || s->p.out_fd >= 0)) {
    runc_exec_end(&s->p, true); /* the client went before the command ended */
    s->ended = true;
  }
  pthread_mutex_lock(&sess_lock);
  unlink_locked(s);
  pthread_mutex_unlock(&sess_lock);
  session_unref(s);
}

int agent_session_resize(struct agent *a, const char *id, json_t *req, struct ferry_err *err)
{
  uint16_t rows, cols;
  int r = json_is_object(req) ? size_get(req, &rows, &cols, err)
                              : FERRY_INVALID(err, "request body must be a JSON object");
  if (r == 0 && !rows)
    r = FERRY_INVALID(err, "resize needs \"rows\" and \"cols\"");
  if (r < 0)
    return r;
  struct session *s = session_get(a, id, err);
  if (!s)
    return -ENOENT;
  pthread_mutex_lock(&s->wlock);
  bool started = s->started;
  if (!started) { /* for the start */
    s->rows = rows;
    s->cols = cols;
  }
  pthread_mutex_unlock(&s->wlock);
  if (!s->tty)
    r = FERRY_CONFLICT(err, "session \"%s\" has no terminal", id);
  else if (!s->ended && (started || s->attach))
    session_size(s, rows, cols);
  session_unref(s);
  return r;
}

int agent_session_input_open(struct agent *a, const char *id, void **out, struct ferry_err *err)
{
  struct session *s = session_get(a, id, err);
  if (!s)
    return -ENOENT;
  if (!s->in) {
    session_unref(s);
    return FERRY_CONFLICT(err, "session \"%s\" takes no input (use -i)", id);
  }
  *out = s;
  return 0;
}

/* Input that comes before an exec's command started waits for it (as long
 * as a session may go unread). */
static void wait_started(struct session *s)
{
  for (int i = 0; i < SESSION_UNREAD_S * 100; i++) { /* bounded */
    pthread_mutex_lock(&s->wlock);
    bool go = s->started || s->ended || !s->rec;
    pthread_mutex_unlock(&s->wlock);
    if (go)
      return;
    usleep(10000);
  }
}

/* Bytes for the command or the container; -1 when they can go nowhere. */
int agent_session_input(void *cls, const char *data, size_t n)
{
  struct session *s = cls;
  if (s->attach) {
    while (n > 0) {
      size_t k = n < 65536 ? n : 65536;
      if (send_frame(s, FRAME_STDIN, data, k) < 0)
        return -1;
      data += k;
      n -= k;
    }
    return 0;
  }
  wait_started(s);
  while (n > 0) {
    pthread_mutex_lock(&s->wlock);
    int fd = s->in_fd;
    pthread_mutex_unlock(&s->wlock);
    if (fd < 0 || s->ended)
      return -1;
    struct pollfd pf = {.fd = fd, .events = POLLOUT};
    if (poll(&pf, 1, 1000) <= 0)
      continue; /* a command that does not read holds its input back */
    if (pf.revents & (POLLERR | POLLHUP))
      return -1;
    ssize_t w = write(fd, data, n);
    if (w < 0 && errno != EINTR && errno != EAGAIN)
      return -1;
    if (w > 0) {
      data += w;
      n -= (size_t)w;
    }
  }
  return 0;
}

void agent_session_input_end(void *cls, bool complete)
{
  struct session *s = cls;
  if (complete) { /* the client's input ended: so does the command's */
    if (s->attach) {
      send_frame(s, FRAME_CLOSE, NULL, 0);
    } else {
      wait_started(s);
      pthread_mutex_lock(&s->wlock);
      if (s->in_fd >= 0)
        close(s->in_fd);
      s->in_fd = -1;
      pthread_mutex_unlock(&s->wlock);
    }
  }
  session_unref(s);
}
