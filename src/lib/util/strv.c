#include "util/strv.h"

#include <stdlib.h>
#include <string.h>

#include "util/fs.h"

char **strv_new(void)
{
  char **v = calloc(1, sizeof(char *));
  if (!v)
    abort();
  return v;
}

size_t strv_len(char *const *v)
{
  size_t n = 0;
  while (v && v[n])
    n++;
  return n;
}

void strv_push_take(char ***v, char *s)
{
  size_t n = strv_len(*v);
  char **nv = realloc(*v, (n + 2) * sizeof(char *));
  if (!nv)
    abort();
  nv[n] = s;
  nv[n + 1] = NULL;
  *v = nv;
}

void strv_push(char ***v, const char *s) { strv_push_take(v, xstrdup(s)); }

char **strv_copy(char *const *v)
{
  char **r = strv_new();
  for (size_t i = 0; v && v[i]; i++)
    strv_push(&r, v[i]);
  return r;
}

void strv_free(char **v)
{
  for (size_t i = 0; v && v[i]; i++)
    free(v[i]);
  free(v);
}
