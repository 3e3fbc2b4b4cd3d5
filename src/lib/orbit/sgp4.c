/* SGP4/SDP4 (see sgp4.h for the sources). The structure follows the model's
 * published description: initialisation (secular rates and drag terms), the
 * deep-space common terms, the long-period lunar-solar perturbations, the
 * resonance integrator, and the short-period periodics. */
#include "orbit/sgp4.h"

#include <ctype.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define PI 3.14159265358979323846
#define TWOPI (2.0 * PI)
#define DEG2RAD (PI / 180.0)
#define X2O3 (2.0 / 3.0)

/* WGS-72 */
static const double MU = 398600.8;
static const double RE = 6378.135;
static const double J2 = 0.001082616;
static const double J3 = -0.00000253881;
static const double J4 = -0.00000165597;
#define XKE (60.0 / sqrt(RE * RE * RE / MU))
#define TUMIN (1.0 / XKE)
#define J3OJ2 (J3 / J2)

/* ---------------------------------------------------------------- time */

double julian_date(int year, int mon, int day, int hr, int minute, double sec)
{
  return 367.0 * year - floor((7 * (year + floor((mon + 9) / 12.0))) * 0.25) +
         floor(275 * mon / 9.0) + day + 1721013.5 + ((sec / 60.0 + minute) / 60.0 + hr) / 24.0;
}

double gmst(double jd_ut1)
{
  double tut1 = (jd_ut1 - 2451545.0) / 36525.0;
  double t = -6.2e-6 * tut1 * tut1 * tut1 + 0.093104 * tut1 * tut1 +
             (876600.0 * 3600 + 8640184.812866) * tut1 + 67310.54841; /* seconds */
  t = fmod(t * DEG2RAD / 240.0, TWOPI);
  if (t < 0)
    t += TWOPI;
  return t;
}

/* Day of year (fractional, 1 = Jan 1 0h) -> month, day, h, m, s. */
static void days_to_mdhms(int year, double days, int *mon, int *day, int *hr, int *mn, double *sec)
{
  int lmonth[] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
  if (year % 4 == 0)
    lmonth[1] = 29;
  int dayofyr = (int)floor(days);
  int i = 1, inttemp = 0;
  while (dayofyr > inttemp + lmonth[i - 1] && i < 12) {
    inttemp += lmonth[i - 1];
    i++;
  }
  *mon = i;
  *day = dayofyr - inttemp;
  double temp = (days - dayofyr) * 24.0;
  *hr = (int)floor(temp);
  temp = (temp - *hr) * 60.0;
  *mn = (int)floor(temp);
  *sec = (temp - *mn) * 60.0;
}

/* ---------------------------------------------------------------- TLE */

static int checksum_ok(const char *l)
{
  if (strlen(l) < 69 || !isdigit((unsigned char)l[68]))
    return 0;
  int sum = 0;
  for (int i = 0; i < 68; i++) {
    if (isdigit((unsigned char)l[i]))
      sum += l[i] - '0';
    else if (l[i] == '-')
      sum += 1;
  }
  return sum % 10 == l[68] - '0';
}

/* Copies columns [from, to] (1-based, inclusive) of line into buf. */
static const char *cols(const char *line, int from, int to, char *buf)
{
  int n = to - from + 1;
  memcpy(buf, line + from - 1, (size_t)n);
  buf[n] = '\0';
  return buf;
}

static int num(const char *s, double *out)
{
  char *end;
  while (*s == ' ')
    s++;
  if (!*s)
    return -1;
  *out = strtod(s, &end);
  while (*end == ' ')
    end++;
  return *end ? -1 : 0;
}

/* " 12345-3" (assumed decimal point, exponent) -> 0.12345e-3 */
static int num_exp(const char *s, double *out)
{
  char mant[16] = "", ex[8] = "";
  size_t n = strlen(s);
  if (n < 3)
    return -1;
  int sign = 1;
  const char *p = s;
  while (*p == ' ')
    p++;
  if (*p == '-' || *p == '+') {
    sign = *p == '-' ? -1 : 1;
    p++;
  }
  size_t mlen = strlen(p) >= 2 ? strlen(p) - 2 : 0;
  if (mlen == 0 || mlen >= sizeof mant)
    return -1;
  memcpy(mant, p, mlen);
  memcpy(ex, p + mlen, 2);
  for (size_t i = 0; i < mlen; i++)
    if (!isdigit((unsigned char)mant[i]) && mant[i] != ' ')
      return -1;
  if ((ex[0] != '-' && ex[0] != '+' && ex[0] != ' ' && ex[0] != '0') || !isdigit((unsigned char)ex[1]))
    return -1;
  double m = strtod(mant, NULL) / pow(10.0, (double)mlen);
  int e = ex[1] - '0';
  if (ex[0] == '-')
    e = -e;
  *out = sign * m * pow(10.0, e);
  return 0;
}

int tle_parse(const char *line0, const char *line1, const char *line2, bool checksums,
              struct tle *t, struct ferry_err *err)
{
  memset(t, 0, sizeof *t);
  if (line0) {
    const char *n = line0;
    if (n[0] == '0' && n[1] == ' ')
      n += 2;
    snprintf(t->name, sizeof t->name, "%s", n);
    size_t l = strlen(t->name);
    while (l > 0 && isspace((unsigned char)t->name[l - 1]))
      t->name[--l] = '\0';
  }
  const char *what = t->name[0] ? t->name : "TLE";
  if (!line1 || !line2 || strlen(line1) < 69 || strlen(line2) < 69)
    return FERRY_INVALID(err, "%s: a TLE line is shorter than 69 characters", what);
  if (line1[0] != '1' || line2[0] != '2')
    return FERRY_INVALID(err, "%s: expected lines starting with 1 and 2", what);
  if (checksums && (!checksum_ok(line1) || !checksum_ok(line2)))
    return FERRY_INVALID(err, "%s: checksum mismatch", what);
  char b[32];
  double v1, v2, yr, days;
  if (num(cols(line1, 3, 7, b), &v1) < 0 || num(cols(line2, 3, 7, b), &v2) < 0 || v1 != v2)
    return FERRY_INVALID(err, "%s: satellite numbers of lines 1 and 2 differ or are malformed", what);
  t->satnum = (long)v1;
  if (num(cols(line1, 19, 20, b), &yr) < 0 || num(cols(line1, 21, 32, b), &days) < 0 ||
      num(cols(line1, 34, 43, b), &t->ndot) < 0 || num_exp(cols(line1, 45, 52, b), &t->nddot) < 0 ||
      num_exp(cols(line1, 54, 61, b), &t->bstar) < 0)
    return FERRY_INVALID(err, "%s: line 1 is malformed", what);
  if (num(cols(line2, 9, 16, b), &t->inclo) < 0 || num(cols(line2, 18, 25, b), &t->nodeo) < 0 ||
      num(cols(line2, 35, 42, b), &t->argpo) < 0 || num(cols(line2, 44, 51, b), &t->mo) < 0 ||
      num(cols(line2, 53, 63, b), &t->no_revday) < 0)
    return FERRY_INVALID(err, "%s: line 2 is malformed", what);
  char ecc[16] = "0.";
  cols(line2, 27, 33, ecc + 2);
  for (char *p = ecc + 2; *p; p++)
    if (*p == ' ')
      *p = '0';
  if (num(ecc, &t->ecco) < 0)
    return FERRY_INVALID(err, "%s: eccentricity is malformed", what);
  /* in range, as the format has them (strtod also takes "inf", "nan", 1e300) */
  if (yr < 0 || yr > 99 || yr != floor(yr) || !(days >= 1.0 && days < 367.0))
    return FERRY_INVALID(err, "%s: epoch is out of range (year 00..99, day 1..366)", what);
  const double vals[] = {t->ndot, t->nddot, t->bstar, t->inclo, t->nodeo, t->argpo, t->mo,
                         t->no_revday, t->ecco};
  for (size_t k = 0; k < sizeof vals / sizeof vals[0]; k++)
    if (!isfinite(vals[k]) || fabs(vals[k]) > 1e6)
      return FERRY_INVALID(err, "%s: a number is out of range", what);
  if (t->inclo < 0 || t->inclo > 180 || t->ecco < 0 || t->ecco >= 1 || t->no_revday <= 0)
    return FERRY_INVALID(err, "%s: inclination, eccentricity or mean motion out of range", what);
  int year = (int)yr < 57 ? 2000 + (int)yr : 1900 + (int)yr;
  int mon, day, hr, mn;
  double sec;
  days_to_mdhms(year, days, &mon, &day, &hr, &mn, &sec);
  double jd = julian_date(year, mon, day, 0, 0, 0.0);
  t->epoch_jd = jd;
  t->epoch_jdfrac = ((sec / 60.0 + mn) / 60.0 + hr) / 24.0;
  return 0;
}

static void set_checksum(char *l)
{
  int sum = 0;
  for (int i = 0; i < 68; i++) {
    if (isdigit((unsigned char)l[i]))
      sum += l[i] - '0';
    else if (l[i] == '-')
      sum += 1;
  }
  l[68] = (char)('0' + sum % 10);
  l[69] = '\0';
}

void tle_format(long satnum, double epoch_jd, double epoch_fr, double incl_deg, double raan_deg,
                double ecc, double argp_deg, double ma_deg, double revs_per_day, char *line1,
                char *line2)
{
  /* epoch -> two-digit year and fractional day of year */
  double jd = epoch_jd + epoch_fr;
  int year = 1957;
  while (julian_date(year + 1, 1, 1, 0, 0, 0.0) <= jd && year < 2056)
    year++;
  double doy = jd - julian_date(year, 1, 1, 0, 0, 0.0) + 1.0;
  char ecc7[16];
  snprintf(ecc7, sizeof ecc7, "%07ld", lround(ecc * 1e7));
  char b1[128], b2[128];
  snprintf(b1, sizeof b1, "1 %05ldU 26001A   %02d%012.8f  .00000000  00000-0  00000-0 0  9990",
           satnum % 100000, year % 100, doy);
  snprintf(b2, sizeof b2, "2 %05ld %8.4f %8.4f %.7s %8.4f %8.4f %11.8f000010", satnum % 100000,
           incl_deg, fmod(raan_deg, 360.0), ecc7, fmod(argp_deg, 360.0), fmod(ma_deg, 360.0),
           revs_per_day);
  set_checksum(b1);
  set_checksum(b2);
  memcpy(line1, b1, 70);
  memcpy(line2, b2, 70);
}

/* ------------------------------------------------- deep space: common terms */

struct dscom_out {
  double snodm, cnodm, sinim, cosim, sinomm, cosomm, day, em, emsq, gam, rtemsq;
  double s1, s2, s3, s4, s5, s6, s7, ss1, ss2, ss3, ss4, ss5, ss6, ss7;
  double sz1, sz2, sz3, sz11, sz12, sz13, sz21, sz22, sz23, sz31, sz32, sz33;
  double z1, z2, z3, z11, z12, z13, z21, z22, z23, z31, z32, z33, nm;
};

static void dscom(double epoch, double ep, double argpp, double tc, double inclp, double nodep,
                  double np, struct sgp4 *s, struct dscom_out *o)
{
  const double zes = 0.01675, zel = 0.05490, c1ss = 2.9864797e-6, c1l = 4.7968065e-7,
               zsinis = 0.39785416, zcosis = 0.91744867, zcosgs = 0.1945905,
               zsings = -0.98088458;
  o->nm = np;
  o->em = ep;
  o->snodm = sin(nodep);
  o->cnodm = cos(nodep);
  o->sinomm = sin(argpp);
  o->cosomm = cos(argpp);
  o->sinim = sin(inclp);
  o->cosim = cos(inclp);
  o->emsq = o->em * o->em;
  double betasq = 1.0 - o->emsq;
  o->rtemsq = sqrt(betasq);
  s->peo = s->pinco = s->plo = s->pgho = s->pho = 0.0;
  o->day = epoch + 18261.5 + tc / 1440.0;
  double xnodce = fmod(4.5236020 - 9.2422029e-4 * o->day, TWOPI);
  double stem = sin(xnodce), ctem = cos(xnodce);
  double zcosil = 0.91375164 - 0.03568096 * ctem;
  double zsinil = sqrt(1.0 - zcosil * zcosil);
  double zsinhl = 0.089683511 * stem / zsinil;
  double zcoshl = sqrt(1.0 - zsinhl * zsinhl);
  o->gam = 5.8351514 + 0.0019443680 * o->day;
  double zx = 0.39785416 * stem / zsinil;
  double zy = zcoshl * ctem + 0.91744867 * zsinhl * stem;
  zx = atan2(zx, zy);
  zx = o->gam + zx - xnodce;
  double zcosgl = cos(zx), zsingl = sin(zx);

  /* the sun first, then the moon */
  double zcosg = zcosgs, zsing = zsings, zcosi = zcosis, zsini = zsinis;
  double zcosh = o->cnodm, zsinh = o->snodm, cc = c1ss, xnoi = 1.0 / o->nm;
  for (int lsflg = 1; lsflg <= 2; lsflg++) {
    double a1 = zcosg * zcosh + zsing * zcosi * zsinh;
    double a3 = -zsing * zcosh + zcosg * zcosi * zsinh;
    double a7 = -zcosg * zsinh + zsing * zcosi * zcosh;
    double a8 = zsing * zsini;
    double a9 = zsing * zsinh + zcosg * zcosi * zcosh;
    double a10 = zcosg * zsini;
    double a2 = o->cosim * a7 + o->sinim * a8;
    double a4 = o->cosim * a9 + o->sinim * a10;
    double a5 = -o->sinim * a7 + o->cosim * a8;
    double a6 = -o->sinim * a9 + o->cosim * a10;
    double x1 = a1 * o->cosomm + a2 * o->sinomm;
    double x2 = a3 * o->cosomm + a4 * o->sinomm;
    double x3 = -a1 * o->sinomm + a2 * o->cosomm;
    double x4 = -a3 * o->sinomm + a4 * o->cosomm;
    double x5 = a5 * o->sinomm, x6 = a6 * o->sinomm, x7 = a5 * o->cosomm, x8 = a6 * o->cosomm;
    double emsq = o->emsq;
    o->z31 = 12.0 * x1 * x1 - 3.0 * x3 * x3;
    o->z32 = 24.0 * x1 * x2 - 6.0 * x3 * x4;
    o->z33 = 12.0 * x2 * x2 - 3.0 * x4 * x4;
    o->z1 = 3.0 * (a1 * a1 + a2 * a2) + o->z31 * emsq;
    o->z2 = 6.0 * (a1 * a3 + a2 * a4) + o->z32 * emsq;
    o->z3 = 3.0 * (a3 * a3 + a4 * a4) + o->z33 * emsq;
    o->z11 = -6.0 * a1 * a5 + emsq * (-24.0 * x1 * x7 - 6.0 * x3 * x5);
    o->z12 = -6.0 * (a1 * a6 + a3 * a5) + emsq * (-24.0 * (x2 * x7 + x1 * x8) - 6.0 * (x3 * x6 + x4 * x5));
    o->z13 = -6.0 * a3 * a6 + emsq * (-24.0 * x2 * x8 - 6.0 * x4 * x6);
    o->z21 = 6.0 * a2 * a5 + emsq * (24.0 * x1 * x5 - 6.0 * x3 * x7);
    o->z22 = 6.0 * (a4 * a5 + a2 * a6) + emsq * (24.0 * (x2 * x5 + x1 * x6) - 6.0 * (x4 * x7 + x3 * x8));
    o->z23 = 6.0 * a4 * a6 + emsq * (24.0 * x2 * x6 - 6.0 * x4 * x8);
    o->z1 = o->z1 + o->z1 + betasq * o->z31;
    o->z2 = o->z2 + o->z2 + betasq * o->z32;
    o->z3 = o->z3 + o->z3 + betasq * o->z33;
    o->s3 = cc * xnoi;
    o->s2 = -0.5 * o->s3 / o->rtemsq;
    o->s4 = o->s3 * o->rtemsq;
    o->s1 = -15.0 * o->em * o->s4;
    o->s5 = x1 * x3 + x2 * x4;
    o->s6 = x2 * x3 + x1 * x4;
    o->s7 = x2 * x4 - x1 * x3;
    if (lsflg == 1) {
      o->ss1 = o->s1; o->ss2 = o->s2; o->ss3 = o->s3; o->ss4 = o->s4;
      o->ss5 = o->s5; o->ss6 = o->s6; o->ss7 = o->s7;
      o->sz1 = o->z1; o->sz2 = o->z2; o->sz3 = o->z3;
      o->sz11 = o->z11; o->sz12 = o->z12; o->sz13 = o->z13;
      o->sz21 = o->z21; o->sz22 = o->z22; o->sz23 = o->z23;
      o->sz31 = o->z31; o->sz32 = o->z32; o->sz33 = o->z33;
      zcosg = zcosgl;
      zsing = zsingl;
      zcosi = zcosil;
      zsini = zsinil;
      zcosh = zcoshl * o->cnodm + zsinhl * o->snodm;
      zsinh = o->snodm * zcoshl - o->cnodm * zsinhl;
      cc = c1l;
    }
  }
  s->zmol = fmod(4.7199672 + 0.22997150 * o->day - o->gam, TWOPI);
  s->zmos = fmod(6.2565837 + 0.017201977 * o->day, TWOPI);
  /* solar terms */
  s->se2 = 2.0 * o->ss1 * o->ss6;
  s->se3 = 2.0 * o->ss1 * o->ss7;
  s->si2 = 2.0 * o->ss2 * o->sz12;
  s->si3 = 2.0 * o->ss2 * (o->sz13 - o->sz11);
  s->sl2 = -2.0 * o->ss3 * o->sz2;
  s->sl3 = -2.0 * o->ss3 * (o->sz3 - o->sz1);
  s->sl4 = -2.0 * o->ss3 * (-21.0 - 9.0 * o->emsq) * zes;
  s->sgh2 = 2.0 * o->ss4 * o->sz32;
  s->sgh3 = 2.0 * o->ss4 * (o->sz33 - o->sz31);
  s->sgh4 = -18.0 * o->ss4 * zes;
  s->sh2 = -2.0 * o->ss2 * o->sz22;
  s->sh3 = -2.0 * o->ss2 * (o->sz23 - o->sz21);
  /* lunar terms */
  s->ee2 = 2.0 * o->s1 * o->s6;
  s->e3 = 2.0 * o->s1 * o->s7;
  s->xi2 = 2.0 * o->s2 * o->z12;
  s->xi3 = 2.0 * o->s2 * (o->z13 - o->z11);
  s->xl2 = -2.0 * o->s3 * o->z2;
  s->xl3 = -2.0 * o->s3 * (o->z3 - o->z1);
  s->xl4 = -2.0 * o->s3 * (-21.0 - 9.0 * o->emsq) * zel;
  s->xgh2 = 2.0 * o->s4 * o->z32;
  s->xgh3 = 2.0 * o->s4 * (o->z33 - o->z31);
  s->xgh4 = -18.0 * o->s4 * zel;
  s->xh2 = -2.0 * o->s2 * o->z22;
  s->xh3 = -2.0 * o->s2 * (o->z23 - o->z21);
}

/* ---------------------------------- deep space: long-period periodics */

static void dpper(const struct sgp4 *s, double t, bool init, double *ep, double *inclp,
                  double *nodep, double *argpp, double *mp)
{
  const double zns = 1.19459e-5, zes = 0.01675, znl = 1.5835218e-4, zel = 0.05490;
  double zm = init ? s->zmos : s->zmos + zns * t;
  double zf = zm + 2.0 * zes * sin(zm);
  double sinzf = sin(zf);
  double f2 = 0.5 * sinzf * sinzf - 0.25;
  double f3 = -0.5 * sinzf * cos(zf);
  double ses = s->se2 * f2 + s->se3 * f3;
  double sis = s->si2 * f2 + s->si3 * f3;
  double sls = s->sl2 * f2 + s->sl3 * f3 + s->sl4 * sinzf;
  double sghs = s->sgh2 * f2 + s->sgh3 * f3 + s->sgh4 * sinzf;
  double shs = s->sh2 * f2 + s->sh3 * f3;
  zm = init ? s->zmol : s->zmol + znl * t;
  zf = zm + 2.0 * zel * sin(zm);
  sinzf = sin(zf);
  f2 = 0.5 * sinzf * sinzf - 0.25;
  f3 = -0.5 * sinzf * cos(zf);
  double sel = s->ee2 * f2 + s->e3 * f3;
  double sil = s->xi2 * f2 + s->xi3 * f3;
  double sll = s->xl2 * f2 + s->xl3 * f3 + s->xl4 * sinzf;
  double sghl = s->xgh2 * f2 + s->xgh3 * f3 + s->xgh4 * sinzf;
  double shll = s->xh2 * f2 + s->xh3 * f3;
  double pe = ses + sel, pinc = sis + sil, pl = sls + sll, pgh = sghs + sghl, ph = shs + shll;
  if (init)
    return;
  pe -= s->peo;
  pinc -= s->pinco;
  pl -= s->plo;
  pgh -= s->pgho;
  ph -= s->pho;
  *inclp += pinc;
  *ep += pe;
  double sinip = sin(*inclp), cosip = cos(*inclp);
  if (*inclp >= 0.2) {
    ph /= sinip;
    pgh -= cosip * ph;
    *argpp += pgh;
    *nodep += ph;
    *mp += pl;
  } else {
    /* Lyddane's modification for low inclinations */
    double sinop = sin(*nodep), cosop = cos(*nodep);
    double alfdp = sinip * sinop, betdp = sinip * cosop;
    double dalf = ph * cosop + pinc * cosip * sinop;
    double dbet = -ph * sinop + pinc * cosip * cosop;
    alfdp += dalf;
    betdp += dbet;
    *nodep = fmod(*nodep, TWOPI);
    double xls = *mp + *argpp + cosip * *nodep;
    double dls = pl + pgh - pinc * *nodep * sinip;
    xls += dls;
    double xnoh = *nodep;
    *nodep = atan2(alfdp, betdp);
    if (fabs(xnoh - *nodep) > PI) {
      if (*nodep < xnoh)
        *nodep += TWOPI;
      else
        *nodep -= TWOPI;
    }
    *mp += pl;
    *argpp = xls - *mp - cosip * *nodep;
  }
}

/* ------------------------- deep space: secular rates and resonance set-up */

static void dsinit(struct sgp4 *s, const struct dscom_out *c, double cosim, double sinim,
                   double emsq_in, double t, double tc, double xpidot, double eccsq, double *em,
                   double *argpm, double *inclm, double *mm, double *nm, double *nodem,
                   double *dndt)
{
  const double q22 = 1.7891679e-6, q31 = 2.1460748e-6, q33 = 2.2123015e-7,
               root22 = 1.7891679e-6, root44 = 7.3636953e-9, root54 = 2.1765803e-9,
               rptim = 4.37526908801129966e-3, root32 = 3.7393792e-7, root52 = 1.1428639e-7,
               znl = 1.5835218e-4, zns = 1.19459e-5;
  double emsq = emsq_in;
  s->irez = 0;
  if (*nm < 0.0052359877 && *nm > 0.0034906585)
    s->irez = 1;
  if (*nm >= 8.26e-3 && *nm <= 9.24e-3 && *em >= 0.5)
    s->irez = 2;
  /* solar */
  double ses = c->ss1 * zns * c->ss5;
  double sis = c->ss2 * zns * (c->sz11 + c->sz13);
  double sls = -zns * c->ss3 * (c->sz1 + c->sz3 - 14.0 - 6.0 * emsq);
  double sghs = c->ss4 * zns * (c->sz31 + c->sz33 - 6.0);
  double shs = -zns * c->ss2 * (c->sz21 + c->sz23);
  if (*inclm < 5.2359877e-2 || *inclm > PI - 5.2359877e-2)
    shs = 0.0;
  if (sinim != 0.0)
    shs /= sinim;
  double sgs = sghs - cosim * shs;
  /* lunar */
  s->dedt = ses + c->s1 * znl * c->s5;
  s->didt = sis + c->s2 * znl * (c->z11 + c->z13);
  s->dmdt = sls - znl * c->s3 * (c->z1 + c->z3 - 14.0 - 6.0 * emsq);
  double sghl = c->s4 * znl * (c->z31 + c->z33 - 6.0);
  double shll = -znl * c->s2 * (c->z21 + c->z23);
  if (*inclm < 5.2359877e-2 || *inclm > PI - 5.2359877e-2)
    shll = 0.0;
  s->domdt = sgs + sghl;
  s->dnodt = shs;
  if (sinim != 0.0) {
    s->domdt -= cosim / sinim * shll;
    s->dnodt += shll / sinim;
  }
  /* resonance */
  *dndt = 0.0;
  double theta = fmod(s->gsto + tc * rptim, TWOPI);
  *em += s->dedt * t;
  *inclm += s->didt * t;
  *argpm += s->domdt * t;
  *nodem += s->dnodt * t;
  *mm += s->dmdt * t;
  if (s->irez == 0)
    return;
  double aonv = pow(*nm / XKE, X2O3);
  if (s->irez == 2) {
    /* geopotential resonance for 12-hour orbits */
    double cosisq = cosim * cosim;
    double emo = *em;
    *em = s->ecco;
    double emsqo = emsq;
    emsq = eccsq;
    double eoc = *em * emsq;
    double g201 = -0.306 - (*em - 0.64) * 0.440;
    double g211, g310, g322, g410, g422, g520, g521, g532, g533;
    if (*em <= 0.65) {
      g211 = 3.616 - 13.2470 * *em + 16.2900 * emsq;
      g310 = -19.302 + 117.3900 * *em - 228.4190 * emsq + 156.5910 * eoc;
      g322 = -18.9068 + 109.7927 * *em - 214.6334 * emsq + 146.5816 * eoc;
      g410 = -41.122 + 242.6940 * *em - 471.0940 * emsq + 313.9530 * eoc;
      g422 = -146.407 + 841.8800 * *em - 1629.014 * emsq + 1083.4350 * eoc;
      g520 = -532.114 + 3017.977 * *em - 5740.032 * emsq + 3708.2760 * eoc;
    } else {
      g211 = -72.099 + 331.819 * *em - 508.738 * emsq + 266.724 * eoc;
      g310 = -346.844 + 1582.851 * *em - 2415.925 * emsq + 1246.113 * eoc;
      g322 = -342.585 + 1554.908 * *em - 2366.899 * emsq + 1215.972 * eoc;
      g410 = -1052.797 + 4758.686 * *em - 7193.992 * emsq + 3651.957 * eoc;
      g422 = -3581.690 + 16178.110 * *em - 24462.770 * emsq + 12422.520 * eoc;
      if (*em > 0.715)
        g520 = -5149.66 + 29936.92 * *em - 54087.36 * emsq + 31324.56 * eoc;
      else
        g520 = 1464.74 - 4664.75 * *em + 3763.64 * emsq;
    }
    if (*em < 0.7) {
      g533 = -919.22770 + 4988.6100 * *em - 9064.7700 * emsq + 5542.21 * eoc;
      g521 = -822.71072 + 4568.6173 * *em - 8491.4146 * emsq + 5337.524 * eoc;
      g532 = -853.66600 + 4690.2500 * *em - 8624.7700 * emsq + 5341.4 * eoc;
    } else {
      g533 = -37995.780 + 161616.52 * *em - 229838.20 * emsq + 109377.94 * eoc;
      g521 = -51752.104 + 218913.95 * *em - 309468.16 * emsq + 146349.42 * eoc;
      g532 = -40023.880 + 170470.89 * *em - 242699.48 * emsq + 115605.82 * eoc;
    }
    double sini2 = sinim * sinim;
    double f220 = 0.75 * (1.0 + 2.0 * cosim + cosisq);
    double f221 = 1.5 * sini2;
    double f321 = 1.875 * sinim * (1.0 - 2.0 * cosim - 3.0 * cosisq);
    double f322 = -1.875 * sinim * (1.0 + 2.0 * cosim - 3.0 * cosisq);
    double f441 = 35.0 * sini2 * f220;
    double f442 = 39.3750 * sini2 * sini2;
    double f522 = 9.84375 * sinim *
                  (sini2 * (1.0 - 2.0 * cosim - 5.0 * cosisq) +
                   0.33333333 * (-2.0 + 4.0 * cosim + 6.0 * cosisq));
    double f523 = sinim * (4.92187512 * sini2 * (-2.0 - 4.0 * cosim + 10.0 * cosisq) +
                           6.56250012 * (1.0 + 2.0 * cosim - 3.0 * cosisq));
    double f542 = 29.53125 * sinim *
                  (2.0 - 8.0 * cosim + cosisq * (-12.0 + 8.0 * cosim + 10.0 * cosisq));
    double f543 = 29.53125 * sinim *
                  (-2.0 - 8.0 * cosim + cosisq * (12.0 + 8.0 * cosim - 10.0 * cosisq));
    double xno2 = *nm * *nm;
    double ainv2 = aonv * aonv;
    double temp1 = 3.0 * xno2 * ainv2;
    double temp = temp1 * root22;
    s->d2201 = temp * f220 * g201;
    s->d2211 = temp * f221 * g211;
    temp1 *= aonv;
    temp = temp1 * root32;
    s->d3210 = temp * f321 * g310;
    s->d3222 = temp * f322 * g322;
    temp1 *= aonv;
    temp = 2.0 * temp1 * root44;
    s->d4410 = temp * f441 * g410;
    s->d4422 = temp * f442 * g422;
    temp1 *= aonv;
    temp = temp1 * root52;
    s->d5220 = temp * f522 * g520;
    s->d5232 = temp * f523 * g532;
    temp = 2.0 * temp1 * root54;
    s->d5421 = temp * f542 * g521;
    s->d5433 = temp * f543 * g533;
    s->xlamo = fmod(s->mo + s->nodeo + s->nodeo - theta - theta, TWOPI);
    s->xfact = s->mdot + s->dmdt + 2.0 * (s->nodedot + s->dnodt - rptim) - s->no_unkozai;
    *em = emo;
    emsq = emsqo;
  }
  if (s->irez == 1) {
    /* synchronous resonance */
    double g200 = 1.0 + emsq * (-2.5 + 0.8125 * emsq);
    double g310 = 1.0 + 2.0 * emsq;
    double g300 = 1.0 + emsq * (-6.0 + 6.60937 * emsq);
    double f220 = 0.75 * (1.0 + cosim) * (1.0 + cosim);
    double f311 = 0.9375 * sinim * sinim * (1.0 + 3.0 * cosim) - 0.75 * (1.0 + cosim);
    double f330 = 1.0 + cosim;
    f330 = 1.875 * f330 * f330 * f330;
    s->del1 = 3.0 * *nm * *nm * aonv * aonv;
    s->del2 = 2.0 * s->del1 * f220 * g200 * q22;
    s->del3 = 3.0 * s->del1 * f330 * g300 * q33 * aonv;
    s->del1 = s->del1 * f311 * g310 * q31 * aonv;
    s->xlamo = fmod(s->mo + s->nodeo + s->argpo - theta, TWOPI);
    s->xfact = s->mdot + xpidot - rptim + s->dmdt + s->domdt + s->dnodt - s->no_unkozai;
  }
  s->xli = s->xlamo;
  s->xni = s->no_unkozai;
  s->atime = 0.0;
  *nm = s->no_unkozai + *dndt;
}

/* ------------------------------ deep space: secular and resonance effects */

static void dspace(struct sgp4 *s, double t, double tc, double *em, double *argpm, double *inclm,
                   double *mm, double *nodem, double *dndt, double *nm)
{
  const double fasx2 = 0.13130908, fasx4 = 2.8843198, fasx6 = 0.37448087, g22 = 5.7686396,
               g32 = 0.95240898, g44 = 1.8014998, g52 = 1.0508330, g54 = 4.4108898,
               rptim = 4.37526908801129966e-3, stepp = 720.0, stepn = -720.0, step2 = 259200.0;
  *dndt = 0.0;
  double theta = fmod(s->gsto + tc * rptim, TWOPI);
  *em += s->dedt * t;
  *inclm += s->didt * t;
  *argpm += s->domdt * t;
  *nodem += s->dnodt * t;
  *mm += s->dmdt * t;
  if (s->irez == 0)
    return;
  /* numerical integration of the resonance terms, restarted when t goes
   * back past the last integration point */
  if (s->atime == 0.0 || t * s->atime <= 0.0 || fabs(t) < fabs(s->atime)) {
    s->atime = 0.0;
    s->xni = s->no_unkozai;
    s->xli = s->xlamo;
  }
  double delt = t > 0.0 ? stepp : stepn;
  double ft = 0.0, xndt = 0.0, xldot = 0.0, xnddt = 0.0;
  for (;;) {
    if (s->irez != 2) {
      xndt = s->del1 * sin(s->xli - fasx2) + s->del2 * sin(2.0 * (s->xli - fasx4)) +
             s->del3 * sin(3.0 * (s->xli - fasx6));
      xldot = s->xni + s->xfact;
      xnddt = s->del1 * cos(s->xli - fasx2) + 2.0 * s->del2 * cos(2.0 * (s->xli - fasx4)) +
              3.0 * s->del3 * cos(3.0 * (s->xli - fasx6));
      xnddt *= xldot;
    } else {
      double xomi = s->argpo + s->argpdot * s->atime;
      double x2omi = xomi + xomi, x2li = s->xli + s->xli;
      xndt = s->d2201 * sin(x2omi + s->xli - g22) + s->d2211 * sin(s->xli - g22) +
             s->d3210 * sin(xomi + s->xli - g32) + s->d3222 * sin(-xomi + s->xli - g32) +
             s->d4410 * sin(x2omi + x2li - g44) + s->d4422 * sin(x2li - g44) +
             s->d5220 * sin(xomi + s->xli - g52) + s->d5232 * sin(-xomi + s->xli - g52) +
             s->d5421 * sin(xomi + x2li - g54) + s->d5433 * sin(-xomi + x2li - g54);
      xldot = s->xni + s->xfact;
      xnddt = s->d2201 * cos(x2omi + s->xli - g22) + s->d2211 * cos(s->xli - g22) +
              s->d3210 * cos(xomi + s->xli - g32) + s->d3222 * cos(-xomi + s->xli - g32) +
              s->d5220 * cos(xomi + s->xli - g52) + s->d5232 * cos(-xomi + s->xli - g52) +
              2.0 * (s->d4410 * cos(x2omi + x2li - g44) + s->d4422 * cos(x2li - g44) +
                     s->d5421 * cos(xomi + x2li - g54) + s->d5433 * cos(-xomi + x2li - g54));
      xnddt *= xldot;
    }
    if (fabs(t - s->atime) < stepp) {
      ft = t - s->atime;
      break;
    }
    s->xli += xldot * delt + xndt * step2;
    s->xni += xndt * delt + xnddt * step2;
    s->atime += delt;
  }
  *nm = s->xni + xndt * ft + xnddt * ft * ft * 0.5;
  double xl = s->xli + xldot * ft + xndt * ft * ft * 0.5;
  if (s->irez != 1)
    *mm = xl - 2.0 * *nodem + 2.0 * theta;
  else
    *mm = xl - *nodem - *argpm + theta;
  *dndt = *nm - s->no_unkozai;
  *nm = s->no_unkozai + *dndt;
}

/* ------------------------------------------------------------ init */

int sgp4_init(struct sgp4 *s, const struct tle *t, struct ferry_err *err)
{
  memset(s, 0, sizeof *s);
  const double xpdotp = 1440.0 / TWOPI;
  s->satnum = t->satnum;
  s->bstar = t->bstar;
  s->ecco = t->ecco;
  s->argpo = t->argpo * DEG2RAD;
  s->inclo = t->inclo * DEG2RAD;
  s->mo = t->mo * DEG2RAD;
  s->nodeo = t->nodeo * DEG2RAD;
  s->no_kozai = t->no_revday / xpdotp;
  s->jdsatepoch = t->epoch_jd;
  s->jdsatepochF = t->epoch_jdfrac;
  if (s->no_kozai <= 0.0)
    return FERRY_INVALID(err, "satellite %ld: mean motion must be positive", t->satnum);
  if (s->ecco < 0.0 || s->ecco >= 1.0)
    return FERRY_INVALID(err, "satellite %ld: eccentricity out of range", t->satnum);
  double epoch = s->jdsatepoch + s->jdsatepochF - 2433281.5;

  const double ss = 78.0 / RE + 1.0;
  const double qzms2ttemp = (120.0 - 78.0) / RE;
  const double qzms2t = qzms2ttemp * qzms2ttemp * qzms2ttemp * qzms2ttemp;
  const double temp4 = 1.5e-12;

  /* initl: recover the original mean motion and semi-major axis */
  double eccsq = s->ecco * s->ecco;
  double omeosq = 1.0 - eccsq;
  double rteosq = sqrt(omeosq);
  double cosio = cos(s->inclo);
  double cosio2 = cosio * cosio;
  double ak = pow(XKE / s->no_kozai, X2O3);
  double d1 = 0.75 * J2 * (3.0 * cosio2 - 1.0) / (rteosq * omeosq);
  double del = d1 / (ak * ak);
  double adel = ak * (1.0 - del * del - del * (1.0 / 3.0 + 134.0 * del * del / 81.0));
  del = d1 / (adel * adel);
  s->no_unkozai = s->no_kozai / (1.0 + del);
  double ao = pow(XKE / s->no_unkozai, X2O3);
  double sinio = sin(s->inclo);
  double po = ao * omeosq;
  double con42 = 1.0 - 5.0 * cosio2;
  s->con41 = -con42 - cosio2 - cosio2;
  double posq = po * po;
  double rp = ao * (1.0 - s->ecco);
  s->gsto = gmst(epoch + 2433281.5);

  s->a = pow(s->no_unkozai * TUMIN, -X2O3);
  s->alta = s->a * (1.0 + s->ecco) - 1.0;
  s->altp = s->a * (1.0 - s->ecco) - 1.0;

  if (omeosq >= 0.0 || s->no_unkozai >= 0.0) {
    s->isimp = rp < 220.0 / RE + 1.0;
    double sfour = ss, qzms24 = qzms2t;
    double perige = (rp - 1.0) * RE;
    /* s and q* for perigees below 156 km */
    if (perige < 156.0) {
      sfour = perige - 78.0;
      if (perige < 98.0)
        sfour = 20.0;
      double q = (120.0 - sfour) / RE;
      qzms24 = q * q * q * q;
      sfour = sfour / RE + 1.0;
    }
    double pinvsq = 1.0 / posq;
    double tsi = 1.0 / (ao - sfour);
    s->eta = ao * s->ecco * tsi;
    double etasq = s->eta * s->eta;
    double eeta = s->ecco * s->eta;
    double psisq = fabs(1.0 - etasq);
    double coef = qzms24 * pow(tsi, 4.0);
    double coef1 = coef / pow(psisq, 3.5);
    double cc2 = coef1 * s->no_unkozai *
                 (ao * (1.0 + 1.5 * etasq + eeta * (4.0 + etasq)) +
                  0.375 * J2 * tsi / psisq * s->con41 * (8.0 + 3.0 * etasq * (8.0 + etasq)));
    s->cc1 = s->bstar * cc2;
    double cc3 = 0.0;
    if (s->ecco > 1.0e-4)
      cc3 = -2.0 * coef * tsi * J3OJ2 * s->no_unkozai * sinio / s->ecco;
    s->x1mth2 = 1.0 - cosio2;
    s->cc4 = 2.0 * s->no_unkozai * coef1 * ao * omeosq *
             (s->eta * (2.0 + 0.5 * etasq) + s->ecco * (0.5 + 2.0 * etasq) -
              J2 * tsi / (ao * psisq) *
                  (-3.0 * s->con41 * (1.0 - 2.0 * eeta + etasq * (1.5 - 0.5 * eeta)) +
                   0.75 * s->x1mth2 * (2.0 * etasq - eeta * (1.0 + etasq)) * cos(2.0 * s->argpo)));
    s->cc5 = 2.0 * coef1 * ao * omeosq * (1.0 + 2.75 * (etasq + eeta) + eeta * etasq);
    double cosio4 = cosio2 * cosio2;
    double temp1 = 1.5 * J2 * pinvsq * s->no_unkozai;
    double temp2 = 0.5 * temp1 * J2 * pinvsq;
    double temp3 = -0.46875 * J4 * pinvsq * pinvsq * s->no_unkozai;
    s->mdot = s->no_unkozai + 0.5 * temp1 * rteosq * s->con41 +
              0.0625 * temp2 * rteosq * (13.0 - 78.0 * cosio2 + 137.0 * cosio4);
    s->argpdot = -0.5 * temp1 * con42 + 0.0625 * temp2 * (7.0 - 114.0 * cosio2 + 395.0 * cosio4) +
                 temp3 * (3.0 - 36.0 * cosio2 + 49.0 * cosio4);
    double xhdot1 = -temp1 * cosio;
    s->nodedot = xhdot1 + (0.5 * temp2 * (4.0 - 19.0 * cosio2) + 2.0 * temp3 * (3.0 - 7.0 * cosio2)) * cosio;
    double xpidot = s->argpdot + s->nodedot;
    s->omgcof = s->bstar * cc3 * cos(s->argpo);
    s->xmcof = 0.0;
    if (s->ecco > 1.0e-4)
      s->xmcof = -X2O3 * coef * s->bstar / eeta;
    s->nodecf = 3.5 * omeosq * xhdot1 * s->cc1;
    s->t2cof = 1.5 * s->cc1;
    if (fabs(cosio + 1.0) > 1.5e-12)
      s->xlcof = -0.25 * J3OJ2 * sinio * (3.0 + 5.0 * cosio) / (1.0 + cosio);
    else
      s->xlcof = -0.25 * J3OJ2 * sinio * (3.0 + 5.0 * cosio) / temp4;
    s->aycof = -0.5 * J3OJ2 * sinio;
    double delmotemp = 1.0 + s->eta * cos(s->mo);
    s->delmo = delmotemp * delmotemp * delmotemp;
    s->sinmao = sin(s->mo);
    s->x7thm1 = 7.0 * cosio2 - 1.0;

    /* deep space: periods of 225 minutes and more */
    if (TWOPI / s->no_unkozai >= 225.0) {
      s->method_deep = 1;
      s->isimp = 1;
      double tc = 0.0, inclm = s->inclo;
      struct dscom_out c = {0};
      dscom(epoch, s->ecco, s->argpo, tc, s->inclo, s->nodeo, s->no_unkozai, s, &c);
      double ep = s->ecco, inclp = s->inclo, nodep = s->nodeo, argpp = s->argpo, mp = s->mo;
      dpper(s, s->t, true, &ep, &inclp, &nodep, &argpp, &mp);
      double argpm = 0.0, nodem = 0.0, mm = 0.0, em = c.em, nm = c.nm, dndt = 0.0;
      dsinit(s, &c, c.cosim, c.sinim, c.emsq, s->t, tc, xpidot, eccsq, &em, &argpm, &inclm, &mm,
             &nm, &nodem, &dndt);
    }

    if (!s->isimp) {
      double cc1sq = s->cc1 * s->cc1;
      s->d2 = 4.0 * ao * tsi * cc1sq;
      double temp = s->d2 * tsi * s->cc1 / 3.0;
      s->d3 = (17.0 * ao + sfour) * temp;
      s->d4 = 0.5 * temp * ao * tsi * (221.0 * ao + 31.0 * sfour) * s->cc1;
      s->t3cof = s->d2 + 2.0 * cc1sq;
      s->t4cof = 0.25 * (3.0 * s->d3 + s->cc1 * (12.0 * s->d2 + 10.0 * cc1sq));
      s->t5cof = 0.2 * (3.0 * s->d4 + 12.0 * s->cc1 * s->d3 + 6.0 * s->d2 * s->d2 +
                        15.0 * cc1sq * (2.0 * s->d2 + cc1sq));
    }
  }
  return 0;
}

/* ------------------------------------------------------------ propagate */

int sgp4_propagate(struct sgp4 *s, double tsince, double r[3], double v[3])
{
  const double temp4 = 1.5e-12;
  const double vkmpersec = RE * XKE / 60.0;
  s->t = tsince;
  double t = tsince;
  double xmdf = s->mo + s->mdot * t;
  double argpdf = s->argpo + s->argpdot * t;
  double nodedf = s->nodeo + s->nodedot * t;
  double argpm = argpdf, mm = xmdf;
  double t2 = t * t;
  double nodem = nodedf + s->nodecf * t2;
  double tempa = 1.0 - s->cc1 * t;
  double tempe = s->bstar * s->cc4 * t;
  double templ = s->t2cof * t2;
  if (!s->isimp) {
    double delomg = s->omgcof * t;
    double delmtemp = 1.0 + s->eta * cos(xmdf);
    double delm = s->xmcof * (delmtemp * delmtemp * delmtemp - s->delmo);
    double temp = delomg + delm;
    mm = xmdf + temp;
    argpm = argpdf - temp;
    double t3 = t2 * t, t4 = t3 * t;
    tempa = tempa - s->d2 * t2 - s->d3 * t3 - s->d4 * t4;
    tempe = tempe + s->bstar * s->cc5 * (sin(mm) - s->sinmao);
    templ = templ + s->t3cof * t3 + t4 * (s->t4cof + t * s->t5cof);
  }
  double nm = s->no_unkozai, em = s->ecco, inclm = s->inclo;
  if (s->method_deep) {
    double dndt;
    dspace(s, t, t, &em, &argpm, &inclm, &mm, &nodem, &dndt, &nm);
  }
  if (nm <= 0.0)
    return 2;
  double am = pow(XKE / nm, X2O3) * tempa * tempa;
  nm = XKE / pow(am, 1.5);
  em -= tempe;
  if (em >= 1.0 || em < -0.001)
    return 1;
  if (em < 1.0e-6)
    em = 1.0e-6;
  mm += s->no_unkozai * templ;
  double xlm = mm + argpm + nodem;
  nodem = fmod(nodem, TWOPI);
  argpm = fmod(argpm, TWOPI);
  xlm = fmod(xlm, TWOPI);
  mm = fmod(xlm - argpm - nodem, TWOPI);

  double sinim = sin(inclm), cosim = cos(inclm);
  double ep = em, xincp = inclm, argpp = argpm, nodep = nodem, mp = mm;
  double sinip = sinim, cosip = cosim;
  if (s->method_deep) {
    dpper(s, t, false, &ep, &xincp, &nodep, &argpp, &mp);
    if (xincp < 0.0) {
      xincp = -xincp;
      nodep += PI;
      argpp -= PI;
    }
    if (ep < 0.0 || ep > 1.0)
      return 3;
    sinip = sin(xincp);
    cosip = cos(xincp);
    s->aycof = -0.5 * J3OJ2 * sinip;
    if (fabs(cosip + 1.0) > 1.5e-12)
      s->xlcof = -0.25 * J3OJ2 * sinip * (3.0 + 5.0 * cosip) / (1.0 + cosip);
    else
      s->xlcof = -0.25 * J3OJ2 * sinip * (3.0 + 5.0 * cosip) / temp4;
  }
  /* long-period periodics */
  double axnl = ep * cos(argpp);
  double temp = 1.0 / (am * (1.0 - ep * ep));
  double aynl = ep * sin(argpp) + temp * s->aycof;
  double xl = mp + argpp + nodep + temp * s->xlcof * axnl;
  /* Kepler's equation */
  double u = fmod(xl - nodep, TWOPI);
  double eo1 = u, tem5 = 9999.9, sineo1 = 0.0, coseo1 = 0.0;
  for (int ktr = 1; fabs(tem5) >= 1.0e-12 && ktr <= 10; ktr++) {
    sineo1 = sin(eo1);
    coseo1 = cos(eo1);
    tem5 = 1.0 - coseo1 * axnl - sineo1 * aynl;
    tem5 = (u - aynl * coseo1 + axnl * sineo1 - eo1) / tem5;
    if (fabs(tem5) >= 0.95)
      tem5 = tem5 > 0.0 ? 0.95 : -0.95;
    eo1 += tem5;
  }
  /* short-period periodics */
  double ecose = axnl * coseo1 + aynl * sineo1;
  double esine = axnl * sineo1 - aynl * coseo1;
  double el2 = axnl * axnl + aynl * aynl;
  double pl = am * (1.0 - el2);
  if (pl < 0.0)
    return 4;
  double rl = am * (1.0 - ecose);
  double rdotl = sqrt(am) * esine / rl;
  double rvdotl = sqrt(pl) / rl;
  double betal = sqrt(1.0 - el2);
  temp = esine / (1.0 + betal);
  double sinu = am / rl * (sineo1 - aynl - axnl * temp);
  double cosu = am / rl * (coseo1 - axnl + aynl * temp);
  double su = atan2(sinu, cosu);
  double sin2u = (cosu + cosu) * sinu;
  double cos2u = 1.0 - 2.0 * sinu * sinu;
  temp = 1.0 / pl;
  double temp1 = 0.5 * J2 * temp;
  double temp2 = temp1 * temp;
  if (s->method_deep) {
    double cosisq = cosip * cosip;
    s->con41 = 3.0 * cosisq - 1.0;
    s->x1mth2 = 1.0 - cosisq;
    s->x7thm1 = 7.0 * cosisq - 1.0;
  }
  double mrt = rl * (1.0 - 1.5 * temp2 * betal * s->con41) + 0.5 * temp1 * s->x1mth2 * cos2u;
  su -= 0.25 * temp2 * s->x7thm1 * sin2u;
  double xnode = nodep + 1.5 * temp2 * cosip * sin2u;
  double xinc = xincp + 1.5 * temp2 * cosip * sinip * cos2u;
  double mvt = rdotl - nm * temp1 * s->x1mth2 * sin2u / XKE;
  double rvdot = rvdotl + nm * temp1 * (s->x1mth2 * cos2u + 1.5 * s->con41) / XKE;
  /* orientation vectors */
  double sinsu = sin(su), cossu = cos(su), snod = sin(xnode), cnod = cos(xnode);
  double sini = sin(xinc), cosi = cos(xinc);
  double xmx = -snod * cosi, xmy = cnod * cosi;
  double ux = xmx * sinsu + cnod * cossu, uy = xmy * sinsu + snod * cossu, uz = sini * sinsu;
  double vx = xmx * cossu - cnod * sinsu, vy = xmy * cossu - snod * sinsu, vz = sini * cossu;
  r[0] = mrt * ux * RE;
  r[1] = mrt * uy * RE;
  r[2] = mrt * uz * RE;
  v[0] = (mvt * ux + rvdot * vx) * vkmpersec;
  v[1] = (mvt * uy + rvdot * vy) * vkmpersec;
  v[2] = (mvt * uz + rvdot * vz) * vkmpersec;
  if (mrt < 1.0)
    return 6;
  return 0;
}
