/* The TCP listener's gate: a connection reaches libmicrohttpd (and takes
 * one of its limited connections and threads) only once its request
 * headers are complete (over TLS: once its hello begins). Until then it
 * waits here, in one thread, at most GATE_HEADER_MS; at most
 * GATE_MAX_PER_ADDR wait from one address, and when GATE_MAX_PENDING wait
 * the longest waiter is dropped. So connections that never finish their
 * headers, from any number of addresses, cannot take the capacity that
 * token holders and peer agents need: a request sent at once passes in
 * one round trip. Internal to http/. */
#pragma once
#include <microhttpd.h>
#include <stdbool.h>

#include "util/err.h"

#define GATE_MAX_PENDING 1024
#define GATE_MAX_PER_ADDR 64
#define GATE_HEADER_MS 10000

struct gate;

/* Accepts on lfd (made non-blocking) and hands ready connections to mhd
 * (MHD_add_connection). */
int gate_start(int lfd, struct MHD_Daemon *mhd, bool tls, struct gate **out, struct ferry_err *err);
void gate_stop(struct gate *g);
