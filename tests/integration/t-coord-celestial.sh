#!/usr/bin/env bash
# Celestial as the position source: the coordinator asks GET /gst/{station}
# which satellites the ground station reaches (connectedSats, host names
# ID.SHELL.celestial). While the service's satellite stays connected nothing
# moves; when it drops out, the service moves to the node of a connected one.
# The info API is served from files by Python's http.server on 127.0.0.1 in
# the coordinator's own network namespace, in the shape Celestial documents.
source "$(dirname "$0")/lib.sh"
need /usr/bin/python3
COORD_ADDR="$CLUSTER_NET.200"
CLUSTER_COORD="tcp://$COORD_ADDR:7000"
CLUSTER_SATS="101.0.celestial 102.0.celestial"
cluster_up 2
cluster_client gs "$COORD_ADDR"
mkdir -p "$T_DIR/cel/gst"
gst() { # connected satellite ids with delays: gst ID:DELAY...
  /usr/bin/python3 - "$T_DIR/cel/gst/GS" "$@" <<'PYEOF'
import json, sys
sats = [{"sat": {"sat": int(a.split(":")[0]), "shell": 0}, "delay": float(a.split(":")[1]), "distance": 1000.0}
        for a in sys.argv[2:]]
json.dump({"connectedSats": sats}, open(sys.argv[1] + ".tmp", "w"))
PYEOF
  mv "$T_DIR/cel/gst/GS.tmp" "$T_DIR/cel/gst/GS"
}
gst 101:5
nsenter --net="/var/run/netns/${T_ID}-gs" /usr/bin/python3 -m http.server 8088 --bind 127.0.0.1 \
  --directory "$T_DIR/cel" >"$T_DIR/celestial.log" 2>&1 &
T_PIDS+=($!)
echo '[{"name": "svc", "station": "GS"}]' >"$T_DIR/svc.json"
make_rootfs
f a1 image import "$T_DIR/busybox.tar" --name busybox >/dev/null
f a1 run -d --name svc --ip "$CLUSTER_NET.70" -v st:/data busybox sh -c \
  'i=0; while true; do i=$((i+1)); echo $i > /data/n.new; mv /data/n.new /data/n; sleep 0.1; done' >/dev/null
nsenter --net="/var/run/netns/${T_ID}-gs" "$FERRY_BUILD/ferry-coord" serve --db "$T_DIR/coord.db" \
  --listen "$COORD_ADDR:7000" --socket "$T_DIR/coord.sock" --token-file "$T_DIR/token" \
  --celestial http://127.0.0.1:8088 --services "$T_DIR/svc.json" >>"$T_DIR/coord.log" 2>&1 &
T_PIDS+=($!)
capi() { curl -s --unix-socket "$T_DIR/coord.sock" "http://localhost$1"; }
dests() { capi /v1/migrations | grep -o '"dest":"[a-z0-9]*","status":"succeeded"' | cut -d'"' -f4 | tr '\n' ' '; }
for _ in $(seq 1 50); do [ "$(timeout 10 "$FERRY_BIN" --coord "unix://$T_DIR/coord.sock" node ls 2>/dev/null | grep -c ' up ')" = 2 ] && break; sleep 0.2; done
sleep 2
[ -z "$(dests)" ] || fail "moved while its satellite is connected: $(dests)"
gst 101:9 102:3
sleep 2
[ -z "$(dests)" ] || fail "moved although its satellite is still connected: $(dests)"
check "while 101.0.celestial stays connected, svc stays on a1"
gst 102:3
for _ in $(seq 1 100); do [ "$(dests)" = "a2 " ] && break; sleep 0.2; done
[ "$(dests)" = "a2 " ] || fail "not moved to a2: $(dests) $(tail -5 "$T_DIR/coord.log")"
f a2 ps | grep -q "svc .*running" || fail "svc not on a2"
grep -q "Celestial no longer connects its satellite" "$T_DIR/coord.log" || fail "policy log"
grep -q "GET /gst/GS" "$T_DIR/celestial.log" || fail "Celestial was not asked"
[ "$(f a2 exec svc cat /data/n)" -gt 20 ] || fail "state lost"
check "when Celestial stops listing 101.0.celestial, svc moves to a2 (102.0.celestial) with its state"
echo "# all checks passed"
