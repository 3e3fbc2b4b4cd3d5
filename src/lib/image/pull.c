/* Pulling an image from an OCI or Docker registry: skopeo (the
 * containers/image implementation podman uses) copies it into an OCI
 * archive in the store's scratch directory, which is then imported like any
 * archive: the same checks, the same limits, nothing stored on a failure. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "image/store.h"
#include "util/cleanup.h"
#include "util/fs.h"
#include "util/spawn.h"
#include "util/strv.h"

int skopeo_copy(const char *src, const char *dst, bool to_registry, const struct pull_opts *o,
                const char *what, struct ferry_err *err)
{
  if (o->creds && !strchr(o->creds, ':'))
    return FERRY_INVALID(err, "credentials must be USER:PASSWORD");
  /* the registry's side of the copy takes the options */
  const char *side = to_registry ? "--dest" : "--src";
  _cleanup_strv_ char **argv = strv_new();
  strv_push(&argv, "skopeo");
  strv_push(&argv, "copy");
  strv_push(&argv, "--quiet");
  if (o->authfile) {
    strv_push_take(&argv, xasprintf("%s-authfile", side));
    strv_push(&argv, o->authfile);
  }
  if (o->cert_dir) {
    strv_push_take(&argv, xasprintf("%s-cert-dir", side));
    strv_push(&argv, o->cert_dir);
  }
  if (o->creds) {
    strv_push_take(&argv, xasprintf("%s-creds", side));
    strv_push(&argv, o->creds);
  }
  strv_push_take(&argv, xasprintf("%s-tls-verify=%s", side, o->tls_verify ? "true" : "false"));
  strv_push(&argv, src);
  strv_push(&argv, dst);
  struct spawn_result res = {0};
  struct spawn_opts so = {.timeout_ms = 3600 * 1000};
  int r = spawn_run((const char *const *)argv, &so, &res, err);
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

int image_pull(struct image_store *s, const char *ref, const struct pull_opts *o, json_t **out,
               struct ferry_err *err)
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
  r = skopeo_copy(src, dst, false, o, what, err);
  if (r == 0)
    r = image_import(s, archive, want, want, out, err);
  rm_rf(tmpl, NULL);
  return r;
}
