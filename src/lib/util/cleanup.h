/* Scope-bound cleanup, in the style of systemd and LXC: a local declared with
 * one of these attributes is released when it goes out of scope. Hand the
 * value on with TAKE_PTR()/TAKE_FD(). */
#pragma once
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

static inline void ferry_freep(void *p) { free(*(void **)p); }
static inline void ferry_closep(int *fd)
{
  if (*fd >= 0)
    close(*fd);
}
static inline void ferry_fclosep(FILE **f)
{
  if (*f)
    fclose(*f);
}

#define _cleanup_free_ __attribute__((cleanup(ferry_freep)))
#define _cleanup_close_ __attribute__((cleanup(ferry_closep)))
#define _cleanup_fclose_ __attribute__((cleanup(ferry_fclosep)))

#define TAKE_PTR(p)                                                                                \
  __extension__({                                                                                              \
    __typeof__(p) _tp = (p);                                                                       \
    (p) = NULL;                                                                                    \
    _tp;                                                                                           \
  })
#define TAKE_FD(fd)                                                                                \
  __extension__({                                                                                              \
    int _tf = (fd);                                                                                \
    (fd) = -1;                                                                                     \
    _tf;                                                                                           \
  })

#define ARRAY_SIZE(a) (sizeof(a) / sizeof((a)[0]))
