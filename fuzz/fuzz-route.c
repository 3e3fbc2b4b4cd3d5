/* Fuzzes request routing and the checks on what a URL carries: the table
 * router (patterns with {} and {*}), image names, and the seed API's
 * pull address parsing through its validation of names. The input is
 * "METHOD PATH". Nothing may crash, leak or hang. */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "http/http.h"
#include "image/store.h"
#include "util/json.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void handler(void *ctx, const struct http_request *req, char **args,
                    struct http_response *resp)
{
  (void)ctx, (void)req;
  for (int i = 0; i < HTTP_ROUTE_ARGS && args[i]; i++)
    if (strchr(args[i], '/') && strcmp(req->method, "GET") != 0)
      abort(); /* only {*} (GET images) may hold a slash */
  http_reply(resp, 200, json_object());
}

static const struct http_route routes[] = {
    {"GET", "/v1/containers", handler},          {"POST", "/v1/containers/{}/start", handler},
    {"DELETE", "/v1/containers/{}", handler},    {"GET", "/v1/images/{*}", handler},
    {"PUT", "/v1/migrations/incoming/{}/{}/{}", handler},
};

static const char *no_query(void *ctx, const char *key)
{
  (void)ctx, (void)key;
  return NULL;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
  char *buf = malloc(size + 1);
  if (!buf)
    abort();
  memcpy(buf, data, size);
  buf[size] = '\0';
  char *sp = strchr(buf, ' ');
  const char *method = "GET", *path = buf;
  if (sp) {
    *sp = '\0';
    method = buf;
    path = sp + 1;
  }
  struct http_request req = {.method = method, .path = path, .body = "", .query = no_query};
  struct http_response resp = {0};
  http_route(routes, sizeof routes / sizeof routes[0], NULL, &req, &resp);
  json_decref(resp.json);
  char *norm = NULL;
  struct ferry_err err = {0};
  if (image_normalize_name(path, &norm, &err) == 0) {
    /* no empty, "." or ".." path component gets through */
    if (norm[0] == '.' || norm[0] == '/' || strstr(norm, "/.") || strstr(norm, "./") ||
        strstr(norm, "//"))
      abort();
    free(norm);
  }
  free(buf);
  return 0;
}
