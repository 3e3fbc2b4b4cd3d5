#!/usr/bin/env bash
# ferry cp as podman cp: files and directories both ways (binary byte for
# byte, symlinks kept as links, volumes seen as the container sees them),
# tar on stdin/stdout, renames, the kernel's file systems left out of a root
# copy, and hostile archives: one that climbs out with ".." or through a
# symlink is refused (400) and writes nothing, here or in the container.
source "$(dirname "$0")/lib.sh"
need curl
need python3
host_up h1 13
make_rootfs
f h1 image import "$T_DIR/busybox.tar" --name busybox >/dev/null
f h1 run -d --name w -v data:/data busybox sleep 100000 >/dev/null
W="$T_DIR/work"
mkdir -p "$W/src/sub"
echo one >"$W/src/a"
echo two >"$W/src/sub/b"
ln -s a "$W/src/link"
head -c 5000000 /dev/urandom >"$W/src/big"
printf 'a\0b\377' >"$W/src/bin"

# host -> container: a directory into an existing one, a file renamed
f h1 cp "$W/src" w:/data/
[ "$(f h1 exec w sh -c 'cat /data/src/a /data/src/sub/b')" = "$(printf 'one\ntwo')" ] || fail "cp dir in"
[ "$(f h1 exec w sh -c 'readlink /data/src/link')" = a ] || fail "cp in: the symlink did not stay a link"
[ "$(f h1 exec w sh -c 'md5sum < /data/src/big' | cut -d' ' -f1)" = "$(md5sum <"$W/src/big" | cut -d' ' -f1)" ] ||
  fail "cp in: 5 MB of binary differs"
f h1 cp "$W/src/a" w:/data/renamed
[ "$(f h1 exec w cat /data/renamed)" = one ] || fail "cp file in under a new name"
echo changed >"$W/src/a"
f h1 cp "$W/src/a" w:/data/renamed
[ "$(f h1 exec w cat /data/renamed)" = changed ] || fail "cp over an existing file"
check "cp into a container: a directory (links kept, 5 MB byte for byte) into a volume, a file renamed and replaced"

# container -> host: back again, byte for byte; into an existing directory
f h1 cp w:/data/src "$W/back"
cmp -s "$W/back/big" "$W/src/big" && cmp -s "$W/back/bin" "$W/src/bin" || fail "cp out: binary differs"
[ "$(readlink "$W/back/link")" = a ] || fail "cp out: the link did not stay a link"
mkdir "$W/into"
f h1 cp w:/etc/motd "$W/into"
[ "$(cat "$W/into/motd")" = from-the-image ] || fail "cp file out into a directory"
f h1 cp w:/data/src - >"$W/out.tar"
tar -tf "$W/out.tar" >"$W/out.list"
grep -qx "src/sub/b" "$W/out.list" || fail "cp to stdout is not a tar of src: $(cat "$W/out.list")"
mkdir "$W/sub-in"
echo three >"$W/sub-in/c"
tar -C "$W" -cf - sub-in | f h1 cp - w:/data
[ "$(f h1 exec w cat /data/sub-in/c)" = three ] || fail "cp of a tar on stdin"
check "cp out of a container: byte for byte, links kept, into a directory; tar on stdout and stdin"

# A link in the container is copied as a link, never followed to the host's
# files; names resolve inside the container.
f h1 exec w sh -c 'ln -s /etc /data/evil && ln -s /../../.. /data/up'
f h1 cp w:/data/evil "$W/evil"
[ "$(readlink "$W/evil")" = /etc ] || fail "cp of a link to /etc: $(ls -la "$W/evil")"
f h1 cp w:/data/up/etc/motd "$W/motd2"
[ "$(cat "$W/motd2")" = from-the-image ] || fail "a path through /../../.. in the container left it"
f h1 cp w:/ "$W/rootcopy"
[ -f "$W/rootcopy/etc/motd" ] && [ -z "$(ls -A "$W/rootcopy/proc")" ] || fail "cp of / : $(ls "$W/rootcopy" "$W/rootcopy/proc" | head)"
check "links copied as links; names resolve in the container (/../../.. stays inside); / without /proc"

# Hostile archives sent to the API: refused, nothing written.
python3 - "$W" <<'PY'
import io, sys, tarfile
w = sys.argv[1]
def mk(name, members):
    with tarfile.open(f"{w}/{name}", "w") as t:
        for m, data in members:
            ti = tarfile.TarInfo(m.name if isinstance(m, tarfile.TarInfo) else m)
            if isinstance(m, tarfile.TarInfo):
                ti = m
            ti.size = len(data or b"")
            t.addfile(ti, io.BytesIO(data or b""))
mk("dotdot.tar", [("../../../../../../tmp/ferry-cp-escape", b"x")])
link = tarfile.TarInfo("lnk"); link.type = tarfile.SYMTYPE; link.linkname = "/"
mk("through.tar", [(link, None), ("lnk/tmp/ferry-cp-escape2", b"x")])
dev = tarfile.TarInfo("dev0"); dev.type = tarfile.CHRTYPE; dev.devmajor = 1; dev.devminor = 1
mk("dev.tar", [(dev, None), ("ok", b"fine")])
PY
S="$T_DIR/h1/ferryd.sock"
for t in dotdot through; do
  code=$(curl -s -o "$W/$t.out" -w '%{http_code}' --unix-socket "$S" -X PUT --data-binary "@$W/$t.tar" \
    -H 'Content-Type: application/octet-stream' "http://x/v1/containers/w/archive?path=/data")
  [ "$code" = 400 ] || fail "hostile $t.tar: HTTP $code: $(cat "$W/$t.out")"
done
[ ! -e /tmp/ferry-cp-escape ] && [ ! -e /tmp/ferry-cp-escape2 ] || fail "a hostile archive wrote outside"
f h1 exec w sh -c '! test -e /tmp/ferry-cp-escape2 && ! test -e /tmp/ferry-cp-escape' || fail "a hostile archive wrote in the container's /tmp"
code=$(curl -s -o "$W/dev.out" -w '%{http_code}' --unix-socket "$S" -X PUT --data-binary "@$W/dev.tar" \
  -H 'Content-Type: application/octet-stream' "http://x/v1/containers/w/archive?path=/data")
[ "$code" = 200 ] && [ "$(f h1 exec w cat /data/ok)" = fine ] && f h1 exec w sh -c '! test -e /data/dev0' ||
  fail "a device in an archive: HTTP $code, $(f h1 exec w ls -la /data)"
check "hostile archives (.., through a symlink) refused with 400, nothing written; a device entry is left out"

# What cannot be done says why.
rc=0; out=$(f h1 cp w:/nosuch "$W/x" 2>&1) || rc=$?
[ "$rc" = 125 ] && grep -q "no such file" <<<"$out" || fail "cp of a missing path: rc $rc: $out"
rc=0; out=$(f h1 cp "$W/src" w:/nosuchdir/x 2>&1) || rc=$?
[ "$rc" = 125 ] && grep -q "no such file" <<<"$out" || fail "cp into a missing directory: rc $rc: $out"
rc=0; out=$(f h1 cp "$W/src" w:/data/renamed 2>&1) || rc=$?
[ "$rc" = 125 ] && grep -q "cannot copy directory" <<<"$out" || fail "cp of a dir over a file: rc $rc: $out"
rc=0; out=$(f h1 cp "$W/src/a" "$W/b" 2>&1) || rc=$?
[ "$rc" = 125 ] && grep -q "exactly one" <<<"$out" || fail "cp between two local paths: rc $rc: $out"
check "cp: missing paths, a directory over a file, two local paths: 125 with the reason"

# A stopped container: its root file system (not its volumes), both ways;
# what goes in is there when it starts again.
f h1 stop -t 1 w >/dev/null
f h1 cp w:/etc/motd "$W/y" && [ "$(cat "$W/y")" = from-the-image ] || fail "cp out of a stopped container"
echo while-stopped >"$W/z"
f h1 cp "$W/z" w:/etc/z
f h1 start w >/dev/null
[ "$(f h1 exec w cat /etc/z)" = while-stopped ] || fail "a file copied into the stopped container is not there after its start"
check "cp with a stopped container: out of and into its root file system, there after the start"
