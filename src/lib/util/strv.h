/* NULL-terminated vectors of malloc'd strings. */
#pragma once
#include <stddef.h>

char **strv_new(void);
void strv_push(char ***v, const char *s);
void strv_push_take(char ***v, char *s);
size_t strv_len(char *const *v);
char **strv_copy(char *const *v);
void strv_free(char **v);
static inline void strv_freep(char ***v) { strv_free(*v); }
#define _cleanup_strv_ __attribute__((cleanup(strv_freep)))
