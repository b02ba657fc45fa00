#!/usr/bin/env bash
# The seed's example (../shared/seed/ntp-peer-mode-example.md) on this host:
# each device is a network namespace on one bridge, running ntp-dataplane
# (DPDK net_af_packet on a veth, --no-huge) and ntp-control with the
# device's configuration from deploy/seed/. A client namespace queries the
# master clock with ntpdig; the demo ends with `ntpctl status`.
#
# Run as root on Debian 12: installs what it needs, builds, runs, and removes
# everything it created on exit (also on Ctrl-C or failure). The addresses
# exist only inside the namespaces; the host clock is never touched (the
# devices run the `virtual` clock source).
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
build=${BUILD_DIR:-$here/build}
"$here/deploy/bootstrap.sh"

tag="ntpdemo$$"
lan="$tag-lan"
work=$(mktemp -d /tmp/ntp-demo.XXXXXX)
namespaces=()
pids=()
# The seed's shared key 1 (deploy/seed/*.toml [auth]): HMAC-SHA256, the
# vendor's `authentication-mode hmac-sha256`. An operator's file is used as
# it is; when there is none, one with a random secret is made for the demo
# (mode 0600, root's: the daemons' user here) and removed at exit.
keys=/etc/ntp-appliance/seed.keys
made_keys=
made_keys_dir=

cleanup() {
  set +e
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null; done
  for p in "${pids[@]}"; do wait "$p" 2>/dev/null; done
  for ns in "${namespaces[@]}"; do
    for p in $(ip netns pids "$ns" 2>/dev/null); do kill -9 "$p" 2>/dev/null; done
    ip netns del "$ns" 2>/dev/null
  done
  if [ -n "${KEEP_LOGS:-}" ]; then echo "logs kept in $work"; else rm -rf "$work"; fi
  if [ -n "$made_keys" ]; then rm -f "$keys"; fi
  if [ -n "$made_keys_dir" ]; then rmdir "$(dirname "$keys")" 2>/dev/null; fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

step() { printf '\n== %s\n' "$*"; }

# The served error bound (issue 8): |served - true| <= root delay / 2 + root
# dispersion, the host clock being the truth (DeviceC's virtual clock starts
# on it). Checked on every sample the demo takes of DeviceD and DeviceE;
# tests/integration/ntpclient.py says what a sample can prove.
ntpclient="$here/tests/integration/ntpclient.py"
bound_failures=0
bound_status() {  # bound_status DEVICE: the bound of a /status sample (served clock minus host clock)
  local out rc=0
  out=$(ip netns exec "$tag-$1" python3 "$ntpclient" --status http://127.0.0.1:9123/status --check 2>/dev/null) || rc=$?
  if [ -z "$out" ]; then printf '    %s bound: no /status yet\n' "$1"; return 0; fi
  printf '    %s bound: %s\n' "$1" "$(python3 -c 'import json,sys; j=json.loads(sys.argv[1]); print(
    "error %.1f us within %.1f us (ratio %.3f)" % (abs(j["clock_minus_host_ns"]) / 1e3, j["bound_ns"] / 1e3,
    j["bound_ratio"]) if j["synchronized"] else "unsynchronized: no bound claimed")' "$out")"
  if [ "$rc" != 0 ]; then echo "demo: $1 served time beyond its error bound: $out"; bound_failures=$((bound_failures + 1)); fi
}
bound_wire() {  # bound_wire ADDRESS COUNT: COUNT queries from the client, each answer's bound
  local out rc=0
  out=$(ip netns exec "$tag-client" taskset -c 0 python3 "$ntpclient" "$1" --count "$2" --interval 0.2 --check) || rc=$?
  python3 -c 'import json,sys
xs = [json.loads(l) for l in sys.argv[1].splitlines()]
ok = [x for x in xs if x["reply"] and x["leap"] != 3]
w = max(ok, key=lambda x: x["bound_ratio"]) if ok else None
print("    %s: %d of %d answered synchronized; " % (sys.argv[2], len(ok), len(xs)) + (
    "worst: error >= %.1f us within %.1f us (ratio %.3f)" % (w["error_min_ns"] / 1e3, w["bound_ns"] / 1e3,
    w["bound_ratio"]) if w else "no bound claimed"))' "$out" "$1"
  if [ "$rc" != 0 ]; then echo "demo: $1 answered with time beyond its error bound"; bound_failures=$((bound_failures + 1)); fi
}

netns() {  # netns NAME: a namespace with loopback up and no IPv6 chatter
  ip netns add "$1"
  namespaces+=("$1")
  ip -n "$1" link set lo up
  ip netns exec "$1" sysctl -q -w net.ipv6.conf.all.disable_ipv6=1 net.ipv6.conf.default.disable_ipv6=1
}

attach() {  # attach NS IFNAME: a veth from the bridge into NS, named IFNAME
  local n=${#namespaces[@]}
  ip link add "$tag-b$n" type veth peer name "$tag-d$n"
  ip link set "$tag-b$n" netns "$lan"
  ip link set "$tag-d$n" netns "$1"
  ip -n "$1" link set "$tag-d$n" name "$2"
  ip -n "$lan" link set "$tag-b$n" master br0
  # veth leaves UDP checksums to "hardware" that is not there; a NIC would
  # fill them in. Compute them in software so the dataplane sees real ones.
  ip netns exec "$lan" ethtool -K "$tag-b$n" tx off >/dev/null
  ip netns exec "$1" ethtool -K "$2" tx off >/dev/null
  ip -n "$lan" link set "$tag-b$n" up
  ip -n "$1" link set "$2" up
}

device() {  # device NAME IFNAME: start DeviceNAME's dataplane and control plane
  local name=$1 ifname=$2 ns="$tag-$1" conf="$here/deploy/seed/$1.toml"
  netns "$ns"
  attach "$ns" "$ifname"
  # The dataplane owns this port: no kernel address, no kernel ARP.
  ip -n "$ns" link set "$ifname" arp off
  # Everything but the dataplane's worker stays on CPU 0 (software
  # timestamps are taken by the busy-polling worker on CPU 1).
  ip netns exec "$ns" "$build/dataplane/ntp-dataplane" --config "$conf" >"$work/$name-dataplane.log" 2>&1 &
  pids+=($!)
  wait_log "$work/$name-dataplane.log" "worker 0 running" "$name's dataplane"
  ip netns exec "$ns" taskset -c 0 "$build/control/ntp-control" --config "$conf" >"$work/$name-control.log" 2>&1 &
  pids+=($!)
  wait_log "$work/$name-control.log" "serving " "$name's control plane"
  echo "$name: dataplane and control plane up (logs: $work/$name-*.log)"
}

wait_log() {  # wait_log FILE TEXT WHAT: poll until FILE contains TEXT
  for _ in $(seq 1 300); do
    grep -q "$2" "$1" 2>/dev/null && return 0
    if ! kill -0 "${pids[-1]}" 2>/dev/null; then
      echo "demo: $3 exited:"; tail -20 "$1"; exit 1
    fi
    sleep 0.1
  done
  echo "demo: timed out waiting for $3:"; tail -20 "$1"; exit 1
}

step "keys: $keys (key 1, HMAC-SHA256) signs DeviceD's polls of DeviceC and the DeviceD-DeviceE peering"
if [ ! -e "$keys" ]; then
  if [ ! -d "$(dirname "$keys")" ]; then install -d -m 0755 "$(dirname "$keys")"; made_keys_dir=1; fi
  secret=$(od -An -tx1 -N32 /dev/urandom | tr -d ' \n')
  made_keys=1
  (umask 077; printf '# deploy/demo.sh: the seed demo key, removed at exit\n1 SHA256 HEX:%s\n' "$secret" >"$keys")
  echo "  made $keys with a random secret (removed at exit)"
else
  echo "  using the existing $keys"
fi

step "network: namespaces on a bridge (10.0.1.0/24 exists only inside them)"
netns "$lan"
ip -n "$lan" link add br0 type bridge
ip -n "$lan" link set br0 up
netns "$tag-client"
attach "$tag-client" eth0
ip -n "$tag-client" addr add 10.0.1.100/24 dev eth0

ctl() {  # ctl DEVICE ARGS...: ntpctl inside the device's namespace
  local name=$1; shift
  ip netns exec "$tag-$name" "$build/control/ntpctl" --config "$here/deploy/seed/$name.toml" "$@"
}

step "DeviceC: ntp-service refclock-master 2 (deploy/seed/DeviceC.toml)"
device DeviceC dpC
step "DeviceD: ntp-service unicast-server 10.0.1.31 authentication-keyid 1 (deploy/seed/DeviceD.toml)"
device DeviceD dpD
step "DeviceE: ntp-service unicast-peer 10.0.1.32 authentication-keyid 1 (deploy/seed/DeviceE.toml)"
device DeviceE dpE

step "each device answers ping on the LAN (its dataplane answers ARP and ICMP echo itself)"
for pair in "DeviceD 10.0.1.31" "DeviceE 10.0.1.32" "DeviceC 10.0.1.33"; do
  set -- $pair
  # The dataplanes own the addresses; the client namespace asks on their behalf
  # from the same LAN, and each dataplane answers ARP and echo itself.
  ip netns exec "$tag-client" ping -c 2 -i 0.2 -W 1 "$2" | grep -E "bytes from|packet loss"
done

step "client 10.0.1.100: ntpdig 10.0.1.31 (DeviceC)"
ip netns exec "$tag-client" taskset -c 0 ntpdig -p 4 -t 2 10.0.1.31

step "waiting for DeviceE to synchronize (DeviceC -> DeviceD -> DeviceE), at most ${DEMO_TIMEOUT:-240} s"
start=$(date +%s)
while :; do
  d=$(ctl DeviceD status 2>/dev/null | sed -n 's/^ clock stratum: //p')
  e=$(ctl DeviceE status 2>/dev/null | sed -n 's/^ clock stratum: //p')
  e_sync=$(ctl DeviceE status 2>/dev/null | grep -c "synchronization state: clock synchronized" || true)
  printf '  %3ds: DeviceD stratum %s, DeviceE stratum %s\n' $(( $(date +%s) - start )) "${d:-?}" "${e:-?}"
  bound_status DeviceD; bound_status DeviceE
  [ "$e" = 4 ] && [ "$e_sync" = 1 ] && break
  if [ $(( $(date +%s) - start )) -ge "${DEMO_TIMEOUT:-240}" ]; then
    echo "demo: DeviceE did not synchronize within ${DEMO_TIMEOUT:-240} s; DeviceD says:"
    ctl DeviceD status; ctl DeviceD sessions
    echo "logs: $work"; KEEP_LOGS=1
    exit 1
  fi
  sleep 5
done

step "letting the offsets settle (at most 90 s)"
offset_us() { ctl "$1" status 2>/dev/null | sed -n 's/^ clock offset: \(-\{0,1\}\)\([0-9.]*\) ms/\2/p' | awk '{printf "%d", $1 * 1000}'; }
for _ in $(seq 1 18); do
  d=$(offset_us DeviceD); e=$(offset_us DeviceE)
  printf '  DeviceD offset %s us, DeviceE offset %s us\n' "${d:-?}" "${e:-?}"
  bound_status DeviceD; bound_status DeviceE; bound_wire 10.0.1.32 5
  [ -n "$d" ] && [ -n "$e" ] && [ "$d" -lt 50 ] && [ "$e" -lt 50 ] && break
  sleep 5
done

step "client 10.0.1.100: ntpdig 10.0.1.32 (DeviceD, stratum 3)"
ip netns exec "$tag-client" taskset -c 0 ntpdig -p 4 -t 2 10.0.1.32

step "DeviceD: ntpctl status (display ntp-service status)"
ctl DeviceD status
step "DeviceE: ntpctl status (display ntp-service status)"
ctl DeviceE status
step "DeviceD: ntpctl sessions (display ntp-service sessions)"
ctl DeviceD sessions
step "DeviceE: ntpctl sessions (display ntp-service sessions)"
ctl DeviceE sessions

step "authentication: every session of DeviceD and DeviceE verified with key 1"
for dev in DeviceD DeviceE; do
  ok=$(ctl "$dev" sessions | grep -c "authentication: ok" || true)
  all=$(ctl "$dev" sessions | grep -c "clock source: " || true)
  echo "  $dev: $ok of $all sessions authentication: ok"
  if [ "$ok" != "$all" ] || [ "$all" = 0 ]; then echo "demo: $dev has a session that is not authenticated"; exit 1; fi
done

step "the served error bound on every sample of DeviceD and DeviceE"
bound_wire 10.0.1.32 20
bound_status DeviceD; bound_status DeviceE
if [ "$bound_failures" != 0 ]; then
  echo "demo: $bound_failures sample(s) of DeviceD/DeviceE served time beyond the error bound they claimed"
  exit 1
fi
echo "  every sample within its bound"
