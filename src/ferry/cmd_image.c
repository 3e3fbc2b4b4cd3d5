/* ferry image import|pull|ls|rm|inspect, ferry images, ferry pull */
#include <getopt.h>
#include <libgen.h>
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "cli.h"
#include "util/cleanup.h"
#include "util/fs.h"
#include "util/json.h"

static const char image_help[] =
    "Usage: ferry image COMMAND\n\n"
    "  import FILE [--name NAME[:TAG]]   import an OCI archive, docker-archive or rootfs tarball\n"
    "  pull [OPTIONS] REFERENCE          pull from a registry (ferry pull --help)\n"
    "  push [OPTIONS] IMAGE DESTINATION  push to a registry (ferry push --help)\n"
    "  ls [--json]                       list images\n"
    "  rm IMAGE...                       remove images no container uses\n"
    "  tag IMAGE NAME[:TAG]...           give an image more names\n"
    "  prune [-a] [-f]                   remove images without a name (-a: all unused)\n"
    "  save [-o FILE] IMAGE              write an image as an OCI archive\n"
    "  inspect IMAGE                     show an image record\n";

static int image_ls(struct cli *cli)
{
  struct ferry_err err = {0};
  _cleanup_json_ json_t *list = NULL;
  if (http_call(cli->api, "GET", "/v1/images", NULL, &list, &err) < 0)
    return cli_fail(&err);
  if (cli->json) {
    cli_print_json(list);
    return 0;
  }
  printf("%-40s  %-12s  %-14s  %-10s  %s\n", "NAME", "IMAGE ID", "SOURCE", "SIZE", "LAYERS");
  size_t i;
  json_t *img;
  json_array_foreach(list, i, img)
  {
    char sz[32];
    json_t *names = json_object_get(img, "names");
    fmt_bytes((uint64_t)json_integer_value(json_object_get(img, "size")), sz, sizeof sz);
    /* a row per name, as podman's images: a tag is a name of an image */
    size_t n = json_array_size(names);
    for (size_t k = 0; k < (n ? n : 1); k++) {
      const char *nm = json_string_value(json_array_get(names, k));
      printf("%-40s  %-12.12s  %-14s  %-10s  %zu\n", nm ? nm : "<none>",
             json_str_or(img, "id", "sha256:") + 7, json_str_or(img, "source", ""), sz,
             json_array_size(json_object_get(img, "layers")));
    }
  }
  return 0;
}

static int image_import_cmd(struct cli *cli, int argc, char **argv)
{
  static const struct option lo[] = {{"name", required_argument, 0, 'n'},
                                     {"json", no_argument, 0, 'j'},
                                     {0, 0, 0, 0}};
  if (cli_wants_help(argc, argv,
                     "Usage: ferry image import [--name NAME[:TAG]] FILE\n"
                     "Imports an image from a file: an OCI archive, a docker-save archive\n"
                     "(as podman load), or a root filesystem tarball (a one-layer image).\n"
                     "  -n, --name NAME   the name it gets (default: the archive's own)\n"))
    return 0;
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
    return cli_usage_error("image import needs exactly one FILE (see ferry image import --help)");
  const char *file = argv[optind];
  _cleanup_free_ char *copy = xstrdup(file);
  _cleanup_free_ char *efile = http_escape(basename(copy));
  _cleanup_free_ char *url = NULL;
  if (name) {
    _cleanup_free_ char *en = http_escape(name);
    url = xasprintf("/v1/images/import?filename=%s&name=%s", efile, en);
  } else {
    url = xasprintf("/v1/images/import?filename=%s", efile);
  }
  struct ferry_err err = {0};
  _cleanup_json_ json_t *img = NULL;
  if (http_upload(cli->api, url, file, &img, &err) < 0)
    return cli_fail(&err);
  if (cli->json) {
    cli_print_json(img);
    return 0;
  }
  printf("Imported %s (%s, %zu layer%s)\n",
         json_string_value(json_array_get(json_object_get(img, "names"), 0)),
         json_str_or(img, "id", ""), json_array_size(json_object_get(img, "layers")),
         json_array_size(json_object_get(img, "layers")) == 1 ? "" : "s");
  return 0;
}

static const char pull_help[] =
    "Usage: ferry pull [OPTIONS] REGISTRY/REPOSITORY[:TAG]\n"
    "Pulls an image from an OCI or Docker registry into the agent's store (as podman\n"
    "pull; the agent runs skopeo). Credentials come from the auth file podman reads\n"
    "(containers-auth.json) unless given.\n\n"
    "  --authfile FILE       credentials (containers-auth.json, on the agent's host)\n"
    "  --creds USER:PASSWORD credentials on the command line\n"
    "  --cert-dir DIR        the registry's CA certificate and client certificates\n"
    "  --tls-verify=false    accept a registry without verified TLS (default: verify)\n"
    "  --json                print the image record as JSON\n";

int cli_pull_opts(int c, const char *arg, json_t *req)
{
  switch (c) {
  case 0x101: json_object_set_new(req, "authfile", json_string(arg)); return 1;
  case 0x102: json_object_set_new(req, "credentials", json_string(arg)); return 1;
  case 0x103: json_object_set_new(req, "cert_dir", json_string(arg)); return 1;
  case 0x104:
    if (strcmp(arg, "true") != 0 && strcmp(arg, "false") != 0)
      return cli_usage_error("--tls-verify takes true or false");
    json_object_set_new(req, "tls_verify", json_boolean(strcmp(arg, "true") == 0));
    return 1;
  }
  return 0;
}

int cli_pull(struct cli *cli, json_t *req, bool quiet)
{
  struct ferry_err err = {0};
  _cleanup_json_ json_t *img = NULL;
  const char *ref = json_str_or(req, "reference", "");
  if (!quiet && !cli->json)
    fprintf(stderr, "Pulling %s ...\n", ref);
  if (http_call(cli->api, "POST", "/v1/images/pull", req, &img, &err) < 0)
    return cli_fail(&err);
  if (cli->json && !quiet) {
    cli_print_json(img);
    return 0;
  }
  char sz[32];
  fmt_bytes((uint64_t)json_integer_value(json_object_get(img, "size")), sz, sizeof sz);
  fprintf(quiet ? stderr : stdout, "Pulled %s (%s, %zu layer%s, %s)\n", ref, json_str_or(img, "id", ""),
          json_array_size(json_object_get(img, "layers")),
          json_array_size(json_object_get(img, "layers")) == 1 ? "" : "s", sz);
  return 0;
}

/* The options of pull and push into req; -1 when help was asked and
 * printed, else 0 (*first: the first operand) or an exit code. */
static int registry_args(struct cli *cli, int argc, char **argv, const char *help, json_t *req,
                         int *first)
{
  static const struct option lo[] = {{"authfile", required_argument, 0, 0x101},
                                     {"creds", required_argument, 0, 0x102},
                                     {"cert-dir", required_argument, 0, 0x103},
                                     {"tls-verify", required_argument, 0, 0x104},
                                     {"json", no_argument, 0, 'j'},
                                     {"help", no_argument, 0, 'h'},
                                     {0, 0, 0, 0}};
  if (cli_wants_help(argc, argv, help))
    return -1;
  int c;
  optind = 1;
  while ((c = cli_getopt(argc, argv, "", lo)) != -1) {
    if (c == 'j') {
      cli->json = true;
      continue;
    }
    int r = cli_pull_opts(c, optarg, req);
    if (r != 1)
      return r ? r : 125;
  }
  *first = optind;
  return 0;
}

int cmd_pull(struct cli *cli, int argc, char **argv)
{
  _cleanup_json_ json_t *req = json_object();
  int first = 0, r = registry_args(cli, argc, argv, pull_help, req, &first);
  if (r)
    return r < 0 ? 0 : r;
  if (first + 1 != argc)
    return cli_usage_error("pull needs exactly one REFERENCE");
  json_object_set_new(req, "reference", json_string(argv[first]));
  return cli_pull(cli, req, false);
}

static const char push_help[] =
    "Usage: ferry push [OPTIONS] IMAGE REGISTRY/REPOSITORY[:TAG]\n"
    "Pushes an image of the agent's store to an OCI or Docker registry (as podman\n"
    "push), with the options of ferry pull:\n\n"
    "  --authfile FILE  --creds USER:PASSWORD  --cert-dir DIR  --tls-verify=false\n";

int cmd_push(struct cli *cli, int argc, char **argv)
{
  _cleanup_json_ json_t *req = json_object();
  int first = 0, r = registry_args(cli, argc, argv, push_help, req, &first);
  if (r)
    return r < 0 ? 0 : r;
  if (first + 2 != argc)
    return cli_usage_error("push needs an IMAGE and a DESTINATION");
  json_object_set_new(req, "destination", json_string(argv[first + 1]));
  _cleanup_free_ char *e = http_escape(argv[first]);
  _cleanup_free_ char *url = xasprintf("/v1/images/push/%s", e);
  struct ferry_err err = {0};
  _cleanup_json_ json_t *out = NULL;
  if (!cli->json)
    fprintf(stderr, "Pushing %s to %s ...\n", argv[first], argv[first + 1]);
  if (http_call(cli->api, "POST", url, req, &out, &err) < 0)
    return cli_fail(&err);
  if (cli->json)
    cli_print_json(out);
  else
    printf("Pushed %s to %s\n", argv[first], json_str_or(out, "destination", argv[first + 1]));
  return 0;
}

static bool save_write(void *ud, const char *data, size_t n)
{
  return fwrite(data, 1, n, (FILE *)ud) == n;
}

int cmd_save(struct cli *cli, int argc, char **argv)
{
  if (cli_wants_help(argc, argv,
                     "Usage: ferry save [-o FILE] [--format oci-archive] IMAGE\n"
                     "Writes the image as an OCI archive (an OCI layout in a tar: ferry image\n"
                     "import, podman load and skopeo read it) to FILE, or to stdout when that is\n"
                     "not a terminal.\n"))
    return 0;
  const char *file = NULL, *image = NULL;
  for (int i = 1; i < argc; i++) {
    if ((strcmp(argv[i], "-o") == 0 || strcmp(argv[i], "--output") == 0) && i + 1 < argc) {
      file = argv[++i];
    } else if (strcmp(argv[i], "--format") == 0 && i + 1 < argc) {
      if (strcmp(argv[++i], "oci-archive") != 0)
        return cli_usage_error("%s: format \"%s\" is not supported: oci-archive only", argv[0], argv[i]);
    } else if (argv[i][0] == '-') {
      return cli_usage_error("%s: unknown option %s (see ferry %s --help)", argv[0], argv[i], argv[0]);
    } else if (image) {
      return cli_usage_error("%s: one IMAGE at a time (see ferry %s --help)", argv[0], argv[0]);
    } else {
      image = argv[i];
    }
  }
  if (!image)
    return cli_usage_error("%s needs an IMAGE (see ferry %s --help)", argv[0], argv[0]);
  if (!file && isatty(STDOUT_FILENO))
    return cli_usage_error("%s: refusing to write an archive to a terminal: use -o FILE", argv[0]);
  _cleanup_free_ char *part = file ? xasprintf("%s.partial", file) : NULL;
  FILE *f = file ? fopen(part, "we") : stdout;
  if (!f) {
    fprintf(stderr, "Error: %s: %s\n", part, strerror(errno));
    return 125;
  }
  struct ferry_err err = {0};
  _cleanup_json_ json_t *req = json_pack("{s:s}", "image", image);
  int r = http_stream(cli->api, "POST", "/v1/images/save", req, save_write, f, NULL, &err);
  bool ok = r == 0 && fflush(f) == 0 && !ferror(f);
  if (file) {
    ok = fclose(f) == 0 && ok;
    if (ok && rename(part, file) < 0)
      ok = false;
    if (!ok)
      unlink(part);
  }
  if (r < 0)
    return cli_fail(&err);
  if (!ok) {
    fprintf(stderr, "Error: writing %s: %s\n", file ? file : "stdout", strerror(errno));
    return 125;
  }
  return 0;
}

int cmd_tag(struct cli *cli, int argc, char **argv)
{
  if (cli_wants_help(argc, argv,
                     "Usage: ferry tag IMAGE NAME[:TAG]...\n"
                     "Gives the image more names (a name without a tag is NAME:latest). A name\n"
                     "another image has is refused: remove it first (ferry rmi NAME).\n"))
    return 0;
  for (int i = 1; i < argc; i++)
    if (argv[i][0] == '-')
      return cli_usage_error("%s: unknown option %s (see ferry %s --help)", argv[0], argv[i], argv[0]);
  if (argc < 3)
    return cli_usage_error("%s needs an IMAGE and a NAME (see ferry %s --help)", argv[0], argv[0]);
  for (int i = 2; i < argc; i++) {
    struct ferry_err err = {0};
    _cleanup_json_ json_t *req = json_pack("{s:s, s:s}", "image", argv[1], "name", argv[i]);
    _cleanup_json_ json_t *out = NULL;
    if (http_call(cli->api, "POST", "/v1/images/tag", req, &out, &err) < 0)
      return cli_fail(&err);
  }
  return 0;
}

int cmd_rmi(struct cli *cli, int argc, char **argv)
{
  /* podman's rmi: image rm */
  char **av = calloc((size_t)argc + 2, sizeof *av);
  if (!av)
    abort();
  av[0] = (char *)"image";
  av[1] = (char *)"rm";
  for (int i = 1; i < argc; i++)
    av[i + 1] = argv[i];
  int r = cmd_image(cli, argc + 1, av);
  free(av);
  return r;
}

int cmd_image(struct cli *cli, int argc, char **argv)
{
  if (argc < 2 || strcmp(argv[1], "-h") == 0 || strcmp(argv[1], "--help") == 0) {
    fputs(image_help, argc < 2 ? stderr : stdout);
    return argc < 2 ? 125 : 0;
  }
  const char *sub = argv[1];
  /* the subcommand's messages name it in full ("see ferry image import --help") */
  if (strcmp(sub, "import") == 0 || strcmp(sub, "load") == 0) {
    argv[1] = (char *)(strcmp(sub, "load") == 0 ? "image load" : "image import");
    return image_import_cmd(cli, argc - 1, argv + 1);
  }
  if (strcmp(sub, "pull") == 0) {
    argv[1] = (char *)"image pull";
    return cmd_pull(cli, argc - 1, argv + 1);
  }
  if (strcmp(sub, "push") == 0) {
    argv[1] = (char *)"image push";
    return cmd_push(cli, argc - 1, argv + 1);
  }
  if (strcmp(sub, "prune") == 0) {
    bool force = false, all = false;
    for (int i = 2; i < argc; i++) {
      if (strcmp(argv[i], "-f") == 0 || strcmp(argv[i], "--force") == 0)
        force = true;
      else if (strcmp(argv[i], "-a") == 0 || strcmp(argv[i], "--all") == 0)
        all = true;
      else if (strcmp(argv[i], "--json") == 0)
        cli->json = true;
      else if (strcmp(argv[i], "-h") == 0 || strcmp(argv[i], "--help") == 0) {
        puts("Usage: ferry image prune [-a] [-f] [--json]\n"
             "Removes images without a name (-a: every image no container uses), after a\n"
             "question unless -f. Prints the ids of those removed.");
        return 0;
      } else
        return cli_usage_error("image prune: unknown argument \"%s\" (see ferry image prune --help)",
                               argv[i]);
    }
    if (!force && !cli_confirm(all ? "This will remove all images without at least one container "
                                     "associated to them."
                                   : "This will remove all dangling images."))
      return 0;
    struct ferry_err err = {0};
    _cleanup_json_ json_t *list = NULL;
    if (http_call(cli->api, "GET", "/v1/images", NULL, &list, &err) < 0)
      return cli_fail(&err);
    _cleanup_json_ json_t *items = json_array();
    size_t i;
    json_t *img;
    json_array_foreach(list, i, img)
    {
      if (!all && json_array_size(json_object_get(img, "names")) > 0)
        continue;
      const char *id = json_str_or(img, "id", "");
      _cleanup_free_ char *e = http_escape(id);
      _cleanup_free_ char *url = xasprintf("/v1/images/%s", e);
      json_array_append_new(items, json_pack("{s:s, s:s}", "url", url, "label", id));
    }
    return cli_prune(cli, items);
  }
  if (strcmp(sub, "save") == 0) {
    argv[1] = (char *)"image save";
    return cmd_save(cli, argc - 1, argv + 1);
  }
  if (strcmp(sub, "tag") == 0) {
    argv[1] = (char *)"image tag";
    return cmd_tag(cli, argc - 1, argv + 1);
  }
  if (strcmp(sub, "ls") == 0 || strcmp(sub, "list") == 0) {
    if (cli_wants_help(argc - 1, argv + 1,
                       "Usage: ferry image ls [--json]\nLists the agent's images, one line per name.\n"))
      return 0;
    for (int i = 2; i < argc; i++)
      if (strcmp(argv[i], "--json") == 0)
        cli->json = true;
    return image_ls(cli);
  }
  if (strcmp(sub, "rm") == 0 || strcmp(sub, "inspect") == 0) {
    for (int i = 2; i < argc; i++) {
      if (strcmp(argv[i], "-h") == 0 || strcmp(argv[i], "--help") == 0) {
        printf("Usage: ferry image %s IMAGE...\n%s\n", sub,
               strcmp(sub, "rm") == 0 ? "Removes images (refused while a container uses one)."
                                      : "Shows images' records as JSON.");
        return 0;
      }
      if (argv[i][0] == '-')
        return cli_usage_error("image %s: unknown option %s (see ferry image %s --help)", sub,
                               argv[i], sub);
    }
    if (argc < 3)
      return cli_usage_error("image %s needs an IMAGE (see ferry image %s --help)", sub, sub);
    int rc = 0;
    for (int i = 2; i < argc; i++) {
      struct ferry_err err = {0};
      _cleanup_free_ char *e = http_escape(argv[i]);
      _cleanup_free_ char *url = xasprintf("/v1/images/%s", e);
      _cleanup_json_ json_t *out = NULL;
      bool rm = strcmp(sub, "rm") == 0;
      if (http_call(cli->api, rm ? "DELETE" : "GET", url, NULL, &out, &err) < 0)
        rc = cli_fail(&err);
      else if (rm)
        printf("Removed %s\n", argv[i]);
      else
        cli_print_json(out);
    }
    return rc;
  }
  return cli_usage_error("unknown image command \"%s\"", sub);
}

int cmd_images(struct cli *cli, int argc, char **argv)
{
  if (cli_wants_help(argc, argv,
                     "Usage: ferry images [--json]\n"
                     "Lists the agent's images, one line per name (ferry image ls).\n"))
    return 0;
  for (int i = 1; i < argc; i++)
    if (strcmp(argv[i], "--json") == 0)
      cli->json = true;
  return image_ls(cli);
}
