#!/usr/bin/env bash
# docs/openapi/ferryd.yaml is what ferryd answers, ferry-coord.yaml what the
# coordinator answers: every documented route is called on a live agent (a
# container moved to a second one) or coordinator, and each
# answer's status must be one the document lists for it and its body must
# validate against the document's schema. A documented route that no call
# reached fails the test, and so does an answer the document does not know.
source "$(dirname "$0")/lib.sh"
need /usr/bin/python3
/usr/bin/python3 -c 'import yaml, jsonschema' 2>/dev/null || need python3-yaml python3-jsonschema
COORD_ADDR="$CLUSTER_NET.200"
CLUSTER_COORD="tcp://$COORD_ADDR:7000"   # cluster_up registers the agents
cluster_up 2
cluster_client gs "$COORD_ADDR"
nsenter --net="/var/run/netns/${T_ID}-gs" "$FERRY_BUILD/ferry-coord" serve --db "$T_DIR/coord.db" \
  --listen "$COORD_ADDR:7000" --socket "$T_DIR/coord.sock" --token-file "$T_DIR/token" \
  --heartbeat-timeout 5 --config /dev/null >>"$T_DIR/coord.log" 2>&1 &
T_PIDS+=("$!")
for _ in $(seq 1 50); do [ -S "$T_DIR/coord.sock" ] && break; sleep 0.1; done
make_rootfs
f a2 image import "$T_DIR/busybox.tar" --name busybox >/dev/null
"$(dirname "$0")/../../scripts/mkrootfs" "$T_DIR/redis.tar" --redis
f a1 image import "$T_DIR/redis.tar" --name redis:alpine >/dev/null
/usr/bin/python3 - "$(dirname "$0")/../../docs/openapi/ferryd.yaml" "$T_DIR/a1/ferryd.sock" "$T_DIR/busybox.tar" \
  "$HOST_a2_URL" "$T_DIR" "$T_DIR/a2/ferryd.sock" "$CLUSTER_NET.241" "$HOST_a1_URL" "$(dirname "$0")" <<'EOF'
import sys, time
sys.path.insert(0, sys.argv[9])
from openapi_check import Checker
spec_path, sock1, tarball, a2, tdir, sock2, a1_ip, a1 = sys.argv[1:9]
chk = Checker(spec_path, sock1)
call, want = chk.call, chk.want

want(call("GET", "/health"), 200)
want(call("GET", "/v1/info"), 200)
want(call("GET", "/metrics"), 200)
img = want(call("POST", "/v1/images/import?name=busybox&filename=busybox.tar", raw=open(tarball, "rb").read(),
                ctype="application/octet-stream"), 201)
want(call("GET", "/v1/images"), 200)
want(call("GET", "/v1/images/busybox:latest"), 200)
want(call("GET", "/v1/images/nosuch"), 404)
want(call("POST", "/v1/images/save", {"image": "nosuch"}), 404)
want(call("POST", "/v1/images/save", {"image": "busybox:latest"}), 200)
want(call("POST", "/v1/images/tag", {"image": "busybox:latest", "name": "oa/bb:v1"}), 200)
want(call("POST", "/v1/images/tag", {"image": "nosuch", "name": "oa/bb:v2"}), 404)
want(call("POST", "/v1/images/tag", {"image": "busybox:latest", "name": "Bad Name"}), 400)
want(call("DELETE", "/v1/images/oa/bb:v1"), 200)
want(call("POST", "/v1/images/pull", {"reference": "127.0.0.1:1/none/such:1"}), 503)
want(call("POST", "/v1/images/push/busybox:latest", {"destination": "127.0.0.1:1/none/such:1"}), 503)
want(call("POST", "/v1/images/push/nosuch", {"destination": "127.0.0.1:1/none/such:1"}), 404)
want(call("POST", "/v1/volumes", {"name": "oa-vol"}), 201)
want(call("GET", "/v1/volumes"), 200)
want(call("GET", "/v1/volumes/oa-vol"), 200)
want(call("POST", "/v1/containers", {"image": "busybox", "name": "oa", "cmd": ["sh", "-c", "echo hello; sleep 600"],
                                     "volumes": ["oa-vol:/data"], "ports": ["18080:80"], "start": True}), 201)
want(call("POST", "/v1/containers", {"image": "busybox", "name": "oa"}), 409)
want(call("GET", "/v1/containers"), 200)
want(call("GET", "/v1/containers/oa"), 200)
want(call("GET", "/v1/containers/oa/logs"), 200)
want(call("GET", "/v1/containers/oa/top"), 200)
want(call("GET", "/v1/containers/oa/stats"), 200)
# interactive sessions: an exec with input (its output read meanwhile), a
# terminal's size, an attach without input
import threading
ses = want(call("POST", "/v1/containers/oa/exec", {"cmd": ["cat"], "session": True, "stdin": True}), 200)
got = []
reader = threading.Thread(target=lambda: got.append(call("GET", f"/v1/sessions/{ses['session']}")))
reader.start()
time.sleep(0.3)
want(call("POST", f"/v1/sessions/{ses['session']}/stdin", raw=b"hi\n", ctype="application/octet-stream"), 200)
reader.join(30)
want(got[0] if got else (None, None), 200)
want(call("GET", f"/v1/sessions/{ses['session']}"), 404)
want(call("POST", f"/v1/sessions/{ses['session']}/stdin", raw=b"x", ctype="application/octet-stream"), 404)
ses = want(call("POST", "/v1/containers/oa/exec", {"cmd": ["true"], "session": True, "tty": True}), 200)
want(call("POST", f"/v1/sessions/{ses['session']}/resize", {"rows": 30, "cols": 100}), 200)
want(call("POST", f"/v1/sessions/{ses['session']}/resize", {"rows": 0, "cols": 100}), 400)
want(call("GET", f"/v1/sessions/{ses['session']}"), 200)
want(call("POST", "/v1/sessions/nosuch/resize", {"rows": 30, "cols": 100}), 404)
ses = want(call("POST", "/v1/containers/oa/attach", {"stdin": True}), 200)
want(call("POST", f"/v1/sessions/{ses['session']}/resize", {"rows": 30, "cols": 100}), 409)
want(call("POST", f"/v1/sessions/{ses['session']}/stdin", raw=b"x", ctype="application/octet-stream"), 409)
want(call("POST", "/v1/containers/nosuch/attach", {}), 404)
want(call("POST", "/v1/containers/oa/attach", {"rows": "x"}), 400)
# ferry cp's archive: stat, a tar out, a tar in, a hostile one, a bad path
want(call("GET", "/v1/containers/oa/archive?path=/etc&stat=1"), 200)
want(call("GET", "/v1/containers/oa/archive?path=/nosuch&stat=1"), 404)
tar_etc = want(call("GET", "/v1/containers/oa/archive?path=/etc/motd"), 200)
want(call("PUT", "/v1/containers/oa/archive?path=/tmp", raw=tar_etc, ctype="application/octet-stream"), 200)
import io, tarfile
evil = io.BytesIO()
with tarfile.open(fileobj=evil, mode="w") as t:
    ti = tarfile.TarInfo("../../escape"); ti.size = 1; t.addfile(ti, io.BytesIO(b"x"))
want(call("PUT", "/v1/containers/oa/archive?path=/tmp", raw=evil.getvalue(), ctype="application/octet-stream"), 400)
want(call("PUT", "/v1/containers/oa/archive?path=/etc/motd", raw=tar_etc, ctype="application/octet-stream"), 409)
want(call("GET", "/v1/containers/oa/archive?path=relative"), 400)
want(call("GET", "/v1/containers/nosuch/stats"), 404)
want(call("GET", "/v1/containers/nosuch/top"), 404)
want(call("POST", "/v1/containers/oa/exec", {"cmd": ["echo", "hi"]}), 200)
want(call("POST", "/v1/containers/oa/exec", {"cmd": ["echo", "hi"], "stream": True}), 200)
want(call("POST", "/v1/containers/oa/resume"), 409)
want(call("POST", "/v1/containers/oa/pause"), 200)
want(call("POST", "/v1/containers/oa/pause"), 409)
want(call("POST", "/v1/containers/oa/resume"), 200)
want(call("POST", "/v1/containers/oa/kill?signal=CONT"), 200)
want(call("POST", "/v1/containers/oa/checkpoint", {"dir": tdir + "/oa-ck", "leave_running": True}), 200)
want(call("POST", "/v1/containers/oa/stop?timeout=1"), 200)
want(call("POST", "/v1/containers/oa/start"), 200)
want(call("DELETE", "/v1/volumes/oa-vol"), 409)
want(call("POST", "/v1/containers/restore", {"dir": tdir + "/oa-ck", "name": "oa-restored"}), 409)
want(call("POST", "/v1/containers", {"image": "busybox", "name": "oa2", "cmd": ["sleep", "600"], "start": True}), 201)
m = want(call("POST", "/v1/containers/oa2/migrate?wait=1", {"to": a2}), 202)
if m:
    want(call("GET", "/v1/migrations/" + m["id"]), 200)
want(call("GET", "/v1/migrations"), 200)
want(call("GET", "/v1/migrations/0123456789abcdef"), 404)
want(call("DELETE", "/v1/containers/oa?force=1"), 200)
want(call("POST", "/v1/containers/restore", {"dir": tdir + "/oa-ck", "name": "oa-restored"}), 200)
want(call("DELETE", "/v1/containers/oa-restored?force=1"), 200)
want(call("DELETE", "/v1/volumes/oa-vol"), 200)
want(call("GET", "/v1/containers/oa"), 404)
want(call("DELETE", "/v1/images/busybox:latest"), 200)

# the seeds' routes: redis run afresh, filled, set and read, pulled to a2 and back
want(call("POST", "/start_container", {"container_name": "redis"}), 200)
want(call("POST", "/start_container", {}), 400)
for _ in range(100):  # bounded: until redis listens (10 s)
    st, j = call("POST", "/generate_data", {"data_size_mb": 1, "bytes_per_key": 1024})
    if st == 200:
        break
    time.sleep(0.1)
else:
    chk.fails.append(f"generate_data never succeeded: {st} {j}")
want(call("POST", "/generate_data", {"data_size_mb": "x", "bytes_per_key": 1}), 400)
want(call("POST", "/set_redis", {"key": "sat", "value": "ISS"}), 200)
g = want(call("GET", "/get_redis/sat"), 200)
if g and g.get("value") != "ISS":
    chk.fails.append(f"get_redis answered {g}")
want(call("POST", "/start_migration", {"server_ip": a1_ip + ":9000", "container_name": "redis"}, on=sock2), 200)
want(call("POST", "/start_migration", {"server_ip": a1_ip + ":9000", "container_name": "nosuch"}, on=sock2), 404)
want(call("GET", "/container/redis?to=" + a1, on=sock2), 200)
want(call("GET", "/containers/nosuch?to=" + a2), 404)
want(call("GET", "/containers/redis"), 400)  # over the unix socket the caller must say where
want(call("POST", "/stop_container/redis"), 200)
want(call("POST", "/remove_container/redis"), 200)
want(call("POST", "/remove_container/redis"), 404)
want(call("POST", "/remove_volume/nosuch"), 404)
sys.exit(0 if chk.finish() else 1)
EOF
check "every route in docs/openapi/ferryd.yaml answers with a documented status and a body its schema accepts"

# the coordinator: nodes (the agents registered themselves), a move a1 -> a2
f a1 image import "$T_DIR/busybox.tar" --name busybox >/dev/null
f a1 run -d --name co-svc busybox sleep 600 >/dev/null
/usr/bin/python3 - "$(dirname "$0")/../../docs/openapi/ferry-coord.yaml" "$T_DIR/coord.sock" "$(dirname "$0")" <<'EOF'
import sys, time
sys.path.insert(0, sys.argv[3])
from openapi_check import Checker
chk = Checker(sys.argv[1], sys.argv[2])
call, want = chk.call, chk.want
want(call("GET", "/health"), 200)
want(call("GET", "/metrics"), 200)
for _ in range(50):  # bounded: until both agents registered (10 s)
    st, nodes = call("GET", "/v1/nodes")
    if st == 200 and len([n for n in nodes if n.get("status") == "up"]) >= 2:
        break
    time.sleep(0.2)
else:
    chk.fails.append(f"the agents did not register: {nodes}")
want(call("GET", "/v1/nodes/a1"), 200)
want(call("GET", "/v1/nodes/nosuch"), 404)
want(call("POST", "/v1/nodes/a1/heartbeat"), 403)  # the token alone does not speak for a1
want(call("POST", "/v1/nodes/nosuch/heartbeat"), 404)
want(call("POST", "/v1/nodes", {"name": "extra", "url": "tcp://198.18.100.99:9000"}), 200)
want(call("POST", "/v1/nodes", {"name": "bad"}), 400)
want(call("POST", "/register", {"hostname": "seed-node", "ip": "198.18.100.98", "port": 8000}), 200)
m = want(call("POST", "/v1/migrations?wait=1", {"container": "co-svc", "from": "a1", "to": "a2"}), 202)
if m:
    want(call("GET", "/v1/migrations/" + m["id"]), 200)
want(call("GET", "/v1/migrations/nosuch"), 404)
want(call("GET", "/v1/migrations"), 200)
want(call("POST", "/v1/migrations", {"container": "co-svc", "to": "nosuch"}), 404)
want(call("POST", "/migrate", {"deployment": "co-svc", "originNode": "a2", "destNode": "a1"}), 200)
sys.exit(0 if chk.finish() else 1)
EOF
check "every route in docs/openapi/ferry-coord.yaml answers with a documented status and a body its schema accepts"
echo "# all checks passed"
