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
echo "# all checks passed"
