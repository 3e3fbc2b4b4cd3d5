/* A byte relay between two connected stream sockets, on its own thread. */
#pragma once
#include <stdint.h>

struct relay;

/* Starts relaying between a and b (the relay owns both from now on). */
int relay_start(int a, int b, struct relay **out);
/* Waits up to timeout_ms for both sides to finish sending, then stops the
 * relay (shutting both sockets down if it still runs), closes both and
 * frees it. *bytes_ab (optional): bytes moved from a to b. 0 when both
 * ended cleanly, -ETIMEDOUT or -errno otherwise. NULL r: nothing. */
int relay_finish(struct relay *r, int timeout_ms, uint64_t *bytes_ab);
