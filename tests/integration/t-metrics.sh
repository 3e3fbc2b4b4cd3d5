#!/usr/bin/env bash
# GET /metrics on ferryd and ferry-coord: the Prometheus text format (checked
# by promtool), behind the token on TCP, with the numbers a move changes;
# and a real Prometheus (Debian's), started here on the client host's
# 127.0.0.1, scrapes all three with the token and stores what they say.
source "$(dirname "$0")/lib.sh"
need curl promtool prometheus python3
COORD_ADDR="$CLUSTER_NET.200"
CLUSTER_COORD="tcp://$COORD_ADDR:7000"
cluster_up 2
cluster_client gs "$COORD_ADDR"
nsenter --net="/var/run/netns/${T_ID}-gs" "$FERRY_BUILD/ferry-coord" serve --db "$T_DIR/coord.db" \
  --listen "$COORD_ADDR:7000" --socket "$T_DIR/coord.sock" --token-file "$T_DIR/token" \
  --heartbeat-timeout 5 >>"$T_DIR/coord.log" 2>&1 &
T_PIDS+=("$!")
for _ in $(seq 1 50); do [ -S "$T_DIR/coord.sock" ] && break; sleep 0.1; done
co() { timeout 120 "$FERRY_BIN" --coord "unix://$T_DIR/coord.sock" "$@"; }
for _ in $(seq 1 50); do [ "$(co node ls | grep -c ' up ')" = 2 ] && break; sleep 0.2; done
[ "$(co node ls | grep -c ' up ')" = 2 ] || fail "nodes not up: $(co node ls)"
TOK=$(cat "$T_DIR/token")
A1="http://$CLUSTER_NET.241:9000" A2="http://$CLUSTER_NET.242:9000" C="http://$COORD_ADDR:7000"

make_rootfs
f a1 image import "$T_DIR/busybox.tar" --name busybox >/dev/null
f a1 run -d --name svc --ip "$CLUSTER_NET.50" busybox /bin/echo-server 7000 >/dev/null
co migrate svc --to a2 >/dev/null || fail "coordinated move"
f a2 ps | grep -q "svc .*running" || fail "svc not on a2"

# metric URL NAME{LABELS}: the value of one sample ("" if absent)
scrape() { in_ns gs curl -s -H "Authorization: Bearer $TOK" "$1/metrics"; }
metric() { scrape "$1" | awk -v k="$2" '$1 == k {print $2}'; }
for u in "$A1" "$A2" "$C"; do
  code=$(in_ns gs curl -s -o /dev/null -w '%{http_code}' "$u/metrics")
  [ "$code" = 401 ] || fail "$u/metrics without the token: $code"
  scrape "$u" >"$T_DIR/m.txt"
  promtool check metrics <"$T_DIR/m.txt" >"$T_DIR/promtool.out" 2>&1 ||
    fail "promtool finds $u/metrics wrong: $(cat "$T_DIR/promtool.out")"
done
[ "$(metric "$A1" 'ferry_migrations_total{role="source",outcome="succeeded"}')" = 1 ] ||
  fail "a1 does not count its move: $(scrape "$A1" | grep migrations_total)"
[ "$(metric "$A2" 'ferry_migrations_total{role="target",outcome="committed"}')" = 1 ] ||
  fail "a2 does not count the move it took: $(scrape "$A2" | grep migrations_total)"
[ "$(metric "$A1" ferry_migration_downtime_seconds_count)" = 1 ] || fail "a1 has no downtime sample"
[ "$(metric "$A2" 'ferry_containers{state="running"}')" = 1 ] || fail "a2 does not count svc running"
[ "$(metric "$A1" 'ferry_containers{state="running"}')" = 0 ] || fail "a1 still counts svc"
[ "$(metric "$C" 'ferry_coord_nodes{state="up"}')" = 2 ] || fail "the coordinator does not count 2 nodes up"
[ "$(metric "$C" 'ferry_coord_migrations_total{outcome="succeeded"}')" = 1 ] ||
  fail "the coordinator does not count its move: $(scrape "$C")"
check "GET /metrics on both agents and the coordinator: 401 without the token, promtool-clean, and the move is counted on each side"

# A real Prometheus on the client host's loopback, scraping every second.
mkdir -p "$T_DIR/prom"
printf '%s' "$TOK" >"$T_DIR/prom/token"
cat >"$T_DIR/prom/prometheus.yml" <<EOF
global:
  scrape_interval: 1s
scrape_configs:
  - job_name: ferryd
    authorization: {credentials_file: $T_DIR/prom/token}
    static_configs: [{targets: ['$CLUSTER_NET.241:9000', '$CLUSTER_NET.242:9000']}]
  - job_name: ferry-coord
    authorization: {credentials_file: $T_DIR/prom/token}
    static_configs: [{targets: ['$COORD_ADDR:7000']}]
EOF
promtool check config "$T_DIR/prom/prometheus.yml" >/dev/null || fail "prometheus.yml: $(promtool check config "$T_DIR/prom/prometheus.yml" 2>&1)"
# nsenter execs Prometheus: $! is its pid, which the cleanup stops
nsenter --net="/var/run/netns/${T_ID}-gs" prometheus --config.file="$T_DIR/prom/prometheus.yml" \
  --storage.tsdb.path="$T_DIR/prom/data" --web.listen-address=127.0.0.1:9090 >"$T_DIR/prom/log" 2>&1 &
T_PIDS+=("$!")
# query EXPR: the number of series with value 1 ... printed as "n"
query() {
  in_ns gs curl -s -G --data-urlencode "query=$1" http://127.0.0.1:9090/api/v1/query |
    python3 -c 'import json,sys
try: r = json.load(sys.stdin)["data"]["result"]
except Exception: r = []
print(len(r), " ".join(x["value"][1] for x in r))'
}
ok=""
for _ in $(seq 1 60); do  # bounded: 30 s
  [ "$(query 'up == 1' | cut -d' ' -f1)" = 3 ] && ok=1 && break
  sleep 0.5
done
[ -n "$ok" ] || fail "Prometheus does not scrape all three: $(query 'up'); $(tail -5 "$T_DIR/prom/log")"
res=$(query 'ferry_migrations_total{role="target",outcome="committed"}')
[ "$res" = "2 0 1" ] || [ "$res" = "2 1 0" ] || fail "Prometheus stored: $res"
[ "$(query 'ferry_coord_nodes{state="up"}')" = "1 2" ] || fail "Prometheus: coord nodes $(query 'ferry_coord_nodes')"
check "a real Prometheus scrapes both agents and the coordinator with the token and stores their series"
echo "# all checks passed"
