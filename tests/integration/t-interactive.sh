#!/usr/bin/env bash
# Terminals and input as a podman user uses them: exec -i/-t, run -it with
# its prompt, the terminal's size followed, detach keys, attach and
# re-attach, input piped in (100 MiB byte for byte), Ctrl-C, exit codes,
# and the refusals (a terminal does not move; bad detach keys; nothing to
# attach to). Terminals are real ones (tests/helpers/ptydrive.py).
source "$(dirname "$0")/lib.sh"
need python3
PTY="$(dirname "$0")/../helpers/ptydrive.py"
host_up h1 13
make_rootfs
f h1 image import "$T_DIR/busybox.tar" --name busybox >/dev/null
F=("$FERRY_BIN" --host "unix://$T_DIR/h1/ferryd.sock")
drive() { # ROWS COLS SCRIPT COMMAND... -> the output, then [rc=N]
  local rows=$1 cols=$2 script=$3; shift 3
  PTYDRIVE_TIMEOUT=60 python3 "$PTY" "$rows" "$cols" "$script" -- "$@"
}
f h1 run -d --name web busybox sleep 100000 >/dev/null

# exec -i: stdin goes to the command, its end ends the command's input.
out=$(echo hello | f h1 exec -i web cat)
[ "$out" = hello ] || fail "exec -i cat: '$out'"
out=$(f h1 exec -i web sh -c 'cat; echo done' </dev/null)
[ "$out" = done ] || fail "exec -i with an empty stdin: '$out'"
head -c 104857600 /dev/urandom >"$T_DIR/rnd"
f h1 exec -i web sh -c 'cat > /tmp/in' <"$T_DIR/rnd" || fail "exec -i of 100 MiB"
want=$(md5sum <"$T_DIR/rnd" | cut -d' ' -f1)
got=$(f h1 exec web sh -c 'md5sum < /tmp/in' | cut -d' ' -f1)
[ "$want" = "$got" ] || fail "100 MiB through exec -i: md5 $got, want $want"
f h1 exec web rm /tmp/in
rm -f "$T_DIR/rnd"
printf 'a\0b\377' | f h1 exec -i web cat >"$T_DIR/bin.out"
printf 'a\0b\377' | cmp -s - "$T_DIR/bin.out" || fail "binary input through exec -i differs"
check "exec -i: stdin reaches the command (100 MiB and NULs byte for byte), its end ends the input"

# exec ends with its command: a child left in the background holding the
# output does not keep it open (f bounds it: a hang fails).
rc=0; out=$(f h1 exec web sh -c 'echo before; sleep 300 & echo after; exit 4') || rc=$?
[ "$rc" = 4 ] && [ "$out" = "$(printf 'before\nafter')" ] || fail "exec with a background child: rc $rc: '$out'"
f h1 exec web sh -c 'for p in $(pidof sleep); do [ "$p" = 1 ] || kill "$p"; done; true'
check "exec with a child left in the background: its output and exit code 4, at once"

# Ctrl-C on exec -i ends the command in the container.
sleep 60 | "${F[@]}" exec -i web sh -c 'exec sleep 7778' &
epid=$!
seen=0
for _ in $(seq 1 50); do f h1 exec web ps | grep -q "sleep 7778" && { seen=1; break; }; sleep 0.1; done
[ "$seen" = 1 ] || fail "exec -i's command did not start"
kill -INT "$epid"
rc=0; wait "$epid" || rc=$?
[ "$rc" = 130 ] || fail "exec -i interrupted exited $rc, want 130"
gone=0
for _ in $(seq 1 50); do f h1 exec web ps | grep -q "sleep 7778" || { gone=1; break; }; sleep 0.1; done
[ "$gone" = 1 ] || fail "Ctrl-C on exec -i left the command running"
check "Ctrl-C on exec -i: 130, the command is gone from the container"

# exec -it: a real terminal of the caller's size that follows its resizes;
# the exit code is the shell's.
out=$(drive 30 100 '[["wait", "# "], ["send", "stty size; tty\n"], ["wait", "30 100"],
  ["resize", [40, 120]], ["sleep", 0.5], ["send", "stty size\n"], ["wait", "40 120"],
  ["send", "exit 3\n"]]' "${F[@]}" exec -it web sh) || fail "exec -it: $out"
grep -q "/dev/pts/" <<<"$out" || fail "exec -it: no terminal in the container: $out"
grep -q '^\[rc=3\]' <<<"$out" || fail "exec -it: exit code: $out"
out=$(f h1 exec -t web sh -c 'test -t 1 && echo is-a-tty') || fail "exec -t without input"
[ "$(tr -d '\r' <<<"$out")" = is-a-tty ] || fail "exec -t: '$out'"
check "exec -it: a terminal of the caller's size (30x100, then 40x120 after a resize), exit code 3"

# run -it: the prompt it prints before we attach is shown; ctrl-p,ctrl-q
# detaches and leaves it running; attach comes back; exit ends it with its
# code.
out=$(drive 30 100 '[["wait", "# "], ["send", "stty size\n"], ["wait", "30 100"],
  ["send", "echo $((6*7))\n"], ["wait", "42"], ["send", "\u0010\u0011"]]' \
  "${F[@]}" run -it --name sh1 busybox sh) || fail "run -it: $out"
grep -q '^\[rc=0\]' <<<"$out" || fail "run -it detach: $out"
f h1 ps | grep -E "sh1 .*running" >/dev/null || fail "sh1 is not running after the detach: $(f h1 ps -a)"
out=$(drive 24 80 '[["sleep", 0.5], ["send", "echo again-$((1+1))\n"], ["wait", "again-2"],
  ["send", "exit 9\n"]]' "${F[@]}" attach sh1) || fail "attach: $out"
grep -q '^\[rc=9\]' <<<"$out" || fail "attach then exit 9: $out"
f h1 ps -a | grep -E "sh1 .*exited \(9\)" >/dev/null || fail "sh1 did not exit 9: $(f h1 ps -a)"
check "run -it: prompt shown, size followed, detached (ctrl-p,ctrl-q) and re-attached, exit code 9"

# Other detach keys; bad ones are refused before anything is made.
out=$(drive 24 80 '[["wait", "# "], ["send", "\u0018"]]' \
  "${F[@]}" run -it --detach-keys ctrl-x --name sh2 busybox sh) || fail "--detach-keys ctrl-x: $out"
grep -q '^\[rc=0\]' <<<"$out" || fail "--detach-keys ctrl-x did not detach: $out"
f h1 ps | grep -E "sh2 .*running" >/dev/null || fail "sh2 is not running after the detach"
rc=0; out=$(f h1 exec -it --detach-keys ctrl-1 web sh 2>&1) || rc=$?
[ "$rc" = 125 ] && grep -q "is not a key" <<<"$out" || fail "bad detach keys: rc $rc: $out"
check "--detach-keys ctrl-x detaches; ctrl-1 is refused (125)"

# A container with a terminal does not move: said at checkpoint and migrate.
rc=0; out=$(f h1 checkpoint sh2 "$T_DIR/ck" 2>&1) || rc=$?
[ "$rc" = 125 ] && grep -q "a terminal (-t)" <<<"$out" || fail "checkpoint of a -t container: rc $rc: $out"
rc=0; out=$(f h1 migrate sh2 --to tcp://127.0.0.1:9 2>&1) || rc=$?
[ "$rc" = 125 ] && grep -q "a terminal (-t)" <<<"$out" || fail "migrate of a -t container: rc $rc: $out"
f h1 ps | grep -E "sh2 .*running" >/dev/null || fail "the refused checkpoint or migrate stopped sh2"
check "checkpoint and migrate of a container with a terminal: refused with the reason, it runs on"

# run -i without a terminal: piped input, its exit code, --rm.
rc=0; out=$(echo "from stdin" | f h1 run -i --rm --name ri busybox sh -c 'read x; echo got $x; exit 5') || rc=$?
[ "$rc" = 5 ] && [ "$out" = "got from stdin" ] || fail "run -i: rc $rc: '$out'"
f h1 ps -a | grep -q " ri " && fail "run -i --rm left the container"
check "run -i: input piped in, exit code 5, removed (--rm)"

# attach to a detached -i container: what it said first, then its answers.
f h1 run -d -i --name ai busybox sh -c 'echo started; while read l; do echo "L:$l"; done; echo bye; exit 7' >/dev/null
rc=0; out=$(printf 'one\ntwo\n' | f h1 attach ai) || rc=$?
[ "$rc" = 7 ] && [ "$out" = "$(printf 'started\nL:one\nL:two\nbye')" ] || fail "attach -i: rc $rc: '$out'"
# attach to a container without input: its output as it comes, its exit code.
f h1 run -d --name ticker busybox sh -c 'for i in 1 2 3 4 5 6 7 8; do echo tick $i; sleep 0.3; done; exit 2' >/dev/null
rc=0; out=$(f h1 attach ticker </dev/null) || rc=$?
[ "$rc" = 2 ] && grep -q "^tick 8$" <<<"$out" || fail "attach to ticker: rc $rc: '$out'"
check "attach: piped input and the container's first words (exit 7); output-only attach (exit 2)"

# Nothing to attach to, nothing to exec in.
rc=0; out=$(f h1 attach nosuch 2>&1) || rc=$?
[ "$rc" = 125 ] && grep -q "nosuch" <<<"$out" || fail "attach nosuch: rc $rc: $out"
rc=0; out=$(f h1 attach ai 2>&1) || rc=$?
[ "$rc" = 125 ] && grep -q "not running" <<<"$out" || fail "attach to an exited container: rc $rc: $out"
rc=0; out=$(echo x | f h1 exec -i ai cat 2>&1) || rc=$?
[ "$rc" = 125 ] && grep -q "not running" <<<"$out" || fail "exec -i in an exited container: rc $rc: $out"
check "attach to a missing or exited container, exec -i in an exited one: 125 with the reason"
