#!/usr/bin/env bash
# ferry pull from a real registry (Debian's docker-registry) on the agent
# host's 127.0.0.1, with TLS and basic auth: credentials from a
# containers-auth.json as podman reads it, TLS verified against the CA given
# with --cert-dir; a wrong password, a missing tag and an unverified
# certificate give clear errors and store nothing; ferry run pulls an image
# named with its registry that the agent lacks.
source "$(dirname "$0")/lib.sh"
need docker-registry htpasswd skopeo umoci openssl curl
host_up h1 62
R="$T_DIR/reg"
mkdir -p "$R/certs" "$R/data"
in_h1() { nsenter --net="/var/run/netns/$HOST_h1_NS" "$@"; }

# the registry: TLS for 127.0.0.1 from its own CA, htpasswd (bcrypt) users
openssl req -x509 -newkey rsa:2048 -nodes -days 2 -subj "/CN=registry test CA" \
  -keyout "$R/ca.key" -out "$R/certs/ca.crt" 2>/dev/null
openssl req -newkey rsa:2048 -nodes -subj "/CN=127.0.0.1" -keyout "$R/reg.key" -out "$R/reg.csr" 2>/dev/null
printf 'subjectAltName=IP:127.0.0.1\n' >"$R/reg.ext"
openssl x509 -req -in "$R/reg.csr" -CA "$R/certs/ca.crt" -CAkey "$R/ca.key" -CAcreateserial \
  -days 2 -extfile "$R/reg.ext" -out "$R/reg.crt" 2>/dev/null
htpasswd -Bbn ferry "s3cret-pass" >"$R/htpasswd"
cat >"$R/config.yml" <<EOF
version: 0.1
log: {level: warn}
storage: {filesystem: {rootdirectory: $R/data}}
http:
  addr: 127.0.0.1:5000
  tls: {certificate: $R/reg.crt, key: $R/reg.key}
auth:
  htpasswd: {realm: ferry-test, path: $R/htpasswd}
EOF
# nsenter execs the registry: $! is its pid, which the cleanup stops
nsenter --net="/var/run/netns/$HOST_h1_NS" docker-registry serve "$R/config.yml" >"$R/log" 2>&1 &
T_PIDS+=("$!")
for _ in $(seq 1 100); do  # bounded: 10 s
  code=$(in_h1 curl -s -o /dev/null -w '%{http_code}' --cacert "$R/certs/ca.crt" https://127.0.0.1:5000/v2/ || true)
  [ "$code" = 401 ] && break
  sleep 0.1
done
[ "$code" = 401 ] || fail "the registry does not answer: $code $(tail -5 "$R/log")"

# an image in it: busybox and a marker, pushed with skopeo
L="$T_DIR/layout"
umoci init --layout "$L"
umoci new --image "$L:v1"
mkdir -p "$T_DIR/r1/bin" "$T_DIR/r1/etc"
cp "$(command -v busybox)" "$T_DIR/r1/bin/busybox"
for c in sh cat sleep; do ln -sf busybox "$T_DIR/r1/bin/$c"; done
echo "from the registry" >"$T_DIR/r1/etc/marker"
umoci insert --image "$L:v1" "$T_DIR/r1" / >/dev/null
umoci config --image "$L:v1" --config.cmd /bin/sleep --config.cmd 600 >/dev/null
in_h1 skopeo copy -q --dest-creds ferry:s3cret-pass --dest-cert-dir "$R/certs" "oci:$L:v1" \
  docker://127.0.0.1:5000/test/app:v1 || fail "push to the registry"
REF=127.0.0.1:5000/test/app:v1
check "a registry with TLS and basic auth on 127.0.0.1, holding $REF"

images_before=$(f h1 image ls --json)
nothing_stored() {
  [ "$(f h1 image ls --json)" = "$images_before" ] || fail "$1: the store changed: $(f h1 image ls)"
  [ -d "$T_DIR/h1/root/tmp" ] || fail "no scratch directory at $T_DIR/h1/root/tmp"
  [ -z "$(ls -A "$T_DIR/h1/root/tmp")" ] || fail "$1: scratch left: $(ls "$T_DIR/h1/root/tmp")"
}
# credentials as podman keeps them
printf '{"auths": {"127.0.0.1:5000": {"auth": "%s"}}}\n' "$(printf 'ferry:s3cret-pass' | base64)" >"$R/auth.json"
printf '{"auths": {"127.0.0.1:5000": {"auth": "%s"}}}\n' "$(printf 'ferry:wrong' | base64)" >"$R/bad-auth.json"

expect_fail "unauthorized|authentication required" f h1 pull --authfile "$R/bad-auth.json" --cert-dir "$R/certs" "$REF"
nothing_stored "wrong password"
expect_fail "manifest unknown|not found" f h1 pull --authfile "$R/auth.json" --cert-dir "$R/certs" 127.0.0.1:5000/test/app:nosuchtag
nothing_stored "missing tag"
expect_fail "certificate|x509" f h1 pull --authfile "$R/auth.json" "$REF"
nothing_stored "certificate not verified"
check "a wrong password, a missing tag and a certificate nobody vouched for: clear errors, nothing stored"

out=$(f h1 pull --authfile "$R/auth.json" --cert-dir "$R/certs" "$REF") || fail "pull: $out"
echo "$out" | grep -q "Pulled $REF" || fail "pull said: $out"
f h1 image ls | grep -q "^$REF " || fail "the pulled image is not listed: $(f h1 image ls)"
f h1 run -d --name app "$REF" >/dev/null || fail "run the pulled image"
[ "$(f h1 exec app cat /etc/marker)" = "from the registry" ] || fail "the pulled image's files"
f h1 rm -f app >/dev/null
f h1 image rm "$REF" >/dev/null
check "ferry pull with podman's auth file and the registry's CA: the image is stored under its reference and runs"

# --tls-verify=false and credentials given to ferry; then run pulls by itself.
# The password never reaches skopeo's command line (any local user reads
# those in /proc): sampled while the pull runs.
f h1 pull --tls-verify=false --creds ferry:s3cret-pass "$REF" >"$T_DIR/creds.out" 2>&1 &
pullpid=$!
seen=0
for _ in $(seq 1 400); do  # bounded: 20 s, or until the pull ends
  kill -0 "$pullpid" 2>/dev/null || break
  for p in /proc/[0-9]*; do
    [ "$(cat "$p/comm" 2>/dev/null)" = skopeo ] && grep -qas "s3cret-pass" "$p/cmdline" && seen=1
  done
  sleep 0.05
done
wait "$pullpid" || fail "pull --tls-verify=false --creds: $(cat "$T_DIR/creds.out")"
[ "$seen" = 0 ] || fail "the registry password was on skopeo's command line during the pull"
f h1 image rm "$REF" >/dev/null
f h1 run -d --name app2 --authfile "$R/auth.json" --cert-dir "$R/certs" "$REF" >"$T_DIR/run.out" 2>&1 ||
  fail "run of an image the agent lacks: $(cat "$T_DIR/run.out")"
grep -q "Pulled $REF" "$T_DIR/run.out" || fail "run did not say it pulled: $(cat "$T_DIR/run.out")"
[ "$(f h1 exec app2 cat /etc/marker)" = "from the registry" ] || fail "run's pulled image"
f h1 rm -f app2 >/dev/null
expect_fail "no such image" f h1 run -d unqualified-name-nowhere
check "--tls-verify=false with --creds (never on a command line); ferry run pulls a registry image it lacks (an unqualified name is not looked up)"
# push: an image with three layers (files, a whiteout, an opaque directory)
# goes to the registry, comes back by pull and runs as it did
L2="$T_DIR/layout2"
umoci init --layout "$L2"
umoci new --image "$L2:v1"
mkdir -p "$T_DIR/p1/etc" "$T_DIR/p1/gone" "$T_DIR/p1/opq" "$T_DIR/p2"
cp -a "$T_DIR/r1/bin" "$T_DIR/p1/"
echo keep >"$T_DIR/p1/etc/keep"; echo x >"$T_DIR/p1/gone/x"; echo old >"$T_DIR/p1/opq/old"
umoci insert --image "$L2:v1" "$T_DIR/p1" / >/dev/null
umoci insert --image "$L2:v1" --whiteout /gone >/dev/null
echo new >"$T_DIR/p2/new"
umoci insert --image "$L2:v1" --opaque "$T_DIR/p2" /opq >/dev/null
umoci config --image "$L2:v1" --config.cmd /bin/sleep --config.cmd 600 --config.env MARK=pushed >/dev/null
(cd "$L2" && tar -cf "$T_DIR/three.oci.tar" .)
f h1 image import "$T_DIR/three.oci.tar" --name three >/dev/null
PREF=127.0.0.1:5000/test/three:v1
expect_fail "unauthorized|authentication required" f h1 push --authfile "$R/bad-auth.json" --cert-dir "$R/certs" three "$PREF"
out=$(f h1 push --authfile "$R/auth.json" --cert-dir "$R/certs" three "$PREF") || fail "push: $out"
echo "$out" | grep -q "Pushed three to $PREF" || fail "push said: $out"
f h1 image rm three >/dev/null
f h1 pull --authfile "$R/auth.json" --cert-dir "$R/certs" "$PREF" >/dev/null || fail "pull of the pushed image"
f h1 run -d --name back "$PREF" >/dev/null || fail "run the image that went to the registry and back"
got=$(f h1 exec back sh -c 'cat /etc/keep; ls /opq; [ -e /gone ] && echo GONE-IS-BACK; echo $MARK')
[ "$got" = "$(printf 'keep\nnew\npushed')" ] || fail "after push and pull the image holds: $got"
f h1 rm -f back >/dev/null
check "ferry push (a wrong password refused): three layers with a whiteout and an opaque directory go to the registry and come back the same"
echo "# all checks passed"
