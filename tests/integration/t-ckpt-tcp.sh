#!/usr/bin/env bash
# zdtm-shaped: a TCP client in another network namespace keeps ONE connection
# to an echo server through checkpoint/restore, while the container's netns is
# destroyed and recreated with the same address; every byte echoed back is the
# byte sent, and the largest gap is recorded.
source "$(dirname "$0")/lib.sh"
host_up h1 12
client_up c1 h1 198.18.12.250
make_rootfs
f h1 image import "$T_DIR/busybox.tar" --name busybox >/dev/null
f h1 run -d --name echo --ip 198.18.12.10 busybox /bin/echo-server 7000 >/dev/null
check "echo server runs at 198.18.12.10"

netns_before=$(f h1 inspect echo | sed -n 's/.*"netns": "\(.*\)".*/\1/p')
in_ns c1 "$FERRY_BUILD/tests/tcp-client" 198.18.12.10 7000 9000 20 >"$T_DIR/client.out" 2>&1 &
client=$!
sleep 2
f h1 checkpoint echo "$T_DIR/ck" >/dev/null
f h1 restore "$T_DIR/ck" >/dev/null
check "checkpointed and restored while the client talks"
[ "$(f h1 inspect echo | sed -n 's/.*"ip": "\(.*\)".*/\1/p')" = 198.18.12.10 ] || fail "address changed"
rc=0
wait "$client" || rc=$?
cat "$T_DIR/client.out"
[ "$rc" = 0 ] || fail "client lost its connection or got wrong bytes: $(cat "$T_DIR/client.out")"
grep -q '^ok messages=' "$T_DIR/client.out" || fail "client did not report"
gap=$(sed -n 's/.*max_gap_ms=\([0-9]*\).*/\1/p' "$T_DIR/client.out")
msgs=$(sed -n 's/.*messages=\([0-9]*\).*/\1/p' "$T_DIR/client.out")
[ "$msgs" -gt 100 ] || fail "too few messages ($msgs)"
check "one connection survived: $msgs messages, every byte echoed, largest gap ${gap} ms"

# The same across a checkpoint that leaves the server running (no gap beyond the pause).
in_ns c1 "$FERRY_BUILD/tests/tcp-client" 198.18.12.10 7000 4000 20 >"$T_DIR/client2.out" 2>&1 &
client=$!
sleep 1
f h1 checkpoint --leave-running echo "$T_DIR/ck2" >/dev/null
rc=0
wait "$client" || rc=$?
[ "$rc" = 0 ] || fail "client broke across --leave-running checkpoint: $(cat "$T_DIR/client2.out")"
check "connection unaffected by --leave-running checkpoint: $(cat "$T_DIR/client2.out")"
echo "# all checks passed"
