#!/usr/bin/env bash
# Installs every Debian 12 package that building, testing and the demo need,
# then configures the build directory. Idempotent; run as root.
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)

packages=(
  # build
  build-essential meson ninja-build pkg-config
  libdpdk-dev libspdlog-dev libtomlplusplus-dev libcpp-httplib-dev nlohmann-json3-dev
  libgtest-dev libgmock-dev libbenchmark-dev nettle-dev libgnutls28-dev
  # fuzzing (libFuzzer ships with clang's runtime)
  clang libclang-rt-14-dev
  # tests and demo: real NTP peers, namespaces, packet crafting
  chrony ntpsec-ntpdig openssl iproute2 iputils-ping ethtool tcpdump python3 python3-scapy procps
  # what the unpacked NTPsec ntpd needs at run time (below): ntpq's python3-ntp, capsh
  python3-ntp libcap2-bin
)

missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done

if [ ${#missing[@]} -gt 0 ]; then
  [ "$(id -u)" -eq 0 ] || { echo "bootstrap: need root to install: ${missing[*]}" >&2; exit 1; }
  echo "bootstrap: installing ${missing[*]}"
  # The chrony package would start a system chronyd that steers the host clock.
  # Tests only ever run their own chronyd -x, so keep package scripts from
  # starting any service while we install.
  policy=/usr/sbin/policy-rc.d
  created_policy=0
  if [ ! -e "$policy" ]; then
    printf '#!/bin/sh\nexit 101\n' > "$policy"; chmod +x "$policy"; created_policy=1
  fi
  trap '[ "$created_policy" = 1 ] && rm -f "$policy"' EXIT
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

# NTPsec's ntpd as a second NTS client (test_nts_ntpsec.py). Debian's ntpsec
# package conflicts with chrony, which the tests need, and its scripts would
# start a system ntpd that steers the host clock: so the package is only
# downloaded and its ntpd and ntpq unpacked into /opt/ntpsec-client, never
# installed. The test runs that ntpd without CAP_SYS_TIME (capsh) and with
# `disable ntp`. Skipped when already there; without it the test skips.
ntpsec_dir=/opt/ntpsec-client
if [ ! -x "$ntpsec_dir/usr/sbin/ntpd" ] || [ ! -x "$ntpsec_dir/usr/bin/ntpq" ]; then
  if [ "$(id -u)" -ne 0 ]; then
    echo "bootstrap: note: no $ntpsec_dir (test_nts_ntpsec skips); run as root to unpack it" >&2
  else
    dl=$(mktemp -d)
    chmod 755 "$dl"  # apt-get download fetches as _apt
    if (cd "$dl" && { apt-get download -qq ntpsec 2>/dev/null ||
                      { apt-get update -qq && apt-get download -qq ntpsec; }; }) &&
       dpkg-deb -x "$dl"/ntpsec_*.deb "$dl/x"; then
      rm -rf "$ntpsec_dir.tmp"
      install -d "$ntpsec_dir.tmp/usr/sbin" "$ntpsec_dir.tmp/usr/bin"
      install -m 755 "$dl/x/usr/sbin/ntpd" "$ntpsec_dir.tmp/usr/sbin/ntpd"
      install -m 755 "$dl/x/usr/bin/ntpq" "$ntpsec_dir.tmp/usr/bin/ntpq"
      cp "$dl/x/usr/share/doc/ntpsec/copyright" "$ntpsec_dir.tmp/" 2>/dev/null || true
      dpkg-deb -f "$dl"/ntpsec_*.deb Version > "$ntpsec_dir.tmp/VERSION"
      rm -rf "$ntpsec_dir" && mv "$ntpsec_dir.tmp" "$ntpsec_dir"
      echo "bootstrap: unpacked ntpsec $(cat "$ntpsec_dir/VERSION") (ntpd, ntpq) into $ntpsec_dir"
    else
      echo "bootstrap: note: could not fetch the ntpsec package; test_nts_ntpsec skips" >&2
    fi
    rm -rf "$dl"
  fi
fi

# The unprivileged user ntp-control runs as under systemd
# (deploy/systemd/ntp-appliance.sysusers.conf says the same for
# systemd-sysusers); the root dataplane gives it the shared memory
# (channel.control_user = "ntp-appliance").
if ! getent passwd ntp-appliance >/dev/null; then
  if [ "$(id -u)" -eq 0 ]; then
    echo "bootstrap: creating system user ntp-appliance"
    useradd --system --user-group --home-dir /var/lib/ntp-appliance --no-create-home \
      --shell /usr/sbin/nologin --comment "NTP appliance control plane" ntp-appliance
  else
    echo "bootstrap: note: no user ntp-appliance (the systemd units run ntp-control as it); run as root to create it" >&2
  fi
fi

# The daemons' lock directory (channel.lock_dir) and the Unix stats
# sockets': root's, group ntp-appliance, 1770, as
# deploy/systemd/ntp-appliance.tmpfiles.conf makes it at boot under systemd
# (/run is a tmpfs: after a reboot without systemd, the dataplane makes it
# when missing, 1770 for channel.control_user's group, else 0755). Tests
# never use it: each lab has its own.
if [ "$(id -u)" -eq 0 ] && getent group ntp-appliance >/dev/null; then
  install -d -m 1770 -o root -g ntp-appliance /run/ntp-appliance
fi

# A chronyd started by the package (on systems without policy-rc.d support)
# would fight over the host clock; tests must never run next to one.
if command -v systemctl >/dev/null 2>&1 && systemctl is-active --quiet chrony 2>/dev/null; then
  echo "bootstrap: note: the system chrony service is running; tests do not use it" >&2
fi

build=${BUILD_DIR:-$here/build}
if [ ! -f "$build/build.ninja" ]; then
  meson setup "$build" "$here" --buildtype=release >/dev/null
fi
log=$(mktemp)
if ! ninja -C "$build" -j"${JOBS:-2}" >"$log" 2>&1; then
  cat "$log"; rm -f "$log"
  echo "bootstrap: build failed" >&2
  exit 1
fi
grep -q "warning:" "$log" && grep -B2 -A6 "warning:" "$log" | head -60 >&2
rm -f "$log"
echo "bootstrap: built in $build"
