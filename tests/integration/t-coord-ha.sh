#!/usr/bin/env bash
# ferry-coord highly available: three coordinators share a three-member etcd
# cluster; one leads, the others hand moves to it. The leader is killed (-9)
# in each phase of a move, and between recording a move and asking its agent;
# an etcd member is killed; the leader is cut off from etcd (its proxies to
# etcd stopped) while it still reaches the agents. Every time: the move ends
# exactly once (one record, one final status, the agents asked under one id),
# exactly one running copy of the service, its counter never goes back, and
# never more than one coordinator says it leads. An agent refuses a command
# of an older term than one it has heard.
source "$(dirname "$0")/lib.sh"
need etcd socat curl
COORD_ADDR="$CLUSTER_NET.200"
CLUSTER_COORD="tcp://$COORD_ADDR:7001,tcp://$COORD_ADDR:7002,tcp://$COORD_ADDR:7003"
cluster_up 3
cluster_client gs "$COORD_ADDR"
etcd_up gs 3
check "three agents, a three-member etcd cluster"

for k in 1 2 3; do ha_proxy_up "$k"; ha_start "$k"; done
L=$(ha_wait_leader)
for _ in $(seq 1 50); do [ "$(ha_api 1 GET /v1/nodes | grep -o '"status":"up"' | wc -l)" = 3 ] && break; sleep 0.2; done
[ "$(ha_api 1 GET /v1/nodes | grep -o '"status":"up"' | wc -l)" = 3 ] || fail "nodes: $(ha_api 1 GET /v1/nodes)"
for k in 1 2 3; do
  [ "$(ha_api "$k" GET /v1/nodes | grep -o '"status":"up"' | wc -l)" = 3 ] || fail "coordinator $k sees: $(ha_api "$k" GET /v1/nodes)"
done
check "three coordinators, one leader (coordinator $L), every one sees the three nodes"

make_rootfs
f a1 image import "$T_DIR/busybox.tar" --name busybox >/dev/null
f a1 run -d --name svc --ip "$CLUSTER_NET.50" -v data:/data busybox sh -c \
  'i=$(cat /data/n 2>/dev/null || echo 0); while true; do i=$((i+1)); echo $i > /data/n.new; mv /data/n.new /data/n; sleep 0.1; done' >/dev/null
HERE=a1
LAST=0
# the agents hold each phase a while, so that a kill lands inside it
for h in a1 a2 a3; do
  host_restart "$h" FERRY_FAULT=incoming-put:delay=1500,incoming-restore:delay=1500,incoming-commit:delay=1500
done
for _ in $(seq 1 50); do [ "$(ha_api 1 GET /v1/nodes | grep -o '"status":"up"' | wc -l)" = 3 ] && break; sleep 0.2; done

# exactly one running copy, where the last move put it, and its counter on
one_copy() { # WHERE
  local h n=0
  for h in a1 a2 a3; do f "$h" ps 2>/dev/null | grep -q "svc .*running" && n=$((n + 1)); done
  [ "$n" = 1 ] || fail "$n running copies of svc: a1: $(f a1 ps | grep svc) a2: $(f a2 ps | grep svc) a3: $(f a3 ps | grep svc)"
  f "$1" ps | grep -q "svc .*running" || fail "svc does not run on $1"
  local v=0
  for _ in $(seq 1 50); do v=$(f "$1" exec svc cat /data/n 2>/dev/null) && [ "${v:-0}" -gt "$LAST" ] && break; sleep 0.1; done
  [ "${v:-0}" -gt "$LAST" ] 2>/dev/null || fail "the counter went back or stopped: $LAST before, '$v' on $1"
  LAST=$v
}
next_host() { case $HERE in a1) echo a2 ;; a2) echo a3 ;; a3) echo a1 ;; esac; }
follower() { local k; for k in 1 2 3; do [ "$k" != "$1" ] && { echo "$k"; return; }; done; }
# ends: the move's record, read on coordinator K, once it is no longer running
wait_end() { # K ID
  local i
  for i in $(seq 1 300); do
    ha_api "$1" GET "/v1/migrations/$2" | grep -q '"status":"running"' || break
    ha_leaders >/dev/null
    sleep 0.2
  done
  ha_api "$1" GET "/v1/migrations/$2"
}
phases_of() { ha_api "$1" GET "/v1/migrations/$2" | grep -o '"phase":"[a-z]*","at"' | cut -d'"' -f4 | tr '\n' ' '; }

# a move requested of a follower, the leader killed once the move reached PHASE
move_killing_leader_at() { # PHASE
  local phase=$1 to; to=$(next_host)
  local F; F=$(follower "$L")
  local out id
  out=$(ha_api "$F" POST /v1/migrations "{\"container\": \"svc\", \"from\": \"$HERE\", \"to\": \"$to\"}")
  id=$(echo "$out" | grep -o '"id":"[0-9a-f]*"' | cut -d'"' -f4)
  [ -n "$id" ] || fail "move through follower $F: $out"
  local seen=""
  for _ in $(seq 1 150); do
    phases_of "$F" "$id" | grep -qw "$phase" && { seen=1; break; }
    ha_api "$F" GET "/v1/migrations/$id" | grep -q '"status":"running"' || break
    sleep 0.1
  done
  [ -n "$seen" ] || fail "move $id never reached $phase while running: $(ha_api "$F" GET "/v1/migrations/$id")"
  ha_kill "$L"
  local old=$L
  L=$(ha_wait_leader "$old")
  local rec; rec=$(wait_end "$F" "$id")
  echo "$rec" | grep -q '"status":"succeeded"' || fail "move $id (leader killed at $phase): $rec"
  [ "$(ha_api "$F" GET /v1/migrations | grep -o "\"id\":\"$id\"" | wc -l)" = 1 ] || fail "move $id recorded more than once"
  # the origin agent ran it once, under the coordinator's id
  curl -s -m 5 --unix-socket "$T_DIR/$HERE/ferryd.sock" "http://localhost/v1/migrations/$id" |
    grep -q '"status":"succeeded"' || fail "origin $HERE does not know move $id as succeeded"
  HERE=$to
  one_copy "$HERE"
  ha_start "$old"
  check "leader $old killed in phase $phase of move $id: coordinator $L took over, the move succeeded once, one copy on $HERE (counter $LAST)"
}
move_killing_leader_at started
move_killing_leader_at precopy
move_killing_leader_at restore
move_killing_leader_at commit

# the leader dies after recording a move and before any agent heard of it:
# its successor, whose term the origin has then seen, asks again under the
# same id (the late request of the old leader would be refused)
for k in 1 2 3; do ha_kill "$k"; done
for k in 1 2 3; do ha_start "$k" FERRY_FAULT=coord-migration-start:exit; done
L=$(ha_wait_leader)
to=$(next_host)
# (the leader may die before it answers: the move's id is then read from
# the store, where it was recorded running)
out=$(ha_api "$L" POST /v1/migrations "{\"container\": \"svc\", \"from\": \"$HERE\", \"to\": \"$to\"}") || true
id=$(echo "$out" | { grep -o '"id":"[0-9a-f]*"' || true; } | cut -d'"' -f4)
old=$L
v="COORD_PID_$old"
for _ in $(seq 1 50); do kill -0 "${!v}" 2>/dev/null || break; sleep 0.1; done
kill -0 "${!v}" 2>/dev/null && fail "the fault point did not end leader $old"
[ -n "$id" ] || id=$(ha_api "$(follower "$old")" GET /v1/migrations | { grep -o '"id":"[0-9a-f]*"[^}]*"status":"running"' || true; } | head -1 | cut -d'"' -f4)
[ -n "$id" ] || fail "move: '$out'; none recorded running: $(ha_api "$(follower "$old")" GET /v1/migrations)"
L=$(ha_wait_leader "$old")
rec=$(wait_end "$L" "$id")
echo "$rec" | grep -q '"status":"succeeded"' || fail "move $id (leader died before asking the agent): $rec"
grep -q "migration $id: never confirmed" "$T_DIR/c$L.log" || fail "coordinator $L did not start $id again: $(tail -n 5 "$T_DIR/c$L.log")"
HERE=$to
one_copy "$HERE"
for k in 1 2 3; do ha_kill "$k"; done
for k in 1 2 3; do ha_start "$k"; done
L=$(ha_wait_leader)
check "leader $old died between recording move $id and asking its agent: the next leader started it under the same id; one copy on $HERE"

# fencing: an agent that has heard the current term refuses an older one
term=$(ha_api "$L" GET /metrics | awk '/^ferry_coord_term /{print $2}')
[ "${term:-0}" -gt 1 ] 2>/dev/null || fail "leader's term: '$term'"
tok=$(cat "$T_DIR/token")
code=$(in_ns gs curl -s -o "$T_DIR/fence.out" -w '%{http_code}' -H "Authorization: Bearer $tok" \
  -H "X-Ferry-Term: $term" "http://$CLUSTER_NET.241:9000/v1/containers")
[ "$code" = 200 ] || fail "the current term $term refused: $code $(cat "$T_DIR/fence.out")"
code=$(in_ns gs curl -s -o "$T_DIR/fence.out" -w '%{http_code}' -X POST -H "Authorization: Bearer $tok" \
  -H "X-Ferry-Term: $((term - 1))" -d "{\"to\": \"tcp://$CLUSTER_NET.242:9000\"}" \
  "http://$CLUSTER_NET.241:9000/v1/containers/svc/migrate")
[ "$code" = 409 ] && grep -q "deposed leader" "$T_DIR/fence.out" || fail "an older term was not refused: $code $(cat "$T_DIR/fence.out")"
one_copy "$HERE"
check "an agent refuses a command of term $((term - 1)) once it has heard term $term (409), nothing moves"

# an etcd member dies: the cluster keeps its quorum, moves go on
kill -9 "$ETCD_PID_e1"; wait "$ETCD_PID_e1" 2>/dev/null || true
L=$(ha_wait_leader)
to=$(next_host)
out=$(ha_api "$(follower "$L")" POST "/v1/migrations?wait=1" "{\"container\": \"svc\", \"from\": \"$HERE\", \"to\": \"$to\"}")
echo "$out" | grep -q '"status":"succeeded"' || fail "move with an etcd member down: $out"
HERE=$to
one_copy "$HERE"
etcd_start gs 1 "e1=http://127.0.0.1:23801,e2=http://127.0.0.1:23802,e3=http://127.0.0.1:23803" existing
etcd_wait gs 1
check "etcd member e1 killed: a move through a follower succeeded; one copy on $HERE"

# the leader is cut off from etcd (it still reaches the agents): it steps
# down, another leads, moves go on; back in touch, it follows
old=$L
ha_proxy_down "$old"
L=$(ha_wait_leader "$old")
for _ in $(seq 1 50); do ha_api "$old" GET /metrics | grep -q "^ferry_coord_leader 0" && break; sleep 0.2; done
ha_api "$old" GET /metrics | grep -q "^ferry_coord_leader 0" || fail "cut-off coordinator $old still says it leads"
to=$(next_host)
out=$(ha_api "$L" POST "/v1/migrations?wait=1" "{\"container\": \"svc\", \"from\": \"$HERE\", \"to\": \"$to\"}")
echo "$out" | grep -q '"status":"succeeded"' || fail "move under the new leader: $out"
HERE=$to
one_copy "$HERE"
ha_proxy_up "$old"
for _ in $(seq 1 50); do ha_api "$old" GET /v1/migrations | grep -q "$(echo "$out" | grep -o '"id":"[0-9a-f]*"' | head -1)" && break; sleep 0.2; done
[ "$(ha_leaders)" = "$L" ] || fail "leadership changed when $old came back: $(ha_leaders)"
check "leader $old cut off from etcd: it stepped down, coordinator $L leads and moved svc to $HERE; back in touch, $old follows"

n_run=$(ha_api "$L" GET /v1/migrations | { grep -o '"status":"running"' || true; } | wc -l)
[ "$n_run" = 0 ] || fail "moves still recorded as running: $(ha_api "$L" GET /v1/migrations)"
echo "# all checks passed"
