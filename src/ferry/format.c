/* --format for ps and inspect: podman's Go-template habits over a JSON
 * view of a container. Text is printed as it is (with \t and \n), and each
 * {{...}} is an action:
 *   {{.A.B}}       the field B of the field A ("." alone: the whole value)
 *   {{json .A}}    that value as JSON
 * A field is looked up by its exact name, else by its name in any case
 * ({{.state.status}} finds State.Status). A missing field prints
 * "<no value>", as Go's templates do. Anything else is refused with the
 * position of the action. */
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "cli.h"
#include "runtime/record.h"
#include "util/cleanup.h"
#include "util/json.h"

static json_t *field(json_t *v, const char *name, size_t n)
{
  if (!json_is_object(v))
    return NULL;
  const char *k;
  json_t *x, *ci = NULL;
  json_object_foreach(v, k, x)
  {
    if (strlen(k) != n)
      continue;
    if (strncmp(k, name, n) == 0)
      return x;
    if (!ci && strncasecmp(k, name, n) == 0)
      ci = x;
  }
  return ci;
}

/* The value at path (".A.B" or "."), or NULL. */
static json_t *lookup(json_t *root, const char *path, size_t len)
{
  if (len == 1 && path[0] == '.')
    return root;
  json_t *v = root;
  size_t i = 0;
  while (i < len && v) {
    if (path[i] != '.')
      return NULL;
    size_t j = i + 1;
    while (j < len && path[j] != '.')
      j++;
    if (j == i + 1)
      return NULL;
    v = field(v, path + i + 1, j - i - 1);
    i = j;
  }
  return v;
}

static void put_value(FILE *out, json_t *v)
{
  if (!v || json_is_null(v)) {
    fputs("<no value>", out);
  } else if (json_is_string(v)) {
    fputs(json_string_value(v), out);
  } else if (json_is_integer(v)) {
    fprintf(out, "%lld", (long long)json_integer_value(v));
  } else if (json_is_real(v)) {
    fprintf(out, "%g", json_real_value(v));
  } else if (json_is_boolean(v)) {
    fputs(json_is_true(v) ? "true" : "false", out);
  } else if (json_is_array(v)) {
    /* Go prints a slice as [a b c] */
    fputc('[', out);
    size_t i;
    json_t *e;
    json_array_foreach(v, i, e)
    {
      if (i)
        fputc(' ', out);
      put_value(out, e);
    }
    fputc(']', out);
  } else {
    _cleanup_free_ char *s = json_dumps(v, JSON_COMPACT | JSON_SORT_KEYS);
    fputs(s ? s : "", out);
  }
}

int cli_format(FILE *out, const char *fmt, json_t *v)
{
  for (const char *p = fmt; *p;) {
    if (p[0] == '\\' && (p[1] == 't' || p[1] == 'n')) {
      fputc(p[1] == 't' ? '\t' : '\n', out);
      p += 2;
      continue;
    }
    if (!(p[0] == '{' && p[1] == '{')) {
      fputc(*p++, out);
      continue;
    }
    const char *end = strstr(p + 2, "}}");
    if (!end)
      return cli_usage_error("--format: \"{{\" at position %d is not closed", (int)(p - fmt) + 1);
    const char *a = p + 2, *b = end;
    while (a < b && isspace((unsigned char)*a))
      a++;
    while (b > a && isspace((unsigned char)b[-1]))
      b--;
    bool as_json = (size_t)(b - a) > 5 && strncmp(a, "json", 4) == 0 && isspace((unsigned char)a[4]);
    if (as_json) {
      a += 4;
      while (a < b && isspace((unsigned char)*a))
        a++;
    }
    if (a == b || *a != '.')
      return cli_usage_error("--format: \"{{%.*s}}\" at position %d: only {{.Field.Path}} and "
                             "{{json .Field}} are understood",
                             (int)(end - p - 2), p + 2, (int)(p - fmt) + 1);
    json_t *x = lookup(v, a, (size_t)(b - a));
    if (as_json) {
      _cleanup_free_ char *s = x ? json_dumps(x, JSON_COMPACT | JSON_ENCODE_ANY) : NULL;
      fputs(s ? s : "null", out);
    } else {
      put_value(out, x);
    }
    p = end + 2;
  }
  fputc('\n', out);
  return 0;
}

/* podman's names for a container record (inspect and ps), beside the
 * record's own fields. */
json_t *cli_podman_view(json_t *rec)
{
  json_t *v = json_deep_copy(rec);
  const char *status = json_str_or(rec, "status", "");
  json_t *mounts = json_array();
  size_t i;
  json_t *m;
  json_array_foreach(json_object_get(rec, "volumes"), i, m)
  {
    json_array_append_new(mounts, json_pack("{s:s, s:s, s:s, s:b}", "Type", "volume", "Name",
                                            json_str_or(m, "name", ""), "Destination",
                                            json_str_or(m, "destination", ""), "RW",
                                            !json_is_true(json_object_get(m, "readonly"))));
  }
  json_t *exit_code = json_object_get(rec, "exit_code");
  json_object_set_new(
      v, "State",
      json_pack("{s:s, s:b, s:b, s:I, s:I, s:s, s:s}", "Status", status, "Running",
                ctr_live_parse(status) == LIVE_RUNNING, "Paused",
                ctr_live_parse(status) == LIVE_PAUSED, "Pid",
                json_integer_value(json_object_get(rec, "pid")), "ExitCode",
                json_integer_value(exit_code), "StartedAt", json_str_or(rec, "started_at", ""),
                "FinishedAt", json_str_or(rec, "finished_at", "")));
  json_object_set_new(v, "Id", json_string(json_str_or(rec, "id", "")));
  json_object_set_new(v, "ID", json_string(json_str_or(rec, "id", "")));
  json_object_set_new(v, "Name", json_string(json_str_or(rec, "name", "")));
  json_object_set_new(v, "Names", json_string(json_str_or(rec, "name", "")));
  json_object_set_new(v, "Created", json_string(json_str_or(rec, "created", "")));
  json_object_set_new(v, "Image", json_string(json_str_or(rec, "image_name", "")));
  json_object_set_new(v, "ImageID", json_string(json_str_or(rec, "image", "")));
  json_t *args = json_object_get(rec, "args");
  json_object_set_new(
      v, "Config",
      json_pack("{s:s, s:o, s:o, s:s, s:s}", "Image", json_str_or(rec, "image_name", ""), "Cmd",
                args ? json_incref(args) : json_array(), "Env",
                json_object_get(rec, "env") ? json_incref(json_object_get(rec, "env")) : json_array(),
                "WorkingDir", json_str_or(rec, "cwd", ""), "User", json_str_or(rec, "user", "")));
  json_object_set_new(v, "NetworkSettings",
                      json_pack("{s:s, s:s}", "IPAddress", json_str_or(rec, "ip", ""),
                                "MacAddress", json_str_or(rec, "mac", "")));
  json_object_set_new(v, "Mounts", mounts);
  json_object_set_new(v, "HostConfig",
                      json_pack("{s:b}", "AutoRemove", json_is_true(json_object_get(rec, "autoremove"))));
  /* ps's columns */
  json_object_set_new(v, "Status", json_string(status));
  json_object_set_new(v, "Command", json_string(""));
  if (json_is_array(args)) {
    size_t n = 0;
    json_t *a;
    json_array_foreach(args, i, a) n += strlen(json_string_value(a) ? json_string_value(a) : "") + 1;
    char *cmd = calloc(1, n + 1);
    if (!cmd)
      abort();
    json_array_foreach(args, i, a)
    {
      if (i)
        strcat(cmd, " ");
      strcat(cmd, json_string_value(a) ? json_string_value(a) : "");
    }
    json_object_set_new(v, "Command", json_string(cmd));
    free(cmd);
  }
  return v;
}
