#!/usr/bin/env bash
# guardarena embedded in another CMake project, built from source with it:
#   embed_test.sh subdirectory   add_subdirectory(path/to/guardarena)
#   embed_test.sh fetchcontent   FetchContent from a file:// git repository
#                                (the committed HEAD of the source tree)
# The consumer links guardarena::guardarena and runs a guarded
# std::pmr::vector; no guardarena test, example or benchmark may be built.
# Environment (set by CTest): GA_SOURCE_DIR GA_WORK_DIR GA_CXX GA_GENERATOR.
set -euo pipefail
: "${GA_SOURCE_DIR:?}" "${GA_WORK_DIR:?}" "${GA_CXX:?}"
how=${1:?usage: embed_test.sh subdirectory|fetchcontent}
# A sibling of the install tests' directory, which their first step deletes.
b=$GA_WORK_DIR-embed-$how
fail() { echo "FAIL: $*" >&2; exit 1; }
rm -rf "$b"
mkdir -p "$b"
source=$GA_SOURCE_DIR
tag=""
if [ "$how" = fetchcontent ]; then
  if ! git -C "$GA_SOURCE_DIR" rev-parse --verify -q HEAD >/dev/null; then
    echo "skipped: $GA_SOURCE_DIR is not a git checkout, FetchContent has no repository to fetch"
    exit 0
  fi
  source=file://$GA_SOURCE_DIR
  tag=$(git -C "$GA_SOURCE_DIR" rev-parse HEAD)
fi
log=$b/build.log
cmake -S "$GA_SOURCE_DIR/tests/install/embed" -B "$b/build" ${GA_GENERATOR:+-G "$GA_GENERATOR"} \
  -DCMAKE_CXX_COMPILER="$GA_CXX" -DGUARDARENA_EMBED="$how" -DGUARDARENA_SOURCE="$source" \
  -DGUARDARENA_GIT_TAG="$tag" \
  >"$log" 2>&1 || { cat "$log" >&2; fail "configure ($how)"; }
cmake --build "$b/build" >>"$log" 2>&1 || { tail -n 60 "$log" >&2; fail "build ($how)"; }
# Nothing of guardarena's test suite was built or registered.
[ -z "$(find "$b/build" -name 'guardarena_tests' -type f)" ] || fail "guardarena_tests was built"
if ctest --test-dir "$b/build" -N | grep -q 'Total Tests: [1-9]'; then
  ctest --test-dir "$b/build" -N >&2
  fail "guardarena registered tests in the embedding project"
fi
out=$b/consumer
"$b/build/consumer" >"$out.clean" 2>&1 || { cat "$out.clean" >&2; fail "consumer failed"; }
grep -q '^consumer: sum=50 live_blocks=2 guarded_allocations=2 backend=' "$out.clean" ||
  { cat "$out.clean" >&2; fail "consumer printed something else"; }
status=0
("$b/build/consumer" overflow) >"$out.overflow" 2>&1 || status=$?
[ "$status" = 139 ] || { cat "$out.overflow" >&2; fail "overflow exited with $status, not 139 (SIGSEGV)"; }
grep -q 'ERROR: guardarena: heap-buffer-overflow' "$out.overflow" || { cat "$out.overflow" >&2; fail "no report"; }
echo "ok: guardarena embedded with $how"
