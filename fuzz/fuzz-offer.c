/* Fuzzes what a peer sends in a migration offer and what a client sends
 * when it creates a container: JSON parsing, every message of the
 * migration protocol (migrate/wire.h), the record sanitizer (names,
 * digests, addresses, volumes, ports), port mappings, volume destinations
 * and names. Nothing may crash, leak or hang; a record that passes the
 * sanitizer must pass it again unchanged (it is a fixed point), and a
 * message that parses must parse again as written back. */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "migrate/wire.h"
#include "net/ports.h"
#include "runtime/runtime.h"
#include "util/json.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* parse, write back, parse again: both must succeed */
#define AGAIN(type, parse, write)                                                                  \
  do {                                                                                             \
    type m_, b_;                                                                                   \
    if (parse(j, &m_, &err) == 0) {                                                                \
      json_t *w_ = write(&m_);                                                                     \
      if (parse(w_, &b_, &err) != 0)                                                               \
        abort();                                                                                   \
      json_decref(w_);                                                                             \
    }                                                                                              \
  } while (0)

static void wire_messages(json_t *j)
{
  struct ferry_err err = {0};
  AGAIN(struct wire_offer, wire_offer_parse, wire_offer_json);
  AGAIN(struct wire_page_server_req, wire_page_server_req_parse, wire_page_server_req_json);
  AGAIN(struct wire_page_server, wire_page_server_parse, wire_page_server_json);
  AGAIN(struct wire_prepare, wire_prepare_parse, wire_prepare_json);
  AGAIN(struct wire_restore, wire_restore_parse, wire_restore_json);
  AGAIN(struct wire_state, wire_state_parse, wire_state_json);
  AGAIN(struct wire_abort_answer, wire_abort_answer_parse, wire_abort_answer_json);
  struct wire_offer_answer a;
  wire_offer_answer_parse(j, json_object_get(j, "image"), &a, &err);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
  struct ferry_err err = {0};
  json_t *j = NULL;
  if (json_parse((const char *)data, size, "fuzz", &j, &err) < 0)
    return 0;
  wire_messages(j);
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
