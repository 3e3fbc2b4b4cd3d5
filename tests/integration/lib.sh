# Shared helpers of ferry's integration tests (bash, run as root).
#
# A test makes "hosts": network namespaces, each with its own ferryd (root,
# socket, runc root, bridge, subnet from 198.18.0.0/15), and client
# namespaces joined to a host's bridge. Everything made here is removed on
# exit, also when the test fails.
set -euo pipefail

: "${FERRY_BUILD:?FERRY_BUILD must point at the meson build dir}"
FERRY_BIN="$FERRY_BUILD/ferry"
FERRYD_BIN="$FERRY_BUILD/ferryd"
T_ID="ft$$"
T_DIR=$(mktemp -d "/tmp/ferry-test-$T_ID.XXXXXX")
T_HOSTS=()
T_NETNS=()
T_PIDS=()
T_FAILED=0
T_CHECKS=0

log() { printf '# %s\n' "$*" >&2; }
# grep -q stops reading at its first match: under pipefail the command that
# feeds it (`echo "$out" | grep -q ...`) then dies of SIGPIPE once its
# output spans more than one write, and a match reads as a failure (a
# sanitizer run failed so on a 3 KB report). Here -q (alone or among other
# one-letter options) reads to the end and discards what matched.
grep() {
  local a=() x q=0 opts=1
  for x in "$@"; do
    if [ "$opts" = 1 ] && [[ $x != -* || $x = -- || $x = -e ]]; then opts=0; fi
    if [ "$opts" = 1 ] && [[ $x =~ ^-[a-zA-Z]*q[a-zA-Z]*$ ]]; then
      x=${x//q/}
      q=1
      [ "$x" = - ] && continue
    fi
    a+=("$x")
  done
  if [ "$q" = 1 ]; then command grep "${a[@]}" >/dev/null; else command grep "$@"; fi
}
# one line, whatever the message holds (a JSON report spans lines, and a
# truncated log would show only its first)
fail() { printf 'FAIL: %s\n' "$(printf '%s' "$*" | tr -s '\n\t ' '   ')" >&2; T_FAILED=1; exit 1; }
# A migration's JSON report, shortest first: its error, then the rest on one line.
brief() {
  printf '%s' "$1" | python3 -c 'import json,sys
t=sys.stdin.read()
try:
    r=json.loads(t)
except ValueError:
    print(t); sys.exit()
print("error: %s; phases: %s; report: %s" % (r.get("error"), json.dumps(r.get("phases")), json.dumps(r)))' 2>/dev/null || printf '%s' "$1"
}
check() { T_CHECKS=$((T_CHECKS + 1)); printf 'ok %d - %s\n' "$T_CHECKS" "$*"; }

need() {
  for t in "$@"; do
    if ! command -v "$t" >/dev/null 2>&1; then
      echo "SKIP: $t is not installed: run scripts/setup" >&2
      [ -n "${CI:-}" ] && exit 1
      exit 77
    fi
  done
}
[ "$(id -u)" = 0 ] || { echo "SKIP: integration tests need root" >&2; [ -n "${CI:-}" ] && exit 1; exit 77; }
need runc criu ip nsenter

# ferry CLI against host H: f H ARGS...
f() { local h=$1; shift; timeout 120 "$FERRY_BIN" --host "unix://$T_DIR/$h/ferryd.sock" "$@"; }

# Runs a command and expects it to fail with a message matching PATTERN.
expect_fail() {
  local pattern=$1; shift
  local out rc=0
  out=$("$@" 2>&1) || rc=$?
  [ "$rc" -ne 0 ] || fail "expected failure of: $* (got success: $out)"
  echo "$out" | grep -Eq -- "$pattern" || fail "error of '$*' does not match /$pattern/: $out"
}

# start_agent HOST [ENV=VALUE...] [-- FERRYD ARGS...]: (re)starts HOST's ferryd
# inside its netns; the arguments are remembered for host_restart.
start_agent() {
  local h=$1; shift
  local envs=()
  while [ $# -gt 0 ] && [ "$1" != "--" ]; do envs+=("$1"); shift; done
  if [ "${1:-}" = "--" ]; then shift; printf '%s\n' "$@" >"$T_DIR/$h/args"; fi
  local nsvar="HOST_${h}_NS" args=()
  mapfile -t args <"$T_DIR/$h/args"
  env ${envs[@]+"${envs[@]}"} nsenter --net="/var/run/netns/${!nsvar}" "$FERRYD_BIN" --config /dev/null \
    --root "$T_DIR/$h/root" --socket "$T_DIR/$h/ferryd.sock" --runc-root "$T_DIR/$h/runc" \
    "${args[@]}" >>"$T_DIR/$h/ferryd.log" 2>&1 &
  local pid=$!
  T_PIDS+=("$pid")
  eval "HOST_${h}_PID=$pid"
  local i
  for i in $(seq 1 100); do
    f "$h" info >/dev/null 2>&1 && return 0
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.1
  done
  tail -n 20 "$T_DIR/$h/ferryd.log" >&2
  fail "ferryd on $h did not come up"
}

# stop_agent HOST [SIGNAL]: stops HOST's ferryd (its containers keep running).
stop_agent() {
  local pidvar="HOST_${1}_PID"
  kill "-${2:-TERM}" "${!pidvar}" 2>/dev/null || true
  wait "${!pidvar}" 2>/dev/null || true
}

# host_restart HOST [ENV=VALUE...]: restarts HOST's ferryd with the same arguments.
host_restart() {
  local h=$1; shift
  stop_agent "$h"
  start_agent "$h" "$@"
}

new_host_ns() { # NAME
  local ns="${T_ID}-$1"
  ip netns add "$ns"
  T_NETNS+=("$ns")
  ip -n "$ns" link set lo up
  # A test host is an ordinary router: where br_netfilter is loaded, frames
  # crossing its bridge do not go through its IP rules (docs/networking.md:
  # else a published port cannot lead back out of the port it came in on).
  if [ -e /proc/sys/net/bridge/bridge-nf-call-iptables ]; then
    nsenter --net="/var/run/netns/$ns" sh -c 'echo 0 >/proc/sys/net/bridge/bridge-nf-call-iptables' 2>/dev/null || true
  fi
  mkdir -p "$T_DIR/$1"
  T_HOSTS+=("$1")
  eval "HOST_${1}_NS=$ns"
}

# host_up NAME INDEX: a host netns with its own ferryd; subnet 198.18.INDEX.0/24
host_up() {
  local h=$1 idx=$2
  new_host_ns "$h"
  eval "HOST_${h}_SUBNET=198.18.$idx"
  start_agent "$h" -- --bridge "fb${$}${idx}" --subnet "198.18.$idx.0/24" ${FERRYD_ARGS:-}
}

# cluster_up N: N hosts a1..aN whose container bridges share one L2 segment
# (a switch netns), so that the subnet 198.18.100.0/24 spans them. Host i has
# the bridge address 198.18.100.(240+i) and serves its API on
# tcp://198.18.100.(240+i):9000 with the bearer token in $T_DIR/token. The
# hosts' addresses are in the containers' subnet, which the default peer
# allow-list leaves out: the agents list 198.18.100.240/28 as their peers.
CLUSTER_NET=198.18.100
cluster_up() {
  local n=$1 i
  T_SW="${T_ID}-sw"
  ip netns add "$T_SW"
  T_NETNS+=("$T_SW")
  ip -n "$T_SW" link set lo up
  ip -n "$T_SW" link add sw0 type bridge
  ip -n "$T_SW" link set sw0 up
  head -c 32 /dev/urandom | base64 | tr -d '\n/+=' >"$T_DIR/token"
  chmod 600 "$T_DIR/token"
  for i in $(seq 1 "$n"); do
    local h="a$i" br="fb${$}m$i" addr="$CLUSTER_NET.$((240 + i))"
    new_host_ns "$h"
    local ns="${T_ID}-$h"
    ip -n "$ns" link add "$br" type bridge
    ip -n "$ns" link set "$br" up
    ip link add "fu$$$i" type veth peer name "sw$i" netns "$T_SW"
    ip link set "fu$$$i" netns "$ns"
    ip -n "$ns" link set "fu$$$i" master "$br" up
    ip -n "$T_SW" link set "sw$i" master sw0 up
    eval "HOST_${h}_URL=tcp://$addr:9000"
    eval "HOST_${h}_LINK=sw$i"
    eval "HOST_${h}_BRIDGE=$br"
    local coord=() sats=(${CLUSTER_SATS:-})
    [ -n "${CLUSTER_COORD:-}" ] && coord=(--coord "$CLUSTER_COORD" --node-name "$h" --heartbeat 1)
    [ -n "${sats[$((i - 1))]:-}" ] && coord+=(--satellite "${sats[$((i - 1))]}")
    start_agent "$h" -- --bridge "$br" --subnet "$CLUSTER_NET.0/24" --gateway "$addr" \
      --listen "$addr:9000" --token-file "$T_DIR/token" --migration-timeout "${T_MIGRATION_TIMEOUT:-20}" \
      --peer-allow "$CLUSTER_NET.240/28" ${coord[@]+"${coord[@]}"}
  done
}

# link_limit HOST RATE: HOST's link to the segment of cluster_up limited to
# RATE (tbf, e.g. 50mbit) both ways, as a ground station's radio link is;
# link_limit HOST off lifts it.
link_limit() {
  local h=$1 rate=$2 i=${1#a} lv="HOST_${1}_LINK"
  if [ "$rate" = off ]; then
    in_ns "$h" tc qdisc del dev "fu$$$i" root 2>/dev/null || true
    tc -n "$T_SW" qdisc del dev "${!lv}" root 2>/dev/null || true
    return 0
  fi
  in_ns "$h" tc qdisc replace dev "fu$$$i" root tbf rate "$rate" burst 32kb latency 200ms
  tc -n "$T_SW" qdisc replace dev "${!lv}" root tbf rate "$rate" burst 32kb latency 200ms
}

# routed_up N: N hosts a1..aN on N different networks joined by a router
# netns (no segment in common): host i is 198.19.i.2 on 198.19.i.0/24, the
# router 198.19.i.1 there. Their agents share the container subnet
# 198.18.100.0/24 over a VXLAN overlay (--overlay 42, each other's underlay
# address as --overlay-peer; only the hosts ROUTED_STATIC lists, default
# all); with ROUTED_COORD=1 a coordinator on the router (tcp://198.19.1.1:7000)
# registers them and its registry adds members; host i's bridge is 198.18.100.(240+i); the router
# reaches the container subnet through a1 (a gateway agent). The API is on
# tcp://198.19.i.2:9000 with the token in $T_DIR/token.
ROUTED_VNI=42
routed_up() {
  local n=$1 i j
  T_RT="${T_ID}-rt"
  ip netns add "$T_RT"
  T_NETNS+=("$T_RT")
  ip -n "$T_RT" link set lo up
  in_ns rt sh -c 'echo 1 >/proc/sys/net/ipv4/ip_forward'
  head -c 32 /dev/urandom | base64 | tr -d '\n/+=' >"$T_DIR/token"
  chmod 600 "$T_DIR/token"
  for i in $(seq 1 "$n"); do
    local h="a$i" ns="${T_ID}-a$i"
    new_host_ns "$h"
    ip link add "fu$$$i" type veth peer name "r$i" netns "$T_RT"
    ip link set "fu$$$i" netns "$ns"
    ip -n "$ns" addr add "198.19.$i.2/24" dev "fu$$$i"
    ip -n "$ns" link set "fu$$$i" up
    ip -n "$ns" route add default via "198.19.$i.1"
    ip -n "$T_RT" addr add "198.19.$i.1/24" dev "r$i"
    ip -n "$T_RT" link set "r$i" up
    eval "HOST_${h}_URL=tcp://198.19.$i.2:9000"
    eval "HOST_${h}_UNDERLAY=198.19.$i.2"
    eval "HOST_${h}_LINK=r$i"
    eval "HOST_${h}_BRIDGE=fb${$}r$i"
  done
  ip -n "$T_RT" route add "$CLUSTER_NET.0/24" via 198.19.1.2
  if [ -n "${ROUTED_COORD:-}" ]; then
    # a coordinator on the router (198.19.1.1:7000): the agents register
    # with it and learn the overlay's members from its registry
    CLUSTER_COORD="tcp://198.19.1.1:7000"
    nsenter --net="/var/run/netns/$T_RT" "$FERRY_BUILD/ferry-coord" serve --db "$T_DIR/coord.db" \
      --listen 198.19.1.1:7000 --socket "$T_DIR/coord.sock" --token-file "$T_DIR/token" \
      --heartbeat-timeout 3 >>"$T_DIR/coord.log" 2>&1 &
    T_PIDS+=("$!")
    for _ in $(seq 1 50); do [ -S "$T_DIR/coord.sock" ] && break; sleep 0.1; done
    [ -S "$T_DIR/coord.sock" ] || fail "ferry-coord did not start: $(tail -n 5 "$T_DIR/coord.log" 2>&1)"
  fi
  local static=" ${ROUTED_STATIC:-$(seq -s ' ' 1 "$n")} "
  for i in $(seq 1 "$n"); do
    local h="a$i" peers=()
    if [[ "$static" == *" $i "* ]]; then
      for j in $(seq 1 "$n"); do
        [ "$j" != "$i" ] && [[ "$static" == *" $j "* ]] && peers+=(--overlay-peer "198.19.$j.2")
      done
    fi
    local coord=()
    [ -n "${CLUSTER_COORD:-}" ] && coord=(--coord "$CLUSTER_COORD" --node-name "$h" --heartbeat 1)
    start_agent "$h" -- --bridge "fb${$}r$i" --subnet "$CLUSTER_NET.0/24" \
      --gateway "$CLUSTER_NET.$((240 + i))" --listen "198.19.$i.2:9000" --token-file "$T_DIR/token" \
      --migration-timeout 20 --peer-allow 198.19.0.0/16 --overlay "$ROUTED_VNI" \
      --underlay "198.19.$i.2" ${peers[@]+"${peers[@]}"} ${coord[@]+"${coord[@]}"}
  done
}

# routed_client NAME INDEX: a client host on a network of its own,
# 198.19.INDEX.2/24, behind the router (INDEX past the hosts').
routed_client() {
  local c=$1 i=$2 ns="${T_ID}-$1"
  ip netns add "$ns"
  T_NETNS+=("$ns")
  ip -n "$ns" link set lo up
  ip link add "fk$$$c" type veth peer name "r$i" netns "$T_RT"
  ip link set "fk$$$c" netns "$ns"
  ip -n "$ns" addr add "198.19.$i.2/24" dev "fk$$$c"
  ip -n "$ns" link set "fk$$$c" up
  ip -n "$ns" route add default via "198.19.$i.1"
  ip -n "$T_RT" addr add "198.19.$i.1/24" dev "r$i"
  ip -n "$T_RT" link set "r$i" up
}

# cluster_client NAME ADDR: a client host on the cluster's segment.
cluster_client() {
  local c=$1 addr=$2 ns="${T_ID}-$1"
  ip netns add "$ns"
  T_NETNS+=("$ns")
  ip -n "$ns" link set lo up
  ip link add "fk$$$c" type veth peer name eth0 netns "$ns"
  ip link set "fk$$$c" netns "$T_SW"
  ip -n "$T_SW" link set "fk$$$c" master sw0 up
  ip -n "$ns" addr add "$addr/24" dev eth0
  ip -n "$ns" link set eth0 up
}

# client_up NAME HOST ADDR: a client netns with a veth on HOST's bridge.
client_up() {
  local c=$1 h=$2 addr=$3 ns="${T_ID}-$1" hns="${T_ID}-$2" sub="HOST_${2}_SUBNET"
  local idx=${!sub##*.}
  ip netns add "$ns"
  T_NETNS+=("$ns")
  ip -n "$ns" link set lo up
  ip link add "fc$$$c" type veth peer name eth0 netns "$ns"
  ip link set "fc$$$c" netns "$hns"
  ip -n "$hns" link set "fc$$$c" master "fb${$}${idx}" up
  ip -n "$ns" addr add "$addr/24" dev eth0
  ip -n "$ns" link set eth0 up
}

in_ns() { local ns="${T_ID}-$1"; shift; nsenter --net="/var/run/netns/$ns" "$@"; }

# etcd_up HOST N: an etcd cluster of N members e1..eN inside HOST's netns, on
# its loopback (clients: 127.0.0.1:2379i, peers: 127.0.0.1:2380i), data in
# $T_DIR/etcd. Sets ETCD_URLS (comma-separated) and ETCD_PID_eI.
etcd_up() {
  local h=$1 n=$2 i cluster="" urls=""
  need etcd
  for i in $(seq 1 "$n"); do cluster+="${cluster:+,}e$i=http://127.0.0.1:2380$i"; done
  for i in $(seq 1 "$n"); do
    urls+="${urls:+,}http://127.0.0.1:2379$i"
    etcd_start "$h" "$i" "$cluster" new
  done
  ETCD_URLS=$urls
  for i in $(seq 1 "$n"); do etcd_wait "$h" "$i"; done
}
etcd_start() { # HOST I CLUSTER STATE
  local h=$1 i=$2
  mkdir -p "$T_DIR/etcd"
  nsenter --net="/var/run/netns/${T_ID}-$h" etcd --name "e$i" --data-dir "$T_DIR/etcd/e$i" \
    --listen-client-urls "http://127.0.0.1:2379$i" --advertise-client-urls "http://127.0.0.1:2379$i" \
    --listen-peer-urls "http://127.0.0.1:2380$i" --initial-advertise-peer-urls "http://127.0.0.1:2380$i" \
    --initial-cluster "$3" --initial-cluster-state "$4" --initial-cluster-token "$T_ID" \
    --heartbeat-interval 100 --election-timeout 1000 </dev/null >>"$T_DIR/etcd/e$i.log" 2>&1 &
  T_PIDS+=("$!")
  eval "ETCD_PID_e$i=$!"
}
etcd_wait() { # HOST I: until member I says it is healthy (bounded: 20 s)
  local j
  for j in $(seq 1 100); do
    in_ns "$1" curl -s -m 1 "http://127.0.0.1:2379$2/health" 2>/dev/null | grep -q '"health":"true"' && return 0
    sleep 0.2
  done
  tail -n 20 "$T_DIR/etcd/e$2.log" >&2
  fail "etcd member e$2 did not become healthy"
}

# Three coordinators on etcd (after etcd_up HOST 3 in the netns "gs"),
# coordinator K listening on $COORD_ADDR:700K with its socket $T_DIR/cK.sock
# and its log $T_DIR/cK.log; HA_COORD_ARGS (an array) adds options.
# coordinator k reaches etcd member j through its own proxy on
# 127.0.0.1:240kj: stopping coordinator k's proxies cuts it off from etcd only
ha_proxy_up() { # K
  local k=$1 j
  for j in 1 2 3; do
    nsenter --net="/var/run/netns/${T_ID}-gs" socat "TCP-LISTEN:240$k$j,bind=127.0.0.1,fork,reuseaddr" \
      "TCP:127.0.0.1:2379$j" </dev/null >/dev/null 2>&1 &
    T_PIDS+=("$!")
    eval "PROXY_${k}_$j=$!"
  done
}
ha_proxy_down() { # K
  local k=$1 j v
  for j in 1 2 3; do
    v="PROXY_${k}_$j"
    pkill -9 -P "${!v}" 2>/dev/null || true
    kill -9 "${!v}" 2>/dev/null || true
    wait "${!v}" 2>/dev/null || true
  done
}
ha_start() { # K [ENV=VALUE]
  local k=$1
  rm -f "$T_DIR/c$k.sock"
  env ${2:+"$2"} nsenter --net="/var/run/netns/${T_ID}-gs" "$FERRY_BUILD/ferry-coord" serve \
    --etcd "http://127.0.0.1:240${k}1,http://127.0.0.1:240${k}2,http://127.0.0.1:240${k}3" \
    --lease-ttl 4 --listen "$COORD_ADDR:700$k" --socket "$T_DIR/c$k.sock" \
    --token-file "$T_DIR/token" --heartbeat-timeout 5 ${HA_COORD_ARGS[@]+"${HA_COORD_ARGS[@]}"} </dev/null >>"$T_DIR/c$k.log" 2>&1 &
  T_PIDS+=("$!")
  eval "COORD_PID_$k=$!"
  local i
  for i in $(seq 1 50); do [ -S "$T_DIR/c$k.sock" ] && return 0; sleep 0.1; done
  tail -n 20 "$T_DIR/c$k.log" >&2
  fail "coordinator $k did not come up"
}
ha_kill() { # K
  local v="COORD_PID_$1"
  kill -9 "${!v}" 2>/dev/null || true
  wait "${!v}" 2>/dev/null || true
}
ha_api() { # K METHOD PATH [BODY] (a move with ?wait=1 is given 2 minutes)
  curl -s -m "$(case $3 in *wait=1*) echo 120 ;; *) echo 10 ;; esac)" --unix-socket "$T_DIR/c$1.sock" -X "$2" ${4:+-d "$4"} "http://localhost$3"
}
# the coordinators that say they lead (fails when more than one does)
ha_leaders() {
  local k out=""
  for k in 1 2 3; do
    ha_api "$k" GET /metrics 2>/dev/null | grep -q "^ferry_coord_leader 1" && out+="$k "
  done
  [ "$(echo "$out" | wc -w)" -le 1 ] || fail "more than one coordinator leads: $out"
  echo "${out% }"
}
ha_wait_leader() { # [NOT]: until one leads (other than NOT); bounded: 30 s
  local i l
  for i in $(seq 1 150); do
    l=$(ha_leaders)
    [ -n "$l" ] && [ "$l" != "${1:-}" ] && { echo "$l"; return 0; }
    sleep 0.2
  done
  fail "no coordinator leads (other than ${1:-none}): $(tail -n 5 "$T_DIR"/c*.log)"
}

# follow_plane: four satellites of one orbital plane, 2.4 minutes apart
# ($T_DIR/sats.tle: SAT-000-000 .. SAT-000-003, epoch $T0), a ground station
# under their track ($T_DIR/gs.json: GS) and a service kept there
# ($T_DIR/svc.json: svc, lead 60 s). Checks that the dry-run plan hands svc
# SAT-000-003 -> SAT-000-001 -> SAT-000-000; sets T0, C (ferry-coord) and
# PLAN_JSON (the plan, JSON).
follow_plane() {
  need /usr/bin/python3
  T0=2026-11-21T00:00:00Z
  C="$FERRY_BUILD/ferry-coord"
  "$C" sat shell --planes 1 --per-plane 40 --epoch $T0 >"$T_DIR/plane.tle"
  head -n 12 "$T_DIR/plane.tle" >"$T_DIR/sats.tle"
  "$C" sat ls --tle "$T_DIR/sats.tle" --at 2026-11-21T00:08:00Z --json >"$T_DIR/at8.json"
  /usr/bin/python3 - "$T_DIR/at8.json" "$T_DIR/gs.json" "$T_DIR/svc.json" <<'PYEOF'
import json, sys
sp = [s for s in json.load(open(sys.argv[1])) if s["name"] == "SAT-000-001"][0]["subpoint"]
json.dump([{"name": "GS", "lat": sp["lat_deg"], "lon": sp["lon_deg"], "alt_m": 0, "min_elevation": 10}], open(sys.argv[2], "w"))
json.dump([{"name": "svc", "station": "GS", "lead_s": 60}], open(sys.argv[3], "w"))
PYEOF
  "$C" plan --tle "$T_DIR/sats.tle" --stations "$T_DIR/gs.json" --services "$T_DIR/svc.json" \
    --from $T0 --to 2026-11-21T00:20:00Z --step 10
  PLAN_JSON=$("$C" plan --tle "$T_DIR/sats.tle" --stations "$T_DIR/gs.json" --services "$T_DIR/svc.json" \
    --from $T0 --to 2026-11-21T00:20:00Z --step 10 --json)
  local seq
  seq=$(echo "$PLAN_JSON" | /usr/bin/python3 -c 'import json,sys; print(" ".join(h["to"] for h in json.load(sys.stdin)))')
  [ "$seq" = "SAT-000-003 SAT-000-001 SAT-000-000" ] || fail "unexpected plan: $seq"
  check "dry-run plan: $seq"
}
# follow_service: busybox imported on a4 and svc started there with a volume
# holding a counter that goes up every 100 ms (/data/n)
follow_service() {
  make_rootfs
  f a4 image import "$T_DIR/busybox.tar" --name busybox >/dev/null
  f a4 run -d --name svc --ip "$CLUSTER_NET.60" -v state:/data busybox sh -c \
    'i=$(cat /data/n 2>/dev/null || echo 0); while true; do i=$((i+1)); echo $i > /data/n.new; mv /data/n.new /data/n; sleep 0.1; done' >/dev/null
}

# A busybox rootfs tarball with the static echo server: $T_DIR/busybox.tar
make_rootfs() {
  "$(dirname "${BASH_SOURCE[0]}")/../../scripts/mkrootfs" "$T_DIR/busybox.tar" \
    --add "$FERRY_BUILD/tests/echo-server"
}

cleanup() {
  local rc=$?
  set +e
  if [ "$rc" -ne 0 ] || [ "$T_FAILED" = 1 ]; then
    local h
    for h in "${T_HOSTS[@]}"; do
      echo "--- ferryd log of $h ---" >&2
      tail -n 40 "$T_DIR/$h/ferryd.log" >&2
    done
  fi
  local h
  for h in "${T_HOSTS[@]}"; do
    f "$h" ps -a --json 2>/dev/null | grep -o '"name": "[^"]*"' | cut -d'"' -f4 |
      while read -r n; do f "$h" rm -f "$n" >/dev/null 2>&1; done
  done
  local p i alive
  for p in "${T_PIDS[@]}"; do kill "$p" 2>/dev/null; done
  for i in $(seq 1 50); do  # bounded: 5 s, then SIGKILL
    alive=0
    for p in "${T_PIDS[@]}"; do kill -0 "$p" 2>/dev/null && alive=1; done
    [ "$alive" = 0 ] && break
    sleep 0.1
  done
  for p in "${T_PIDS[@]}"; do kill -9 "$p" 2>/dev/null; done
  for p in "${T_PIDS[@]}"; do wait "$p" 2>/dev/null; done
  # Whatever is left: containers, shims, mounts.
  for h in "${T_HOSTS[@]}"; do
    if [ -d "$T_DIR/$h/runc" ]; then
      for c in $(runc --root "$T_DIR/$h/runc" list -q 2>/dev/null); do
        runc --root "$T_DIR/$h/runc" delete -f "$c" >/dev/null 2>&1
      done
    fi
  done
  pkill -f "ferry-shim --log $T_DIR/" 2>/dev/null
  grep -o " $T_DIR[^ ]*" /proc/mounts | sort -r | while read -r m; do umount -l "$m" 2>/dev/null; done
  local ns
  # Container namespaces this test's agents made and could not remove.
  for ns in $(cat "$T_DIR"/*/root/containers/*/container.json 2>/dev/null |
              sed -n 's/.*"netns": "\(ferry-[0-9a-f]*\)".*/\1/p'); do
    ip netns del "$ns" 2>/dev/null
  done
  # Namespaces made ahead for incoming migrations (named by the container id
  # the migration's state file gives).
  for ns in $(cat "$T_DIR"/*/root/migrations/in-*/state.json 2>/dev/null |
              sed -n 's/.*"container_id": "\([0-9a-f]\{12\}\)[0-9a-f]*".*/ferry-\1/p'); do
    ip netns del "$ns" 2>/dev/null
  done
  for ns in "${T_NETNS[@]}"; do ip netns del "$ns" 2>/dev/null; done
  if [ -n "${FERRY_TEST_LOGS:-}" ]; then  # keep the agents' logs (e.g. for a sanitizer run)
    mkdir -p "$FERRY_TEST_LOGS"
    for h in "${T_HOSTS[@]}"; do
      cp "$T_DIR/$h/ferryd.log" "$FERRY_TEST_LOGS/$(basename "$0" .sh)-$h.log" 2>/dev/null
    done
  fi
  rm -rf "$T_DIR"
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM
