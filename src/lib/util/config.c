#include "util/config.h"

#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "util/cleanup.h"
#include "util/fs.h"
#include "util/strv.h"

int config_find(int argc, char **argv, const char *def, const char **path, struct ferry_err *err)
{
  *path = NULL;
  for (int i = 1; i < argc; i++) {
    if (strcmp(argv[i], "--") == 0)
      break;
    const char *p = NULL;
    if (strcmp(argv[i], "--config") == 0 && i + 1 < argc)
      p = argv[i + 1];
    else if (strncmp(argv[i], "--config=", 9) == 0)
      p = argv[i] + 9;
    if (p) {
      if (access(p, R_OK) < 0)
        return ferry_err_sys(err, -errno, "configuration file %s", p);
      *path = p;
    }
  }
  if (!*path && def && access(def, F_OK) == 0)
    *path = def;
  return 0;
}

static char *trim(char *s)
{
  while (isspace((unsigned char)*s))
    s++;
  char *e = s + strlen(s);
  while (e > s && isspace((unsigned char)e[-1]))
    *--e = '\0';
  return s;
}

int config_argv(const char *path, const struct option *lo, int argc, char **argv, int *out_argc,
                char ***out_argv, struct ferry_err *err)
{
  _cleanup_strv_ char **v = strv_new();
  strv_push(&v, argv[0]);
  if (path) {
    _cleanup_free_ char *text = NULL;
    size_t n = 0;
    int r = read_regular_file(path, 1 << 20, &text, &n, err);
    if (r < 0)
      return ferry_err_wrap(err, "configuration file");
    const char *nul = memchr(text, '\0', n);
    if (nul) {
      int ln = 1;
      for (const char *q = text; q < nul; q++)
        ln += *q == '\n';
      return FERRY_INVALID(err, "%s:%d: a NUL byte (is this a configuration file?)", path, ln);
    }
    int lineno = 0;
    for (char *line = text, *next; line && *line; line = next) {
      next = strchr(line, '\n');
      if (next)
        *next++ = '\0';
      lineno++;
      /* a comment starts a line or follows a space: "#" inside a value
       * ("token-file = /etc/ferry/a#b") is part of it */
      for (char *h = line; (h = strchr(h, '#')); h++)
        if (h == line || isspace((unsigned char)h[-1])) {
          *h = '\0';
          break;
        }
      char *s = trim(line);
      if (!*s)
        continue;
      size_t klen = strcspn(s, " \t=");
      char *val = s + klen;
      char key[64];
      if (klen == 0 || klen >= sizeof key)
        return FERRY_INVALID(err, "%s:%d: expected an option name", path, lineno);
      memcpy(key, s, klen);
      key[klen] = '\0';
      val = trim(val);
      if (*val == '=')
        val = trim(val + 1);
      const struct option *o = NULL;
      for (const struct option *p = lo; p->name; p++)
        if (strcmp(p->name, key) == 0)
          o = p;
      if (!o || strcmp(key, "config") == 0 || strcmp(key, "help") == 0)
        return FERRY_INVALID(err, "%s:%d: unknown option \"%s\"", path, lineno, key);
      if (o->has_arg == no_argument) {
        if (!*val || strcmp(val, "true") == 0 || strcmp(val, "yes") == 0)
          strv_push_take(&v, xasprintf("--%s", key));
        else if (strcmp(val, "false") != 0 && strcmp(val, "no") != 0)
          return FERRY_INVALID(err, "%s:%d: \"%s\" takes no value (or true/false)", path, lineno,
                               key);
      } else {
        if (!*val)
          return FERRY_INVALID(err, "%s:%d: \"%s\" needs a value", path, lineno, key);
        strv_push_take(&v, xasprintf("--%s=%s", key, val));
      }
    }
  }
  for (int i = 1; i < argc; i++)
    strv_push(&v, argv[i]);
  int n = 0;
  while (v[n])
    n++;
  *out_argc = n;
  *out_argv = TAKE_PTR(v);
  return 0;
}

int config_args(const char *def, const struct option *lo, int *argc, char ***argv, char ***owned,
                struct ferry_err *err)
{
  const char *conf = NULL;
  int r = config_find(*argc, *argv, def, &conf, err);
  if (r == 0)
    r = config_argv(conf, lo, *argc, *argv, argc, owned, err);
  if (r == 0)
    *argv = *owned;
  return r;
}
