/* SGP4/SDP4 orbit propagation from two-line element sets, written for ferry
 * from the published model: Spacetrack Report #3 as revised by Vallado,
 * Crawford, Hujsak and Kelso, "Revisiting Spacetrack Report #3" (AIAA
 * 2006-6753). WGS-72 constants, "improved" operation mode. Positions and
 * velocities are in the TEME frame, km and km/s. */
#pragma once
#include <stdbool.h>

#include "util/err.h"

struct tle {
  char name[64];        /* line 0, or "" */
  long satnum;
  double epoch_jd;      /* Julian date of the epoch (UTC) */
  double epoch_jdfrac;  /* kept apart for precision: epoch = jd + jdfrac */
  double bstar, ndot, nddot;   /* as given: 1/earth radii, rev/day^2, rev/day^3 */
  double inclo, nodeo, ecco, argpo, mo; /* degrees (ecco unitless) */
  double no_revday;
};

/* Parses lines 1 and 2 (line 0 optional, may be NULL). Checks the line
 * numbers, the satellite numbers and (when checksums) the checksums. */
int tle_parse(const char *line0, const char *line1, const char *line2, bool checksums,
              struct tle *out, struct ferry_err *err);

/* Writes lines 1 and 2 (with checksums) of a TLE for the given elements;
 * epoch as a Julian date in two parts. Used to build synthetic
 * constellations. line1/line2 need 70 bytes. */
void tle_format(long satnum, double epoch_jd, double epoch_fr, double incl_deg, double raan_deg,
                double ecc, double argp_deg, double ma_deg, double revs_per_day, char *line1,
                char *line2);

/* The propagator's state for one satellite (opaque fields). */
struct sgp4 {
  /* near earth */
  int isimp, method_deep;
  double aycof, con41, cc1, cc4, cc5, d2, d3, d4, delmo, eta, argpdot, omgcof, sinmao, t, t2cof,
      t3cof, t4cof, t5cof, x1mth2, x7thm1, mdot, nodedot, xlcof, xmcof, nodecf;
  /* deep space */
  int irez;
  double d2201, d2211, d3210, d3222, d4410, d4422, d5220, d5232, d5421, d5433, dedt, del1, del2,
      del3, didt, dmdt, dnodt, domdt, e3, ee2, peo, pgho, pho, pinco, plo, se2, se3, sgh2, sgh3,
      sgh4, sh2, sh3, si2, si3, sl2, sl3, sl4, gsto, xfact, xgh2, xgh3, xgh4, xh2, xh3, xi2, xi3,
      xl2, xl3, xl4, xlamo, zmol, zmos, atime, xli, xni;
  /* elements (radians, rad/min) */
  double bstar, ecco, argpo, inclo, mo, no_kozai, nodeo, no_unkozai, a, alta, altp;
  double jdsatepoch, jdsatepochF;
  long satnum;
};

/* Initialises the propagator from a TLE. Fails (with SGP4's error code in the
 * message) when the elements are out of the model's range. */
int sgp4_init(struct sgp4 *s, const struct tle *t, struct ferry_err *err);
/* Position (km) and velocity (km/s), TEME, tsince minutes after the epoch.
 * Returns 0, or SGP4's error code (1..6) when the model cannot go on:
 * 1 mean eccentricity out of range, 2 mean motion < 0, 3 perturbed
 * eccentricity out of range, 4 semi-latus rectum < 0, 6 decayed. */
int sgp4_propagate(struct sgp4 *s, double tsince, double r[3], double v[3]);

/* Julian date of a calendar date (UTC), and Greenwich mean sidereal time
 * (radians, IAU-82) of a Julian date (UT1 taken as UTC). */
double julian_date(int year, int mon, int day, int hr, int minute, double sec);
double gmst(double jd_ut1);
