#!/usr/bin/env bash
# meson install puts everything in its standard place: the programs, the
# shim, the man pages, the bash completion, the systemd units (which
# systemd-analyze accepts, naming the installed programs) and the daemons'
# configuration files (which the installed daemons read).
# Usage: install-check.sh BUILD_DIR
set -euo pipefail
B=$1
fail() { echo "FAIL: $*" >&2; exit 1; }
D=$(mktemp -d /tmp/ferry-install.XXXXXX)
trap 'rm -rf "$D"' EXIT
meson install -C "$B" --destdir "$D" --no-rebuild >"$D.log" 2>&1 || { cat "$D.log" >&2; rm -f "$D.log"; fail "meson install"; }
rm -f "$D.log"
prefix=$(meson introspect "$B" --buildoptions | python3 -c '
import json, sys
o = {x["name"]: x["value"] for x in json.load(sys.stdin)}
print(o["prefix"], o["bindir"], o["libexecdir"], o["mandir"], o["datadir"], o["sysconfdir"])')
read -r P BIN LIBEXEC MAN DATA ETC <<<"$prefix"
case "$ETC" in /*) ;; *) ETC=$P/$ETC ;; esac
for f in "$P/$BIN/ferry" "$P/$BIN/ferryd" "$P/$BIN/ferry-coord" "$P/$LIBEXEC/ferry/ferry-shim" "$P/$LIBEXEC/ferry/ferry-criu" \
         "$P/$MAN/man1/ferry.1" "$P/$MAN/man8/ferryd.8" "$P/$MAN/man8/ferry-coord.8" \
         "$P/$DATA/bash-completion/completions/ferry" "$ETC/ferry/ferryd.conf" "$ETC/ferry/ferry-coord.conf"; do
  [ -e "$D$f" ] || fail "not installed: $f"
done
units=$(find "$D" -name 'ferry*.service')
[ "$(wc -l <<<"$units")" = 2 ] || fail "units installed: $units"
for u in $units; do
  exe=$(sed -n 's/^ExecStart=\([^ ]*\).*/\1/p' "$u")
  [ -x "$D$exe" ] || fail "$(basename "$u"): ExecStart=$exe is not the installed program"
  if ! command -v systemd-analyze >/dev/null 2>&1; then
    echo "WARNING: systemd-analyze is not installed: the units' syntax is NOT checked" >&2
  else
    # the unit as installed, with ExecStart pointing into the staging tree
    sed "s#^ExecStart=$exe#ExecStart=$D$exe#" "$u" >"$D/$(basename "$u")"
    out=$(systemd-analyze verify --man=no "$D/$(basename "$u")" 2>&1) ||
      fail "systemd-analyze verify $(basename "$u"): $out"
  fi
done
# the installed daemons read their installed configuration
"$D$P/$BIN/ferryd" --config "$D$ETC/ferry/ferryd.conf" --help >/dev/null ||
  fail "ferryd does not take its installed ferryd.conf"
"$D$P/$BIN/ferry-coord" serve --config "$D$ETC/ferry/ferry-coord.conf" --help >/dev/null ||
  fail "ferry-coord does not take its installed ferry-coord.conf"
printf 'no-such-option = 1\n' >"$D/bad.conf"
if "$D$P/$BIN/ferryd" --config "$D/bad.conf" --help >/dev/null 2>"$D/err"; then
  fail "ferryd took a configuration with an unknown option"
fi
grep -q 'bad.conf:1: unknown option "no-such-option"' "$D/err" || fail "the error does not name the line: $(cat "$D/err")"
echo "ok - programs, shim, man pages, completion, units (systemd-analyze verify) and configuration installed in their places"
