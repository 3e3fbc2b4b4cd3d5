#!/usr/bin/env bash
# The satellite seed's API driven the way its programs drive it (python3
# with requests and redis, as the seed's ground station and scripts do):
# /health, /start_container from the image alone (redis published on the
# host's port 6379), /generate_data, set/get_redis, pull migrations with
# /start_migration whose answers carry microseconds and podman's
# --print-stats shapes, a redis client that reaches redis at the host's
# published port, is told the new host after each move and loses no
# acknowledged write, every error with its code (400, 404, 409, 502, 504)
# changing nothing, then /stop_container, /remove_container, /remove_volume.
source "$(dirname "$0")/lib.sh"
need /usr/bin/python3 curl
/usr/bin/python3 -c 'import requests, redis' 2>/dev/null || need python3-requests python3-redis
cluster_up 2
cluster_client c1 "$CLUSTER_NET.250"
"$(dirname "$0")/../../scripts/mkrootfs" "$T_DIR/redis.tar" --redis
for h in a1 a2; do f $h image import "$T_DIR/redis.tar" --name redis:alpine >/dev/null; done

in_ns c1 /usr/bin/python3 - "$CLUSTER_NET" "$(cat "$T_DIR/token")" >"$T_DIR/py.out" 2>&1 <<'EOF' || { cat "$T_DIR/py.out"; fail "seed client failed"; }
import http.server, json, socket, sys, threading, time
import redis, requests

net, token = sys.argv[1], sys.argv[2]
hosts = {"a1": net + ".241", "a2": net + ".242"}
H = {"Authorization": "Bearer " + token}
n = 0

def ok(msg):
    global n
    n += 1
    print("ok %d - %s" % (n, msg), flush=True)

def call(method, host, path, body=None, raw=None, timeout=120):
    url = "http://%s:9000%s" % (host, path)
    if raw is not None:
        r = requests.request(method, url, data=raw, headers=H, timeout=timeout)
    else:
        r = requests.request(method, url, json=body, headers=H, timeout=timeout)
    return r.status_code, r.json()

def expect(code, answer, want, what):
    assert code == want, "%s: expected %d, got %d %s" % (what, want, code, answer)
    assert answer.get("status") == "error" and answer.get("message"), "%s: %s" % (what, answer)

def wait_redis(host):
    for _ in range(100):
        try:
            if redis.Redis(host=host, port=6379, socket_timeout=2).ping():
                return
        except Exception:
            time.sleep(0.1)
    raise AssertionError("redis not reachable at %s:6379" % host)

r = requests.get("http://%s:9000/health" % hosts["a1"], timeout=10)
assert r.status_code == 200 and r.json() == {"status": "UP"}, r.text

# /start_container with nothing but the image on the host
code, a = call("POST", hosts["a1"], "/start_container", {"container_name": "redis"})
assert code == 200 and a["status"] == "success" and isinstance(a["duration_ms"], int), a
wait_redis(hosts["a1"])
ok("/start_container ran redis from the image, published on %s:6379 (%d ms)" % (hosts["a1"], a["duration_ms"]))

# /generate_data
code, a = call("POST", hosts["a1"], "/generate_data", {"data_size_mb": 5, "bytes_per_key": 1000})
assert code == 200 and a["status"] == "success" and a["keys"] == 5000, a
rc = redis.Redis(host=hosts["a1"], port=6379, socket_timeout=20)
assert rc.dbsize() == 5000, rc.dbsize()
v = rc.get("data:4999")
assert len(v) == 1000, len(v)
for body, what in (({"bytes_per_key": 10}, "missing data_size_mb"),
                   ({"data_size_mb": "5", "bytes_per_key": 10}, "string data_size_mb"),
                   ({"data_size_mb": 1, "bytes_per_key": 1.5}, "fractional bytes_per_key")):
    code, a = call("POST", hosts["a1"], "/generate_data", body)
    expect(code, a, 400, what)
assert rc.dbsize() == 5000
ok("/generate_data stored 5000 random 1000-byte values (read back through the published port); bad bodies 400, nothing added")

code, a = call("POST", hosts["a1"], "/set_redis", {"key": "sat", "value": "ISS-25544"})
assert code == 200 and a["status"] == "success", a
code, a = call("GET", hosts["a1"], "/get_redis/sat")
assert code == 200 and a["value"] == "ISS-25544", a
ok("/set_redis and /get_redis")

# A client writing through the published port of whichever host runs redis,
# told the new host after each move, as the ground station does.
state = {"host": hosts["a1"], "acked": 0, "errors": [], "stop": False, "conns": 0}
lock = threading.Lock()
def writer():
    cur, cl = None, None
    while not state["stop"]:
        with lock:
            h = state["host"]
        if h != cur:
            cur, cl = h, redis.Redis(host=h, port=6379, socket_timeout=20)
            state["conns"] += 1
        try:
            cl.set("ack:%d" % state["acked"], state["acked"])
            state["acked"] += 1
        except Exception as e:
            state["errors"].append(repr(e))
            time.sleep(0.05)
        time.sleep(0.01)
t = threading.Thread(target=writer, daemon=True)
t.start()
time.sleep(0.5)

def pull(src, dst):
    code, a = call("POST", hosts[dst], "/start_migration",
                   {"server_ip": hosts[src], "container_name": "redis"})
    assert code == 200 and a["status"] == "success", a
    for k in ("checkpoint_duration", "restore_duration"):
        assert isinstance(a[k], int) and 1000 <= a[k] < 600 * 10**6, (k, a[k])
    cs, rs = a["checkpoint_stats"], a["restore_stats"]
    assert isinstance(cs["podman_checkpoint_duration"], int) and cs["podman_checkpoint_duration"] >= 1000, cs
    c0 = cs["container_statistics"][0]
    assert c0["runtime_checkpoint_duration"] >= 1000, c0
    crit = c0["criu_statistics"]
    for k in ("freezing_time", "frozen_time", "memdump_time", "memwrite_time", "pages_scanned", "pages_written"):
        assert isinstance(crit[k], int), (k, crit)
    assert crit["frozen_time"] > 0 and crit["pages_scanned"] > 0 and crit["pages_written"] > 0, crit
    assert isinstance(rs["podman_restore_duration"], int) and rs["podman_restore_duration"] >= 1000, rs
    r0 = rs["container_statistics"][0]
    assert r0["runtime_restore_duration"] >= 1000, r0
    for k in ("forking_time", "pages_restored", "restore_time"):
        assert isinstance(r0["criu_statistics"][k], int), (k, r0)
    assert r0["criu_statistics"]["restore_time"] > 0, r0
    assert "report" in a and a["report"]["status"] == "succeeded"
    with lock:
        state["host"] = hosts[dst]   # the client is told the new host
    return a

a = pull("a1", "a2")
time.sleep(0.5)
ok("pull a1 -> a2: durations in microseconds (checkpoint %d us, restore %d us), podman-shaped stats" %
   (a["checkpoint_duration"], a["restore_duration"]))
a = pull("a2", "a1")
time.sleep(0.5)
ok("pull a2 -> a1 (CRIU wrote %d pages, restored in %d us)" %
   (a["checkpoint_stats"]["container_statistics"][0]["criu_statistics"]["pages_written"],
    a["restore_stats"]["container_statistics"][0]["criu_statistics"]["restore_time"]))
state["stop"] = True
t.join(30)
acked = state["acked"]
rc = redis.Redis(host=hosts["a1"], port=6379, socket_timeout=20)
missing = [i for i in range(acked) if rc.get("ack:%d" % i) is None]
assert not missing, "acknowledged writes lost: %s" % missing[:10]
assert rc.dbsize() >= 5000 + acked and rc.get("sat") == b"ISS-25544"
ok("the client followed redis a1 -> a2 -> a1 through the hosts' published ports: %d writes acknowledged, none lost (%d connection errors while it moved)" %
   (acked, len(state["errors"])))

# Errors, each with its code, each changing nothing
code, a = call("POST", hosts["a2"], "/start_migration", raw=b'{"server_ip": ')
expect(code, a, 400, "malformed JSON")
code, a = call("POST", hosts["a2"], "/start_migration", {"container_name": "redis"})
expect(code, a, 400, "no server_ip")
code, a = call("POST", hosts["a2"], "/start_migration", {"server_ip": hosts["a1"], "container_name": "nope"})
expect(code, a, 404, "unknown container on the source")
assert "nope" in a["message"], a
code, a = call("POST", hosts["a1"], "/start_migration", {"server_ip": hosts["a2"], "container_name": "redis"})
expect(code, a, 409, "name in use on the target")
code, a = call("POST", hosts["a2"], "/start_migration", {"server_ip": net + ".250", "container_name": "redis"})
expect(code, a, 502, "source refuses connections")
assert net + ".250" in a["message"], a
silent = socket.socket()
silent.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
silent.bind((net + ".250", 9000))
silent.listen(4)
code, a = call("POST", hosts["a2"], "/start_migration",
               {"server_ip": net + ".250", "container_name": "redis", "timeout": 2})
expect(code, a, 504, "source never answers")  # without the bound: no answer at all
silent.close()
# a "source" answering 100 MB: refused past the client's limit, the agent stays small
class Big(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.end_headers()
        try:
            for _ in range(100):
                self.wfile.write(b"x" * (1 << 20))
        except Exception:
            pass
    def log_message(self, *a):
        pass
big = http.server.HTTPServer((net + ".250", 9000), Big)
threading.Thread(target=big.serve_forever, daemon=True).start()
code, a = call("POST", hosts["a2"], "/start_migration", {"server_ip": net + ".250", "container_name": "redis"})
expect(code, a, 502, "a 100 MB answer")
assert "MiB" in a["message"], a
big.shutdown()
big.server_close()
# only an agent's port on an allowed address, by address, over http(s)/tcp
other = socket.socket()
other.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
other.bind((net + ".250", 9001))
other.listen(4)
other.settimeout(0.5)
for server, want, what in (("unix:///run/ferry/ferryd.sock", 400, "unix socket"),
                           ("file:///etc/passwd", 400, "file URL"),
                           ("localhost", 403, "a host name resolving to no peer"),
                           ("no-such-host.invalid", 502, "a host name that does not resolve"),
                           ("user:pw@" + net + ".241", 400, "user info"),
                           (net + ".241:99999999999", 400, "a port out of range"),
                           (net + ".250:9001", 403, "a port that is no agent's"),
                           ("http://" + net + ".250:22", 403, "ssh port"),
                           ("203.0.113.7", 403, "an address off this host's networks"),
                           (net + ".250:9000/v1/info", 400, "a path")):
    code, a = call("POST", hosts["a2"], "/start_migration", {"server_ip": server, "container_name": "redis"})
    expect(code, a, want, what)
try:
    other.accept()
    raise AssertionError("a refused pull connected to a port that is no agent's")
except socket.timeout:
    pass
other.close()
# the pull's ?to= is a peer like any other: off the allow-list, refused
for to in ("tcp://203.0.113.7:9000", "http://localhost:9000"):
    code, a = call("GET", hosts["a1"], "/containers/redis?to=" + requests.utils.quote(to, safe=""))
    expect(code, a, 403, "a pull sent to " + to)
code, a = call("POST", hosts["a1"], "/stop_container/nope")
expect(code, a, 404, "stop of an unknown container")
code, a = call("POST", hosts["a1"], "/remove_volume/nope")
expect(code, a, 404, "unknown volume")
rc = redis.Redis(host=hosts["a1"], port=6379, socket_timeout=20)
assert rc.get("sat") == b"ISS-25544" and rc.dbsize() >= 5000 + acked
ok("errors: 400 bad body, 404 unknown container (source) and volume, 409 name in use, 502 source unreachable, 504 source silent, 400/403 for sources that are no agent (unix, a name of no peer, other ports, off-network), 502 for a name that does not resolve, nothing contacted; redis still on a1 with its data")

for path in ("/stop_container/redis", "/remove_container/redis"):
    code, a = call("POST", hosts["a1"], path)
    assert code == 200 and a["status"] == "success", (path, a)
ok("/stop_container and /remove_container")
EOF
cat "$T_DIR/py.out"

# --peer-allow: the pull goes to listed peers only, and the token never
# leaves for anyone else (a listener at the seed's port sees no connection)
stop_agent a2
start_agent a2 -- --bridge "$HOST_a2_BRIDGE" --subnet "$CLUSTER_NET.0/24" --gateway "$CLUSTER_NET.242" \
  --listen "$CLUSTER_NET.242:9000" --token-file "$T_DIR/token" --peer-allow "$CLUSTER_NET.241/32" \
  --migration-timeout 5
in_ns c1 /usr/bin/python3 - "$CLUSTER_NET" "$(cat "$T_DIR/token")" <<'EOF' || fail "--peer-allow"
import socket, sys, time, requests
net, token = sys.argv[1], sys.argv[2]
H = {"Authorization": "Bearer " + token}
lst = socket.socket()
lst.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
lst.bind((net + ".250", 8000))
lst.listen(4)
lst.settimeout(0.5)
for _ in range(100):
    try:
        requests.get("http://%s.242:9000/health" % net, timeout=2)
        break
    except Exception:
        time.sleep(0.1)
r = requests.post("http://%s.242:9000/start_migration" % net, headers=H, timeout=30,
                  json={"server_ip": net + ".250", "container_name": "redis"})
assert r.status_code == 403 and "allowed peer" in r.json()["message"], r.text
try:
    c, _ = lst.accept()
    raise AssertionError("the agent connected to a peer outside --peer-allow: %r" % c.recv(4096))
except socket.timeout:
    pass
r = requests.post("http://%s.242:9000/start_migration" % net, headers=H, timeout=30,
                  json={"server_ip": net + ".241", "container_name": "nope"})
assert r.status_code == 404, r.text
EOF
check "--peer-allow: a pull from an address outside the list is 403 and nothing connects there; a listed peer is asked"

# a committed incoming migration is pruned once the source can no longer
# need it (--migration-timeout after the commit, here 5 s); a late question
# about it still hears "running" (a tombstone of its id)
mdir="$T_DIR/a2/root/migrations"
mid=$(ls "$mdir" | sed -n 's/^in-//p' | head -n1)
[ -n "$mid" ] || fail "no committed incoming migration on a2 to prune: $(ls "$mdir")"
for _ in $(seq 1 150); do [ -e "$mdir/in-$mid" ] || break; sleep 0.2; done  # bounded: 30 s
[ ! -e "$mdir/in-$mid" ] && [ -e "$mdir/done-$mid" ] || fail "incoming $mid not pruned: $(ls "$mdir")"
out=$(curl -s --unix-socket "$T_DIR/a2/ferryd.sock" "http://x/v1/migrations/incoming/$mid")
echo "$out" | grep -q '"state": *"running"' || fail "pruned migration: $out"
curl -s --unix-socket "$T_DIR/a2/ferryd.sock" http://x/v1/migrations | grep -q "$mid" && fail "pruned migration still listed"
check "a committed incoming migration is pruned after its time; asked later it still answers running"
f a1 ps -a | grep -q redis && fail "redis left on a1"
f a2 ps -a | grep -q redis && fail "redis left on a2"
rules=$(in_ns a1 nft list ruleset 2>/dev/null) # whole first: no SIGPIPE under pipefail
grep -Eq "tcp \\. 6379 " <<<"$rules" && fail "a1 still forwards 6379"
check "seed programs' calls all answered as the seed answers them"
echo "# all checks passed"
