/* Checkpoint and restore of one container through runc and CRIU. */
#include <string.h>

#include "ckpt/ckpt.h"
#include "runtime/runtime.h"
#include "util/cleanup.h"
#include "util/fs.h"
#include "util/json.h"
#include "util/spawn.h"
#include "util/strv.h"

/* The fd number CRIU is told to find its page-server connection at. */
#define CKPT_PS_FD 100

/* Adds (or, with add false, removes again) "ps-socket N" in the container's
 * criu.conf, which runc hands to CRIU: CRIU then uses the connection it
 * inherits at that fd instead of connecting to the page server itself. */
static int conf_ps_socket(struct runtime *rt, const char *id, bool add, struct ferry_err *err)
{
  _cleanup_free_ char *p = ctr_path(rt, id, CTR_CRIU_CONF);
  _cleanup_free_ char *cur = NULL;
  size_t n = 0;
  if (read_file(p, 65536, &cur, &n, NULL) < 0) {
    cur = xstrdup("");
    n = 0;
  }
  char line[32];
  int ln = snprintf(line, sizeof line, "ps-socket %d\n", CKPT_PS_FD);
  char *at = strstr(cur, line);
  if (add == (at != NULL))
    return 0;
  if (add) {
    _cleanup_free_ char *next = xasprintf("%s%s", cur, line);
    return write_file_atomic(p, next, n + (size_t)ln, 0644, err);
  }
  memmove(at, at + ln, strlen(at + ln) + 1);
  return write_file_atomic(p, cur, strlen(cur), 0644, err);
}

int ckpt_dump(struct runtime *rt, const char *id, const char *images_dir, const char *page_server,
              int ps_fd, bool leave_running, int timeout_ms, json_t **stats, struct ferry_err *err)
{
  runtime_changed(rt);
  _cleanup_strv_ char **argv = strv_new();
  const char *fixed[] = {rt->runc, "--root", rt->runc_root, "checkpoint", "--image-path",
                         images_dir, "--work-path", images_dir, "--tcp-established",
                         "--file-locks"};
  for (size_t i = 0; i < ARRAY_SIZE(fixed); i++)
    strv_push(&argv, fixed[i]);
  if (page_server) {
    strv_push(&argv, "--page-server");
    strv_push(&argv, page_server);
  }
  if (leave_running)
    strv_push(&argv, "--leave-running");
  strv_push(&argv, id);
  struct spawn_result res = {0};
  struct spawn_opts so = {.timeout_ms = timeout_ms};
  if (ps_fd >= 0) {
    int rc = conf_ps_socket(rt, id, true, err);
    if (rc < 0)
      return ferry_err_wrap(err, "page-server connection for CRIU");
    so.pass_fd = ps_fd;
    so.pass_as = CKPT_PS_FD;
  }
  int r = spawn_run((const char *const *)argv, &so, &res, err);
  runtime_changed(rt);
  if (ps_fd >= 0)
    conf_ps_socket(rt, id, false, NULL);
  if (r == 0 && res.exit_code != 0) {
    _cleanup_free_ char *logp = path_join(images_dir, "dump.log");
    _cleanup_free_ char *cerr = criu_log_errors(logp, 700);
    _cleanup_free_ char *t = tail_lines(res.errout, 300);
    r = FERRY_INTERNAL(err, "runc checkpoint failed: %s%s%s", t, *cerr ? "; CRIU: " : "", cerr);
  }
  spawn_result_free(&res);
  if (r == 0 && stats) {
    _cleanup_free_ char *sp = path_join(images_dir, "stats-dump");
    *stats = NULL;
    criu_stats_read(sp, stats, NULL);
  }
  return r;
}

int ckpt_restore(struct runtime *rt, json_t *rec, const char *images_dir, int *pid,
                 json_t **stats, struct ferry_err *err)
{
  const char *id = rec_id(rec);
  _cleanup_free_ char *work = ctr_path(rt, id, "restore-work");
  rm_rf(work, NULL);
  int r = mkdir_p(work, 0700, err);
  if (r < 0)
    return r;
  char *rargs[] = {"--image-path", (char *)images_dir, "--work-path", work, "--tcp-established",
                   "--file-locks", NULL};
  if ((r = runc_launch(rt, rec, rargs, pid, err)) < 0) {
    _cleanup_free_ char *logp = path_join(work, "restore.log");
    _cleanup_free_ char *cerr = criu_log_errors(logp, 700);
    if (*cerr)
      ferry_err_wrap(err, "CRIU: %s; runc", cerr);
    return r;
  }
  if (stats) {
    _cleanup_free_ char *sp = path_join(work, "stats-restore");
    *stats = NULL;
    criu_stats_read(sp, stats, NULL);
  }
  return 0;
}
