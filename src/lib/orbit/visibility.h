/* Visibility windows: when each satellite is above each ground station's
 * minimum elevation, over a time span. Satellites are sampled every step
 * seconds (a pass shorter than that may be missed) and each crossing of the
 * minimum elevation is refined by bisection to 0.1 s. Work is split over
 * threads by satellite. */
#pragma once
#include <stdbool.h>
#include <stddef.h>

#include "orbit/topo.h"

struct window {
  size_t sat, station;      /* indexes into the TLE set and the stations */
  double aos, los;          /* minutes from the span's start */
  bool open_start, open_end;/* in view at the start / still in view at the end */
  double max_el_deg, t_max_el;
};

struct windows {
  struct window *v;
  size_t n;
};

/* The windows, found by culling (visibility.c): SGP4 only every 2 minutes
 * (a Hermite interpolant in between) and a station looked at only where the
 * satellite can be in its view; the same step grid and bisection as the
 * brute force, whose windows it gives to well under a second (test-sgp4
 * checks 1 s). Satellites are shared out among threads in small batches. */
int visibility_windows(const struct tle_set *set, const struct station *st, size_t nst,
                       struct jtime t0, double span_min, double step_s, int threads,
                       struct windows *out, struct ferry_err *err);
/* Every satellite with every station at every step (the reference). */
int visibility_windows_brute(const struct tle_set *set, const struct station *st, size_t nst,
                             struct jtime t0, double span_min, double step_s, int threads,
                             struct windows *out, struct ferry_err *err);
void windows_free(struct windows *w);
