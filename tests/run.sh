#!/usr/bin/env bash
# Sets up and runs every test: unit tests (GoogleTest, through meson), the
# fuzzers for a bounded time, and the integration tests (network namespaces,
# the real dataplane on veths, real chronyd/ntpdig). Run as root on Debian
# 12; installs what it needs. Ends with the line "N passed, N failed",
# counting test cases (GoogleTest cases, fuzz targets, integration cases).
#
#   FUZZ_SECONDS=30 (per target)   SKIP_FUZZ=1   SKIP_INTEGRATION=1
set -uo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
build=${BUILD_DIR:-$here/build}
export BUILD_DIR=$build
"$here/deploy/bootstrap.sh" || { echo "0 passed, 1 failed"; exit 1; }

passed=0
failed=0
add() { passed=$((passed + $1)); failed=$((failed + $2)); }

echo "== unit tests"
meson test -C "$build" --suite unit --print-errorlogs --num-processes 2 >"$build/unit.log" 2>&1
tail -n 12 "$build/unit.log"
read -r p f < <(python3 "$here/tests/tools/junit_count.py" "$build/meson-logs/testlog.junit.xml")
echo "unit: $p passed, $f failed"
add "$p" "$f"

if [ -z "${SKIP_FUZZ:-}" ] && [ -x "$here/tests/fuzz/run.sh" ]; then
  echo "== fuzzing (${FUZZ_SECONDS:-30} s per target)"
  out=$("$here/tests/fuzz/run.sh" "${FUZZ_SECONDS:-30}" 2>&1)
  echo "$out" | grep -E "^fuzz " || echo "$out" | tail -20
  p=$(echo "$out" | grep -cE "^fuzz .*: ok")
  f=$(echo "$out" | grep -cE "^fuzz .*: FAILED")
  [ "$p" -eq 0 ] && [ "$f" -eq 0 ] && f=1  # the fuzz build itself failed
  echo "fuzz: $p passed, $f failed"
  add "$p" "$f"
fi

if [ -z "${SKIP_INTEGRATION:-}" ]; then
  echo "== integration tests"
  for t in "$here"/tests/integration/test_*.py; do
    out=$(/usr/bin/python3 "$here/tests/tools/unittest_count.py" "$t" 2>&1)
    echo "$out" | grep -vE "^counts " 
    read -r _ _ p f < <(echo "$out" | grep -E "^counts " | tail -1)
    [ -z "${p:-}" ] && { p=0; f=1; }
    add "$p" "$f"
  done
fi

leftover=$(ip netns list 2>/dev/null | grep -cE "^ntp")
[ "$leftover" -gt 0 ] && { echo "tests left $leftover network namespaces behind"; add 0 1; }

echo
echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
