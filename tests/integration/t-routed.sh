#!/usr/bin/env bash
# Moves between hosts that share no segment: a1 and a2 on networks of their
# own behind a router, their container subnet carried by ferry's VXLAN
# overlay; a client on a third network reaches the container at its own
# address (through a1 as the gateway) and through a1's published port. A
# TCP client on each and a UDP flow at 1,000 datagrams/s go on through
# a1 -> a2 -> a1 (no reset, every byte back in order); a new connection to
# a1's port during the grace period reaches the container on a2; a third
# host joins through the coordinator's registry and leaves when it stops; a
# host that is not a member cannot put frames on the overlay.
source "$(dirname "$0")/lib.sh"
need nft bridge /usr/bin/python3 curl
# a1 and a2 list each other; a3 lists nobody: it joins through the
# coordinator's registry (on the router), and a1 and a2 learn of it there
ROUTED_COORD=1 ROUTED_STATIC="1 2" routed_up 3
routed_client c1 200
make_rootfs
for h in a1 a2 a3; do f $h image import "$T_DIR/busybox.tar" --name busybox >/dev/null; done
A1=$HOST_a1_UNDERLAY A2=$HOST_a2_UNDERLAY
ADDR="$CLUSTER_NET.10"

# ---- the overlay as each agent shows it ----
info=$(f a1 --json info)
echo "$info" | grep -q "\"address\": \"$A2\"" || fail "a1's overlay does not list a2 ($A2): $info"
echo "$info" | grep -q '"mtu": 1450' || fail "a1's overlay MTU is not 1450: $info"
f a1 info | grep -q "^overlay .*vni $ROUTED_VNI .*underlay $A1" || fail "ferry info: $(f a1 info)"
f a1 info | grep -q "^members .*$A2 (static)" || fail "ferry info members: $(f a1 info)"
metrics=$(in_ns a1 curl -s -H "Authorization: Bearer $(cat "$T_DIR/token")" "http://$A1:9000/metrics")
grep -Eq "^ferry_overlay_members\{vni=\"$ROUTED_VNI\"\} [1-9]" <<<"$metrics" ||
  fail "/metrics has no overlay members: $(grep overlay <<<"$metrics")"
check "each agent's overlay (VNI $ROUTED_VNI, MTU 1450) lists the other as a member (info, /metrics)"

f a1 run -d --name echo --ip "$ADDR" -p 7001:7000 busybox /bin/echo-server 7000 >/dev/null
[ "$(f a1 exec echo cat /sys/class/net/eth0/mtu)" = 1450 ] ||
  fail "the container's MTU is $(f a1 exec echo cat /sys/class/net/eth0/mtu), want the overlay's 1450"
ready=0
for _ in $(seq 1 50); do  # bounded: 5 s
  if in_ns c1 "$FERRY_BUILD/tests/tcp-client" "$ADDR" 7000 200 50 >/dev/null 2>&1; then ready=1; break; fi
  sleep 0.1
done
[ "$ready" = 1 ] || fail "the client on another network cannot reach $ADDR through a1"
check "a container of an overlay agent has the overlay's MTU from its start; a client two routers away reaches it at its own address"

# ---- the moves, with clients on the container's address and on a1's port ----
in_ns c1 "$FERRY_BUILD/tests/tcp-client" "$ADDR" 7000 60000 20 "$T_DIR/stop" >"$T_DIR/own.out" 2>&1 &
own=$!
in_ns c1 "$FERRY_BUILD/tests/tcp-client" "$A1" 7001 60000 20 "$T_DIR/stop" >"$T_DIR/port.out" 2>&1 &
port=$!
in_ns c1 "$FERRY_BUILD/bench-client" udp "$ADDR" 7000 1000 "$T_DIR/udp.stop" >"$T_DIR/udp.out" 2>&1 &
udp=$!
sleep 1.5
out=$(f a1 --json migrate echo --to "$HOST_a2_URL" --redirect-for 30)
echo "$out" | grep -q '"status": "succeeded"' || fail "migration a1 -> a2: $out"
f a2 ps | grep -q "echo .*running .*$ADDR" || fail "echo not running on a2: $(f a2 ps -a)"
[ "$(f a2 exec echo cat /sys/class/net/eth0/mtu)" = 1450 ] || fail "MTU on a2: $(f a2 exec echo cat /sys/class/net/eth0/mtu)"
down1=$(echo "$out" | sed -n 's/.*"downtime_ms": \([0-9]*\).*/\1/p')
check "a1 -> a2 across the router: running on a2 at $ADDR, downtime ${down1} ms"

# a new connection to the old host's port: redirected to a2 for the grace period
in_ns c1 "$FERRY_BUILD/tests/tcp-client" "$A1" 7001 300 50 >"$T_DIR/new.out" 2>&1 ||
  fail "a new connection to a1:7001 during the grace period: $(cat "$T_DIR/new.out")"
f a1 ps -a --json | grep -q '"name": "echo"' && fail "a1 kept a copy"
check "a new connection to a1's published port during the grace period reaches the container on a2"

sleep 1
out=$(f a2 --json migrate echo --to "$HOST_a1_URL")
echo "$out" | grep -q '"status": "succeeded"' || fail "migration a2 -> a1: $out"
down2=$(echo "$out" | sed -n 's/.*"downtime_ms": \([0-9]*\).*/\1/p')
sleep 1
touch "$T_DIR/stop" "$T_DIR/udp.stop"
for p in own port; do
  rc=0
  wait "${!p}" || rc=$?
  [ "$rc" = 0 ] || fail "the client on the $p address: $(cat "$T_DIR/$p.out")"
done
wait "$udp" || fail "udp client: $(cat "$T_DIR/udp.out")"
read -r sent last <<<"$(sed -n 's/.*sent=\([0-9]*\).*last_echoed=\(-\{0,1\}[0-9]*\).*/\1 \2/p' "$T_DIR/udp.out")"
[ -n "$sent" ] && [ "$last" -ge $((sent - 500)) ] || fail "UDP flow did not survive the moves: $(cat "$T_DIR/udp.out")"
lost=$(sed -n 's/.* lost=\([0-9]*\) .*/\1/p' "$T_DIR/udp.out")
# as on one segment (t-migrate): what came during the pauses is held and
# delivered; a datagram queued to the frozen socket may still go, and on a
# loaded machine (a pause of seconds, >1,000 frames held) the replay's burst
# can overrun the restored socket's buffer by a few: lost without the hold,
# each move would lose a pause's worth (hundreds at 1,000/s)
[ -n "$lost" ] && [ "$lost" -le 10 ] || fail "datagrams were lost to the moves: $(cat "$T_DIR/udp.out")"
gap_own=$(sed -n 's/.*max_gap_ms=\([0-9]*\).*/\1/p' "$T_DIR/own.out")
gap_port=$(sed -n 's/.*max_gap_ms=\([0-9]*\).*/\1/p' "$T_DIR/port.out")
check "a2 -> a1 (downtime ${down2} ms): both TCP clients kept their connection, every byte echoed in order (largest gaps: own address ${gap_own} ms, a1's port ${gap_port} ms); UDP at 1000/s: $(cat "$T_DIR/udp.out")"

# ---- membership from the registry: a3 named no member, a1 and a2 named no a3 ----
A3=$HOST_a3_UNDERLAY
# member H ADDR: where H's overlay has ADDR from ("static", "registry"), "" when not a member
member() {
  f "$1" --json info | /usr/bin/python3 -c '
import json, sys
ms = (json.load(sys.stdin).get("overlay") or {}).get("members", [])
print(next((m["from"] for m in ms if m["address"] == sys.argv[1]), ""))' "$2"
}
joined=0
for _ in $(seq 1 50); do  # bounded: 10 s (heartbeats every second)
  if [ "$(member a1 "$A3")" = registry ] && [ "$(member a3 "$A1")" = registry ] &&
     [ "$(member a3 "$A2")" = registry ] && [ "$(member a2 "$A3")" = registry ]; then joined=1; break; fi
  sleep 0.2
done
[ "$joined" = 1 ] || fail "a3 did not join through the registry: a1 $(f a1 info) / a3 $(f a3 info)"
[ "$(member a1 "$A2")" = static ] || fail "a2 is not a static member of a1's overlay: $(f a1 info)"
out=$(f a1 --json migrate echo --to "$HOST_a3_URL")
echo "$out" | grep -q '"status": "succeeded"' || fail "migration a1 -> a3: $out"
in_ns c1 "$FERRY_BUILD/tests/tcp-client" "$ADDR" 7000 300 50 >/dev/null 2>&1 || fail "no connection to $ADDR on a3"
out=$(f a3 --json migrate echo --to "$HOST_a1_URL")
echo "$out" | grep -q '"status": "succeeded"' || fail "migration a3 -> a1: $out"
check "a3, with no member named, joins through the coordinator's registry (a1 and a2 learn it there); the container moves to it and back, reachable from the other network"

stop_agent a3 KILL
left=0
for _ in $(seq 1 60); do  # bounded: 12 s (the coordinator's timeout is 3 s)
  [ -z "$(member a1 "$A3")" ] && { left=1; break; }
  sleep 0.2
done
[ "$left" = 1 ] || fail "a3 stopped but is still a member of a1's overlay: $(f a1 --json info)"
in_ns a1 bridge fdb show dev "fx$ROUTED_VNI" | grep -q "dst $A3" && fail "a1 still forwards to a3: $(in_ns a1 bridge fdb show dev "fx$ROUTED_VNI")"
[ "$(member a1 "$A2")" = static ] || fail "a2 (static) left a1's members too: $(f a1 info)"
check "a3's agent stops: the registry marks it down and a1 drops it from its overlay (member list and forwarding); a2, a static member, stays"

# ---- a host that is not a member cannot inject frames ----
routed_client x1 201
in_ns x1 ip link add vx type vxlan id "$ROUTED_VNI" local 198.19.201.2 remote "$A1" dstport 4789 nolearning
in_ns x1 ip addr add "$CLUSTER_NET.99/24" dev vx
in_ns x1 ip link set vx up
mac=$(f a1 inspect echo | sed -n 's/.*"mac": "\([0-9a-f:]*\)".*/\1/p' | head -1)
[ -n "$mac" ] || fail "no mac in inspect: $(f a1 inspect echo)"
in_ns x1 ip neigh replace "$ADDR" lladdr "$mac" dev vx nud permanent
cns=$(f a1 inspect echo | sed -n 's/.*"netns": "\([^"]*\)".*/\1/p' | head -1)
[ -n "$cns" ] || fail "no netns in inspect: $(f a1 inspect echo)"
rx() { ip -n "$cns" -s -j link show eth0 | sed -n 's/.*"rx":{"bytes":[0-9]*,"packets":\([0-9]*\).*/\1/p'; }
drops() { in_ns a1 nft list table ip "ferryov_$ROUTED_VNI" | sed -n 's/.*counter packets \([0-9]*\) .*drop.*/\1/p'; }
rx0=$(rx) d0=$(drops)
[ -n "$rx0" ] && [ -n "$d0" ] || fail "cannot read counters (rx '$rx0', drops '$d0')"
in_ns x1 /usr/bin/python3 -c '
import socket, sys
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
for i in range(300):
    s.sendto(b"forged %d" % i, (sys.argv[1], 7000))
' "$ADDR"
sleep 0.5
rx1=$(rx) d1=$(drops)
[ $((d1 - d0)) -ge 300 ] || fail "a1's overlay filter dropped $((d1 - d0)) of 300 forged packets"
[ $((rx1 - rx0)) -lt 50 ] || fail "the container received $((rx1 - rx0)) frames while 300 were forged at it"
check "300 VXLAN packets from a host outside the overlay reach a1 and are dropped by ferry's filter; the container sees none of them"

# ---- the overlay survives an agent restart unchanged ----
host_restart a1
f a1 --json info | grep -q "\"address\": \"$A2\"" || fail "overlay after a restart: $(f a1 --json info)"
in_ns c1 "$FERRY_BUILD/tests/tcp-client" "$ADDR" 7000 300 50 >/dev/null 2>&1 || fail "no connection after a1's restart"
check "a1 restarts: its overlay is found in place, the container still reachable"
f a1 rm -f echo >/dev/null

# ---- an agent restarted without --overlay leaves the overlay ----
stop_agent a2
start_agent a2 -- --bridge "fb${$}r2" --subnet "$CLUSTER_NET.0/24" --gateway "$CLUSTER_NET.242" \
  --listen "$A2:9000" --token-file "$T_DIR/token" --peer-allow 198.19.0.0/16
in_ns a2 ip link show "fx$ROUTED_VNI" >/dev/null 2>&1 && fail "a2 kept its VXLAN port without --overlay"
in_ns a2 nft list table ip "ferryov_$ROUTED_VNI" >/dev/null 2>&1 && fail "a2 kept its overlay filter without --overlay"
f a2 --json info | grep -q '"overlay"' && fail "a2's info still shows an overlay"
check "a2 restarted without --overlay: its VXLAN port and filter are gone"
