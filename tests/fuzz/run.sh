#!/usr/bin/env bash
# Builds the libFuzzer targets (clang, ASan + UBSan) and runs each for a
# bounded time from a copy of its seed corpus (the repository is never
# written). Prints one line per target and exits non-zero if any failed.
#
#   tests/fuzz/run.sh [seconds_per_target]      (default 30)
#
# Environment: FUZZ_BUILD_DIR (default <repo>/build-fuzz), FUZZ_OUT_DIR
# (logs and crash files, default $FUZZ_BUILD_DIR/fuzz-out), CXX/CC for the
# configure step (default clang++/clang), FUZZ_JOBS (ninja -j, default 2),
# FUZZ_TARGETS (default: all).
set -u -o pipefail

secs=${1:-30}
case $secs in ''|*[!0-9]*) echo "usage: $0 [seconds_per_target]" >&2; exit 2 ;; esac
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
root=$(cd "$here/../.." && pwd)
build=${FUZZ_BUILD_DIR:-$root/build-fuzz}
# Relative to where it was called from: the script cds before it runs a target.
case $build in /*) ;; *) build=$PWD/$build ;; esac
out=${FUZZ_OUT_DIR:-$build/fuzz-out}
# FUZZ_TARGETS (space-separated) runs a subset.
read -r -a targets <<< "${FUZZ_TARGETS:-fuzz_ntp_parse fuzz_responder fuzz_frame fuzz_config fuzz_leap_file fuzz_engine fuzz_channel_abi fuzz_keys fuzz_nts fuzz_nts_ke fuzz_nts_client}"

# Instrument the whole project (the libraries under test above all) for
# coverage and ASan/UBSan; the fuzz targets add the libFuzzer runtime.
configure_args=(-Dfuzz=true -Dbuildtype=debugoptimized "-Db_sanitize=address,undefined" -Db_lundef=false
                "-Dcpp_args=-fsanitize=fuzzer-no-link -fno-sanitize-recover=all")
if [ ! -f "$build/build.ninja" ]; then
  echo "fuzz: configuring $build with clang" >&2
  CXX=${CXX:-clang++} CC=${CC:-clang} meson setup "$build" "$root" "${configure_args[@]}" >"${TMPDIR:-/tmp}/fuzz-setup.$$.log" 2>&1 || {
    cat "${TMPDIR:-/tmp}/fuzz-setup.$$.log" >&2
    echo "fuzz: meson setup failed" >&2
    exit 2
  }
  rm -f "${TMPDIR:-/tmp}/fuzz-setup.$$.log"
elif ! meson introspect --buildoptions "$build" 2>/dev/null | python3 -c '
import json, sys
opts = {o["name"]: o["value"] for o in json.load(sys.stdin)}
sys.exit(0 if opts.get("fuzz") is True else 1)'; then
  echo "fuzz: enabling -Dfuzz=true in $build" >&2
  meson configure "$build" "${configure_args[@]}" >&2 || exit 2
fi
if ! ninja -C "$build" -j "${FUZZ_JOBS:-2}" "${targets[@]/#/tests/fuzz/}" >"$build/fuzz-build.log" 2>&1; then
  tail -n 40 "$build/fuzz-build.log" >&2
  echo "fuzz: build failed (full log: $build/fuzz-build.log)" >&2
  exit 2
fi

export ASAN_OPTIONS=${ASAN_OPTIONS:-abort_on_error=1:detect_leaks=1}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-halt_on_error=1:print_stacktrace=1}
mkdir -p "$out"
work=$(mktemp -d "${TMPDIR:-/tmp}/fuzz-corpus.XXXXXX")
trap 'rm -rf "$work"' EXIT

failed=0
for t in "${targets[@]}"; do
  name=${t#fuzz_}
  corpus="$work/$t"
  mkdir -p "$corpus" "$out/$t"
  cp "$here/corpus/$t/"* "$corpus/" 2>/dev/null
  # The real leap-seconds.list is a golden file of the unit tests: one copy.
  [ "$t" = fuzz_leap_file ] && cp "$root/tests/support/golden/leap-seconds.list" "$corpus/"
  extra=()
  [ -f "$here/$t.dict" ] && extra+=("-dict=$here/$t.dict")
  log="$out/$t.log"
  # libFuzzer stops itself at max_total_time; the outer timeout only
  # guards against a hang in the harness itself.
  ( cd "$out/$t" && timeout -k 10 $((secs + 120)) "$build/tests/fuzz/$t" -max_total_time="$secs" -timeout=10 \
      -print_final_stats=1 -artifact_prefix="$out/$t/" "${extra[@]}" "$corpus" ) >"$log" 2>&1
  rc=$?
  execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -n 1)
  crash=$(sed -n 's/.*Test unit written to \(.*\)$/\1/p' "$log" | tail -n 1)
  if [ $rc -eq 0 ] && [ -n "$execs" ]; then
    echo "fuzz $name: ok (${execs} execs)"
  else
    failed=1
    echo "fuzz $name: FAILED (exit $rc) ${crash:+crash file: $crash }log: $log"
    grep -m 3 -E 'invariant violated|runtime error|ERROR: (AddressSanitizer|LeakSanitizer|libFuzzer)' "$log" | sed 's/^/    /'
  fi
done
exit $failed
