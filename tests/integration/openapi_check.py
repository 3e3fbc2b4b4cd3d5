"""Calls an API over its unix socket and checks every answer against an
OpenAPI 3.1 document: the status must be documented for the operation and a
JSON body must validate against its schema. finish() fails the test for any
problem and for a documented operation no call reached (t-openapi)."""
import http.client, json, socket, sys, warnings

import jsonschema
import yaml

warnings.simplefilter("ignore", DeprecationWarning)


class Checker:
    def __init__(self, spec_path, sock):
        self.spec = yaml.safe_load(open(spec_path))
        self.name = spec_path.split("/")[-1]
        self.sock = sock
        self.ops = {}
        for tpl, item in self.spec["paths"].items():
            for m in ("get", "post", "put", "delete"):
                if m in item:
                    self.ops[(m.upper(), tpl)] = item[m]
        self.seen, self.fails = set(), []
        self.resolver = jsonschema.RefResolver.from_schema(self.spec)

    def match(self, method, path):
        segs = [x for x in path.split("?")[0].split("/") if x]
        exact = [(m, t) for (m, t) in self.ops if m == method and [x for x in t.split("/") if x] == segs]
        if exact:  # a literal route wins over a template (/v1/containers/restore)
            return exact[0], self.ops[exact[0]]
        for (m, tpl), op in self.ops.items():
            ts = [x for x in tpl.split("/") if x]
            if m != method:
                continue
            if ts and ts[-1] == "{ref}":  # the rest of the path, slashes included
                ok = len(segs) >= len(ts) and all(t == s or t.startswith("{") for t, s in zip(ts[:-1], segs))
            else:
                ok = len(segs) == len(ts) and all(t == s or t.startswith("{") for t, s in zip(ts, segs))
            if ok:
                return (m, tpl), op
        return None, None

    def call(self, method, path, body=None, raw=None, ctype="application/json", on=None):
        key, op = self.match(method, path)
        if not op:
            self.fails.append(f"{method} {path}: not in the document")
            return None, None
        self.seen.add(key)

        class Unix(http.client.HTTPConnection):
            def connect(c):
                c.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
                c.sock.settimeout(120)
                c.sock.connect(on or self.sock)

        c = Unix("localhost")
        data = raw if raw is not None else (json.dumps(body).encode() if body is not None else None)
        c.request(method, path, body=data, headers={"Content-Type": ctype} if data is not None else {})
        r = c.getresponse()
        text = r.read()
        status = str(r.status)
        doc = op["responses"].get(status)
        if not doc:
            self.fails.append(f"{method} {path}: status {status} is not documented ({text[:200]!r})")
            return r.status, None
        if "$ref" in doc:
            doc = self.resolver.resolve(doc["$ref"])[1]
        content = doc.get("content", {})
        ct = r.getheader("Content-Type", "").split(";")[0]
        if ct not in content:
            self.fails.append(f"{method} {path}: {status} answered {ct}, documented {list(content)}")
            return r.status, None
        if ct != "application/json":
            return r.status, text
        j = json.loads(text)
        try:
            jsonschema.validate(j, content[ct]["schema"], resolver=self.resolver)
        except jsonschema.ValidationError as e:
            self.fails.append(f"{method} {path}: {status} body does not match: {e.message} "
                              f"at {list(e.absolute_path)}")
        return r.status, j

    def want(self, got, *codes):
        if got[0] not in codes:
            self.fails.append(f"expected {codes}, got {got[0]}: {got[1]!r:.200}")
        return got[1]

    def finish(self):
        missing = sorted(f"{m} {t}" for (m, t) in self.ops if (m, t) not in self.seen)
        if missing:
            self.fails.append("documented but never called: " + ", ".join(missing))
        for f in self.fails:
            print(f"FAIL ({self.name}):", f)
        print(f"{self.name}: {len(self.seen)} of {len(self.ops)} documented operations called, "
              f"{len(self.fails)} problem(s)")
        return not self.fails
