#!/usr/bin/env bash
# Runs a test suite (any command: ctest, make check, pytest, ./run-tests) with
# every process it starts under guardarena's LD_PRELOAD shim, and fails when
# guardarena reported anything, even if the suite itself passed (a test runner
# may swallow a crashed child, or a bug may be caught only at free).
#
#   run-under-guardarena.sh [--reports DIR] [--option NAME=VALUE]... -- COMMAND [ARGS...]
#
# Reports are written as JSON (report_format=json), one file per process,
# DIR/report.<pid> (default DIR: ./guardarena-reports, emptied first); keep DIR
# as a CI artifact. At the end a one-line summary per report is printed.
# Exit status: the suite's own when it fails, else 1 if there are reports, else 0.
#
# The launcher is $GUARDARENA_LAUNCHER, else `guardarena` on PATH (install
# guardarena with `cmake --install`). Extra options come from --option and
# from GUARDARENA_OPTIONS, e.g. --option mode=fast for a faster run, or
# --option sample_rate=100 to guard one allocation in 100.
set -euo pipefail

reports=guardarena-reports
opts=()
while [ $# -gt 0 ]; do
  case "$1" in
    --reports) reports=$2; shift 2 ;;
    --reports=*) reports=${1#--reports=}; shift ;;
    --option) opts+=(--option "$2"); shift 2 ;;
    --option=*) opts+=(--option "${1#--option=}"); shift ;;
    --) shift; break ;;
    -h|--help) sed -n '2,18p' "$0"; exit 0 ;;
    *) echo "run-under-guardarena: unknown argument '$1' (see --help)" >&2; exit 2 ;;
  esac
done
[ $# -gt 0 ] || { echo "run-under-guardarena: no command given (… -- COMMAND ARGS)" >&2; exit 2; }

launcher=${GUARDARENA_LAUNCHER:-$(command -v guardarena || true)}
[ -n "$launcher" ] && [ -x "$launcher" ] || {
  echo "run-under-guardarena: guardarena launcher not found (set GUARDARENA_LAUNCHER or put it on PATH)" >&2
  exit 2
}

mkdir -p "$reports"
rm -f "$reports"/report.*
reports=$(cd "$reports" && pwd)  # absolute: the suite may change directories

status=0
"$launcher" --json --log-path="$reports/report" "${opts[@]}" -- "$@" || status=$?

shopt -s nullglob
files=("$reports"/report.*)
if [ ${#files[@]} -eq 0 ]; then
  echo "guardarena: no reports (suite exit status $status)"
  exit "$status"
fi

echo "guardarena: ${#files[@]} process(es) reported memory errors (JSON in $reports):"
if command -v python3 >/dev/null; then
  python3 - "${files[@]}" <<'PY'
import json, sys
# The first frame outside libc and guardarena is where the program went wrong.
def culprit(frames):
    for f in frames:
        mod = f.get("module", "")
        if "libguardarena" in mod or "/libc.so" in mod or f.get("function", "").startswith("guardarena::"):
            continue
        return "%s %s" % (f.get("function") or "?", f.get("location") or mod)
    return "?"
for path in sys.argv[1:]:
    text, dec, i = open(path).read(), json.JSONDecoder(), 0
    while True:
        while i < len(text) and text[i].isspace():
            i += 1
        if i >= len(text):
            break
        try:
            r, i = dec.raw_decode(text, i)
        except ValueError:
            print("  %s: not JSON (truncated report?)" % path)
            break
        stacks = r.get("stacks", {})
        if r.get("kind") == "leak-summary":
            print("  pid %s: %s byte(s) leaked in %s allocation(s)" % (r.get("pid"), r.get("bytes"), r.get("allocations")))
            continue
        size = r.get("block", {}).get("size", r.get("bytes", "?"))
        print("  pid %s: %s (%s bytes) in %s" % (r.get("pid"), r.get("kind"), size,
              culprit(stacks.get("access") or stacks.get("free") or stacks.get("alloc") or [])))
PY
else
  grep -ho '"kind":"[^"]*"' "${files[@]}" | sort | uniq -c
fi
[ "$status" -ne 0 ] && exit "$status"
exit 1
