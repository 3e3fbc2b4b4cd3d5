/* ferry checkpoint, ferry restore */
#include <getopt.h>
#include <stdio.h>
#include <string.h>

#include "cli.h"
#include "util/cleanup.h"
#include "util/fs.h"
#include "util/json.h"

static int64_t geti(json_t *o, const char *k) { return (int64_t)json_integer_value(json_object_get(o, k)); }

int cmd_checkpoint(struct cli *cli, int argc, char **argv)
{
  if (cli_wants_help(argc, argv,
                     "Usage: ferry checkpoint [--leave-running] [--json] NAME DIR\n"
                     "Writes a self-contained checkpoint of a running container to DIR (on the\n"
                     "agent's host): CRIU images with established TCP connections, the container\n"
                     "record, its rootfs changes and its volumes. The container stops unless\n"
                     "--leave-running is given.\n"))
    return 0;
  static const struct option lo[] = {{"leave-running", no_argument, 0, 'R'},
                                     {"json", no_argument, 0, 'j'},
                                     {0, 0, 0, 0}};
  bool leave = false;
  int c;
  optind = 1;
  while ((c = cli_getopt(argc, argv, "R", lo)) != -1) {
    if (c == 'R')
      leave = true;
    else if (c == 'j')
      cli->json = true;
    else
      return 125;
  }
  if (optind + 2 != argc)
    return cli_usage_error("checkpoint needs a container NAME and a DIR");
  _cleanup_free_ char *dir = cli_abs_path(argv[optind + 1]);
  _cleanup_json_ json_t *req = json_pack("{s:s, s:b}", "dir", dir, "leave_running", leave);
  _cleanup_free_ char *e = http_escape(argv[optind]);
  _cleanup_free_ char *url = xasprintf("/v1/containers/%s/checkpoint", e);
  struct ferry_err err = {0};
  _cleanup_json_ json_t *rep = NULL;
  if (http_call(cli->api, "POST", url, req, &rep, &err) < 0)
    return cli_fail(&err);
  if (cli->json) {
    cli_print_json(rep);
    return 0;
  }
  json_t *criu = json_object_get(rep, "criu");
  char a[32], b[32], d[32], f[32], t[32], sz[32], rs[32];
  printf("Checkpointed %s to %s%s\n", argv[optind], dir, leave ? " (left running)" : "");
  printf("  freeze %s, files %s, dump %s, total %s\n", fmt_ms(geti(rep, "freeze_ms"), a, sizeof a),
         fmt_ms(geti(rep, "files_ms"), f, sizeof f), fmt_ms(geti(rep, "dump_ms"), d, sizeof d),
         fmt_ms(geti(rep, "total_ms"), t, sizeof t));
  if (criu)
    printf("  CRIU: frozen %s, memory dump %s, %lld pages written (%s)\n",
           fmt_ms(geti(criu, "frozen_time_us") / 1000, b, sizeof b),
           fmt_ms(geti(criu, "memdump_time_us") / 1000, rs, sizeof rs),
           (long long)geti(criu, "pages_written"),
           fmt_bytes((uint64_t)geti(criu, "pages_written") * 4096, sz, sizeof sz));
  char cb[32], rb[32], vb[32];
  printf("  sizes: CRIU images %s, rootfs changes %s, volumes %s\n",
         fmt_bytes((uint64_t)geti(rep, "criu_bytes"), cb, sizeof cb),
         fmt_bytes((uint64_t)geti(rep, "rootfs_bytes"), rb, sizeof rb),
         fmt_bytes((uint64_t)geti(rep, "volume_bytes"), vb, sizeof vb));
  return 0;
}

int cmd_restore(struct cli *cli, int argc, char **argv)
{
  if (cli_wants_help(argc, argv,
                     "Usage: ferry restore [--name NEW] [--json] DIR\n"
                     "Restores a container from a checkpoint directory written by ferry\n"
                     "checkpoint, with its address and its established TCP connections.\n"))
    return 0;
  static const struct option lo[] = {{"name", required_argument, 0, 'n'},
                                     {"json", no_argument, 0, 'j'},
                                     {0, 0, 0, 0}};
  const char *name = NULL;
  int c;
  optind = 1;
  while ((c = cli_getopt(argc, argv, "n:", lo)) != -1) {
    if (c == 'n')
      name = optarg;
    else if (c == 'j')
      cli->json = true;
    else
      return 125;
  }
  if (optind + 1 != argc)
    return cli_usage_error("restore needs a checkpoint DIR");
  _cleanup_free_ char *dir = cli_abs_path(argv[optind]);
  _cleanup_json_ json_t *req = json_pack("{s:s}", "dir", dir);
  if (name)
    json_object_set_new(req, "name", json_string(name));
  struct ferry_err err = {0};
  _cleanup_json_ json_t *rep = NULL;
  if (http_call(cli->api, "POST", "/v1/containers/restore", req, &rep, &err) < 0)
    return cli_fail(&err);
  if (cli->json) {
    cli_print_json(rep);
    return 0;
  }
  json_t *criu = json_object_get(rep, "criu");
  char a[32], b[32], t[32], r[32];
  printf("Restored %s from %s\n", json_str_or(rep, "container", "?"), dir);
  printf("  files %s, network and rootfs %s, restore %s, total %s\n",
         fmt_ms(geti(rep, "files_ms"), a, sizeof a), fmt_ms(geti(rep, "setup_ms"), b, sizeof b),
         fmt_ms(geti(rep, "restore_ms"), r, sizeof r), fmt_ms(geti(rep, "total_ms"), t, sizeof t));
  if (criu)
    printf("  CRIU: restore %s, %lld pages restored\n",
           fmt_ms(geti(criu, "restore_time_us") / 1000, a, sizeof a),
           (long long)geti(criu, "pages_restored"));
  return 0;
}
