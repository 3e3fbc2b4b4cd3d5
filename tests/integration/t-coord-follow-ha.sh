#!/usr/bin/env bash
# The satellite-visibility policy under a leader's death: three coordinators
# on a three-member etcd follow one service over four "satellite" hosts (the
# plane of t-coord-follow: plan SAT-000-003 -> SAT-000-001 -> SAT-000-000,
# time 15 times faster), all with one simulated clock (--sim-anchor). The
# leader is killed (-9) while the policy's first handover (a4 -> a2) is in
# flight. Checked: another coordinator leads and finishes that move once; the
# next handover (a2 -> a1) is decided by the new leader before SAT-000-001
# sets; the moves are exactly a2, a1 (none doubled); one running copy, its
# counter never going back.
source "$(dirname "$0")/lib.sh"
need etcd socat curl
follow_plane
COORD_ADDR="$CLUSTER_NET.200"
CLUSTER_COORD="tcp://$COORD_ADDR:7001,tcp://$COORD_ADDR:7002,tcp://$COORD_ADDR:7003"
CLUSTER_SATS="SAT-000-000 SAT-000-001 SAT-000-002 SAT-000-003"   # a1..a4
cluster_up 4
cluster_client gs "$COORD_ADDR"
etcd_up gs 3
# the first handover's restore waits 1.5 s on the target, so that the kill
# lands while it is in flight
for h in a1 a2 a3 a4; do host_restart "$h" FERRY_FAULT=incoming-put:delay=1500; done
follow_service
check "three coordinators' etcd up; svc runs on a4 (SAT-000-003, the first in view)"

# the simulated clock reads T0 at ANCHOR on every coordinator, also on one
# started later
ANCHOR=$(date -u +%Y-%m-%dT%H:%M:%SZ)
HA_COORD_ARGS=(--tle "$T_DIR/sats.tle" --stations "$T_DIR/gs.json" --services "$T_DIR/svc.json"
  --time-scale 15 --sim-start "$T0" --sim-anchor "$ANCHOR")
for k in 1 2 3; do ha_proxy_up "$k"; ha_start "$k"; done
L=$(ha_wait_leader)
for _ in $(seq 1 50); do [ "$(ha_api "$L" GET /v1/nodes | grep -o '"status":"up"' | wc -l)" = 4 ] && break; sleep 0.2; done
[ "$(ha_api "$L" GET /v1/nodes | grep -o '"status":"up"' | wc -l)" = 4 ] || fail "nodes: $(ha_api "$L" GET /v1/nodes)"
check "coordinator $L leads, four nodes up"

# the first handover in flight: kill its leader (bounded: 60 s real, the
# handover is due at 6:10 simulated, 25 s after the anchor)
id=""
for _ in $(seq 1 600); do
  id=$(ha_api "$L" GET /v1/migrations | { grep -o '"id":"[0-9a-f]*"[^}]*"status":"running"' || true; } | head -1 | cut -d'"' -f4)
  [ -n "$id" ] && break
  sleep 0.1
done
[ -n "$id" ] || fail "no handover in flight: $(ha_api "$L" GET /v1/migrations)"
ha_api "$L" GET "/v1/migrations/$id" | grep -q '"dest":"a2"' || fail "first handover not to a2: $(ha_api "$L" GET "/v1/migrations/$id")"
grep -q "service svc: a4 -> a2" "$T_DIR/c$L.log" || fail "the leader's policy did not start $id"
old=$L
ha_kill "$old"
L=$(ha_wait_leader "$old")
check "leader $old killed during the policy's handover a4 -> a2 ($id); coordinator $L leads"

# that move ends once, succeeded; the next handover comes from the new leader
for _ in $(seq 1 300); do
  ha_api "$L" GET "/v1/migrations/$id" | grep -q '"status":"running"' || break
  sleep 0.2
done
ha_api "$L" GET "/v1/migrations/$id" | grep -q '"status":"succeeded"' || fail "handover $id: $(ha_api "$L" GET "/v1/migrations/$id")"
f a2 ps | grep -q "svc .*running" || fail "svc not on a2"
ha_start "$old"
LAST=0
counter() { local n1 n2; n1=$(f "$1" exec svc cat /data/n); sleep 0.5; n2=$(f "$1" exec svc cat /data/n)
  [ "$n2" -gt "$n1" ] && [ "$n1" -gt "${LAST:-0}" ] || fail "state lost or stopped on $1: ${LAST:-0} -> $n1 -> $n2"
  LAST=$n2; }
counter a2
check "handover $id finished once under coordinator $L: svc on a2, counter at $LAST; coordinator $old back as a follower"

dests() { ha_api "$L" GET /v1/migrations | { grep -o '"dest":"[a-z0-9]*","status":"succeeded"' || true; } | cut -d'"' -f4 | tr '\n' ' '; }
# (bounded: 60 s real; due at 11:09 simulated, 45 s after the anchor)
for _ in $(seq 1 300); do [ "$(dests)" = "a2 a1 " ] && break; ha_leaders >/dev/null; sleep 0.2; done
[ "$(dests)" = "a2 a1 " ] || fail "moves: '$(dests)', expected 'a2 a1 ': $(ha_api "$L" GET /v1/migrations)"
line=$(grep "service svc: a2 -> a1 at" "$T_DIR/c$L.log") || fail "coordinator $L's policy did not move svc a2 -> a1: $(grep policy "$T_DIR"/c*.log)"
at=$(echo "$line" | grep -o 'at [0-9T:-]*' | head -1 | cut -d' ' -f2)
los=$(echo "$PLAN_JSON" | /usr/bin/python3 -c 'import json,sys; print([h["to_until"] for h in json.load(sys.stdin) if h["to"] == "SAT-000-001"][0][:19])')
[[ "$at" < "$los" ]] || fail "the handover a2 -> a1 came at $at (simulated), after SAT-000-001 set at $los"
f a1 ps | grep -q "svc .*running" || fail "svc not on a1"
n=0
for h in a1 a2 a3 a4; do f "$h" ps 2>/dev/null | grep -q "svc .*running" && n=$((n + 1)); done
[ "$n" = 1 ] || fail "$n running copies of svc"
counter a1
n_run=$(ha_api "$L" GET /v1/migrations | { grep -o '"status":"running"' || true; } | wc -l)
[ "$n_run" = 0 ] || fail "moves still running: $(ha_api "$L" GET /v1/migrations)"
check "the next handover a2 -> a1 decided by coordinator $L at $at (simulated), before SAT-000-001 set ($los); moves a2 a1, one copy, counter at $LAST"
echo "# all checks passed"
