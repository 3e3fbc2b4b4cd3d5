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

int visibility_windows(const struct tle_set *set, const struct station *st, size_t nst,
                       struct jtime t0, double span_min, double step_s, int threads,
                       struct windows *out, struct ferry_err *err);
void windows_free(struct windows *w);
