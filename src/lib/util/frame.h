/* The frames of an interactive stream (exec, attach): one byte for what it
 * carries, three zero bytes, the length (32 bits, big-endian), the bytes.
 * The same on the agent's API (to the client: STDOUT, STDERR, EXIT) and
 * between the agent and ferry-shim's attach socket (to the shim: STDIN,
 * RESIZE, CLOSE; from it: STDOUT, STDERR). */
#pragma once
#include <arpa/inet.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#define FRAME_STDOUT 1
#define FRAME_STDERR 2
#define FRAME_EXIT 3   /* {"exit_code": N}, the last frame */
#define FRAME_STDIN 10
#define FRAME_RESIZE 11 /* rows, cols: two 16-bit big-endian numbers */
#define FRAME_CLOSE 12  /* no more input: the container's stdin ends */
#define FRAME_HDR 8
#define FRAME_MAX (1u << 20)

static inline void frame_header(char *buf, int type, size_t n)
{
  buf[0] = (char)type;
  buf[1] = buf[2] = buf[3] = 0;
  uint32_t be = htonl((uint32_t)n);
  memcpy(buf + 4, &be, 4);
}

/* The type and length of a header; -1 when it is not one. */
static inline int frame_parse(const char *buf, size_t *n)
{
  if (buf[1] || buf[2] || buf[3])
    return -1;
  uint32_t be;
  memcpy(&be, buf + 4, 4);
  *n = ntohl(be);
  return *n > FRAME_MAX ? -1 : (unsigned char)buf[0];
}
