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
fail() { printf 'FAIL: %s\n' "$*" >&2; T_FAILED=1; exit 1; }
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

# host_up NAME INDEX: a host netns with its own ferryd; subnet 198.18.INDEX.0/24
host_up() {
  local h=$1 idx=$2 ns="${T_ID}-$1"
  ip netns add "$ns"
  T_NETNS+=("$ns")
  ip -n "$ns" link set lo up
  mkdir -p "$T_DIR/$h"
  T_HOSTS+=("$h")
  eval "HOST_${h}_NS=$ns"
  eval "HOST_${h}_SUBNET=198.18.$idx"
  nsenter --net="/var/run/netns/$ns" "$FERRYD_BIN" --root "$T_DIR/$h/root" \
    --socket "$T_DIR/$h/ferryd.sock" --runc-root "$T_DIR/$h/runc" \
    --bridge "fb${$}${idx}" --subnet "198.18.$idx.0/24" ${FERRYD_ARGS:-} \
    >>"$T_DIR/$h/ferryd.log" 2>&1 &
  T_PIDS+=($!)
  eval "HOST_${h}_PID=$!"
  local i
  for i in $(seq 1 100); do
    [ -S "$T_DIR/$h/ferryd.sock" ] && f "$h" info >/dev/null 2>&1 && return 0
    sleep 0.1
  done
  cat "$T_DIR/$h/ferryd.log" >&2
  fail "ferryd on $h did not come up"
}

# Restarts host H's ferryd (containers keep running).
host_restart() {
  local h=$1 pidvar="HOST_${1}_PID" nsvar="HOST_${1}_NS" idx
  kill "${!pidvar}"; wait "${!pidvar}" 2>/dev/null || true
  local sub="HOST_${1}_SUBNET"; idx=${!sub##*.}
  nsenter --net="/var/run/netns/${!nsvar}" "$FERRYD_BIN" --root "$T_DIR/$h/root" \
    --socket "$T_DIR/$h/ferryd.sock" --runc-root "$T_DIR/$h/runc" \
    --bridge "fb${$}${idx}" --subnet "198.18.$idx.0/24" ${FERRYD_ARGS:-} \
    >>"$T_DIR/$h/ferryd.log" 2>&1 &
  T_PIDS+=($!)
  eval "HOST_${h}_PID=$!"
  local i
  for i in $(seq 1 100); do
    f "$h" info >/dev/null 2>&1 && return 0
    sleep 0.1
  done
  fail "ferryd on $h did not come back"
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
  local p
  for p in "${T_PIDS[@]}"; do kill "$p" 2>/dev/null; done
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
  for ns in "${T_NETNS[@]}"; do ip netns del "$ns" 2>/dev/null; done
  rm -rf "$T_DIR"
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM
