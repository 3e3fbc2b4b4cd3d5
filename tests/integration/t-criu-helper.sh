#!/usr/bin/env bash
# ferry-criu, what runc runs as CRIU: it answers runc's VERSION question as
# CRIU itself does (the same bytes), from its cache once asked, asks CRIU
# again when the cache is damaged or was made for another criu binary, and
# hands every other request to the real criu (a CHECK gets CRIU's answer).
source "$(dirname "$0")/lib.sh"
need python3
HELPER="$FERRY_BUILD/ferry-criu"
[ -x "$HELPER" ] || fail "no ferry-criu in $FERRY_BUILD"
CACHE="$T_DIR/criu-version.cache"

# ask PROGRAM TYPE: one request of TYPE (criu_req.type) on a socket pair to
# `PROGRAM swrk FD`, as runc sends it; prints the answer's bytes in hex
ask() {
  python3 - "$1" "$2" <<'PY'
import os, socket, subprocess, sys
prog, typ = sys.argv[1], int(sys.argv[2])
a, b = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
p = subprocess.Popen([prog, "swrk", str(b.fileno())], pass_fds=[b.fileno()],
                     stdout=subprocess.DEVNULL)
b.close()
a.send(bytes([0x08, typ]))            # criu_req { type = typ }
a.settimeout(30)
ans = a.recv(65536)
a.close()
p.wait(timeout=30)
print(ans.hex())
PY
}
VERSION=10 CHECK=3

real=$(ask criu $VERSION)
[ -n "$real" ] || fail "criu swrk gave no answer to VERSION"
# CriuResp: field 1 (type) = 10, field 2 (success) = 1
case "$real" in 080a1001*) ;; *) fail "criu's VERSION answer is not a success: $real" ;; esac

rm -f "$CACHE"
got=$(FERRY_CRIU_CACHE="$CACHE" ask "$HELPER" $VERSION)
[ "$got" = "$real" ] || fail "first answer differs from criu's: $got vs $real"
[ -s "$CACHE" ] || fail "no cache written at $CACHE"
check "VERSION answered with criu's own bytes, cache written"

# from the cache now: the same answer, and the cache is not written again
cp "$CACHE" "$T_DIR/good"
got=$(FERRY_CRIU_CACHE="$CACHE" ask "$HELPER" $VERSION)
[ "$got" = "$real" ] || fail "cached answer differs: $got"
ino=$(stat -c %i "$CACHE")
got=$(FERRY_CRIU_CACHE="$CACHE" ask "$HELPER" $VERSION)
[ "$(stat -c %i "$CACHE")" = "$ino" ] || fail "the cache was written again although it was valid"
check "VERSION answered from the cache without asking criu"

# damaged cache, or one made for another binary: asked again, rewritten
printf 'ferry-criu-version 1 0 0 0 0.0 4\nxxxx' >"$CACHE"
got=$(FERRY_CRIU_CACHE="$CACHE" ask "$HELPER" $VERSION)
[ "$got" = "$real" ] || fail "answer with a foreign cache: $got"
cmp -s "$CACHE" "$T_DIR/good" || fail "the foreign cache was not replaced by criu's answer"
head -c 40 /dev/urandom >"$CACHE"
got=$(FERRY_CRIU_CACHE="$CACHE" ask "$HELPER" $VERSION)
[ "$got" = "$real" ] || fail "answer with a damaged cache: $got"
check "a damaged or foreign cache is replaced by criu's answer"

# anything else goes to criu itself
real_check=$(ask criu $CHECK)
got=$(FERRY_CRIU_CACHE="$CACHE" ask "$HELPER" $CHECK)
case "$got" in 0803*) ;; *) fail "CHECK through ferry-criu: $got" ;; esac
[ "${got:0:8}" = "${real_check:0:8}" ] || fail "CHECK answered differently: $got vs $real_check"
got=$(ask "$HELPER" $VERSION)
[ "$got" = "$real" ] || fail "without a cache path: $got"
check "other requests (CHECK) and runs without a cache reach criu itself"
# a restore held at the gate (FERRY_CRIU_GATE, ferryd's unix socket):
# "ready" first, criu only after "g"; the gate closed instead, it ends
# with an error and criu never sees the request
gate() { # ACTION: go | close [DIR: images dir]; prints "EXIT ANSWER-HEX CRIU-AHEAD"
  python3 - "$HELPER" "$T_DIR/gate.sock" "$1" "${2:-}" <<'PY'
import os, socket, subprocess, sys
helper, path, action, images = sys.argv[1:]
if os.path.exists(path): os.unlink(path)
l = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM); l.bind(path); l.listen(1); l.settimeout(30)
a, b = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
env = dict(os.environ, FERRY_CRIU_GATE=path)
p = subprocess.Popen([helper, "swrk", str(b.fileno())], pass_fds=[b.fileno()], env=env,
                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
b.close()
# criu_req { type = RESTORE, opts = { images_dir_fd = FD } }: criu answers it,
# failing (no images); FD 99 is not open (ferry-criu cannot hand the request
# over: criu runs at "g"), a directory of ours is (criu starts at once)
fd = os.open(images, os.O_RDONLY | os.O_DIRECTORY) if images else 99
a.send(bytes([0x08, 0x02, 0x12, 0x02, 0x08, fd]))
c, _ = l.accept(); c.settimeout(30)
ready = c.recv(16)
if ready != b"ready\n": print("no-ready", ready); sys.exit(0)
# criu started before the gate opens: a criu child of ferry-criu, waiting
import time
ahead, kid = "no", None
for _ in range(100):
    for k in open(f"/proc/{p.pid}/task/{p.pid}/children").read().split():
        try:
            if open(f"/proc/{k}/comm").read().strip() == "criu": kid = k
        except OSError: pass
    if kid or not images: break
    time.sleep(0.05)
if kid: ahead = "yes"
if action == "go": c.send(b"g")
c.close()
a.settimeout(30)
try: ans = a.recv(65536)
except Exception: ans = b""
code = p.wait(timeout=30)
# the criu started ahead does not outlive ferry-criu
left = "none"
for _ in range(100):
    try:
        st = open(f"/proc/{kid}/stat").read().split(")")[-1].split()[0] if kid else "Z"
    except OSError: st = "Z"
    if st == "Z": break
    left = kid; time.sleep(0.05)
else: left = kid
if left != kid: left = "none"
print(code, ans.hex() or "-", ahead, left)
PY
}
read -r code ans ahead left <<<"$(gate close)"
[ "$code" = 1 ] && [ "$ans" = - ] || fail "a restore whose gate closed: exit $code, answer $ans"
read -r code ans ahead left <<<"$(gate go)"
case "$ans" in 0802*) ;; *) fail "a restore let go did not reach criu: exit $code, answer $ans" ;; esac
check "a restore held at the gate: ended with an error when the gate closes, handed to criu on go"
# with images and work directories it can name, ferry-criu starts criu
# while the restore is held, hands it the request at "g" and relays the
# answer (CRIU's own: no images here, a failure), exiting with its status
mkdir -p "$T_DIR/imgs"
read -r code ans ahead left <<<"$(gate close "$T_DIR/imgs")"
[ "$code" = 1 ] && [ "$ans" = - ] && [ "$ahead" = yes ] ||
  fail "a restore started ahead whose gate closed: exit $code, answer $ans, criu ahead: $ahead"
[ "$left" = none ] || fail "the criu started ahead ($left) outlived its called-off restore"
[ -z "$(ls -A "$T_DIR/imgs")" ] || fail "a called-off restore's criu wrote into the images: $(ls "$T_DIR/imgs")"
read -r code ans ahead left <<<"$(gate go "$T_DIR/imgs")"
[ "$ahead" = yes ] || fail "criu was not started before the gate opened"
case "$ans" in 0802*) ;; *) fail "a restore started ahead and let go: no answer from criu: exit $code, answer $ans" ;; esac
[ "$code" != 0 ] || fail "criu failed the restore (no images) but ferry-criu exited 0"
[ -n "$(ls -A "$T_DIR/imgs")" ] || fail "criu did not get the images directory ferry-criu named for it (no log there)"
check "a held restore's criu starts before the gate opens, gets runc's request at go (its images directory named by ferry-criu) and its answer goes back"
echo "# all checks passed"
