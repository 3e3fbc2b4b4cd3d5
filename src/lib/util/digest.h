/* SHA-256 digests in OCI form ("sha256:<64 hex>"). */
#pragma once
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "util/err.h"

#define DIGEST_HEX_LEN 64
#define DIGEST_STR_LEN (7 + DIGEST_HEX_LEN) /* "sha256:" + hex */

struct sha256_ctx;
struct sha256_ctx *sha256_new(void);
void sha256_update(struct sha256_ctx *c, const void *data, size_t len);
/* Writes "sha256:<hex>" into out (DIGEST_STR_LEN + 1 bytes) and frees c. */
void sha256_finish(struct sha256_ctx *c, char *out);

/* Digest of a whole file; out gets "sha256:<hex>". */
int sha256_file(const char *path, char *out, uint64_t *size, struct ferry_err *err);
/* Is s a well-formed "sha256:<64 lowercase hex>"? */
bool digest_valid(const char *s);
/* The hex part of a valid digest. */
const char *digest_hex(const char *digest);
