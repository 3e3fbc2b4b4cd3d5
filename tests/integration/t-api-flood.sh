#!/usr/bin/env bash
# Hostile clients without the token cannot silence an agent: 2,000 slow
# connections (headers sent a byte at a time) and 2,000 POST /health bodies
# in flight from one address. Meanwhile `ferry ps` on the unix socket, /health
# and an authenticated client from another address still answer, and the
# agent's memory does not balloon. A /health POST needs the token.
source "$(dirname "$0")/lib.sh"
need curl python3
cluster_up 1
cluster_client c1 "$CLUSTER_NET.250"
cluster_client c2 "$CLUSTER_NET.251"
make_rootfs
f a1 image import "$T_DIR/busybox.tar" --name busybox >/dev/null
f a1 run -d --name svc busybox sleep 1000 >/dev/null
TOK=$(cat "$T_DIR/token")
A1="http://$CLUSTER_NET.241:9000"
rss() { awk '/VmRSS/ {print $2}' "/proc/$HOST_a1_PID/status"; }
rss0=$(rss)

code=$(in_ns c2 curl -s -o /dev/null -w '%{http_code}' -X POST -d '{}' "$A1/health")
[ "$code" = 401 ] || fail "POST /health without a token answered $code"
check "POST /health needs the token (401 before its body is read)"

# a token holder over TCP names no path of the agent's host
for k in authfile cert_dir; do
  out=$(in_ns c2 curl -s -w ' %{http_code}' -H "Authorization: Bearer $TOK" -d "{\"reference\": \"127.0.0.1:5000/x:1\", \"$k\": \"/etc/shadow\"}" "$A1/v1/images/pull")
  [ "${out##* }" = 403 ] || fail "a TCP pull with $k answered: $out"
  echo "$out" | grep -q "only a local caller" || fail "a TCP pull with $k: $out"
done
check "over TCP, a pull's authfile or cert_dir (host paths) is refused (403) before anything opens them"

# The flood: 2,000 slow header senders and 2,000 stalled 4 MiB POST /health
# bodies, all from c1; it runs 12 s at most.
in_ns c1 python3 - "$CLUSTER_NET.241" 9000 >"$T_DIR/flood.out" 2>&1 <<'EOF' &
import socket, sys, time
host, port = sys.argv[1], int(sys.argv[2])
socks, refused = [], 0
t_end = time.time() + 12
for i in range(4000):
    try:
        s = socket.create_connection((host, port), timeout=1)
        s.setblocking(False)
        if i % 2 == 0:
            s.send(b"POST /health HTTP/1.1\r\nHost: x\r\nContent-Length: 4194304\r\n\r\n" + b"x" * 65536)
        else:
            s.send(b"G")
        socks.append(s)
    except OSError:
        refused += 1
    if time.time() > t_end - 8:
        break
print("opened", len(socks), "refused", refused, flush=True)
while time.time() < t_end:
    for s in socks:
        try:
            s.send(b"E")
        except OSError:
            pass
    time.sleep(0.5)
EOF
flood=$!
sleep 4
kill -0 "$flood" 2>/dev/null || fail "the flood ended early: $(cat "$T_DIR/flood.out")"
t0=$(date +%s%N)
f a1 ps | grep -q "svc .*running" || fail "ferry ps on the unix socket did not answer during the flood"
t1=$(date +%s%N)
code=$(in_ns c2 curl -s -o /dev/null -w '%{http_code}' -m 20 -H "Authorization: Bearer $TOK" "$A1/v1/containers")
[ "$code" = 200 ] || fail "an authenticated client from another address got $code during the flood"
code=$(in_ns c2 curl -s -o /dev/null -w '%{http_code}' -m 20 "$A1/health")
[ "$code" = 200 ] || fail "/health from another address got $code during the flood"
rss1=$(rss)
[ $((rss1 - rss0)) -lt 204800 ] || fail "ferryd grew from ${rss0} kB to ${rss1} kB during the flood"
wait "$flood" || true
check "flood of slow connections and stalled bodies ($(head -1 "$T_DIR/flood.out")): ps answered in $(( (t1 - t0) / 1000000 )) ms, token holder and /health served, RSS ${rss0} -> ${rss1} kB"
f a1 ps | grep -q "svc .*running" || fail "ps after the flood"

# Many addresses, each under the per-address limit: 32 connections from each
# of 10 addresses that never finish their headers (320 in all, more than
# the server's 256). Token holders and /health from yet another address are
# served all the same; it runs 15 s at most.
for i in $(seq 0 9); do in_ns c1 ip addr add "$CLUSTER_NET.$((230 + i))/24" dev eth0; done
in_ns c1 python3 - "$CLUSTER_NET" 9000 >"$T_DIR/flood2.out" 2>&1 <<'EOF' &
import socket, sys, time
net, port = sys.argv[1], int(sys.argv[2])
socks, refused = [], 0
t_end = time.time() + 15
for i in range(10):
    for k in range(32):
        try:
            s = socket.socket()
            s.bind(("%s.%d" % (net, 230 + i), 0))
            s.settimeout(1)
            s.connect((net + ".241", port))
            s.send(b"GET /v1/containers HTTP/1.1\r\nHost: x\r\n")
            socks.append(s)
        except OSError:
            refused += 1
print("opened", len(socks), "refused", refused, flush=True)
while time.time() < t_end:
    for s in socks:
        try:
            s.send(b"X-Slow: 1\r\n")
        except OSError:
            pass
    time.sleep(1)
EOF
flood2=$!
sleep 3
kill -0 "$flood2" 2>/dev/null || fail "the second flood ended early: $(cat "$T_DIR/flood2.out")"
for k in 1 2 3; do
  code=$(in_ns c2 curl -s -o /dev/null -w '%{http_code}' -m 10 -H "Authorization: Bearer $TOK" "$A1/v1/containers" || true)
  [ "$code" = 200 ] || fail "a token holder got $code while 320 connections from 10 addresses stalled ($(cat "$T_DIR/flood2.out"))"
  code=$(in_ns c2 curl -s -o /dev/null -w '%{http_code}' -m 10 "$A1/health" || true)
  [ "$code" = 200 ] || fail "/health got $code while 320 connections from 10 addresses stalled"
done
wait "$flood2" || true
check "320 connections that never finish their headers, 32 from each of 10 addresses ($(head -1 "$T_DIR/flood2.out")): token holder and /health served throughout"
echo "# all checks passed"
