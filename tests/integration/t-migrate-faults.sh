#!/usr/bin/env bash
# Nothing is lost when a migration fails before the target confirms: for each
# cause — the target agent dies, the target's disk is full (injected, and a
# real small tmpfs filled up), CRIU fails on the
# target, the target hangs (timeout), the link breaks, the source agent dies
# mid-migration — the container resumes on the source with its memory, files
# and TCP connection intact, and the target ends up with nothing of it.
source "$(dirname "$0")/lib.sh"
cluster_up 2
cluster_client c1 "$CLUSTER_NET.250"
make_rootfs
f a1 image import "$T_DIR/busybox.tar" --name busybox >/dev/null
ADDR="$CLUSTER_NET.20"
f a1 run -d --name svc --ip "$ADDR" -v keep:/data busybox sh -c \
  '/bin/echo-server 7000 & i=0; while true; do i=$((i+1)); echo $i > /tmp/count.new; mv /tmp/count.new /tmp/count; sleep 0.1; done' >/dev/null
f a1 exec svc sh -c 'echo precious > /data/file; echo changed > /etc/motd'
in_ns c1 "$FERRY_BUILD/tests/tcp-client" "$ADDR" 7000 240000 50 "$T_DIR/stop-client" >"$T_DIR/client.out" 2>&1 &
client=$!
sleep 1

# counting HOST: svc's counter on HOST goes on (bounded: 10 s, not a fixed
# sleep: a loaded machine may take a while to schedule the resumed loop);
# prints "BEFORE AFTER" (AFTER > BEFORE unless it stopped)
counting() {
  local b a _
  b=$(f "$1" exec svc cat /tmp/count)
  for _ in $(seq 1 50); do
    a=$(f "$1" exec svc cat /tmp/count)
    [ "$a" -gt "$b" ] && break
    sleep 0.2
  done
  echo "$b $a"
}

# svc must run on a1 as before: same process (counter never restarts), its
# files, and a2 must hold nothing of it.
intact() {
  local what=$1 before after
  f a1 ps | grep -q "svc .*running" || fail "$what: svc not running on a1: $(f a1 ps -a)"
  read -r before after <<<"$(counting a1)"
  [ "$after" -gt "$before" ] || fail "$what: counter stopped ($before -> $after)"
  [ "$after" -ge "${LAST_COUNT:-0}" ] || fail "$what: counter restarted (${LAST_COUNT} -> $after)"
  LAST_COUNT=$after
  [ "$(f a1 exec svc cat /data/file)" = precious ] || fail "$what: volume contents lost"
  [ "$(f a1 exec svc cat /etc/motd)" = changed ] || fail "$what: rootfs change lost"
  kill -0 "$client" 2>/dev/null || fail "$what: the TCP client died: $(cat "$T_DIR/client.out")"
  local i
  for i in $(seq 1 50); do  # the target may still be cleaning up (bounded: 10 s)
    if [ -z "$(f a2 ps -a --json | grep '"name"')" ] && [ "$(f a2 volume ls --json | tr -d ' \n')" = "[]" ] &&
       [ -z "$(ls -A "$T_DIR/a2/root/migrations")" ] && [ -z "$(ls -A "$T_DIR/a2/root/layers")" ] &&
       [ "$(f a2 images --json | tr -d ' \n')" = "[]" ]; then
      return 0
    fi
    sleep 0.2
  done
  fail "$what: a2 kept something: $(f a2 ps -a) $(f a2 volume ls) $(ls -A "$T_DIR/a2/root/migrations" "$T_DIR/a2/root/layers")"
}

migrate_fails() { # WHAT PATTERN [migrate args]
  local what=$1 pattern=$2; shift 2
  local out rc=0
  out=$(f a1 migrate svc --to "$HOST_a2_URL" "$@" 2>&1) || rc=$?
  [ "$rc" != 0 ] || fail "$what: migration succeeded: $out"
  echo "$out" | grep -Eq "$pattern" || fail "$what: error does not match /$pattern/: $out"
  echo "$out" | grep -q "runs on the source as before" || fail "$what: no word of the resume: $out"
}

# 1. the target agent dies when asked to restore (the pages are already there)
host_restart a2 FERRY_FAULT=incoming-restore:exit
migrate_fails "target dies" "phase restore"
host_restart a2
intact "target agent died at restore"
check "target agent dies at restore: source resumed, target cleaned up on restart"

# 2. the target's disk is full during pre-copy
host_restart a2 FERRY_FAULT=incoming-put:enospc
migrate_fails "disk full" "phase precopy.*No space left on device"
intact "target disk full"
check "target disk full: source resumed, target kept nothing"

# 2b. the target's disk really is full: its root on a small tmpfs, filled
# (a) to the last block: the offer's own record cannot be written; (b) to
# less than the image's layers: a layer cannot be received. Each time the
# move fails naming the full disk and the source runs on as before.
stop_agent a2
mount -t tmpfs -o size=32m tmpfs "$T_DIR/a2/root"
start_agent a2
layers_kib=$(( $(stat -c %s "$T_DIR/busybox.tar") / 1024 ))
for free_kib in 0 $((layers_kib / 2)); do
  rm -f "$T_DIR/a2/root/fill"
  avail=$(df -k --output=avail "$T_DIR/a2/root" | tail -1 | tr -d ' ')
  dd if=/dev/zero of="$T_DIR/a2/root/fill" bs=1K count=$((avail - free_kib)) 2>/dev/null || true
  migrate_fails "disk really full ($free_kib KiB free)" "No space left on device|disk is full"
  # (its scratch goes with the failed move; the fill stays: nothing else is left)
  rm -f "$T_DIR/a2/root/fill"
  intact "target disk really full ($free_kib KiB free)"
done
stop_agent a2
umount "$T_DIR/a2/root"
start_agent a2
check "target's disk really full (a tmpfs filled to 0 and to half the layers): the move fails naming it, the source runs on, the target keeps nothing"

# 3. CRIU/runc fails on the target
host_restart a2 FERRY_FAULT=incoming-criu-restore:fail
migrate_fails "restore fails" "phase restore.*injected fault"
intact "restore failed on target"
check "CRIU restore fails on the target: source resumed, target removed what it received"

# 4. the target hangs: the source gives up at its timeout
host_restart a2 FERRY_FAULT=incoming-restore:hang
# (how long the freeze lasted is the benchmark's to measure, not a pass/fail bound)
migrate_fails "timeout" "phase restore.*(Timeout|timed out)" --timeout 8
stop_agent a2 KILL
start_agent a2
intact "target hung"
check "target hangs: source resumed after its timeout; the target cleaned up on restart"

# 5. the link breaks during pre-copy
host_restart a2 FERRY_FAULT=incoming-put:delay=3000
( sleep 1; ip -n "$T_SW" link set "$HOST_a2_LINK" down ) &
cutter=$!
migrate_fails "link breaks" "phase precopy" --timeout 6
wait "$cutter"
ip -n "$T_SW" link set "$HOST_a2_LINK" up
host_restart a2
intact "link broke"
check "link breaks: source resumed; the target dropped the migration"

# 6. the source agent dies while the container is frozen and off the network
host_restart a1 FERRY_FAULT=source-frozen:exit
f a1 migrate svc --to "$HOST_a2_URL" >/dev/null 2>&1 || true
sleep 0.5
host_restart a1
intact "source agent died mid-migration"
check "source agent dies mid-migration: resumed on restart, target cleaned up"

# and afterwards a clean migration still works
f a1 migrate svc --to "$HOST_a2_URL" >/dev/null
f a2 ps | grep -q "svc .*running" || fail "final migration"
check "a clean migration succeeds after all that"
# 7. back again (a2 -> a1), and a2's agent dies right after a1 committed:
# on restart a2 finds its older record of the move that brought svc there;
# the newest (the move away) decides: a1 runs svc, a2 removes its copy, and
# nothing on a2 can be resumed.
host_restart a2 FERRY_FAULT=source-committed:exit
f a2 migrate svc --to "$HOST_a1_URL" >/dev/null 2>&1 || true
for _ in $(seq 1 100); do kill -0 "$HOST_a2_PID" 2>/dev/null || break; sleep 0.1; done
grep -q "injecting exit at source-committed" "$T_DIR/a2/ferryd.log" || fail "the fault point source-committed was not reached"
host_restart a2
f a1 ps | grep -q "svc .*running" || fail "svc not running on a1 after a2 died past the commit: $(f a1 ps -a)"
f a2 ps -a | grep -Eq "svc .*(running|paused)" && fail "a2 woke its stale copy: $(f a2 ps -a)"
expect_fail "" f a2 resume svc
f a2 ps -a | grep -Eq "svc .*(running|paused)" && fail "ferry resume on a2 ran a second copy: $(f a2 ps -a)"
check "the source dies right after the commit of a return move: one copy (on a1), the older incoming record on a2 wakes nothing, resume refused"
# 8. the source cannot record that it sends the commit (its disk is full):
# no commit is sent, the target drops its copy, svc resumes on a1
moved_back_ok() { # WHAT
  f a1 ps | grep -q "svc .*running" || fail "$1: svc not running on a1: $(f a1 ps -a)"
  local b a
  read -r b a <<<"$(counting a1)"
  [ "$a" -gt "$b" ] || fail "$1: counter stopped ($b -> $a)"
  for _ in $(seq 1 50); do  # bounded: 10 s
    f a2 ps -a | grep -q " svc " || return 0
    sleep 0.2
  done
  fail "$1: a2 kept a copy: $(f a2 ps -a)"
}
host_restart a1 FERRY_FAULT=source-commit-record:enospc
migrate_fails "source cannot record the commit" "cannot record that the commit is sent"
moved_back_ok "source cannot record the commit"
host_restart a1
check "the source's record of the commit cannot be written: no commit sent, svc runs on a1, a2 has no copy"

# 9. the target cannot record that it runs the copy (the commit's decision):
# it never brings it up, removes it, and the source resumes
host_restart a2 FERRY_FAULT=incoming-state-running:enospc
migrate_fails "target cannot record the commit" "commit"
moved_back_ok "target cannot record the commit"
host_restart a2
f a1 migrate svc --to "$HOST_a2_URL" >/dev/null || fail "a migration after the full disks"
f a2 ps | grep -q "svc .*running" || fail "svc not on a2 after the full disks"
check "the target's record of the commit cannot be written: its copy never runs and goes, svc resumes on a1; then a move succeeds"

# 9b. the target's restore fails after CRIU restored the processes (runc's
# end, awaited only at the commit): the copy never runs and goes, the
# source resumes its own
f a2 migrate svc --to "$HOST_a1_URL" >/dev/null || fail "moving svc back to a1"
host_restart a2 FERRY_FAULT=incoming-restore-tail:fail
migrate_fails "restore fails after CRIU's" "restore failed"
moved_back_ok "restore fails after CRIU's"
host_restart a2
f a1 migrate svc --to "$HOST_a2_URL" >/dev/null || fail "a migration after the failed restore"
check "the target's restore fails after CRIU's part (runc's end, awaited at the commit): its copy never runs and goes, svc resumes on a1"

# The commit in doubt, under real faults (svc is on a2 now).
gone_from() { # HOST WHAT: HOST's agent stopped at a fault point
  local _ pv="HOST_$1_PID"
  for _ in $(seq 1 100); do kill -0 "${!pv}" 2>/dev/null || break; sleep 0.1; done
  grep -q "injecting exit at $2" "$T_DIR/$1/ferryd.log" || fail "the fault point $2 was not reached"
}
one_copy_on() { # WHERE OTHER WHAT: svc runs on WHERE, counting, and OTHER has none (bounded: 20 s)
  local i b a
  for i in $(seq 1 100); do
    f "$1" ps | grep -q "svc .*running" && ! f "$2" ps -a | grep -q " svc " && break
    sleep 0.2
  done
  f "$1" ps | grep -q "svc .*running" || fail "$3: svc not running on $1: $(f "$1" ps -a)"
  f "$2" ps -a | grep -q " svc " && fail "$3: $2 kept a copy: $(f "$2" ps -a)"
  read -r b a <<<"$(counting "$1")"
  [ "$a" -gt "$b" ] || fail "$3: counter stopped on $1 ($b -> $a)"
  [ "$(f "$1" exec svc cat /data/file)" = precious ] || fail "$3: volume contents lost"
}
# 10. the source (a2) dies right after recording that it sends the commit,
# before sending it: its restart asks the target, which waits, restored,
# and commits it then: svc runs on a1, a2's frozen copy goes
host_restart a2 FERRY_FAULT=source-commit-sent:exit
f a2 migrate svc --to "$HOST_a1_URL" >/dev/null 2>&1 || true
gone_from a2 source-commit-sent
host_restart a2
one_copy_on a1 a2 "source died between recording and sending the commit"
check "the source dies between recording the commit and sending it: its restart commits it, one copy (on a1)"

# 11. the target (a2) dies when the commit arrives, before recording it:
# its restart removes the copy it never recorded as running, the source
# hears "gone" and resumes its own
host_restart a2 FERRY_FAULT=incoming-commit:exit
f a1 migrate svc --to "$HOST_a2_URL" >"$T_DIR/m11.out" 2>&1 &
m11=$!
gone_from a2 incoming-commit
host_restart a2
rc=0
wait "$m11" || rc=$?
[ "$rc" != 0 ] || fail "the move whose target died at the commit succeeded: $(cat "$T_DIR/m11.out")"
one_copy_on a1 a2 "target died at the commit"
check "the target dies when the commit arrives: it drops its copy on restart, the source resumes (one copy, on a1)"

touch "$T_DIR/stop-client"
rc=0
wait "$client" || rc=$?
cat "$T_DIR/client.out"
[ "$rc" = 0 ] || fail "client: $(cat "$T_DIR/client.out")"
check "one TCP connection survived every failure above and the moves between: $(cat "$T_DIR/client.out")"

# 12. the source (a1) dies after the target restored and stays away past
# the fence: the target kills its uncommitted copy by itself; the source's
# restart (no commit was sent) resumes svc. After the TCP client's end: a
# 30 s stall outlasts its patience.
host_restart a1 FERRY_FAULT=source-restored:exit
f a1 migrate svc --to "$HOST_a2_URL" >/dev/null 2>&1 || true
gone_from a1 source-restored
for _ in $(seq 1 90); do  # the fence is 30 s (bounded: 45 s)
  grep -q "restored but never committed by the source" "$T_DIR/a2/ferryd.log" && break
  sleep 0.5
done
grep -q "restored but never committed by the source" "$T_DIR/a2/ferryd.log" ||
  fail "the target did not fence its uncommitted copy: $(tail -5 "$T_DIR/a2/ferryd.log")"
host_restart a1
one_copy_on a1 a2 "source away past the fence"
check "the source stays away past the fence: the target kills its copy, the source's restart resumes (one copy, on a1)"
echo "# all checks passed"
