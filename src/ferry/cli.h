/* The ferry command line: shared state and helpers of the verb files. */
#pragma once
#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>

#include "http/http.h"
#include "util/err.h"

struct cli {
  struct http_client *api;
  bool json; /* global --json */
  const char *token;  /* bearer token for TCP agents */
  const char *tls_ca; /* CA for HTTPS agents */
  const char *coord;  /* --coord URL: talk to the coordinator instead */
};

struct cli_cmd {
  const char *name;
  int (*fn)(struct cli *cli, int argc, char **argv);
  const char *summary;
};

/* Prints "Error: <msg>" and returns the exit code for it (125, as podman). */
int cli_fail(const struct ferry_err *err);
int cli_usage_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* True when argv has -h/--help before "--": prints help text and the caller returns 0. */
bool cli_wants_help(int argc, char **argv, const char *help);
/* podman's prune question on stderr: true when the answer is yes. */
bool cli_confirm(const char *warning);
/* A prune: DELETE each item's "url"; what went is printed by its "label"
 * (a JSON array with --json); one in use (409) or already gone (404) is
 * left out silently; other errors are said, 125. */
int cli_prune(struct cli *cli, json_t *items);
/* getopt_long for a command's options: an unknown option or a missing
 * value is said as "Error: CMD: ..." with a pointer to CMD --help, and
 * comes back as '?'. */
struct option;
int cli_getopt(int argc, char **argv, const char *shortopts, const struct option *lo);
/* --format (format.c): prints fmt over v, a line; 125 with an error for a
 * format it does not understand. */
int cli_format(FILE *out, const char *fmt, json_t *v);
/* A container record with podman's field names beside its own (State.Status,
 * NetworkSettings.IPAddress, Names, ...), for --format. */
json_t *cli_podman_view(json_t *rec);
void cli_print_json(json_t *j);
/* "1.5 MiB", "300 ms" and similar, into buf. */
const char *fmt_bytes(uint64_t b, char *buf, size_t len);
const char *fmt_ms(int64_t ms, char *buf, size_t len);
/* Makes a path absolute against the cwd (malloc'd). */
char *cli_abs_path(const char *p);

int cmd_image(struct cli *cli, int argc, char **argv);
int cmd_pull(struct cli *cli, int argc, char **argv);
int cmd_push(struct cli *cli, int argc, char **argv);
/* The registry options of pull, run and create (long-option codes 0x101..0x104:
 * --authfile, --creds, --cert-dir, --tls-verify) into a pull request: 1 if c
 * was one of them, 0 if not, else an exit code. */
int cli_pull_opts(int c, const char *arg, json_t *req);
/* POST /v1/images/pull with req; prints what was pulled (on stderr when quiet). */
int cli_pull(struct cli *cli, json_t *req, bool quiet);
int cmd_images(struct cli *cli, int argc, char **argv);
int cmd_run(struct cli *cli, int argc, char **argv);
int cmd_create(struct cli *cli, int argc, char **argv);
int cmd_start(struct cli *cli, int argc, char **argv);
int cmd_resume(struct cli *cli, int argc, char **argv);
int cmd_stop(struct cli *cli, int argc, char **argv);
int cmd_kill(struct cli *cli, int argc, char **argv);
int cmd_rm(struct cli *cli, int argc, char **argv);
int cmd_ps(struct cli *cli, int argc, char **argv);
int cmd_inspect(struct cli *cli, int argc, char **argv);
int cmd_logs(struct cli *cli, int argc, char **argv);
int cmd_exec(struct cli *cli, int argc, char **argv);
int cmd_attach(struct cli *cli, int argc, char **argv);
int cmd_cp(struct cli *cli, int argc, char **argv);

/* ---- interactive sessions (interactive.c) ---- */
/* An exec or attach answer (frames of util/frame.h) split back onto stdout
 * and stderr, the exit code from the last frame (http_stream_fn). */
struct exec_demux {
  unsigned char head[8];
  size_t head_len;
  uint32_t left; /* bytes of the current frame's body still to come */
  int stream;
  char exitj[128]; /* the exit frame's JSON */
  size_t exitj_len;
  int exit_code;
  bool exit_unknown;
  bool bad;
};
bool exec_demux_feed(void *ud, const char *data, size_t n);
#define DETACH_KEYS_MAX 8
/* podman's --detach-keys ("ctrl-p,ctrl-q"; "" for none) as bytes; 125
 * with an error said. */
int cli_parse_detach_keys(const char *spec, unsigned char *keys, size_t *n);
struct cli_session_opts {
  bool tty, in;
  const char *detach_keys; /* NULL: ctrl-p,ctrl-q */
  const char *proxy;       /* attach: the container that gets our signals */
};
#define CLI_DETACHED 256 /* cli_session's answer when the user detached */
/* Runs the agent's session id to its end: its exit code, CLI_DETACHED, or
 * 125 with an error said. */
int cli_session(struct cli *cli, const char *id, const struct cli_session_opts *o);
/* Sets "rows" and "cols" of req to our terminal's size, when there is one. */
void cli_term_size(json_t *req);
/* ferry attach NAME: the container's exit code, 0 when detached. */
int cli_attach(struct cli *cli, const char *name, bool in, const char *keys);
int cmd_volume(struct cli *cli, int argc, char **argv);
int cmd_checkpoint(struct cli *cli, int argc, char **argv);
int cmd_restore(struct cli *cli, int argc, char **argv);
int cmd_info(struct cli *cli, int argc, char **argv);
int cmd_version(struct cli *cli, int argc, char **argv);
int cmd_port(struct cli *cli, int argc, char **argv);
int cmd_restart(struct cli *cli, int argc, char **argv);
int cmd_pause(struct cli *cli, int argc, char **argv);
int cmd_wait(struct cli *cli, int argc, char **argv);
int cmd_container(struct cli *cli, int argc, char **argv);
int cmd_rmi(struct cli *cli, int argc, char **argv);
int cmd_tag(struct cli *cli, int argc, char **argv);
int cmd_save(struct cli *cli, int argc, char **argv);
int cmd_top(struct cli *cli, int argc, char **argv);
int cmd_stats(struct cli *cli, int argc, char **argv);
int cmd_migrate(struct cli *cli, int argc, char **argv);
int cmd_node(struct cli *cli, int argc, char **argv);
int coord_migrate_cmd(struct cli *cli, int argc, char **argv);
