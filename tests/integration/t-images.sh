#!/usr/bin/env bash
# Images as a user brings them: an OCI archive and a docker-archive made by
# real tools (umoci, skopeo) with several layers, a whiteout and an opaque
# directory, and a plain rootfs tarball. Hostile and broken archives are
# refused with a clear error, write nothing outside the store and change
# nothing in it.
source "$(dirname "$0")/lib.sh"
need umoci skopeo
FERRYD_ARGS="--max-entry-size 4194304" host_up h1 14
make_rootfs
H="$FERRY_BUILD/tests/mkhostile"

# --- an OCI image with three layers: files, a whiteout, an opaque dir ---
L="$T_DIR/layout"
umoci init --layout "$L"
umoci new --image "$L:v1"
mkdir -p "$T_DIR/r1/bin" "$T_DIR/r1/etc" "$T_DIR/r1/gone" "$T_DIR/r1/opq" "$T_DIR/r2"
cp "$(command -v busybox)" "$T_DIR/r1/bin/busybox"
for c in sh cat ls echo; do ln -sf busybox "$T_DIR/r1/bin/$c"; done
echo keep >"$T_DIR/r1/etc/keep"; echo x >"$T_DIR/r1/gone/x"; echo old >"$T_DIR/r1/opq/old"
umoci insert --image "$L:v1" "$T_DIR/r1" / >/dev/null
umoci insert --image "$L:v1" --whiteout /gone >/dev/null
echo new >"$T_DIR/r2/new"
umoci insert --image "$L:v1" --opaque "$T_DIR/r2" /opq >/dev/null
umoci config --image "$L:v1" --config.cmd /bin/sh --config.cmd -c \
  --config.cmd 'echo $GREETING; pwd; cat keep' --config.env GREETING=hello --config.workingdir /etc >/dev/null
(cd "$L" && tar -cf "$T_DIR/app.oci.tar" .)
skopeo copy -q "oci:$L:v1" "docker-archive:$T_DIR/app.docker.tar:test/app:v1"

out=$(f h1 image import "$T_DIR/app.oci.tar")
echo "$out" | grep -q "Imported app.oci:v1 .*3 layers" || fail "OCI import: $out"
[ "$(f h1 run --rm app.oci:v1)" = "$(printf 'hello\n/etc\nkeep')" ] || fail "OCI image config not applied: $(f h1 run --rm app.oci:v1)"
if f h1 run --rm app.oci:v1 ls /gone >/dev/null 2>&1; then fail "whiteout /gone not honoured"; fi
[ "$(f h1 run --rm app.oci:v1 ls /opq)" = new ] || fail "opaque dir: $(f h1 run --rm app.oci:v1 ls /opq)"
check "OCI archive (umoci, 3 layers): Env/Cmd/WorkingDir apply, whiteout and opaque dir honoured"

out=$(f h1 image import "$T_DIR/app.docker.tar")
echo "$out" | grep -q "Imported docker.io/test/app:v1" || fail "docker-archive import: $out"
[ "$(f h1 run --rm test/app:v1)" = "$(printf 'hello\n/etc\nkeep')" ] || fail "docker-archive config"
if f h1 run --rm test/app:v1 ls /gone >/dev/null 2>&1; then fail "docker-archive whiteout"; fi
check "docker-archive (skopeo): config and whiteouts apply"

# image save: an OCI archive that skopeo reads and that imports back, with
# the image's config and layers (whiteouts included)
f h1 image save -o "$T_DIR/saved.tar" app.oci:v1 || fail "image save"
[ ! -e "$T_DIR/saved.tar.partial" ] || fail "image save left its partial file"
skopeo inspect --raw "oci-archive:$T_DIR/saved.tar" | grep -q '"layers"' || fail "skopeo cannot read the saved archive"
f h1 save app.oci:v1 >"$T_DIR/saved2.tar" || fail "save to stdout"
cmp -s "$T_DIR/saved.tar" "$T_DIR/saved2.tar" || [ "$(stat -c %s "$T_DIR/saved2.tar")" -gt 10000 ] || fail "save to stdout wrote $(stat -c %s "$T_DIR/saved2.tar") bytes"
f h1 image import "$T_DIR/saved.tar" --name roundtrip:v1 >/dev/null || fail "import of a saved archive"
[ "$(f h1 run --rm roundtrip:v1)" = "$(printf 'hello\n/etc\nkeep')" ] || fail "saved image's config lost: $(f h1 run --rm roundtrip:v1)"
if f h1 run --rm roundtrip:v1 ls /gone >/dev/null 2>&1; then fail "saved image lost a whiteout"; fi
f h1 image rm roundtrip:v1 >/dev/null
expect_fail "no such image" f h1 image save -o "$T_DIR/x.tar" nosuch:v1
[ ! -e "$T_DIR/x.tar" ] && [ ! -e "$T_DIR/x.tar.partial" ] || fail "a refused save left a file"
expect_fail "refusing to write an archive to a terminal|needs an IMAGE" f h1 save
check "image save: an OCI archive skopeo reads, imported back with its config and whiteouts; unknown image refused, no file left"

f h1 image import "$T_DIR/busybox.tar" --name busybox:1 >/dev/null
f h1 images | grep -q "busybox:1 .*rootfs" || fail "rootfs tarball import"
check "plain rootfs tarball imports under --name"

# Layers are stored once: importing the same archive again adds no layer.
n_layers=$(ls "$T_DIR/h1/root/layers" | wc -l)
f h1 image import "$T_DIR/app.oci.tar" --name again:v1 >/dev/null
[ "$(ls "$T_DIR/h1/root/layers" | wc -l)" = "$n_layers" ] || fail "layers stored twice"
f h1 image rm again:v1 >/dev/null
[ "$(ls "$T_DIR/h1/root/layers" | wc -l)" = "$n_layers" ] || fail "rm of one name removed shared layers"
check "layers stored once by sha256 and shared"

f h1 run -d --name user busybox:1 sleep 1000 >/dev/null
# a tag is a name of an image: the same archive imported as bb2:test adds a
# name (a row of images each), and removing that name untags it even while
# a container runs the image
f h1 image import "$T_DIR/busybox.tar" --name bb2:test >/dev/null
f h1 images | grep -q "^busybox:1 " || fail "a second name hid the first: $(f h1 images)"
f h1 images | grep -q "^bb2:test " || fail "the second name is not listed: $(f h1 images)"
[ "$(f h1 images | grep -E '^(busybox:1|bb2:test) ' | awk '{print $2}' | sort -u | wc -l)" = 1 ] ||
  fail "the two names are not one image: $(f h1 images)"
# ferry tag: one more name for the same image; a name of another image refused
f h1 tag busybox:1 mine/bb:v2 bb3 || fail "tag"
[ "$(f h1 images | grep -E '^(busybox:1|mine/bb:v2|bb3:latest) ' | awk '{print $2}' | sort -u | wc -l)" = 1 ] ||
  fail "tag did not name the same image: $(f h1 images)"
f h1 image import "$T_DIR/app.oci.tar" --name other:v1 >/dev/null
expect_fail "names another image" f h1 tag other:v1 mine/bb:v2
f h1 tag busybox:1 bb3 || fail "tagging again with a name the image has is not a no-op"
f h1 image rm other:v1 mine/bb:v2 bb3 >/dev/null
expect_fail "unknown option" f h1 tag --force busybox:1 x
f h1 image rm bb2:test >/dev/null || fail "image rm of an extra tag of an image in use was refused"
f h1 images | grep -q "^bb2:test " && fail "bb2:test still listed: $(f h1 images)"
f h1 ps | grep -q "user .*running" || fail "untagging stopped the container"
expect_fail "in use by container \"user\"" f h1 image rm busybox:1
# image prune -a: every image no container uses goes (after a yes or -f);
# the one user runs stays
echo n | f h1 image prune -a >/dev/null 2>&1
f h1 images | grep -q "^app.oci:v1 " || fail "image prune answered no removed images: $(f h1 images)"
out=$(f h1 image prune -a -f)
grep -q "^sha256:" <<<"$out" || fail "image prune -a -f printed no id: $out"
f h1 images | grep -q "^app.oci:v1 " && fail "image prune -a kept an unused image: $(f h1 images)"
f h1 images | grep -q "^busybox:1 " || fail "image prune -a removed the image a container uses"
[ "$(f h1 image prune -f --json)" = "[]" ] || fail "image prune (dangling only) removed something"
f h1 rm -f user >/dev/null
f h1 image rm busybox:1 >/dev/null
expect_fail "no such image" f h1 image inspect busybox:1
check "a tag is a name: a second one lists beside the first and goes alone (even in use); ferry tag adds names, refuses another image's; image prune -a removes what no container uses; the last name of an image in use is refused, then removed"

# --- bad input: each refused, nothing outside, nothing changed ---
mkdir -p "$T_DIR/outside"
snapshot() { f h1 images --json; ls "$T_DIR/h1/root/layers"; ls "$T_DIR/h1/root/tmp"; }
before=$(snapshot)
"$H" abs "$T_DIR/a.tar" "$T_DIR/outside/abs-file"
expect_fail "absolute path refused" f h1 image import "$T_DIR/a.tar"
"$H" dotdot "$T_DIR/d.tar"
expect_fail '"\.\." in path refused' f h1 image import "$T_DIR/d.tar"
"$H" symlink "$T_DIR/s.tar" "$T_DIR/outside"
expect_fail "goes through symlink \"link\": refused" f h1 image import "$T_DIR/s.tar"
"$H" hardlink "$T_DIR/h.tar" "$T_DIR/outside/secret"
echo secret >"$T_DIR/outside/secret"
expect_fail "absolute path refused|hard link" f h1 image import "$T_DIR/h.tar"
"$H" hardlink "$T_DIR/h2.tar" "../../../outside/secret"
expect_fail '"\.\." in path refused' f h1 image import "$T_DIR/h2.tar"
"$H" big "$T_DIR/b.tar" 5000000
expect_fail "over the limit of 4194304 bytes: refused" f h1 image import "$T_DIR/b.tar"
"$H" truncated "$T_DIR/t.tar"
expect_fail "corrupt|truncated" f h1 image import "$T_DIR/t.tar"
head -c 10000 /dev/urandom >"$T_DIR/garbage.tar"
expect_fail "not a tar archive|not a readable archive|corrupt" f h1 image import "$T_DIR/garbage.tar"
# digest mismatch: one byte of a layer blob changed, the manifest unchanged
cp -a "$L" "$T_DIR/tampered"
blob=$(ls -S "$T_DIR/tampered/blobs/sha256" | head -n1)
printf 'X' | dd of="$T_DIR/tampered/blobs/sha256/$blob" bs=1 seek=100 conv=notrunc status=none
(cd "$T_DIR/tampered" && tar -cf "$T_DIR/tampered.tar" .)
expect_fail "layer [0-9]+: digest mismatch: manifest says sha256:$blob" f h1 image import "$T_DIR/tampered.tar"
expect_fail "image name" f h1 image import "$T_DIR/app.oci.tar" --name 'Bad Name!'
expect_fail 'component "\.\." must begin and end' f h1 image import "$T_DIR/app.oci.tar" --name '../../x'
# a gzip bomb: 320 MiB of zeros (each file within the entry limit) in ~300 KiB
mkdir -p "$T_DIR/bomb"
for i in $(seq 1 80); do truncate -s 4M "$T_DIR/bomb/z$i"; done
tar -C "$T_DIR/bomb" -czf "$T_DIR/bomb.tar.gz" .
rm -rf "$T_DIR/bomb"
expect_fail "unpacks to more than 200 times its own size" f h1 image import "$T_DIR/bomb.tar.gz"
[ -z "$(ls -A "$T_DIR/outside" | grep -v '^secret$')" ] || fail "something was written outside: $(ls -A "$T_DIR/outside")"
[ ! -e "$T_DIR/escaped" ] && [ ! -e "$T_DIR/h1/escaped" ] && [ ! -e "$T_DIR/h1/root/escaped" ] || fail "dotdot entry escaped"
[ "$(snapshot)" = "$before" ] || fail "a refused import changed the store"
check "absolute, '..', symlink and hardlink escapes, oversize, truncated, garbage, digest mismatch, a gzip bomb, a '../../x' name: refused, nothing written"
echo "# all checks passed"
