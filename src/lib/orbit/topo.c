#include "orbit/topo.h"

#include <ctype.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "util/cleanup.h"
#include "util/fs.h"
#include "util/json.h"

#define PI 3.14159265358979323846
#define DEG (PI / 180.0)
/* WGS-84 */
static const double A84 = 6378.137;
static const double F84 = 1.0 / 298.257223563;

void station_prepare(struct station *st)
{
  double lat = st->lat_deg * DEG, lon = st->lon_deg * DEG;
  st->sinlat = sin(lat);
  st->coslat = cos(lat);
  st->sinlon = sin(lon);
  st->coslon = cos(lon);
  double e2 = F84 * (2.0 - F84);
  double n = A84 / sqrt(1.0 - e2 * st->sinlat * st->sinlat);
  st->ecef[0] = (n + st->alt_km) * st->coslat * st->coslon;
  st->ecef[1] = (n + st->alt_km) * st->coslat * st->sinlon;
  st->ecef[2] = (n * (1.0 - e2) + st->alt_km) * st->sinlat;
}

void teme_to_ecef(const double r[3], double jd, double out[3])
{
  double g = gmst(jd);
  double c = cos(g), s = sin(g);
  out[0] = c * r[0] + s * r[1];
  out[1] = -s * r[0] + c * r[1];
  out[2] = r[2];
}

void look_angles(const struct station *st, const double r[3], double *el, double *az,
                 double *range)
{
  double rho[3] = {r[0] - st->ecef[0], r[1] - st->ecef[1], r[2] - st->ecef[2]};
  /* topocentric south, east, zenith */
  double s = st->sinlat * st->coslon * rho[0] + st->sinlat * st->sinlon * rho[1] - st->coslat * rho[2];
  double e = -st->sinlon * rho[0] + st->coslon * rho[1];
  double z = st->coslat * st->coslon * rho[0] + st->coslat * st->sinlon * rho[1] + st->sinlat * rho[2];
  double d = sqrt(s * s + e * e + z * z);
  *el = asin(z / d) / DEG;
  double a = atan2(e, -s) / DEG;
  *az = a < 0 ? a + 360.0 : a;
  if (range)
    *range = d;
}

void ecef_to_geodetic(const double r[3], double *lat_deg, double *lon_deg, double *alt_km)
{
  double e2 = F84 * (2.0 - F84);
  double p = sqrt(r[0] * r[0] + r[1] * r[1]);
  double lat = atan2(r[2], p * (1.0 - e2)), n = A84, h = 0;
  for (int i = 0; i < 10; i++) {
    double sl = sin(lat);
    n = A84 / sqrt(1.0 - e2 * sl * sl);
    h = p / cos(lat) - n;
    lat = atan2(r[2], p * (1.0 - e2 * n / (n + h)));
  }
  *lat_deg = lat / DEG;
  *lon_deg = atan2(r[1], r[0]) / DEG;
  *alt_km = h;
}

double jtime_tsince(const struct tle *tle, struct jtime t)
{
  return ((t.jd - tle->epoch_jd) + (t.fr - tle->epoch_jdfrac)) * 1440.0;
}

int parse_time(const char *s, struct jtime *out, struct ferry_err *err)
{
  int y, mo, d, h, mi, n = 0;
  double sec;
  if (!s || sscanf(s, "%4d-%2d-%2dT%2d:%2d:%lf%n", &y, &mo, &d, &h, &mi, &sec, &n) != 6)
    return FERRY_INVALID(err, "time \"%s\": expected ISO 8601 UTC like 2026-11-21T12:00:00Z",
                         s ? s : "");
  const char *rest = s + n;
  if (!(strcmp(rest, "Z") == 0 || strcmp(rest, "+00:00") == 0 || strcmp(rest, "") == 0))
    return FERRY_INVALID(err, "time \"%s\": only UTC is accepted (end it with Z)", s);
  if (mo < 1 || mo > 12 || d < 1 || d > 31 || h > 23 || mi > 59 || sec < 0 || sec >= 61)
    return FERRY_INVALID(err, "time \"%s\": a field is out of range", s);
  out->jd = julian_date(y, mo, d, 0, 0, 0.0);
  out->fr = (h * 3600.0 + mi * 60.0 + sec) / 86400.0;
  return 0;
}

void format_jd(double jd, char *buf, size_t len)
{
  /* Julian date -> calendar (Fliegel and van Flandern) */
  double z = floor(jd + 0.5), f = jd + 0.5 - z;
  long l = (long)z + 68569;
  long n = 4 * l / 146097;
  l = l - (146097 * n + 3) / 4;
  long i = 4000 * (l + 1) / 1461001;
  l = l - 1461 * i / 4 + 31;
  long j = 80 * l / 2447;
  long day = l - 2447 * j / 80;
  l = j / 11;
  long mon = j + 2 - 12 * l;
  long year = 100 * (n - 49) + i + l;
  double secs = f * 86400.0;
  long isec = (long)floor(secs + 0.5);
  if (isec >= 86400)
    isec = 86399;
  snprintf(buf, len, "%04ld-%02ld-%02ldT%02ld:%02ld:%02ldZ", year, mon, day, isec / 3600,
           (isec / 60) % 60, isec % 60);
}

int tle_file_load(const char *path, struct tle_set *out, struct ferry_err *err)
{
  _cleanup_free_ char *buf = NULL;
  int r = read_file(path, 64u << 20, &buf, NULL, err);
  if (r < 0)
    return r;
  out->v = NULL;
  out->n = 0;
  size_t cap = 0;
  char *name = NULL, *l1 = NULL;
  int l1no = 0, lineno = 0;
  char *save = NULL;
  for (char *line = strtok_r(buf, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
    lineno++;
    line[strcspn(line, "\r")] = '\0';
    if (!*line || line[0] == '#')
      continue;
    if (line[0] == '1' && line[1] == ' ' && strlen(line) >= 69) {
      l1 = line;
      l1no = lineno;
    } else if (line[0] == '2' && line[1] == ' ' && l1) {
      if (out->n == cap) {
        cap = cap ? cap * 2 : 64;
        struct tle *nv = realloc(out->v, cap * sizeof *nv);
        if (!nv)
          abort();
        out->v = nv;
      }
      char l2[70];
      snprintf(l2, sizeof l2, "%.69s", line);
      r = tle_parse(name, l1, l2, true, &out->v[out->n], err);
      if (r < 0) {
        ferry_err_wrap(err, "%s: lines %d-%d", path, l1no, lineno);
        tle_set_free(out);
        return r;
      }
      out->n++;
      l1 = NULL;
      name = NULL;
    } else if (!l1) {
      name = line;
    } else {
      tle_set_free(out);
      return FERRY_INVALID(err, "%s: line %d: expected line 2 of the TLE started on line %d", path,
                           lineno, l1no);
    }
  }
  if (l1) {
    tle_set_free(out);
    return FERRY_INVALID(err, "%s: line %d: TLE without its line 2", path, l1no);
  }
  if (out->n == 0)
    return FERRY_INVALID(err, "%s: no TLE found", path);
  return 0;
}

void tle_set_free(struct tle_set *s)
{
  free(s->v);
  s->v = NULL;
  s->n = 0;
}

int stations_load(const char *path, struct station **out, size_t *n, struct ferry_err *err)
{
  _cleanup_json_ json_t *j = NULL;
  int r = json_load(path, &j, err);
  if (r < 0)
    return r;
  json_t *arr = json_is_array(j) ? j : json_object_get(j, "stations");
  if (!json_is_array(arr) || json_array_size(arr) == 0)
    return FERRY_INVALID(err, "%s: expected an array of ground stations", path);
  struct station *v = calloc(json_array_size(arr), sizeof *v);
  if (!v)
    abort();
  size_t i;
  json_t *e;
  json_array_foreach(arr, i, e)
  {
    const char *name = json_str_or(e, "name", NULL);
    json_t *lat = json_object_get(e, "lat"), *lon = json_object_get(e, "lon");
    if (!name || !json_is_number(lat) || !json_is_number(lon) ||
        fabs(json_number_value(lat)) > 90 || fabs(json_number_value(lon)) > 180) {
      free(v);
      return FERRY_INVALID(err, "%s: station %zu: needs \"name\", \"lat\" (-90..90) and \"lon\" "
                                "(-180..180)", path, i + 1);
    }
    snprintf(v[i].name, sizeof v[i].name, "%s", name);
    v[i].lat_deg = json_number_value(lat);
    v[i].lon_deg = json_number_value(lon);
    v[i].alt_km = json_number_value(json_object_get(e, "alt_m")) / 1000.0;
    json_t *me = json_object_get(e, "min_elevation");
    v[i].min_elevation_deg = json_is_number(me) ? json_number_value(me) : 10.0;
    station_prepare(&v[i]);
  }
  *out = v;
  *n = json_array_size(arr);
  return 0;
}
