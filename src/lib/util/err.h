/* Errors carried up to the caller: a negative errno-style code plus a message
 * that names the thing and the cause. Library code never prints; main() does. */
#pragma once
#include <errno.h>
#include <stdarg.h>

#define FERRY_ERR_MSG 1024

/* Error classes, used by the API layer to pick an HTTP status. */
enum ferry_errclass {
  FERRY_E_INTERNAL = 0, /* 500 */
  FERRY_E_INVALID,      /* 400: malformed or unacceptable input */
  FERRY_E_NOTFOUND,     /* 404 */
  FERRY_E_CONFLICT,     /* 409: name taken, in use, wrong state */
  FERRY_E_AUTH,         /* 401 */
  FERRY_E_UNAVAILABLE,  /* 503: a peer or tool cannot be reached */
  FERRY_E_FORBIDDEN,    /* 403: allowed to nobody who asks this way */
};

/* "internal", "invalid", "notfound", "conflict", "auth", "unavailable", "forbidden";
 * ferry_errclass_parse is its inverse (FERRY_E_INTERNAL for unknown names). */
const char *ferry_errclass_name(enum ferry_errclass k);
enum ferry_errclass ferry_errclass_parse(const char *name);

struct ferry_err {
  int code;                  /* negative errno, 0 when no error */
  enum ferry_errclass klass;
  char msg[FERRY_ERR_MSG];
};

/* Sets err (if not NULL) and returns code (a negative errno). */
int ferry_err_set(struct ferry_err *err, int code, enum ferry_errclass klass,
                  const char *fmt, ...) __attribute__((format(printf, 4, 5)));
/* Like ferry_err_set, appending ": strerror(-code)". */
int ferry_err_sys(struct ferry_err *err, int code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/* Prefixes the existing message with context ("container x: <old>"). */
int ferry_err_wrap(struct ferry_err *err, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
void ferry_err_clear(struct ferry_err *err);

#define FERRY_INVALID(err, ...) ferry_err_set(err, -EINVAL, FERRY_E_INVALID, __VA_ARGS__)
#define FERRY_NOTFOUND(err, ...) ferry_err_set(err, -ENOENT, FERRY_E_NOTFOUND, __VA_ARGS__)
#define FERRY_CONFLICT(err, ...) ferry_err_set(err, -EEXIST, FERRY_E_CONFLICT, __VA_ARGS__)
#define FERRY_INTERNAL(err, ...) ferry_err_set(err, -EIO, FERRY_E_INTERNAL, __VA_ARGS__)
