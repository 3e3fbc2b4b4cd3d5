#!/usr/bin/env bash
# The container lifecycle as a user drives it with the CLI: run/create/start/
# stop/kill/rm/ps/inspect/logs/exec, the image's run configuration, volumes,
# addresses, bad input, and an agent restart that finds its containers again.
source "$(dirname "$0")/lib.sh"
need curl
host_up h1 13
make_rootfs
f h1 image import "$T_DIR/busybox.tar" --name busybox >/dev/null

# A foreground run prints the output and returns the exit code.
out=$(f h1 run --name hello busybox sh -c 'echo hi from $HOSTNAME; exit 3') && rc=0 || rc=$?
[ "$out" = "hi from hello" ] || fail "run output: '$out'"
[ "$rc" = 3 ] || fail "run exit code $rc, want 3"
f h1 ps -a | grep -E "hello .*exited \(3\)" >/dev/null || fail "ps -a does not show exited (3): $(f h1 ps -a)"
check "foreground run prints output and reports exit code 3"
st=$(f h1 inspect hello | /usr/bin/python3 -c 'import json,sys; r=json.load(sys.stdin); r=r[0] if isinstance(r, list) else r; print(r["state"], r["status"])')
[ "$st" = "exited exited" ] || fail "an exited container's inspect shows state/status '$st'"
n0=$(f h1 ps -aq | wc -l)
rc=0; out=$(f h1 --json run busybox echo hi 2>&1) || rc=$?
[ "$rc" = 125 ] && grep -q "use it with -d" <<<"$out" || fail "--json run attached: rc $rc: $out"
[ "$(f h1 ps -aq | wc -l)" = "$n0" ] || fail "the refused --json run made a container"
check "inspect of an exited container: state and status both 'exited'; --json run attached refused (125), nothing made"

# Environment, working directory and user.
out=$(f h1 run --rm -e FOO=bar -w /tmp -u worker busybox sh -c 'echo $FOO $(pwd) $(id -u):$(id -g)')
[ "$out" = "bar /tmp 1000:1000" ] || fail "env/workdir/user: '$out'"
check "env, workdir and user apply ($out)"
f h1 ps -a --json | grep -q '"name": "hello"' || fail "hello vanished"

# create + start, pinned address, reachable from the host's bridge.
f h1 create --name web --ip 198.18.13.50 busybox /bin/echo-server 7000 >/dev/null
f h1 ps -a | grep -E "web .*created" >/dev/null || fail "created container not listed as created"
f h1 start web >/dev/null
f h1 ps | grep -E "web .*running .*198.18.13.50" >/dev/null || fail "web is not running at its address"
client_up c1 h1 198.18.13.250
res=$(in_ns c1 "$FERRY_BUILD/tests/tcp-client" 198.18.13.50 7000 300 10)
echo "$res" | grep -q '^ok' || fail "cannot talk to web: $res"
check "create/start with a pinned address; reachable from another netns"
expect_fail "address 198.18.13.50 is in use by container \"web\"" f h1 run -d --ip 198.18.13.50 busybox sleep 1
expect_fail "not a usable host address" f h1 run -d --ip 10.1.2.3 busybox sleep 1
expect_fail "already in use" f h1 run -d --name web busybox sleep 1
expect_fail "already running" f h1 start web
check "taken address, foreign address, taken name, double start refused"

# exec, logs
[ "$(f h1 exec web cat /etc/motd)" = from-the-image ] || fail "exec output"
f h1 exec web sh -c 'exit 7' && rc=0 || rc=$?
[ "$rc" = 7 ] || fail "exec exit code $rc"
grep -q "listening on 7000" <<<"$(f h1 logs web)" || fail "logs: $(f h1 logs web)"
# podman's codes for a command that cannot be run: 127 none, 126 not executable
rc=0; err=$(f h1 exec web nosuchcommand 2>&1 >/dev/null) || rc=$?
[ "$rc" = 127 ] && grep -q "nosuchcommand: executable file not found" <<<"$err" || fail "exec of a missing command: rc $rc: $err"
rc=0; err=$(f h1 exec web /etc/motd 2>&1 >/dev/null) || rc=$?
[ "$rc" = 126 ] && grep -q "not an executable file" <<<"$err" || fail "exec of a file that is not executable: rc $rc: $err"
rc=0; f h1 exec web /bin/nosuch 2>/dev/null || rc=$?
[ "$rc" = 127 ] || fail "exec of a missing path: rc $rc"
check "exec output and exit code (127 for a missing command, 126 for one that is not executable); logs"

# top: the container's processes as it sees them, user names from its passwd
f h1 run -d --name topper -u worker busybox sh -c 'sleep 4242 & exec sleep 4343' >/dev/null
out=""
for _ in $(seq 1 50); do  # bounded: 5 s (the shell forks its child first)
  out=$(f h1 top topper)
  grep -q "sleep 4242" <<<"$out" && break
  sleep 0.1
done
head -1 <<<"$out" | grep -q "^USER .*PID .*PPID .*%CPU .*ELAPSED .*COMMAND" || fail "top header: $out"
grep -Eq "^worker +1 +0 .*sleep 4343" <<<"$out" || fail "top: no pid 1 'sleep 4343' of worker: $out"
grep -Eq "^worker +[0-9]+ +1 .*sleep 4242" <<<"$out" || fail "top: no child of pid 1 'sleep 4242': $out"
[ "$(f h1 top topper --json | grep -c '"pid"')" = 2 ] || fail "top --json: $(f h1 top topper --json)"
f h1 rm -f topper >/dev/null
expect_fail "is not running" f h1 top hello
check "top: the container's processes with its own pids, parents and user names; refused for a stopped container"

# stats: one table (--no-stream), as JSON too; a busy loop uses CPU, web
# has had traffic
f h1 run -d --name busy busybox sh -c 'while :; do :; done' >/dev/null
js=$(f h1 stats --no-stream --json web busy)
/usr/bin/python3 - "$js" <<'PY' || fail "stats --json: $js"
import json, sys
s = {x["name"]: x for x in json.loads(sys.argv[1])}
w, b = s["web"], s["busy"]
assert w["net_rx_bytes"] > 0 and w["net_tx_bytes"] > 0, "web has no network bytes"
assert w["memory_bytes"] > 0 and w["memory_limit_bytes"] >= w["memory_bytes"], "memory"
assert w["pids"] >= 1 and b["pids"] >= 1, "pids"
assert b["cpu_percent"] > 0 and b["cpu_seconds"] > 0, "the busy loop used no CPU"
PY
out=$(f h1 stats --no-stream)
head -1 <<<"$out" | grep -q "^ID .*NAME .*CPU % .*MEM USAGE / LIMIT .*MEM % .*NET IO .*BLOCK IO .*PIDS" || fail "stats header: $out"
grep -Eq "^[0-9a-f]{12} +busy +[0-9.]+% " <<<"$out" || fail "stats has no row of busy: $out"
f h1 rm -f busy >/dev/null
expect_fail "is not running" f h1 stats --no-stream hello
check "stats: CPU, memory against its limit, network and block I/O, pids (table and JSON); refused for a stopped container"

# exec's output byte for byte, as it comes: binary with NULs, more than the
# buffered answer's 16 MiB, stdout and stderr apart; Ctrl-C ends the command
f h1 exec web sh -c 'printf "a\0b\0\377"' >"$T_DIR/bin.out" || fail "exec of a binary printf"
[ "$(od -An -tx1 "$T_DIR/bin.out" | tr -d ' \n')" = 61006200ff ] || fail "binary output changed: $(od -An -tx1 "$T_DIR/bin.out")"
f h1 exec web seq 1 3000000 >"$T_DIR/seq.out" || fail "exec seq"
seq 1 3000000 | cmp -s - "$T_DIR/seq.out" || fail "seq 1 3000000 through exec differs ($(stat -c %s "$T_DIR/seq.out") bytes)"
# 100 MiB of random bytes: what the container has, byte for byte
want=$(f h1 exec web sh -c 'head -c 104857600 /dev/urandom > /tmp/rnd && md5sum < /tmp/rnd' | cut -d' ' -f1)
got=$(f h1 exec web cat /tmp/rnd | md5sum | cut -d' ' -f1)
[ -n "$want" ] && [ "$want" = "$got" ] || fail "100 MiB of binary through exec: md5 $got, want $want"
f h1 exec web rm /tmp/rnd
f h1 exec web sh -c 'echo out; echo err >&2; exit 3' >"$T_DIR/o" 2>"$T_DIR/e" && rc=0 || rc=$?
[ "$rc" = 3 ] && [ "$(cat "$T_DIR/o")" = out ] && [ "$(cat "$T_DIR/e")" = err ] ||
  fail "exec streams: rc $rc, stdout '$(cat "$T_DIR/o")', stderr '$(cat "$T_DIR/e")'"
# (ferry itself in the background, not f: the signal must reach it)
"$FERRY_BIN" --host "unix://$T_DIR/h1/ferryd.sock" exec web sh -c 'echo first; exec sleep 7777' >"$T_DIR/live.out" 2>&1 &
ex=$!
seen=0
for _ in $(seq 1 100); do  # bounded: 10 s
  if [ "$(cat "$T_DIR/live.out")" = first ] && f h1 exec web ps | grep -q "sleep 7777"; then seen=1; break; fi
  sleep 0.1
done
[ "$seen" = 1 ] || fail "exec's first line did not arrive while the command ran: '$(cat "$T_DIR/live.out")'"
kill -INT "$ex"
rc=0; wait "$ex" || rc=$?
[ "$rc" = 130 ] || fail "exec interrupted by SIGINT exited $rc, want 130"
gone=0
for _ in $(seq 1 50); do  # bounded: 5 s
  f h1 exec web ps | grep -q "sleep 7777" || { gone=1; break; }
  sleep 0.1
done
[ "$gone" = 1 ] || fail "Ctrl-C on exec left the command running in the container: $(f h1 exec web ps)"
check "exec streams: binary output with NULs intact, 100 MiB of random bytes identical, 3,000,000 lines (> 16 MiB) identical, stdout and stderr apart, output seen while the command runs, Ctrl-C (130) kills the command in the container"

# --format, podman's Go-template habits
[ "$(f h1 inspect --format '{{.State.Status}}' web)" = running ] || fail "inspect --format State.Status: $(f h1 inspect --format '{{.State.Status}}' web)"
ip=$(f h1 inspect web | sed -n 's/^ *"ip": "\([0-9.]*\)".*/\1/p' | head -1)
[ -n "$ip" ] && [ "$(f h1 inspect -f '{{.NetworkSettings.IPAddress}} {{.ip}}' web)" = "$ip $ip" ] ||
  fail "inspect -f IPAddress: $(f h1 inspect -f '{{.NetworkSettings.IPAddress}} {{.ip}}' web), want $ip"
f h1 inspect -f '{{json .Config.Cmd}}' web | python3 -c 'import json,sys; v=json.load(sys.stdin); assert isinstance(v, list) and v, v' ||
  fail "inspect -f json: $(f h1 inspect -f '{{json .Config.Cmd}}' web)"
[ "$(f h1 inspect -f '{{.NoSuchField}}' web)" = "<no value>" ] || fail "inspect -f of a missing field"
f h1 ps --format '{{.Names}}\t{{.Status}}' | grep -qx "web$(printf '\t')running" || fail "ps --format: $(f h1 ps --format '{{.Names}}\t{{.Status}}')"
[ "$(f h1 ps --format '{{.ID}}' | head -1 | wc -c)" = 13 ] || fail "ps --format ID is not 12 digits"
rc=0; err=$(f h1 inspect -f '{{index .x 1}}' web 2>&1 >/dev/null) || rc=$?
[ "$rc" = 125 ] && grep -q "^Error: --format" <<<"$err" || fail "an unknown template action: rc $rc: $err"
check "inspect and ps --format: {{.State.Status}}, {{.NetworkSettings.IPAddress}}, {{json ...}}, a missing field, a refused action"

# stop, kill
f h1 stop -t 2 web >/dev/null
f h1 ps -a | grep -E "web .*exited" >/dev/null || fail "web not exited after stop"
f h1 start web >/dev/null
f h1 kill web >/dev/null
sleep 0.3
f h1 ps -a | grep -E "web .*exited \(137\)" >/dev/null || fail "kill: $(f h1 ps -a)"
check "stop and kill (exit 137)"

# restart (a stopped one is started, a running one stopped and started),
# wait (the exit code), container prune
f h1 restart web >/dev/null
f h1 ps | grep -q "web .*running" || fail "restart of a stopped container: $(f h1 ps -a)"
p1=$(f h1 inspect -f '{{.State.Pid}}' web)
f h1 restart -t 1 web >/dev/null
p2=$(f h1 inspect -f '{{.State.Pid}}' web)
f h1 ps | grep -q "web .*running" && [ "$p1" != "$p2" ] || fail "restart of a running container: pid $p1 -> $p2: $(f h1 ps -a)"
f h1 run -d --name waiter busybox sh -c 'sleep 0.5; exit 4' >/dev/null
[ "$(f h1 wait waiter)" = 4 ] || fail "wait did not print the exit code 4"
expect_fail "no such container" f h1 wait nosuchcontainer
echo n | f h1 container prune >/dev/null 2>&1
f h1 ps -a | grep -q " waiter " || fail "container prune answered no removed waiter"
f h1 container prune -f | grep -q . || fail "container prune -f removed nothing"
f h1 ps -a | grep -q " waiter " && fail "container prune -f kept the exited waiter: $(f h1 ps -a)"
f h1 ps | grep -q "web .*running" || fail "container prune removed a running container"
f h1 pause web >/dev/null
f h1 ps | grep -q "web .*paused" || fail "pause: $(f h1 ps)"
expect_fail "is not running .paused." f h1 pause web
f h1 unpause web >/dev/null
f h1 ps | grep -q "web .*running" || fail "unpause: $(f h1 ps)"
res=$(in_ns c1 "$FERRY_BUILD/tests/tcp-client" 198.18.13.50 7000 300 10)
echo "$res" | grep -q '^ok' || fail "web does not serve after unpause: $res"
if [ -d /sys/fs/cgroup/freezer ]; then
  # the empty cgroup that keeps the kernel's freezer on (ferryd(8)): frozen,
  # and never holding a task (one put there would never run again)
  kf=/sys/fs/cgroup/freezer/ferry/keep-frozen
  [ "$(cat $kf/freezer.state 2>&1)" = FROZEN ] || fail "$kf: $(cat $kf/freezer.state 2>&1)"
  [ -z "$(cat $kf/tasks)" ] || fail "$kf holds tasks: $(cat $kf/tasks)"
fi
f h1 kill web >/dev/null  # as it was: exited
[ "$(f h1 wait web)" = 137 ] || fail "wait after kill"
check "restart (stopped and running), pause/unpause, wait prints the exit code, container prune removes only what does not run"

# volumes
f h1 volume create vol1 >/dev/null
expect_fail "already exists" f h1 volume create vol1
f h1 run -d --name writer -v vol1:/data busybox sh -c 'echo payload > /data/f; sleep 1000' >/dev/null
sleep 0.5
expect_fail "in use by container \"writer\"" f h1 volume rm vol1
f h1 rm -f writer >/dev/null
[ "$(f h1 run --rm -v vol1:/d busybox cat /d/f)" = payload ] || fail "volume contents not shared"
# podman's :ro: mounted at /d (not "/d:ro"), readable, not writable
[ "$(f h1 run --rm -v vol1:/d:ro busybox cat /d/f)" = payload ] || fail "a :ro volume is not readable at /d"
out=$(f h1 run --rm -v vol1:/d:ro busybox sh -c 'echo x > /d/g && echo wrote || echo refused' 2>&1)
echo "$out" | grep -q refused && ! echo "$out" | grep -q wrote || fail "a :ro volume was writable: $out"
expect_fail "unknown option \"rx\"" f h1 run --rm -v vol1:/d:rx busybox true
f h1 volume ls | grep -q vol1 || fail "volume ls"
f h1 volume rm -f vol1 >/dev/null || fail "volume rm -f"
f h1 volume ls | grep -q vol1 && fail "volume rm"
check "volumes: create, in-use refusal, contents shared, read-only with :ro, rm -f"

# volume prune: what no container uses goes; asked first unless -f
f h1 volume create spare1 >/dev/null
f h1 volume create spare2 >/dev/null
f h1 run -d --name holder -v held:/h busybox sleep 1000 >/dev/null
echo n | f h1 volume prune >/dev/null 2>&1
f h1 volume ls | grep -q spare1 || fail "volume prune answered no removed spare1"
out=$(f h1 volume prune -f)
[ "$(echo "$out" | sort | tr '\n' ' ')" = "spare1 spare2 " ] || fail "volume prune -f said: $out"
f h1 volume ls | grep -Eq "spare1|spare2" && fail "volume prune left: $(f h1 volume ls)"
f h1 volume ls | grep -q held || fail "volume prune removed a volume in use"
expect_fail "unknown volume command" f h1 volume bogus
f h1 rm -f holder >/dev/null
f h1 volume rm held >/dev/null
check "volume prune: unused volumes go (asked first unless -f), one in use stays; an unknown subcommand is refused"

# bind mounts of host paths: read and written both ways, :ro read-only, a
# missing path or ferry's own store refused, and never moved
mkdir -p "$T_DIR/hostdir"
echo from-host >"$T_DIR/hostdir/in"
f h1 run -d --name binder -v "$T_DIR/hostdir:/mnt" -v "$T_DIR/hostdir:/ro:ro" busybox sleep 1000 >/dev/null
[ "$(f h1 exec binder cat /mnt/in)" = from-host ] || fail "bind mount: the host's file is not seen"
f h1 exec binder sh -c 'echo from-ctr > /mnt/out'
[ "$(cat "$T_DIR/hostdir/out")" = from-ctr ] || fail "bind mount: the container's write is not on the host"
out=$(f h1 exec binder sh -c 'echo x > /ro/y && echo wrote || echo refused' 2>&1)
grep -q refused <<<"$out" && [ ! -e "$T_DIR/hostdir/y" ] || fail "a :ro bind mount was writable: $out"
expect_fail "bind mount \"$T_DIR/nowhere\": No such file or directory" f h1 run -d -v "$T_DIR/nowhere:/x" busybox true
expect_fail "inside the agent's store" f h1 run -d -v "$T_DIR/h1/root:/x" busybox true
expect_fail "a move cannot carry a host's files" f h1 migrate binder --to tcp://198.18.0.1:9000
f h1 rm -f binder >/dev/null
[ "$(cat "$T_DIR/hostdir/in")" = from-host ] || fail "removing the container touched the host's files"
check "bind mounts (-v /host/path:/dst[:ro]): both ways, read-only with :ro, missing or store paths refused, no move"

# --tmpfs and podman's --mount: a tmpfs with its size and mode, noexec by
# default; --mount type=volume and type=bind as -v, readonly honoured
f h1 run --rm -v mvol:/d busybox sh -c 'echo payload > /d/f' >/dev/null
f h1 run -d --name mnt --tmpfs /scratch:size=1m,mode=1777 \
  --mount type=tmpfs,target=/t2,tmpfs-size=2m,tmpfs-mode=700 \
  --mount type=volume,source=mvol,target=/v,readonly \
  --mount type=bind,src="$T_DIR/hostdir",dst=/b busybox sleep 1000 >/dev/null
m=$(f h1 exec mnt grep -E ' /(scratch|t2) ' /proc/mounts)
grep -q '^tmpfs /scratch tmpfs rw,nosuid,nodev,noexec,.*size=1024k' <<<"$m" || fail "--tmpfs /scratch: $m"
grep -q '^tmpfs /t2 tmpfs rw,.*size=2048k,mode=700' <<<"$m" || fail "--mount type=tmpfs: $m"
modes=$(f h1 exec mnt sh -c 'stat -c %a /scratch /t2' | tr '\n' ' ')
[ "$modes" = "1777 700 " ] || fail "tmpfs modes: $modes"
[ "$(f h1 exec mnt sh -c 'echo a > /scratch/f && cat /scratch/f')" = a ] || fail "the tmpfs is not writable"
out=$(f h1 exec mnt sh -c 'cp /bin/busybox /scratch/bb && /scratch/bb true && echo ran || echo refused' 2>&1)
grep -q refused <<<"$out" || fail "a program ran from a noexec tmpfs: $out"
[ "$(f h1 exec mnt cat /v/f)" = payload ] || fail "--mount type=volume: not mounted at /v"
out=$(f h1 exec mnt sh -c 'echo x > /v/g && echo wrote || echo refused' 2>&1)
grep -q refused <<<"$out" || fail "--mount ...,readonly was writable: $out"
[ "$(f h1 exec mnt cat /b/in)" = from-host ] || fail "--mount type=bind: the host's file is not seen"
f h1 rm -f mnt >/dev/null
expect_fail 'unknown option "bogus"' f h1 run -d --mount type=tmpfs,target=/x,bogus=1 busybox true
expect_fail 'needs type= and target=' f h1 run -d --mount source=mvol busybox true
expect_fail 'is not a number' f h1 run -d --tmpfs /x:size=lots busybox true
expect_fail 'unknown option "huge"' f h1 run -d --tmpfs /x:huge busybox true
expect_fail 'two mounts at /x' f h1 run -d --tmpfs /x -v mvol:/x busybox true
expect_fail 'must be a normalised path' f h1 run -d --tmpfs /x/../y busybox true
check "--tmpfs and --mount type=tmpfs|volume|bind: size, mode, noexec, readonly; bad options and two mounts at one place refused"

# rm
f h1 run -d --name sleeper busybox sleep 1000 >/dev/null
sid=$(f h1 --json inspect sleeper | sed -n 's/.*"id": "\([0-9a-f]\{64\}\)".*/\1/p' | head -n1)
f h1 ps -q | grep -qx "${sid:0:12}" || fail "ps -q does not list sleeper's id: $(f h1 ps -q)"
f h1 ps -q --no-trunc | grep -qx "$sid" || fail "ps -q --no-trunc: $(f h1 ps -q --no-trunc)"
# -l / -n: the newest first, any state
f h1 create --name newest busybox true >/dev/null
[ "$(f h1 ps -l --format '{{.Names}}')" = newest ] || fail "ps -l: $(f h1 ps -l)"
[ "$(f h1 ps -n 2 --format '{{.Names}}' | tr '\n' ' ')" = "newest sleeper " ] || fail "ps -n 2: $(f h1 ps -n 2)"
[ "$(f h1 ps -q -n 0 | wc -l)" = 0 ] || fail "ps -n 0 listed something"
expect_fail "expected a number" f h1 ps -n x
f h1 rm newest >/dev/null
expect_fail "is running: stop it first" f h1 rm sleeper
f h1 rm -f sleeper >/dev/null
f h1 ps -a | grep -q sleeper && fail "rm -f left sleeper"
check "ps -l and -n N: the newest first, any state; rm refuses a running container, rm -f removes it"

# bad input: unknown names, malformed JSON, unknown endpoints, nothing changes
sock="$T_DIR/h1/ferryd.sock"
before=$(f h1 ps -a --json)
expect_fail "container \"nope\": no such container" f h1 stop nope
expect_fail "container \"nope\": no such container" f h1 exec nope true
expect_fail "image \"nosuch\": no such image" f h1 run -d nosuch true
expect_fail "volume name \"bad/name\"" f h1 run -d -v bad/name:/x busybox true
code=$(curl -s -o "$T_DIR/resp" -w '%{http_code}' --unix-socket "$sock" -X POST \
  -H 'Content-Type: application/json' -d '{"image": "busybox", "name": ' http://localhost/v1/containers)
[ "$code" = 400 ] || fail "malformed JSON: status $code"
grep -q '"message":"request body: malformed JSON' "$T_DIR/resp" || fail "malformed JSON reply: $(cat "$T_DIR/resp")"
code=$(curl -s -o "$T_DIR/resp" -w '%{http_code}' --unix-socket "$sock" -X POST \
  -d '{"image": 42}' http://localhost/v1/containers)
[ "$code" = 400 ] && grep -q 'field \\"image\\" must be a string' "$T_DIR/resp" || fail "wrong type: $code $(cat "$T_DIR/resp")"
code=$(curl -s -o "$T_DIR/resp" -w '%{http_code}' --unix-socket "$sock" http://localhost/v2/nothing)
[ "$code" = 404 ] || fail "unknown endpoint: $code"
[ "$(curl -s --unix-socket "$sock" http://localhost/health)" = '{"status":"UP"}' ] || fail "health"
[ "$(f h1 ps -a --json)" = "$before" ] || fail "bad requests changed the container list"
check "unknown names, malformed JSON, wrong types, unknown endpoints: clear errors, nothing changed"

# agent restart: running containers are found again, and still answer
f h1 run -d --name survivor --ip 198.18.13.60 busybox /bin/echo-server 7000 >/dev/null
host_restart h1
f h1 ps | grep -E "survivor .*running" >/dev/null || fail "restarted agent lost survivor: $(f h1 ps -a)"
res=$(in_ns c1 "$FERRY_BUILD/tests/tcp-client" 198.18.13.60 7000 300 10)
echo "$res" | grep -q '^ok' || fail "survivor does not answer after agent restart: $res"
f h1 exec survivor true || fail "exec after agent restart"
# left frozen and off the network (as by an agent killed inside a
# checkpoint, outside ferry's recovery): ferry resume brings it back
sid=$(f h1 --json inspect survivor | sed -n 's/.*"id": "\([0-9a-f]\{64\}\)".*/\1/p' | head -n1)
veth=$(f h1 --json inspect survivor | sed -n 's/.*"veth": "\([^"]*\)".*/\1/p' | head -n1)
runc --root "$T_DIR/h1/runc" pause "$sid"
in_ns h1 ip link set "$veth" down
f h1 ps | grep -E "survivor .*paused" >/dev/null || fail "paused survivor not shown paused: $(f h1 ps)"
expect_fail "is not running|paused" f h1 exec survivor true
f h1 resume survivor >/dev/null || fail "resume"
f h1 ps | grep -E "survivor .*running" >/dev/null || fail "survivor not running after resume"
res=$(in_ns c1 "$FERRY_BUILD/tests/tcp-client" 198.18.13.60 7000 300 10)
echo "$res" | grep -q '^ok' || fail "survivor does not answer after resume: $res"
expect_fail "is not paused" f h1 resume survivor
expect_fail "no such container" f h1 unpause nope
check "ferry resume thaws a container left paused and off the network; resume of a running one is 409"
expect_fail "seconds 0..3600" f h1 stop -t 99999999 survivor
code=$(curl -s -o /dev/null -w '%{http_code}' --unix-socket "$T_DIR/h1/ferryd.sock" -X POST "http://x/v1/containers/survivor/stop?timeout=99999999")
[ "$code" = 400 ] || fail "stop?timeout=99999999 answered $code"
f h1 ps | grep -E "survivor .*running" >/dev/null || fail "a refused stop stopped survivor"
# a name that reads as the beginning of another container's id is refused
expect_fail "beginning of the id of container \"survivor\"" f h1 run -d --name "${sid:0:6}" busybox true
# "%00" does not cut a name short: survivor%00x is not survivor
code=$(curl -s -o "$T_DIR/resp" -w '%{http_code}' --unix-socket "$T_DIR/h1/ferryd.sock" -X POST "http://x/v1/containers/survivor%00x/stop")
[ "$code" = 404 ] || fail "stop of survivor%00x answered $code: $(cat "$T_DIR/resp")"
f h1 ps | grep -E "survivor .*running" >/dev/null || fail "stop of survivor%00x stopped survivor"
f h1 stop -t 1 survivor >/dev/null
f h1 ps -a | grep -E "survivor .*exited" >/dev/null || fail "stop after restart"
check "agent restart finds running containers; they keep serving and can be stopped; survivor%00x is not survivor; a name that reads as survivor's id prefix is refused"

# Output is capped: a chatty container keeps at most twice the cap (32 MiB)
# on disk, and logs answers in chunks without reading the whole file.
f h1 run -d --name chatty busybox sh -c 'yes 0123456789abcdefghijklmnopqrstuvwxyz | head -c 75000000; echo LAST-LINE; sleep 600' >/dev/null
cid=$(f h1 --json inspect chatty | python3 -c 'import json,sys; j=json.load(sys.stdin); j=j[0] if isinstance(j,list) else j; print(j["id"])')
log="$T_DIR/h1/root/containers/$cid/ctr.log"
for _ in $(seq 1 300); do tail -c 100 "$log" 2>/dev/null | grep -q LAST-LINE && break; sleep 0.2; done
[ -f "$log.1" ] || fail "75 MB of output did not rotate the log"
size=$(( $(stat -c %s "$log") + $(stat -c %s "$log.1") ))
[ "$size" -le $((64 << 20)) ] || fail "output kept on disk: $size bytes (cap: 2 x 32 MiB)"
got=$(f h1 logs chatty | wc -c)
[ "$got" -le $((32 << 20)) ] && [ "$got" -gt 0 ] || fail "logs returned $got bytes"
f h1 logs chatty | tail -n 1 | grep -q LAST-LINE || fail "logs lost the newest output"
f h1 rm -f chatty >/dev/null
check "75 MB of output: log rotated at 32 MiB ($size bytes on disk), logs ends with the newest line"

# FERRY_HOST and --host
FERRY_HOST="unix://$sock" timeout 20 "$FERRY_BIN" ps -a | grep -q survivor || fail "FERRY_HOST not used"
expect_fail "cannot reach the ferry agent" timeout 20 "$FERRY_BIN" --host unix://$T_DIR/none.sock ps
check "FERRY_HOST and --host select the agent; an absent agent gets a clear error"

# version: the client's, then the agent's; an absent agent: the client's
# line, the error and podman's 125
ver=$(sed -n "s/^ *version *: *'\([^']*\)'.*/\1/p" "$(dirname "$0")/../../meson.build" | head -1)
out=$(f h1 version)
echo "$out" | grep -qx "Client:  ferry $ver" || fail "version: no client line for $ver: $out"
echo "$out" | grep -q "^Agent:   ferry $ver (agent [0-9a-f]*)$" || fail "version: no agent line: $out"
[ "$(f h1 --json version | python3 -c 'import json,sys; j=json.load(sys.stdin); print(j["client"]["version"], j["agent"]["version"])')" = "$ver $ver" ] ||
  fail "version --json: $(f h1 --json version)"
rc=0
out=$(timeout 20 "$FERRY_BIN" --host unix://$T_DIR/none.sock version 2>&1) || rc=$?
[ "$rc" = 125 ] && echo "$out" | grep -q "^Client:  ferry $ver" && echo "$out" | grep -q "^Error: cannot reach" ||
  fail "version without an agent: rc $rc: $out"
check "version: client and agent ($ver), JSON too; without an agent the client's line, the error, exit 125"

# option errors: "Error: CMD: ...", a pointer to CMD --help, 125; every
# subcommand's --help works
cli_err() { # WANT ARGS...: fails with 125 and WANT on stderr, nothing on stdout
  local want=$1 rc=0 out err; shift
  out=$(f h1 "$@" 2>"$T_DIR/cli.err") || rc=$?
  err=$(cat "$T_DIR/cli.err")
  [ "$rc" = 125 ] && [ -z "$out" ] && [ "$err" = "$want" ] || fail "ferry $*: rc $rc, stdout '$out', stderr '$err' (wanted '$want')"
}
cli_err "Error: ps: unknown option --bogus (see ferry ps --help)" ps --bogus
cli_err "Error: ps: unknown option -x (see ferry ps --help)" ps -x
cli_err "Error: migrate: option --to needs a value (see ferry migrate --help)" migrate hello --to
cli_err "Error: image rm: unknown option --bogus (see ferry image rm --help)" image rm --bogus busybox
cli_err "Error: image import: unknown option --bogus (see ferry image import --help)" image import --bogus x.tar
for c in "image rm" "image inspect" "image import" ps run exec migrate version info; do
  # shellcheck disable=SC2086
  f h1 $c --help | grep -q "^Usage: ferry $c" || fail "ferry $c --help: $(f h1 $c --help 2>&1)"
done
# every command ferry --help lists, and every subcommand of image and
# volume: --help prints a usage and exits 0, without asking the agent
cmds=$("$FERRY_BIN" --help | awk '/^Commands:/ {on = 1; next} on && /^  [a-z]/ {print $1}')
for c in $cmds; do
  out=$("$FERRY_BIN" --host unix:///nonexistent.sock "$c" --help 2>&1) || fail "ferry $c --help failed: $out"
  grep -q "^Usage: ferry" <<<"$out" || fail "ferry $c --help: $out"
  if [ "$c" = image ] || [ "$c" = volume ]; then
    for sub in $(awk '/^  [a-z]/ {print $1}' <<<"$out"); do
      o2=$("$FERRY_BIN" --host unix:///nonexistent.sock "$c" "$sub" --help 2>&1) || fail "ferry $c $sub --help failed: $o2"
      grep -q "^Usage: ferry" <<<"$o2" || fail "ferry $c $sub --help: $o2"
    done
  fi
done
f h1 images | grep -q busybox || fail "image rm --bogus removed the image: $(f h1 images)"
f h1 info --json | python3 -c 'import json,sys; json.load(sys.stdin)' || fail "info --json (the flag last) is not JSON: $(f h1 info --json)"
check "option errors say Error: CMD: ... and point to CMD --help (125, nothing changed); subcommands' --help"

# run -d --rm: the agent removes it when it ends by itself, or is stopped
f h1 run -d --rm --name shortlived busybox sh -c 'sleep 0.5' >/dev/null
f h1 inspect shortlived | grep -q '"autoremove": true' || fail "run -d --rm: no autoremove in the record: $(f h1 inspect shortlived)"
f h1 run -d --rm --name stopped busybox sleep 1000 >/dev/null
f h1 stop -t 1 stopped >/dev/null
gone=0
for _ in $(seq 1 50); do  # bounded: 10 s
  f h1 ps -a | grep -Eq " (shortlived|stopped) " || { gone=1; break; }
  sleep 0.2
done
[ "$gone" = 1 ] || fail "run -d --rm: still listed: $(f h1 ps -a)"
f h1 run -d --name kept busybox sh -c 'exit 0' >/dev/null
sleep 2
f h1 ps -a | grep -q " kept " || fail "a container without --rm was removed: $(f h1 ps -a)"
f h1 rm kept >/dev/null
check "run -d --rm: removed by the agent when it exits and when stopped; without --rm it stays"

# an attached run passes the signals it gets to the container (podman's
# --sig-proxy); --rm still removes it once it has ended
"$FERRY_BIN" --host "unix://$T_DIR/h1/ferryd.sock" run --rm --name fg busybox sh -c \
  'trap "echo got-int; exit 5" INT; echo ready; while true; do sleep 0.1; done' >"$T_DIR/fg.out" 2>&1 &
fg=$!
for _ in $(seq 1 100); do grep -q ready "$T_DIR/fg.out" && break; sleep 0.1; done  # bounded: 10 s
grep -q ready "$T_DIR/fg.out" || fail "attached run did not start: $(cat "$T_DIR/fg.out")"
kill -INT "$fg"
rc=0
for _ in $(seq 1 100); do kill -0 "$fg" 2>/dev/null || break; sleep 0.1; done  # bounded: 10 s
kill -0 "$fg" 2>/dev/null && { kill -KILL "$fg"; fail "attached run ignored Ctrl-C: $(cat "$T_DIR/fg.out")"; }
wait "$fg" || rc=$?
[ "$rc" = 5 ] && grep -q got-int "$T_DIR/fg.out" || fail "Ctrl-C on an attached run: rc $rc: $(cat "$T_DIR/fg.out")"
f h1 ps -a | grep -q " fg " && fail "run --rm kept the container after Ctrl-C: $(f h1 ps -a)"
check "Ctrl-C on an attached run reaches the container (its exit code comes back) and --rm removes it"

# bash completion (completions/ferry.bash): verbs, flags, and the names on
# the agent the line names with --host
f h1 run -d --name comp1 busybox sleep 600 >/dev/null
complete_line() { # WORDS...: what bash offers for the last word
  bash -c 'source "$1"; shift; COMP_WORDS=("$@"); COMP_CWORD=$(($# - 1)); _ferry; printf "%s\n" "${COMPREPLY[@]}"' \
    _ "$(dirname "$0")/../../completions/ferry.bash" "$@"
}
H=(--host "unix://$sock")
[ "$(complete_line "$FERRY_BIN" mi)" = migrate ] || fail "completion of 'mi': $(complete_line "$FERRY_BIN" mi)"
out=$(complete_line "$FERRY_BIN" "${H[@]}" stop "")
[ "$out" = comp1 ] || fail "stop completes running containers: got '$out'"
out=$(complete_line "$FERRY_BIN" "${H[@]}" rm "")
grep -qx comp1 <<<"$out" && grep -qx survivor <<<"$out" || fail "rm completes every container: got '$out'"
grep -qx busybox:latest <<<"$(complete_line "$FERRY_BIN" "${H[@]}" run "")" || fail "run does not complete images"
grep -qx -- --leave-running <<<"$(complete_line "$FERRY_BIN" "${H[@]}" checkpoint --l)" || fail "checkpoint flags"
[ "$(complete_line "$FERRY_BIN" "${H[@]}" migrate comp1 --memory s)" = stream ] || fail "--memory values"
f h1 rm -f comp1 >/dev/null
check "bash completion: verbs, flags and values, running containers for stop, all for rm, images for run, from the agent --host names"
echo "# all checks passed"
