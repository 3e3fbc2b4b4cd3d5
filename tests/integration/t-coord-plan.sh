#!/usr/bin/env bash
# Visibility windows and the handover plan: windows agree with an independent
# computation (Debian's python3-sgp4 plus look angles computed here) to a
# second; the plan obeys its rules (each move goes, lead time before loss of
# signal, to a satellite in view that stays in view longest); and a plan for a
# 4,400-satellite shell, 10 ground stations and 24 hours completes (its time
# is reported here and measured by bench/plan-scale, never asserted: these
# machines are shared).
set -euo pipefail
: "${FERRY_BUILD:?}"
C="$FERRY_BUILD/ferry-coord"
D=$(mktemp -d /tmp/ferry-plan-test.XXXXXX)
trap 'rm -rf "$D"' EXIT
n=0; check() { n=$((n + 1)); echo "ok $n - $*"; }
PY=/usr/bin/python3
if ! $PY -c 'import sgp4' 2>/dev/null; then
  echo "SKIP: python3-sgp4 is not installed: run scripts/setup" >&2
  [ -n "${CI:-}" ] && exit 1
  exit 77
fi
FROM=2026-11-21T00:00:00Z TO=2026-11-21T06:00:00Z
"$C" sat shell --planes 12 --per-plane 12 --altitude 550 --inclination 53 >"$D/shell.tle"
cat >"$D/gs.json" <<'JSON'
[{"name": "Munich", "lat": 48.14, "lon": 11.58, "alt_m": 520, "min_elevation": 20},
 {"name": "Santiago", "lat": -33.45, "lon": -70.67, "alt_m": 570, "min_elevation": 15}]
JSON
echo '[{"name": "redis", "station": "Munich", "lead_s": 90}, {"name": "web", "station": "Santiago", "lead_s": 30}]' >"$D/svc.json"
"$C" sat passes --tle "$D/shell.tle" --stations "$D/gs.json" --from $FROM --to $TO --step 20 --json >"$D/passes.json"
"$C" plan --tle "$D/shell.tle" --stations "$D/gs.json" --services "$D/svc.json" --from $FROM --to $TO --step 20 --json >"$D/plan.json"

$PY - "$D/shell.tle" "$D/gs.json" "$D/passes.json" <<'PYEOF'
# An independent computation of the windows: python3-sgp4 for the states,
# the Earth rotation and the station geometry written here.
import json, math, sys
from sgp4.api import Satrec, jday
lines = [l.rstrip("\n") for l in open(sys.argv[1]) if l.strip()]
stations = json.load(open(sys.argv[2]))
ours = json.load(open(sys.argv[3]))
jd0, fr0 = jday(2026, 11, 21, 0, 0, 0)
SPAN = 360.0  # minutes
def gmst(jd):
    t = (jd - 2451545.0) / 36525.0
    g = -6.2e-6 * t**3 + 0.093104 * t**2 + (876600.0 * 3600 + 8640184.812866) * t + 67310.54841
    return math.fmod(math.radians(g / 240.0), 2 * math.pi)
def site(lat, lon, h):
    a, f = 6378.137, 1 / 298.257223563
    e2 = f * (2 - f); la, lo = math.radians(lat), math.radians(lon)
    n = a / math.sqrt(1 - e2 * math.sin(la) ** 2)
    return ((n + h) * math.cos(la) * math.cos(lo), (n + h) * math.cos(la) * math.sin(lo),
            (n * (1 - e2) + h) * math.sin(la)), la, lo
def elevation(sat, st, m):
    e, r, v = sat.sgp4(jd0, fr0 + m / 1440.0)
    g = gmst(jd0 + fr0 + m / 1440.0)
    x = math.cos(g) * r[0] + math.sin(g) * r[1]; y = -math.sin(g) * r[0] + math.cos(g) * r[1]; z = r[2]
    (sx, sy, sz), la, lo = st
    d = (x - sx, y - sy, z - sz)
    up = (math.cos(la) * math.cos(lo), math.cos(la) * math.sin(lo), math.sin(la))
    return math.degrees(math.asin(sum(p * q for p, q in zip(d, up)) / math.dist((x, y, z), (sx, sy, sz))))
def crossing(sat, st, minel, a, b, rising):
    while b - a > 0.05 / 60:
        m = (a + b) / 2
        if (elevation(sat, st, m) >= minel) == rising: b = m
        else: a = m
    return b
mismatch = 0; compared = 0
for i in range(0, 3 * 40, 3):  # the first 40 satellites
    name = lines[i]; sat = Satrec.twoline2rv(lines[i + 1], lines[i + 2])
    for s in stations:
        st = site(s["lat"], s["lon"], s["alt_m"] / 1000.0); minel = s["min_elevation"]
        win = []; up = False; t = 0.0; step = 10 / 60.0
        while t <= SPAN + 1e-9:
            el = elevation(sat, st, t)
            if el >= minel and not up:
                up = True; aos = 0.0 if t == 0 else crossing(sat, st, minel, t - step, t, True)
            elif el < minel and up:
                up = False; win.append((aos, crossing(sat, st, minel, t - step, t, False)))
            t += step
        if up: win.append((aos, SPAN))
        mine = [(w["aos_min"], w["los_min"]) for w in ours if w["satellite"] == name and w["station"] == s["name"]]
        for a, l in win:
            compared += 1
            match = [m for m in mine if abs(m[0] - a) * 60 < 1.0 and abs(m[1] - l) * 60 < 1.0]
            if not match and (l - a) * 60 > 40:
                print(f"{name} over {s['name']}: window {a:.3f}-{l:.3f} min not found in {mine}")
                mismatch += 1
        for a, l in mine:
            if not any(abs(a - x) * 60 < 1.0 for x, _ in win):
                print(f"{name} over {s['name']}: extra window {a:.3f}-{l:.3f}"); mismatch += 1
if mismatch or compared < 20:
    sys.exit(f"{mismatch} mismatches in {compared} windows")
print(f"{compared} windows agree to within a second")
PYEOF
check "visibility windows agree with an independent computation (python3-sgp4) to a second"

$PY - "$D/passes.json" "$D/plan.json" "$D/svc.json" <<'PYEOF'
import json, sys
passes = json.load(open(sys.argv[1])); plan = json.load(open(sys.argv[2]))
svc = {s["name"]: s for s in json.load(open(sys.argv[3]))}
EPS = 0.01  # minutes
moves = 0
for name, s in svc.items():
    ws = [w for w in passes if w["station"] == s["station"]]
    hs = [h for h in plan if h["service"] == name]
    assert hs, f"no plan for {name}"
    lead = s["lead_s"] / 60.0
    for k, h in enumerate(hs):
        t = h["at_min"]
        inview = [w for w in ws if w["aos_min"] <= t + EPS and w["los_min"] > t]
        to = [w for w in inview if w["satellite"] == h["to"]]
        assert to, f"{name} at {h['at']}: {h['to']} is not in view"
        others = [w for w in inview if w["satellite"] != h["from"]]
        best = max(w["los_min"] for w in others)
        assert abs(to[0]["los_min"] - best) < EPS, f"{name} at {h['at']}: {h['to']} is not the one in view longest"
        if k > 0:
            moves += 1
            frm = [w for w in ws if w["satellite"] == h["from"] and w["aos_min"] <= t + EPS]
            los = max(w["los_min"] for w in frm)
            if h["gap_s"] == 0:
                assert t <= los, f"{name} at {h['at']}: moved after {h['from']} set"
                assert abs(t - (los - lead)) < EPS or t == hs[k - 1]["at_min"], f"{name} at {h['at']}: not lead time before LOS"
            assert t >= hs[k - 1]["at_min"]
print(f"{moves} moves obey the rules")
PYEOF
check "the plan moves each service lead time before loss of signal to the satellite in view longest"

# scale: a 4,400-satellite shell, 10 stations, 24 hours, 2 threads
"$C" sat shell --planes 80 --per-plane 55 >"$D/big.tle"
$PY - "$D/st10.json" "$D/svc10.json" <<'PYEOF'
import json, sys
st = [("Munich", 48.14, 11.58), ("Svalbard", 78.23, 15.39), ("Singapore", 1.35, 103.82),
      ("Santiago", -33.45, -70.67), ("Hawaii", 19.82, -155.47), ("Perth", -31.95, 115.86),
      ("Nairobi", -1.29, 36.82), ("Toronto", 43.65, -79.38), ("Tokyo", 35.68, 139.69), ("CapeTown", -33.92, 18.42)]
json.dump([{"name": n, "lat": la, "lon": lo, "alt_m": 0, "min_elevation": 25} for n, la, lo in st], open(sys.argv[1], "w"))
json.dump([{"name": "svc-" + n, "station": n, "lead_s": 60} for n, _, _ in st], open(sys.argv[2], "w"))
PYEOF
t0=$(date +%s.%N)
"$C" plan --tle "$D/big.tle" --stations "$D/st10.json" --services "$D/svc10.json" \
  --from 2026-11-21T00:00:00Z --to 2026-11-22T00:00:00Z --threads 2 --json >"$D/bigplan.json"
t1=$(date +%s.%N)
secs=$($PY -c "print(round($t1 - $t0, 2))")
moves=$(grep -c '"service"' "$D/bigplan.json")
echo "# 4400 satellites, 10 stations, 24 h: ${secs} s, $moves handovers"
[ "$moves" -gt 1000 ] || { echo "FAIL: only $moves handovers"; exit 1; }
check "plan for 4400 satellites, 10 stations, 24 h: $moves handovers in $(printf '%.1f' "$secs") s on 2 threads (time not asserted: see bench/plan-scale)"
echo "# all checks passed"
