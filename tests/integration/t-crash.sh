#!/usr/bin/env bash
# Crash safety: ferryd dies (as under kill -9: no cleanup, FERRY_FAULT=POINT:exit)
# at each step of run, checkpoint and restore. After a restart every
# container is in a state a user can act on: running (and on the network,
# answering), or stopped with its data and startable; never paused, never
# running behind a record that says otherwise, and a name is never left
# taken by remains.
source "$(dirname "$0")/lib.sh"
need python3
host_up h1 61
"$(dirname "$0")/../../scripts/mkrootfs" "$T_DIR/busybox.tar" \
  --add "$FERRY_BUILD/tests/echo-server" --add "$FERRY_BUILD/tests/memhog"
f h1 image import "$T_DIR/busybox.tar" --name busybox >/dev/null
SUB=$HOST_h1_SUBNET

# crash_at POINT CMD...: CMD runs with ferryd set to die at POINT; then the
# agent starts again without the fault.
crash_at() {
  local point=$1; shift
  host_restart h1 "FERRY_FAULT=$point:exit"
  if "$@" >"$T_DIR/crash.out" 2>&1; then
    fail "$point: '$*' succeeded although ferryd was to die there: $(cat "$T_DIR/crash.out")"
  fi
  local pidvar="HOST_h1_PID"
  for _ in $(seq 1 100); do kill -0 "${!pidvar}" 2>/dev/null || break; sleep 0.1; done
  kill -0 "${!pidvar}" 2>/dev/null && fail "$point: ferryd did not die at the fault point"
  wait "${!pidvar}" 2>/dev/null || true
  grep -q "injecting exit at $point" "$T_DIR/h1/ferryd.log" || fail "$point: the fault point was not reached"
  start_agent h1
}

# status NAME: the status ps -a shows
status() { f h1 ps -a | awk -v n="$1" '$2 == n {for (i = 5; i <= NF; i++) if ($i ~ /^(running|paused|created|exited|checkpointed|migrated)/) {print $i; exit}}'; }

# answers NAME IP: the echo server in NAME answers on IP:7000 from h1
answers() {
  nsenter --net="/var/run/netns/$HOST_h1_NS" python3 - "$2" <<'EOF'
import socket, sys
s = socket.create_connection((sys.argv[1], 7000), timeout=5)
s.sendall(b"ping\n")
print("ok" if s.recv(16).startswith(b"ping") else "bad")
EOF
}

# --- run ---
crash_at run-created f h1 run -d --name r1 --ip "$SUB.11" busybox /bin/echo-server 7000
[ "$(status r1)" = created ] || fail "run-created: r1 is '$(status r1)', want created: $(f h1 ps -a)"
f h1 start r1 >/dev/null || fail "run-created: r1 cannot be started"
[ "$(answers r1 "$SUB.11")" = ok ] || fail "run-created: r1 does not answer after start"
check "ferryd dies after writing a new container's record: it is 'created' after the restart, and starts"

crash_at run-launched f h1 run -d --name r2 --ip "$SUB.12" busybox /bin/echo-server 7000
[ "$(status r2)" = running ] || fail "run-launched: r2 is '$(status r2)', want running: $(f h1 ps -a)"
f h1 ps | grep -q " r2 " || fail "run-launched: plain ps hides the running r2"
[ "$(answers r2 "$SUB.12")" = ok ] || fail "run-launched: r2 does not answer"
f h1 stop -t 1 r2 >/dev/null || fail "run-launched: r2 cannot be stopped"
check "ferryd dies after runc started a container, before its record said so: after the restart it is running, listed, answering and stoppable"

# --- checkpoint ---
f h1 start r2 >/dev/null
f h1 exec r2 sh -c 'echo kept > /etc/marker'
crash_at checkpoint-frozen f h1 checkpoint r2 "$T_DIR/ck1"
[ "$(status r2)" = running ] || fail "checkpoint-frozen: r2 is '$(status r2)', want running: $(f h1 ps -a)"
[ "$(answers r2 "$SUB.12")" = ok ] || fail "checkpoint-frozen: r2 does not answer (still frozen or off the network?)"
check "ferryd dies with the container frozen for a checkpoint: after the restart it runs and answers again"

crash_at checkpoint-dumped f h1 checkpoint r2 "$T_DIR/ck2"
# CRIU dumped it with its processes kept (frozen): only the checkpoint's
# commit would end them, so the restart resumes it
[ "$(status r2)" = running ] || fail "checkpoint-dumped: r2 is '$(status r2)', want running: $(f h1 ps -a)"
[ "$(answers r2 "$SUB.12")" = ok ] || fail "checkpoint-dumped: r2 runs but does not answer"
[ "$(f h1 exec r2 cat /etc/marker)" = kept ] || fail "checkpoint-dumped: r2 lost its rootfs change"
check "ferryd dies after CRIU dumped the container (processes kept, frozen): after the restart it runs on with its files"

# kill -9 while CRIU dumps: CRIU outlives the agent and, when it ends,
# freezes the container again (it puts back the freezer state it found);
# the restart waits for it before it resumes the container.
f h1 run -d --name r3 --ip "$SUB.13" busybox /bin/memhog 400 >/dev/null
sleep 1
ipid=$(f h1 inspect r3 | sed -n 's/.*"pid": \([0-9]*\).*/\1/p' | head -1)
[ -n "$ipid" ] || fail "no pid for r3: $(f h1 inspect r3)"
f h1 checkpoint r3 "$T_DIR/ck-r3" >/dev/null 2>&1 &
ckpt=$!
traced=0
for _ in $(seq 1 400); do  # bounded: 20 s
  tp=$(awk '/^TracerPid:/ {print $2}' "/proc/$ipid/status" 2>/dev/null || echo 0)
  if [ "${tp:-0}" != 0 ]; then traced=1; break; fi
  sleep 0.05
done
[ "$traced" = 1 ] || fail "CRIU never took hold of r3"
kill -9 "$HOST_h1_PID"
wait "$HOST_h1_PID" 2>/dev/null || true
wait "$ckpt" 2>/dev/null || true
start_agent h1
for k in 1 2 3; do
  [ "$(status r3)" = running ] || fail "kill -9 during the dump: r3 is '$(status r3)' ${k}s after the restart, want running: $(f h1 ps -a)"
  sleep 1
done
f h1 exec r3 true || fail "kill -9 during the dump: r3 cannot run a command"
f h1 rm -f r3 >/dev/null
check "ferryd killed (-9) while CRIU dumps a 400 MiB container: after the restart it runs, and stays running after CRIU ends"

# --- a full disk while CRIU dumps: 507, the container runs on, nothing is
# left "busy" (its record's release is written over the old one in place
# when no new file fits) ---
new_host_ns h2
mkdir -p "$T_DIR/h2/root"
mount -t tmpfs -o size=40m tmpfs "$T_DIR/h2/root"
start_agent h2 -- --bridge "fb${$}62" --subnet "198.18.62.0/24"
f h2 image import "$T_DIR/busybox.tar" --name busybox >/dev/null
f h2 run -d --name full --ip 198.18.62.20 busybox /bin/memhog 64 >/dev/null
sleep 1
# all but 4 MiB taken: the checkpoint starts (its marks are written) and
# CRIU's 64 MiB of images fill the rest
avail=$(df -m --output=avail "$T_DIR/h2/root" | tail -1 | tr -d ' ')
dd if=/dev/zero of="$T_DIR/h2/root/fill" bs=1M count=$((avail - 4)) 2>/dev/null || true
code=$(curl -s -o "$T_DIR/full.out" -w '%{http_code}' --unix-socket "$T_DIR/h2/ferryd.sock" \
  -X POST -d "{\"dir\": \"$T_DIR/h2/root/ck\"}" http://localhost/v1/containers/full/checkpoint || true)
[ "$code" = 507 ] || fail "checkpoint on a full disk answered $code: $(cat "$T_DIR/full.out")"
log "checkpoint on a full disk: $code $(cat "$T_DIR/full.out")"
st=$(f h2 ps -a | awk '$2 == "full" {for (i = 5; i <= NF; i++) if ($i ~ /^(running|paused|created|exited|checkpointed)/) {print $i; exit}}')
[ "$st" = running ] || fail "after a checkpoint that ran out of disk, full is '$st': $(f h2 ps -a)"
# space again (a full disk also keeps the shim from writing an exit file):
# nothing of the failed checkpoint may still own the container
rm -f "$T_DIR/h2/root/fill"
f h2 stop -t 1 full >"$T_DIR/full-stop.out" 2>&1 || fail "full is left busy after the failed checkpoint: $(cat "$T_DIR/full-stop.out")"
f h2 rm -f full >/dev/null
stop_agent h2
umount "$T_DIR/h2/root"
check "a full disk while CRIU dumps: 507, the container keeps running, and nothing leaves it busy (stopped without a restart)"

# --- restore ---
f h1 checkpoint r2 "$T_DIR/ck3" >/dev/null || fail "checkpoint for the restore cases"
[ "$(status r2)" = checkpointed ] || fail "r2 not checkpointed: $(status r2)"
f h1 rm r2 >/dev/null
crash_at restore-reserved f h1 restore "$T_DIR/ck3"
[ -z "$(status r2)" ] || fail "restore-reserved: remains of the restore are listed: $(f h1 ps -a)"
crash_at restore-launched f h1 restore "$T_DIR/ck3"
[ "$(status r2)" = running ] || fail "restore-launched: r2 is '$(status r2)', want running: $(f h1 ps -a)"
[ "$(answers r2 "$SUB.12")" = ok ] || fail "restore-launched: restored r2 does not answer (link left down?)"
[ "$(f h1 exec r2 cat /etc/marker)" = kept ] || fail "restore-launched: r2 lost its rootfs change"
check "ferryd dies during a restore: before the copy runs, the remains go and the name is free; once it runs, it is kept running, on the network"

f h1 rm -f r1 r2 >/dev/null
[ -z "$(f h1 ps -a --json | grep '"name"')" ] || fail "containers left: $(f h1 ps -a)"
echo "# all checks passed"
