#include <curl/curl.h>
#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "http/http.h"
#include "util/cleanup.h"
#include "util/fs.h"
#include "util/json.h"

#define DEFAULT_SOCKET "/run/ferry/ferryd.sock"

struct http_client {
  char *host;       /* as given */
  char *unix_path;  /* for unix:// */
  char *base;       /* URL prefix */
  char *auth;       /* "Authorization: Bearer ..." or NULL */
  char *ca;
  char *resolve;    /* "NAME:PORT:ADDR" for CURLOPT_RESOLVE, or NULL */
  char *extra;      /* one more header line ("Name: value"), or NULL */
  long timeout;
  http_progress_fn progress;
  void *progress_ud;
  struct http_pool *pool;
  const char *what, *hint; /* static strings: what it talks to */
};

/* libcurl's share interface: the connection cache (and name lookups) of
 * every handle that names it, under one lock per kind of data */
struct http_pool {
  CURLSH *sh;
  pthread_mutex_t lock[CURL_LOCK_DATA_LAST];
};

static void pool_lock(CURL *h, curl_lock_data d, curl_lock_access a, void *ud)
{
  (void)h, (void)a;
  pthread_mutex_lock(&((struct http_pool *)ud)->lock[d]);
}

static void pool_unlock(CURL *h, curl_lock_data d, void *ud)
{
  (void)h;
  pthread_mutex_unlock(&((struct http_pool *)ud)->lock[d]);
}

struct http_pool *http_pool_new(void)
{
  struct http_pool *p = calloc(1, sizeof *p);
  if (!p || !(p->sh = curl_share_init()))
    abort();
  for (int i = 0; i < CURL_LOCK_DATA_LAST; i++)
    pthread_mutex_init(&p->lock[i], NULL);
  curl_share_setopt(p->sh, CURLSHOPT_LOCKFUNC, pool_lock);
  curl_share_setopt(p->sh, CURLSHOPT_UNLOCKFUNC, pool_unlock);
  curl_share_setopt(p->sh, CURLSHOPT_USERDATA, p);
  curl_share_setopt(p->sh, CURLSHOPT_SHARE, CURL_LOCK_DATA_CONNECT);
  curl_share_setopt(p->sh, CURLSHOPT_SHARE, CURL_LOCK_DATA_DNS);
  return p;
}

void http_pool_free(struct http_pool *p)
{
  if (!p)
    return;
  curl_share_cleanup(p->sh);
  for (int i = 0; i < CURL_LOCK_DATA_LAST; i++)
    pthread_mutex_destroy(&p->lock[i]);
  free(p);
}

void http_client_set_pool(struct http_client *c, struct http_pool *p) { c->pool = p; }

void http_client_set_peer(struct http_client *c, const char *what, const char *hint)
{
  c->what = what;
  c->hint = hint;
}

void http_client_set_progress(struct http_client *c, http_progress_fn fn, void *ud)
{
  c->progress = fn;
  c->progress_ud = ud;
}

static int on_xfer(void *ud, curl_off_t dltotal, curl_off_t dlnow, curl_off_t ultotal, curl_off_t ulnow)
{
  (void)dltotal;
  (void)dlnow;
  struct http_client *c = ud;
  if (c->progress)
    c->progress(c->progress_ud, (uint64_t)ulnow, (uint64_t)ultotal);
  return 0;
}

void http_client_set_token(struct http_client *c, const char *token)
{
  free(c->auth);
  c->auth = token && *token ? xasprintf("Authorization: Bearer %s", token) : NULL;
}

void http_client_set_ca(struct http_client *c, const char *ca_file)
{
  free(c->ca);
  c->ca = ca_file ? xstrdup(ca_file) : NULL;
}

void http_client_set_timeout(struct http_client *c, long seconds) { c->timeout = seconds; }

void http_client_set_header(struct http_client *c, const char *line)
{
  free(c->extra);
  c->extra = line && *line ? xstrdup(line) : NULL;
}

void http_client_pin(struct http_client *c, const char *name, const char *port, const char *addr)
{
  free(c->resolve);
  c->resolve = name && port && addr ? xasprintf("%s:%s:%s", name, port, addr) : NULL;
}

int http_client_new(const char *host, struct http_client **out, struct ferry_err *err)
{
  if (!host || !*host)
    host = getenv("FERRY_HOST");
  if (!host || !*host)
    host = "unix://" DEFAULT_SOCKET;
  struct http_client *c = calloc(1, sizeof *c);
  if (!c)
    abort();
  c->host = xstrdup(host);
  c->what = "the ferry agent";
  c->hint = "is ferryd running?";
  if (strncmp(host, "unix://", 7) == 0) {
    c->unix_path = xstrdup(host + 7);
    c->base = xstrdup("http://localhost");
  } else if (strncmp(host, "tcp://", 6) == 0) {
    c->base = xasprintf("http://%s", host + 6);
  } else if (strncmp(host, "http://", 7) == 0 || strncmp(host, "https://", 8) == 0) {
    c->base = xstrdup(host);
  } else if (host[0] == '/') {
    c->unix_path = xstrdup(host);
    c->base = xstrdup("http://localhost");
  } else {
    free(c->host);
    free(c);
    return FERRY_INVALID(err, "host \"%s\": expected unix:///PATH or tcp://ADDR:PORT", host);
  }
  size_t bl = strlen(c->base);
  if (bl > 0 && c->base[bl - 1] == '/')
    c->base[bl - 1] = '\0';
  *out = c;
  return 0;
}

void http_client_free(struct http_client *c)
{
  if (!c)
    return;
  free(c->host);
  free(c->unix_path);
  free(c->base);
  free(c->auth);
  free(c->ca);
  free(c->resolve);
  free(c->extra);
  free(c);
}

const char *http_client_host(struct http_client *c) { return c->host; }

char *http_escape(const char *s)
{
  char *e = curl_easy_escape(NULL, s, 0);
  char *r = xstrdup(e);
  curl_free(e);
  return r;
}

struct sink {
  char *p;
  size_t len, cap;
  bool too_big;
};

static size_t on_data(char *ptr, size_t size, size_t nmemb, void *ud)
{
  struct sink *s = ud;
  size_t n = size * nmemb;
  /* an answer larger than any ferry sends ends the transfer */
  if (s->len + n > HTTP_REPLY_MAX) {
    s->too_big = true;
    return 0;
  }
  if (s->len + n + 1 > s->cap) {
    /* grown geometrically: a large answer costs one copy per doubling */
    size_t cap = s->cap ? s->cap : 4096;
    while (cap < s->len + n + 1)
      cap *= 2;
    char *np = realloc(s->p, cap);
    if (!np)
      return 0;
    s->p = np;
    s->cap = cap;
  }
  memcpy(s->p + s->len, ptr, n);
  s->len += n;
  s->p[s->len] = '\0';
  return n;
}

/* A streamed answer: its body goes to fn as it comes (an error answer,
 * 4xx/5xx, to the sink); cancel, when set, ends the transfer. */
struct stream_sink {
  http_stream_fn fn;
  void *ud;
  volatile sig_atomic_t *cancel;
  CURL *h;
  struct sink *err_body;
  bool stopped; /* fn said stop */
};

static size_t on_stream(char *ptr, size_t size, size_t nmemb, void *ud)
{
  struct stream_sink *ss = ud;
  long status = 0;
  curl_easy_getinfo(ss->h, CURLINFO_RESPONSE_CODE, &status);
  if (status >= 400)
    return on_data(ptr, size, nmemb, ss->err_body);
  if (!ss->fn(ss->ud, ptr, size * nmemb)) {
    ss->stopped = true;
    return 0;
  }
  return size * nmemb;
}

static int on_cancel(void *ud, curl_off_t dt, curl_off_t dn, curl_off_t ut, curl_off_t un)
{
  (void)dt, (void)dn, (void)ut, (void)un;
  struct stream_sink *ss = ud;
  return ss->cancel && *ss->cancel ? 1 : 0;
}

/* What every request of c sets: its URL, socket, token, CA, pinned
 * address. *hdr and *pin are the caller's to free after the transfer. */
static void handle_setup(struct http_client *c, CURL *h, const char *path, struct curl_slist **hdr,
                         struct curl_slist **pin)
{
  _cleanup_free_ char *url = xasprintf("%s%s", c->base, path);
  curl_easy_setopt(h, CURLOPT_URL, url); /* libcurl keeps its own copy */
  if (c->unix_path)
    curl_easy_setopt(h, CURLOPT_UNIX_SOCKET_PATH, c->unix_path);
  curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
  *hdr = curl_slist_append(*hdr, "Expect:");
  if (c->auth)
    *hdr = curl_slist_append(*hdr, c->auth);
  if (c->extra)
    *hdr = curl_slist_append(*hdr, c->extra);
  if (c->ca)
    curl_easy_setopt(h, CURLOPT_CAINFO, c->ca);
  *pin = c->resolve ? curl_slist_append(NULL, c->resolve) : NULL;
  if (*pin)
    curl_easy_setopt(h, CURLOPT_RESOLVE, *pin);
  curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT, 10L);
  if (c->pool) {
    curl_easy_setopt(h, CURLOPT_SHARE, c->pool->sh);
    curl_easy_setopt(h, CURLOPT_MAXCONNECTS, 256L);
  }
}

static int perform(struct http_client *c, const char *method, const char *path,
                   const char *body, size_t body_len, FILE *upload, curl_off_t upload_size,
                   struct sink *resp, long *status, struct stream_sink *ss, struct ferry_err *err)
{
  CURL *h = curl_easy_init();
  if (!h)
    return FERRY_INTERNAL(err, "cannot initialise libcurl");
  curl_easy_setopt(h, CURLOPT_CUSTOMREQUEST, method);
  if (ss) {
    ss->h = h;
    ss->err_body = resp;
    curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, on_stream);
    curl_easy_setopt(h, CURLOPT_WRITEDATA, ss);
    curl_easy_setopt(h, CURLOPT_XFERINFOFUNCTION, on_cancel);
    curl_easy_setopt(h, CURLOPT_XFERINFODATA, ss);
    curl_easy_setopt(h, CURLOPT_NOPROGRESS, 0L);
  } else {
    curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, on_data);
    curl_easy_setopt(h, CURLOPT_WRITEDATA, resp);
  }
  struct curl_slist *hdr = NULL;
  if (upload) {
    hdr = curl_slist_append(hdr, "Content-Type: application/octet-stream");
    curl_easy_setopt(h, CURLOPT_UPLOAD, 1L);
    curl_easy_setopt(h, CURLOPT_READDATA, upload);
    curl_easy_setopt(h, CURLOPT_INFILESIZE_LARGE, upload_size);
    curl_easy_setopt(h, CURLOPT_CUSTOMREQUEST, method);
  } else if (body) {
    hdr = curl_slist_append(hdr, "Content-Type: application/json");
    curl_easy_setopt(h, CURLOPT_POSTFIELDS, body);
    curl_easy_setopt(h, CURLOPT_POSTFIELDSIZE, (long)body_len);
  }
  struct curl_slist *pin = NULL;
  handle_setup(c, h, path, &hdr, &pin);
  if (c->timeout > 0 && !ss) /* a stream lasts as long as what it carries */
    curl_easy_setopt(h, CURLOPT_TIMEOUT, c->timeout);
  if (c->progress && upload) {
    curl_easy_setopt(h, CURLOPT_XFERINFOFUNCTION, on_xfer);
    curl_easy_setopt(h, CURLOPT_XFERINFODATA, c);
    curl_easy_setopt(h, CURLOPT_NOPROGRESS, 0L);
  }
  curl_easy_setopt(h, CURLOPT_HTTPHEADER, hdr);
  CURLcode rc = curl_easy_perform(h);
  int r = 0;
  if (rc != CURLE_OK && ss && (ss->stopped || rc == CURLE_ABORTED_BY_CALLBACK)) {
    r = ferry_err_set(err, -ECANCELED, FERRY_E_UNAVAILABLE, "cancelled");
  } else if (rc != CURLE_OK && resp && resp->too_big) {
    r = ferry_err_set(err, -EFBIG, FERRY_E_UNAVAILABLE, "%s answered more than %u MiB: refused",
                      c->host, HTTP_REPLY_MAX >> 20);
  } else if (rc != CURLE_OK) {
    r = ferry_err_set(err, rc == CURLE_OPERATION_TIMEDOUT ? -ETIMEDOUT : -ECONNREFUSED,
                      FERRY_E_UNAVAILABLE,
                      "cannot reach %s at %s: %s%s%s%s", c->what, c->host,
                      curl_easy_strerror(rc), c->hint ? " (" : "", c->hint ? c->hint : "",
                      c->hint ? ")" : "");
  } else {
    curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, status);
  }
  curl_slist_free_all(hdr);
  curl_easy_cleanup(h);
  curl_slist_free_all(pin);
  return r;
}

static int finish(struct http_client *c, struct sink *s, long status, json_t **out, struct ferry_err *err)
{
  _cleanup_json_ json_t *j = NULL;
  if (s->len > 0 && json_parse(s->p, s->len, "agent reply", &j, NULL) < 0)
    j = NULL;
  if (status >= 400) {
    const char *msg = json_str_or(j, "message", NULL);
    enum ferry_errclass k = status == 503 ? FERRY_E_UNAVAILABLE : status == 404 ? FERRY_E_NOTFOUND
                            : status == 409 ? FERRY_E_CONFLICT
                            : status == 400 ? FERRY_E_INVALID
                            : status == 401 ? FERRY_E_AUTH
                            : status == 403 ? FERRY_E_FORBIDDEN
                                            : FERRY_E_INTERNAL;
    /* the peer's own message when it sent one; never its raw body */
    if (msg)
      return ferry_err_set(err, -EIO, k, "%.900s", msg);
    return ferry_err_set(err, -EIO, k, "%s answered HTTP %ld", c->host, status);
  }
  if (out)
    *out = j ? json_incref(j) : json_null();
  return 0;
}

int http_call(struct http_client *c, const char *method, const char *path, json_t *body,
             json_t **out, struct ferry_err *err)
{
  _cleanup_free_ char *b = body ? json_dumps(body, JSON_COMPACT) : NULL;
  struct sink s = {0};
  long status = 0;
  int r = perform(c, method, path, b, b ? strlen(b) : 0, NULL, 0, &s, &status, NULL, err);
  if (r == 0)
    r = finish(c, &s, status, out, err);
  free(s.p);
  return r;
}

int http_upload(struct http_client *c, const char *path, const char *file, json_t **out,
               struct ferry_err *err)
{
  return http_upload_method(c, "POST", path, file, out, err);
}

int http_upload_method(struct http_client *c, const char *method, const char *path,
                      const char *file, json_t **out, struct ferry_err *err)
{
  _cleanup_fclose_ FILE *f = fopen(file, "rb");
  if (!f)
    return ferry_err_sys(err, -errno, "open %s", file);
  struct stat st;
  if (fstat(fileno(f), &st) < 0 || !S_ISREG(st.st_mode))
    return FERRY_INVALID(err, "%s is not a regular file", file);
  struct sink s = {0};
  long status = 0;
  int r = perform(c, method, path, NULL, 0, f, (curl_off_t)st.st_size, &s, &status, NULL, err);
  if (r == 0)
    r = finish(c, &s, status, out, err);
  free(s.p);
  return r;
}

int http_get_raw(struct http_client *c, const char *path, char **out, size_t *len,
                struct ferry_err *err)
{
  struct sink s = {0};
  long status = 0;
  int r = perform(c, "GET", path, NULL, 0, NULL, 0, &s, &status, NULL, err);
  if (r == 0 && status >= 400) {
    r = finish(c, &s, status, NULL, err);
  } else if (r == 0) {
    *out = s.p ? s.p : xstrdup("");
    *len = s.len;
    return 0;
  }
  free(s.p);
  return r;
}

int http_stream(struct http_client *c, const char *method, const char *path, json_t *body,
                http_stream_fn fn, void *ud, volatile sig_atomic_t *cancel, struct ferry_err *err)
{
  _cleanup_free_ char *b = body ? json_dumps(body, JSON_COMPACT) : NULL;
  struct sink s = {0};
  struct stream_sink ss = {.fn = fn, .ud = ud, .cancel = cancel};
  long status = 0;
  int r = perform(c, method, path, b, b ? strlen(b) : 0, NULL, 0, &s, &status, &ss, err);
  if (r == 0 && status >= 400)
    r = finish(c, &s, status, NULL, err);
  free(s.p);
  return r;
}

/* ---- an interactive session: output and input at once ---- */

struct duplex {
  int in_fd;
  bool in_wait; /* the input transfer is paused until in_fd has something */
  bool in_eof;
  bool stop;    /* the filter said stop */
  http_input_fn filter;
  void *ud;
};

static size_t on_input(char *buf, size_t size, size_t nitems, void *ud)
{
  struct duplex *d = ud;
  size_t cap = size * nitems;
  if (d->stop)
    return CURL_READFUNC_ABORT;
  if (d->in_eof)
    return 0;
  struct pollfd p = {.fd = d->in_fd, .events = POLLIN};
  if (poll(&p, 1, 0) <= 0) {
    d->in_wait = true;
    return CURL_READFUNC_PAUSE;
  }
  /* room kept for what the filter held back from an earlier read */
  ssize_t n = read(d->in_fd, buf, cap > 512 ? cap - 512 : cap / 2);
  if (n < 0 && (errno == EINTR || errno == EAGAIN)) {
    d->in_wait = true;
    return CURL_READFUNC_PAUSE;
  }
  if (n <= 0) {
    d->in_eof = true;
    n = 0;
  }
  if (d->filter) {
    n = d->filter(d->ud, buf, (size_t)n, cap);
    if (n < 0) {
      d->stop = true;
      return CURL_READFUNC_ABORT;
    }
  }
  if (n == 0 && !d->in_eof) {
    d->in_wait = true;
    return CURL_READFUNC_PAUSE;
  }
  return (size_t)n;
}

int http_duplex(struct http_client *c, const char *out_path, const char *in_path, int in_fd,
                http_stream_fn fn, http_input_fn filter, void (*tick)(void *ud), void *ud,
                volatile sig_atomic_t *cancel, struct ferry_err *err)
{
  struct sink err_body = {0}, in_body = {0};
  struct stream_sink ss = {.fn = fn, .ud = ud, .cancel = cancel, .err_body = &err_body};
  struct duplex d = {.in_fd = in_fd, .filter = filter, .ud = ud};
  CURLM *m = curl_multi_init();
  CURL *out = curl_easy_init(), *in = in_path ? curl_easy_init() : NULL;
  struct curl_slist *ohdr = NULL, *opin = NULL, *ihdr = NULL, *ipin = NULL;
  int r = 0;
  if (!m || !out || (in_path && !in)) {
    r = FERRY_INTERNAL(err, "cannot initialise libcurl");
    goto out;
  }
  handle_setup(c, out, out_path, &ohdr, &opin);
  ss.h = out;
  curl_easy_setopt(out, CURLOPT_WRITEFUNCTION, on_stream);
  curl_easy_setopt(out, CURLOPT_WRITEDATA, &ss);
  curl_easy_setopt(out, CURLOPT_HTTPHEADER, ohdr);
  curl_multi_add_handle(m, out);
  if (in) {
    ihdr = curl_slist_append(ihdr, "Content-Type: application/octet-stream");
    ihdr = curl_slist_append(ihdr, "Transfer-Encoding: chunked");
    handle_setup(c, in, in_path, &ihdr, &ipin);
    curl_easy_setopt(in, CURLOPT_POST, 1L);
    curl_easy_setopt(in, CURLOPT_READFUNCTION, on_input);
    curl_easy_setopt(in, CURLOPT_READDATA, &d);
    curl_easy_setopt(in, CURLOPT_WRITEFUNCTION, on_data);
    curl_easy_setopt(in, CURLOPT_WRITEDATA, &in_body);
    curl_easy_setopt(in, CURLOPT_HTTPHEADER, ihdr);
    curl_multi_add_handle(m, in);
  }
  bool out_done = false, in_done = !in;
  CURLcode out_rc = CURLE_OK;
  while (!out_done) {
    int running = 0;
    curl_multi_perform(m, &running);
    CURLMsg *msg;
    int q;
    while ((msg = curl_multi_info_read(m, &q))) {
      if (msg->msg != CURLMSG_DONE)
        continue;
      if (msg->easy_handle == out) {
        out_done = true;
        out_rc = msg->data.result;
      } else {
        in_done = true; /* the input ended (or was refused): the output goes on */
      }
    }
    if (out_done || d.stop || (cancel && *cancel) || ss.stopped)
      break;
    if (tick)
      tick(ud);
    if (!in_done && d.in_wait) {
      struct pollfd p = {.fd = in_fd, .events = POLLIN};
      if (poll(&p, 1, 0) > 0) {
        d.in_wait = false;
        curl_easy_pause(in, CURLPAUSE_CONT);
        continue;
      }
    }
    struct curl_waitfd wf = {.fd = in_fd, .events = CURL_WAIT_POLLIN};
    bool waiting = !in_done && d.in_wait;
    curl_multi_poll(m, waiting ? &wf : NULL, waiting ? 1 : 0, 200, NULL);
  }
  long status = 0;
  curl_easy_getinfo(out, CURLINFO_RESPONSE_CODE, &status);
  if (d.stop || ss.stopped || (cancel && *cancel))
    r = ferry_err_set(err, -ECANCELED, FERRY_E_UNAVAILABLE, "cancelled");
  else if (out_rc != CURLE_OK && status < 400)
    r = ferry_err_set(err, -ECONNREFUSED, FERRY_E_UNAVAILABLE,
                      "the ferry agent at %s: %s", c->host, curl_easy_strerror(out_rc));
  else if (status >= 400)
    r = finish(c, &err_body, status, NULL, err);
out:
  if (m) {
    if (out)
      curl_multi_remove_handle(m, out);
    if (in)
      curl_multi_remove_handle(m, in);
    curl_multi_cleanup(m);
  }
  if (out)
    curl_easy_cleanup(out);
  if (in)
    curl_easy_cleanup(in);
  curl_slist_free_all(ohdr);
  curl_slist_free_all(opin);
  curl_slist_free_all(ihdr);
  curl_slist_free_all(ipin);
  free(err_body.p);
  free(in_body.p);
  return r;
}
