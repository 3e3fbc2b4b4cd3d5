#include <getopt.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli.h"
#include "util/cleanup.h"
#include "util/json.h"
#include "util/fs.h"

int cli_fail(const struct ferry_err *err)
{
  fprintf(stderr, "Error: %s\n", err->msg[0] ? err->msg : "unknown error");
  return 125;
}

int cli_usage_error(const char *fmt, ...)
{
  va_list ap;
  va_start(ap, fmt);
  fputs("Error: ", stderr);
  vfprintf(stderr, fmt, ap);
  fputs("\n", stderr);
  va_end(ap);
  return 125;
}

int cli_getopt(int argc, char **argv, const char *shortopts, const struct option *lo)
{
  /* ':' after a leading '+': a missing value comes back as ':' */
  char so[64];
  bool plus = shortopts[0] == '+';
  snprintf(so, sizeof so, "%s:%s", plus ? "+" : "", shortopts + plus);
  opterr = 0;
  int c = getopt_long(argc, argv, so, lo, NULL);
  if (c == '?' || c == ':') {
    const char *bad = optind > 0 && optind <= argc ? argv[optind - 1] : "?";
    char shortname[3] = {'-', (char)optopt, 0};
    /* a short option in a cluster (-xq): optopt names it */
    if (optopt && strncmp(bad, "--", 2) != 0)
      bad = shortname;
    if (c == ':')
      cli_usage_error("%s: option %s needs a value (see ferry %s --help)", argv[0], bad, argv[0]);
    else
      cli_usage_error("%s: unknown option %s (see ferry %s --help)", argv[0], bad, argv[0]);
    c = '?';
  }
  return c;
}

bool cli_confirm(const char *warning)
{
  /* podman asks so too; no answer (not a terminal, end of input) is no */
  fprintf(stderr, "WARNING! %s\nAre you sure you want to continue? [y/N] ", warning);
  char ans[16] = "";
  return fgets(ans, sizeof ans, stdin) && (ans[0] == 'y' || ans[0] == 'Y');
}

int cli_prune(struct cli *cli, json_t *items)
{
  _cleanup_json_ json_t *gone = json_array();
  int rc = 0;
  size_t i;
  json_t *it;
  json_array_foreach(items, i, it)
  {
    struct ferry_err de = {0};
    if (http_call(cli->api, "DELETE", json_str_or(it, "url", ""), NULL, NULL, &de) == 0)
      json_array_append(gone, json_object_get(it, "label"));
    else if (de.klass != FERRY_E_CONFLICT && de.klass != FERRY_E_NOTFOUND)
      rc = cli_fail(&de); /* in use or busy (409), gone meanwhile (404): not for pruning */
  }
  if (cli->json)
    cli_print_json(gone);
  else
    json_array_foreach(gone, i, it) puts(json_string_value(it));
  return rc;
}

bool cli_wants_help(int argc, char **argv, const char *help)
{
  for (int i = 1; i < argc; i++) {
    if (strcmp(argv[i], "--") == 0)
      break;
    if (strcmp(argv[i], "-h") == 0 || strcmp(argv[i], "--help") == 0) {
      fputs(help, stdout);
      return true;
    }
  }
  return false;
}

void cli_print_json(json_t *j)
{
  char *s = json_dumps(j, JSON_INDENT(2) | JSON_ENCODE_ANY);
  if (s) {
    puts(s);
    free(s);
  }
}

const char *fmt_bytes(uint64_t b, char *buf, size_t len)
{
  static const char *u[] = {"B", "KiB", "MiB", "GiB", "TiB"};
  double v = (double)b;
  int i = 0;
  while (v >= 1024 && i < 4) {
    v /= 1024;
    i++;
  }
  if (i == 0)
    snprintf(buf, len, "%llu B", (unsigned long long)b);
  else
    snprintf(buf, len, "%.1f %s", v, u[i]);
  return buf;
}

const char *fmt_ms(int64_t ms, char *buf, size_t len)
{
  if (ms < 10000)
    snprintf(buf, len, "%lld ms", (long long)ms);
  else
    snprintf(buf, len, "%.1f s", (double)ms / 1000.0);
  return buf;
}

char *cli_abs_path(const char *p)
{
  if (p[0] == '/')
    return xstrdup(p);
  char cwd[PATH_MAX];
  if (!getcwd(cwd, sizeof cwd))
    return xstrdup(p);
  return path_join(cwd, p);
}
