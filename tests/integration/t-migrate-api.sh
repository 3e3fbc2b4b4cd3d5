#!/usr/bin/env bash
# The seeds' contract and the remote forms: the ground-station server's calls
# (/health, /set_redis, /get_redis, /start_migration pulling from the source,
# /stop_container, /start_container, /remove_container, /remove_volume),
# `ferry migrate --from URL --to URL` driving two remote agents, and agents
# speaking HTTPS, verified against a CA, with a wrong CA refused.
source "$(dirname "$0")/lib.sh"
need curl openssl redis-cli
cluster_up 2
cluster_client c1 "$CLUSTER_NET.250"
"$(dirname "$0")/../../scripts/mkrootfs" "$T_DIR/redis.tar" --redis
f a1 image import "$T_DIR/redis.tar" --name redis:alpine >/dev/null
R="$CLUSTER_NET.40"
f a1 run -d --name redis --ip "$R" -v rdata:/data redis:alpine redis-server --protected-mode no --save '' >/dev/null
for _ in $(seq 1 50); do in_ns c1 redis-cli -h "$R" ping >/dev/null 2>&1 && break; sleep 0.1; done
TOK=$(cat "$T_DIR/token")
A1="http://$CLUSTER_NET.241:9000" A2="http://$CLUSTER_NET.242:9000"
api() { # METHOD URL [JSON]
  in_ns c1 curl -s -X "$1" -H "Authorization: Bearer $TOK" -H 'Content-Type: application/json' \
    ${3:+-d "$3"} "$2"
}

# Two agents on one segment and subnet give new containers different
# addresses: a2 asks the segment before it gives one out.
"$(dirname "$0")/../../scripts/mkrootfs" "$T_DIR/busybox.tar" --add "$FERRY_BUILD/tests/echo-server"
f a1 image import "$T_DIR/busybox.tar" --name busybox >/dev/null
f a2 image import "$T_DIR/busybox.tar" --name busybox >/dev/null
f a1 run -d --name auto1 busybox /bin/echo-server 7000 >/dev/null
f a2 run -d --name auto2 busybox /bin/echo-server 7000 >/dev/null
ip1=$(f a1 --json inspect auto1 | sed -n 's/.*"ip": "\([0-9.]*\)".*/\1/p' | head -n1)
ip2=$(f a2 --json inspect auto2 | sed -n 's/.*"ip": "\([0-9.]*\)".*/\1/p' | head -n1)
[ -n "$ip1" ] && [ -n "$ip2" ] && [ "$ip1" != "$ip2" ] || fail "two agents on one segment gave $ip1 and $ip2"
grep -q "address $ip1 answers on the segment" "$T_DIR/a2/ferryd.log" || fail "a2 did not find $ip1 taken"
for a in "$ip1" "$ip2"; do
  res=$(in_ns c1 "$FERRY_BUILD/tests/tcp-client" "$a" 7000 200 10)
  echo "$res" | grep -q '^ok' || fail "$a does not answer: $res"
done
f a1 rm -f auto1 >/dev/null; f a2 rm -f auto2 >/dev/null
check "two agents sharing a segment and a subnet give new containers different addresses ($ip1, $ip2), both reachable"

[ "$(in_ns c1 curl -s "$A1/health")" = '{"status":"UP"}' ] || fail "health without token"
out=$(api POST "$A1/set_redis" '{"key": "sat", "value": "ISS-25544"}')
echo "$out" | grep -q '"status":"success"' || fail "set_redis: $out"
out=$(api GET "$A1/get_redis/sat")
echo "$out" | grep -q '"value":"ISS-25544"' || fail "get_redis: $out"
check "seed API: /health open, /set_redis and /get_redis through redis-cli in the container"

out=$(api POST "$A2/start_migration" "{\"server_ip\": \"$CLUSTER_NET.241\", \"container_name\": \"redis\"}")
echo "$out" | grep -q '"status":"success"' || fail "start_migration: $out"
echo "$out" | grep -q '"checkpoint_duration":' || fail "no checkpoint_duration: $out"
echo "$out" | grep -q '"restore_duration":' || fail "no restore_duration: $out"
f a2 ps | grep -q "redis .*running" || fail "redis not on a2 after pull"
[ -z "$(f a1 ps -a --json | grep '"name": "redis"')" ] || fail "redis still on a1"
out=$(api GET "$A2/get_redis/sat")
echo "$out" | grep -q '"value":"ISS-25544"' || fail "value after pull: $out"
check "seed pull: POST /start_migration to the target moved redis, value intact: $(echo "$out" | head -c 80)"

out=$(api POST "$A2/start_migration" '{"server_ip": "198.18.100.241", "container_name": "nope"}')
echo "$out" | grep -q '"status":"error"' && echo "$out" | grep -q 'no such container' || fail "unknown name: $out"
code=$(in_ns c1 curl -s -o "$T_DIR/r" -w '%{http_code}' -X POST -H "Authorization: Bearer $TOK" -d '{"server_ip": ' "$A2/start_migration")
[ "$code" = 400 ] && grep -q '"status":"error"' "$T_DIR/r" || fail "malformed start_migration: $code $(cat "$T_DIR/r")"
check "seed errors: unknown container and malformed JSON answered with status error"

# ferry migrate --from --to, driven from the client host against two remote agents
in_ns c1 timeout 120 "$FERRY_BIN" --token-file "$T_DIR/token" migrate redis \
  --from "tcp://$CLUSTER_NET.242:9000" --to "tcp://$CLUSTER_NET.241:9000" >"$T_DIR/m.out"
grep -q "Migrated redis" "$T_DIR/m.out" || fail "--from/--to: $(cat "$T_DIR/m.out")"
f a1 ps | grep -q "redis .*running" || fail "redis not back on a1"
[ "$(in_ns c1 redis-cli -h "$R" GET sat)" = ISS-25544 ] || fail "value after --from/--to"
check "ferry migrate --from a2 --to a1 from a third host"

# exec -i, attach and cp against a remote agent over TCP with its token
# (the input streams through the TCP gate as a chunked body)
T=(in_ns c1 timeout 120 "$FERRY_BIN" --host "tcp://$CLUSTER_NET.241:9000" --token-file "$T_DIR/token")
f a1 run -d -i --name ai busybox sh -c 'echo started; while read l; do echo "L:$l"; done; exit 7' >/dev/null
out=$(echo hello | "${T[@]}" exec -i ai cat) && [ "$out" = hello ] || fail "exec -i over TCP: '$out'"
rc=0; out=$(printf 'one\n' | "${T[@]}" attach ai) || rc=$?
[ "$rc" = 7 ] && [ "$out" = "$(printf 'started\nL:one')" ] || fail "attach over TCP: rc $rc: '$out'"
echo xyz >"$T_DIR/x.txt"
"${T[@]}" cp "$T_DIR/x.txt" redis:/tmp/x.txt && [ "$(f a1 exec redis cat /tmp/x.txt)" = xyz ] || fail "cp over TCP"
rc=0; out=$(echo hi | in_ns c1 timeout 60 "$FERRY_BIN" --host "tcp://$CLUSTER_NET.241:9000" exec -i redis cat 2>&1) || rc=$?
[ "$rc" = 125 ] && grep -q "bearer token" <<<"$out" || fail "exec -i without the token: rc $rc: $out"
f a1 rm -f ai >/dev/null
check "exec -i, attach and cp on a remote agent over TCP with the token; without it refused"

# seed container verbs
out=$(api POST "$A1/stop_container/redis"); echo "$out" | grep -q success || fail "stop: $out"
f a1 ps -a | grep -q "redis .*exited" || fail "not stopped"
out=$(api POST "$A1/remove_volume/rdata"); echo "$out" | grep -q '"status":"error"' || fail "volume in use removed: $out"
echo "$out" | grep -q 'in use' || fail "volume in use: wrong reason: $out"
# /start_container starts afresh, as the seed does: the stopped container and
# its volume go, a new one runs from the default for "redis" (-p 6379:6379)
out=$(api POST "$A1/start_container" '{"container_name": "redis"}'); echo "$out" | grep -q success || fail "start: $out"
echo "$out" | grep -q '"duration_ms":' || fail "no duration_ms: $out"
f a1 ps | grep -q "redis .*running.*0.0.0.0:6379->6379/tcp" || fail "not started afresh with its port: $(f a1 ps)"
[ "$(f a1 volume ls --json | tr -d ' \n')" = "[]" ] || fail "old volume kept: $(f a1 volume ls)"
for _ in $(seq 1 50); do in_ns c1 redis-cli -h "$CLUSTER_NET.241" ping 2>/dev/null | grep -q PONG && break; sleep 0.1; done
[ -z "$(in_ns c1 redis-cli -h "$CLUSTER_NET.241" GET sat)" ] || fail "fresh redis has old data"
out=$(api POST "$A1/start_container" '{"container_name": "redis"}'); echo "$out" | grep -q success || fail "restart running: $out"
out=$(api POST "$A1/start_container" '{"container_name": "nodefault"}')
echo "$out" | grep -q '"status":"error"' && echo "$out" | grep -q 'no default' || fail "unknown name: $out"
out=$(api POST "$A1/remove_container/redis"); echo "$out" | grep -q success || fail "remove: $out"
out=$(api POST "$A1/remove_volume/rdata"); echo "$out" | grep -q '"status":"error"' || fail "removed twice: $out"
[ -z "$(f a1 ps -a --json | grep '"name"')" ] && [ "$(f a1 volume ls --json | tr -d ' \n')" = "[]" ] || fail "leftovers"
check "seed /stop_container, /start_container afresh from the default (running or not), /remove_container, /remove_volume (refused while in use)"

# HTTPS between agents, verified against a CA
cd "$T_DIR"
openssl req -x509 -newkey rsa:2048 -nodes -days 2 -subj "/CN=ferry test CA" -keyout ca.key -out ca.pem 2>/dev/null
openssl req -x509 -newkey rsa:2048 -nodes -days 2 -subj "/CN=other CA" -keyout bad.key -out bad.pem 2>/dev/null
for i in 1 2; do
  ip="$CLUSTER_NET.$((240 + i))"
  openssl req -newkey rsa:2048 -nodes -subj "/CN=$ip" -keyout a$i.key -out a$i.csr 2>/dev/null
  printf 'subjectAltName=IP:%s\n' "$ip" >a$i.ext
  openssl x509 -req -in a$i.csr -CA ca.pem -CAkey ca.key -CAcreateserial -days 2 -extfile a$i.ext -out a$i.pem 2>/dev/null
done
cd - >/dev/null
for i in 1 2; do
  ip="$CLUSTER_NET.$((240 + i))"
  stop_agent a$i
  start_agent a$i -- --bridge "fb${$}m$i" --subnet "$CLUSTER_NET.0/24" --gateway "$ip" --listen "$ip:9000" \
    --token-file "$T_DIR/token" --tls-cert "$T_DIR/a$i.pem" --tls-key "$T_DIR/a$i.key" --tls-ca "$T_DIR/ca.pem"
done
f a1 run -d --name web --ip "$CLUSTER_NET.41" redis:alpine redis-server --protected-mode no --save '' >/dev/null
code=$(in_ns c1 curl -s -o /dev/null -w '%{http_code}' --cacert "$T_DIR/ca.pem" "https://$CLUSTER_NET.242:9000/health")
[ "$code" = 200 ] || fail "https health: $code"
expect_fail "outside the agents' TLS connection" f a1 migrate web --to "https://$CLUSTER_NET.242:9000" --memory stream
f a1 ps | grep -q "web .*running" || fail "web not running on a1 after the refused stream"
out=$(f a1 --json migrate web --to "https://$CLUSTER_NET.242:9000") || fail "migration over https: $out"
echo "$out" | grep -q '"memory": "copy"' || fail "memory did not go inside the TLS connection: $out"
f a2 ps | grep -q "web .*running" || fail "web not on a2"
check "agents speak HTTPS verified against the CA; migration over https with the memory inside it (a page-server stream refused)"

stop_agent a1
start_agent a1 -- --bridge "fb${$}m1" --subnet "$CLUSTER_NET.0/24" --gateway "$CLUSTER_NET.241" \
  --listen "$CLUSTER_NET.241:9000" --token-file "$T_DIR/token" --tls-cert "$T_DIR/a1.pem" \
  --tls-key "$T_DIR/a1.key" --tls-ca "$T_DIR/bad.pem"
f a1 run -d --name web2 --ip "$CLUSTER_NET.42" redis:alpine redis-server --protected-mode no --save '' >/dev/null
expect_fail "certificate|SSL|ssl" f a1 migrate web2 --to "https://$CLUSTER_NET.242:9000"
f a1 ps | grep -q "web2 .*running" || fail "web2 not running after refused TLS peer"
[ -z "$(f a2 ps -a --json | grep '"name": "web2"')" ] || fail "web2 reached a2"
check "a peer whose certificate the CA did not sign is refused; the container stays"
echo "# all checks passed"
