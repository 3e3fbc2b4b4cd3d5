#!/usr/bin/env bash
# ferry-coord: agents register and heartbeat; a node that stops is marked
# down and never chosen; migrations go through the coordinator in its own form
# and both seed forms, with every phase recorded; state survives a restart
# (SQLite, or with COORD_STORE=etcd a three-member etcd cluster), and a
# migration in flight during a restart is resolved by asking the agents; a
# wrong token is refused.
source "$(dirname "$0")/lib.sh"
STORE=${COORD_STORE:-sqlite}
COORD_ADDR="$CLUSTER_NET.200"
CLUSTER_COORD="tcp://$COORD_ADDR:7000"   # cluster_up registers the agents with --coord
# the coordinator host comes up with the cluster's switch
cluster_up 3
cluster_client gs "$COORD_ADDR"   # the coordinator's host, on the cluster's segment
STORE_ARGS=(--db "$T_DIR/coord.db")
if [ "$STORE" = etcd ]; then
  etcd_up gs 3
  STORE_ARGS=(--etcd "$ETCD_URLS" --lease-ttl 2)
fi
start_coord() {
  nsenter --net="/var/run/netns/${T_ID}-gs" "$FERRY_BUILD/ferry-coord" serve "${STORE_ARGS[@]}" \
    --listen "$COORD_ADDR:7000" --socket "$T_DIR/coord.sock" --token-file "$T_DIR/token" \
    --heartbeat-timeout 3 >>"$T_DIR/coord.log" 2>&1 &
  COORD_PID=$!; T_PIDS+=("$COORD_PID")
  for _ in $(seq 1 50); do [ -S "$T_DIR/coord.sock" ] && break; sleep 0.1; done
}
start_coord
co() { timeout 120 "$FERRY_BIN" --coord "unix://$T_DIR/coord.sock" "$@"; }
capi() { curl -s --unix-socket "$T_DIR/coord.sock" -X "$1" ${3:+-d "$3"} "http://localhost$2"; }
for _ in $(seq 1 50); do [ "$(co node ls | grep -c ' up ')" = 3 ] && break; sleep 0.2; done
# a coordinator moves nothing before it leads (etcd: an election first)
for _ in $(seq 1 50); do capi GET /metrics | grep -q "^ferry_coord_leader 1" && break; sleep 0.2; done
co node ls
[ "$(co node ls | grep -c ' up ')" = 3 ] || fail "3 nodes not up: $(co node ls)"
check "three agents registered with the coordinator and are up"

code=$(in_ns gs curl -s -o /dev/null -w '%{http_code}' -H "Authorization: Bearer wrong" "http://$COORD_ADDR:7000/v1/nodes")
[ "$code" = 401 ] || fail "wrong token: $code"
check "the coordinator's TCP API refuses a wrong token"

make_rootfs
f a1 image import "$T_DIR/busybox.tar" --name busybox >/dev/null
f a1 run -d --name svc --ip "$CLUSTER_NET.50" -v data:/data busybox sh -c \
  'i=0; while true; do i=$((i+1)); echo $i > /data/n.new; mv /data/n.new /data/n; sleep 0.1; done' >/dev/null
co migrate svc --to a2 >"$T_DIR/m1.out" || fail "coord migrate: $(cat "$T_DIR/m1.out")"
grep -q "Migrated svc from a1 to a2" "$T_DIR/m1.out" || fail "$(cat "$T_DIR/m1.out")"
f a2 ps | grep -q "svc .*running" || fail "svc not on a2"
id=$(capi GET /v1/migrations | grep -o '"id":"[0-9a-f]*"' | head -1 | cut -d'"' -f4)
phases=$(capi GET "/v1/migrations/$id" | grep -o '"phase":"[a-z]*"' | cut -d'"' -f4 | tr '\n' ' ')
for p in requested started precopy dump restore succeeded; do
  echo "$phases" | grep -qw "$p" || fail "phase $p not recorded: $phases"
done
check "ferry --coord migrate (origin found by asking the nodes): a1 -> a2, phases recorded: $phases"

out=$(capi POST /migrate '{"deployment": "svc", "originNode": "a2", "destNode": "a3"}')
echo "$out" | grep -q '"status":"success"' || fail "seed form 1: $out"
f a3 ps | grep -q "svc .*running" || fail "svc not on a3"
# the counter before the last move: after it, it goes on from there (no
# wall-clock bound: a fast machine moves it in well under a second)
n0=0
for _ in $(seq 1 50); do n0=$(f a3 exec svc cat /data/n 2>/dev/null) && [ "${n0:-0}" -gt 0 ] && break; sleep 0.1; done
out=$(capi POST /migrate "{\"name\": \"svc\", \"namespace\": \"default\", \"destinationUrl\": \"http://$CLUSTER_NET.241:9000\", \"keep\": false, \"redirect\": false}")
echo "$out" | grep -q '"status":"success"' || fail "seed form 2: $out"
f a1 ps | grep -q "svc .*running" || fail "svc not back on a1"
# at once it reads at least what it read before the move (a fresh start
# would read 1 or so), and then it keeps counting
n1=$(f a1 exec svc cat /data/n 2>&1) || true
[ "${n1:-0}" -ge "$n0" ] 2>/dev/null && [ "$n0" -gt 0 ] ||
  fail "state lost: the counter reads '$n1' on a1 after the move, '$n0' on a3 before it"
n=$n1
for _ in $(seq 1 100); do  # bounded: 10 s
  n=$(f a1 exec svc cat /data/n 2>/dev/null) || n=0
  [ "${n:-0}" -gt "$n1" ] 2>/dev/null && break
  sleep 0.1
done
[ "${n:-0}" -gt "$n1" ] 2>/dev/null || fail "the counter stopped at '$n1' on a1"
check "seed forms {deployment, originNode, destNode} and {name, namespace, destinationUrl}: a2 -> a3 -> a1"

out=$(capi POST /register '{"hostname": "seed-node", "ip": "198.18.100.249", "port": 8000}')
echo "$out" | grep -q '"status":"success"' || fail "/register: $out"
co node ls | grep -q "seed-node .*tcp://198.18.100.249:8000" || fail "seed node not listed"
check "seed POST /register adds a node"

# a holder of the cluster token cannot speak for another node: each name is
# bound to the secret its first registration got
out=$(capi POST /v1/nodes '{"name": "a2", "url": "tcp://198.18.100.250:9000"}')
echo "$out" | grep -q "bound to the secret" || fail "re-registering a2 elsewhere was not refused: $out"
out=$(capi POST /register '{"hostname": "seed-node", "ip": "198.18.100.250", "port": 8000}')
echo "$out" | grep -q "bound to the secret" || fail "re-registering seed-node elsewhere was not refused: $out"
co node ls | grep -q "^a2 .*tcp://$CLUSTER_NET.242:9000" || fail "a2's address changed: $(co node ls)"
co node ls | grep -q "seed-node .*tcp://198.18.100.249:8000" || fail "seed-node's address changed: $(co node ls)"
capi GET /v1/nodes | grep -q "secret" && fail "the node list shows secrets: $(capi GET /v1/nodes)"
in_ns gs "$FERRY_BUILD/ferry-coord" node forget "${STORE_ARGS[@]:0:2}" seed-node >/dev/null || fail "node forget"
out=$(capi POST /register '{"hostname": "seed-node", "ip": "198.18.100.250", "port": 8000}')
echo "$out" | grep -q '"status":"success"' || fail "/register after node forget: $out"
check "a token holder cannot re-register another node at another URL (403, nothing changes); ferry-coord node forget frees a name"

n0=$(capi GET /v1/nodes | grep -o '"name"' | wc -l)
for body in '{"hostname": "bad1", "ip": "198.18.100.9", "port": 99999999999}' \
            '{"hostname": "bad2", "ip": "user:pw@198.18.100.9", "port": 8000}' \
            '{"name": "bad3", "url": "tcp://198.18.100.9:9000/v1/containers?x=1"}' \
            '{"name": "bad4", "url": "tcp://198.18.100.9"}' \
            '{"name": "bad5", "url": "http://user:pw@198.18.100.9:9000"}'; do
  out=$(capi POST /register "$body")
  echo "$out" | grep -q '"status":"error"' || fail "a malformed registration was taken: $body -> $out"
done
[ "$(capi GET /v1/nodes | grep -o '"name"' | wc -l)" = "$n0" ] || fail "a malformed registration added a node: $(co node ls)"
check "registrations with a port out of range, user info, a path or query, or tcp:// without a port: refused, nothing added"

# a node that stops heartbeating is down and never chosen
stop_agent a3 KILL
for _ in $(seq 1 40); do
  # forged heartbeats (the token, not a3's secret) do not keep it up
  out=$(capi POST /v1/nodes/a3/heartbeat)
  echo "$out" | grep -q "bound to the secret" || fail "a forged heartbeat of a3 was not refused: $out"
  co node ls | grep -q "^a3 .*down" && break
  sleep 0.2
done
co node ls | grep -q "^a3 .*down" || fail "a3 not marked down: $(co node ls)"
expect_fail "destination node \"a3\" is down" co migrate svc --to a3
f a1 ps | grep -q "svc .*running" || fail "svc moved"
check "a killed node is marked down (forged heartbeats refused) and refused as a destination"

# the coordinator restarts: nothing lost; a migration in flight is resolved
n_before=$(capi GET /v1/migrations | grep -o '"id"' | wc -l)
stop_agent a2
start_agent a2 FERRY_FAULT=incoming-restore:delay=3000
out=$(capi POST /v1/migrations '{"container": "svc", "from": "a1", "to": "a2"}')
mid=$(echo "$out" | grep -o '"id":"[0-9a-f]*"' | cut -d'"' -f4)
[ -n "$mid" ] || fail "async migration: $out"
sleep 1
# the kill must find it in flight (the target holds its restore for 3 s)
capi GET "/v1/migrations/$mid" | grep -q '"status":"running"' ||
  fail "the migration was not in flight when the coordinator was killed: $(capi GET "/v1/migrations/$mid")"
kill -9 "$COORD_PID"; wait "$COORD_PID" 2>/dev/null || true
rm -f "$T_DIR/coord.sock"
start_coord
# etcd: the new process leads once the old one's lease has expired
for _ in $(seq 1 50); do capi GET /metrics | grep -q "^ferry_coord_leader 1" && break; sleep 0.2; done
n_after=$(capi GET /v1/migrations | grep -o '"id"' | wc -l)
[ "$n_after" = $((n_before + 1)) ] || fail "migrations lost in the restart: $n_before -> $n_after"
co node ls | grep -q "^a1 " || fail "nodes lost in the restart"
for _ in $(seq 1 100); do capi GET "/v1/migrations/$mid" | grep -q '"status":"running"' || break; sleep 0.2; done
capi GET "/v1/migrations/$mid" | grep -q '"status":"succeeded"' || fail "in-flight migration not resolved: $(capi GET /v1/migrations/$mid)"
f a2 ps | grep -q "svc .*running" || fail "svc not on a2 after the resolved migration"
check "coordinator restart: nodes and migrations kept ($STORE); the in-flight migration resolved as succeeded"
echo "# all checks passed"
