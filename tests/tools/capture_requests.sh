#!/usr/bin/env bash
# Captures real NTP client requests from ntpdig (ntpsec) and chronyd and
# writes them as golden test vectors to tests/support/golden/requests.h.
#
# Run as root:  tests/tools/capture_requests.sh [output.h]
#
# Two network namespaces (unique names: ntpcap-<pid>-a/b) are joined by a veth
# pair, 10.99.0.1/24 in a, 10.99.0.2/24 in b. tcpdump listens in a; the clients
# run in b and send to 10.99.0.1. Nothing answers (the kernel in a returns ICMP
# port unreachable), so only the requests are captured. chronyd always runs
# with -x (never touches the host clock), with its own pid file, command
# socket and no UDP command port, so it clashes with nothing on the host.
# Nothing leaves the namespaces. Namespaces, processes and temporary files
# are removed on exit, also on failure or interruption.
#
# Needs: iproute2, tcpdump, ntpdig (Debian ntpsec-ntpdig), chrony,
# /usr/bin/python3 with scapy (python3-scapy).
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
out=${1:-$here/../support/golden/requests.h}
chrony_secs=${CHRONY_SECS:-7}   # iburst with minpoll -4: a request every 2 s

if [[ $(id -u) -ne 0 ]]; then
  echo "capture_requests.sh: must run as root (network namespaces)" >&2
  exit 1
fi
for t in ip tcpdump ntpdig chronyd /usr/bin/python3; do
  command -v "$t" >/dev/null || { echo "capture_requests.sh: missing $t" >&2; exit 1; }
done

ns_a=ntpcap-$$-a
ns_b=ntpcap-$$-b
veth_a=ncap$$a   # interface names: at most 15 characters
veth_b=ncap$$b
tmp=$(mktemp -d /tmp/ntpcap.XXXXXX)
chmod 0711 "$tmp"  # chronyd drops to its own user and must reach its socket dir
pids=()

cleanup() {
  local rc=$?
  set +e
  for p in "${pids[@]}"; do
    kill "$p" 2>/dev/null
  done
  for p in "${pids[@]}"; do
    wait "$p" 2>/dev/null
  done
  # Anything still running in the namespaces (by namespace, not by name).
  for ns in "$ns_a" "$ns_b"; do
    if ip netns list | grep -qw "$ns"; then
      for p in $(ip netns pids "$ns" 2>/dev/null); do kill -9 "$p" 2>/dev/null; done
      ip netns del "$ns" 2>/dev/null
    fi
  done
  rm -rf "$tmp"
  exit $rc
}
trap cleanup EXIT
trap 'exit 130' INT TERM

ip netns add "$ns_a"
ip netns add "$ns_b"
ip link add "$veth_a" netns "$ns_a" type veth peer name "$veth_b" netns "$ns_b"
ip -n "$ns_a" addr add 10.99.0.1/24 dev "$veth_a"
ip -n "$ns_b" addr add 10.99.0.2/24 dev "$veth_b"
ip -n "$ns_a" link set lo up
ip -n "$ns_b" link set lo up
ip -n "$ns_a" link set "$veth_a" up
ip -n "$ns_b" link set "$veth_b" up

# Starts tcpdump in ns a writing to $1 and waits until it listens.
start_capture() {
  local pcap=$1 log=$1.log
  ip netns exec "$ns_a" tcpdump -i "$veth_a" -U -n -s 0 -w "$pcap" \
    'udp and dst port 123 and src host 10.99.0.2' 2>"$log" &
  cap_pid=$!
  pids+=("$cap_pid")
  for _ in $(seq 100); do
    grep -q 'listening on' "$log" 2>/dev/null && return 0
    sleep 0.05
  done
  echo "capture_requests.sh: tcpdump did not start:" >&2
  cat "$log" >&2
  exit 1
}
stop_capture() {
  sleep 0.3
  kill -INT "$cap_pid"
  wait "$cap_pid" || true
}

# Wait for the veth link (IPv4 addresses need no DAD).
for _ in $(seq 50); do
  ip -n "$ns_b" link show "$veth_b" | grep -q 'state UP' && break
  sleep 0.1
done

# 1. ntpdig (one SNTP request; -t 1: give up after 1 s).
start_capture "$tmp/ntpdig.pcap"
ip netns exec "$ns_b" ntpdig -t 1 10.99.0.1 >"$tmp/ntpdig.out" 2>&1 || true
stop_capture

# 2. chronyd as a client (-x: never touches the clock; -d: foreground).
cat >"$tmp/chrony.conf" <<EOF
server 10.99.0.1 iburst minpoll -4 maxpoll -4
pidfile $tmp/run/chronyd.pid
bindcmdaddress $tmp/run/chronyd.sock
cmdport 0
port 0
EOF
start_capture "$tmp/chronyd.pcap"
ip netns exec "$ns_b" chronyd -x -d -f "$tmp/chrony.conf" >"$tmp/chronyd.log" 2>&1 &
chrony_pid=$!
pids+=("$chrony_pid")
# sleep in the background: "wait" returns at once on a signal, so the trap runs
sleep "$chrony_secs" &
pids+=($!)
wait $! || true
kill "$chrony_pid" 2>/dev/null || true
wait "$chrony_pid" 2>/dev/null || true
stop_capture

echo "--- ntpdig output"; cat "$tmp/ntpdig.out"
echo "--- chronyd log"; cat "$tmp/chronyd.log"

kernel=$(uname -r)
chrony_ver=$(chronyd --version | head -1)
ntpdig_ver=$(ntpdig --version 2>&1 | head -1)
chrony_pkg=$(dpkg-query -W -f '${Version}' chrony 2>/dev/null || echo '?')
ntpdig_pkg=$(dpkg-query -W -f '${Version}' ntpsec-ntpdig 2>/dev/null || echo '?')
tcpdump_ver=$(tcpdump --version 2>&1 | head -1)

mkdir -p "$(dirname "$out")"
KERNEL=$kernel CHRONY_VER="$chrony_ver ($chrony_pkg)" NTPDIG_VER="$ntpdig_ver ($ntpdig_pkg)" \
TCPDUMP_VER=$tcpdump_ver /usr/bin/python3 - "$tmp/ntpdig.pcap" "$tmp/chronyd.pcap" "$out" <<'PY'
import datetime, os, sys
from scapy.all import rdpcap, UDP, IP

def requests(path):
    out = []
    for p in rdpcap(path):
        if IP in p and UDP in p and p[UDP].dport == 123:
            # pcap times are whole microseconds: keep them exact
            out.append((round(float(p.time) * 1e6) * 1000, p[UDP].sport, bytes(p[UDP].payload)))
    return out

ntpdig = requests(sys.argv[1])
chrony = requests(sys.argv[2])
if not ntpdig:
    sys.exit("no ntpdig request captured")
if len(chrony) < 2:
    sys.exit("fewer than 2 chronyd requests captured")
chrony = chrony[:4]

def arr(name, t, sport, data):
    lines = []
    for i in range(0, len(data), 12):
        lines.append("    " + " ".join("0x%02x," % b for b in data[i:i + 12]))
    when = datetime.datetime.fromtimestamp(t / 1e9, datetime.timezone.utc).isoformat()
    return ("// %d bytes, UDP %d -> 123, captured at %s\n"
            "inline constexpr int64_t %sCaptureUnixNs = %dLL;\n"
            "inline constexpr uint8_t %s[%d] = {\n%s\n};\n"
            % (len(data), sport, when, name, t, name, len(data), "\n".join(lines)))

e = os.environ
body = []
body.append("""// Golden test vectors: real NTP client requests (UDP payloads), captured
// by tests/tools/capture_requests.sh -- do not edit by hand, re-run it.
//
// Captured %s on Linux %s, inside two network namespaces joined
// by a veth pair (10.99.0.2 -> 10.99.0.1, nothing answering), with
// %s, from:
//   ntpdig:  `ntpdig -t 1 10.99.0.1`, %s
//   chronyd: `chronyd -x -d -f conf` with `server 10.99.0.1 iburst minpoll -4
//            maxpoll -4`, %s
// The *CaptureUnixNs constants are the pcap (kernel) receive times.
#pragma once

#include <cstdint>

namespace ntp::golden {
""" % (datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d"), e["KERNEL"], e["TCPDUMP_VER"],
       e["NTPDIG_VER"], e["CHRONY_VER"]))
body.append(arr("kNtpdigRequest", *ntpdig[0]))
for i, c in enumerate(chrony):
    body.append(arr("kChronyRequest%d" % i, *c))
body.append("inline constexpr int kChronyRequestCount = %d;\n" % len(chrony))
body.append("}  // namespace ntp::golden\n")
with open(sys.argv[3], "w") as f:
    f.write("\n".join(body))
print("wrote %s: 1 ntpdig request (%d captured), %d chronyd requests"
      % (sys.argv[3], len(ntpdig), len(chrony)))
PY
