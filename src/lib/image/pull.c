/* Pulling an image from an OCI or Docker registry: skopeo (the
 * containers/image implementation podman uses) copies it into an OCI
 * archive in the store's scratch directory, which is then imported like any
 * archive: the same checks, the same limits, nothing stored on a failure. */
#include <fcntl.h>
#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "image/store.h"
#include "util/cleanup.h"
#include "util/fs.h"
#include "util/json.h"
#include "util/spawn.h"
#include "util/strv.h"

/* A path option must name what it says, checked without blocking: a FIFO
 * or a device there would hang skopeo (and whoever waits for it). */
static int path_kind_check(const char *what, const char *path, bool dir, struct ferry_err *err)
{
  struct stat st;
  if (stat(path, &st) < 0)
    return ferry_err_sys(err, -errno, "%s %s", what, path);
  if (dir ? !S_ISDIR(st.st_mode) : !S_ISREG(st.st_mode))
    return FERRY_INVALID(err, "%s %s is not a %s", what, path, dir ? "directory" : "regular file");
  return 0;
}

/* The registry part of a normalised reference ("docker.io/library/redis:7"). */
static char *registry_of(const char *ref)
{
  const char *p = strstr(ref, "://");
  p = p ? p + 3 : ref;
  return strndup(p, strcspn(p, "/"));
}

/* USER:PASSWORD into an auth file of podman's format (mode 0600) in dir:
 * never on a command line, where any local user reads it in /proc. */
static int creds_authfile(const char *creds, const char *registry, const char *dir, char **out,
                          struct ferry_err *err)
{
  size_t n = strlen(creds);
  unsigned char *b64 = malloc(4 * ((n + 2) / 3) + 1);
  if (!b64)
    abort();
  EVP_EncodeBlock(b64, (const unsigned char *)creds, (int)n);
  _cleanup_json_ json_t *j = json_pack("{s:{s:{s:s}}}", "auths", registry, "auth", (char *)b64);
  free(b64);
  _cleanup_free_ char *path = path_join(dir, "auth.json");
  mode_t old = umask(0077);
  int r = json_save_atomic(path, j, err);
  umask(old);
  if (r < 0)
    return r;
  *out = xstrdup(path);
  return 0;
}

int skopeo_copy(const char *src, const char *dst, bool to_registry, const struct pull_opts *o,
                const char *what, struct ferry_err *err)
{
  if (o->creds && !strchr(o->creds, ':'))
    return FERRY_INVALID(err, "credentials must be USER:PASSWORD");
  if (o->creds && o->authfile)
    return FERRY_INVALID(err, "give credentials or an auth file, not both");
  int r;
  if ((o->authfile && (r = path_kind_check("auth file", o->authfile, false, err)) < 0) ||
      (o->cert_dir && (r = path_kind_check("certificate directory", o->cert_dir, true, err)) < 0))
    return r;
  /* the registry's side of the copy takes the options */
  const char *side = to_registry ? "--dest" : "--src";
  _cleanup_free_ char *credfile = NULL;
  _cleanup_free_ char *creddir = NULL;
  if (o->creds) {
    _cleanup_free_ char *reg = registry_of(to_registry ? dst : src);
    creddir = path_join(o->scratch ? o->scratch : "/tmp", "creds-XXXXXX");
    if (!mkdtemp(creddir))
      return ferry_err_sys(err, -errno, "%s: a private directory for the credentials", what);
    if ((r = creds_authfile(o->creds, reg, creddir, &credfile, err)) < 0) {
      rm_rf(creddir, NULL);
      return r;
    }
  }
  _cleanup_strv_ char **argv = strv_new();
  strv_push(&argv, "skopeo");
  strv_push(&argv, "copy");
  strv_push(&argv, "--quiet");
  if (o->authfile || credfile) {
    strv_push_take(&argv, xasprintf("%s-authfile", side));
    strv_push(&argv, credfile ? credfile : o->authfile);
  }
  if (o->cert_dir) {
    strv_push_take(&argv, xasprintf("%s-cert-dir", side));
    strv_push(&argv, o->cert_dir);
  }
  strv_push_take(&argv, xasprintf("%s-tls-verify=%s", side, o->tls_verify ? "true" : "false"));
  strv_push(&argv, src);
  strv_push(&argv, dst);
  struct spawn_result res = {0};
  struct spawn_opts so = {.timeout_ms = 3600 * 1000};
  r = spawn_run((const char *const *)argv, &so, &res, err);
  if (creddir)
    rm_rf(creddir, NULL);
  if (r == 0 && res.exit_code != 0) {
    /* skopeo's own words: "unauthorized", "manifest unknown", an x509
     * error... it gives no finer exit code to go by */
    _cleanup_free_ char *t = tail_lines(res.errout, 600);
    /* skopeo logs as: time="..." level=fatal msg="WHAT": keep WHAT */
    char *m = strstr(t, "msg=\"");
    if (m) {
      m += 5;
      char *w = m;
      for (char *q = m; *q && !(q[0] == '"' && (q[1] == '\0' || q[1] == ';' || q[1] == ' ')); q++)
        *w++ = (q[0] == '\\' && q[1] == '"') ? *++q : *q;
      *w = '\0';
    }
    r = ferry_err_set(err, -EIO, FERRY_E_UNAVAILABLE, "%s: %s", what, m ? m : t);
  }
  spawn_result_free(&res);
  return r;
}

int image_pull(struct image_store *s, const char *ref, const struct pull_opts *o,
               pthread_mutex_t *import_lock, json_t **out, struct ferry_err *err)
{
  _cleanup_free_ char *want = NULL;
  int r = image_normalize_name(ref, &want, err);
  if (r < 0)
    return r;
  _cleanup_free_ char *tmpl = path_join(s->tmp_dir, "pull-XXXXXX");
  if (!mkdtemp(tmpl))
    return ferry_err_sys(err, -errno, "pull %s: scratch directory", want);
  _cleanup_free_ char *archive = path_join(tmpl, "image.tar");
  _cleanup_free_ char *src = xasprintf("docker://%s", want);
  _cleanup_free_ char *dst = xasprintf("oci-archive:%s:%s", archive, want);
  _cleanup_free_ char *what = xasprintf("pull %s", want);
  /* the registry is waited for outside the lock; only the import holds it */
  r = skopeo_copy(src, dst, false, o, what, err);
  if (r == 0) {
    if (import_lock)
      pthread_mutex_lock(import_lock);
    r = image_import(s, archive, want, want, out, err);
    if (import_lock)
      pthread_mutex_unlock(import_lock);
  }
  rm_rf(tmpl, NULL);
  return r;
}
