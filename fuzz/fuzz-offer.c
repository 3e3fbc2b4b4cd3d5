/* Fuzzes what a peer sends in a migration offer and what a client sends
 * when it creates a container: JSON parsing, the record sanitizer (names,
 * digests, addresses, volumes, ports), port mappings, volume destinations
 * and names. Nothing may crash, leak or hang; a record that passes the
 * sanitizer must pass it again unchanged (it is a fixed point). */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "net/ports.h"
#include "runtime/runtime.h"
#include "util/json.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
  struct ferry_err err = {0};
  json_t *j = NULL;
  if (json_parse((const char *)data, size, "fuzz", &j, &err) < 0)
    return 0;
  json_t *rec = NULL;
  if (ctr_record_sanitize(j, &rec, &err) == 0) {
    json_t *again = NULL;
    if (ctr_record_sanitize(rec, &again, &err) != 0 || !json_equal(rec, again))
      abort(); /* a clean record must stay clean */
    json_decref(again);
    json_decref(rec);
  }
  json_t *ports = NULL;
  if (ports_check(json_object_get(j, "ports"), &ports, &err) == 0) {
    char *f = ports_format(ports);
    free(f);
    json_decref(ports);
  }
  const char *s = json_is_string(j) ? json_string_value(j) : NULL;
  if (s) {
    json_t *m = NULL;
    if (port_spec_parse(s, &m, &err) == 0)
      json_decref(m);
    volume_dest_check(s, &err);
    validate_name("container", s, &err);
  }
  json_decref(j);
  return 0;
}
