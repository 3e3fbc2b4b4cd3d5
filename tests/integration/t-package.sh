#!/usr/bin/env bash
# The Debian package built from the tree (dpkg-buildpackage -b -us -uc,
# debian/) installs a working ferry: the programs, the systemd units, the
# configuration files, the man pages and the bash completion in their
# places; ferryd started as its unit starts it (ExecStart, options from a
# configuration file) runs a container in a test host; `man ferry` finds the
# page; completion lists the containers; and, with the installed programs,
# pull/push through a registry, a live move and a Prometheus scrape. Then
# the package is purged and nothing of it is left.
source "$(dirname "$0")/lib.sh"
need dpkg-buildpackage dh dpkg python3
SRC=$(cd "$(dirname "$0")/../.." && pwd)
if dpkg-query -W -f='${Status}' ferry 2>/dev/null | grep -q "install ok installed"; then
  echo "SKIP: a ferry package is already installed on this machine; this test installs and purges its own" >&2
  [ -n "${CI:-}" ] && exit 1
  exit 77
fi
installed=""
pkg_purge() {
  [ -n "$installed" ] && dpkg --purge ferry >"$T_DIR/purge.log" 2>&1
  installed=""
}
trap 'pkg_purge; cleanup' EXIT

# build from a copy of the tree (dpkg-buildpackage writes next to it)
mkdir -p "$T_DIR/pkg/ferry"
(cd "$SRC" && tar --exclude='./build*' --exclude='./.git' --exclude='./bench/results' -cf - .) |
  tar -xf - -C "$T_DIR/pkg/ferry"
(cd "$T_DIR/pkg/ferry" && dpkg-buildpackage -b -us -uc) >"$T_DIR/pkg/build.log" 2>&1 ||
  fail "dpkg-buildpackage: $(tail -20 "$T_DIR/pkg/build.log")"
deb=$(ls "$T_DIR"/pkg/ferry_*_*.deb)
[ -f "$deb" ] || fail "no package built: $(ls "$T_DIR/pkg")"
check "dpkg-buildpackage -b -us -uc builds $(basename "$deb")"

installed=1
dpkg -i "$deb" >"$T_DIR/pkg/install.log" 2>&1 || fail "dpkg -i: $(tail -20 "$T_DIR/pkg/install.log")"
for f in /usr/bin/ferry /usr/bin/ferryd /usr/bin/ferry-coord /usr/libexec/ferry/ferry-shim \
         /etc/ferry/ferryd.conf /etc/ferry/ferry-coord.conf /lib/systemd/system/ferryd.service \
         /lib/systemd/system/ferry-coord.service /usr/share/bash-completion/completions/ferry; do
  [ -e "$f" ] || fail "the package did not install $f"
done
man -w ferry >/dev/null 2>&1 || fail "man ferry finds no page"
MANWIDTH=80 man ferry 2>/dev/null | grep -q "live-migrate containers" || fail "man ferry does not show the page"
check "the package installs the programs, units, configuration, man pages (man ferry shows its page) and completion"

# ferryd as its unit starts it, options from a configuration file, in a test host
exec_start=$(sed -n 's/^ExecStart=//p' /lib/systemd/system/ferryd.service)
[ "$exec_start" = /usr/bin/ferryd ] || fail "ferryd.service: ExecStart=$exec_start"
new_host_ns h1
cat >"$T_DIR/h1/ferryd.conf" <<EOF
# as /etc/ferry/ferryd.conf would say, for this test's host
root = $T_DIR/h1/root
socket = $T_DIR/h1/ferryd.sock
runc-root = $T_DIR/h1/runc
bridge = fpk$$
subnet = 198.18.71.0/24
EOF
nsenter --net="/var/run/netns/$HOST_h1_NS" $exec_start --config "$T_DIR/h1/ferryd.conf" >>"$T_DIR/h1/ferryd.log" 2>&1 &
T_PIDS+=("$!")
F=(/usr/bin/ferry --host "unix://$T_DIR/h1/ferryd.sock")
for _ in $(seq 1 100); do "${F[@]}" info >/dev/null 2>&1 && break; sleep 0.1; done
"${F[@]}" info >/dev/null || fail "the installed ferryd did not come up: $(tail -5 "$T_DIR/h1/ferryd.log")"
make_rootfs
"${F[@]}" image import "$T_DIR/busybox.tar" --name busybox >/dev/null
"${F[@]}" run -d --name pkgtest busybox sleep 600 >/dev/null || fail "ferry run with the installed ferry"
[ "$("${F[@]}" exec pkgtest echo hello)" = hello ] || fail "exec in the container"
out=$(bash -c 'source /usr/share/bash-completion/completions/ferry; COMP_WORDS=(ferry --host "$1" stop ""); COMP_CWORD=4; _ferry; printf "%s\n" "${COMPREPLY[@]}"' _ "unix://$T_DIR/h1/ferryd.sock")
[ "$out" = pkgtest ] || fail "the installed completion lists '$out', not the container"
"${F[@]}" rm -f pkgtest >/dev/null
check "the installed ferryd, started as its unit does (ExecStart, options from a configuration file), runs a container; the installed completion lists it"

kill "${T_PIDS[-1]}"; wait "${T_PIDS[-1]}" 2>/dev/null || true

# The rest of what a user does, with the installed programs (the test
# helpers from the build): pull from a registry and push to it, move a
# container live between two agents, scrape both and the coordinator with
# Prometheus. The other tests' own scenarios, run against the package.
inst="$T_DIR/installed"
mkdir -p "$inst/tests"
for b in ferry ferryd ferry-coord; do ln -s "/usr/bin/$b" "$inst/$b"; done
for b in echo-server tcp-client mkhostile memhog; do ln -s "$FERRY_BUILD/tests/$b" "$inst/tests/$b"; done
ln -s "$FERRY_BUILD/bench-client" "$inst/bench-client"
for t in t-registry t-migrate t-metrics; do
  FERRY_BUILD="$inst" timeout 600 bash "$(dirname "$0")/$t.sh" >"$T_DIR/pkg/$t.out" 2>&1 ||
    fail "$t with the installed package: $(grep -E '^FAIL' "$T_DIR/pkg/$t.out" | head -3; tail -5 "$T_DIR/pkg/$t.out")"
done
check "with the installed programs: pull and push through a registry, a live move between two agents, Prometheus scraping the agents and the coordinator (t-registry, t-migrate, t-metrics)"

pkg_purge
for f in /usr/bin/ferry /usr/bin/ferryd /etc/ferry/ferryd.conf /lib/systemd/system/ferryd.service; do
  [ ! -e "$f" ] || fail "$f is left after dpkg --purge"
done
check "dpkg --purge ferry removes it all"
echo "# all checks passed"
