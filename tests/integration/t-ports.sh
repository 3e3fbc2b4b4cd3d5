#!/usr/bin/env bash
# Published ports (ferry run -p): a client reaches redis at its host's own
# address; bad and conflicting mappings are refused and change nothing; a
# migration carries the ports to the target, an established connection
# through the old host's port keeps working, the old host leads new
# connections to the new host for the grace period and then lets the port
# go; removing the container removes its forwarding.
source "$(dirname "$0")/lib.sh"
need redis-cli /usr/bin/python3 nft
/usr/bin/python3 -c 'import redis' 2>/dev/null || need python3-redis
cluster_up 2
cluster_client c1 "$CLUSTER_NET.250"
A1=$CLUSTER_NET.241 A2=$CLUSTER_NET.242
"$(dirname "$0")/../../scripts/mkrootfs" "$T_DIR/redis.tar" --redis
for h in a1 a2; do f $h image import "$T_DIR/redis.tar" --name redis >/dev/null; done
table_of() { in_ns "$1" nft list tables 2>/dev/null | grep -c "ferry_" || true; }

# ---- bad mappings: clear errors, nothing made ----
expect_fail "host port must be a number" f a1 run -d --name bad -p 70000:6379 redis redis-server
expect_fail "expected \[IP:\]HOSTPORT:CTRPORT" f a1 run -d --name bad -p 6379 redis redis-server
expect_fail "protocol must be tcp or udp" f a1 run -d --name bad -p 6379:6379/sctp redis redis-server
expect_fail "not an IPv4 address" f a1 run -d --name bad -p 1.2.3:6379:6379 redis redis-server
expect_fail "published twice" f a1 run -d --name bad -p 6379:6379 -p 6379:1234 redis redis-server
# a container cannot take the host's own connections or its API: not a
# peer agent's address (a2's API at $A2:9000), not the agent's own port
expect_fail "$A2 is not an address of this host" f a1 run -d --name bad -p "$A2:9000:6379" redis redis-server
expect_fail "host port 9000/tcp is in use by a program of this host" f a1 run -d --name bad -p 9000:6379 redis redis-server
expect_fail "in use by a program of this host" f a1 run -d --name bad -p "$A1:9000:6379" redis redis-server
[ -z "$(f a1 ps -a --json | grep '"name"')" ] || fail "a refused run left a container"
[ "$(table_of a1)" = 0 ] || fail "a refused run left a forwarding table"
check "malformed port mappings, a peer's address and the agent's own API port refused with a clear error, nothing made"

# ---- publish ----
f a1 run -d --name redis -p 6379:6379 -p 5353:53/udp redis redis-server --protected-mode no --save '' >/dev/null
f a1 ps | grep -q "redis .*running .*0.0.0.0:6379->6379/tcp, 0.0.0.0:5353->53/udp" || fail "ps: $(f a1 ps)"
f a1 inspect redis | grep -q '"host_port": 6379' || fail "inspect has no ports"
[ "$(f a1 port redis)" = "$(printf '6379/tcp -> 0.0.0.0:6379\n53/udp -> 0.0.0.0:5353')" ] || fail "port: $(f a1 port redis)"
[ "$(f a1 port redis 53/udp)" = "0.0.0.0:5353" ] || fail "port redis 53/udp: $(f a1 port redis 53/udp)"
expect_fail "does not publish port 80" f a1 port redis 80
for _ in $(seq 1 50); do in_ns c1 redis-cli -h "$A1" ping 2>/dev/null | grep -q PONG && break; sleep 0.1; done
[ "$(in_ns c1 redis-cli -h "$A1" SET sat ISS)" = OK ] || fail "SET through a1:6379"
# (the ruleset is read whole first: grep -q leaving a pipe early would
# make nft fail with SIGPIPE, and pipefail that check)
rules=$(in_ns a1 nft list ruleset)
grep -q "udp \. 5353 : " <<<"$rules" || fail "no udp forwarding: $rules"
check "ferry run -p: redis answers at the host's address $A1:6379; ps, inspect and port show the mappings"

expect_fail "host port 6379/tcp is taken: container \"redis\" publishes 0.0.0.0:6379->6379/tcp" \
  f a1 run -d --name other -p "$A1:6379:6379" redis redis-server
f a1 run -d --name other -p 6380:6379 redis redis-server --protected-mode no --save '' >/dev/null
for _ in $(seq 1 50); do in_ns c1 redis-cli -h "$A1" -p 6380 ping 2>/dev/null | grep -q PONG && break; sleep 0.1; done
[ -z "$(in_ns c1 redis-cli -h "$A1" -p 6380 GET sat)" ] || fail "6380 reached the wrong redis"
check "a host port in use is refused (409); another host port leads to the other container"

# bound to the loopback address (podman's -p 127.0.0.1:... or localhost:...):
# the host's own programs reach it there, other hosts do not
f a1 run -d --name local -p 127.0.0.1:6390:6379 -p localhost:6391:6379 redis redis-server --protected-mode no --save '' >/dev/null
f a1 ps | grep -q "local .*127.0.0.1:6390->6379/tcp, 127.0.0.1:6391->6379/tcp" || fail "ps: $(f a1 ps)"
for p in 6390 6391; do
  ok=0
  for _ in $(seq 1 50); do in_ns a1 redis-cli -h 127.0.0.1 -p $p ping 2>/dev/null | grep -q PONG && { ok=1; break; }; sleep 0.1; done
  [ "$ok" = 1 ] || fail "127.0.0.1:$p on a1 does not lead to the container"
done
in_ns c1 timeout 2 redis-cli -h "$A1" -p 6390 ping >/dev/null 2>&1 && fail "a port bound to 127.0.0.1 is reachable from another host"
expect_fail "host port 6390/tcp is taken" f a1 run -d --name bad -p 6390:6379 redis redis-server
f a1 rm -f local >/dev/null
check "-p 127.0.0.1:HOSTPORT and -p localhost:HOSTPORT: reachable from the host's own loopback, not from other hosts"

# ---- the target has that port taken: the move is refused before any freeze ----
f a2 run -d --name blocker --ip "$CLUSTER_NET.60" -p 6379:6379 redis redis-server --protected-mode no --save '' >/dev/null
expect_fail "keeps its published ports.*container \"blocker\" publishes" f a1 migrate redis --to "$HOST_a2_URL"
f a1 ps | grep -q "redis .*running" || fail "redis not running on a1 after a refused move"
[ "$(in_ns c1 redis-cli -h "$A1" GET sat)" = ISS ] || fail "value after refused move"
f a2 rm -f blocker >/dev/null
check "a target whose host port is taken refuses the move; redis stays on a1 with its data"

# ---- move with a client connected through a1's published port ----
in_ns c1 /usr/bin/python3 - "$A1" "$T_DIR/stop" "$T_DIR/progress" >"$T_DIR/client.out" 2>&1 <<'EOF' &
import redis, sys, time, os
r = redis.Redis(host=sys.argv[1], port=6379, socket_timeout=20)
acked, errors = 0, 0
end = time.time() + 60
while time.time() < end and not os.path.exists(sys.argv[2]):
    try:
        r.set("w%d" % acked, acked)   # one connection: redis-py keeps it
        acked += 1
        with open(sys.argv[3] + ".new", "w") as f:
            f.write("%d\n" % acked)
        os.rename(sys.argv[3] + ".new", sys.argv[3])
    except Exception as e:
        errors += 1
        print("error", repr(e), flush=True)
        break
    time.sleep(0.02)
print("acked", acked, "errors", errors, "conns", r.info("clients")["connected_clients"], flush=True)
EOF
CPID=$!
progress() { cat "$T_DIR/progress" 2>/dev/null || echo 0; }
for _ in $(seq 1 100); do [ "$(progress)" -gt 0 ] && break; sleep 0.1; done  # bounded: 10 s
a0=$(progress)
[ "$a0" -gt 0 ] || fail "the client wrote nothing before the move: $(cat "$T_DIR/client.out")"
f a1 migrate redis --to "$HOST_a2_URL" --redirect-for 5 >"$T_DIR/m.out" || fail "migration: $(cat "$T_DIR/m.out")"
a1=$(progress)
# the same connection goes on writing after the move
for _ in $(seq 1 100); do [ "$(progress)" -gt "$a1" ] && break; sleep 0.1; done  # bounded: 10 s
touch "$T_DIR/stop"
for _ in $(seq 1 100); do kill -0 $CPID 2>/dev/null || break; sleep 0.1; done
kill $CPID 2>/dev/null || true
out=$(cat "$T_DIR/client.out")
echo "$out" | grep -q "errors 0" || fail "client through a1:6379 broke: $out"
acked=$(echo "$out" | sed -n 's/^acked \([0-9]*\).*/\1/p')
[ "${acked:-0}" -gt "$a1" ] || fail "no write after the move ($a0 before it, $a1 when it ended): $out"
# every acknowledged write is there, read through the new host's port
n=$(in_ns c1 redis-cli -h "$A2" DBSIZE)
[ "$n" -ge "$acked" ] || fail "writes lost: $acked acknowledged, $n keys on a2"
[ "$(in_ns c1 redis-cli -h "$A2" GET "w$((acked - 1))")" = "$((acked - 1))" ] || fail "last write lost"
f a2 ps | grep -q "redis .*running .*0.0.0.0:6379->6379/tcp" || fail "ports not on a2: $(f a2 ps)"
check "moved with a client writing through a1's published port: same connection, writes before ($a0), during and after the move ($acked in all), none lost; a2 publishes 6379"

[ "$(in_ns c1 redis-cli -h "$A1" GET sat)" = ISS ] || fail "no redirect from a1:6379 to the new host"
check "for the grace period a new connection to the old host's port reaches the container on a2"
gone=0
for _ in $(seq 1 150); do  # bounded: 15 s
  if ! in_ns c1 timeout 2 redis-cli -h "$A1" ping >/dev/null 2>&1; then gone=1; break; fi
  sleep 0.1
done
[ "$gone" = 1 ] || fail "a1 still forwards 6379 after the grace period"
rules=$(in_ns a1 nft list ruleset)
grep -Eq "tcp \. 6379 " <<<"$rules" && fail "a1 still forwards 6379: $rules"
f a1 run -d --name again -p 6379:6379 redis redis-server --protected-mode no --save '' >/dev/null ||
  fail "host port 6379 not free on a1 after the grace period"
f a1 rm -f again >/dev/null
check "after the grace period the old host lets the port go (no rule, free to publish again)"

f a2 rm -f redis >/dev/null
rules=$(in_ns a2 nft list ruleset)
grep -Eq "tcp \. 6379 " <<<"$rules" && fail "a2 kept forwarding a removed container"
f a1 rm -f other >/dev/null
[ "$(table_of a1)" = 0 ] || fail "a1 kept its table with no published port"
check "removing a container removes its forwarding; no ports, no table"
# a malformed redirects file (torn, edited by hand, hostile) is cleaned at
# start: it neither blocks later -p nor lasts forever
stop_agent a1
cat >"$T_DIR/a1/root/redirects.json" <<'EOF'
[{"host_ip": "not-an-ip", "host_port": 6390, "protocol": "tcp", "to_ip": "198.18.100.9", "to_port": 1, "until_ms": 99999999999999, "name": "x"},
 {"host_ip": "", "host_port": 6391, "protocol": "tcp", "to_ip": "198.18.100.9", "to_port": 6379, "until_ms": 99999999999999, "name": "forever"},
 "junk", 7]
EOF
start_agent a1
f a1 run -d --name late -p 6392:6379 redis redis-server --protected-mode no --save '' >/dev/null ||
  fail "a malformed redirect blocked a later -p"
f a1 run -d --name late2 -p 6391:6379 redis redis-server --protected-mode no --save '' >/dev/null ||
  fail "a redirect that never expires still holds its port"
grep -q "malformed redirect" "$T_DIR/a1/ferryd.log" || fail "no word in the log about the dropped redirects"
f a1 rm -f late late2 >/dev/null
check "malformed or never-expiring entries of redirects.json are dropped at start (logged); -p works"
# a second agent in a1's network namespace (its own bridge and table) cannot
# publish a host port a1's agent forwards: the first table's rule would win
mkdir -p "$T_DIR/a1b"
nsenter --net="/var/run/netns/$HOST_a1_NS" "$FERRYD_BIN" --config /dev/null --root "$T_DIR/a1b/root" \
  --socket "$T_DIR/a1b/ferryd.sock" --runc-root "$T_DIR/a1b/runc" --bridge "fb${$}x" \
  --subnet 198.18.99.0/24 >>"$T_DIR/a1b/ferryd.log" 2>&1 &
SECOND=$!
T_PIDS+=("$SECOND")
fb() { timeout 60 "$FERRY_BIN" --host "unix://$T_DIR/a1b/ferryd.sock" "$@"; }
for _ in $(seq 1 100); do fb info >/dev/null 2>&1 && break; sleep 0.1; done  # bounded: 10 s
fb image import "$T_DIR/redis.tar" --name redis >/dev/null
f a1 run -d --name p1 -p 6395:6379 redis redis-server --protected-mode no --save '' >/dev/null
expect_fail "forwarded by another agent in this network namespace" \
  fb run -d --name p2 -p 6395:6379 redis redis-server --protected-mode no --save ''
[ -z "$(fb ps -a --json | grep '"name"')" ] || fail "the refused run left a container on the second agent"
f a1 rm -f p1 >/dev/null
kill "$SECOND"; wait "$SECOND" 2>/dev/null || true
check "two agents in one network namespace: the second cannot publish a host port the first forwards (409)"
echo "# all checks passed"
