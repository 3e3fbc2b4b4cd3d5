#!/usr/bin/env bash
# A peer holding the cluster token, or a checkpoint directory from anywhere,
# cannot name a path outside the agent's root: a migration offer whose
# container record mounts "ev4/_data/evil" (a path a container could plant a
# symlink under) or volumes that the offer does not list is refused with 400,
# the target keeps nothing, and a checkpoint.json with a hostile record is
# refused by `ferry restore` with nothing created. A migration's page server
# serves the source agent only.
source "$(dirname "$0")/lib.sh"
need curl python3
cluster_up 2
cluster_client c1 "$CLUSTER_NET.250"
make_rootfs
f a1 image import "$T_DIR/busybox.tar" --name busybox >/dev/null
f a2 image import "$T_DIR/busybox.tar" --name busybox >/dev/null
f a1 run -d --name svc --ip "$CLUSTER_NET.30" -v data:/data busybox sleep 1000 >/dev/null
# a2 has a volume a container wrote a symlink into: the planted escape
f a2 volume create ev4 >/dev/null
mkdir -p "$T_DIR/a2/root/volumes/ev4/_data/evil"
ln -s / "$T_DIR/a2/root/volumes/ev4/_data/evil/_data"
TOK=$(cat "$T_DIR/token")
A2="http://$CLUSTER_NET.242:9000"
f a1 --json inspect svc >"$T_DIR/ctr.json"
f a1 --json image inspect busybox >"$T_DIR/img.json"

# offer ID PYTHON-EXPR-ON-(ctr, vols): prints the HTTP status; body in $T_DIR/r
offer() {
  local id=$1 edit=$2
  python3 - "$T_DIR/ctr.json" "$T_DIR/img.json" "$id" "$edit" >"$T_DIR/offer.json" <<'EOF'
import json, sys
ctr = json.load(open(sys.argv[1]))
if isinstance(ctr, list): ctr = ctr[0]
img = json.load(open(sys.argv[2]))
if isinstance(img, list): img = img[0]
ctr["name"] = "svc2"
ctr["ip"] = "198.18.100.31"
vols = ["data"]
exec(sys.argv[4])
print(json.dumps({"id": sys.argv[3], "source_agent": "x", "container": ctr, "image": img, "volumes": vols}))
EOF
  in_ns c1 curl -s -o "$T_DIR/r" -w '%{http_code}' -X POST -H "Authorization: Bearer $TOK" \
    -H 'Content-Type: application/json' --data-binary @"$T_DIR/offer.json" "$A2/v1/migrations/incoming"
}

nothing_kept() {
  [ -z "$(ls -A "$T_DIR/a2/root/migrations")" ] || fail "$1: a2 kept migration state: $(ls "$T_DIR/a2/root/migrations")"
  [ -z "$(f a2 ps -a --json | grep '"name"')" ] || fail "$1: a2 has a container: $(f a2 ps -a)"
  [ "$(f a2 volume ls --json | grep -c '"name"')" = 1 ] || fail "$1: a2's volumes changed: $(f a2 volume ls)"
}

# The baseline: the same offer, untouched, is accepted (so the refusals below
# are about the hostile part, not the form).
code=$(offer 0123456789abcdef0123456789abcde0 "pass")
[ "$code" = 201 ] || fail "a plain offer was refused: $code $(cat "$T_DIR/r")"
in_ns c1 curl -s -o /dev/null -X DELETE -H "Authorization: Bearer $TOK" "$A2/v1/migrations/incoming/0123456789abcdef0123456789abcde0"
check "a well-formed offer is accepted (and withdrawn)"

# The page server of a migration takes its one connection from the source
# agent only (the address the offer came from, c1 here), and only after the
# secret the target gave in its answer: a connection from another host, or
# without the secret, is closed and does not use the page server up.
MID=0123456789abcdef0123456789abcdef
code=$(offer $MID "pass")
[ "$code" = 201 ] || fail "offer for the page-server check: $code $(cat "$T_DIR/r")"
ps=$(in_ns c1 curl -s -X POST -H "Authorization: Bearer $TOK" "$A2/v1/migrations/incoming/$MID/page-server")
port=$(echo "$ps" | python3 -c 'import json,sys; print(json.load(sys.stdin)["port"])') || fail "page server: $ps"
secret=$(echo "$ps" | python3 -c 'import json,sys; print(json.load(sys.stdin)["secret"])') || fail "no secret: $ps"
# the secret is on no process's command line (/proc/PID/cmdline is readable by all)
for c in /proc/[0-9]*/cmdline; do
  if tr '\0' ' ' <"$c" 2>/dev/null | grep -qF "$secret"; then
    fail "the page server's secret is on the command line of $(tr '\0' ' ' <"$c")"
  fi
done
pgrep -f -- "--page-gate" >/dev/null || fail "no page server gate runs (ferryd --page-gate)"
# probe HOST-NS [FIRST-BYTES]: "closed" if the page server hangs up, "open" if it keeps the connection
probe() {
  nsenter --net="/var/run/netns/$1" python3 - "$CLUSTER_NET.242" "$port" "${2:-}" <<'EOF'
import socket, sys
s = socket.create_connection((sys.argv[1], int(sys.argv[2])), timeout=10)
if sys.argv[3]:
    s.sendall(sys.argv[3].encode())
s.settimeout(8)  # longer than the gate waits for the secret (5 s)
try:
    print("closed" if s.recv(1) == b"" else "data")
except socket.timeout:
    print("open")
except ConnectionResetError:  # closed with what we sent unread
    print("closed")
EOF
}
[ "$(probe "$HOST_a1_NS" "$secret")" = closed ] || fail "the page server kept a connection from a1, which did not make the offer"
[ "$(probe "${T_ID}-c1" "$(printf 'x%.0s' $(seq 1 32))")" = closed ] || fail "the page server kept a connection with a wrong secret"
[ "$(probe "${T_ID}-c1" "$secret")" = open ] || fail "the page server refused the source agent (c1) with the secret"
grep -q "refused a connection from an address" "$T_DIR/a2/root/migrations/in-$MID/page-server.log" ||
  fail "the refusal by address is not in the page server's log"
grep -q "without the migration's secret" "$T_DIR/a2/root/migrations/in-$MID/page-server.log" ||
  fail "the refusal by secret is not in the page server's log"
in_ns c1 curl -s -o /dev/null -X DELETE -H "Authorization: Bearer $TOK" "$A2/v1/migrations/incoming/$MID"
check "a migration's page server (its gate a process of its own, its secret on no command line) closes a connection from a host other than the source agent or without the migration's secret, and still takes the source's"

# Pre-dump rounds: in order, whole, and nothing else (400 for what is not
# a round number, 409 for a round out of order or a parent that never
# arrived); none of it starts a page server or leaves a directory behind.
MID=0123456789abcdef0123456789abcdee
code=$(offer $MID "pass")
[ "$code" = 201 ] || fail "offer for the pre-dump round checks: $code $(cat "$T_DIR/r")"
psreq() { in_ns c1 curl -s -o "$T_DIR/r" -w '%{http_code}' -X POST -H "Authorization: Bearer $TOK" \
  -H 'Content-Type: application/json' -d "$1" "$A2/v1/migrations/incoming/$MID/page-server"; }
for body in '{"round": -1}' '{"round": "0"}' '{"round": 64}' '{"round": 0.5}' '{"parent_round": -3}' \
            '{"round": 0, "parent_round": 0}' '{"round": [0]}'; do
  code=$(psreq "$body")
  [ "$code" = 400 ] || fail "page server with $body: $code $(cat "$T_DIR/r")"
done
code=$(psreq '{"round": 3}')
[ "$code" = 409 ] && grep -q "out of order" "$T_DIR/r" || fail "round 3 before round 0: $code $(cat "$T_DIR/r")"
code=$(psreq '{"parent_round": 0}')
[ "$code" = 409 ] && grep -q "did not arrive whole" "$T_DIR/r" || fail "a dump on a round that never came: $code $(cat "$T_DIR/r")"
[ ! -e "$T_DIR/a2/root/migrations/in-$MID/pre/r3" ] || fail "a refused round made its directory"
in_ns c1 curl -s -o /dev/null -X DELETE -H "Authorization: Bearer $TOK" "$A2/v1/migrations/incoming/$MID"
check "pre-dump rounds: a malformed round is 400, one out of order or a parent that never arrived 409"

# A prepared restore's descriptors (runc's descriptors.json, written into
# the migration's images): only plain descriptor names, at most three; a
# refused request places nothing and starts nothing.
MID=0123456789abcdef0123456789abcded
code=$(offer $MID "pass")
[ "$code" = 201 ] || fail "offer for the prepare checks: $code $(cat "$T_DIR/r")"
prep() { in_ns c1 curl -s -o "$T_DIR/r" -w '%{http_code}' -X POST -H "Authorization: Bearer $TOK" \
  -H 'Content-Type: application/json' -d "$1" "$A2/v1/migrations/incoming/$MID/prepare"; }
for body in '{}' '{"descriptors": "pipe:[1]"}' '{"descriptors": ["a", "b", "c", "d"]}' \
            '{"descriptors": ["pipe:[1]\n--inherit-fd"]}' '{"descriptors": ["../../x y"]}' '{"descriptors": [1]}'; do
  code=$(prep "$body")
  [ "$code" = 400 ] || fail "prepare with $body: $code $(cat "$T_DIR/r")"
done
[ -z "$(ls "$T_DIR/a2/root/containers" 2>/dev/null)" ] || fail "a refused prepare left a container: $(ls "$T_DIR/a2/root/containers")"
[ ! -e "$T_DIR/a2/root/migrations/in-$MID/criu/descriptors.json" ] || fail "a refused prepare wrote descriptors"
in_ns c1 curl -s -o /dev/null -X DELETE -H "Authorization: Bearer $TOK" "$A2/v1/migrations/incoming/$MID"
check "prepare: descriptors that are not plain names are 400, nothing placed or started"

cases=(
  'ctr["volumes"] = [{"name": "ev4/_data/evil", "destination": "/host"}]; vols = ["ev4"]|volume name'
  'ctr["volumes"] = [{"name": "../../../../etc", "destination": "/host"}]; vols = ["data"]|volume name'
  'ctr["volumes"] = [{"name": "ev4", "destination": "/x"}]; vols = ["data"]|not in the offer'
  'ctr["volumes"] = [{"name": "data", "destination": "/x"}]; vols = ["data", "ev4"]|not mounted'
  'ctr["volumes"] = [{"name": "data", "destination": "/a/../../x"}]|destination'
  'ctr["name"] = "../x"|container name'
  'ctr["mac"] = "02:42;reboot"|MAC'
  'ctr["args"] = []|args'
  'ctr["image"] = "sha256:" + "0" * 64|image is not the offered image'
)
n=0
for c in "${cases[@]}"; do
  n=$((n + 1))
  edit=${c%|*} pattern=${c##*|}
  code=$(offer "0123456789abcdef0123456789abc$(printf '%03d' $n)" "$edit")
  [ "$code" = 400 ] || fail "hostile offer ($edit) answered $code: $(cat "$T_DIR/r")"
  grep -q "$pattern" "$T_DIR/r" || fail "hostile offer ($edit): message lacks /$pattern/: $(cat "$T_DIR/r")"
  nothing_kept "$edit"
done
check "$n hostile offers (volume names with '/', '..', volumes not offered, bad destination, name, MAC, args, image) refused with 400; a2 kept nothing"

# A checkpoint directory with a hostile record is refused by restore.
f a1 checkpoint svc "$T_DIR/ck" --leave-running >/dev/null
python3 - "$T_DIR/ck/checkpoint.json" <<'EOF'
import json, sys
p = sys.argv[1]
j = json.load(open(p))
j["container"]["volumes"] = [{"name": "data/../../../..", "destination": "/host"}]
json.dump(j, open(p, "w"))
EOF
expect_fail "checkpoint.json.*volume name" f a2 restore "$T_DIR/ck" --name evil
nothing_kept "hostile checkpoint"
check "restore of a checkpoint whose record names a volume outside the store: refused, nothing created"
echo "# all checks passed"
