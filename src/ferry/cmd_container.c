/* ferry run/create/start/stop/kill/rm/ps/inspect/logs/exec */
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "cli.h"
#include "net/ports.h"
#include "runtime/record.h"
#include "util/cleanup.h"
#include "util/fs.h"
#include "util/json.h"

static char *ctr_url(const char *name, const char *suffix)
{
  _cleanup_free_ char *e = http_escape(name);
  return xasprintf("/v1/containers/%s%s", e, suffix ? suffix : "");
}

static const char run_help[] =
    "Usage: ferry run [OPTIONS] IMAGE [COMMAND [ARG...]]\n"
    "       ferry create [OPTIONS] IMAGE [COMMAND [ARG...]]\n\n"
    "  -d, --detach          run in the background and print the container id (run)\n"
    "  -i, --interactive     keep its stdin open; attached, what comes on ours goes to it\n"
    "  -t, --tty             give it a terminal (with -i from a terminal: raw mode, size\n"
    "                        followed; the detach keys leave it running)\n"
    "  --detach-keys KEYS    keys that detach (default ctrl-p,ctrl-q; \"\" for none)\n"
    "  --name NAME           container name (default: generated)\n"
    "  --ip ADDR             pin the container's address (from the agent's subnet)\n"
    "  -v, --volume VOL:/path[:ro]  mount named volume VOL (created if missing), read-only with :ro;\n"
    "                        /host/path:/path[:ro] mounts a path of the agent's host (not moved)\n"
    "  --tmpfs /path[:OPTS]  mount a tmpfs (OPTS: ro, exec, suid, dev, size=N[kmg], mode=OCTAL;\n"
    "                        default rw,noexec,nosuid,nodev); its contents move with the container\n"
    "  --mount type=TYPE,...  podman's --mount: type=volume|bind|tmpfs, source= (src=),\n"
    "                        target= (destination=, dst=), readonly (ro), tmpfs-size=, tmpfs-mode=\n"
    "  -p, --publish [IP:]HOSTPORT:CTRPORT[/tcp|udp]  publish a port on the host\n"
    "  -e, --env KEY=VALUE   set an environment variable\n"
    "  -w, --workdir DIR     working directory\n"
    "  -u, --user USER[:GROUP]  user to run as\n"
    "  --rm                  remove the container when it exits (with -d, the agent\n"
    "                        removes it, also after ferry stop)\n"
    "  --json                print the container record as JSON\n"
    "An IMAGE named with its registry (HOST[:PORT]/REPOSITORY[:TAG]) that the agent\n"
    "lacks is pulled first, with --authfile, --creds, --cert-dir and --tls-verify as\n"
    "in ferry pull.\n";

/* The signal the attached run got last, for the container (0: none). */
static volatile sig_atomic_t pending_signal;

static void on_proxy_signal(int sig)
{
  __atomic_store_n(&pending_signal, sig, __ATOMIC_RELEASE);
}

static void proxy_signals(bool on)
{
  static const int sigs[] = {SIGINT, SIGTERM, SIGHUP, SIGQUIT, SIGUSR1, SIGUSR2};
  struct sigaction sa = {0};
  sa.sa_handler = on ? on_proxy_signal : SIG_DFL;
  sigemptyset(&sa.sa_mask);
  for (size_t i = 0; i < sizeof sigs / sizeof sigs[0]; i++)
    sigaction(sigs[i], &sa, NULL);
}

/* podman's --mount type=volume|bind|tmpfs,source=..,target=..[,readonly]
 * [,tmpfs-size=..][,tmpfs-mode=..] as the API's volumes and tmpfs entries. */
static int parse_mount(const char *arg, json_t *vols, json_t *tmpfs)
{
  _cleanup_free_ char *copy = xstrdup(arg);
  const char *type = NULL, *src = NULL, *dst = NULL, *size = NULL, *mode = NULL;
  bool ro = false;
  char *save = NULL;
  for (char *kv = strtok_r(copy, ",", &save); kv; kv = strtok_r(NULL, ",", &save)) {
    char *eq = strchr(kv, '=');
    const char *val = eq ? eq + 1 : NULL;
    if (eq)
      *eq = '\0';
    if (strcmp(kv, "type") == 0 && val)
      type = val;
    else if ((strcmp(kv, "source") == 0 || strcmp(kv, "src") == 0) && val)
      src = val;
    else if ((strcmp(kv, "target") == 0 || strcmp(kv, "destination") == 0 ||
              strcmp(kv, "dst") == 0) && val)
      dst = val;
    else if (strcmp(kv, "readonly") == 0 || strcmp(kv, "ro") == 0) {
      if (val && strcmp(val, "true") != 0 && strcmp(val, "false") != 0)
        return cli_usage_error("--mount %s: %s=%s: expected true or false", arg, kv, val);
      ro = !val || strcmp(val, "true") == 0;
    } else if (strcmp(kv, "tmpfs-size") == 0 && val)
      size = val;
    else if (strcmp(kv, "tmpfs-mode") == 0 && val)
      mode = val;
    else
      return cli_usage_error("--mount %s: unknown option \"%s\" (see ferry run --help)", arg, kv);
  }
  if (!type || !dst)
    return cli_usage_error("--mount %s: needs type= and target=", arg);
  if (strcmp(type, "tmpfs") == 0) {
    if (src)
      return cli_usage_error("--mount %s: a tmpfs has no source", arg);
    _cleanup_free_ char *spec = xasprintf("%s:%s%s%s%s%s", dst, ro ? "ro" : "rw", size ? ",size=" : "",
                                          size ? size : "", mode ? ",mode=" : "", mode ? mode : "");
    json_array_append_new(tmpfs, json_string(spec));
    return 0;
  }
  if (size || mode)
    return cli_usage_error("--mount %s: tmpfs-size and tmpfs-mode are for type=tmpfs", arg);
  if (!src)
    return cli_usage_error("--mount %s: type=%s needs source=", arg, type);
  if (strcmp(type, "bind") == 0 && src[0] != '/')
    return cli_usage_error("--mount %s: a bind mount's source is an absolute path of the host", arg);
  if (strcmp(type, "volume") == 0 && src[0] == '/')
    return cli_usage_error("--mount %s: a volume's source is a volume name (type=bind for a host path)", arg);
  if (strcmp(type, "bind") != 0 && strcmp(type, "volume") != 0)
    return cli_usage_error("--mount %s: unknown type \"%s\" (volume, bind or tmpfs)", arg, type);
  _cleanup_free_ char *v = xasprintf("%s:%s%s", src, dst, ro ? ":ro" : "");
  json_array_append_new(vols, json_string(v));
  return 0;
}

static int create_or_run(struct cli *cli, int argc, char **argv, bool start)
{
  if (cli_wants_help(argc, argv, run_help))
    return 0;
  static const struct option lo[] = {{"detach", no_argument, 0, 'd'},
                                     {"name", required_argument, 0, 'n'},
                                     {"ip", required_argument, 0, 0x107},
                                     {"interactive", no_argument, 0, 'i'},
                                     {"tty", no_argument, 0, 't'},
                                     {"detach-keys", required_argument, 0, 0x108},
                                     {"volume", required_argument, 0, 'v'},
                                     {"publish", required_argument, 0, 'p'},
                                     {"env", required_argument, 0, 'e'},
                                     {"workdir", required_argument, 0, 'w'},
                                     {"user", required_argument, 0, 'u'},
                                     {"rm", no_argument, 0, 'r'},
                                     {"json", no_argument, 0, 'j'},
                                     {"authfile", required_argument, 0, 0x101},
                                     {"creds", required_argument, 0, 0x102},
                                     {"cert-dir", required_argument, 0, 0x103},
                                     {"tls-verify", required_argument, 0, 0x104},
                                     {"tmpfs", required_argument, 0, 0x105},
                                     {"mount", required_argument, 0, 0x106},
                                     {0, 0, 0, 0}};
  _cleanup_json_ json_t *req = json_object();
  _cleanup_json_ json_t *pull = json_object();
  json_t *vols = json_array(), *env = json_array(), *ports = json_array(), *tmpfs = json_array();
  json_object_set_new(req, "volumes", vols);
  json_object_set_new(req, "tmpfs", tmpfs);
  json_object_set_new(req, "ports", ports);
  json_object_set_new(req, "env", env);
  bool detach = false, autorm = false, in = false, tty = false;
  const char *keys = NULL;
  int c;
  optind = 1;
  while ((c = cli_getopt(argc, argv, "+dn:v:e:w:u:p:it", lo)) != -1) {
    switch (c) {
    case 'd': detach = true; break;
    case 'n': json_object_set_new(req, "name", json_string(optarg)); break;
    case 0x107: json_object_set_new(req, "ip", json_string(optarg)); break;
    case 'i': in = true; break;
    case 't': tty = true; break;
    case 0x108: keys = optarg; break;
    case 'v': json_array_append_new(vols, json_string(optarg)); break;
    case 0x105: json_array_append_new(tmpfs, json_string(optarg)); break;
    case 0x106: {
      int mr = parse_mount(optarg, vols, tmpfs);
      if (mr)
        return mr;
      break;
    }
    case 'p': json_array_append_new(ports, json_string(optarg)); break;
    case 'e':
      if (!strchr(optarg, '=')) {
        const char *v = getenv(optarg);
        if (!v)
          continue;
        _cleanup_free_ char *kv = xasprintf("%s=%s", optarg, v);
        json_array_append_new(env, json_string(kv));
      } else {
        json_array_append_new(env, json_string(optarg));
      }
      break;
    case 'w': json_object_set_new(req, "workdir", json_string(optarg)); break;
    case 'u': json_object_set_new(req, "user", json_string(optarg)); break;
    case 'r': autorm = true; break;
    case 'j': cli->json = true; break;
    default: {
      int pr = cli_pull_opts(c, optarg, pull);
      if (pr == 1)
        break;
      return pr ? pr : 125;
    }
    }
  }
  if (optind >= argc)
    return cli_usage_error("%s needs an IMAGE (see ferry %s --help)", argv[0], argv[0]);
  /* attached, stdout is the container's: a record before it would make
   * neither parseable */
  if (cli->json && start && !detach)
    return cli_usage_error("run: --json prints the new container's record: use it with -d "
                           "(attached, stdout is the container's output)");
  json_object_set_new(req, "image", json_string(argv[optind]));
  /* An image named with its registry that the agent lacks is pulled first
   * (as podman does; unqualified names are not looked up anywhere). */
  const char *image = argv[optind];
  size_t first = strcspn(image, "/");
  bool has_registry = image[first] == '/' &&
                      (memchr(image, '.', first) || memchr(image, ':', first) ||
                       (first == 9 && strncmp(image, "localhost", 9) == 0));
  if (has_registry) {
    struct ferry_err ierr = {0};
    _cleanup_free_ char *e = http_escape(image);
    _cleanup_free_ char *iurl = xasprintf("/v1/images/%s", e);
    _cleanup_json_ json_t *have = NULL;
    if (http_call(cli->api, "GET", iurl, NULL, &have, &ierr) < 0) {
      if (ierr.klass != FERRY_E_NOTFOUND)
        return cli_fail(&ierr);
      json_object_set_new(pull, "reference", json_string(image));
      int pr = cli_pull(cli, pull, true);
      if (pr != 0)
        return pr;
    }
  }
  if (optind + 1 < argc) {
    json_t *cmd = json_array();
    for (int i = optind + 1; i < argc; i++)
      json_array_append_new(cmd, json_string(argv[i]));
    json_object_set_new(req, "cmd", cmd);
  }
  json_object_set_new(req, "start", json_boolean(start));
  if (tty)
    json_object_set_new(req, "tty", json_true());
  if (in)
    json_object_set_new(req, "stdin", json_true());
  /* detached, the agent removes it when it exits (attached, this command
   * does, once it has its exit code) */
  if (autorm && detach)
    json_object_set_new(req, "remove", json_true());
  struct ferry_err err = {0};
  _cleanup_json_ json_t *rec = NULL;
  if (http_call(cli->api, "POST", "/v1/containers", req, &rec, &err) < 0)
    return cli_fail(&err);
  const char *id = json_str_or(rec, "id", "");
  if (cli->json)
    cli_print_json(rec);
  if (!start || detach) {
    if (!cli->json)
      puts(id);
    return 0;
  }
  const char *name = json_str_or(rec, "name", id);
  _cleanup_free_ char *url = ctr_url(name, NULL);
  int code = 0;
  if (in || tty) {
    /* its terminal or stdin, attached (interactive.c); what it said before
     * the attach came is kept for it by its shim */
    code = cli_attach(cli, name, in, keys);
    bool running = false;
    if (code == 0) {
      struct ferry_err se = {0};
      _cleanup_json_ json_t *st = NULL;
      if (http_call(cli->api, "GET", url, NULL, &st, &se) == 0)
        running = rec_status(st) == LIVE_RUNNING;
    }
    if (autorm && !running) {
      _cleanup_free_ char *durl = xasprintf("%s?force=1", url);
      if (http_call(cli->api, "DELETE", durl, NULL, NULL, &err) < 0)
        return cli_fail(&err);
    }
    return code;
  }
  /* Attached: follow the output until the container exits; the signals
   * this command gets (Ctrl-C, a kill) go to the container, as podman's
   * --sig-proxy does, and it is still followed (and removed with --rm)
   * when it ends. */
  size_t offset = 0;
  int no_code = 0; /* polls that found it ended but its exit code not yet noted */
  proxy_signals(true);
  for (;;) {
    int sig = __atomic_exchange_n(&pending_signal, 0, __ATOMIC_ACQ_REL);
    if (sig) {
      _cleanup_free_ char *kurl = xasprintf("%s/kill?signal=%d", url, sig);
      struct ferry_err ke = {0};
      if (http_call(cli->api, "POST", kurl, NULL, NULL, &ke) < 0 && ke.klass != FERRY_E_CONFLICT)
        fprintf(stderr, "Error: signal %d to %s: %s\n", sig, name, ke.msg);
    }
    _cleanup_free_ char *lurl = xasprintf("%s/logs?offset=%zu", url, offset);
    char *text = NULL;
    size_t len = 0;
    if (http_get_raw(cli->api, lurl, &text, &len, &err) == 0) {
      fwrite(text, 1, len, stdout);
      fflush(stdout);
      offset += len;
      free(text);
    }
    _cleanup_json_ json_t *st = NULL;
    if (http_call(cli->api, "GET", url, NULL, &st, &err) < 0)
      return cli_fail(&err);
    if (!ctr_live_up(rec_status(st))) {
      if (len > 0)
        continue; /* drain what is left */
      /* its end is seen a moment before its exit code is noted: wait for
       * that (bounded: 5 s), else a Ctrl-C'd container would "exit 0" */
      if (!json_is_integer(json_object_get(st, "exit_code")) && no_code++ < 50) {
        usleep(100000);
        continue;
      }
      code = (int)json_integer_value(json_object_get(st, "exit_code"));
      break;
    }
    usleep(100000);
  }
  proxy_signals(false);
  if (autorm) {
    _cleanup_free_ char *durl = xasprintf("%s?force=1", url);
    if (http_call(cli->api, "DELETE", durl, NULL, NULL, &err) < 0)
      return cli_fail(&err);
  }
  return code;
}

int cmd_run(struct cli *cli, int argc, char **argv) { return create_or_run(cli, argc, argv, true); }
int cmd_create(struct cli *cli, int argc, char **argv)
{
  return create_or_run(cli, argc, argv, false);
}

/* Runs one request per named container; prints each name on success. */
static int each(struct cli *cli, int argc, char **argv, int first, const char *method,
                const char *suffix)
{
  int rc = 0;
  if (first >= argc)
    return cli_usage_error("%s needs at least one container name", argv[0]);
  for (int i = first; i < argc; i++) {
    struct ferry_err err = {0};
    _cleanup_free_ char *url = ctr_url(argv[i], suffix);
    _cleanup_json_ json_t *out = NULL;
    if (http_call(cli->api, method, url, NULL, &out, &err) < 0)
      rc = cli_fail(&err);
    else if (cli->json)
      cli_print_json(out);
    else
      puts(argv[i]);
  }
  return rc;
}

int cmd_start(struct cli *cli, int argc, char **argv)
{
  if (cli_wants_help(argc, argv, "Usage: ferry start NAME...\n"))
    return 0;
  return each(cli, argc, argv, 1, "POST", "/start");
}

int cmd_resume(struct cli *cli, int argc, char **argv)
{
  if (cli_wants_help(argc, argv,
                     "Usage: ferry resume NAME...\n"
                     "Thaws a container left paused (frozen and off the network), e.g. by an agent\n"
                     "killed in the middle of a checkpoint: its link comes up and it runs on.\n"))
    return 0;
  return each(cli, argc, argv, 1, "POST", "/resume");
}

int cmd_pause(struct cli *cli, int argc, char **argv)
{
  if (cli_wants_help(argc, argv,
                     "Usage: ferry pause NAME...\n"
                     "Freezes the containers' processes (ferry unpause thaws them).\n"))
    return 0;
  return each(cli, argc, argv, 1, "POST", "/pause");
}

/* stop's and restart's -t/--time SECONDS into *t (left as it is when not
 * given); 125 on an error (said), 0 otherwise, optind at the names. */
static int stop_time_opt(int argc, char **argv, int *t)
{
  static const struct option lo[] = {{"time", required_argument, 0, 't'}, {0, 0, 0, 0}};
  int c;
  optind = 1;
  while ((c = cli_getopt(argc, argv, "+t:", lo)) != -1) {
    if (c != 't')
      return 125;
    char *end;
    long v = strtol(optarg, &end, 10);
    if (*end || end == optarg || v < 0 || v > 3600)
      return cli_usage_error("%s -t needs seconds 0..3600", argv[0]);
    *t = (int)v;
  }
  return 0;
}

int cmd_stop(struct cli *cli, int argc, char **argv)
{
  if (cli_wants_help(argc, argv,
                     "Usage: ferry stop [-t SECONDS] NAME...\n"
                     "  -t, --time N   seconds to wait after SIGTERM before SIGKILL (default 10)\n"))
    return 0;
  int t = -1;
  if (stop_time_opt(argc, argv, &t))
    return 125;
  _cleanup_free_ char *sfx = t >= 0 ? xasprintf("/stop?timeout=%d", t) : xstrdup("/stop");
  return each(cli, argc, argv, optind, "POST", sfx);
}

/* The live status of container ref ("" with err set when it cannot be had). */
static char *status_of(struct cli *cli, const char *ref, json_t **rec, struct ferry_err *err)
{
  _cleanup_free_ char *url = ctr_url(ref, NULL);
  json_t *out = NULL;
  if (http_call(cli->api, "GET", url, NULL, &out, err) < 0)
    return xstrdup("");
  char *st = xstrdup(json_str_or(out, "status", ""));
  if (rec)
    *rec = out;
  else
    json_decref(out);
  return st;
}

int cmd_restart(struct cli *cli, int argc, char **argv)
{
  if (cli_wants_help(argc, argv,
                     "Usage: ferry restart [-t SECONDS] NAME...\n"
                     "Stops (when it runs) and starts each container.\n"
                     "  -t, --time N   seconds to wait after SIGTERM before SIGKILL (default 10)\n"))
    return 0;
  int t = -1;
  if (stop_time_opt(argc, argv, &t))
    return 125;
  if (optind >= argc)
    return cli_usage_error("restart needs at least one container name (see ferry restart --help)");
  int rc = 0;
  for (int i = optind; i < argc; i++) {
    struct ferry_err err = {0};
    _cleanup_free_ char *st = status_of(cli, argv[i], NULL, &err);
    _cleanup_free_ char *stop = t >= 0 ? xasprintf("/stop?timeout=%d", t) : xstrdup("/stop");
    _cleanup_free_ char *surl = ctr_url(argv[i], stop);
    _cleanup_free_ char *gurl = ctr_url(argv[i], "/start");
    if (!*st || (ctr_live_up(ctr_live_parse(st)) &&
                 http_call(cli->api, "POST", surl, NULL, NULL, &err) < 0) ||
        http_call(cli->api, "POST", gurl, NULL, NULL, &err) < 0) {
      rc = cli_fail(&err);
      continue;
    }
    puts(argv[i]);
  }
  return rc;
}

int cmd_wait(struct cli *cli, int argc, char **argv)
{
  if (cli_wants_help(argc, argv,
                     "Usage: ferry wait NAME...\n"
                     "Waits until each container has exited and prints its exit code.\n"))
    return 0;
  if (argc < 2)
    return cli_usage_error("wait needs at least one container name (see ferry wait --help)");
  int rc = 0;
  for (int i = 1; i < argc; i++) {
    for (;;) {
      struct ferry_err err = {0};
      json_t *rec = NULL;
      _cleanup_free_ char *st = status_of(cli, argv[i], &rec, &err);
      if (!*st) {
        rc = cli_fail(&err);
        break;
      }
      if (!ctr_live_up(ctr_live_parse(st))) {
        printf("%lld\n", (long long)json_integer_value(json_object_get(rec, "exit_code")));
        fflush(stdout);
        json_decref(rec);
        break;
      }
      json_decref(rec);
      usleep(200000);
    }
  }
  return rc;
}

/* Removes every container that does not run (podman's container prune). */
int cmd_container(struct cli *cli, int argc, char **argv)
{
  if (argc < 2 || strcmp(argv[1], "-h") == 0 || strcmp(argv[1], "--help") == 0) {
    fputs("Usage: ferry container prune [-f]\n"
          "  prune [-f]   remove every container that does not run (-f: without asking)\n"
          "(the other podman container verbs are ferry's own: ferry ps, ferry rm, ...)\n",
          argc < 2 ? stderr : stdout);
    return argc < 2 ? 125 : 0;
  }
  if (strcmp(argv[1], "prune") != 0)
    return cli_usage_error("unknown container command \"%s\" (see ferry container --help)", argv[1]);
  bool force = false;
  for (int i = 2; i < argc; i++) {
    if (strcmp(argv[i], "-f") == 0 || strcmp(argv[i], "--force") == 0)
      force = true;
    else
      return cli_usage_error("container prune: unknown argument \"%s\"", argv[i]);
  }
  if (!force && !cli_confirm("This will remove all non running containers."))
    return 0;
  struct ferry_err err = {0};
  _cleanup_json_ json_t *list = NULL;
  if (http_call(cli->api, "GET", "/v1/containers?all=1", NULL, &list, &err) < 0)
    return cli_fail(&err);
  _cleanup_json_ json_t *items = json_array();
  size_t i;
  json_t *r;
  json_array_foreach(list, i, r)
  {
    if (ctr_live_up(rec_status(r)))
      continue;
    _cleanup_free_ char *url = ctr_url(json_str_or(r, "id", ""), NULL);
    json_array_append_new(items, json_pack("{s:s, s:s}", "url", url, "label", json_str_or(r, "id", "")));
  }
  return cli_prune(cli, items);
}

int cmd_kill(struct cli *cli, int argc, char **argv)
{
  if (cli_wants_help(argc, argv,
                     "Usage: ferry kill [-s SIGNAL] NAME...\n"
                     "  -s, --signal SIG   signal name or number (default KILL)\n"))
    return 0;
  static const struct option lo[] = {{"signal", required_argument, 0, 's'}, {0, 0, 0, 0}};
  int c;
  const char *sig = "KILL";
  optind = 1;
  while ((c = cli_getopt(argc, argv, "+s:", lo)) != -1) {
    if (c != 's')
      return 125;
    sig = optarg;
  }
  _cleanup_free_ char *esig = http_escape(sig);
  _cleanup_free_ char *sfx = xasprintf("/kill?signal=%s", esig);
  return each(cli, argc, argv, optind, "POST", sfx);
}

int cmd_rm(struct cli *cli, int argc, char **argv)
{
  if (cli_wants_help(argc, argv,
                     "Usage: ferry rm [-f] NAME...\n"
                     "  -f, --force   stop (kill) a running container first\n"))
    return 0;
  static const struct option lo[] = {{"force", no_argument, 0, 'f'}, {0, 0, 0, 0}};
  int c;
  bool force = false;
  optind = 1;
  while ((c = cli_getopt(argc, argv, "+f", lo)) != -1) {
    if (c != 'f')
      return 125;
    force = true;
  }
  return each(cli, argc, argv, optind, "DELETE", force ? "?force=1" : NULL);
}

static void short_cmd(json_t *args, char *buf, size_t len)
{
  buf[0] = '\0';
  size_t i;
  json_t *a;
  json_array_foreach(args, i, a)
  {
    size_t n = strlen(buf);
    snprintf(buf + n, len - n, "%s%s", i ? " " : "", json_string_value(a));
  }
  if (strlen(buf) > 24)
    strcpy(buf + 21, "...");
}

int cmd_ps(struct cli *cli, int argc, char **argv)
{
  if (cli_wants_help(argc, argv,
                     "Usage: ferry ps [-a] [-q] [-n N | -l] [--no-trunc] [--format FORMAT] [--json]\n"
                     "  -a, --all       also show containers that are not running\n"
                     "  -n, --last N    the N containers made last, any state (newest first)\n"
                     "  -l, --latest    the container made last (-n 1)\n"
                     "  -q, --quiet     only the containers' ids, one per line\n"
                     "  --no-trunc      whole ids\n"
                     "  --format F      a line per container, podman's Go-template habits:\n"
                     "                  '{{.Names}}\\t{{.Status}}', {{.ID}}, {{.Image}},\n"
                     "                  {{.Command}}, {{json .Ports}}, any field of inspect\n"))
    return 0;
  static const struct option lo[] = {{"all", no_argument, 0, 'a'}, {"json", no_argument, 0, 'j'},
                                     {"quiet", no_argument, 0, 'q'},
                                     {"no-trunc", no_argument, 0, 'T'},
                                     {"format", required_argument, 0, 'F'},
                                     {"last", required_argument, 0, 'n'},
                                     {"latest", no_argument, 0, 'l'}, {0, 0, 0, 0}};
  int c;
  bool all = false, quiet = false, notrunc = false;
  long last = -1;
  const char *format = NULL;
  optind = 1;
  while ((c = cli_getopt(argc, argv, "+aqn:l", lo)) != -1) {
    if (c == 'a')
      all = true;
    else if (c == 'l')
      last = 1;
    else if (c == 'n') {
      char *end = NULL;
      last = strtol(optarg, &end, 10);
      if (!*optarg || *end || last < 0)
        return cli_usage_error("ps: --last \"%s\": expected a number (see ferry ps --help)", optarg);
    }
    else if (c == 'j')
      cli->json = true;
    else if (c == 'q')
      quiet = true;
    else if (c == 'T')
      notrunc = true;
    else if (c == 'F')
      format = optarg;
    else
      return 125;
  }
  if (optind < argc)
    return cli_usage_error("ps takes no arguments (\"%s\")", argv[optind]);
  struct ferry_err err = {0};
  _cleanup_json_ json_t *list = NULL;
  if (http_call(cli->api, "GET", all || last >= 0 ? "/v1/containers?all=1" : "/v1/containers",
                NULL, &list, &err) < 0)
    return cli_fail(&err);
  if (last >= 0) {
    /* newest first (creation times are ISO 8601: they sort as strings) */
    size_t n = json_array_size(list);
    for (size_t a = 1; a < n; a++)
      for (size_t b = a; b > 0; b--) {
        json_t *x = json_array_get(list, b - 1), *y = json_array_get(list, b);
        if (strcmp(json_str_or(x, "created", ""), json_str_or(y, "created", "")) >= 0)
          break;
        json_incref(x);
        json_array_set(list, b - 1, y);
        json_array_set_new(list, b, x);
      }
    while (json_array_size(list) > (size_t)last)
      json_array_remove(list, json_array_size(list) - 1);
  }
  if (cli->json) {
    cli_print_json(list);
    return 0;
  }
  size_t qi;
  json_t *qr;
  if (format) {
    json_array_foreach(list, qi, qr)
    {
      _cleanup_json_ json_t *v = cli_podman_view(qr);
      json_object_set_new(v, "ID", json_sprintf("%.*s", notrunc ? 64 : 12, json_str_or(qr, "id", "")));
      _cleanup_free_ char *ports = ports_format(json_object_get(qr, "ports"));
      json_object_set_new(v, "Ports", json_string(ports));
      int fr = cli_format(stdout, format, v);
      if (fr)
        return fr;
    }
    return 0;
  }
  if (quiet) {
    json_array_foreach(list, qi, qr) printf("%.*s\n", notrunc ? 64 : 12, json_str_or(qr, "id", ""));
    return 0;
  }
  printf("%-12s  %-20s  %-20s  %-24s  %-14s  %-15s  %s\n", "CONTAINER ID", "NAME", "IMAGE",
         "COMMAND", "STATUS", "IP", "PORTS");
  size_t i;
  json_t *r;
  json_array_foreach(list, i, r)
  {
    char cmd[64], status[32];
    short_cmd(json_object_get(r, "args"), cmd, sizeof cmd);
    const char *st = json_str_or(r, "status", "?");
    if (rec_status(r) == LIVE_EXITED && json_object_get(r, "exit_code"))
      snprintf(status, sizeof status, "exited (%lld)",
               (long long)json_integer_value(json_object_get(r, "exit_code")));
    else
      snprintf(status, sizeof status, "%s", st);
    _cleanup_free_ char *ports = ports_format(json_object_get(r, "ports"));
    printf("%-12.*s  %-20s  %-20s  %-24s  %-14s  %-15s  %s\n", notrunc ? 64 : 12, json_str_or(r, "id", ""),
           json_str_or(r, "name", ""), json_str_or(r, "image_name", ""), cmd, status,
           json_str_or(r, "ip", ""), ports);
  }
  return 0;
}

int cmd_inspect(struct cli *cli, int argc, char **argv)
{
  if (cli_wants_help(argc, argv,
                     "Usage: ferry inspect [--format FORMAT] NAME...\n"
                     "The containers' records as JSON, or a line each with --format\n"
                     "(podman's Go-template habits: '{{.State.Status}}',\n"
                     "{{.NetworkSettings.IPAddress}}, {{json .Config.Cmd}}, or the record's\n"
                     "own fields: {{.ip}}).\n"))
    return 0;
  static const struct option lo[] = {{"format", required_argument, 0, 'f'},
                                     {"json", no_argument, 0, 'j'},
                                     {0, 0, 0, 0}};
  const char *format = NULL;
  int c;
  optind = 1;
  while ((c = cli_getopt(argc, argv, "+f:", lo)) != -1) {
    if (c == 'f')
      format = optarg;
    else if (c != 'j')
      return 125;
  }
  if (optind >= argc)
    return cli_usage_error("inspect needs a container name (see ferry inspect --help)");
  int rc = 0;
  json_t *arr = json_array();
  for (int i = optind; i < argc; i++) {
    struct ferry_err err = {0};
    _cleanup_free_ char *url = ctr_url(argv[i], NULL);
    json_t *out = NULL;
    if (http_call(cli->api, "GET", url, NULL, &out, &err) < 0)
      rc = cli_fail(&err);
    else
      json_array_append_new(arr, out);
  }
  if (format) {
    size_t k;
    json_t *r;
    json_array_foreach(arr, k, r)
    {
      _cleanup_json_ json_t *v = cli_podman_view(r);
      int fr = cli_format(stdout, format, v);
      if (fr) {
        json_decref(arr);
        return fr;
      }
    }
  } else if (json_array_size(arr) > 0) {
    cli_print_json(arr);
  }
  json_decref(arr);
  return rc;
}

/* A duration as podman prints them: 4.2s, 3m5.1s, 2h0m3s. */
static void fmt_duration(double s, char *buf, size_t len)
{
  if (s < 60)
    snprintf(buf, len, "%.3fs", s);
  else if (s < 3600)
    snprintf(buf, len, "%dm%.1fs", (int)(s / 60), s - 60 * (int)(s / 60));
  else
    snprintf(buf, len, "%dh%dm%ds", (int)(s / 3600), (int)(s / 60) % 60, (int)s % 60);
}

int cmd_top(struct cli *cli, int argc, char **argv)
{
  if (cli_wants_help(argc, argv,
                     "Usage: ferry top NAME [--json]\n"
                     "The processes of a running container: user, pid and parent pid as the\n"
                     "container sees them, CPU over their life, elapsed and CPU time, command.\n"))
    return 0;
  const char *name = NULL;
  for (int i = 1; i < argc; i++) {
    if (strcmp(argv[i], "--json") == 0)
      cli->json = true;
    else if (argv[i][0] == '-')
      return cli_usage_error("top: unknown option %s (see ferry top --help)", argv[i]);
    else if (name)
      return cli_usage_error("top: one container at a time (see ferry top --help)");
    else
      name = argv[i];
  }
  if (!name)
    return cli_usage_error("top needs a container NAME (see ferry top --help)");
  struct ferry_err err = {0};
  _cleanup_free_ char *url = ctr_url(name, "/top");
  _cleanup_json_ json_t *out = NULL;
  if (http_call(cli->api, "GET", url, NULL, &out, &err) < 0)
    return cli_fail(&err);
  if (cli->json) {
    cli_print_json(out);
    return 0;
  }
  printf("%-10s %-7s %-7s %-7s %-12s %-4s %-10s %s\n", "USER", "PID", "PPID", "%CPU", "ELAPSED",
         "TTY", "TIME", "COMMAND");
  size_t i;
  json_t *p;
  json_array_foreach(out, i, p)
  {
    char el[32], tm[32];
    fmt_duration(json_number_value(json_object_get(p, "elapsed_seconds")), el, sizeof el);
    fmt_duration(json_number_value(json_object_get(p, "cpu_seconds")), tm, sizeof tm);
    printf("%-10s %-7lld %-7lld %-7.3f %-12s %-4s %-10s %s\n", json_str_or(p, "user", "?"),
           (long long)json_integer_value(json_object_get(p, "pid")),
           (long long)json_integer_value(json_object_get(p, "ppid")),
           json_number_value(json_object_get(p, "cpu_percent")), el, "?", tm,
           json_str_or(p, "command", ""));
  }
  return 0;
}

/* Bytes as podman's stats prints them: 1.016MB, 25.18GB (SI units). */
static void fmt_si(double b, char *buf, size_t len)
{
  static const char *const u[] = {"B", "kB", "MB", "GB", "TB"};
  int k = 0;
  while (b >= 1000 && k < 4) {
    b /= 1000;
    k++;
  }
  snprintf(buf, len, k ? "%.4g%s" : "%.0f%s", b, u[k]);
}

/* One sample of each container named (all running ones when none is). */
static json_t *stats_sample(struct cli *cli, char **names, int n, struct ferry_err *err)
{
  json_t *out = json_array();
  _cleanup_json_ json_t *list = NULL;
  if (n == 0) {
    if (http_call(cli->api, "GET", "/v1/containers", NULL, &list, err) < 0) {
      json_decref(out);
      return NULL;
    }
  }
  int total = n ? n : (int)json_array_size(list);
  for (int i = 0; i < total; i++) {
    const char *name = n ? names[i] : json_str_or(json_array_get(list, (size_t)i), "name", "");
    _cleanup_free_ char *url = ctr_url(name, "/stats");
    json_t *one = NULL;
    struct ferry_err e = {0};
    if (http_call(cli->api, "GET", url, NULL, &one, &e) < 0) {
      if (n) { /* one that was asked for: an error; one of all that stopped meanwhile: left out */
        *err = e;
        json_decref(out);
        return NULL;
      }
      continue;
    }
    json_array_append_new(out, one);
  }
  return out;
}

/* CPU % of each container in now over the time since the same one in before. */
static void stats_cpu(json_t *before, json_t *now)
{
  size_t i, k;
  json_t *s, *b;
  json_array_foreach(now, i, s)
  {
    double pct = 0;
    json_array_foreach(before, k, b)
    {
      if (strcmp(json_str_or(b, "id", ""), json_str_or(s, "id", "")) != 0)
        continue;
      double dt = (double)(json_integer_value(json_object_get(s, "read_at_ms")) -
                           json_integer_value(json_object_get(b, "read_at_ms"))) / 1000.0;
      double dc = json_number_value(json_object_get(s, "cpu_seconds")) -
                  json_number_value(json_object_get(b, "cpu_seconds"));
      if (dt > 0 && dc >= 0)
        pct = 100.0 * dc / dt;
    }
    json_object_set_new(s, "cpu_percent", json_real(pct));
  }
}

static void stats_print(json_t *now)
{
  printf("%-12s %-16s %-8s %-22s %-7s %-20s %-20s %s\n", "ID", "NAME", "CPU %", "MEM USAGE / LIMIT",
         "MEM %", "NET IO", "BLOCK IO", "PIDS");
  size_t i;
  json_t *s;
  json_array_foreach(now, i, s)
  {
    char mu[16], ml[16], rx[16], tx[16], br[16], bw[16], mem[40], net[40], blk[40], cpu[16], mp[16];
    double m = (double)json_integer_value(json_object_get(s, "memory_bytes"));
    double l = (double)json_integer_value(json_object_get(s, "memory_limit_bytes"));
    fmt_si(m, mu, sizeof mu);
    fmt_si(l, ml, sizeof ml);
    fmt_si((double)json_integer_value(json_object_get(s, "net_rx_bytes")), rx, sizeof rx);
    fmt_si((double)json_integer_value(json_object_get(s, "net_tx_bytes")), tx, sizeof tx);
    fmt_si((double)json_integer_value(json_object_get(s, "block_read_bytes")), br, sizeof br);
    fmt_si((double)json_integer_value(json_object_get(s, "block_write_bytes")), bw, sizeof bw);
    snprintf(mem, sizeof mem, "%s / %s", mu, ml);
    snprintf(net, sizeof net, "%s / %s", rx, tx);
    snprintf(blk, sizeof blk, "%s / %s", br, bw);
    snprintf(cpu, sizeof cpu, "%.2f%%", json_number_value(json_object_get(s, "cpu_percent")));
    snprintf(mp, sizeof mp, "%.2f%%", l > 0 ? 100.0 * m / l : 0.0);
    printf("%-12.12s %-16s %-8s %-22s %-7s %-20s %-20s %lld\n", json_str_or(s, "id", ""),
           json_str_or(s, "name", ""), cpu, mem, mp, net, blk,
           (long long)json_integer_value(json_object_get(s, "pids")));
  }
}

int cmd_stats(struct cli *cli, int argc, char **argv)
{
  if (cli_wants_help(argc, argv,
                     "Usage: ferry stats [--no-stream] [--json] [NAME...]\n"
                     "Resource use of running containers (all of them when none is named): CPU\n"
                     "over the last second, memory against its limit, network and block I/O,\n"
                     "processes; a new table every second until Ctrl-C, or one with --no-stream.\n"))
    return 0;
  bool once = false;
  char **names = calloc((size_t)argc, sizeof *names);
  if (!names)
    abort();
  int n = 0;
  for (int i = 1; i < argc; i++) {
    if (strcmp(argv[i], "--no-stream") == 0) {
      once = true;
    } else if (strcmp(argv[i], "--json") == 0) {
      cli->json = true;
    } else if (argv[i][0] == '-') {
      free(names);
      return cli_usage_error("stats: unknown option %s (see ferry stats --help)", argv[i]);
    } else {
      names[n++] = argv[i];
    }
  }
  struct ferry_err err = {0};
  json_t *before = stats_sample(cli, names, n, &err);
  int rc = 0;
  if (!before) {
    free(names);
    return cli_fail(&err);
  }
  proxy_signals(true);
  __atomic_store_n(&pending_signal, 0, __ATOMIC_RELEASE);
  for (;;) {
    /* a second between two samples: CPU is what was used in it */
    for (int t = 0; t < 10 && !__atomic_load_n(&pending_signal, __ATOMIC_ACQUIRE); t++)
      usleep(100000);
    if (__atomic_load_n(&pending_signal, __ATOMIC_ACQUIRE))
      break;
    json_t *now = stats_sample(cli, names, n, &err);
    if (!now) {
      rc = cli_fail(&err);
      break;
    }
    stats_cpu(before, now);
    if (cli->json)
      cli_print_json(now);
    else
      stats_print(now);
    fflush(stdout);
    json_decref(before);
    before = now;
    if (once)
      break;
  }
  proxy_signals(false);
  json_decref(before);
  free(names);
  return rc;
}

int cmd_port(struct cli *cli, int argc, char **argv)
{
  if (cli_wants_help(argc, argv,
                     "Usage: ferry port NAME [PORT[/PROTO]]\n"
                     "The container's published ports, as podman port prints them\n"
                     "(80/tcp -> 0.0.0.0:8080), or where PORT is published.\n"))
    return 0;
  if (argc < 2 || argc > 3)
    return cli_usage_error("port needs a container NAME and at most a PORT (see ferry port --help)");
  struct ferry_err err = {0};
  _cleanup_free_ char *url = ctr_url(argv[1], NULL);
  _cleanup_json_ json_t *rec = NULL;
  if (http_call(cli->api, "GET", url, NULL, &rec, &err) < 0)
    return cli_fail(&err);
  long want = 0;
  const char *want_proto = NULL;
  if (argc == 3) {
    char *end = NULL;
    want = strtol(argv[2], &end, 10);
    if (want < 1 || want > 65535 || (*end && strcmp(end, "/tcp") != 0 && strcmp(end, "/udp") != 0))
      return cli_usage_error("port: \"%s\" is not PORT or PORT/tcp|udp", argv[2]);
    want_proto = *end ? end + 1 : NULL;
  }
  size_t i;
  json_t *m;
  int shown = 0;
  json_array_foreach(json_object_get(rec, "ports"), i, m)
  {
    long cp = (long)json_integer_value(json_object_get(m, "container_port"));
    const char *proto = json_str_or(m, "protocol", "tcp"), *ip = json_str_or(m, "host_ip", "");
    if (want && (cp != want || (want_proto && strcmp(proto, want_proto) != 0)))
      continue;
    long hp = (long)json_integer_value(json_object_get(m, "host_port"));
    if (want)
      printf("%s:%ld\n", *ip ? ip : "0.0.0.0", hp);
    else
      printf("%ld/%s -> %s:%ld\n", cp, proto, *ip ? ip : "0.0.0.0", hp);
    shown++;
  }
  if (want && !shown)
    return cli_usage_error("port: container \"%s\" does not publish port %s", argv[1], argv[2]);
  return 0;
}

int cmd_logs(struct cli *cli, int argc, char **argv)
{
  if (cli_wants_help(argc, argv,
                     "Usage: ferry logs [-f] NAME\n"
                     "  -f, --follow   keep printing new output until the container exits\n"))
    return 0;
  static const struct option lo[] = {{"follow", no_argument, 0, 'f'}, {0, 0, 0, 0}};
  int c;
  bool follow = false;
  optind = 1;
  while ((c = cli_getopt(argc, argv, "+f", lo)) != -1) {
    if (c != 'f')
      return 125;
    follow = true;
  }
  if (optind + 1 != argc)
    return cli_usage_error("logs needs exactly one container name");
  _cleanup_free_ char *url = ctr_url(argv[optind], NULL);
  size_t offset = 0;
  for (;;) {
    struct ferry_err err = {0};
    _cleanup_free_ char *lurl = xasprintf("%s/logs?offset=%zu", url, offset);
    char *text = NULL;
    size_t len = 0;
    if (http_get_raw(cli->api, lurl, &text, &len, &err) < 0)
      return cli_fail(&err);
    fwrite(text, 1, len, stdout);
    fflush(stdout);
    free(text);
    offset += len;
    if (!follow) {
      if (len > 0)
        continue; /* answers come in chunks: until nothing is left */
      return 0;
    }
    _cleanup_json_ json_t *st = NULL;
    if (http_call(cli->api, "GET", url, NULL, &st, &err) < 0)
      return cli_fail(&err);
    if (len == 0 && !ctr_live_up(rec_status(st)))
      return 0;
    if (len == 0)
      usleep(200000);
  }
}

int cmd_exec(struct cli *cli, int argc, char **argv)
{
  if (cli_wants_help(argc, argv,
                     "Usage: ferry exec [-i] [-t] [-e KEY=VALUE] [--detach-keys KEYS] [--json] NAME\n"
                     "                  COMMAND [ARG...]\n"
                     "Runs COMMAND in the running container; prints its output as it comes\n"
                     "(stdout and stderr apart, byte for byte) and exits with its exit code\n"
                     "(126: cannot be run, 127: not found). Ctrl-C ends the command.\n"
                     "  -i, --interactive   pass what comes on stdin to the command (its end ends\n"
                     "                      the command's input)\n"
                     "  -t, --tty           run it in a terminal (with -i from a terminal: raw mode,\n"
                     "                      its size followed, Ctrl-C goes to the command, the\n"
                     "                      detach keys, default ctrl-p,ctrl-q, end the session)\n"
                     "  --json              one JSON answer {exit_code, stdout, stderr} once it\n"
                     "                      ended (at most 16 MiB of text each)\n"))
    return 0;
  static const struct option lo[] = {{"env", required_argument, 0, 'e'},
                                     {"json", no_argument, 0, 'j'},
                                     {"interactive", no_argument, 0, 'i'},
                                     {"tty", no_argument, 0, 't'},
                                     {"detach-keys", required_argument, 0, 'k'},
                                     {0, 0, 0, 0}};
  _cleanup_json_ json_t *req = json_object();
  json_t *env = json_array();
  json_object_set_new(req, "env", env);
  bool in = false, tty = false;
  const char *keys = NULL;
  int c;
  optind = 1;
  while ((c = cli_getopt(argc, argv, "+e:it", lo)) != -1) {
    if (c == 'e')
      json_array_append_new(env, json_string(optarg));
    else if (c == 'j')
      cli->json = true;
    else if (c == 'i')
      in = true;
    else if (c == 't')
      tty = true;
    else if (c == 'k')
      keys = optarg;
    else
      return 125;
  }
  if (optind + 2 > argc)
    return cli_usage_error("exec needs a container name and a command");
  if (cli->json && (in || tty))
    return cli_usage_error("exec: --json gives the output once the command ended: not with -i or -t");
  json_t *cmd = json_array();
  for (int i = optind + 1; i < argc; i++)
    json_array_append_new(cmd, json_string(argv[i]));
  json_object_set_new(req, "cmd", cmd);
  struct ferry_err err = {0};
  _cleanup_free_ char *url = ctr_url(argv[optind], "/exec");
  _cleanup_json_ json_t *out = NULL;
  if (cli->json) {
    /* one JSON answer: the output buffered by the agent (16 MiB at most) */
    if (http_call(cli->api, "POST", url, req, &out, &err) < 0)
      return cli_fail(&err);
    cli_print_json(out);
    return 0;
  }
  if (in || tty) {
    /* a session: input and a terminal (interactive.c) */
    json_object_set_new(req, "session", json_true());
    json_object_set_new(req, "tty", json_boolean(tty));
    json_object_set_new(req, "stdin", json_boolean(in));
    if (tty)
      cli_term_size(req);
    if (http_call(cli->api, "POST", url, req, &out, &err) < 0)
      return cli_fail(&err);
    struct cli_session_opts o = {.tty = tty, .in = in, .detach_keys = keys};
    int rc = cli_session(cli, json_str_or(out, "session", ""), &o);
    return rc == CLI_DETACHED ? 0 : rc;
  }
  /* the output as it comes, byte for byte; Ctrl-C (or TERM, HUP) ends the
   * request, and the agent then kills the command */
  json_object_set_new(req, "stream", json_true());
  struct exec_demux d = {.exit_code = -1};
  proxy_signals(true);
  __atomic_store_n(&pending_signal, 0, __ATOMIC_RELEASE);
  int r = http_stream(cli->api, "POST", url, req, exec_demux_feed, &d, &pending_signal, &err);
  proxy_signals(false);
  fflush(stdout);
  int sig = __atomic_load_n(&pending_signal, __ATOMIC_ACQUIRE);
  if (sig)
    return 128 + sig;
  if (r < 0)
    return cli_fail(&err);
  if (d.bad || d.exit_code < 0) {
    fprintf(stderr, "Error: exec: the agent's answer ended %s\n",
            d.bad ? "with a malformed frame" : "before the command's exit code");
    return 125;
  }
  return d.exit_code;
}

/* A command whose only option is --json (anywhere): 1 when help was
 * printed, 125 on anything else, 0 to go on. */
static int json_only_args(struct cli *cli, int argc, char **argv, const char *help)
{
  if (cli_wants_help(argc, argv, help))
    return 1;
  for (int i = 1; i < argc; i++) {
    if (strcmp(argv[i], "--json") != 0)
      return cli_usage_error("%s: unknown argument %s (see ferry %s --help)", argv[0], argv[i],
                             argv[0]);
    cli->json = true;
  }
  return 0;
}

int cmd_version(struct cli *cli, int argc, char **argv)
{
  int a = json_only_args(cli, argc, argv,
                         "Usage: ferry version [--json]\n"
                         "The client's version, and the agent's when it can be reached (else the\n"
                         "error, exit status 125).\n");
  if (a)
    return a == 1 ? 0 : a;
  struct ferry_err err = {0};
  _cleanup_json_ json_t *info = NULL;
  int r = http_call(cli->api, "GET", "/v1/info", NULL, &info, &err);
  if (cli->json) {
    _cleanup_json_ json_t *out = json_pack("{s:{s:s}}", "client", "version", FERRY_VERSION);
    if (r == 0)
      json_object_set_new(out, "agent", json_pack("{s:s, s:s}", "version",
                                                  json_str_or(info, "version", ""), "id",
                                                  json_str_or(info, "id", "")));
    else
      json_object_set_new(out, "agent", json_pack("{s:s}", "error", err.msg));
    cli_print_json(out);
    return r < 0 ? 125 : 0;
  }
  printf("Client:  ferry %s\n", FERRY_VERSION);
  fflush(stdout); /* before the error, in the order they happened */
  if (r < 0)
    return cli_fail(&err);
  printf("Agent:   ferry %s (agent %s)\n", json_str_or(info, "version", "?"),
         json_str_or(info, "id", "?"));
  return 0;
}

int cmd_info(struct cli *cli, int argc, char **argv)
{
  int a = json_only_args(cli, argc, argv,
                         "Usage: ferry info [--json]\n"
                         "The agent's identity and settings.\n");
  if (a)
    return a == 1 ? 0 : a;
  struct ferry_err err = {0};
  _cleanup_json_ json_t *out = NULL;
  if (http_call(cli->api, "GET", "/v1/info", NULL, &out, &err) < 0)
    return cli_fail(&err);
  if (cli->json) {
    cli_print_json(out);
    return 0;
  }
  const char *k;
  json_t *v;
  json_object_foreach(out, k, v)
  {
    if (json_is_string(v))
      printf("%-12s %s\n", k, json_string_value(v));
    else if (json_is_integer(v))
      printf("%-12s %lld\n", k, (long long)json_integer_value(v));
  }
  json_t *ov = json_object_get(out, "overlay");
  if (json_is_object(ov)) {
    printf("%-12s vni %lld on %s, underlay %s (%s), port %lld, MTU %lld\n", "overlay",
           (long long)json_integer_value(json_object_get(ov, "vni")),
           json_str_or(ov, "device", "?"), json_str_or(ov, "local", "?"),
           json_str_or(ov, "underlay_device", "?"),
           (long long)json_integer_value(json_object_get(ov, "port")),
           (long long)json_integer_value(json_object_get(ov, "mtu")));
    size_t i;
    json_t *m;
    json_array_foreach(json_object_get(ov, "members"), i, m)
        printf("%-12s %s (%s)\n", i ? "" : "members", json_str_or(m, "address", "?"),
               json_str_or(m, "from", "?"));
    if (json_array_size(json_object_get(ov, "members")) == 0)
      printf("%-12s none yet\n", "members");
    if (json_str_or(ov, "error", NULL))
      printf("%-12s %s\n", "overlay error", json_str_or(ov, "error", ""));
  }
  return 0;
}
