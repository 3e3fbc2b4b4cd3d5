/* ferry-coord: the coordinator. For now its satellite tools:
 *   ferry-coord sat ls --tle FILE [--stations FILE] --at TIME [--json]
 *   ferry-coord sat passes --tle FILE --stations FILE --from TIME --to TIME [--json]
 *   ferry-coord plan --tle FILE --stations FILE --services FILE --from TIME --to TIME [--json] */
#include <getopt.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <errno.h>

#include <signal.h>

#include "coord/coord.h"
#include "coord/plan.h"
#include "coord/policy.h"
#include "util/log.h"
#include "util/strv.h"
#include "orbit/topo.h"
#include "orbit/visibility.h"
#include "util/cleanup.h"
#include "util/config.h"
#include "util/fs.h"
#include "util/json.h"

#define FERRY_COORD_CONF "/etc/ferry/ferry-coord.conf"

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

/* Options shared by passes and plan. */
struct span_opts {
  const char *tle, *stations, *services, *from, *to;
  double step_s;
  int threads;
  bool json;
  bool brute; /* --brute-force: every satellite with every station at every step */
};

static int parse_span(int argc, char **argv, const char *help, struct span_opts *o)
{
  static const struct option lo[] = {{"tle", required_argument, 0, 't'},
                                     {"stations", required_argument, 0, 's'},
                                     {"services", required_argument, 0, 'S'},
                                     {"from", required_argument, 0, 'f'},
                                     {"to", required_argument, 0, 'T'},
                                     {"step", required_argument, 0, 'p'},
                                     {"threads", required_argument, 0, 'n'},
                                     {"json", no_argument, 0, 'j'},
                                     {"brute-force", no_argument, 0, 'B'},
                                     {"help", no_argument, 0, 'h'},
                                     {0, 0, 0, 0}};
  memset(o, 0, sizeof *o);
  o->step_s = 30;
  o->threads = 2;
  int c;
  optind = 1;
  while ((c = getopt_long(argc, argv, "h", lo, NULL)) != -1) {
    switch (c) {
    case 't': o->tle = optarg; break;
    case 's': o->stations = optarg; break;
    case 'S': o->services = optarg; break;
    case 'f': o->from = optarg; break;
    case 'T': o->to = optarg; break;
    case 'p': o->step_s = atof(optarg); break;
    case 'n': o->threads = atoi(optarg); break;
    case 'j': o->json = true; break;
    case 'B': o->brute = true; break;
    case 'h': fputs(help, stdout); return 1;
    default: fputs(help, stderr); return -1;
    }
  }
  if (!o->tle || !o->stations || !o->from || !o->to || optind != argc || o->step_s <= 0 ||
      o->threads < 1 || o->threads > 64) {
    fputs(help, stderr);
    return -1;
  }
  return 0;
}

struct span_data {
  struct tle_set set;
  struct station *st;
  size_t nst;
  struct jtime t0;
  double span_min;
  struct windows w;
};

static void span_free(struct span_data *d)
{
  tle_set_free(&d->set);
  free(d->st);
  windows_free(&d->w);
}

static int load_span(const struct span_opts *o, struct span_data *d, struct ferry_err *err)
{
  memset(d, 0, sizeof *d);
  struct jtime t1;
  int r;
  if ((r = parse_time(o->from, &d->t0, err)) < 0 || (r = parse_time(o->to, &t1, err)) < 0)
    return r;
  d->span_min = ((t1.jd - d->t0.jd) + (t1.fr - d->t0.fr)) * 1440.0;
  if (d->span_min <= 0)
    return FERRY_INVALID(err, "--to must be later than --from");
  if (d->span_min > 31 * 1440.0)
    return FERRY_INVALID(err, "the span is longer than 31 days");
  if ((r = tle_file_load(o->tle, &d->set, err)) < 0 ||
      (r = stations_load(o->stations, &d->st, &d->nst, err)) < 0)
    return r;
  return (o->brute ? visibility_windows_brute : visibility_windows)(
      &d->set, d->st, d->nst, d->t0, d->span_min, o->step_s, o->threads, &d->w, err);
}

static const char *sat_name(const struct tle *t, char *buf, size_t len)
{
  if (t->name[0])
    snprintf(buf, len, "%s", t->name);
  else
    snprintf(buf, len, "%ld", t->satnum);
  return buf;
}

static void fmt_min(struct jtime t0, double m, char *buf, size_t len)
{
  format_jd(t0.jd + t0.fr + m / 1440.0, buf, len);
}

static const char passes_help[] =
    "Usage: ferry-coord sat passes --tle FILE --stations FILE --from TIME --to TIME\n"
    "                              [--step S] [--threads N] [--brute-force] [--json]\n"
    "Lists every window in which a satellite is above a station's minimum elevation.\n"
    "--brute-force: propagate every satellite at every step for every station (the\n"
    "reference; by default SGP4 runs every 2 minutes and only near passes is looked at).\n";

static int sat_passes(int argc, char **argv)
{
  struct span_opts o;
  int pr = parse_span(argc, argv, passes_help, &o);
  if (pr != 0)
    return pr > 0 ? 0 : 125;
  struct span_data d;
  struct ferry_err err = {0};
  if (load_span(&o, &d, &err) < 0) {
    span_free(&d);
    return fail(&err);
  }
  json_t *arr = json_array();
  if (!o.json)
    printf("%-16s %-24s %-21s %-21s %8s\n", "STATION", "SATELLITE", "AOS", "LOS", "MAX_EL");
  for (size_t i = 0; i < d.w.n; i++) {
    const struct window *w = &d.w.v[i];
    char a[32], l[32], nm[64];
    fmt_min(d.t0, w->aos, a, sizeof a);
    fmt_min(d.t0, w->los, l, sizeof l);
    sat_name(&d.set.v[w->sat], nm, sizeof nm);
    if (o.json)
      json_array_append_new(
          arr, json_pack("{s:s, s:s, s:I, s:s, s:s, s:f, s:f, s:f, s:b, s:b}", "station",
                         d.st[w->station].name, "satellite", nm, "satnum",
                         (json_int_t)d.set.v[w->sat].satnum, "aos", a, "los", l, "aos_min", w->aos,
                         "los_min", w->los, "max_elevation_deg", w->max_el_deg, "in_view_at_start",
                         w->open_start, "in_view_at_end", w->open_end));
    else
      printf("%-16s %-24s %-21s %-21s %8.2f\n", d.st[w->station].name, nm, a, l, w->max_el_deg);
  }
  if (o.json) {
    char *s = json_dumps(arr, JSON_INDENT(2) | JSON_REAL_PRECISION(10));
    puts(s);
    free(s);
  }
  json_decref(arr);
  span_free(&d);
  return 0;
}

static const char plan_help[] =
    "Usage: ferry-coord plan --tle FILE --stations FILE --services FILE --from TIME --to TIME\n"
    "                        [--step S] [--threads N] [--brute-force] [--json]\n"
    "Prints the handover schedule (a dry run): each service stays on a satellite its\n"
    "ground station sees and moves, lead_s before that satellite sets, to the one in\n"
    "view that stays in view longest.\n"
    "  --services FILE  JSON: [{\"name\", \"station\", \"lead_s\"}]\n"
    "  --step S         sampling step in seconds (default 30); crossings are refined to 0.1 s\n"
    "  --brute-force    every satellite at every step for every station (the reference)\n";

static int plan_cmd(int argc, char **argv)
{
  struct span_opts o;
  int pr = parse_span(argc, argv, plan_help, &o);
  if (pr != 0)
    return pr > 0 ? 0 : 125;
  if (!o.services) {
    fputs(plan_help, stderr);
    return 125;
  }
  struct span_data d;
  struct ferry_err err = {0};
  struct service *svc = NULL;
  size_t nsvc = 0;
  struct plan p = {0};
  int rc = 0;
  if (load_span(&o, &d, &err) < 0 || services_load(o.services, d.st, d.nst, &svc, &nsvc, &err) < 0 ||
      plan_handovers(&d.w, svc, nsvc, &p, &err) < 0) {
    rc = fail(&err);
    goto out;
  }
  json_t *arr = json_array();
  if (!o.json)
    printf("%-21s %-16s %-20s %-20s %s\n", "TIME", "SERVICE", "FROM", "TO", "NOTE");
  for (size_t i = 0; i < p.n; i++) {
    const struct handover *h = &p.v[i];
    char at[32], until[32], from[64] = "-", to[64], note[160];
    fmt_min(d.t0, h->at, at, sizeof at);
    fmt_min(d.t0, h->to_los, until, sizeof until);
    if (h->from_sat >= 0)
      sat_name(&d.set.v[h->from_sat], from, sizeof from);
    sat_name(&d.set.v[h->to_sat], to, sizeof to);
    if (h->to_open_end)
      snprintf(note, sizeof note, "%s stays in view past the end", to);
    else
      snprintf(note, sizeof note, "%s in view until %s", to, until);
    if (h->gap_min > 0) {
      size_t l = strlen(note);
      snprintf(note + l, sizeof note - l, "; no satellite in view for %.0f s before", h->gap_min * 60);
    }
    if (o.json) {
      json_t *e = json_pack("{s:s, s:s, s:f, s:s, s:s, s:b, s:f}", "service", svc[h->service].name,
                            "at", at, "at_min", h->at, "to", to, "to_until", until,
                            "to_until_end", h->to_open_end, "gap_s", h->gap_min * 60);
      json_object_set_new(e, "from", h->from_sat >= 0 ? json_string(from) : json_null());
      json_array_append_new(arr, e);
    } else {
      printf("%-21s %-16s %-20s %-20s %s\n", at, svc[h->service].name, from, to, note);
    }
  }
  if (o.json) {
    char *s = json_dumps(arr, JSON_INDENT(2) | JSON_REAL_PRECISION(10));
    puts(s);
    free(s);
  }
  json_decref(arr);
out:
  plan_free(&p);
  free(svc);
  span_free(&d);
  return rc;
}

static const char shell_help[] =
    "Usage: ferry-coord sat shell --planes P --per-plane S [--altitude KM] [--inclination DEG]\n"
    "                             [--phasing F] [--epoch TIME] [--first-satnum N]\n"
    "Writes the TLEs of a Walker-delta shell (circular orbits) to standard output:\n"
    "synthetic constellations for tests, plans and benchmarks.\n";

static int sat_shell(int argc, char **argv)
{
  static const struct option lo[] = {{"planes", required_argument, 0, 'p'},
                                     {"per-plane", required_argument, 0, 's'},
                                     {"altitude", required_argument, 0, 'a'},
                                     {"inclination", required_argument, 0, 'i'},
                                     {"phasing", required_argument, 0, 'f'},
                                     {"epoch", required_argument, 0, 'e'},
                                     {"first-satnum", required_argument, 0, 'n'},
                                     {"help", no_argument, 0, 'h'},
                                     {0, 0, 0, 0}};
  int planes = 0, per = 0, phasing = 1, c;
  long first = 90000;
  double alt = 550, incl = 53;
  const char *epoch = "2026-11-21T00:00:00Z";
  optind = 1;
  while ((c = getopt_long(argc, argv, "h", lo, NULL)) != -1) {
    switch (c) {
    case 'p': planes = atoi(optarg); break;
    case 's': per = atoi(optarg); break;
    case 'a': alt = atof(optarg); break;
    case 'i': incl = atof(optarg); break;
    case 'f': phasing = atoi(optarg); break;
    case 'e': epoch = optarg; break;
    case 'n': first = atol(optarg); break;
    case 'h': fputs(shell_help, stdout); return 0;
    default: fputs(shell_help, stderr); return 125;
    }
  }
  if (planes < 1 || per < 1 || (long)planes * per > 99999 || alt < 150 || alt > 40000 ||
      incl < 0 || incl > 180 || optind != argc) {
    fputs(shell_help, stderr);
    return 125;
  }
  struct ferry_err err = {0};
  struct jtime t0;
  if (parse_time(epoch, &t0, &err) < 0)
    return fail(&err);
  const double mu = 398600.8, re = 6378.135;
  double a = re + alt;
  double revs = sqrt(mu / (a * a * a)) * 86400.0 / (2.0 * 3.14159265358979323846);
  int total = planes * per;
  for (int p = 0; p < planes; p++) {
    for (int k = 0; k < per; k++) {
      double raan = 360.0 * p / planes;
      double ma = 360.0 * k / per + 360.0 * phasing * p / total;
      char l1[72], l2[72];
      long num = first + p * per + k;
      tle_format(num, t0.jd, t0.fr, incl, raan, 0.0001, 0.0, fmod(ma, 360.0), revs, l1, l2);
      printf("SAT-%03d-%03d\n%s\n%s\n", p, k, l1, l2);
    }
  }
  return 0;
}

static const char serve_help[] =
    "Usage: ferry-coord serve (--db FILE | --etcd URL[,URL...]) [--listen ADDR:PORT] [--socket PATH]\n"
    "                         [--token-file F] [--tls-cert F --tls-key F] [--tls-ca F]\n"
    "                         [--heartbeat-timeout S] [--advertise URL] [--lease-ttl S]\n"
    "Runs the coordinator: node registry, migrations, REST API (docs/coordinator.md).\n"
    "  --db FILE            SQLite database (created if missing): one coordinator\n"
    "  --etcd URL[,URL...]  etcd's endpoints (http://HOST:PORT): any number of coordinators\n"
    "                       share it, one of them (elected) leads and runs the migrations\n"
    "  --advertise URL      etcd: where the others reach this one's API (default tcp://\n"
    "                       and the --listen address)\n"
    "  --lease-ttl S        etcd: a leader unheard of for S seconds is replaced (default 10)\n"
    "  --listen ADDR:PORT   TCP API (the token is required there, as on the agents)\n"
    "  --socket PATH        unix socket API (default /run/ferry/coord.sock)\n"
    "  --token-file F       bearer token required from callers and sent to the agents\n"
    "                       (at least 16 characters; --listen needs it unless --insecure-no-token)\n"
    "  --heartbeat-timeout S  a node silent for longer is down (default 15)\n"
    "  --config FILE        options, one per line as NAME = VALUE (default\n"
    "                       " FERRY_COORD_CONF " if it exists); flags override it\n"
    "Satellite-visibility policy (all three files, see docs/coordinator.md):\n"
    "  --tle FILE --stations FILE --services FILE\n"
    "  --time-scale X       simulated time runs X times faster than real time (default 1)\n"
    "  --sim-start TIME     the simulated clock's start (default: now)\n"
    "  --sim-anchor TIME    the real time at which the simulated clock reads --sim-start\n"
    "                       (default: the coordinator's start; give every coordinator the same)\n"
    "  --celestial URL --services FILE   instead: ask Celestial's GET /gst/{station}\n";

static int serve(int argc, char **argv)
{
  static const struct option lo[] = {{"db", required_argument, 0, 'd'},
                                     {"listen", required_argument, 0, 'l'},
                                     {"insecure-no-token", no_argument, 0, 'I'},
                                     {"socket", required_argument, 0, 's'},
                                     {"token-file", required_argument, 0, 't'},
                                     {"tls-cert", required_argument, 0, 'C'},
                                     {"tls-key", required_argument, 0, 'K'},
                                     {"tls-ca", required_argument, 0, 'A'},
                                     {"heartbeat-timeout", required_argument, 0, 'H'},
                                     {"etcd", required_argument, 0, 'e'},
                                     {"advertise", required_argument, 0, 'a'},
                                     {"lease-ttl", required_argument, 0, 'T'},
                                     {"tle", required_argument, 0, 'L'},
                                     {"stations", required_argument, 0, 'G'},
                                     {"services", required_argument, 0, 'S'},
                                     {"time-scale", required_argument, 0, 'X'},
                                     {"sim-start", required_argument, 0, 'Z'},
                                     {"sim-anchor", required_argument, 0, 'N'},
                                     {"celestial", required_argument, 0, 'E'},
                                     {"config", required_argument, 0, 'F'},
                                     {"help", no_argument, 0, 'h'},
                                     {0, 0, 0, 0}};
  /* the configuration file's options, then the command line's (freed at
   * return: the options point into it until then) */
  _cleanup_strv_ char **conf_argv = NULL;
  {
    struct ferry_err cerr = {0};
    if (config_args(FERRY_COORD_CONF, lo, &argc, &argv, &conf_argv, &cerr) < 0) {
      fprintf(stderr, "ferry-coord: %s\n", cerr.msg);
      return 2;
    }
  }
  struct coord_options co = {0};
  struct http_server_options so = {.unix_path = "/run/ferry/coord.sock"};
  struct policy_options po = {0};
  const char *token_file = NULL;
  bool no_token_ok = false;
  int c;
  optind = 1;
  while ((c = getopt_long(argc, argv, "h", lo, NULL)) != -1) {
    switch (c) {
    case 'F': break; /* read above */
    case 'd': co.db_path = optarg; break;
    case 'l': so.listen = optarg; break;
    case 'I': no_token_ok = true; break;
    case 's': so.unix_path = optarg; break;
    case 't': token_file = optarg; break;
    case 'C': so.tls_cert = optarg; break;
    case 'K': so.tls_key = optarg; break;
    case 'A': co.tls_ca = optarg; break;
    case 'H': co.heartbeat_timeout_s = atoi(optarg); break;
    case 'e': co.etcd = optarg; break;
    case 'a': co.self_url = optarg; break;
    case 'T': co.lease_ttl_s = atoi(optarg); break;
    case 'L': po.tle = optarg; break;
    case 'G': po.stations = optarg; break;
    case 'S': po.services = optarg; break;
    case 'X': po.scale = atof(optarg); break;
    case 'Z': po.sim_start = optarg; break;
    case 'N': po.sim_anchor = optarg; break;
    case 'E': po.celestial = optarg; break;
    case 'h': fputs(serve_help, stdout); return 0;
    default: fputs(serve_help, stderr); return 125;
    }
  }
  bool with_policy = po.tle || po.stations || po.services || po.celestial;
  bool policy_ok = po.celestial ? po.services != NULL : (po.tle && po.stations && po.services);
  if (!co.db_path == !co.etcd || optind != argc || (with_policy && !policy_ok)) {
    fputs(serve_help, stderr);
    return 125;
  }
  _cleanup_free_ char *self = NULL;
  if (co.etcd && !co.self_url) {
    if (!so.listen) {
      fprintf(stderr, "ferry-coord: --etcd needs --listen or --advertise: the other coordinators "
                      "hand migrations to the leader there\n");
      return 2;
    }
    co.self_url = self = xasprintf("%s://%s", so.tls_cert ? "https" : "tcp", so.listen);
  }
  if (co.lease_ttl_s && (co.lease_ttl_s < 2 || co.lease_ttl_s > 600)) {
    fprintf(stderr, "ferry-coord: --lease-ttl must be 2..600 seconds\n");
    return 2;
  }
  struct ferry_err err = {0};
  _cleanup_free_ char *token = NULL;
  if (token_file) {
    if (read_token_file(token_file, &token, &err) < 0)
      return fail(&err);
    if (strlen(token) < 16) {
      fprintf(stderr, "ferry-coord: token in %s is shorter than 16 characters\n", token_file);
      return 2;
    }
    co.token = so.token = token;
  }
  if (so.listen && !token && !no_token_ok) {
    fprintf(stderr, "ferry-coord: --listen %s needs --token-file (--insecure-no-token to run "
                    "without one)\n", so.listen);
    return 2;
  }
  sigset_t mask;
  sigemptyset(&mask);
  sigaddset(&mask, SIGTERM);
  sigaddset(&mask, SIGINT);
  pthread_sigmask(SIG_BLOCK, &mask, NULL);
  signal(SIGPIPE, SIG_IGN);
  struct coord co_state;
  if (coord_open(&co_state, &co, &err) < 0)
    return fail(&err);
  so.dispatch = coord_dispatch;
  so.ctx = &co_state;
  struct http_server *srv = NULL;
  if (http_server_start(&so, &srv, &err) < 0) {
    coord_close(&co_state);
    return fail(&err);
  }
  struct policy pol;
  memset(&pol, 0, sizeof pol);
  if (with_policy && policy_start(&pol, &co_state, &po, &err) < 0) {
    policy_stop(&pol);
    http_server_stop(srv);
    coord_close(&co_state);
    return fail(&err);
  }
  log_info("coord", "coordinator ready (%s %s%s%s)", co.etcd ? "etcd" : "db",
           co.etcd ? co.etcd : co.db_path, so.listen ? ", tcp://" : "", so.listen ? so.listen : "");
  int sig = 0;
  sigwait(&mask, &sig);
  policy_stop(&pol);
  log_info("coord", "signal %d: shutting down", sig);
  signal(SIGALRM, SIG_DFL);
  alarm(10);
  http_server_stop(srv);
  coord_close(&co_state);
  return 0;
}

static void usage(FILE *f)
{
  fprintf(f, "Usage: ferry-coord COMMAND\n\n"
             "  sat ls --tle FILE [--stations FILE] --at TIME [--json]\n"
             "      satellite positions and their elevation/azimuth from ground stations\n"
             "  sat shell --planes P --per-plane S [--altitude KM] [--inclination DEG] ...\n"
             "      TLEs of a synthetic Walker-delta shell\n"
             "  sat passes --tle FILE --stations FILE --from TIME --to TIME [--json]\n"
             "      visibility windows of every satellite from every station\n"
             "  serve --db FILE | --etcd URL[,URL...] [--listen ADDR:PORT] [--token-file F] ...\n"
             "      run the coordinator (node registry, migrations, REST API)\n"
             "  node forget --db FILE | --etcd URL NAME\n"
             "      remove a node, and the secret its name is bound to (a node that lost it)\n"
             "  plan --tle FILE --stations FILE --services FILE --from TIME --to TIME [--json]\n"
             "      the handover schedule of services following satellite visibility (dry run)\n");
}

int main(int argc, char **argv)
{
  if (argc < 2 || strcmp(argv[1], "-h") == 0 || strcmp(argv[1], "--help") == 0) {
    usage(argc < 2 ? stderr : stdout);
    return argc < 2 ? 125 : 0;
  }
  if (strcmp(argv[1], "sat") == 0 && argc >= 3 && strcmp(argv[2], "ls") == 0)
    return sat_ls(argc - 2, argv + 2);
  if (strcmp(argv[1], "sat") == 0 && argc >= 3 && strcmp(argv[2], "shell") == 0)
    return sat_shell(argc - 2, argv + 2);
  if (strcmp(argv[1], "sat") == 0 && argc >= 3 && strcmp(argv[2], "passes") == 0)
    return sat_passes(argc - 2, argv + 2);
  if (strcmp(argv[1], "plan") == 0)
    return plan_cmd(argc - 1, argv + 1);
  if (strcmp(argv[1], "serve") == 0)
    return serve(argc - 1, argv + 1);
  if (strcmp(argv[1], "node") == 0 && argc >= 3 && strcmp(argv[2], "forget") == 0) {
    /* ferry-coord node forget (--db FILE | --etcd URL) NAME */
    const char *db = NULL, *etcd = NULL, *name = NULL;
    for (int i = 3; i < argc; i++) {
      if (strcmp(argv[i], "--db") == 0 && i + 1 < argc)
        db = argv[++i];
      else if (strcmp(argv[i], "--etcd") == 0 && i + 1 < argc)
        etcd = argv[++i];
      else if (!name && argv[i][0] != '-')
        name = argv[i];
      else {
        fprintf(stderr, "Error: node forget: unexpected \"%s\"\n", argv[i]);
        return 125;
      }
    }
    if (!db == !etcd || !name) {
      fprintf(stderr, "Usage: ferry-coord node forget (--db FILE | --etcd URL[,URL...]) NAME\n");
      return 125;
    }
    struct ferry_err err = {0};
    struct coord_store *st = NULL;
    if (db && access(db, R_OK | W_OK) != 0) {
      fprintf(stderr, "Error: database %s: %s\n", db, strerror(errno));
      return 125;
    }
    struct coord_etcd_options eo = {.urls = etcd};
    if ((db ? coord_store_sqlite_open(db, &st, &err) : coord_store_etcd_open(&eo, &st, &err)) < 0)
      return fail(&err);
    int r = coord_node_forget(st, name, &err);
    st->ops->close(st);
    if (r < 0)
      return fail(&err);
    printf("node %s forgotten: its next registration binds the name to a new secret\n", name);
    return 0;
  }
  fprintf(stderr, "Error: unknown command \"%s\" (see ferry-coord --help)\n", argv[1]);
  return 125;
}
