/* The Prometheus text exposition format: https://prometheus.io/docs/instrumenting/exposition_formats/ */
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "util/prom.h"

static void add(struct prom *p, const char *fmt, ...)
{
  for (int tries = 0; tries < 2; tries++) {
    va_list ap;
    va_start(ap, fmt);
    size_t room = p->cap - p->len;
    int n = vsnprintf(p->buf ? p->buf + p->len : NULL, room, fmt, ap);
    va_end(ap);
    if (n < 0)
      return;
    if ((size_t)n < room) {
      p->len += (size_t)n;
      return;
    }
    size_t cap = p->cap ? p->cap : 4096;
    while (cap - p->len <= (size_t)n)
      cap *= 2;
    char *nb = realloc(p->buf, cap);
    if (!nb)
      abort();
    p->buf = nb;
    p->cap = cap;
  }
}

void prom_family(struct prom *p, const char *name, const char *type, const char *help)
{
  add(p, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

static void value(char *out, size_t n, double v)
{
  if (isinf(v))
    snprintf(out, n, v > 0 ? "+Inf" : "-Inf");
  else if (v == floor(v) && fabs(v) < 1e15)
    snprintf(out, n, "%.0f", v);
  else
    snprintf(out, n, "%.6g", v);
}

void prom_sample(struct prom *p, const char *name, const char *labels, double v)
{
  char vs[64];
  value(vs, sizeof vs, v);
  if (labels && *labels)
    add(p, "%s{%s} %s\n", name, labels, vs);
  else
    add(p, "%s %s\n", name, vs);
}

char *prom_label(const char *v)
{
  size_t n = strlen(v);
  char *o = malloc(2 * n + 1), *w = o;
  if (!o)
    abort();
  for (const char *r = v; *r; r++) {
    if (*r == '\\' || *r == '"') {
      *w++ = '\\';
      *w++ = *r;
    } else if (*r == '\n') {
      *w++ = '\\';
      *w++ = 'n';
    } else {
      *w++ = *r;
    }
  }
  *w = '\0';
  return o;
}

void prom_hist_init(struct prom_hist *h, const double *bounds, size_t n)
{
  memset(h, 0, sizeof *h);
  h->n = n < PROM_HIST_MAX ? n : PROM_HIST_MAX;
  memcpy(h->bounds, bounds, h->n * sizeof *bounds);
}

void prom_hist_observe(struct prom_hist *h, double v)
{
  size_t i = 0;
  while (i < h->n && v > h->bounds[i])
    i++;
  h->counts[i]++;
  h->sum += v;
  h->count++;
}

void prom_hist_write(struct prom *p, const char *name, const char *labels,
                     const struct prom_hist *h)
{
  uint64_t cum = 0;
  const char *sep = labels && *labels ? "," : "";
  for (size_t i = 0; i <= h->n; i++) {
    cum += h->counts[i];
    char le[64];
    value(le, sizeof le, i < h->n ? h->bounds[i] : INFINITY);
    add(p, "%s_bucket{%s%sle=\"%s\"} %llu\n", name, labels ? labels : "", sep, le,
        (unsigned long long)cum);
  }
  char sum[64];
  value(sum, sizeof sum, h->sum);
  if (labels && *labels) {
    add(p, "%s_sum{%s} %s\n%s_count{%s} %llu\n", name, labels, sum, name, labels,
        (unsigned long long)h->count);
  } else {
    add(p, "%s_sum %s\n%s_count %llu\n", name, sum, name, (unsigned long long)h->count);
  }
}
