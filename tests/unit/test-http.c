/* http/: the table router (patterns, arguments, 405) and error statuses. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "http/http.h"
#include "util/json.h"

/* What the handler saw: its name and its arguments joined by '|'. */
static char seen[256];

static void record(const char *name, char **args)
{
  snprintf(seen, sizeof seen, "%s", name);
  for (int i = 0; i < HTTP_ROUTE_ARGS && args[i]; i++) {
    size_t n = strlen(seen);
    snprintf(seen + n, sizeof seen - n, "|%s", args[i]);
  }
}

#define H(name)                                                                                    \
  static void name(void *ctx, const struct http_request *req, char **args,                         \
                   struct http_response *resp)                                                     \
  {                                                                                                \
    (void)ctx, (void)req;                                                                          \
    record(#name, args);                                                                           \
    http_reply(resp, 200, json_object());                                                          \
  }
H(list)
H(create)
H(inspect)
H(logs)
H(image)
H(import)

static const struct http_route routes[] = {
    {"GET", "/v1/containers", list},         {"POST", "/v1/containers", create},
    {"GET", "/v1/containers/{}", inspect},   {"GET", "/v1/containers/{}/logs", logs},
    {"POST", "/v1/images/import", import},  {"GET", "/v1/images/{*}", image},
};

static const char *no_query(void *ctx, const char *key)
{
  (void)ctx, (void)key;
  return NULL;
}

/* Routes METHOD PATH: the handler's record, "405", or "none". */
static const char *route(const char *method, const char *path)
{
  struct http_request req = {.method = method, .path = path, .body = "", .query = no_query};
  struct http_response resp = {0};
  seen[0] = '\0';
  if (!http_route(routes, sizeof routes / sizeof routes[0], NULL, &req, &resp))
    return "none";
  if (resp.status == 405) {
    const char *msg = json_str_or(resp.json, "message", "");
    assert_non_null(strstr(msg, "not allowed"));
    snprintf(seen, sizeof seen, "405 %s", strchr(msg, '(') ? strchr(msg, '(') : "");
  }
  json_decref(resp.json);
  return seen;
}

static void routes_by_pattern(void **state)
{
  (void)state;
  assert_string_equal(route("GET", "/v1/containers"), "list");
  assert_string_equal(route("POST", "/v1/containers"), "create");
  assert_string_equal(route("GET", "/v1/containers/web"), "inspect|web");
  assert_string_equal(route("GET", "//v1//containers/web/"), "inspect|web");
  assert_string_equal(route("GET", "/v1/containers/web/logs"), "logs|web");
  /* {*} takes the rest, slashes included; a literal listed first wins */
  assert_string_equal(route("GET", "/v1/images/registry.example/app:v1"), "image|registry.example/app:v1");
  assert_string_equal(route("POST", "/v1/images/import"), "import");
  /* a known path under another method: 405 naming the allowed ones */
  assert_string_equal(route("DELETE", "/v1/containers"), "405 (allowed: GET, POST)");
  assert_string_equal(route("PUT", "/v1/containers/web/logs"), "405 (allowed: GET)");
  /* unknown paths are the caller's (404) */
  assert_string_equal(route("GET", "/v1/containers/web/logs/more"), "none");
  assert_string_equal(route("GET", "/v1"), "none");
  assert_string_equal(route("GET", "/"), "none");
  assert_string_equal(route("GET", "/v1/images"), "none");
}

static void statuses(void **state)
{
  (void)state;
  struct ferry_err e = {0};
  FERRY_INVALID(&e, "x");
  assert_int_equal(http_status_for(&e), 400);
  FERRY_NOTFOUND(&e, "x");
  assert_int_equal(http_status_for(&e), 404);
  FERRY_CONFLICT(&e, "x");
  assert_int_equal(http_status_for(&e), 409);
  ferry_err_set(&e, -ENOSPC, FERRY_E_INTERNAL, "disk");
  assert_int_equal(http_status_for(&e), 507);
  assert_int_equal(ferry_errclass_parse(ferry_errclass_name(FERRY_E_CONFLICT)), FERRY_E_CONFLICT);
  assert_int_equal(ferry_errclass_parse("nonsense"), FERRY_E_INTERNAL);
  assert_int_equal(ferry_errclass_parse(NULL), FERRY_E_INTERNAL);
}

int main(void)
{
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(routes_by_pattern),
      cmocka_unit_test(statuses),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
