/* Table routing and reply helpers (http.h). */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "http/http.h"
#include "util/cleanup.h"
#include "util/fs.h"
#include "util/json.h"

int http_status_for(const struct ferry_err *err)
{
  if (err->code == -ENOSPC || err->code == -EDQUOT)
    return 507;
  switch (err->klass) {
  case FERRY_E_INVALID: return 400;
  case FERRY_E_NOTFOUND: return 404;
  case FERRY_E_CONFLICT: return 409;
  case FERRY_E_AUTH: return 401;
  case FERRY_E_UNAVAILABLE: return 503;
  case FERRY_E_FORBIDDEN: return 403;
  default: return 500;
  }
}

void http_reply(struct http_response *resp, int status, json_t *body)
{
  resp->status = status;
  resp->json = body;
}

void http_reply_err(struct http_response *resp, const struct ferry_err *err)
{
  http_reply(resp, http_status_for(err),
             json_pack("{s:s, s:s}", "status", "error", "message",
                       err->msg[0] ? err->msg : "internal error"));
}

void http_reply_result(struct http_response *resp, int r, json_t *j, const struct ferry_err *err)
{
  if (r < 0) {
    json_decref(j);
    http_reply_err(resp, err);
  } else {
    http_reply(resp, 200, j ? j : json_pack("{s:s}", "status", "success"));
  }
}

int http_body(const struct http_request *req, json_t **out, struct ferry_err *err)
{
  if (req->body_len == 0) {
    *out = json_object();
    return 0;
  }
  return json_parse(req->body, req->body_len, "request body", out, err);
}

bool http_query_bool(const struct http_request *req, const char *key)
{
  const char *v = req->query(req->query_ctx, key);
  return v && (strcmp(v, "1") == 0 || strcmp(v, "true") == 0 || strcmp(v, "yes") == 0);
}

/* Does path match pattern? args get malloc'd copies of the "{}"/"{*}" parts. */
static bool match(const char *pattern, const char *path, char **args, size_t *nargs)
{
  const char *p = pattern, *q = path;
  *nargs = 0;
  for (;;) {
    while (*p == '/')
      p++;
    while (*q == '/')
      q++;
    if (!*p || !*q)
      return !*p && !*q;
    size_t pl = strcspn(p, "/"), ql = strcspn(q, "/");
    if (pl == 3 && strncmp(p, "{*}", 3) == 0) {
      /* the rest, without trailing slashes */
      size_t n = strlen(q);
      while (n > 0 && q[n - 1] == '/')
        n--;
      if (*nargs < HTTP_ROUTE_ARGS)
        args[(*nargs)++] = strndup(q, n);
      return true;
    }
    if (pl == 2 && strncmp(p, "{}", 2) == 0) {
      if (*nargs < HTTP_ROUTE_ARGS)
        args[(*nargs)++] = strndup(q, ql);
    } else if (pl != ql || strncmp(p, q, pl) != 0) {
      return false;
    }
    p += pl;
    q += ql;
  }
}

static void free_args(char **args, size_t n)
{
  for (size_t i = 0; i < n; i++) {
    free(args[i]);
    args[i] = NULL;
  }
}

bool http_route(const struct http_route *routes, size_t n, void *ctx,
                const struct http_request *req, struct http_response *resp)
{
  char *args[HTTP_ROUTE_ARGS] = {0};
  size_t nargs = 0;
  _cleanup_free_ char *allowed = NULL;
  for (size_t i = 0; i < n; i++) {
    if (!match(routes[i].pattern, req->path, args, &nargs)) {
      free_args(args, nargs);
      continue;
    }
    if (strcmp(routes[i].method, req->method) == 0) {
      routes[i].fn(ctx, req, args, resp);
      free_args(args, nargs);
      return true;
    }
    free_args(args, nargs);
    if (!allowed || !strstr(allowed, routes[i].method)) {
      char *a = xasprintf("%s%s%s", allowed ? allowed : "", allowed ? ", " : "", routes[i].method);
      free(allowed);
      allowed = a;
    }
  }
  if (!allowed)
    return false;
  _cleanup_free_ char *msg =
      xasprintf("%s %s: method not allowed (allowed: %s)", req->method, req->path, allowed);
  http_reply(resp, 405, json_pack("{s:s, s:s}", "status", "error", "message", msg));
  return true;
}
