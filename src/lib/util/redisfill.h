/* Fills a redis server with incompressible data: SET PREFIX:N to random
 * values of value_bytes each, pipelined in batches of 1000, until
 * total_bytes of values are stored. Used by the seed API's /generate_data
 * and by the benchmark's client. fd: a connected stream socket (a receive
 * timeout on it bounds every wait). */
#pragma once
#include <stddef.h>
#include <stdint.h>

#include "util/err.h"

#define REDIS_FILL_VALUE_MAX (1u << 20)
int redis_fill(int fd, const char *prefix, uint64_t total_bytes, size_t value_bytes,
               uint64_t *keys_out, struct ferry_err *err);
