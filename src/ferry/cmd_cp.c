/* ferry cp: files between the host and a running container, as podman cp.
 * One side is NAME:PATH (PATH absolute in the container), the other a path
 * here or "-" (a tar on stdin or stdout). What comes out of a container is
 * extracted with the checks of an untrusted archive (no "..", no absolute
 * names, nothing through a symlink, no devices). */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <libgen.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cli.h"
#include "image/extract.h"
#include "runtime/runtime.h"
#include "util/cleanup.h"
#include "util/fs.h"
#include "util/json.h"

/* NAME:PATH -> name and path; false for a local path (one with a '/' or
 * '.' first, or no ':'). */
static bool ctr_side(const char *arg, char **name, char **path)
{
  const char *colon = strchr(arg, ':');
  if (!colon || colon == arg || arg[0] == '/' || arg[0] == '.' || memchr(arg, '/', (size_t)(colon - arg)))
    return false;
  *name = strndup(arg, (size_t)(colon - arg));
  *path = xstrdup(colon + 1);
  return true;
}

static bool to_file(void *ud, const char *data, size_t n)
{
  return fwrite(data, 1, n, ud) == n;
}

static char *archive_url(const char *name, const char *path, bool stat)
{
  _cleanup_free_ char *en = http_escape(name), *ep = http_escape(path);
  return xasprintf("/v1/containers/%s/archive?path=%s%s", en, ep, stat ? "&stat=1" : "");
}

static int copy_out(struct cli *cli, const char *name, const char *path, const char *dst)
{
  struct ferry_err err = {0};
  _cleanup_free_ char *url = archive_url(name, path, false);
  if (strcmp(dst, "-") == 0) {
    int r = http_stream(cli->api, "GET", url, NULL, to_file, stdout, NULL, &err);
    fflush(stdout);
    return r < 0 ? cli_fail(&err) : 0;
  }
  _cleanup_free_ char *adst = cli_abs_path(dst);
  _cleanup_free_ char *d1 = xstrdup(adst);
  struct stat st;
  bool into = stat(adst, &st) == 0 && S_ISDIR(st.st_mode);
  const char *parent = into ? adst : dirname(d1);
  _cleanup_free_ char *tmp = path_join(parent, ".ferry-cp-XXXXXX");
  if (!mkdtemp(tmp)) {
    fprintf(stderr, "Error: cp: %s: %s\n", parent, strerror(errno));
    return 125;
  }
  _cleanup_free_ char *tar = path_join(tmp, "archive.tar");
  _cleanup_free_ char *x = path_join(tmp, "x");
  int rc = 0;
  FILE *f = fopen(tar, "wb");
  if (!f || mkdir(x, 0700) < 0) {
    fprintf(stderr, "Error: cp: %s: %s\n", tmp, strerror(errno));
    rc = 125;
    if (f)
      fclose(f);
    goto out;
  }
  int r = http_stream(cli->api, "GET", url, NULL, to_file, f, NULL, &err);
  if (fclose(f) != 0 && r == 0)
    r = ferry_err_sys(&err, -errno, "write %s", tar);
  if (r < 0) {
    rc = cli_fail(&err);
    goto out;
  }
  /* extracted aside first: what is already there is only replaced by a
   * whole copy */
  if (extract_archive(tar, into ? adst : x, EXTRACT_PLAIN, NULL, "the container's archive", &err) < 0) {
    rc = cli_fail(&err);
    goto out;
  }
  if (!into) {
    _cleanup_free_ char *p1 = xstrdup(path);
    const char *base = basename(p1);
    _cleanup_free_ char *from = strcmp(base, "/") == 0 ? xstrdup(x) : path_join(x, base);
    if (rename(from, adst) < 0) {
      fprintf(stderr, "Error: cp: %s: %s\n", adst, strerror(errno));
      rc = 125;
    }
  }
out:
  rm_rf(tmp, NULL);
  return rc;
}

static int copy_in(struct cli *cli, const char *src, const char *name, const char *path)
{
  struct ferry_err err = {0};
  if (path[0] != '/') {
    fprintf(stderr, "Error: cp: %s: the path in the container must be absolute\n", path);
    return 125;
  }
  /* where it goes: into an existing directory under its own name, else
   * under the destination's name in its parent */
  _cleanup_free_ char *surl = archive_url(name, path, true);
  _cleanup_json_ json_t *st = NULL;
  int r = http_call(cli->api, "GET", surl, NULL, &st, &err);
  if (r < 0 && err.klass != FERRY_E_NOTFOUND)
    return cli_fail(&err);
  bool exists = r == 0, is_dir = exists && strcmp(json_str_or(st, "type", ""), "dir") == 0;
  _cleanup_free_ char *p1 = xstrdup(path), *p2 = xstrdup(path);
  const char *dir = is_dir ? path : dirname(p1);
  _cleanup_free_ char *tmp = xstrdup("/tmp/ferry-cp-XXXXXX");
  int fd = mkstemp(tmp);
  if (fd < 0) {
    fprintf(stderr, "Error: cp: temporary file: %s\n", strerror(errno));
    return 125;
  }
  int rc = 0;
  if (strcmp(src, "-") == 0) { /* a tar on stdin, into a directory */
    if (!is_dir) {
      fprintf(stderr, "Error: cp: %s is not a directory in the container\n", path);
      rc = 125;
      goto out;
    }
    char buf[65536];
    ssize_t n;
    while ((n = read(STDIN_FILENO, buf, sizeof buf)) > 0)
      if (write(fd, buf, (size_t)n) != n) {
        rc = 125;
        break;
      }
  } else {
    _cleanup_free_ char *asrc = cli_abs_path(src);
    struct stat ss;
    if (lstat(asrc, &ss) < 0) {
      fprintf(stderr, "Error: cp: %s: %s\n", src, strerror(errno));
      rc = 125;
      goto out;
    }
    if (exists && !is_dir && S_ISDIR(ss.st_mode)) {
      fprintf(stderr, "Error: cp: cannot copy directory %s over the file %s\n", src, path);
      rc = 125;
      goto out;
    }
    _cleanup_free_ char *s1 = xstrdup(asrc), *s2 = xstrdup(asrc);
    const char *sdir = dirname(s1), *sbase = basename(s2);
    const char *as = is_dir ? NULL : basename(p2);
    _cleanup_free_ char *cwd = getcwd(NULL, 0);
    if (chdir(sdir) < 0 || copy_tar_to_fd(sbase, as, fd) != 0) {
      fprintf(stderr, "Error: cp: cannot read %s\n", src);
      rc = 125;
    }
    if (cwd && chdir(cwd) < 0)
      rc = 125;
  }
  if (rc == 0) {
    _cleanup_free_ char *url = archive_url(name, dir, false);
    if (http_upload_method(cli->api, "PUT", url, tmp, NULL, &err) < 0)
      rc = cli_fail(&err);
  }
out:
  close(fd);
  unlink(tmp);
  return rc;
}

int cmd_cp(struct cli *cli, int argc, char **argv)
{
  if (cli_wants_help(argc, argv,
                     "Usage: ferry cp SRC DST\n"
                     "Copies files between the host and a container: one of SRC and DST\n"
                     "is NAME:PATH (PATH absolute in the container), the other a path here, or -\n"
                     "for a tar archive on stdin or stdout. A directory is copied whole;\n"
                     "into an existing directory it goes under its own name. Symbolic links\n"
                     "are copied as links; names resolve as the container sees them (a\n"
                     "stopped container: its root file system, without its volumes).\n"))
    return 0;
  static const struct option lo[] = {{0, 0, 0, 0}};
  optind = 1;
  if (cli_getopt(argc, argv, "+", lo) != -1)
    return 125;
  if (argc - optind != 2)
    return cli_usage_error("cp needs a source and a destination (see ferry cp --help)");
  const char *src = argv[optind], *dst = argv[optind + 1];
  _cleanup_free_ char *sn = NULL, *sp = NULL, *dn = NULL, *dp = NULL;
  bool sc = ctr_side(src, &sn, &sp), dc = ctr_side(dst, &dn, &dp);
  if (sc == dc)
    return cli_usage_error("cp: exactly one of source and destination is NAME:PATH in a container");
  return sc ? copy_out(cli, sn, sp, dst) : copy_in(cli, src, dn, dp);
}
