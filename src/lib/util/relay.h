/* A byte relay between two connected stream sockets, on its own thread. */
#pragma once
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct relay;

/* Starts relaying between a and b (the relay owns both from now on). */
int relay_start(int a, int b, struct relay **out);
/* The same, what a sends compressed with zstd at level (> 0; 0: plain),
 * flushed at every read so that a request/reply protocol still works;
 * what b sends back goes plain. */
int relay_start_z(int a, int b, int level, struct relay **out);
/* relay_finish, and *wire_ab: the bytes that went to b (compressed). */
int relay_finish_z(struct relay *r, int timeout_ms, uint64_t *bytes_ab, uint64_t *wire_ab);
/* The other end of relay_start_z, for a program that takes a stream at fd
 * net: runs argv with a plain stream at net instead (a socket pair), into
 * which it decompresses what arrives on net, and sends what the program
 * writes back on net as it is. Returns the program's exit status (126 if
 * the stream was broken: the program is killed then, 127 if it could not
 * start). For a process of its own (it forks). */
int relay_unzstd_exec(int net, char *const *argv);
/* Waits up to timeout_ms for both sides to finish sending, then stops the
 * relay (shutting both sockets down if it still runs), closes both and
 * frees it. *bytes_ab (optional): bytes moved from a to b. 0 when both
 * ended cleanly, -ETIMEDOUT or -errno otherwise. NULL r: nothing. */
int relay_finish(struct relay *r, int timeout_ms, uint64_t *bytes_ab);

/* A TCP connection (TCP_NODELAY) to an IPv4 address within timeout_s;
 * -errno on failure. */
int relay_tcp_connect(const char *host, int port, int timeout_s);
/* Reads len bytes (at most 64) from c within 5 s: true when they are
 * exactly secret (compared in constant time). A gate's first check of a
 * connection that must carry a secret handed out over the agents' API. */
bool relay_secret_ok(int c, const char *secret, size_t len);
/* TCP keepalive on a long-lived connection of a move (30 s idle, then 3
 * probes 10 s apart): a peer that vanished without a FIN ends it within
 * about a minute. System calls only (safe in a forked child). */
void relay_keepalive(int fd);
