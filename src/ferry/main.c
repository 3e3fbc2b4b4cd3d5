/* ferry: the command line. Talks to a ferry agent over its REST API. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "util/cleanup.h"
#include "util/fs.h"

static const struct cli_cmd commands[] = {
    {"run", cmd_run, "Create and start a container"},
    {"create", cmd_create, "Create a container without starting it"},
    {"start", cmd_start, "Start containers"},
    {"stop", cmd_stop, "Stop containers"},
    {"restart", cmd_restart, "Stop and start containers"},
    {"wait", cmd_wait, "Wait for containers to exit, print their exit codes"},
    {"pause", cmd_pause, "Freeze containers' processes"},
    {"resume", cmd_resume, "Thaw containers left paused"},
    {"unpause", cmd_resume, "Same as resume (podman's name)"},
    {"kill", cmd_kill, "Send a signal to containers"},
    {"rm", cmd_rm, "Remove containers"},
    {"ps", cmd_ps, "List containers"},
    {"inspect", cmd_inspect, "Show a container's record as JSON"},
    {"logs", cmd_logs, "Show a container's output"},
    {"port", cmd_port, "Show a container's published ports"},
    {"top", cmd_top, "Show a container's processes"},
    {"stats", cmd_stats, "Show containers' resource use"},
    {"exec", cmd_exec, "Run a command in a running container"},
    {"attach", cmd_attach, "Attach to a running container's output and input"},
    {"cp", cmd_cp, "Copy files between the host and a container"},
    {"checkpoint", cmd_checkpoint, "Checkpoint a running container to a directory"},
    {"restore", cmd_restore, "Restore a container from a checkpoint directory"},
    {"migrate", cmd_migrate, "Move a running container to another agent, live"},
    {"image", cmd_image, "Manage images (import, pull, push, ls, rm, tag, save, prune, inspect)"},
    {"pull", cmd_pull, "Pull an image from a registry"},
    {"push", cmd_push, "Push an image to a registry"},
    {"images", cmd_images, "List images"},
    {"rmi", cmd_rmi, "Remove images (image rm)"},
    {"tag", cmd_tag, "Give an image more names (image tag)"},
    {"save", cmd_save, "Write an image as an OCI archive (image save)"},
    {"volume", cmd_volume, "Manage volumes (create, ls, rm, inspect, prune)"},
    {"container", cmd_container, "container prune: remove containers that do not run"},
    {"info", cmd_info, "Show the agent's identity and settings"},
    {"version", cmd_version, "Show the client's and the agent's versions"},
    {"node", cmd_node, "List the coordinator's nodes (with --coord)"},
};

static void usage(FILE *f)
{
  fprintf(f, "Usage: ferry [--host URL] [--json] COMMAND [ARGS...]\n\n"
             "Global options:\n"
             "  --host URL   agent to talk to: unix:///PATH or tcp://ADDR:PORT\n"
             "               (default: $FERRY_HOST, else unix:///run/ferry/ferryd.sock)\n"
             "  --token-file F  bearer token for a TCP agent (default: $FERRY_TOKEN_FILE)\n"
             "  --tls-ca F      CA that signed an HTTPS agent's certificate ($FERRY_TLS_CA)\n"
             "  --coord URL     talk to a coordinator (node ls, migrate) ($FERRY_COORD)\n"
             "  --json       machine-readable output\n\nCommands:\n");
  for (size_t i = 0; i < ARRAY_SIZE(commands); i++)
    fprintf(f, "  %-12s %s\n", commands[i].name, commands[i].summary);
  fprintf(f, "\nRun 'ferry COMMAND --help' for a command's options.\n");
}

int main(int argc, char **argv)
{
  const char *host = NULL;
  const char *token_file = getenv("FERRY_TOKEN_FILE");
  struct cli cli = {.tls_ca = getenv("FERRY_TLS_CA"), .coord = getenv("FERRY_COORD")};
  _cleanup_free_ char *token = NULL;
  int i = 1;
  for (; i < argc; i++) {
    if (strcmp(argv[i], "--host") == 0 || strcmp(argv[i], "-H") == 0) {
      if (i + 1 >= argc)
        return cli_usage_error("--host needs a URL");
      host = argv[++i];
    } else if (strncmp(argv[i], "--host=", 7) == 0) {
      host = argv[i] + 7;
    } else if (strcmp(argv[i], "--json") == 0) {
      cli.json = true;
    } else if (strcmp(argv[i], "--coord") == 0) {
      if (i + 1 >= argc)
        return cli_usage_error("--coord needs a URL");
      cli.coord = argv[++i];
    } else if (strcmp(argv[i], "--token-file") == 0 || strcmp(argv[i], "--tls-ca") == 0) {
      if (i + 1 >= argc)
        return cli_usage_error("%s needs a file", argv[i]);
      if (strcmp(argv[i], "--token-file") == 0)
        token_file = argv[++i];
      else
        cli.tls_ca = argv[++i];
    } else if (strcmp(argv[i], "-h") == 0 || strcmp(argv[i], "--help") == 0) {
      usage(stdout);
      return 0;
    } else if (strcmp(argv[i], "--version") == 0) {
      puts("ferry " FERRY_VERSION);
      return 0;
    } else if (argv[i][0] == '-') {
      return cli_usage_error("unknown global option %s (see ferry --help)", argv[i]);
    } else {
      break;
    }
  }
  if (i >= argc) {
    usage(stderr);
    return 125;
  }
  const char *name = argv[i];
  for (size_t k = 0; k < ARRAY_SIZE(commands); k++) {
    if (strcmp(commands[k].name, name) != 0)
      continue;
    struct ferry_err err = {0};
    /* With --coord, node and migrate go to the coordinator. */
    bool to_coord = cli.coord && *cli.coord &&
                    (strcmp(name, "node") == 0 || strcmp(name, "migrate") == 0);
    if (http_client_new(to_coord ? cli.coord : host, &cli.api, &err) < 0)
      return cli_fail(&err);
    if (to_coord)
      http_client_set_peer(cli.api, "the coordinator", "is ferry-coord running?");
    if (token_file && *token_file) {
      if (read_token_file(token_file, &token, &err) < 0) {
        http_client_free(cli.api);
        return cli_fail(&err);
      }
      cli.token = token;
    }
    http_client_set_token(cli.api, cli.token);
    http_client_set_ca(cli.api, cli.tls_ca);
    /* Per-command --json is accepted too. */
    int r = to_coord && strcmp(name, "migrate") == 0 ? coord_migrate_cmd(&cli, argc - i, argv + i)
                                                      : commands[k].fn(&cli, argc - i, argv + i);
    http_client_free(cli.api);
    return r;
  }
  return cli_usage_error("unknown command \"%s\" (see ferry --help)", name);
}
