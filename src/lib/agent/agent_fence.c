/* Fencing of coordinators: every command of a leading coordinator carries
 * its term (X-Ferry-Term); the agent keeps the highest term it has seen (in
 * ROOT/coord-term, so that a restart forgets nothing) and refuses commands of
 * an older one: a deposed leader cannot start, follow or commit a move once
 * its successor has spoken to this agent. A command is handled under a read
 * lock of the term, so a newer term is taken only between commands: a move
 * that an old term's request started is known (by its id) to the new
 * leader's first question. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "agent/agent_private.h"
#include "util/cleanup.h"
#include "util/fs.h"

static char *term_path(struct agent *a) { return path_join(a->root, "coord-term"); }

void agent_term_load(struct agent *a)
{
  pthread_rwlock_init(&a->term_lock, NULL);
  _cleanup_free_ char *p = term_path(a), *text = NULL;
  size_t n = 0;
  a->coord_term = 0;
  if (read_file(p, 64, &text, &n, NULL) == 0)
    a->coord_term = strtoll(text, NULL, 10);
  if (a->coord_term < 0)
    a->coord_term = 0;
}

static int stale(int64_t term, int64_t seen, struct ferry_err *err)
{
  return ferry_err_set(err, -ESTALE, FERRY_E_CONFLICT,
                       "coordinator term %lld is older than term %lld, which this agent has "
                       "heard from: the command of a deposed leader is refused",
                       (long long)term, (long long)seen);
}

int agent_term_enter(struct agent *a, const char *header, struct ferry_err *err)
{
  char *end = NULL;
  long long term = header ? strtoll(header, &end, 10) : 0;
  if (!header || !*header || *end || term <= 0)
    return FERRY_INVALID(err, "X-Ferry-Term: \"%.40s\" is not a term (a positive number)",
                         header ? header : "");
  pthread_rwlock_rdlock(&a->term_lock);
  if (term == a->coord_term)
    return 0;
  if (term < a->coord_term) {
    int r = stale(term, a->coord_term, err);
    pthread_rwlock_unlock(&a->term_lock);
    return r;
  }
  /* a newer term: kept on disk before anything is done under it */
  pthread_rwlock_unlock(&a->term_lock);
  pthread_rwlock_wrlock(&a->term_lock);
  int r = 0;
  if (term > a->coord_term) {
    char text[32];
    int n = snprintf(text, sizeof text, "%lld\n", term);
    _cleanup_free_ char *p = term_path(a);
    if ((r = write_file_atomic(p, text, (size_t)n, 0600, err)) == 0)
      a->coord_term = term;
  }
  pthread_rwlock_unlock(&a->term_lock);
  if (r < 0)
    return ferry_err_wrap(err, "coordinator term %lld not kept, command refused", term);
  pthread_rwlock_rdlock(&a->term_lock);
  if (term < a->coord_term) { /* an even newer one came meanwhile */
    r = stale(term, a->coord_term, err);
    pthread_rwlock_unlock(&a->term_lock);
    return r;
  }
  return 0;
}

void agent_term_leave(struct agent *a) { pthread_rwlock_unlock(&a->term_lock); }
