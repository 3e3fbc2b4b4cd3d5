/* ferry --coord URL node ls | migrate NAME --to NODE [--from NODE] [--keep] */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli.h"
#include "util/cleanup.h"
#include "util/fs.h"
#include "util/json.h"

int cmd_node(struct cli *cli, int argc, char **argv)
{
  if (cli_wants_help(argc, argv,
                     "Usage: ferry --coord URL node ls [--json]\n"
                     "Lists the nodes a coordinator knows: status, URL, satellite, last seen.\n"))
    return 0;
  if (!cli->coord)
    return cli_usage_error("node needs a coordinator: --coord URL or $FERRY_COORD");
  if (argc < 2 || (strcmp(argv[1], "ls") != 0 && strcmp(argv[1], "list") != 0))
    return cli_usage_error("usage: ferry --coord URL node ls [--json]");
  for (int i = 2; i < argc; i++)
    if (strcmp(argv[i], "--json") == 0)
      cli->json = true;
  struct ferry_err err = {0};
  _cleanup_json_ json_t *nodes = NULL;
  if (http_call(cli->api, "GET", "/v1/nodes", NULL, &nodes, &err) < 0)
    return cli_fail(&err);
  if (cli->json) {
    cli_print_json(nodes);
    return 0;
  }
  printf("%-20s %-6s %-32s %-16s %s\n", "NODE", "STATUS", "URL", "SATELLITE", "LAST SEEN");
  size_t i;
  json_t *n;
  json_array_foreach(nodes, i, n)
  printf("%-20s %-6s %-32s %-16s %llds ago\n", json_str_or(n, "name", ""), json_str_or(n, "status", ""),
         json_str_or(n, "url", ""), json_str_or(n, "satellite", "-"),
         (long long)json_integer_value(json_object_get(n, "last_seen_s_ago")));
  return 0;
}

int coord_migrate_cmd(struct cli *cli, int argc, char **argv)
{
  static const struct option lo[] = {{"to", required_argument, 0, 't'},
                                     {"from", required_argument, 0, 'f'},
                                     {"keep", no_argument, 0, 'k'},
                                     {"json", no_argument, 0, 'j'},
                                     {0, 0, 0, 0}};
  const char *to = NULL, *from = NULL;
  bool keep = false;
  int c;
  optind = 1;
  while ((c = cli_getopt(argc, argv, "", lo)) != -1) {
    switch (c) {
    case 't': to = optarg; break;
    case 'f': from = optarg; break;
    case 'k': keep = true; break;
    case 'j': cli->json = true; break;
    default: return 125;
    }
  }
  if (optind + 1 != argc || !to)
    return cli_usage_error("usage: ferry --coord URL migrate NAME --to NODE [--from NODE] [--keep]");
  _cleanup_json_ json_t *req = json_pack("{s:s, s:s, s:b}", "container", argv[optind], "to", to,
                                         "keep", keep);
  if (from)
    json_object_set_new(req, "from", json_string(from));
  struct ferry_err err = {0};
  _cleanup_json_ json_t *started = NULL;
  if (http_call(cli->api, "POST", "/v1/migrations", req, &started, &err) < 0)
    return cli_fail(&err);
  _cleanup_free_ char *url = xasprintf("/v1/migrations/%s", json_str_or(started, "id", ""));
  json_t *m = NULL;
  for (int i = 0; i < 36000; i++) { /* bounded: an hour */
    json_decref(m);
    m = NULL;
    if (http_call(cli->api, "GET", url, NULL, &m, &err) < 0)
      return cli_fail(&err);
    if (strcmp(json_str_or(m, "status", ""), "running") != 0)
      break;
    usleep(100000);
  }
  bool ok = strcmp(json_str_or(m, "status", ""), "succeeded") == 0;
  if (cli->json) {
    cli_print_json(m);
  } else if (ok) {
    json_t *rep = json_object_get(m, "report");
    printf("Migrated %s from %s to %s (downtime %lld ms, total %lld ms)\n", argv[optind],
           json_str_or(m, "origin", ""), json_str_or(m, "dest", ""),
           (long long)json_integer_value(json_object_get(rep, "downtime_ms")),
           (long long)json_integer_value(json_object_get(rep, "total_ms")));
  } else {
    fprintf(stderr, "Error: migration of %s %s: %s\n", argv[optind], json_str_or(m, "status", "?"),
            json_str_or(m, "error", ""));
  }
  json_decref(m);
  return ok ? 0 : 125;
}
