#!/usr/bin/env bash
# Migrations do not hold an agent hostage, and never leave two copies:
# - X moves a1 -> a2 while Y moves a2 -> a1, each with a live TCP client:
#   both succeed, no reset, every byte echoed, each on exactly one host;
# - `ferry ps` and /health on the source answer while a container with
#   1 GiB of memory is frozen and dumped (their latency goes to the
#   benchmark, not into a pass/fail bound);
# - a restore on the target that outlasts the source's timeout and then
#   succeeds: the source resumes, the target's late copy is killed, never
#   committed: exactly one copy runs, and the client's connection survives;
# - five containers move around a ring of three agents at once.
source "$(dirname "$0")/lib.sh"
need curl
cluster_up 3
cluster_client c1 "$CLUSTER_NET.250"
"$(dirname "$0")/../../scripts/mkrootfs" "$T_DIR/busybox.tar" \
  --add "$FERRY_BUILD/tests/echo-server" --add "$FERRY_BUILD/tests/memhog"
for h in a1 a2 a3; do f "$h" image import "$T_DIR/busybox.tar" --name busybox >/dev/null; done
TOK=$(cat "$T_DIR/token")

# where NAME: the hosts on which NAME exists (running or not)
where() {
  local h out=""
  for h in a1 a2 a3; do
    f "$h" ps -a --json | grep -q "\"name\": \"$1\"" && out="$out $h"
  done
  echo "${out# }"
}
echo_ctr() { # HOST NAME ADDR
  f "$1" run -d --name "$2" --ip "$3" busybox /bin/echo-server 7000 >/dev/null
}

# 1. opposite directions at the same moment
echo_ctr a1 x "$CLUSTER_NET.11"
echo_ctr a2 y "$CLUSTER_NET.12"
sleep 0.5
in_ns c1 "$FERRY_BUILD/tests/tcp-client" "$CLUSTER_NET.11" 7000 60000 20 "$T_DIR/stop1" >"$T_DIR/cx.out" 2>&1 &
cx=$!
in_ns c1 "$FERRY_BUILD/tests/tcp-client" "$CLUSTER_NET.12" 7000 60000 20 "$T_DIR/stop1" >"$T_DIR/cy.out" 2>&1 &
cy=$!
sleep 1
f a1 --json migrate x --to "$HOST_a2_URL" --timeout 60 >"$T_DIR/mx.out" 2>&1 &
mx=$!
f a2 --json migrate y --to "$HOST_a1_URL" --timeout 60 >"$T_DIR/my.out" 2>&1 &
my=$!
rx=0 ry=0
wait "$mx" || rx=$?
wait "$my" || ry=$?
[ "$rx" = 0 ] && grep -q '"status": "succeeded"' "$T_DIR/mx.out" || fail "x a1 -> a2: $(cat "$T_DIR/mx.out")"
[ "$ry" = 0 ] && grep -q '"status": "succeeded"' "$T_DIR/my.out" || fail "y a2 -> a1: $(cat "$T_DIR/my.out")"
[ "$(where x)" = a2 ] || fail "x is on: $(where x)"
[ "$(where y)" = a1 ] || fail "y is on: $(where y)"
f a2 ps | grep -q "x .*running" || fail "x not running on a2"
f a1 ps | grep -q "y .*running" || fail "y not running on a1"
sleep 1
touch "$T_DIR/stop1"
for p in $cx $cy; do wait "$p" || fail "a TCP client failed: $(cat "$T_DIR/cx.out" "$T_DIR/cy.out")"; done
check "a1 -> a2 and a2 -> a1 at once: both succeeded, each on one host, both clients kept their connection ($(cat "$T_DIR/cx.out"); $(cat "$T_DIR/cy.out"))"

# 2. the source answers while a 1 GiB container is frozen
f a1 run -d --name big --ip "$CLUSTER_NET.13" busybox /bin/memhog 1024 >/dev/null
for i in $(seq 1 300); do  # filling 1 GiB: bounded, 30 s
  rss=$(f a1 exec big sh -c 'grep VmRSS /proc/1/status' | tr -dc 0-9)
  [ "${rss:-0}" -gt 1000000 ] && break
  sleep 0.1
done
[ "${rss:-0}" -gt 1000000 ] || fail "memhog did not fill 1 GiB (VmRSS ${rss} kB)"
# --memory stream: the 1 GiB crosses inside the freeze, seconds long (pre-copy
# would leave too short a freeze to be sure of an answer inside it)
f a1 --json migrate big --to "$HOST_a2_URL" --timeout 300 --memory stream >"$T_DIR/mbig.out" 2>&1 &
mbig=$!
frozen_answers=0 n=0
: >"$T_DIR/latency"
while kill -0 "$mbig" 2>/dev/null && [ "$n" -lt 3000 ]; do
  n=$((n + 1))
  before=$(curl -s --unix-socket "$T_DIR/a1/ferryd.sock" http://ferry/v1/migrations |
           grep -o '"phase": *"[a-z]*"' | head -1 | cut -d'"' -f4)
  t0=$(date +%s%N)
  f a1 ps >/dev/null || fail "ferry ps failed during the migration"
  code=$(in_ns c1 curl -s -o /dev/null -w '%{http_code}' -m 30 "http://$CLUSTER_NET.241:9000/health")
  [ "$code" = 200 ] || fail "/health answered $code during the migration"
  t1=$(date +%s%N)
  phase=$(curl -s --unix-socket "$T_DIR/a1/ferryd.sock" http://ferry/v1/migrations |
          grep -o '"phase": *"[a-z]*"' | head -1 | cut -d'"' -f4)
  echo "$before $phase $(( (t1 - t0) / 1000000 ))" >>"$T_DIR/latency"
  # both answers came while it was frozen: frozen before the calls and still
  # (or again) after them
  case "$before/$phase" in
    freeze/freeze|freeze/dump|freeze/transfer|freeze/restore|dump/dump|dump/transfer|dump/restore|\
    transfer/transfer|transfer/restore|restore/restore) frozen_answers=$((frozen_answers + 1)) ;;
  esac
done
wait "$mbig" || fail "1 GiB migration: $(cat "$T_DIR/mbig.out")"
grep -q '"status": "succeeded"' "$T_DIR/mbig.out" || fail "1 GiB migration: $(cat "$T_DIR/mbig.out")"
[ "$frozen_answers" -gt 0 ] || fail "no answer of ps and /health arrived while the container was frozen: $(cat "$T_DIR/latency")"
[ "$(where big)" = a2 ] || fail "big is on: $(where big)"
f a2 rm -f big >/dev/null
check "1 GiB container: ps and /health on the source answered $frozen_answers times while it was frozen (ms: $(awk '{print $3}' "$T_DIR/latency" | sort -n | tail -1) at most)"

# 3. a restore that outlasts the source's timeout, then succeeds on the
# target: the source resumes at its timeout, the late copy is killed on the
# target, never committed: exactly one copy, the client's connection lives.
host_restart a3 FERRY_FAULT=incoming-criu-restore:delay=8000
echo_ctr a1 z "$CLUSTER_NET.14"
sleep 0.5
in_ns c1 "$FERRY_BUILD/tests/tcp-client" "$CLUSTER_NET.14" 7000 120000 50 "$T_DIR/stop3" >"$T_DIR/cz.out" 2>&1 &
cz=$!
sleep 1
out=$(f a1 --json migrate z --to "$HOST_a3_URL" --timeout 6 2>&1) && fail "slow restore: the migration succeeded within its timeout: $out"
echo "$out" | grep -q '"resumed_on_source": true' || fail "slow restore: not resumed on the source: $out"
for i in $(seq 1 100); do  # the target finishes its restore, then kills the copy (bounded: 20 s)
  grep -q "withdrawn by the source" "$T_DIR/a3/ferryd.log" && [ -z "$(f a3 ps -a --json | grep '"name"')" ] && break
  sleep 0.2
done
grep -q "restored here" "$T_DIR/a3/ferryd.log" || fail "the target never finished its restore: the case was not exercised"
[ "$(where z)" = a1 ] || fail "z is on: $(where z)"
f a1 ps | grep -q "z .*running" || fail "z does not run on a1"
sleep 1
touch "$T_DIR/stop3"
wait "$cz" || fail "client of z: $(cat "$T_DIR/cz.out")"
host_restart a3
check "restore slower than the source's timeout: the source resumed, the target's late copy was killed, never committed: one copy, the client kept its connection ($(cat "$T_DIR/cz.out"))"

# 4. five containers around a ring of three agents at once
f a2 rm -f x >/dev/null; f a1 rm -f y >/dev/null; f a1 rm -f z >/dev/null
declare -A from=([r1]=a1 [r2]=a2 [r3]=a3 [r4]=a1 [r5]=a2)
declare -A to=([a1]=a2 [a2]=a3 [a3]=a1)
k=20
for c in r1 r2 r3 r4 r5; do k=$((k + 1)); echo_ctr "${from[$c]}" "$c" "$CLUSTER_NET.$k"; done
sleep 0.5
pids=()
for c in r1 r2 r3 r4 r5; do
  dst=${to[${from[$c]}]} url="HOST_${to[${from[$c]}]}_URL"
  f "${from[$c]}" --json migrate "$c" --to "${!url}" --timeout 120 >"$T_DIR/ring-$c.out" 2>&1 &
  pids+=($!)
done
for p in "${pids[@]}"; do wait "$p" || true; done
for c in r1 r2 r3 r4 r5; do
  grep -q '"status": "succeeded"' "$T_DIR/ring-$c.out" || fail "ring: $c: $(cat "$T_DIR/ring-$c.out")"
  [ "$(where "$c")" = "${to[${from[$c]}]}" ] || fail "ring: $c is on '$(where "$c")', expected ${to[${from[$c]}]}"
done
check "five containers moved around a ring of three agents at once: 5 of 5 succeeded, each on exactly one host"
echo "# all checks passed"
