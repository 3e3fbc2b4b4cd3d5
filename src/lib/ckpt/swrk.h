/* Internal to ckpt/: a dump through a CRIU started ahead (swrk.c). */
#pragma once
#include <stdbool.h>

#include "ckpt/ckpt.h"
#include "util/strv.h"

/* The fd numbers CRIU is told to find its page-server connection, its
 * memory trackers' keeper and its status pipe at. */
#define CKPT_PS_FD 100
#define CKPT_KEEPER_FD 101
#define CKPT_STATUS_FD 102

/* Whether c can take a dump naming these fds (started with them, unused). */
bool ckpt_criu_fits(const struct ckpt_criu *c, int ps_fd, int keeper_fd);
/* The dump of argv (the direct command line, ckpt.c) as c's request, its
 * images in images_dir: 0 when CRIU says it succeeded; -ENOTSUP when it
 * cannot be asked so (nothing was done: start CRIU the usual way); -EIO
 * with *why (malloc'd) when CRIU answered a failure or ended without an
 * answer (its log says more); another error in err. Used once. */
int ckpt_criu_dump(struct ckpt_criu *c, char **argv, const char *images_dir, int timeout_ms,
                   char **why, struct ferry_err *err);

/* The environment CRIU runs in: the agent's, with LD_BIND_NOW=1. CRIU
 * links ~15 libraries; bound lazily, each process it forks for the tasks
 * it restores resolves symbols on first call and writes its own copy of
 * the pages that hold them (copy-on-write faults, costly on these
 * machines): measured, CRIU's CPU inside a small move's pause 92-127 ->
 * 74-79 ms. Bound at its start instead, before the freeze (its start is
 * waited for, ckpt/criu-ready.h). Built once. */
const char *const *ckpt_criu_env(void);
