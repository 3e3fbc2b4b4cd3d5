/* ferry image import|ls|rm|inspect, ferry images */
#include <getopt.h>
#include <libgen.h>
#include <stdio.h>
#include <string.h>

#include "cli.h"
#include "util/cleanup.h"
#include "util/fs.h"
#include "util/json.h"

static const char image_help[] =
    "Usage: ferry image COMMAND\n\n"
    "  import FILE [--name NAME[:TAG]]   import an OCI archive, docker-archive or rootfs tarball\n"
    "  ls [--json]                       list images\n"
    "  rm IMAGE...                       remove images no container uses\n"
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
    const char *first = json_string_value(json_array_get(names, 0));
    fmt_bytes((uint64_t)json_integer_value(json_object_get(img, "size")), sz, sizeof sz);
    printf("%-40s  %-12.12s  %-14s  %-10s  %zu\n", first ? first : "<none>",
           json_str_or(img, "id", "sha256:") + 7, json_str_or(img, "source", ""), sz,
           json_array_size(json_object_get(img, "layers")));
  }
  return 0;
}

static int image_import_cmd(struct cli *cli, int argc, char **argv)
{
  static const struct option lo[] = {{"name", required_argument, 0, 'n'},
                                     {"json", no_argument, 0, 'j'},
                                     {0, 0, 0, 0}};
  const char *name = NULL;
  int c;
  optind = 1;
  while ((c = getopt_long(argc, argv, "n:", lo, NULL)) != -1) {
    if (c == 'n')
      name = optarg;
    else if (c == 'j')
      cli->json = true;
    else
      return 125;
  }
  if (optind + 1 != argc)
    return cli_usage_error("image import needs exactly one FILE");
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

int cmd_image(struct cli *cli, int argc, char **argv)
{
  if (argc < 2 || strcmp(argv[1], "-h") == 0 || strcmp(argv[1], "--help") == 0) {
    fputs(image_help, argc < 2 ? stderr : stdout);
    return argc < 2 ? 125 : 0;
  }
  const char *sub = argv[1];
  if (strcmp(sub, "import") == 0 || strcmp(sub, "load") == 0)
    return image_import_cmd(cli, argc - 1, argv + 1);
  if (strcmp(sub, "ls") == 0 || strcmp(sub, "list") == 0) {
    for (int i = 2; i < argc; i++)
      if (strcmp(argv[i], "--json") == 0)
        cli->json = true;
    return image_ls(cli);
  }
  if (strcmp(sub, "rm") == 0 || strcmp(sub, "inspect") == 0) {
    if (argc < 3)
      return cli_usage_error("image %s needs an IMAGE", sub);
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
  for (int i = 1; i < argc; i++)
    if (strcmp(argv[i], "--json") == 0)
      cli->json = true;
  return image_ls(cli);
}
