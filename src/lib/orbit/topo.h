/* Where a satellite is seen from the ground: TEME -> Earth-fixed (by
 * Greenwich mean sidereal time; polar motion and the equation of the
 * equinoxes are below the model's accuracy), ground stations on the WGS-84
 * ellipsoid, elevation and azimuth. Angles in degrees unless named _rad. */
#pragma once
#include <stdbool.h>
#include <stddef.h>

#include "orbit/sgp4.h"
#include "util/err.h"

struct station {
  char name[64];
  double lat_deg, lon_deg, alt_km;
  double min_elevation_deg;
  double ecef[3]; /* filled by station_prepare */
  double sinlat, coslat, sinlon, coslon;
};

void station_prepare(struct station *st);
void teme_to_ecef(const double r_teme[3], double jd, double r_ecef[3]);
/* Elevation and azimuth (from north, clockwise, [0, 360)) of an Earth-fixed
 * position seen from st; range in km. */
void look_angles(const struct station *st, const double r_ecef[3], double *el_deg, double *az_deg,
                 double *range_km);
/* Geodetic latitude, longitude (degrees) and height (km) of an Earth-fixed position. */
void ecef_to_geodetic(const double r[3], double *lat_deg, double *lon_deg, double *alt_km);

/* An instant as a Julian date kept in two parts (the date at 0h UTC and the
 * fraction of the day), as SGP4 needs: one double loses ~40 us. */
struct jtime {
  double jd, fr;
};
/* Minutes from a TLE's epoch to t. */
double jtime_tsince(const struct tle *tle, struct jtime t);
/* ISO 8601 UTC ("2026-11-21T12:00:00Z", fractional seconds and "+00:00" accepted). */
int parse_time(const char *s, struct jtime *out, struct ferry_err *err);
void format_jd(double jd, char *buf, size_t len);

/* A TLE file: optional name lines, then line 1 and line 2 of each satellite. */
struct tle_set {
  struct tle *v;
  size_t n;
};
int tle_file_load(const char *path, struct tle_set *out, struct ferry_err *err);
void tle_set_free(struct tle_set *s);

/* A stations file (JSON): [{"name", "lat", "lon", "alt_m", "min_elevation"}]. */
int stations_load(const char *path, struct station **out, size_t *n, struct ferry_err *err);
