#!/usr/bin/env bash
# Every command ferry --help lists, every option ferryd --help lists and every
# ferry-coord command is in the man pages built from man/*.scd; and man
# renders them.  Usage: man-check.sh BUILD_DIR
set -euo pipefail
B=$1
fail() { echo "FAIL: $*" >&2; exit 1; }
for p in man/ferry.1 man/ferryd.8 man/ferry-coord.8; do
  [ -s "$B/$p" ] || fail "$p was not built (is scdoc installed? scripts/setup installs it)"
done
# the commands ferry --help lists (the indented words under "Commands:")
cmds=$("$B/ferry" --help | awk '/^Commands:/ {on = 1; next} on && /^  [a-z]/ {print $1}')
[ -n "$cmds" ] || fail "ferry --help lists no commands"
for c in $cmds; do
  grep -qE "\*$c[* ]" "$(dirname "$0")/../man/ferry.1.scd" || fail "ferry.1 lacks the command '$c'"
done
opts=$("$B/ferryd" --help | grep -o -- '--[a-z][a-z-]*' | sort -u)
for o in $opts; do
  grep -q -- "\*$o\*" "$(dirname "$0")/../man/ferryd.8.scd" || fail "ferryd.8 lacks the option '$o'"
done
subs=$("$B/ferry-coord" --help 2>&1 | awk '/^  [a-z]/ {print $1 " " $2}' | sed 's/ -.*//; s/ $//' | sort -u)
while read -r s; do
  [ -n "$s" ] || continue
  grep -q "\*$s\*\|\*${s%% *}\* \*${s#* }\*" "$(dirname "$0")/../man/ferry-coord.8.scd" || fail "ferry-coord.8 lacks '$s'"
done <<<"$subs"
if command -v man >/dev/null 2>&1; then
  for p in man/ferry.1 man/ferryd.8 man/ferry-coord.8; do
    out=$(MANWIDTH=80 man -l "$B/$p" 2>&1) || fail "man cannot render $p: $out"
    grep -q "^NAME" <<<"$out" || fail "$p renders without a NAME section"
  done
fi
echo "ok - $(wc -w <<<"$cmds") ferry commands, $(wc -w <<<"$opts") ferryd options and the ferry-coord commands are in the man pages"
