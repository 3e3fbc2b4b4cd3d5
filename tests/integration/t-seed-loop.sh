#!/usr/bin/env bash
# The satellite seed's whole loop, the way its programs play it, against
# five ferryd hosts named as the seed names satellites (ID.SHELL.celestial,
# here 1.0.celestial .. 5.0.celestial), resolved by the hosts' resolver from
# a hosts file (a private mount namespace with it bound over /etc/hosts:
# `ip netns exec` would remount /sys, which runc cannot live with).
#
# A ground station (python3 with requests, as the seed's) calls
# /start_container on the first host, /generate_data, then /start_migration
# on each next host with the previous one's NAME as server_ip, along the
# chain 1 -> 2 -> 3 -> 4 -> 5; a redis client (python3-redis) writes through
# the published port 6379 of whichever host it was told runs redis. Every
# move succeeds, every answer has the seed's fields and units, the
# container keeps its id, and no acknowledged write is lost. The hosts'
# addresses are not in the containers' subnet, so the default peer
# allow-list applies: a container's address as server_ip is refused.
if [ -z "${FERRY_HOSTS_NS:-}" ]; then
  exec env FERRY_HOSTS_NS=1 unshare --mount --propagation private bash "$0" "$@"
fi
source "$(dirname "$0")/lib.sh"
need /usr/bin/python3
/usr/bin/python3 -c 'import requests, redis' 2>/dev/null || need python3-requests python3-redis

CNET=198.18.120   # the containers' subnet, one segment across the hosts
UNET=198.18.121   # the hosts' own addresses (the seed's satellites)
N=5
{
  echo "127.0.0.1 localhost"
  for i in $(seq 1 $N); do echo "$UNET.$i $i.0.celestial"; done
} >"$T_DIR/hosts"
mount --bind "$T_DIR/hosts" /etc/hosts
getent hosts 3.0.celestial | grep -q "^$UNET.3 " || fail "the hosts file does not resolve 3.0.celestial"

T_SW="${T_ID}-sw"
ip netns add "$T_SW"
T_NETNS+=("$T_SW")
ip -n "$T_SW" link set lo up
ip -n "$T_SW" link add sw0 type bridge
ip -n "$T_SW" link set sw0 up
for i in $(seq 1 $N); do
  h="s$i" br="fb${$}s$i"
  new_host_ns "$h"
  ns="${T_ID}-$h"
  ip -n "$ns" link add "$br" type bridge
  ip -n "$ns" link set "$br" up
  ip -n "$ns" addr add "$UNET.$i/24" dev "$br"
  ip link add "fu$$$i" type veth peer name "sw$i" netns "$T_SW"
  ip link set "fu$$$i" netns "$ns"
  ip -n "$ns" link set "fu$$$i" master "$br" up
  ip -n "$T_SW" link set "sw$i" master sw0 up
  start_agent "$h" -- --bridge "$br" --subnet "$CNET.0/24" --gateway "$CNET.$((240 + i))" \
    --listen "$UNET.$i:8000" --insecure-no-token --migration-timeout 30
done
cluster_client gs "$UNET.250"   # the ground station, on the same switch

"$(dirname "$0")/../../scripts/mkrootfs" "$T_DIR/redis.tar" --redis
f s1 image import "$T_DIR/redis.tar" --name redis:alpine >/dev/null
check "five hosts named 1.0.celestial .. 5.0.celestial (hosts file), ferryd on port 8000 of each, the seed's image redis:alpine on the first"

in_ns gs /usr/bin/python3 - "$N" "$CNET" >"$T_DIR/py.out" 2>&1 <<'EOF' || { cat "$T_DIR/py.out"; fail "the seed's loop failed"; }
import sys, threading, time
import redis, requests

n_hosts, cnet = int(sys.argv[1]), sys.argv[2]
names = ["%d.0.celestial" % i for i in range(1, n_hosts + 1)]
n = 0

def ok(msg):
    global n
    n += 1
    print("ok %d - %s" % (n, msg), flush=True)

def call(method, host, path, body=None, timeout=120):
    r = requests.request(method, "http://%s:8000%s" % (host, path), json=body, timeout=timeout)
    return r.status_code, r.json()

def seed_answer(a, *fields):
    assert a.get("status") == "success" and isinstance(a.get("message"), str), a
    for f in fields:
        assert f in a, "answer lacks %r: %s" % (f, a)

def ctr_id(host):
    code, a = call("GET", host, "/v1/containers/redis")
    assert code == 200, a
    return a["id"]

code, a = call("GET", names[0], "/health")
assert code == 200 and a == {"status": "UP"}, a
code, a = call("POST", names[0], "/start_container", {"container_name": "redis"})
assert code == 200, a
seed_answer(a, "duration_ms")
assert isinstance(a["duration_ms"], int) and a["duration_ms"] > 0, a
started_ms = a["duration_ms"]
rc = redis.Redis(host=names[0], port=6379, socket_timeout=20)
for _ in range(100):
    try:
        if rc.ping():
            break
    except Exception:
        time.sleep(0.1)
code, a = call("POST", names[0], "/generate_data", {"data_size_mb": 2, "bytes_per_key": 1000})
assert code == 200, a
seed_answer(a, "keys")
assert a["keys"] == 2000 and rc.dbsize() == 2000, (a, rc.dbsize())
ok("/start_container on %s ran the seed's redis (redis:alpine, port 6379 published, %d ms); /generate_data stored 2000 keys" % (names[0], started_ms))

# a container's address is no peer: refused before anything is sent there
cip = None
code, a = call("GET", names[0], "/v1/containers/redis")
cip = a["ip"]
assert cip.startswith(cnet + "."), a
code, a = call("POST", names[1], "/start_migration", {"server_ip": cip, "container_name": "redis"})
assert code == 403 and a["status"] == "error", (code, a)
code, a = call("POST", names[1], "/start_migration", {"server_ip": "9.0.celestial", "container_name": "redis"})
assert code == 502 and "9.0.celestial" in a["message"], (code, a)
ok("server_ip = a container's address (%s): 403; a name that does not resolve: 502 naming it" % cip)

first_id = ctr_id(names[0])
state = {"host": names[0], "acked": [], "errors": 0, "stop": False}
lock = threading.Lock()

def writer():
    cur, cl, i = None, None, 0
    while not state["stop"]:
        with lock:
            h = state["host"]
        if h != cur:
            cur, cl = h, redis.Redis(host=h, port=6379, socket_timeout=20)
        try:
            cl.set("ack:%d" % i, i)
            state["acked"].append(i)
            i += 1
        except Exception:
            state["errors"] += 1
            cl = redis.Redis(host=cur, port=6379, socket_timeout=20)
            time.sleep(0.05)
        time.sleep(0.01)

t = threading.Thread(target=writer, daemon=True)
t.start()
time.sleep(0.5)
for k in range(1, n_hosts):
    src, dst = names[k - 1], names[k]
    code, a = call("POST", dst, "/start_migration", {"server_ip": src, "container_name": "redis"})
    assert code == 200, (src, dst, code, a)
    seed_answer(a, "checkpoint_duration", "restore_duration", "checkpoint_stats", "restore_stats")
    # microseconds, as the seed's tools read them (podman's --print-stats)
    assert isinstance(a["checkpoint_duration"], int) and a["checkpoint_duration"] >= 1000, a
    assert isinstance(a["restore_duration"], int) and a["restore_duration"] >= 1000, a
    cs = a["checkpoint_stats"]["container_statistics"][0]
    rs = a["restore_stats"]["container_statistics"][0]
    assert "freezing_time" in cs["criu_statistics"] and "pages_written" in cs["criu_statistics"], cs
    assert "restore_time" in rs["criu_statistics"], rs
    assert cs["Id"] == first_id, (cs, first_id)
    with lock:
        state["host"] = dst
    time.sleep(0.5)
    assert ctr_id(dst) == first_id, "the id changed on %s" % dst
    for _ in range(100):  # bounded: 10 s, until the source removed its copy
        code, _a = call("GET", src, "/v1/containers/redis")
        if code == 404:
            break
        time.sleep(0.1)
    assert code == 404, "the source %s kept a copy" % src
    ok("pull %s -> %s by name: success, durations in microseconds, podman-shaped stats, the same container id" % (src, dst))
time.sleep(0.5)
state["stop"] = True
t.join(30)
rc = redis.Redis(host=names[-1], port=6379, socket_timeout=20)
acked = state["acked"]
assert len(acked) > 0
missing = [i for i in acked if rc.get("ack:%d" % i) is None]
assert not missing, "acknowledged writes lost: %s" % missing[:10]
assert rc.dbsize() >= 2000 + len(acked), rc.dbsize()
ok("the redis client followed redis along the chain: %d writes acknowledged, none lost (%d errors while it moved); the 2000 generated keys arrived at %s" %
   (len(acked), state["errors"], names[-1]))

for path in ("/stop_container/redis", "/remove_container/redis"):
    code, a = call("POST", names[-1], path)
    assert code == 200, (path, a)
    seed_answer(a)
code, a = call("POST", names[-1], "/remove_volume/nope")
assert code == 404 and a["status"] == "error", a
ok("/stop_container and /remove_container on the last host; /remove_volume of no volume: 404")
EOF
cat "$T_DIR/py.out"
n=$(grep -c '^ok ' "$T_DIR/py.out")
[ "$n" = 8 ] || fail "the loop ran $n of its 8 steps"
check "the seed's ground-station loop by host name along five hosts: every step succeeded"

# ferry migrate to a host name, memory streamed to the target's page server
f s5 run -d --name r2 redis:alpine redis-server --protected-mode no --save '' >/dev/null
out=$(f s5 --json migrate r2 --to tcp://4.0.celestial:8000 --memory stream) || fail "migrate to a host name: $out"
echo "$out" | grep -q '"memory": "stream"' || fail "the pages were not streamed: $out"
f s4 ps | grep -q "r2 .*running" || fail "r2 not running on 4.0.celestial: $(f s4 ps -a)"
f s4 rm -f r2 >/dev/null
check "ferry migrate --to tcp://4.0.celestial:8000 --memory stream: the page server reached by the name's address"
echo "# all checks passed"
