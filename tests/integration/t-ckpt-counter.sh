#!/usr/bin/env bash
# zdtm-shaped: a counter keeps counting across checkpoint/restore and never
# restarts from zero; rootfs changes and volume contents survive; the logs
# from before the checkpoint are kept.
source "$(dirname "$0")/lib.sh"
host_up h1 11
make_rootfs
f h1 image import "$T_DIR/busybox.tar" --name busybox >/dev/null

f h1 run -d --name counter -v data:/data busybox sh -c \
  'i=0; while true; do i=$((i+1)); echo $i > /data/count.new; mv /data/count.new /data/count; echo $i > /tmp/count.new; mv /tmp/count.new /tmp/count; echo "tick $i"; sleep 0.1; done' >/dev/null
f h1 exec counter sh -c 'echo changed-in-rootfs > /etc/motd; mkdir -p /srv; echo hello > /srv/new-file; rm /bin/true' 
sleep 1
before=$(f h1 exec counter cat /tmp/count)
[ "$before" -ge 5 ] || fail "counter did not count before checkpoint ($before)"
check "counter runs ($before)"

out=$(f h1 checkpoint counter "$T_DIR/ck1")
echo "$out"
echo "$out" | grep -q "pages written" || fail "checkpoint did not report CRIU figures: $out"
[ "$(f h1 inspect counter | grep -o '"status": "[a-z]*"' | cut -d'"' -f4)" = checkpointed ] ||
  fail "container is not shown as checkpointed"
at_ckpt=$(cat "$T_DIR"/h1/root/containers/*/upper/tmp/count)
check "checkpoint written, container stopped at $at_ckpt"

json=$(f h1 --json restore "$T_DIR/ck1")
echo "$json" | grep -q '"restore_ms"' || fail "restore --json has no timings: $json"
check "restored"
sleep 1
after=$(f h1 exec counter cat /tmp/count)
[ "$after" -gt "$at_ckpt" ] || fail "counter restarted or stopped: was $at_ckpt at checkpoint, now $after"
sleep 0.5
later=$(f h1 exec counter cat /tmp/count)
[ "$later" -gt "$after" ] || fail "counter does not advance after restore ($after -> $later)"
check "counter kept counting: $before -> $at_ckpt (checkpoint) -> $after -> $later"

[ "$(f h1 exec counter cat /data/count)" -ge "$after" ] || fail "volume lost its contents"
[ "$(f h1 exec counter cat /etc/motd)" = changed-in-rootfs ] || fail "rootfs change lost"
[ "$(f h1 exec counter cat /srv/new-file)" = hello ] || fail "new rootfs file lost"
if f h1 exec counter ls /bin/true >/dev/null 2>&1; then fail "deleted file came back"; fi
check "rootfs changes (modified, new, deleted) and volume survive"

# the logs whole first: grep -q leaves at its first match, and the ferry
# still writing would die of SIGPIPE, which pipefail reports as a failure
grep -q "^tick 1$" <<<"$(f h1 logs counter)" || fail "logs from before the checkpoint are lost"
got=0
for _ in $(seq 1 50); do  # bounded: 5 s (the shim may not have written it yet)
  grep -q "^tick $after$" <<<"$(f h1 logs counter)" && { got=1; break; }
  sleep 0.1
done
[ "$got" = 1 ] || fail "logs after restore missing (no 'tick $after'; last lines: $(f h1 logs counter | tail -n 3 | tr '\n' ' '))"
check "logs span the checkpoint"

# Checkpoint leaving it running, then restore a copy under another name: the
# address is taken, so that is refused and changes nothing.
f h1 checkpoint --leave-running counter "$T_DIR/ck2" >/dev/null
v1=$(f h1 exec counter cat /tmp/count); sleep 0.3; v2=$(f h1 exec counter cat /tmp/count)
[ "$v2" -gt "$v1" ] || fail "--leave-running container does not run"
check "--leave-running keeps it counting"
expect_fail "address .* in use by container \"counter\"" f h1 restore --name copy "$T_DIR/ck2"
[ "$(f h1 ps -a --json | grep -c '"netns"')" = 1 ] || fail "failed restore left a container"
check "restore of a copy with a taken address is refused and leaves nothing"
expect_fail "not empty" f h1 checkpoint counter "$T_DIR/ck2"
expect_fail "not a ferry checkpoint" f h1 restore "$T_DIR/h1"
check "bad checkpoint directories are refused"
echo "# all checks passed"
