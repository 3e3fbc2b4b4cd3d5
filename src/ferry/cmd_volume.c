/* ferry volume create|ls|rm|inspect|prune */
#include <stdio.h>
#include <string.h>

#include "cli.h"
#include "util/cleanup.h"
#include "util/fs.h"
#include "util/json.h"

int cmd_volume(struct cli *cli, int argc, char **argv)
{
  static const char help[] = "Usage: ferry volume COMMAND\n\n"
                             "  create NAME      create a named volume\n"
                             "  ls [--json]      list volumes\n"
                             "  rm NAME...       remove volumes no container uses\n"
                             "  inspect NAME     show a volume\n"
                             "  prune [-f]       remove every volume no container uses (-f: without\n"
                             "                   asking)\n";
  if (argc < 2 || strcmp(argv[1], "-h") == 0 || strcmp(argv[1], "--help") == 0) {
    fputs(help, argc < 2 ? stderr : stdout);
    return argc < 2 ? 125 : 0;
  }
  const char *sub = argv[1];
  static const struct {
    const char *sub, *usage;
  } usages[] = {
      {"create", "Usage: ferry volume create NAME...\nCreates named volumes.\n"},
      {"ls", "Usage: ferry volume ls [--json]\nLists volumes: name, size, mount point.\n"},
      {"list", "Usage: ferry volume list [--json]\nLists volumes: name, size, mount point.\n"},
      {"rm", "Usage: ferry volume rm [-f] NAME...\nRemoves volumes (refused while a container "
             "uses one, -f too).\n"},
      {"inspect", "Usage: ferry volume inspect NAME...\nShows volumes as JSON.\n"},
      {"prune", "Usage: ferry volume prune [-f] [--json]\nRemoves every volume no container "
                "uses; -f: without asking.\n"},
  };
  for (size_t k = 0; k < sizeof usages / sizeof usages[0]; k++)
    if (strcmp(sub, usages[k].sub) == 0 && cli_wants_help(argc - 1, argv + 1, usages[k].usage))
      return 0;
  for (int i = 2; i < argc; i++)
    if (strcmp(argv[i], "--json") == 0)
      cli->json = true;
  struct ferry_err err = {0};
  if (strcmp(sub, "create") != 0 && strcmp(sub, "rm") != 0 && strcmp(sub, "inspect") != 0 &&
      strcmp(sub, "ls") != 0 && strcmp(sub, "list") != 0 && strcmp(sub, "prune") != 0)
    return cli_usage_error("unknown volume command \"%s\" (see ferry volume --help)", sub);
  if (strcmp(sub, "prune") == 0) {
    bool force = false;
    for (int i = 2; i < argc; i++) {
      if (strcmp(argv[i], "-f") == 0 || strcmp(argv[i], "--force") == 0)
        force = true;
      else if (strcmp(argv[i], "--json") != 0)
        return cli_usage_error("volume prune: unknown argument \"%s\" (see ferry volume --help)",
                               argv[i]);
    }
    if (!force && !cli_confirm("This will remove all volumes not used by at least one container."))
      return 0;
    _cleanup_json_ json_t *list = NULL;
    if (http_call(cli->api, "GET", "/v1/volumes", NULL, &list, &err) < 0)
      return cli_fail(&err);
    _cleanup_json_ json_t *items = json_array();
    size_t i;
    json_t *v;
    json_array_foreach(list, i, v)
    {
      const char *name = json_str_or(v, "name", "");
      _cleanup_free_ char *e = http_escape(name);
      _cleanup_free_ char *url = xasprintf("/v1/volumes/%s", e);
      json_array_append_new(items, json_pack("{s:s, s:s}", "url", url, "label", name));
    }
    return cli_prune(cli, items);
  }
  if (strcmp(sub, "ls") == 0 || strcmp(sub, "list") == 0) {
    _cleanup_json_ json_t *list = NULL;
    if (http_call(cli->api, "GET", "/v1/volumes", NULL, &list, &err) < 0)
      return cli_fail(&err);
    if (cli->json) {
      cli_print_json(list);
      return 0;
    }
    printf("%-24s  %-10s  %s\n", "NAME", "SIZE", "MOUNTPOINT");
    size_t i;
    json_t *v;
    json_array_foreach(list, i, v)
    {
      char sz[32];
      fmt_bytes((uint64_t)json_integer_value(json_object_get(v, "size")), sz, sizeof sz);
      printf("%-24s  %-10s  %s\n", json_str_or(v, "name", ""), sz, json_str_or(v, "mountpoint", ""));
    }
    return 0;
  }
  int rc = 0;
  int n = 0;
  for (int i = 2; i < argc; i++) {
    if (strcmp(argv[i], "--json") == 0)
      continue;
    /* podman's rm -f / --force: accepted (a volume in use is still refused) */
    if (strcmp(sub, "rm") == 0 && (strcmp(argv[i], "-f") == 0 || strcmp(argv[i], "--force") == 0))
      continue;
    if (argv[i][0] == '-')
      return cli_usage_error("volume %s: unknown option \"%s\"", sub, argv[i]);
    n++;
    _cleanup_free_ char *e = http_escape(argv[i]);
    _cleanup_free_ char *url = xasprintf("/v1/volumes/%s", e);
    _cleanup_json_ json_t *out = NULL;
    int r;
    if (strcmp(sub, "create") == 0) {
      _cleanup_json_ json_t *req = json_pack("{s:s}", "name", argv[i]);
      r = http_call(cli->api, "POST", "/v1/volumes", req, &out, &err);
    } else if (strcmp(sub, "rm") == 0) {
      r = http_call(cli->api, "DELETE", url, NULL, &out, &err);
    } else if (strcmp(sub, "inspect") == 0) {
      r = http_call(cli->api, "GET", url, NULL, &out, &err);
    } else {
      return cli_usage_error("unknown volume command \"%s\"", sub);
    }
    if (r < 0)
      rc = cli_fail(&err);
    else if (strcmp(sub, "inspect") == 0 || cli->json)
      cli_print_json(out);
    else
      puts(argv[i]);
  }
  if (n == 0)
    return cli_usage_error("volume %s needs a NAME (see ferry volume --help)", sub);
  return rc;
}
