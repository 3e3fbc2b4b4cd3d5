#include "util/err.h"

#include <stdio.h>
#include <string.h>

int ferry_err_set(struct ferry_err *err, int code, enum ferry_errclass klass, const char *fmt, ...)
{
  if (code >= 0)
    code = -EIO;
  if (!err)
    return code;
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(err->msg, sizeof err->msg, fmt, ap);
  va_end(ap);
  err->code = code;
  err->klass = klass;
  return code;
}

int ferry_err_sys(struct ferry_err *err, int code, const char *fmt, ...)
{
  if (code >= 0)
    code = -EIO;
  if (!err)
    return code;
  char buf[FERRY_ERR_MSG];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(buf, sizeof buf, fmt, ap);
  va_end(ap);
  enum ferry_errclass k = FERRY_E_INTERNAL;
  if (code == -ENOENT)
    k = FERRY_E_NOTFOUND;
  else if (code == -EEXIST || code == -EBUSY)
    k = FERRY_E_CONFLICT;
  else if (code == -EINVAL)
    k = FERRY_E_INVALID;
  char full[FERRY_ERR_MSG + 64];
  snprintf(full, sizeof full, "%.*s: %s", FERRY_ERR_MSG - 64, buf, strerror(-code));
  return ferry_err_set(err, code, k, "%s", full);
}

int ferry_err_wrap(struct ferry_err *err, const char *fmt, ...)
{
  if (!err)
    return -EIO;
  char pre[FERRY_ERR_MSG], old[FERRY_ERR_MSG];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(pre, sizeof pre, fmt, ap);
  va_end(ap);
  memcpy(old, err->msg, sizeof old);
  size_t n = strlen(pre);
  if (n + 2 < sizeof err->msg) {
    memcpy(err->msg, pre, n);
    memcpy(err->msg + n, ": ", 2);
    size_t room = sizeof err->msg - n - 2;
    size_t ol = strnlen(old, room - 1);
    memcpy(err->msg + n + 2, old, ol);
    err->msg[n + 2 + ol] = '\0';
  }
  if (err->code >= 0)
    err->code = -EIO;
  return err->code;
}

void ferry_err_clear(struct ferry_err *err)
{
  if (!err)
    return;
  err->code = 0;
  err->klass = FERRY_E_INTERNAL;
  err->msg[0] = '\0';
}

static const char *const class_names[] = {"internal", "invalid", "notfound", "conflict", "auth",
                                          "unavailable", "forbidden"};

const char *ferry_errclass_name(enum ferry_errclass k)
{
  return (unsigned)k < sizeof class_names / sizeof class_names[0] ? class_names[k] : "internal";
}

enum ferry_errclass ferry_errclass_parse(const char *name)
{
  for (unsigned i = 0; name && i < sizeof class_names / sizeof class_names[0]; i++)
    if (strcmp(name, class_names[i]) == 0)
      return (enum ferry_errclass)i;
  return FERRY_E_INTERNAL;
}
