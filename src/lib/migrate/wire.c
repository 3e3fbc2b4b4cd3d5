/* The JSON of the messages between two agents (wire.h): written and read
 * here only. */
#include <string.h>

#include "migrate/state.h"
#include "migrate/wire.h"
#include "runtime/runtime.h"
#include "util/digest.h"
#include "util/json.h"

#define NEIGHBOURS_MAX 4096

static bool is_hex(const char *s, size_t n)
{
  return s && strlen(s) == n && strspn(s, "0123456789abcdef") == n;
}

/* An optional integer field in [lo, hi]; def when absent. */
static int get_int(json_t *j, const char *key, long lo, long hi, long def, long *out,
                   struct ferry_err *err)
{
  json_t *v = json_object_get(j, key);
  *out = def;
  if (!v || json_is_null(v))
    return 0;
  if (!json_is_integer(v) || json_integer_value(v) < lo || json_integer_value(v) > hi)
    return FERRY_INVALID(err, "field \"%s\" must be a whole number %ld..%ld", key, lo, hi);
  *out = (long)json_integer_value(v);
  return 0;
}

static int need_object(json_t *j, const char *what, struct ferry_err *err)
{
  return json_is_object(j) ? 0 : FERRY_INVALID(err, "%s must be a JSON object", what);
}

/* ---- offer ---- */

json_t *wire_offer_json(const struct wire_offer *m)
{
  return json_pack("{s:s, s:s, s:O, s:O, s:O}", "id", m->id, "source_agent",
                   m->source_agent ? m->source_agent : "", "container", m->container, "image",
                   m->image, "volumes", m->volumes);
}

int wire_offer_parse(json_t *j, struct wire_offer *m, struct ferry_err *err)
{
  *m = (struct wire_offer){0};
  int r = need_object(j, "offer", err);
  if (r < 0 || (r = json_get_str(j, "id", true, &m->id, err)) < 0 ||
      (r = json_get_str(j, "source_agent", false, &m->source_agent, err)) < 0)
    return r;
  if (!migration_id_valid(m->id))
    return FERRY_INVALID(err, "migration id \"%s\" is malformed", m->id);
  if (!m->source_agent)
    m->source_agent = "";
  m->container = json_object_get(j, "container");
  m->image = json_object_get(j, "image");
  m->volumes = json_object_get(j, "volumes");
  if (!json_is_object(m->container) || !json_is_object(m->image) ||
      (m->volumes && !json_is_array(m->volumes)))
    return FERRY_INVALID(err, "offer: container, image and volumes are required");
  json_t *layers = json_object_get(m->image, "layers");
  if (!digest_valid(json_str_or(m->image, "id", NULL)) || !json_is_array(layers))
    return FERRY_INVALID(err, "offer: image record without a valid id and layers");
  size_t i;
  json_t *v;
  json_array_foreach(layers, i, v) if (!digest_valid(json_string_value(v)))
      return FERRY_INVALID(err, "offer: layer %zu has no valid digest", i + 1);
  if (!m->volumes) {
    m->volumes = json_array();
    json_object_set_new(j, "volumes", m->volumes); /* borrowed, like the rest */
  }
  json_array_foreach(m->volumes, i, v)
  {
    if (!json_is_string(v))
      return FERRY_INVALID(err, "offer: volume %zu is not a name", i + 1);
    if ((r = validate_name("volume", json_string_value(v), err)) < 0)
      return ferry_err_wrap(err, "offer");
  }
  return 0;
}

json_t *wire_offer_answer_json(const struct wire_offer_answer *m)
{
  return json_pack("{s:s, s:s, s:O}", "id", m->id, "target_agent",
                   m->target_agent ? m->target_agent : "", "missing_layers", m->missing_layers);
}

int wire_offer_answer_parse(json_t *j, json_t *image, struct wire_offer_answer *m,
                            struct ferry_err *err)
{
  *m = (struct wire_offer_answer){0};
  int r = need_object(j, "the offer's answer", err);
  if (r < 0 || (r = json_get_str(j, "id", false, &m->id, err)) < 0 ||
      (r = json_get_str(j, "target_agent", false, &m->target_agent, err)) < 0)
    return r;
  m->missing_layers = json_object_get(j, "missing_layers");
  if (!m->missing_layers) {
    m->missing_layers = json_array();
    json_object_set_new(j, "missing_layers", m->missing_layers);
  }
  if (!json_is_array(m->missing_layers))
    return FERRY_INVALID(err, "the offer's answer: missing_layers must be a list");
  /* the target asks only for layers of the image offered: anything else of
   * this store is not its to read */
  size_t i;
  json_t *v;
  json_array_foreach(m->missing_layers, i, v)
  {
    const char *dg = json_string_value(v);
    if (!digest_valid(dg) || !json_array_has_str(json_object_get(image, "layers"), dg))
      return FERRY_INVALID(err, "the offer's answer asks for layer %zu, not a layer of the image "
                                "offered", i + 1);
  }
  return 0;
}

/* ---- page server ---- */

json_t *wire_page_server_req_json(const struct wire_page_server_req *m)
{
  json_t *j = json_object();
  if (m->round >= 0)
    json_object_set_new(j, "round", json_integer(m->round));
  if (m->parent_round >= 0)
    json_object_set_new(j, "parent_round", json_integer(m->parent_round));
  if (m->zstd)
    json_object_set_new(j, "zstd", json_true());
  return j;
}

int wire_page_server_req_parse(json_t *j, struct wire_page_server_req *m, struct ferry_err *err)
{
  *m = (struct wire_page_server_req){.round = -1, .parent_round = -1};
  if (!j || json_is_null(j))
    return 0; /* the dump's, on nothing */
  long round, parent;
  int r = need_object(j, "page server request", err);
  if (r < 0 || (r = get_int(j, "round", 0, WIRE_ROUNDS_MAX - 1, -1, &round, err)) < 0 ||
      (r = get_int(j, "parent_round", 0, WIRE_ROUNDS_MAX - 1, -1, &parent, err)) < 0 ||
      (r = json_get_bool(j, "zstd", false, &m->zstd, err)) < 0)
    return r;
  if (round >= 0 && parent >= 0)
    return FERRY_INVALID(err, "page server: round or parent_round, not both");
  m->round = (int)round;
  m->parent_round = (int)parent;
  return 0;
}

json_t *wire_page_server_json(const struct wire_page_server *m)
{
  return json_pack("{s:s, s:i, s:s, s:b}", "address", m->address ? m->address : "", "port", m->port,
                   "secret", m->secret, "zstd", m->zstd);
}

int wire_page_server_parse(json_t *j, struct wire_page_server *m, struct ferry_err *err)
{
  *m = (struct wire_page_server){0};
  long port;
  int r = need_object(j, "the page server's answer", err);
  if (r < 0 || (r = json_get_str(j, "address", false, &m->address, err)) < 0 ||
      (r = json_get_str(j, "secret", false, &m->secret, err)) < 0 ||
      (r = get_int(j, "port", 1, 65535, 0, &port, err)) < 0 ||
      (r = json_get_bool(j, "zstd", false, &m->zstd, err)) < 0)
    return r;
  if (port == 0)
    return FERRY_INVALID(err, "the page server's answer has no port");
  /* an older agent's page server takes no secret */
  if (m->secret && *m->secret && !is_hex(m->secret, WIRE_SECRET_LEN))
    return FERRY_INVALID(err, "the page server's secret must be %d hex digits", WIRE_SECRET_LEN);
  if (!m->address)
    m->address = "";
  if (!m->secret)
    m->secret = "";
  m->port = (int)port;
  return 0;
}

/* ---- prepare ---- */

json_t *wire_prepare_json(const struct wire_prepare *m)
{
  return json_pack("{s:o}", "descriptors", m->descriptors ? json_incref(m->descriptors) : json_array());
}

int wire_prepare_parse(json_t *j, struct wire_prepare *m, struct ferry_err *err)
{
  *m = (struct wire_prepare){0};
  int r = need_object(j, "prepare request", err);
  if (r < 0)
    return r;
  /* runc's descriptors.json: the container's stdin, stdout and stderr as
   * its source's runc saw them ("/dev/null", "pipe:[N]") */
  m->descriptors = json_object_get(j, "descriptors");
  if (!json_is_array(m->descriptors) || json_array_size(m->descriptors) > 3)
    return FERRY_INVALID(err, "descriptors must be an array of at most 3 strings");
  size_t i;
  json_t *v;
  json_array_foreach(m->descriptors, i, v)
  {
    const char *s = json_string_value(v);
    bool ok = s && strlen(s) < 64;
    for (const char *p = s; ok && *p; p++)
      ok = (*p >= 'a' && *p <= 'z') || (*p >= '0' && *p <= '9') || strchr(":[]/_-.", *p);
    if (!ok)
      return FERRY_INVALID(err, "descriptor %zu is not a plain descriptor name", i);
  }
  return 0;
}

/* ---- restore ---- */

json_t *wire_restore_json(const struct wire_restore *m)
{
  json_t *j = json_pack("{s:o}", "neighbours", m->neighbours ? json_incref(m->neighbours) : json_array());
  if (m->lazy_memory)
    json_object_set_new(j, "lazy_memory", json_true());
  if (m->has_lazy_pages)
    json_object_set_new(j, "lazy_pages",
                        json_pack("{s:s, s:i, s:s}", "address",
                                  m->lazy_pages.address ? m->lazy_pages.address : "", "port",
                                  m->lazy_pages.port, "secret", m->lazy_pages.secret));
  return j;
}

int wire_restore_parse(json_t *j, struct wire_restore *m, struct ferry_err *err)
{
  *m = (struct wire_restore){0};
  if (!j || json_is_null(j)) {
    j = NULL;
  } else {
    int r = need_object(j, "restore request", err);
    if (r < 0 || (r = json_get_bool(j, "lazy_memory", false, &m->lazy_memory, err)) < 0)
      return r;
  }
  m->neighbours = json_object_get(j, "neighbours");
  if (m->neighbours && (!json_is_array(m->neighbours) || json_array_size(m->neighbours) > NEIGHBOURS_MAX))
    return FERRY_INVALID(err, "restore: neighbours must be a list of at most %d", NEIGHBOURS_MAX);
  size_t i;
  json_t *v;
  json_array_foreach(m->neighbours, i, v) if (!json_is_string(json_object_get(v, "ip")) ||
                                              !json_is_string(json_object_get(v, "mac")))
      return FERRY_INVALID(err, "restore: neighbour %zu needs an ip and a mac", i + 1);
  json_t *lp = json_object_get(j, "lazy_pages");
  if (lp && !json_is_null(lp)) {
    long port;
    int r = need_object(lp, "lazy_pages", err);
    if (r < 0 || (r = json_get_str(lp, "address", false, &m->lazy_pages.address, err)) < 0 ||
        (r = json_get_str(lp, "secret", true, &m->lazy_pages.secret, err)) < 0 ||
        (r = get_int(lp, "port", 1, 65535, 0, &port, err)) < 0)
      return ferry_err_wrap(err, "restore: lazy_pages");
    if (port == 0)
      return FERRY_INVALID(err, "lazy_pages.port must be a port number");
    if (!is_hex(m->lazy_pages.secret, WIRE_SECRET_LEN))
      return FERRY_INVALID(err, "lazy_pages.secret must be %d hex digits", WIRE_SECRET_LEN);
    if (!m->lazy_pages.address)
      m->lazy_pages.address = "";
    m->lazy_pages.port = (int)port;
    m->has_lazy_pages = true;
  }
  return 0;
}

/* ---- the target's state ---- */

json_t *wire_state_json(const struct wire_state *m)
{
  json_t *j = json_pack("{s:s}", "state", target_state_name(m->state));
  if (m->id)
    json_object_set_new(j, "id", json_string(m->id));
  if (m->id)
    json_object_set_new(j, "role", json_string("target"));
  if (m->container)
    json_object_set_new(j, "container", json_string(m->container));
  if (m->restore)
    json_object_set(j, "restore", m->restore);
  if (m->prepared)
    json_object_set_new(j, "prepared", json_true());
  if (m->pruned)
    json_object_set_new(j, "pruned", json_true());
  return j;
}

int wire_state_parse(json_t *j, struct wire_state *m, struct ferry_err *err)
{
  *m = (struct wire_state){.state = T_UNKNOWN};
  const char *st = NULL;
  int r = need_object(j, "the target's answer", err);
  if (r < 0 || (r = json_get_str(j, "state", true, &st, err)) < 0 ||
      (r = json_get_str(j, "id", false, &m->id, err)) < 0 ||
      (r = json_get_str(j, "container", false, &m->container, err)) < 0 ||
      (r = json_get_bool(j, "prepared", false, &m->prepared, err)) < 0 ||
      (r = json_get_bool(j, "pruned", false, &m->pruned, err)) < 0)
    return r;
  m->state = target_state_parse(st);
  if (m->state == T_UNKNOWN)
    return FERRY_INVALID(err, "the target's answer: state \"%s\" is not one of the protocol's", st);
  m->restore = json_object_get(j, "restore");
  if (m->restore && !json_is_object(m->restore))
    return FERRY_INVALID(err, "the target's answer: restore must be an object");
  return 0;
}

/* ---- abort ---- */

json_t *wire_abort_answer_json(const struct wire_abort_answer *m)
{
  return json_pack("{s:s}", "state", m->aborting ? "aborting" : "aborted");
}

int wire_abort_answer_parse(json_t *j, struct wire_abort_answer *m, struct ferry_err *err)
{
  const char *st = NULL;
  int r = need_object(j, "the abort's answer", err);
  if (r < 0 || (r = json_get_str(j, "state", true, &st, err)) < 0)
    return r;
  if (strcmp(st, "aborting") != 0 && strcmp(st, "aborted") != 0)
    return FERRY_INVALID(err, "the abort's answer: state \"%s\"", st);
  m->aborting = strcmp(st, "aborting") == 0;
  return 0;
}

json_t *wire_part_answer_json(uint64_t bytes)
{
  return json_pack("{s:s, s:I}", "status", "success", "bytes", (json_int_t)bytes);
}
