/* Metrics in the Prometheus text exposition format (version 0.0.4): a
 * growing text buffer, samples, and histograms with fixed buckets. */
#pragma once
#include <stddef.h>
#include <stdint.h>

struct prom {
  char *buf;
  size_t len, cap;
};

/* "# HELP name help" and "# TYPE name type" (counter, gauge, histogram). */
void prom_family(struct prom *p, const char *name, const char *type, const char *help);
/* "name{labels} value"; labels: NULL or 'key="value",...' (values escaped
 * by the caller with prom_label when they come from outside). */
void prom_sample(struct prom *p, const char *name, const char *labels, double v);

/* A label value escaped for the format (backslash, quote, newline). */
char *prom_label(const char *v);

#define PROM_HIST_MAX 16
struct prom_hist {
  size_t n;                          /* bounds */
  double bounds[PROM_HIST_MAX];      /* ascending upper bounds; +Inf is implied */
  uint64_t counts[PROM_HIST_MAX + 1]; /* per bucket, not cumulative; last: above all */
  double sum;
  uint64_t count;
};

void prom_hist_init(struct prom_hist *h, const double *bounds, size_t n);
void prom_hist_observe(struct prom_hist *h, double v);
/* name_bucket{labels,le=".."} (cumulative), name_sum, name_count. */
void prom_hist_write(struct prom *p, const char *name, const char *labels,
                     const struct prom_hist *h);
