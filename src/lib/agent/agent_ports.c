/* Published ports of the agent's containers, and the redirects a migration
 * leaves behind (see net/ports.h and docs/networking.md).
 *
 * The forwarding table is derived, never edited: agent_ports_sync rebuilds
 * it from the records (every container that lives here, running or not,
 * keeps its host ports) and from the unexpired redirects
 * (ROOT/redirects.json: for a grace period after a move, this host's
 * published ports lead to the container's new host). */
#include <stdlib.h>
#include <string.h>

#include "agent/agent_private.h"
#include "net/ports.h"
#include "util/cleanup.h"
#include "util/fs.h"
#include "util/json.h"
#include "util/log.h"

static char *redirects_path(struct agent *a)
{
  return path_join(a->root, "redirects.json");
}

/* A redirect as this agent writes them; anything else in the file (a hand
 * edit, a torn or hostile write) is dropped, and none lasts longer than the
 * longest grace period a move can ask for. */
static bool redirect_ok(json_t *r, uint64_t now)
{
  uint32_t v;
  const char *hip = json_str_or(r, "host_ip", NULL), *to = json_str_or(r, "to_ip", NULL);
  const char *proto = json_str_or(r, "protocol", "");
  json_t *hp = json_object_get(r, "host_port"), *tp = json_object_get(r, "to_port");
  json_t *until = json_object_get(r, "until_ms");
  return json_is_object(r) && hip && (!*hip || ip_parse(hip, &v) == 0) && to &&
         ip_parse(to, &v) == 0 && (strcmp(proto, "tcp") == 0 || strcmp(proto, "udp") == 0) &&
         json_is_integer(hp) && json_integer_value(hp) >= 1 && json_integer_value(hp) <= 65535 &&
         json_is_integer(tp) && json_integer_value(tp) >= 1 && json_integer_value(tp) <= 65535 &&
         json_is_integer(until) && json_integer_value(until) >= 0 &&
         (uint64_t)json_integer_value(until) <= now + 86400ull * 1000 &&
         json_is_string(json_object_get(r, "name"));
}

void agent_ports_load(struct agent *a)
{
  _cleanup_free_ char *p = redirects_path(a);
  json_t *j = NULL;
  a->redirects = json_array();
  if (!path_exists(p) || json_load(p, &j, NULL) < 0 || !json_is_array(j)) {
    if (path_exists(p))
      log_warn("agent", "%s is not a list of redirects: ignored", p);
    json_decref(j);
    return;
  }
  uint64_t now = now_wall_ms();
  size_t i, dropped = 0;
  json_t *r;
  json_array_foreach(j, i, r)
  {
    if (redirect_ok(r, now))
      json_array_append(a->redirects, r);
    else
      dropped++;
  }
  json_decref(j);
  if (dropped) {
    log_warn("agent", "%s: %zu malformed redirect(s) dropped", p, dropped);
    json_save_atomic(p, a->redirects, NULL);
  }
}

/* Does a container here (other than except_id), or a redirect, hold one of
 * these host ports? Caller holds the store lock. */
int agent_ports_taken(struct agent *a, json_t *ports, const char *except_id, const char *name,
                      struct ferry_err *err)
{
  if (json_array_size(ports) == 0)
    return 0;
  _cleanup_json_ json_t *all = ctr_load_all(&a->rt);
  _cleanup_json_ json_t *others = nat_ports_of_others(a->net.bridge);
  size_t i, k, n;
  json_t *c, *p, *q;
  json_array_foreach(ports, k, p)
  {
    int r = port_host_free(p, err);
    if (r == 0)
      r = port_other_agent(others, p, err);
    if (r < 0)
      return r;
    json_array_foreach(all, i, c)
    {
      if ((except_id && strcmp(rec_id(c), except_id) == 0) ||
          rec_state(c) == CS_MIGRATED)
        continue;
      json_array_foreach(rec_ports(c), n, q) if (port_conflict(p, q))
      {
        _cleanup_json_ json_t *one = json_pack("[O]", q);
        _cleanup_free_ char *f = ports_format(one);
        return FERRY_CONFLICT(err, "host port %lld/%s is taken: container \"%s\" publishes %s",
                              json_integer_value(json_object_get(p, "host_port")),
                              json_str_or(p, "protocol", ""), rec_name(c), f);
      }
    }
    uint64_t now = now_wall_ms();
    json_array_foreach(a->redirects, n, q)
    {
      /* a container coming back takes its own ports over from its redirect */
      if ((uint64_t)json_integer_value(json_object_get(q, "until_ms")) > now && port_conflict(p, q) &&
          !(name && strcmp(json_str_or(q, "name", ""), name) == 0))
        return FERRY_CONFLICT(err, "host port %lld/%s still leads to container \"%s\" on its new host "
                                   "(redirected for a while after its migration)",
                              json_integer_value(json_object_get(q, "host_port")),
                              json_str_or(q, "protocol", ""), json_str_or(q, "name", ""));
    }
  }
  return 0;
}

void agent_ports_localize(json_t *rec)
{
  size_t i;
  json_t *p;
  json_array_foreach(rec_ports(rec), i, p)
  {
    const char *ip = json_str_or(p, "host_ip", "");
    if (*ip && !net_ip_is_local(ip))
      json_object_set_new(p, "host_ip", json_string(""));
  }
}

int agent_ports_sync(struct agent *a, struct ferry_err *err)
{
  struct ferry_err local = {0};
  if (!err)
    err = &local;
  pthread_mutex_lock(&a->ports_lock);
  _cleanup_json_ json_t *rules = json_array();
  _cleanup_json_ json_t *all = ctr_load_all(&a->rt);
  size_t i, k;
  json_t *c, *p;
  json_array_foreach(all, i, c)
  {
    if (rec_state(c) == CS_MIGRATED)
      continue;
    json_array_foreach(rec_ports(c), k, p)
        json_array_append_new(rules, nat_rule(p, rec_ip(c),
                                              (int)json_integer_value(json_object_get(p, "container_port"))));
  }
  uint64_t now = now_wall_ms();
  bool expired = false;
  pthread_mutex_lock(&a->lock);
  _cleanup_json_ json_t *live = json_array();
  json_array_foreach(a->redirects, i, p)
  {
    if ((uint64_t)json_integer_value(json_object_get(p, "until_ms")) <= now) {
      expired = true;
      continue;
    }
    json_array_append(live, p);
    json_array_append_new(rules, nat_rule(p, json_str_or(p, "to_ip", ""),
                                          (int)json_integer_value(json_object_get(p, "to_port"))));
  }
  if (expired) {
    json_decref(a->redirects);
    a->redirects = json_incref(live);
    _cleanup_free_ char *rp = redirects_path(a);
    json_save_atomic(rp, a->redirects, NULL);
  }
  pthread_mutex_unlock(&a->lock);
  int r = nat_apply(a->net.bridge, rules, err);
  pthread_mutex_unlock(&a->ports_lock);
  if (r < 0)
    log_warn("agent", "published ports: %s", err->msg);
  return r;
}

void agent_ports_expire(struct agent *a)
{
  uint64_t now = now_wall_ms();
  bool due = false;
  size_t i;
  json_t *p;
  pthread_mutex_lock(&a->lock);
  json_array_foreach(a->redirects, i, p) if ((uint64_t)json_integer_value(json_object_get(p, "until_ms")) <= now)
      due = true;
  pthread_mutex_unlock(&a->lock);
  if (due) {
    struct ferry_err err = {0};
    agent_ports_sync(a, &err);
    log_info("agent", "a redirect of published ports ended");
  }
}

void agent_ports_redirect(struct agent *a, json_t *rec, const char *to_ip, int seconds)
{
  if (seconds <= 0 || json_array_size(rec_ports(rec)) == 0)
    return;
  uint32_t v;
  bool to_host = to_ip && *to_ip && ip_parse(to_ip, &v) == 0;
  uint64_t until = now_wall_ms() + (uint64_t)seconds * 1000;
  size_t i;
  json_t *p;
  pthread_mutex_lock(&a->lock);
  json_array_foreach(rec_ports(rec), i, p)
  {
    /* To the new host's published port; without its address, to the
     * container's own (it keeps it). */
    json_t *r = nat_rule(p, to_host ? to_ip : rec_ip(rec),
                         (int)json_integer_value(json_object_get(p, to_host ? "host_port" : "container_port")));
    json_object_set_new(r, "until_ms", json_integer((json_int_t)until));
    json_object_set_new(r, "name", json_string(rec_name(rec)));
    json_array_append_new(a->redirects, r);
  }
  _cleanup_free_ char *rp = redirects_path(a);
  json_save_atomic(rp, a->redirects, NULL);
  pthread_mutex_unlock(&a->lock);
  log_info("agent", "container %s: its published ports lead to %s for %d s",
           rec_name(rec), to_host ? to_ip : rec_ip(rec), seconds);
}

void agent_ports_unredirect(struct agent *a, const char *name)
{
  pthread_mutex_lock(&a->lock);
  size_t before = json_array_size(a->redirects);
  for (size_t i = json_array_size(a->redirects); i-- > 0;)
    if (strcmp(json_str_or(json_array_get(a->redirects, i), "name", ""), name) == 0)
      json_array_remove(a->redirects, i);
  if (json_array_size(a->redirects) != before) {
    _cleanup_free_ char *rp = redirects_path(a);
    json_save_atomic(rp, a->redirects, NULL);
  }
  pthread_mutex_unlock(&a->lock);
}
