/* ferry-coord: the coordinator. For now its satellite tools:
 *   ferry-coord sat ls --tle FILE [--stations FILE] --at TIME [--json] */
#include <getopt.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "orbit/topo.h"
#include "util/cleanup.h"
#include "util/fs.h"
#include "util/json.h"

static const char *sgp4_error(int code)
{
  switch (code) {
  case 1: return "mean eccentricity out of range";
  case 2: return "mean motion below zero";
  case 3: return "perturbed eccentricity out of range";
  case 4: return "semi-latus rectum below zero";
  case 6: return "decayed";
  default: return "propagation failed";
  }
}

static int fail(const struct ferry_err *e)
{
  fprintf(stderr, "Error: %s\n", e->msg);
  return 125;
}

static const char sat_ls_help[] =
    "Usage: ferry-coord sat ls --tle FILE [--stations FILE] --at TIME [--json]\n"
    "Prints each satellite's TEME position (km) and velocity (km/s) at TIME (ISO 8601\n"
    "UTC, e.g. 2026-11-21T12:00:00Z), its sub-satellite point, and, per ground station,\n"
    "its elevation and azimuth (degrees).\n\n"
    "  --tle FILE       two- or three-line element sets\n"
    "  --stations FILE  JSON: [{\"name\", \"lat\", \"lon\", \"alt_m\", \"min_elevation\"}]\n"
    "  --at TIME        the instant (default: now)\n"
    "  --json           an array of {\"name\", \"teme_km\", \"teme_km_s\", \"stations\": [...]}\n";

static int sat_ls(int argc, char **argv)
{
  static const struct option lo[] = {{"tle", required_argument, 0, 't'},
                                     {"stations", required_argument, 0, 's'},
                                     {"at", required_argument, 0, 'a'},
                                     {"json", no_argument, 0, 'j'},
                                     {"help", no_argument, 0, 'h'},
                                     {0, 0, 0, 0}};
  const char *tlef = NULL, *stf = NULL, *at = NULL;
  bool json = false;
  int c;
  optind = 1;
  while ((c = getopt_long(argc, argv, "h", lo, NULL)) != -1) {
    switch (c) {
    case 't': tlef = optarg; break;
    case 's': stf = optarg; break;
    case 'a': at = optarg; break;
    case 'j': json = true; break;
    case 'h': fputs(sat_ls_help, stdout); return 0;
    default: fputs(sat_ls_help, stderr); return 125;
    }
  }
  if (!tlef || optind != argc) {
    fputs(sat_ls_help, stderr);
    return 125;
  }
  struct ferry_err err = {0};
  struct jtime when;
  if (at) {
    if (parse_time(at, &when, &err) < 0)
      return fail(&err);
  } else {
    uint64_t ms = now_wall_ms();
    when.jd = (double)(ms / 86400000) + 2440587.5;
    when.fr = (double)(ms % 86400000) / 86400000.0;
  }
  double jd = when.jd + when.fr;
  struct tle_set set = {0};
  if (tle_file_load(tlef, &set, &err) < 0)
    return fail(&err);
  struct station *st = NULL;
  size_t nst = 0;
  if (stf && stations_load(stf, &st, &nst, &err) < 0) {
    tle_set_free(&set);
    return fail(&err);
  }
  json_t *arr = json_array();
  if (!json) {
    printf("%-24s %12s %12s %12s %10s %10s %10s %8s %8s", "SATELLITE", "X_KM", "Y_KM", "Z_KM",
           "VX_KM_S", "VY_KM_S", "VZ_KM_S", "LAT", "LON");
    for (size_t k = 0; k < nst; k++)
      printf("  %-.12s EL/AZ", st[k].name);
    printf("\n");
  }
  for (size_t i = 0; i < set.n; i++) {
    struct tle *t = &set.v[i];
    char name[64];
    snprintf(name, sizeof name, "%s", t->name[0] ? t->name : "");
    if (!name[0])
      snprintf(name, sizeof name, "%ld", t->satnum);
    struct sgp4 s;
    double r[3], v[3];
    int rc;
    if (sgp4_init(&s, t, &err) < 0)
      rc = -1;
    else
      rc = sgp4_propagate(&s, jtime_tsince(t, when), r, v);
    json_t *o = json_pack("{s:s, s:I}", "name", name, "satnum", (json_int_t)t->satnum);
    if (rc != 0) {
      const char *why = rc < 0 ? err.msg : sgp4_error(rc);
      json_object_set_new(o, "error", json_string(why));
      if (!json)
        printf("%-24s %s\n", name, why);
      json_array_append_new(arr, o);
      continue;
    }
    double ecef[3], lat, lon, alt;
    teme_to_ecef(r, jd, ecef);
    ecef_to_geodetic(ecef, &lat, &lon, &alt);
    json_object_set_new(o, "teme_km", json_pack("[f,f,f]", r[0], r[1], r[2]));
    json_object_set_new(o, "teme_km_s", json_pack("[f,f,f]", v[0], v[1], v[2]));
    json_object_set_new(o, "subpoint", json_pack("{s:f, s:f, s:f}", "lat_deg", lat, "lon_deg", lon,
                                                 "alt_km", alt));
    json_t *sts = json_array();
    if (!json)
      printf("%-24s %12.3f %12.3f %12.3f %10.5f %10.5f %10.5f %8.3f %8.3f", name, r[0], r[1], r[2],
             v[0], v[1], v[2], lat, lon);
    for (size_t k = 0; k < nst; k++) {
      double el, az, range;
      look_angles(&st[k], ecef, &el, &az, &range);
      json_array_append_new(sts, json_pack("{s:s, s:f, s:f, s:f, s:b}", "name", st[k].name,
                                           "elevation_deg", el, "azimuth_deg", az, "range_km",
                                           range, "visible", el >= st[k].min_elevation_deg));
      if (!json)
        printf("  %6.2f/%6.2f%s", el, az, el >= st[k].min_elevation_deg ? "*" : " ");
    }
    if (!json)
      printf("\n");
    json_object_set_new(o, "stations", sts);
    json_array_append_new(arr, o);
  }
  if (json) {
    char *s = json_dumps(arr, JSON_INDENT(2) | JSON_REAL_PRECISION(12));
    puts(s);
    free(s);
  } else if (nst > 0) {
    printf("(* = above the station's minimum elevation)\n");
  }
  json_decref(arr);
  free(st);
  tle_set_free(&set);
  return 0;
}

static void usage(FILE *f)
{
  fprintf(f, "Usage: ferry-coord COMMAND\n\n"
             "  sat ls --tle FILE [--stations FILE] --at TIME [--json]\n"
             "      satellite positions and their elevation/azimuth from ground stations\n");
}

int main(int argc, char **argv)
{
  if (argc < 2 || strcmp(argv[1], "-h") == 0 || strcmp(argv[1], "--help") == 0) {
    usage(argc < 2 ? stderr : stdout);
    return argc < 2 ? 125 : 0;
  }
  if (strcmp(argv[1], "sat") == 0 && argc >= 3 && strcmp(argv[2], "ls") == 0)
    return sat_ls(argc - 2, argv + 2);
  fprintf(stderr, "Error: unknown command \"%s\" (see ferry-coord --help)\n", argv[1]);
  return 125;
}
