/* Running external programs (runc, ip, criu): explicit argv, no shell, stdout
 * and stderr captured, a timeout, always reaped. */
#pragma once
#include <stdbool.h>
#include <stddef.h>

#include "util/err.h"

struct spawn_opts {
  const char *const *envp;  /* NULL: inherit */
  const char *cwd;          /* NULL: inherit */
  const char *stdin_path;   /* NULL: /dev/null */
  int timeout_ms;           /* 0: 120 s */
  size_t max_output;        /* per stream; 0: 1 MiB, extra is dropped */
  int pass_fd;              /* with pass_as > 2: this fd is the child's fd pass_as */
  int pass_as;
  int pass_fd2;             /* a second one, the same way (pass_as2 > 2, != pass_as) */
  int pass_as2;
  int pass_fd3;             /* a third (pass_as3 > 2, != the others) */
  int pass_as3;
  /* the child survives the agent's death (no parent-death signal, SIGPIPE
   * ignored, its own session): a CRIU dump killed halfway would leave its
   * parasite in the container's processes, which then die of SIGTRAP */
  bool outlive_parent;
};

struct spawn_result {
  int exit_code;   /* -1 when killed by a signal */
  int term_signal; /* 0 unless killed */
  char *out;       /* malloc'd, NUL-terminated */
  char *errout;
};

void spawn_result_free(struct spawn_result *r);

/* The PATH a program (a container's process, CRIU) gets when none is set:
 * podman's and the OCI runtimes' default. */
#define FERRY_DEFAULT_PATH "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

/* Runs argv[0] (looked up on PATH). Returns 0 when the program ran (whatever its
 * exit code), a negative errno when it could not be run or timed out. */
int spawn_run(const char *const *argv, const struct spawn_opts *opts, struct spawn_result *res,
              struct ferry_err *err);

/* Runs argv and fails unless it exits 0; the error names the program and
 * carries the last lines of its stderr. out (optional) gets stdout. */
int spawn_check(const char *const *argv, char **out, struct ferry_err *err);

/* Writes script to a private temporary file and runs argv (which ends with
 * the tool's batch option: "ip", "-n", NS, "-force", "-batch") with that
 * file's path appended, as spawn_check; the file goes after. One process
 * for many commands. */
int spawn_batch(const char *const *argv, const char *script, struct ferry_err *err);

/* Starts argv in the background with stdout/stderr appended to log_path
 * (stdin /dev/null). The caller owns the child: it must reap it (spawn_reap). */
int spawn_bg(const char *const *argv, const char *log_path, int *pid, struct ferry_err *err);
/* The same with opts' passed fds and outlive_parent (the rest of opts is
 * not used). */
int spawn_bg_opts(const char *const *argv, const char *log_path, const struct spawn_opts *opts,
                  int *pid, struct ferry_err *err);
/* Starts argv (stdin /dev/null) with its stdout and stderr on pipes whose
 * read ends it returns (close-on-exec); the caller reads them, then reaps the
 * child (spawn_reap). */
int spawn_piped(const char *const *argv, int *pid, int *out_fd, int *err_fd,
                struct ferry_err *err);
/* The same with opts' passed fds, and its stdin on a pipe too when in_fd is
 * given (*in_fd gets the write end). */
int spawn_piped_in(const char *const *argv, const struct spawn_opts *opts, int *pid, int *in_fd,
                   int *out_fd, int *err_fd, struct ferry_err *err);
/* Waits up to timeout_ms for pid to exit; kills it (SIGKILL) when kill_after.
 * Returns its exit code, or -ETIMEDOUT. */
int spawn_reap(int pid, int timeout_ms, bool kill_after);

/* The last non-empty lines of s, up to max bytes, newlines turned to "; ". */
char *tail_lines(const char *s, size_t max);
