/* ferry migrate NAME --to URL [--from URL] [--keep] [--memory MODE] [--no-compress] [--json] */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli.h"
#include "util/cleanup.h"
#include "util/fs.h"
#include "util/json.h"

static const char help[] =
    "Usage: ferry migrate [OPTIONS] NAME --to URL\n"
    "Moves a running container to another agent: memory, processes, TCP connections,\n"
    "rootfs changes and volumes, with the same address. If anything fails before the\n"
    "target runs it, the container resumes on the source as it was.\n\n"
    "  --to URL            the target agent (tcp://ADDR:PORT or https://ADDR:PORT)\n"
    "  --from URL          the source agent (default: --host)\n"
    "  --to-token-file F   the target's bearer token (default: the source agent's own)\n"
    "  --keep              keep the stopped source copy instead of removing it\n"
    "  --timeout S         give up (and resume on the source) after S seconds (default 300)\n"
    "  --memory MODE       how the memory travels: stream (into the target's CRIU page\n"
    "                      server while CRIU dumps), precopy (pre-dump rounds while it\n"
    "                      runs, then only what it wrote since), lazy (post-copy: the\n"
    "                      target runs it at once and fetches its memory from here;\n"
    "                      if this host dies before every page is served, the\n"
    "                      container is lost), copy (dump here, then send it as one\n"
    "                      archive) or auto (default: copy below 32 MiB, precopy from\n"
    "                      64 MiB when CRIU tracks memory, else stream; never lazy)\n"
    "  --downtime-target MS  precopy: stop the rounds once the rest would cross in\n"
    "                      MS milliseconds at the measured rate (default 200)\n"
    "  --no-compress       send layers, volumes, rootfs and CRIU images without zstd\n"
    "  --no-hold           drop the container's traffic while it is frozen (as before\n"
    "                      ferry held it and delivered it after the move)\n"
    "  --redirect-for S    after the move, this host's published ports lead to the\n"
    "                      target for S seconds (default 60; 0: not at all)\n"
    "  --json              print the final report as JSON\n";

static void progress_line(json_t *rep, bool final)
{
  char a[32], b[32];
  json_t *pr = json_object_get(rep, "progress");
  uint64_t sent = (uint64_t)json_integer_value(json_object_get(pr, "sent"));
  uint64_t total = (uint64_t)json_integer_value(json_object_get(pr, "total"));
  uint64_t all = (uint64_t)json_integer_value(json_object_get(json_object_get(rep, "bytes"), "total"));
  int64_t el = json_integer_value(json_object_get(rep, "elapsed_ms"));
  double rate = el > 0 ? (double)all * 1000.0 / (double)el : 0;
  fprintf(stderr, "\r\033[K%-9s ", json_str_or(rep, "phase", ""));
  if (total > 0) {
    int w = 24, fill = (int)((double)sent / (double)total * w);
    fputc('[', stderr);
    for (int i = 0; i < w; i++)
      fputc(i < fill ? '#' : '.', stderr);
    fprintf(stderr, "] ");
  }
  fprintf(stderr, "%s sent, %s/s", fmt_bytes(all, a, sizeof a), fmt_bytes((uint64_t)rate, b, sizeof b));
  if (final)
    fputc('\n', stderr);
  fflush(stderr);
}

static void print_report(json_t *rep)
{
  static const char *phases[] = {"offer", "precopy", "freeze", "dump", "transfer", "restore", "commit",
                                 "serve"};
  static const char *kinds[] = {"layers", "volumes", "rootfs", "pages", "other", "total"};
  char t[32], d[32];
  printf("Migrated %s to %s in %s (downtime %s)\n", json_str_or(rep, "container", ""),
         json_str_or(rep, "to", ""), fmt_ms(json_integer_value(json_object_get(rep, "total_ms")), t, sizeof t),
         fmt_ms(json_integer_value(json_object_get(rep, "downtime_ms")), d, sizeof d));
  printf("  phases:");
  json_t *ph = json_object_get(rep, "phases");
  for (size_t i = 0; i < ARRAY_SIZE(phases); i++) {
    json_t *v = json_object_get(ph, phases[i]);
    if (v)
      printf("%s %s %s", i ? " |" : "", phases[i], fmt_ms(json_integer_value(v), t, sizeof t));
  }
  printf("\n  sent:  ");
  json_t *by = json_object_get(rep, "bytes");
  for (size_t i = 0; i < ARRAY_SIZE(kinds); i++)
    printf("%s %s %s", i ? " |" : "", kinds[i],
           fmt_bytes((uint64_t)json_integer_value(json_object_get(by, kinds[i])), t, sizeof t));
  printf("\n");
  json_t *lz = json_object_get(rep, "post_copy");
  if (lz) {
    printf("  post-copy: every page served %s after the commit%s%s\n",
           fmt_ms(json_integer_value(json_object_get(lz, "served_ms")), t, sizeof t),
           json_object_get(lz, "error") ? "; FAILED: " : "", json_str_or(lz, "error", ""));
  }
  json_t *pc = json_object_get(rep, "precopy");
  if (pc) {
    size_t i;
    json_t *rd;
    printf("  precopy: %s (%s)\n", json_str_or(rep, "memory", ""), json_str_or(pc, "stopped", ""));
    json_array_foreach(json_object_get(pc, "rounds"), i, rd)
    {
      if (json_object_get(rd, "error")) {
        printf("    round %zu: failed: %s\n", i, json_str_or(rd, "error", ""));
        continue;
      }
      printf("    round %zu: %s in %s", i,
             fmt_bytes((uint64_t)json_integer_value(json_object_get(rd, "bytes")), t, sizeof t),
             fmt_ms(json_integer_value(json_object_get(rd, "ms")), d, sizeof d));
      json_t *dr = json_object_get(rd, "dirty_bytes_per_s");
      if (dr)
        printf(", written at %s/s", fmt_bytes((uint64_t)json_integer_value(dr), t, sizeof t));
      printf("\n");
    }
  }
  json_t *tr = json_object_get(rep, "target");
  if (tr)
    printf("  target: restore %s (CRIU %s)\n",
           fmt_ms(json_integer_value(json_object_get(tr, "total_ms")), t, sizeof t),
           fmt_ms(json_integer_value(json_object_get(json_object_get(tr, "criu"), "restore_time_us")) / 1000,
                  d, sizeof d));
}

int cmd_migrate(struct cli *cli, int argc, char **argv)
{
  if (cli_wants_help(argc, argv, help))
    return 0;
  static const struct option lo[] = {{"to", required_argument, 0, 't'},
                                     {"from", required_argument, 0, 'f'},
                                     {"to-token-file", required_argument, 0, 'T'},
                                     {"keep", no_argument, 0, 'k'},
                                     {"timeout", required_argument, 0, 'w'},
                                     {"json", no_argument, 0, 'j'},
                                     {"memory", required_argument, 0, 'm'},
                                     {"no-compress", no_argument, 0, 'Z'},
                                     {"no-hold", no_argument, 0, 'H'},
                                     {"redirect-for", required_argument, 0, 'R'},
                                     {"downtime-target", required_argument, 0, 'D'},
                                     {0, 0, 0, 0}};
  const char *to = NULL, *from = NULL, *tokfile = NULL, *memory = NULL;
  bool keep = false, compress = true, hold = true;
  int timeout = 0, redirect = -1, dtarget = -1, c;
  optind = 1;
  while ((c = cli_getopt(argc, argv, "", lo)) != -1) {
    switch (c) {
    case 't': to = optarg; break;
    case 'f': from = optarg; break;
    case 'T': tokfile = optarg; break;
    case 'k': keep = true; break;
    case 'w': timeout = atoi(optarg); break;
    case 'j': cli->json = true; break;
    case 'm': memory = optarg; break;
    case 'Z': compress = false; break;
    case 'H': hold = false; break;
    case 'R': {
      char *end;
      long v = strtol(optarg, &end, 10);
      if (*end || end == optarg || v < 0 || v > 86400)
        return cli_usage_error("--redirect-for needs seconds 0..86400");
      redirect = (int)v;
      break;
    }
    case 'D': {
      char *end;
      long v = strtol(optarg, &end, 10);
      if (*end || end == optarg || v < 1 || v > 600000)
        return cli_usage_error("--downtime-target needs milliseconds 1..600000");
      dtarget = (int)v;
      break;
    }
    default: return 125;
    }
  }
  if (optind + 1 != argc || !to)
    return cli_usage_error("migrate needs a container NAME and --to URL (see ferry migrate --help)");
  const char *name = argv[optind];
  struct ferry_err err = {0};
  struct http_client *api = cli->api;
  struct http_client *fromc = NULL;
  if (from) {
    if (http_client_new(from, &fromc, &err) < 0)
      return cli_fail(&err);
    http_client_set_token(fromc, cli->token);
    http_client_set_ca(fromc, cli->tls_ca);
    api = fromc;
  }
  _cleanup_json_ json_t *req = json_pack("{s:s, s:b}", "to", to, "keep", keep);
  if (timeout > 0)
    json_object_set_new(req, "timeout", json_integer(timeout));
  if (memory)
    json_object_set_new(req, "memory", json_string(memory));
  if (!compress)
    json_object_set_new(req, "compress", json_false());
  if (!hold)
    json_object_set_new(req, "hold", json_false());
  if (redirect >= 0)
    json_object_set_new(req, "redirect_for", json_integer(redirect));
  if (dtarget > 0)
    json_object_set_new(req, "downtime_target_ms", json_integer(dtarget));
  if (tokfile) {
    _cleanup_free_ char *tok = NULL;
    if (read_token_file(tokfile, &tok, &err) < 0) {
      http_client_free(fromc);
      return cli_fail(&err);
    }
    json_object_set_new(req, "token", json_string(tok));
  }
  _cleanup_free_ char *e = http_escape(name);
  _cleanup_free_ char *url = xasprintf("/v1/containers/%s/migrate", e);
  _cleanup_json_ json_t *started = NULL;
  if (http_call(api, "POST", url, req, &started, &err) < 0) {
    http_client_free(fromc);
    return cli_fail(&err);
  }
  _cleanup_free_ char *murl = xasprintf("/v1/migrations/%s", json_str_or(started, "id", ""));
  bool tty = isatty(2) && !cli->json;
  json_t *rep = NULL;
  /* bounded: the agent gives up after its timeout; we poll a little longer */
  uint64_t deadline = now_mono_ms() + (uint64_t)(timeout > 0 ? timeout : 300) * 1000 + 60000;
  for (;;) {
    json_decref(rep);
    rep = NULL;
    if (http_call(api, "GET", murl, NULL, &rep, &err) < 0) {
      if (tty)
        fputc('\n', stderr);
      http_client_free(fromc);
      return cli_fail(&err);
    }
    bool running = strcmp(json_str_or(rep, "status", ""), "running") == 0;
    if (tty)
      progress_line(rep, !running);
    if (!running || now_mono_ms() > deadline)
      break;
    usleep(100000);
  }
  http_client_free(fromc);
  int rc = 0;
  if (cli->json) {
    cli_print_json(rep);
    rc = strcmp(json_str_or(rep, "status", ""), "succeeded") == 0 ? 0 : 125;
  } else if (strcmp(json_str_or(rep, "status", ""), "succeeded") == 0) {
    print_report(rep);
  } else {
    fprintf(stderr, "Error: migration of %s to %s failed in phase %s: %s%s\n", name, to,
            json_str_or(rep, "failed_phase", "?"), json_str_or(rep, "error", "still running"),
            json_is_true(json_object_get(rep, "resumed_on_source"))
                ? " (the container runs on the source as before)"
                : "");
    rc = 125;
  }
  json_decref(rep);
  return rc;
}
