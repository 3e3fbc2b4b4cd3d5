/* Published ports, podman's way: "[IP:]HOSTPORT:CTRPORT[/tcp|udp]" makes
 * HOSTPORT on the host's addresses (or on IP only) reach CTRPORT of the
 * container. Only traffic addressed to one of the host's own addresses is
 * ever forwarded (fib daddr type local), and a port a program of the host
 * listens on (the agent's API among them) cannot be published. Implemented with nftables in a table of the agent's own
 * (ip ferry_<bridge>): the mappings are elements of sets and maps (keys
 * protocol . port, or address . protocol . port), looked up by one DNAT
 * rule each in prerouting (packets from elsewhere) and in output (the
 * host's own connections, except through 127.0.0.0/8), and a masquerade of
 * those connections in postrouting, so that a client on the
 * container's own segment gets its answers through the host. The whole table
 * is rewritten in one nftables transaction from the agent's records each
 * time a mapping changes: it can never hold a rule of a container that is
 * gone.
 *
 * A mapping is a JSON object {"host_ip": "" (all) or "A.B.C.D",
 * "host_port": 1..65535, "container_port": 1..65535, "protocol": "tcp"|"udp"}. */
#pragma once
#include <jansson.h>
#include <stdbool.h>

#include "util/err.h"

/* "[IP:]HOSTPORT:CTRPORT[/tcp|udp]" -> a mapping. */
int port_spec_parse(const char *spec, json_t **out, struct ferry_err *err);
/* An array of mappings from outside (an API request's strings or objects, a
 * peer's record): each checked, rebuilt, no two alike; at most 256. */
int ports_check(json_t *in, json_t **out, struct ferry_err *err);
/* Do two mappings want the same host port (same protocol, overlapping address)? */
bool port_conflict(json_t *a, json_t *b);
/* "0.0.0.0:6379->6379/tcp, ..." (malloc'd; "" for none). */
char *ports_format(json_t *ports);

/* Is the mapping's host port free on this host (no program of the host
 * listens on it, the agent's own API included), and its host_ip an address
 * of this host? Tried by binding it, in the caller's network namespace. */
int port_host_free(json_t *mapping, struct ferry_err *err);
/* The host ports other agents of this network namespace forward (their
 * ferry_* tables, not bridge's): {"tcp/6379": "TABLE", ...}. */
json_t *nat_ports_of_others(const char *bridge);
/* Is the mapping's host port among them? 409 then: the first table's rule
 * would win and the second agent's container be unreachable. */
int port_other_agent(json_t *others, json_t *mapping, struct ferry_err *err);

/* One forwarding rule: packets to host_ip (or any local address when "")
 * and host_port are sent to to_ip:to_port. */
json_t *nat_rule(json_t *mapping, const char *to_ip, int to_port);
/* Replaces the agent's table with exactly these rules (an array of
 * nat_rule objects); an empty array removes the table. Enables IPv4
 * forwarding in this network namespace when there is a rule. */
int nat_apply(const char *bridge, json_t *rules, struct ferry_err *err);
/* Runs an nftables script in one transaction (all of it or nothing); the
 * error names table. */
int nft_script_run(const char *table, const char *script, struct ferry_err *err);
/* Turns on IPv4 forwarding in this network namespace. */
int ipv4_forwarding_on(struct ferry_err *err);
