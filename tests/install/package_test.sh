#!/usr/bin/env bash
# The Debian packages: cpack -G DEB from the build tree, their metadata and
# file lists checked with dpkg-deb, then both extracted into a scratch root
# where the launcher catches an overflow and a pkg-config consumer builds and
# runs, as after `apt install ./guardarena_*.deb ./guardarena-dev_*.deb`.
# Environment (set by CTest): GA_BUILD_DIR GA_SOURCE_DIR GA_WORK_DIR GA_CXX
# GA_VERSION GA_BUGGY_PROGRAM.
set -euo pipefail
: "${GA_BUILD_DIR:?}" "${GA_SOURCE_DIR:?}" "${GA_WORK_DIR:?}" "${GA_CXX:?}" "${GA_VERSION:?}"
fail() { echo "FAIL: $*" >&2; exit 1; }
command -v dpkg-deb >/dev/null || { echo "skipped: no dpkg-deb (not a Debian system)"; exit 0; }
# A sibling of the install tests' directory, which their first step deletes.
w=$GA_WORK_DIR-package
rm -rf "$w"
mkdir -p "$w/root"
(cd "$GA_BUILD_DIR" && cpack -G DEB -B "$w/out" >"$w/cpack.log" 2>&1) ||
  { cat "$w/cpack.log" >&2; fail "cpack -G DEB"; }
arch=$(dpkg --print-architecture)
run=$w/out/guardarena_${GA_VERSION}_${arch}.deb
dev=$w/out/guardarena-dev_${GA_VERSION}_${arch}.deb
[ -f "$run" ] || { ls "$w/out" >&2; fail "no $(basename "$run")"; }
[ -f "$dev" ] || { ls "$w/out" >&2; fail "no $(basename "$dev")"; }

field() { dpkg-deb -f "$1" "$2"; }
[ "$(field "$run" Package)" = guardarena ] || fail "runtime package name"
[ "$(field "$dev" Package)" = guardarena-dev ] || fail "development package name"
[ "$(field "$run" Version)" = "$GA_VERSION" ] || fail "runtime version"
[ "$(field "$run" Architecture)" = "$arch" ] || fail "architecture"
field "$run" Depends | grep -q 'libc6' || fail "runtime Depends lacks libc6: $(field "$run" Depends)"
field "$run" Depends | grep -q 'libstdc++6' || fail "runtime Depends lacks libstdc++6"
field "$dev" Depends | grep -q "guardarena (= $GA_VERSION)" || fail "dev does not depend on the runtime"
field "$run" Maintainer | grep -q . || fail "no Maintainer"

dpkg-deb -c "$run" | awk '{print $6}' >"$w/run.files"
dpkg-deb -c "$dev" | awk '{print $6}' >"$w/dev.files"
for f in ./usr/bin/guardarena ./usr/lib/guardarena/libguardarena.so \
         "./usr/lib/libguardarena_pmr.so.${GA_VERSION}" ./usr/share/man/man1/guardarena.1; do
  grep -qx -- "$f" "$w/run.files" || { cat "$w/run.files" >&2; fail "runtime package lacks $f"; }
done
for f in ./usr/include/guardarena/guardarena.hpp ./usr/include/guardarena/guardarena.h \
         ./usr/lib/libguardarena.a \
         ./usr/lib/libguardarena_core.a ./usr/lib/pkgconfig/guardarena.pc \
         ./usr/lib/cmake/guardarena/guardarena-config.cmake; do
  grep -qx -- "$f" "$w/dev.files" || { cat "$w/dev.files" >&2; fail "dev package lacks $f"; }
done
# No file in both packages (dpkg would refuse to install the second).
if comm -12 <(grep -v '/$' "$w/run.files" | sort) <(grep -v '/$' "$w/dev.files" | sort) | grep -q .; then
  fail "files in both packages"
fi

dpkg-deb -x "$run" "$w/root"
dpkg-deb -x "$dev" "$w/root"
launcher=$w/root/usr/bin/guardarena
"$launcher" --version | grep -qx "guardarena $GA_VERSION" || fail "launcher --version"
if [ -n "${GA_BUGGY_PROGRAM:-}" ]; then
  status=0
  ("$launcher" -- "$GA_BUGGY_PROGRAM") >"$w/buggy.out" 2>&1 || status=$?
  [ "$status" = 139 ] || { cat "$w/buggy.out" >&2; fail "launcher: exit $status, not 139"; }
  grep -q 'ERROR: guardarena: heap-buffer-overflow' "$w/buggy.out" || fail "launcher: no report"
fi
export PKG_CONFIG_PATH=$w/root/usr/lib/pkgconfig
[ "$(pkg-config --modversion guardarena)" = "$GA_VERSION" ] || fail "pkg-config --modversion"
# shellcheck disable=SC2046  # pkg-config output is meant to be split
"$GA_CXX" -std=c++20 -O1 "$GA_SOURCE_DIR/tests/install/consumer/consumer.cpp" -o "$w/consumer" \
  $(pkg-config --cflags --libs guardarena)
"$w/consumer" >"$w/consumer.out" 2>&1 || { cat "$w/consumer.out" >&2; fail "consumer"; }
grep -q '^consumer: sum=50 live_blocks=2' "$w/consumer.out" || fail "consumer output"
echo "ok: $(basename "$run") and $(basename "$dev")"
