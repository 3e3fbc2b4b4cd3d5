#!/bin/bash
# The target prepares its restore before the source freezes the container
# when the container did not change its rootfs during pre-copy; the changes
# made between that prepare and the freeze still arrive (the target takes
# its overlay down and up again around them); a container that keeps
# writing its rootfs is prepared after its changes, as before. Each service
# appends a counter to a file: after every move the file must count 1..N
# without a gap or a repeat, and go on counting.
source "$(dirname "$0")/lib.sh"
need python3
cluster_up 2
make_rootfs
for h in a1 a2; do f "$h" image import "$T_DIR/busybox.tar" --name bb >/dev/null; done

# lines of FILE in container NAME on HOST are 1, 2, ... N; prints N
counted() { # HOST NAME FILE
  local out
  f "$1" exec "$2" cat "$3" >"$T_DIR/counted" || fail "$2 on $1: cannot read $3"
  out=$(python3 -c '
import sys
lines = open(sys.argv[1]).read().split()
bad = [f"line {i + 1} reads {v}" for i, v in enumerate(lines) if v != str(i + 1)]
print(bad[0] if bad else len(lines))' "$T_DIR/counted")
  case "$out" in ''|*[!0-9]*) fail "$2 on $1: $3 does not count on: $out" ;; esac
  echo "$out"
}
field() { python3 -c "import json,sys; d=json.load(sys.stdin); print(json.dumps(eval('d' + sys.argv[1])))" "$1"; }
move() { # NAME FROM TO: the report
  local urlv="HOST_${3}_URL" out
  out=$(f "$2" --json migrate "$1" --to "${!urlv}") || fail "migrate $1 $2 -> $3: $out"
  [ "$(echo "$out" | field "['status']")" = '"succeeded"' ] || fail "migrate $1 $2 -> $3: $out"
  echo "$out"
}
grows() { # HOST NAME FILE BEFORE
  local n i
  for i in $(seq 1 50); do
    n=$(counted "$1" "$2" "$3")
    [ "$n" -gt "$4" ] && return 0
    sleep 0.1
  done
  fail "$2 on $1 stopped counting at $n"
}

# 1. a service that writes only its volume: prepared early
f a1 run -d --name vw -v vw-data:/data --ip "$CLUSTER_NET.21" bb \
  sh -c 'i=0; while true; do i=$((i+1)); echo $i >> /data/log; sleep 0.05; done' >/dev/null
sleep 3 # what its start wrote into its rootfs is older than pre-copy then
out=$(move vw a1 a2)
[ "$(echo "$out" | field "['prepared_early']")" = true ] || fail "not prepared before the freeze: $out"
[ "$(echo "$out" | field "['target']['prepared']")" = true ] || fail "not prepared: $out"
n=$(counted a2 vw /data/log)
grows a2 vw /data/log "$n"
check "a service writing only its volume: its target prepared before the freeze, its volume counts on (1..$n, then more)"

# 2. one that keeps writing its rootfs: prepared after its changes
f a1 run -d --name rw --ip "$CLUSTER_NET.22" bb \
  sh -c 'i=0; while true; do i=$((i+1)); echo $i >> /count.log; sleep 0.05; done' >/dev/null
sleep 3
out=$(move rw a1 a2)
[ "$(echo "$out" | field "['prepared_early']")" = false ] || fail "prepared early although its rootfs changed: $out"
[ "$(echo "$out" | field "['target']['prepared']")" = true ] || fail "not prepared: $out"
n=$(counted a2 rw /count.log)
grows a2 rw /count.log "$n"
check "a service writing its rootfs: prepared after its changes, its rootfs counts on (1..$n, then more)"

# 3. the same prepared early anyway: its rootfs changes since come after
# the prepare, and the target makes its overlay again around them
host_restart a2 FERRY_PREPARE_EARLY=always
out=$(move rw a2 a1)
[ "$(echo "$out" | field "['prepared_early']")" = true ] || fail "not prepared early when told: $out"
n=$(counted a1 rw /count.log)
grows a1 rw /count.log "$n"
out=$(move vw a2 a1)
n=$(counted a1 vw /data/log)
grows a1 vw /data/log "$n"
check "rootfs changes after an early prepare arrive (the overlay made again): counts on (1..$n, then more)"
echo "# all checks passed"
