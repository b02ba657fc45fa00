#!/usr/bin/env bash
# Builds and runs the benchmarks and prints a short summary of the figures.
# Figures, not tests: it fails only when a benchmark cannot run or the
# worker benchmark finds a wrong reply.
#
#   tests/bench/run.sh
#
# Environment: BENCH_BUILD_DIR (default <repo>/build; configured as a
# release build if missing), BENCH_PACKETS (worker loop, default 50000000),
# BENCH_CPU (CPU to run on, default the last one), BENCH_NO_STRACE=1 (skip
# the system-call count), BENCH_OUT (raw outputs, default
# $BENCH_BUILD_DIR/bench-out).
set -u -o pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
root=$(cd "$here/../.." && pwd)
build=${BENCH_BUILD_DIR:-$root/build}
out=${BENCH_OUT:-$build/bench-out}
packets=${BENCH_PACKETS:-50000000}
ncpu=$(nproc)
cpu=${BENCH_CPU:-$((ncpu - 1))}

if [ ! -f "$build/build.ninja" ]; then
  meson setup "$build" "$root" -Dbuildtype=release >/dev/null || { echo "bench: meson setup failed" >&2; exit 2; }
fi
mkdir -p "$out"
if ! ninja -C "$build" tests/bench/bench_responder tests/bench/bench_worker tests/bench/bench_nic_clock \
    tests/bench/bench_ratelimit >"$out/build.log" 2>&1; then
  tail -n 30 "$out/build.log" >&2
  echo "bench: build failed (is libbenchmark-dev installed? log: $out/build.log)" >&2
  exit 2
fi
buildtype=$(meson introspect --buildoptions "$build" 2>/dev/null |
  python3 -c 'import json,sys; print({o["name"]: o["value"] for o in json.load(sys.stdin)}.get("buildtype", "?"))')

# How busy is the machine besides us: CPU use of everything over 2 s, and
# the busiest processes.
busy_pct() {
  local a b
  read -ra a < /proc/stat; sleep 2; read -ra b < /proc/stat
  local idle=$(( (b[4] + b[5]) - (a[4] + a[5]) )) total=0 i
  for i in 1 2 3 4 5 6 7 8; do total=$(( total + b[i] - a[i] )); done
  echo $(( total > 0 ? 100 * (total - idle) / total : 0 ))
}
busy_before=$(busy_pct)
# shellcheck disable=SC2009  # the busiest processes, not one by name
top_before=$(ps -eo pcpu=,comm= --sort=-pcpu | grep -vwE "ps|awk|sed|head|sleep" | awk '$1 > 5 {printf "%s %s%%, ", $2, $1}' | sed 's/, $//')

echo "== bench_responder (Google Benchmark, CPU $cpu, median of 5)" >&2
taskset -c "$cpu" "$build/tests/bench/bench_responder" --benchmark_repetitions=5 --benchmark_min_time=0.5 \
  --benchmark_report_aggregates_only=true --benchmark_out="$out/bench_responder.json" --benchmark_out_format=json \
  >"$out/bench_responder.txt" 2>&1 || { cat "$out/bench_responder.txt" >&2; echo "bench: bench_responder failed" >&2; exit 1; }

echo "== bench_nic_clock (Google Benchmark, CPU $cpu, median of 5)" >&2
taskset -c "$cpu" "$build/tests/bench/bench_nic_clock" --benchmark_repetitions=5 --benchmark_min_time=0.3 \
  --benchmark_report_aggregates_only=true --benchmark_out="$out/bench_nic_clock.json" --benchmark_out_format=json \
  >"$out/bench_nic_clock.txt" 2>&1 || { cat "$out/bench_nic_clock.txt" >&2; echo "bench: bench_nic_clock failed" >&2; exit 1; }

echo "== bench_ratelimit (Google Benchmark, CPU $cpu, median of 5)" >&2
taskset -c "$cpu" "$build/tests/bench/bench_ratelimit" --benchmark_repetitions=5 --benchmark_min_time=0.3 \
  --benchmark_report_aggregates_only=true --benchmark_out="$out/bench_ratelimit.json" --benchmark_out_format=json \
  >"$out/bench_ratelimit.txt" 2>&1 || { cat "$out/bench_ratelimit.txt" >&2; echo "bench: bench_ratelimit failed" >&2; exit 1; }

echo "== bench_worker ($packets packets, CPU $cpu, software timestamps)" >&2
"$build/tests/bench/bench_worker" --packets "$packets" --lcore "$cpu" >"$out/bench_worker.txt" 2>&1
worker_rc=$?
echo "== bench_worker ($packets packets, CPU $cpu, hardware timestamps)" >&2
"$build/tests/bench/bench_worker" --packets "$packets" --lcore "$cpu" --hw >"$out/bench_worker_hw.txt" 2>&1
worker_hw_rc=$?
busy_after=$(busy_pct)

syscall_line="system calls in the hot loop: not measured (BENCH_NO_STRACE=1 or no strace)"
if [ -z "${BENCH_NO_STRACE:-}" ] && command -v strace >/dev/null; then
  echo "== bench_worker under strace -f (10000000 packets)" >&2
  strace -f -qq -o "$out/strace.log" "$build/tests/bench/bench_worker" --packets 10000000 --lcore "$cpu" \
    >"$out/bench_worker_strace.txt" 2>&1
  syscall_line=$(python3 - "$out/strace.log" <<'EOF'
import re, sys
lines = open(sys.argv[1], errors="replace").read().splitlines()
begin = next((i for i, l in enumerate(lines) if "/bench-worker/measure-begin" in l), None)
end = next((i for i, l in enumerate(lines) if "/bench-worker/measure-end" in l), None)
if begin is None or end is None:
    print("system calls in the hot loop: markers not found in the strace log")
    sys.exit()
worker = lines[begin].split()[0]
calls = {}
for l in lines[begin + 1:end]:
    if "resumed>" in l or l.split(maxsplit=1)[1].startswith(("---", "+++")):
        continue
    pid, rest = l.split(maxsplit=1)
    name = re.match(r"[a-z_0-9]+", rest)
    calls.setdefault(pid, []).append(name.group(0) if name else "?")
mine = calls.get(worker, [])
others = sum(len(v) for p, v in calls.items() if p != worker)
detail = ", ".join(sorted(set(mine))) if mine else ""
print(f"system calls in the hot loop (10 M packets, strace -f): worker thread {len(mine)}"
      f"{' (' + detail + ')' if detail else ''}, other EAL threads {others}")
EOF
)
fi

cpu_model=$(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -n 1)
virt=$(grep -qw hypervisor /proc/cpuinfo && echo ", virtual machine" || echo "")
gov=$(cat "/sys/devices/system/cpu/cpu$cpu/cpufreq/scaling_governor" 2>/dev/null || echo "n/a")

echo
echo "== benchmark summary"
echo "machine: $cpu_model, $ncpu CPUs$virt, governor $gov; benchmarks pinned to CPU $cpu; build $buildtype"
if [ "$busy_before" -le 10 ] && [ "$busy_after" -le 10 ]; then
  echo "load: machine otherwise idle (all CPUs ${busy_before}% busy before, ${busy_after}% after)"
else
  echo "load: machine NOT idle (all CPUs ${busy_before}% busy before, ${busy_after}% after${top_before:+; $top_before}): figures are pessimistic"
fi
python3 - "$out/bench_responder.json" <<'EOF'
import json, sys
d = json.load(open(sys.argv[1]))
med = {}
for b in d["benchmarks"]:
    if b.get("aggregate_name") == "median":
        unit = {"ns": 1, "us": 1e3, "ms": 1e6}[b["time_unit"]]
        med[b["run_name"]] = (b["real_time"] * unit, b["cpu_time"] * unit)
def ns(name): return med[name][0]
respond, frame = ns("BM_respond"), ns("BM_handle_frame_stamp")
r48, r90 = ns("BM_restore_48"), ns("BM_restore_90")
verdict = "meets" if respond - r48 < 50 else "MISSES"
print(f"respond (chronyd request): {respond - r48:.1f} ns/packet ({respond:.1f} measured - {r48:.1f} restore memcpy); "
      f"target < 50 ns: {verdict}")
print(f"handle_frame + stamp_transmit (90-byte frame): {frame - r90:.1f} ns/packet ({frame:.1f} - {r90:.1f} memcpy)")
print(f"reply_params: {ns('BM_reply_params'):.1f} ns per burst")
print(f"ntp_from_unix_ns: {ns('BM_ntp_from_unix_ns'):.2f} ns, model_to_ns: {ns('BM_model_to_ns'):.2f} ns, "
      f"read_tsc: {ns('BM_read_tsc'):.1f} ns, a whole timestamp (TSC + model + wire): {ns('BM_tx_timestamp'):.1f} ns")
for name, (real, cpu) in sorted(med.items()):
    if real > 1.2 * cpu:
        print(f"note: {name} wall {real:.1f} ns vs CPU {cpu:.1f} ns: the process was preempted (machine busy)")
EOF
python3 - "$out/bench_nic_clock.json" <<'EOF'
import json, sys
d = json.load(open(sys.argv[1]))
for b in d["benchmarks"]:
    if b.get("aggregate_name") == "median":
        unit = {"ns": 1, "us": 1e3, "ms": 1e6}[b["time_unit"]]
        if b.get("items_per_second"):  # a batch of conversions per iteration
            target = " (NIC stamp -> UTC; target < 10 ns)" if b["run_name"] == "nic_to_tsc+model_to_ns" else ""
            print(f"{b['run_name']}: {1e9 / b['items_per_second']:.2f} ns per packet{target}")
        else:
            print(f"{b['run_name']}: {b['real_time'] * unit:.0f} ns per call (main lcore, every 100 ms per port)")
EOF
python3 - "$out/bench_ratelimit.json" <<'EOF'
import json, sys
d = json.load(open(sys.argv[1]))
parts = []
for b in d["benchmarks"]:
    if b.get("aggregate_name") == "median":
        unit = {"ns": 1, "us": 1e3, "ms": 1e6}[b["time_unit"]]
        parts.append(f"{b['run_name'].removeprefix('BM_')} {b['cpu_time'] * unit:.1f}")
print("rate limiter, ns per call (1M-client table): " + ", ".join(parts))
EOF
grep -E "^(worker loop|harness|replies checked|counters|allocations|context switches)" "$out/bench_worker.txt"
grep -E "^(worker loop|timestamps|allocations)" "$out/bench_worker_hw.txt"
echo "$syscall_line"
if [ $worker_rc -ne 0 ] || [ $worker_hw_rc -ne 0 ]; then
  tail -n 5 "$out/bench_worker.txt" "$out/bench_worker_hw.txt"
  echo "bench: bench_worker failed (exit $worker_rc, --hw $worker_hw_rc)"
  exit 1
fi
echo "raw outputs: $out"
