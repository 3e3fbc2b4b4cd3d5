/* agent/: one operation at a time owns a container (agent_claim). A second
 * operation is refused with 409 naming the first; the claim ends only with
 * its holder's release; a record marked by an operation a restart must
 * resolve is claimed only by that recovery. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdlib.h>
#include <string.h>

#include "agent/agent_private.h"
#include "runtime/record.h"
#include "util/json.h"

static struct agent *agent_new_bare(void)
{
  /* the claims need only the store lock and the claim map */
  struct agent *a = calloc(1, sizeof *a);
  assert_non_null(a);
  pthread_mutex_init(&a->lock, NULL);
  a->claims = json_object();
  return a;
}

static void agent_free_bare(struct agent *a)
{
  assert_int_equal(json_object_size(a->claims), 0); /* every claim ended */
  json_decref(a->claims);
  pthread_mutex_destroy(&a->lock);
  free(a);
}

static json_t *record(const char *id, const char *name)
{
  return json_pack("{s:s, s:s}", "id", id, "name", name);
}

static void claim(struct agent *a, json_t *rec, const char *op, struct agent_claim **c,
                  struct ferry_err *err)
{
  pthread_mutex_lock(&a->lock);
  int r = agent_claim_locked(a, rec, op, true, c, err);
  pthread_mutex_unlock(&a->lock);
  assert_int_equal(r, 0);
}

static void test_one_owner(void **state)
{
  (void)state;
  struct agent *a = agent_new_bare();
  json_t *web = record("aaaa0000", "web"), *db = record("bbbb0000", "db");
  struct agent_claim *stop = NULL, *other = NULL, *dbc = NULL;
  struct ferry_err err = {0};
  claim(a, web, "stop", &stop, &err);
  assert_ptr_equal(agent_claim_rec(stop), web);
  /* a second operation on it: refused, naming what owns it */
  pthread_mutex_lock(&a->lock);
  int r = agent_claim_locked(a, web, "removal", true, &other, &err);
  pthread_mutex_unlock(&a->lock);
  assert_true(r < 0);
  assert_null(other);
  assert_int_equal(err.klass, FERRY_E_CONFLICT);
  assert_non_null(strstr(err.msg, "a stop is in progress"));
  /* another container is not affected */
  claim(a, db, "kill", &dbc, &err);
  agent_release(dbc, false);
  /* released by its holder, the container can be claimed again */
  agent_release(stop, false);
  claim(a, web, "removal", &other, &err);
  agent_release(other, false);
  agent_release(NULL, false);
  json_decref(web);
  json_decref(db);
  agent_free_bare(a);
}

static void test_marked_only_by_recovery(void **state)
{
  (void)state;
  struct agent *a = agent_new_bare();
  json_t *rec = record("cccc0000", "moving");
  rec_set_op(rec, OP_MIGRATION);
  struct agent_claim *c = NULL, *c2 = NULL;
  struct ferry_err err = {0};
  /* an ordinary operation: refused while the record is marked */
  pthread_mutex_lock(&a->lock);
  int r = agent_claim_locked(a, rec, "start", true, &c, &err);
  pthread_mutex_unlock(&a->lock);
  assert_true(r < 0);
  assert_int_equal(err.klass, FERRY_E_CONFLICT);
  assert_non_null(strstr(err.msg, "migration"));
  /* the recovery that resolves the mark takes it, once */
  assert_int_equal(agent_claim_marked(a, rec, &c, &err), 0);
  assert_true(agent_claim_marked(a, rec, &c2, &err) < 0);
  assert_null(c2);
  agent_release(c, false);
  json_decref(rec);
  agent_free_bare(a);
}

int main(void)
{
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_one_owner),
      cmocka_unit_test(test_marked_only_by_recovery),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
