#!/usr/bin/env bash
# docs/openapi/ferryd.yaml is what ferryd answers: every documented route is
# called on a live agent (a container moved to a second one), and each
# answer's status must be one the document lists for it and its body must
# validate against the document's schema. A documented route that no call
# reached fails the test, and so does an answer the document does not know.
source "$(dirname "$0")/lib.sh"
need /usr/bin/python3
/usr/bin/python3 -c 'import yaml, jsonschema' 2>/dev/null || need python3-yaml python3-jsonschema
cluster_up 2
make_rootfs
f a2 image import "$T_DIR/busybox.tar" --name busybox >/dev/null
"$(dirname "$0")/../../scripts/mkrootfs" "$T_DIR/redis.tar" --redis
f a1 image import "$T_DIR/redis.tar" --name redis >/dev/null
/usr/bin/python3 - "$(dirname "$0")/../../docs/openapi/ferryd.yaml" "$T_DIR/a1/ferryd.sock" "$T_DIR/busybox.tar" \
  "$HOST_a2_URL" "$T_DIR" "$T_DIR/a2/ferryd.sock" "$CLUSTER_NET.241" "$HOST_a1_URL" <<'EOF'
import http.client, json, re, socket, sys, warnings
import yaml, jsonschema
warnings.simplefilter("ignore", DeprecationWarning)
spec_path, sock1, tarball, a2, tdir, sock2, a1_ip, a1 = sys.argv[1:9]
sock = sock1
spec = yaml.safe_load(open(spec_path))

class Unix(http.client.HTTPConnection):
    path = sock1
    def connect(self):
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.settimeout(120)
        self.sock.connect(self.path)

ops = {}   # (method, template) -> operation
for tpl, item in spec["paths"].items():
    for m in ("get", "post", "put", "delete"):
        if m in item:
            ops[(m.upper(), tpl)] = item[m]
seen, fails = set(), []
resolver = jsonschema.RefResolver.from_schema(spec)

def match(method, path):
    segs = [x for x in path.split("?")[0].split("/") if x]
    for (m, tpl), op in ops.items():
        ts = [x for x in tpl.split("/") if x]
        if m != method:
            continue
        if ts and ts[-1] == "{ref}":  # the rest of the path, slashes included
            ok = len(segs) >= len(ts) and all(t == s or t.startswith("{") for t, s in zip(ts[:-1], segs))
        else:
            ok = len(segs) == len(ts) and all(t == s or t.startswith("{") for t, s in zip(ts, segs))
        # a literal route wins over a template one (/v1/containers/restore)
        if ok and not any(m2 == method and [x for x in t2.split("/") if x] == segs for (m2, t2) in ops):
            return (m, tpl), op
        if ok and [x for x in tpl.split("/") if x] == segs:
            return (m, tpl), op
    return None, None

def call(method, path, body=None, raw=None, ctype="application/json", on=None):
    key, op = match(method, path)
    if not op:
        fails.append(f"{method} {path}: not in the document"); return None, None
    seen.add(key)
    c = Unix("localhost")
    c.path = on or sock1
    data = raw if raw is not None else (json.dumps(body).encode() if body is not None else None)
    c.request(method, path, body=data, headers={"Content-Type": ctype} if data is not None else {})
    r = c.getresponse()
    text = r.read()
    status = str(r.status)
    doc = op["responses"].get(status)
    if not doc:
        fails.append(f"{method} {path}: status {status} is not documented ({text[:200]!r})"); return r.status, None
    if "$ref" in doc:
        doc = resolver.resolve(doc["$ref"])[1]
    content = doc.get("content", {})
    ct = r.getheader("Content-Type", "").split(";")[0]
    if ct not in content:
        fails.append(f"{method} {path}: {status} answered {ct}, documented {list(content)}"); return r.status, None
    if ct == "application/json":
        j = json.loads(text)
        try:
            jsonschema.validate(j, content[ct]["schema"], resolver=resolver)
        except jsonschema.ValidationError as e:
            fails.append(f"{method} {path}: {status} body does not match: {e.message} at {list(e.absolute_path)}")
        return r.status, j
    return r.status, text

def want(got, *codes):
    if got[0] not in codes:
        fails.append(f"expected {codes}, got {got[0]}: {got[1]!r:.200}")
    return got[1]

want(call("GET", "/health"), 200)
want(call("GET", "/v1/info"), 200)
want(call("GET", "/metrics"), 200)
img = want(call("POST", "/v1/images/import?name=busybox&filename=busybox.tar", raw=open(tarball, "rb").read(),
                ctype="application/octet-stream"), 201)
want(call("GET", "/v1/images"), 200)
want(call("GET", "/v1/images/busybox:latest"), 200)
want(call("GET", "/v1/images/nosuch"), 404)
want(call("POST", "/v1/images/pull", {"reference": "127.0.0.1:1/none/such:1"}), 503)
want(call("POST", "/v1/volumes", {"name": "oa-vol"}), 201)
want(call("GET", "/v1/volumes"), 200)
want(call("GET", "/v1/volumes/oa-vol"), 200)
want(call("POST", "/v1/containers", {"image": "busybox", "name": "oa", "cmd": ["sh", "-c", "echo hello; sleep 600"],
                                     "volumes": ["oa-vol:/data"], "ports": ["18080:80"], "start": True}), 201)
want(call("POST", "/v1/containers", {"image": "busybox", "name": "oa"}), 409)
want(call("GET", "/v1/containers"), 200)
want(call("GET", "/v1/containers/oa"), 200)
want(call("GET", "/v1/containers/oa/logs"), 200)
want(call("POST", "/v1/containers/oa/exec", {"cmd": ["echo", "hi"]}), 200)
want(call("POST", "/v1/containers/oa/resume"), 409)
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
import time
want(call("POST", "/start_container", {"container_name": "redis"}), 200)
want(call("POST", "/start_container", {}), 400)
for _ in range(100):  # bounded: until redis listens (10 s)
    st, j = call("POST", "/generate_data", {"data_size_mb": 1, "bytes_per_key": 1024})
    if st == 200:
        break
    time.sleep(0.1)
else:
    fails.append(f"generate_data never succeeded: {st} {j}")
want(call("POST", "/generate_data", {"data_size_mb": "x", "bytes_per_key": 1}), 400)
want(call("POST", "/set_redis", {"key": "sat", "value": "ISS"}), 200)
g = want(call("GET", "/get_redis/sat"), 200)
if g and g.get("value") != "ISS":
    fails.append(f"get_redis answered {g}")
want(call("POST", "/start_migration", {"server_ip": a1_ip + ":9000", "container_name": "redis"}, on=sock2), 200)
want(call("POST", "/start_migration", {"server_ip": a1_ip + ":9000", "container_name": "nosuch"}, on=sock2), 404)
want(call("GET", "/container/redis?to=" + a1, on=sock2), 200)
want(call("GET", "/containers/nosuch?to=" + a2), 404)
want(call("GET", "/containers/redis"), 400)  # over the unix socket the caller must say where
want(call("POST", "/stop_container/redis"), 200)
want(call("POST", "/remove_container/redis"), 200)
want(call("POST", "/remove_container/redis"), 404)
want(call("POST", "/remove_volume/nosuch"), 404)
missing = sorted(f"{m} {t}" for (m, t) in ops if (m, t) not in seen)
if missing:
    fails.append("documented but never called: " + ", ".join(missing))
for f in fails:
    print("FAIL:", f)
print(f"{len(seen)} of {len(ops)} documented operations called, {len(fails)} problem(s)")
sys.exit(1 if fails else 0)
EOF
check "every route in docs/openapi/ferryd.yaml answers with a documented status and a body its schema accepts"
echo "# all checks passed"
