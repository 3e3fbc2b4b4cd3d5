#!/usr/bin/env bash
# A move slower than the agents' migration timeout. The hosts' links are
# limited to 24 Mbit/s (tbf), the agents drop an offered move after 5 s
# without a finished step, and 48 MiB of memory cross in one page stream
# (~17 s inside the freeze) and in one pre-copy round. The target keeps the
# move while its page server receives (progress, not silence): before, it
# dropped the move halfway and the move failed ("no such migration"). The
# memory is checked page by page after each move.
source "$(dirname "$0")/lib.sh"
T_MIGRATION_TIMEOUT=5 cluster_up 2
"$(dirname "$0")/../../scripts/mkrootfs" "$T_DIR/ms.tar" --add "$FERRY_BUILD/tests/memstress" >/dev/null
f a1 image import "$T_DIR/ms.tar" --name ms >/dev/null
for i in 1 2; do
  in_ns "a$i" tc qdisc replace dev "fu$$$i" root tbf rate 24mbit burst 64kb latency 400ms ||
    fail "cannot limit a$i's link"
done
f a1 run -d --name slow ms /bin/memstress --mib 48 --rate 50 >/dev/null
for i in $(seq 1 50); do f a1 logs slow | grep -q ready && break; sleep 0.1; done

checked() { # HOST WHAT
  local before i
  before=$(f "$1" logs slow | grep -c '^CHECK 1 OK' || true)
  f "$1" exec slow kill -USR1 1 || fail "$2: cannot signal memstress"
  for i in $(seq 1 100); do
    [ "$(f "$1" logs slow | grep -c '^CHECK 1 OK' || true)" -gt "$before" ] && return 0
    f "$1" logs slow | grep -q BAD && break
    sleep 0.2
  done
  fail "$2: memory check: $(f "$1" logs slow | grep -E 'BAD|CHECK' | tail -2)"
}

url() { local v="HOST_${1}_URL"; echo "${!v}"; }
out=$(f a1 --json migrate slow --to "$(url a2)" --memory stream --timeout 120 2>&1) ||
  fail "a stream move longer than the agents' migration timeout failed: $(brief "$out")"
echo "$out" | grep -q '"status": "succeeded"' || fail "stream: $out"
# the premise: the move outlasted the agents' timeout (else this proves nothing)
dt=$(echo "$out" | python3 -c 'import json,sys; print(json.load(sys.stdin)["downtime_ms"])')
[ "$dt" -gt 5000 ] || fail "the stream took $dt ms: the link limit did not hold, nothing was tested"
checked a2 "after the slow stream move"
check "a page stream longer than the migration timeout ($dt ms inside the freeze) completes; memory intact"

if criu check --feature mem_dirty_track >/dev/null 2>&1; then
  out=$(f a2 --json migrate slow --to "$(url a1)" --memory precopy --timeout 120 2>&1) ||
    fail "a pre-copy move whose first round outlasts the migration timeout failed: $(brief "$out")"
  r0=$(echo "$out" | python3 -c 'import json,sys; print(json.load(sys.stdin)["precopy"]["rounds"][0]["ms"])')
  [ "$r0" -gt 5000 ] || fail "round 0 took $r0 ms: the link limit did not hold, nothing was tested"
  checked a1 "after the slow pre-copy move"
  check "a pre-copy round longer than the migration timeout ($r0 ms) completes; memory intact"
else
  fail "this CRIU cannot track memory changes (criu check --feature mem_dirty_track): run scripts/setup"
fi
