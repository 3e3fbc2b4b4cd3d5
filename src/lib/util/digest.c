#include "util/digest.h"

#include <fcntl.h>
#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "util/cleanup.h"

struct sha256_ctx {
  EVP_MD_CTX *md;
};

struct sha256_ctx *sha256_new(void)
{
  struct sha256_ctx *c = calloc(1, sizeof *c);
  if (!c)
    abort();
  c->md = EVP_MD_CTX_new();
  if (!c->md || EVP_DigestInit_ex(c->md, EVP_sha256(), NULL) != 1)
    abort();
  return c;
}

void sha256_update(struct sha256_ctx *c, const void *data, size_t len)
{
  EVP_DigestUpdate(c->md, data, len);
}

void sha256_finish(struct sha256_ctx *c, char *out)
{
  unsigned char md[32];
  unsigned int n = 0;
  EVP_DigestFinal_ex(c->md, md, &n);
  EVP_MD_CTX_free(c->md);
  free(c);
  memcpy(out, "sha256:", 7);
  for (unsigned i = 0; i < 32; i++)
    snprintf(out + 7 + 2 * i, 3, "%02x", md[i]);
}

int sha256_file(const char *path, char *out, uint64_t *size, struct ferry_err *err)
{
  _cleanup_close_ int fd = open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0)
    return ferry_err_sys(err, -errno, "open %s", path);
  struct sha256_ctx *c = sha256_new();
  uint64_t total = 0;
  char buf[65536];
  for (;;) {
    ssize_t r = read(fd, buf, sizeof buf);
    if (r < 0) {
      if (errno == EINTR)
        continue;
      int e = -errno;
      char dummy[DIGEST_STR_LEN + 1];
      sha256_finish(c, dummy);
      return ferry_err_sys(err, e, "read %s", path);
    }
    if (r == 0)
      break;
    sha256_update(c, buf, (size_t)r);
    total += (uint64_t)r;
  }
  sha256_finish(c, out);
  if (size)
    *size = total;
  return 0;
}

bool digest_valid(const char *s)
{
  if (!s || strncmp(s, "sha256:", 7) != 0 || strlen(s) != DIGEST_STR_LEN)
    return false;
  for (const char *p = s + 7; *p; p++)
    if (!((*p >= '0' && *p <= '9') || (*p >= 'a' && *p <= 'f')))
      return false;
  return true;
}

const char *digest_hex(const char *digest) { return digest + 7; }
