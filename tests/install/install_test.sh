#!/usr/bin/env bash
# Install tests: guardarena installed into a temporary prefix and used from
# there the ways a user would. One step per CTest test (tests/install/CMakeLists.txt):
#
#   install_test.sh install    cmake --install into WORK/staging, then move it to
#                              WORK/prefix (everything below runs from the moved
#                              prefix, so relocatability is tested too)
#   install_test.sh cmake      consumer built with find_package(guardarena), static + shared
#   install_test.sh pkgconfig  the same consumer built with pkg-config, static + shared
#   install_test.sh launcher   programs run through the installed bin/guardarena
#   install_test.sh ci         examples/ci/run-under-guardarena.sh with the installed launcher
#
# Environment (set by CTest): GA_BUILD_DIR GA_SOURCE_DIR GA_WORK_DIR GA_CXX
# GA_GENERATOR GA_VERSION GA_BUGGY_PROGRAM.
set -euo pipefail

: "${GA_BUILD_DIR:?}" "${GA_SOURCE_DIR:?}" "${GA_WORK_DIR:?}" "${GA_CXX:?}" "${GA_VERSION:?}"
prefix=$GA_WORK_DIR/prefix

fail() { echo "FAIL: $*" >&2; exit 1; }
# run_expect STATUS OUTFILE cmd...: runs cmd, stdout+stderr to OUTFILE, checks the status.
run_expect() {
  local want=$1 out=$2; shift 2
  local got=0
  "$@" >"$out" 2>&1 || got=$?
  if [ "$got" != "$want" ]; then
    cat "$out" >&2
    fail "'$*' exited with $got, expected $want"
  fi
}
expect_in() {  # expect_in FILE REGEX
  grep -Eq -- "$2" "$1" || { cat "$1" >&2; fail "$1 does not match /$2/"; }
}
# A consumer must run clean, and its overflow must fault with a report
# (139 = 128 + SIGSEGV: the report re-raises the fault).
check_consumer() {
  local exe=$1 name; name=$(basename "$exe")
  run_expect 0 "$GA_WORK_DIR/$name.clean.out" "$exe"
  expect_in "$GA_WORK_DIR/$name.clean.out" '^consumer: sum=50 live_blocks=2 guarded_allocations=2 backend='
  run_expect 139 "$GA_WORK_DIR/$name.overflow.out" "$exe" overflow
  expect_in "$GA_WORK_DIR/$name.overflow.out" 'ERROR: guardarena: heap-buffer-overflow on address'
  expect_in "$GA_WORK_DIR/$name.overflow.out" 'located 0 bytes after the 32-byte block'
  echo "ok: $name"
}
libdir() { dirname "$(dirname "$(find "$prefix" -name guardarena.pc -print -quit)")"; }

step_install() {
  rm -rf "$GA_WORK_DIR"
  mkdir -p "$GA_WORK_DIR"
  # cmake --install rewrites the build tree's install_manifest.txt; keep the
  # one of the user's own install (they uninstall with it).
  local manifest=$GA_BUILD_DIR/install_manifest.txt
  [ ! -f "$manifest" ] || cp -p "$manifest" "$GA_WORK_DIR/user_install_manifest.txt"
  cmake --install "$GA_BUILD_DIR" --prefix "$GA_WORK_DIR/staging" >"$GA_WORK_DIR/install.log"
  if [ -f "$GA_WORK_DIR/user_install_manifest.txt" ]; then
    mv "$GA_WORK_DIR/user_install_manifest.txt" "$manifest"
  else
    rm -f "$manifest"
  fi
  mv "$GA_WORK_DIR/staging" "$prefix"
  [ -f "$prefix/include/guardarena/guardarena.hpp" ] || fail "guardarena.hpp not installed"
  [ -f "$prefix/include/guardarena/guardarena.h" ] || fail "guardarena.h not installed"
  # The public headers are self-contained: the only headers installed (the
  # C++ one and the shim's C one), and they include standard headers only.
  local headers; headers=$(find "$prefix/include" -type f | wc -l)
  [ "$headers" -eq 2 ] || fail "$headers headers installed, expected guardarena.hpp and guardarena.h"
  if grep -n '#[[:space:]]*include[[:space:]]*"' "$prefix/include/guardarena/guardarena.hpp" \
      "$prefix/include/guardarena/guardarena.h"; then
    fail "an installed header includes project headers"
  fi
  local lib; lib=$(libdir)
  for f in libguardarena.a libguardarena_core.a libguardarena_pmr.so "libguardarena_pmr.so.${GA_VERSION%%.*}" \
           cmake/guardarena/guardarena-config.cmake cmake/guardarena/guardarena-config-version.cmake \
           pkgconfig/guardarena.pc pkgconfig/guardarena-shared.pc; do
    [ -e "$lib/$f" ] || fail "$lib/$f not installed"
  done
  # libguardarena.so is the preload library only, and never next to the
  # static library (where -lguardarena would find it).
  [ ! -e "$lib/libguardarena.so" ] || fail "$lib/libguardarena.so would shadow libguardarena.a"
  # The shared pmr library exports its C++ API and no allocator entry point.
  local leaked
  leaked=$(nm -D --defined-only "$lib/libguardarena_pmr.so" | awk '{print $3}' |
           grep -E '^(malloc|free|calloc|realloc|memalign|posix_memalign|aligned_alloc|valloc|pvalloc|malloc_usable_size|_Zn[wa]|_Zd[la])' || true)
  [ -z "$leaked" ] || fail "libguardarena_pmr.so exports allocator symbols: $leaked"
  nm -D --defined-only "$lib/libguardarena_pmr.so" | grep -q '_ZN10guardarena16guarded_resource7releaseEv' ||
    fail "libguardarena_pmr.so does not export guarded_resource::release()"
  [ -f "$prefix/share/man/man1/guardarena.1" ] || fail "man page not installed"
  [ -f "$prefix/share/doc/guardarena/user-guide.md" ] || fail "user guide not installed"
  echo "ok: installed into $prefix"
}

step_cmake() {
  local b=$GA_WORK_DIR/consumer-cmake
  rm -rf "$b"
  cmake -S "$GA_SOURCE_DIR/tests/install/consumer" -B "$b" ${GA_GENERATOR:+-G "$GA_GENERATOR"} \
    -DCMAKE_CXX_COMPILER="$GA_CXX" -DCMAKE_PREFIX_PATH="$prefix" -DCMAKE_BUILD_TYPE=RelWithDebInfo \
    -DEXPECTED_VERSION="$GA_VERSION" >"$GA_WORK_DIR/consumer-cmake.log" 2>&1 ||
    { cat "$GA_WORK_DIR/consumer-cmake.log" >&2; fail "consumer configure"; }
  expect_in "$GA_WORK_DIR/consumer-cmake.log" "guardarena $GA_VERSION from $prefix/"
  cmake --build "$b" >>"$GA_WORK_DIR/consumer-cmake.log" 2>&1 ||
    { cat "$GA_WORK_DIR/consumer-cmake.log" >&2; fail "consumer build"; }
  # The static consumer carries the library; the shared one loads it from the prefix.
  # Capture first: `ldd | grep -q` under pipefail fails when grep exits early
  # and ldd dies of SIGPIPE.
  local dyn libs
  dyn=$(readelf -d "$b/consumer_static")
  if grep -q 'NEEDED.*guardarena' <<<"$dyn"; then fail "consumer_static needs a guardarena .so"; fi
  libs=$(ldd "$b/consumer_shared")
  grep -q "libguardarena_pmr.so.* => $prefix/" <<<"$libs" || { echo "$libs" >&2; fail "consumer_shared does not load the installed libguardarena_pmr.so"; }
  check_consumer "$b/consumer_static"
  check_consumer "$b/consumer_shared"
  # guardarena::launcher and guardarena::preload, when the package has them.
  if [ -f "$b/preload-path.txt" ]; then
    expect_in "$b/preload-path.txt" "^$prefix/.*/guardarena/libguardarena.so\$"
    run_expect 0 "$GA_WORK_DIR/consumer-ctest.out" ctest --test-dir "$b" --output-on-failure
    echo "ok: guardarena::launcher runs the consumer's test"
  fi
  # A version the package does not satisfy is refused.
  if cmake -P /dev/stdin >/dev/null 2>&1 <<EOF2
set(CMAKE_PREFIX_PATH "$prefix")
find_package(guardarena 99 CONFIG REQUIRED)
EOF2
  then fail "find_package(guardarena 99) succeeded"; fi
}

step_pkgconfig() {
  local b=$GA_WORK_DIR/consumer-pkgconfig lib
  rm -rf "$b"; mkdir -p "$b"
  lib=$(libdir)
  export PKG_CONFIG_PATH=$lib/pkgconfig
  [ "$(pkg-config --modversion guardarena)" = "$GA_VERSION" ] || fail "pkg-config --modversion guardarena"
  # shellcheck disable=SC2046  # pkg-config output is meant to be split
  "$GA_CXX" -std=c++20 -O1 -g "$GA_SOURCE_DIR/tests/install/consumer/consumer.cpp" -o "$b/consumer_static" \
    $(pkg-config --cflags --libs guardarena)
  # shellcheck disable=SC2046
  "$GA_CXX" -std=c++20 -O1 -g "$GA_SOURCE_DIR/tests/install/consumer/consumer.cpp" -o "$b/consumer_shared" \
    $(pkg-config --cflags --libs guardarena-shared) -Wl,-rpath,"$(pkg-config --variable=libdir guardarena-shared)"
  if readelf -d "$b/consumer_static" | grep -q 'NEEDED.*guardarena'; then fail "pkg-config static consumer needs a guardarena .so"; fi
  readelf -d "$b/consumer_shared" | grep -q 'NEEDED.*libguardarena_pmr.so' || fail "pkg-config shared consumer does not need libguardarena_pmr.so"
  check_consumer "$b/consumer_static"
  check_consumer "$b/consumer_shared"
}

step_launcher() {
  local l=$prefix/bin/guardarena out=$GA_WORK_DIR/launcher lib
  lib=$(libdir)
  [ -x "$l" ] || fail "bin/guardarena not installed"
  [ -f "$lib/guardarena/libguardarena.so" ] || fail "lib/guardarena/libguardarena.so not installed"
  run_expect 0 "$out.version" "$l" --version
  expect_in "$out.version" "^guardarena $GA_VERSION\$"
  run_expect 0 "$out.help" "$l" --help
  expect_in "$out.help" 'sample_rate'
  # The launcher preloads the installed library (found relative to itself).
  run_expect 0 "$out.env" env -u GUARDARENA_LIBRARY -u LD_PRELOAD "$l" -- sh -c 'echo "LD_PRELOAD=$LD_PRELOAD"'
  expect_in "$out.env" "^LD_PRELOAD=$(cd "$lib/guardarena" && pwd -P)/libguardarena.so\$"
  # The program's exit status passes through.
  run_expect 3 "$out.status" "$l" -- sh -c 'exit 3'
  run_expect 127 "$out.missing" "$l" -- "$GA_WORK_DIR/no-such-program"
  expect_in "$out.missing" 'no-such-program'
  # An unmodified C program's heap overflow is caught and reported.
  if [ -n "${GA_BUGGY_PROGRAM:-}" ]; then
    run_expect 139 "$out.buggy" "$l" -- "$GA_BUGGY_PROGRAM"
    expect_in "$out.buggy" 'ERROR: guardarena: heap-buffer-overflow on address'
    # exitcode= replaces the signal; --json writes a JSON report to --log-path.
    rm -f "$out".json.*
    run_expect 23 "$out.buggy-json" "$l" --json --log-path="$out.json" --option exitcode=23 -- "$GA_BUGGY_PROGRAM"
    compgen -G "$out.json.*" >/dev/null || fail "no report file $out.json.<pid>"
    expect_in "$(compgen -G "$out.json.*" | head -1)" '"kind": *"heap-buffer-overflow"'
  fi
  echo "ok: launcher"
}

step_ci() {
  local ci=$GA_SOURCE_DIR/examples/ci/run-under-guardarena.sh out=$GA_WORK_DIR/ci
  export GUARDARENA_LAUNCHER=$prefix/bin/guardarena
  run_expect 0 "$out.clean" "$ci" --reports "$out.clean-reports" -- sh -c 'echo suite passed'
  expect_in "$out.clean" 'suite passed'
  run_expect 1 "$out.buggy" "$ci" --reports "$out.buggy-reports" -- sh -c "\"$GA_BUGGY_PROGRAM\"; echo suite ignored the crash; exit 0"
  expect_in "$out.buggy" 'heap-buffer-overflow'
  echo "ok: CI snippet"
}

case "${1:-}" in
  install) step_install ;;
  cmake) step_cmake ;;
  pkgconfig) step_pkgconfig ;;
  launcher) step_launcher ;;
  ci) step_ci ;;
  *) echo "usage: $0 install|cmake|pkgconfig|launcher|ci" >&2; exit 2 ;;
esac
