#!/usr/bin/env bash
# Memory integrity across moves, for every memory strategy. A container whose
# processes keep writing memory in a pattern checked page by page (memstress:
# transparent huge pages, ranges freed with MADV_DONTNEED and written again,
# mremap and munmap + mmap after the trackers were registered, a child forked
# again and again, shared anonymous memory) moves A -> B -> A -> B with
# precopy, stream, copy and lazy (post-copy); after each move every process
# checks every page; post-copy also over a 50 Mbit/s link, while a child is
# killed and forked again.
# Any stale or missing page fails the test. A pre-copied copy restores its
# memory lazily from the target's own images, and the next move waits until
# all of it is in (else the pages not yet in would be lost). Also: processes
# that end while a dump seizes them; a pre-copy move that fails
# at the target leaves no tracker behind on the source; a process holding a
# userfaultfd of its own (CRIU cannot dump one) fails to move and runs on
# where it was, its memory intact.
source "$(dirname "$0")/lib.sh"
criu check --feature mem_dirty_track >/dev/null 2>&1 ||
  fail "this CRIU cannot track memory changes (criu check --feature mem_dirty_track): run scripts/setup"
cluster_up 2
"$(dirname "$0")/../../scripts/mkrootfs" "$T_DIR/ms.tar" --add "$FERRY_BUILD/tests/memstress" >/dev/null
f a1 image import "$T_DIR/ms.tar" --name ms >/dev/null
url() { local v="HOST_${1}_URL"; echo "${!v}"; }

# Asks every memstress process of NAME on HOST to check its memory and waits
# for the leader's new line; fails on any BAD line.
checked() { # HOST NAME WHAT
  local h=$1 n=$2 what=$3 before i
  before=$(f "$h" logs "$n" 2>/dev/null | grep -c '^CHECK 1 OK' || true)
  f "$h" exec "$n" kill -USR1 1 || fail "$what: cannot signal memstress"
  for i in $(seq 1 100); do
    [ "$(f "$h" logs "$n" 2>/dev/null | grep -c '^CHECK 1 OK' || true)" -gt "$before" ] && break
    f "$h" logs "$n" | grep -q 'BAD' && break
    sleep 0.2
  done
  local bad
  bad=$(f "$h" logs "$n" | grep 'BAD' | head -3 || true)
  [ -z "$bad" ] || fail "$what: stale memory: $bad"
  [ "$(f "$h" logs "$n" | grep -c '^CHECK 1 OK')" -gt "$before" ] ||
    fail "$what: memstress did not answer: $(f "$h" logs "$n" | tail -3)"
}

# A post-copy move's report (OUT): the copy ran before its memory was there
# and the source's dump served every page before the move was called done;
# else says why and fails.
served() { # OUT
  python3 - "$1" <<'PY' 2>&1
import json, sys
r = json.loads(sys.argv[1])
if r["target"].get("post_copy") is not True:
    sys.exit("the target did not fetch the memory from the source: %s" % json.dumps(r["target"]))
pc = r.get("post_copy") or {}
if "served_ms" not in pc or "error" in pc:
    sys.exit("the source did not serve every page: %s" % json.dumps(pc))
PY
}

# What the lazy-pages daemon of the last move to HOST said (its log's errors,
# warnings and end).
daemon_said() { # HOST
  local dl
  dl=$(find "$T_DIR/$1/root" -name lazy-pages.log -newer "$T_DIR/token" -printf '%T@ %p\n' 2>/dev/null |
    sort -n | tail -n 1 | cut -d' ' -f2-)
  [ -n "$dl" ] || { echo "none"; return 0; }
  command grep -E "Error|Warn|exit|finish" "$dl" | tail -n 6 | tr '\n' ' ' || true
}

for mode in precopy stream copy lazy; do
  n=ms-$mode
  f a1 run -d --name "$n" ms /bin/memstress --mib 96 --all --rate 4000 >/dev/null
  for i in $(seq 1 50); do f a1 logs "$n" | grep -q ready && break; sleep 0.1; done
  checked a1 "$n" "$mode: before any move"
  from=a1 to=a2
  for hop in 1 2 3; do
    out=$(f "$from" --json migrate "$n" --to "$(url "$to")" --memory "$mode")
    echo "$out" | grep -q '"status": "succeeded"' || fail "$mode move $hop ($from -> $to): $out"
    echo "$out" | grep -q "\"memory\": \"$mode\"" || fail "$mode move $hop did not use $mode: $out"
    if [ "$mode" = precopy ]; then
      # the rounds: the first sends everything, a later one only what was written since
      why=$(python3 - "$out" <<'PY' 2>&1
import json, sys
r = json.loads(sys.argv[1])
rounds = [x for x in r["precopy"]["rounds"] if "error" not in x]
if len(rounds) < 2:
    sys.exit("fewer than two rounds")
# everything it has: memstress --all drops pages now and then
# (MADV_DONTNEED, munmap) that are absent until written again, a few
# hundred of its 24,576 at any moment (one run: 164 short of 96 MiB)
if rounds[0]["bytes"] < (96 << 20) * 9 // 10:
    sys.exit("the first round sent less than 90% of the memory")
if not any(x["trackers"] >= 1 for x in rounds):
    sys.exit("no process tracked")
if r["target"].get("lazy_memory") is not True:
    sys.exit("the target did not restore the memory lazily")
PY
) || fail "precopy move $hop: $why: $out"
    fi
    if [ "$mode" = lazy ]; then
      # post-copy: the copy ran before its memory was there; the source's
      # dump served every page before the move was called done
      why=$(served "$out") || {
        # what the target's lazy-pages daemon said (its agent notes its end within a second)
        sleep 2
        lz=$(grep -h "lazy-pages" "$T_DIR/$to/ferryd.log" | tail -n 2 | tr '\n' ' ' || true)
        fail "lazy move $hop ($from -> $to): $why; the target's agent: ${lz:-nothing about lazy-pages}; its daemon's log: $(daemon_said "$to")"
      }
    fi
    checked "$to" "$n" "$mode move $hop ($from -> $to)"
    tmp=$from; from=$to; to=$tmp
  done
  rounds=$(echo "$out" | python3 -c 'import json,sys; r=json.load(sys.stdin); print(" ".join(str(x.get("bytes", "x")) for x in r.get("precopy", {}).get("rounds", [])))')
  check "$mode: three moves, every page of every process as written (THP, DONTNEED, mremap, munmap, fork, shared)${rounds:+; rounds of the last move: $rounds bytes}"
  f "$from" rm -f "$n" >/dev/null
done
# Post-copy over a slow link (50 Mbit/s each way, a radio link's order):
# pages stay asked for and not yet answered for long, and memstress's child
# is killed and forked again meanwhile. The target's lazy-pages daemon must
# keep the memory an answer is received into until that answer is in, also
# for a process that ended or unmapped the range (criu/patches/0016: before
# it, one such move in two failed and its copy was killed). Four moves, each
# must serve every page and leave every page of every process as written.
link_limit a1 50mbit
link_limit a2 50mbit
f a1 run -d --name ms-slow ms /bin/memstress --mib 32 --all --rate 4000 >/dev/null
for i in $(seq 1 50); do f a1 logs ms-slow | grep -q ready && break; sleep 0.1; done
from=a1 to=a2
for hop in 1 2 3 4; do
  out=$(f "$from" --json migrate ms-slow --to "$(url "$to")" --memory lazy 2>&1) ||
    fail "ms-slow move $hop ($from -> $to) failed: $out"
  why=$(served "$out") || {
    sleep 2
    fail "ms-slow move $hop ($from -> $to) over a 50 Mbit/s link: $why; the target's daemon's log: $(daemon_said "$to")"
  }
  checked "$to" ms-slow "ms-slow move $hop ($from -> $to) over a 50 Mbit/s link"
  tmp=$from; from=$to; to=$tmp
done
f "$from" rm -f ms-slow >/dev/null
link_limit a1 off
link_limit a2 off
check "post-copy over a 50 Mbit/s link, a child killed and forked meanwhile: four moves, every page served and as written"

# the CRIU images of the committed moves go, the lazy ones' once their
# daemons are done (the agents' reapers, every second): no scratch stays
# mounted until the moves are pruned
left=x
for _ in $(seq 1 50); do  # bounded: 10 s
  left=$(find "$T_DIR"/a1/root/migrations "$T_DIR"/a2/root/migrations -mindepth 2 -maxdepth 2 -path "*/in-*/criu" 2>/dev/null)
  [ -z "$left" ] && break
  sleep 0.2
done
[ -z "$left" ] || fail "CRIU images left after the moves were committed: $left; mounts: $(grep -c "$T_DIR" /proc/mounts)"

# Processes that end while the dump seizes them: memstress --churn starts
# short-lived children (each exits at once or is killed; the kernel reaps
# them) thousands of times a second. CRIU must not wait for a child that
# died after it was interrupted (criu/patches/0007: before it, one dump in
# three hung for CRIU's 10 s timeout and failed). Six moves, each must work.
f a1 run -d --name ms-churn ms /bin/memstress --mib 8 --churn --rate 2000 >/dev/null
for i in $(seq 1 50); do f a1 logs ms-churn | grep -q ready && break; sleep 0.1; done
from=a1 to=a2
for hop in 1 2 3 4 5 6; do
  out=$(f "$from" --json migrate ms-churn --to "$(url "$to")" --memory stream 2>&1) ||
    fail "ms-churn move $hop ($from -> $to) failed: $out"
  tmp=$from; from=$to; to=$tmp
done
checked "$from" ms-churn "ms-churn after six moves"
f "$from" rm -f ms-churn >/dev/null
check "processes that end while they are seized: six moves, memory intact"

# Tracking: a process that writes slowly (no child coming and going, whose
# new memory goes whole in any round) is moved with precopy; the round after
# the first sends a small part of what the first sent, and the pages crossed
# compressed.
f a1 run -d --name ms-track ms /bin/memstress --mib 64 --rate 500 >/dev/null
for i in $(seq 1 50); do f a1 logs ms-track | grep -q ready && break; sleep 0.1; done
out=$(f a1 --json migrate ms-track --to "$(url a2)" --memory precopy)
echo "$out" | grep -q '"status": "succeeded"' || fail "ms-track: $out"
python3 - "$out" <<'PY' || fail "ms-track rounds: $out"
import json, sys
r = json.loads(sys.argv[1])
rounds = [x for x in r["precopy"]["rounds"] if "error" not in x]
assert len(rounds) >= 2, "fewer than two rounds"
assert rounds[0]["bytes"] >= 64 << 20, "the first round sent less than the memory"
assert rounds[1]["bytes"] < rounds[0]["bytes"] // 4, "the second round resent most of the memory"
assert r["precopy"]["compressed"] is True, "the pages did not cross compressed"
# memstress's pages are pseudo-random: they hardly compress, but never grow
assert rounds[0]["wire_bytes"] < rounds[0]["bytes"] * 1.01, "compressed pages took more bytes"
PY
checked a2 ms-track "ms-track after its move"
rounds=$(echo "$out" | python3 -c 'import json,sys; r=json.load(sys.stdin); print(" ".join("%d/%d" % (x["bytes"], x["wire_bytes"]) for x in r["precopy"]["rounds"]))')
f a2 rm -f ms-track >/dev/null
check "precopy tracks writes: rounds (bytes/on the wire) $rounds"

# A pre-copy move that fails at the target: the container runs on at a1 and
# no mapping of it stays registered with a tracker (smaps' "uw" flag).
host_restart a2 FERRY_FAULT=incoming-criu-restore:fail
f a1 run -d --name ms-fail ms /bin/memstress --mib 32 --rate 2000 >/dev/null
for i in $(seq 1 50); do f a1 logs ms-fail | grep -q ready && break; sleep 0.1; done
out=$(f a1 --json migrate ms-fail --to "$(url a2)" --memory precopy 2>&1) && fail "move with a failing restore succeeded: $out"
f a1 ps | grep -q "ms-fail .*running" || fail "ms-fail does not run on a1 after the failed move: $(f a1 ps -a)"
pid=$(f a1 inspect ms-fail | sed -n 's/^ *"pid": \([0-9]*\).*/\1/p' | head -1)
[ -n "$pid" ] && [ -r "/proc/$pid/smaps" ] || fail "no pid for ms-fail: $(f a1 inspect ms-fail)"
uw=$(grep '^VmFlags:' "/proc/$pid/smaps" | grep -c ' uw' || true)
[ "$uw" = 0 ] || fail "$uw mappings of ms-fail are still registered with a tracker after the failed move"
checked a1 ms-fail "after the failed pre-copy move"
f a1 rm -f ms-fail >/dev/null
host_restart a2
check "a failed pre-copy move: runs on at a1, memory intact, no tracker left"

# The same for a post-copy move: the source's dump, which holds the pages,
# is stopped before the container resumes at a1.
host_restart a2 FERRY_FAULT=incoming-criu-restore:fail
f a1 run -d --name ms-lfail ms /bin/memstress --mib 32 --all --rate 2000 >/dev/null
for i in $(seq 1 50); do f a1 logs ms-lfail | grep -q ready && break; sleep 0.1; done
out=$(f a1 --json migrate ms-lfail --to "$(url a2)" --memory lazy 2>&1) && fail "lazy move with a failing restore succeeded: $out"
f a1 ps | grep -q "ms-lfail .*running" || fail "ms-lfail does not run on a1 after the failed move: $(f a1 ps -a)"
checked a1 ms-lfail "after the failed post-copy move"
pgrep -f "criu dump .*--lazy-pages" >/dev/null && fail "a lazy dump's CRIU is left after the failed move: $(pgrep -af 'criu dump')"
f a1 rm -f ms-lfail >/dev/null
host_restart a2
check "a failed post-copy move: runs on at a1, memory intact, no CRIU left serving"

# Post-copy whose memory stops arriving: the target's lazy-pages daemon is
# killed right after the commit (fault point). The pages not in yet would
# read as zeros (the kernel drops the daemon's userfaultfd ranges with it):
# the copy is killed rather than run on with them, and the source's report
# says that not every page was served.
host_restart a2 FERRY_FAULT=incoming-lazy-pages:fail
f a1 run -d --name ms-lcut ms /bin/memstress --mib 256 --rate 2000 >/dev/null
for i in $(seq 1 50); do f a1 logs ms-lcut | grep -q ready && break; sleep 0.1; done
out=$(f a1 --json migrate ms-lcut --to "$(url a2)" --memory lazy 2>&1) ||
  fail "the cut post-copy move did not commit: $out"
python3 - "$out" <<'PY' || fail "ms-lcut: the source's report does not say the pages were not all served: $out"
import json, sys
r = json.loads(sys.argv[1])
assert "error" in (r.get("post_copy") or {}), r.get("post_copy")
PY
for i in $(seq 1 100); do
  f a2 ps -a | grep -q "ms-lcut .*running" || break
  sleep 0.1
done
f a2 ps -a | grep -q "ms-lcut .*running" && fail "the copy whose memory stopped arriving still runs: $(f a2 ps -a)"
f a2 logs ms-lcut 2>/dev/null | grep -q BAD && fail "the cut copy ran with stale memory: $(f a2 logs ms-lcut | grep BAD | head -2)"
grep -q "the copy is killed" "$T_DIR/a2/ferryd.log" || fail "a2 did not say why the copy was killed"
f a2 rm -f ms-lcut >/dev/null
host_restart a2
check "post-copy cut halfway: the copy is killed, not run on with missing pages; the source says so"

# A process holding its own userfaultfd: not tracked, and CRIU cannot dump
# it, so the move fails and the container runs on at a1.
f a1 run -d --name ms-uffd ms /bin/memstress --mib 16 --uffd --rate 2000 >/dev/null
for i in $(seq 1 50); do f a1 logs ms-uffd | grep -q ready && break; sleep 0.1; done
out=$(f a1 --json migrate ms-uffd --to "$(url a2)" --memory precopy 2>&1) && fail "a container holding a userfaultfd moved: $out"
f a1 ps | grep -q "ms-uffd .*running" || fail "ms-uffd does not run on a1: $(f a1 ps -a)"
checked a1 ms-uffd "a process with its own userfaultfd after the refused move"
grep -q "uses a userfaultfd of its own" "$T_DIR"/a1/root/migrations/out-*/pre/r0/pre-dump.log 2>/dev/null ||
  log "(the pre-dump log of the userfaultfd case is gone with the move's directory)"
check "a process with its own userfaultfd: the move fails, it runs on at a1 with its memory intact"
