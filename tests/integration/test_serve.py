#!/usr/bin/python3
"""Issue: serve NTP from the DPDK dataplane at the configured stratum.

One appliance (DeviceC of the seed: refclock_master 2, virtual clock with no
offset) in its own namespace, its dataplane on a veth through net_af_packet;
clients in a second namespace: ntpdig, real chronyd -x, ping, raw frames.
"""
import json
import os
import re
import subprocess
import sys
import time
import unittest

sys.path.insert(0, os.path.dirname(__file__))
import netlab  # noqa: E402
from netlab import wait_for  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
PROMCHECK = os.path.join(netlab.ROOT, "tests", "tools", "promcheck.py")
SERVER_IP = "10.0.1.31"
CLIENT_IP = "10.0.1.100"


def parse_duration_s(text):
    """chronyc prints offsets like -866ns, +12us, 1.5ms, 2s."""
    m = re.fullmatch(r"([+-]?[0-9.]+)(ns|us|ms|s)", text)
    return float(m.group(1)) * {"ns": 1e-9, "us": 1e-6, "ms": 1e-3, "s": 1.0}[m.group(2)]


class Lab:
    """Server and client namespaces joined by a veth pair."""

    def __init__(self, tag, holdover_s=None, device="net_af_packet0,iface=dp0", interface_extra=""):
        self.srv = netlab.Namespace(netlab.unique(f"ntp{tag}s"))
        self.cli = netlab.Namespace(netlab.unique(f"ntp{tag}c"))
        netlab.veth_pair(self.srv, "dp0", self.cli, "cli0")
        netlab.dataplane_side(self.srv, "dp0")
        for ns, i in ((self.srv, "dp0"), (self.cli, "cli0")):
            ns.exec("ip", "link", "set", i, "mtu", "9000")
        self.cli.exec("ip", "addr", "add", f"{CLIENT_IP}/24", "dev", "cli0")
        self.dir = netlab.workdir(tag)
        sysname = netlab.unique("C")
        self.app = netlab.Appliance(self.srv, sysname, self.dir, netlab.appliance_config(
            sysname, device, f"{SERVER_IP}/24", refclock_master=2, holdover_s=holdover_s,
            interface_extra=interface_extra))
        self.app.start()
        wait_for(lambda: (self.app.status() or {}).get("system", {}).get("synchronized"), 10,
                 what="the control plane to publish a synchronized state")

    def ntpclient(self, count=1, interval=0.2, timeout=1.0, version=4):
        out = self.cli.exec("/usr/bin/python3", os.path.join(HERE, "ntpclient.py"), SERVER_IP, "--count", str(count),
                            "--interval", str(interval), "--timeout", str(timeout), "--version", str(version),
                            timeout=count * (interval + timeout) + 30).stdout
        return [json.loads(line) for line in out.splitlines()]

    def counters(self):
        st = self.app.status()
        total = {}
        for w in st["workers"]:
            for k, v in w.items():
                if k == "drops":
                    for reason, n in v.items():
                        total["drop:" + reason] = total.get("drop:" + reason, 0) + n
                elif isinstance(v, int):
                    total[k] = total.get(k, 0) + v
        return total


class ServeTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.lab = Lab("sv")
        cls.server_mac = cls.lab.app.status()["ports"][0]["mac"]

    def test_ping(self):
        r = self.lab.cli.exec("ping", "-c", "3", "-i", "0.2", "-W", "1", SERVER_IP, check=False)
        self.assertIn("3 received", r.stdout, r.stdout + r.stderr)

    def test_ntpdig_gets_stratum_2_within_1ms_of_host(self):
        # ntpdig is a Python program: its own timestamps wobble by a scheduler
        # slice on a busy machine. Like any NTP client, keep the best of a few.
        r = self.lab.cli.exec("ntpdig", "-j", "-p", "4", "-t", "2", SERVER_IP, check=False)
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        j = json.loads(r.stdout)
        self.assertEqual(j["stratum"], 2, j)
        self.assertEqual(j["leap"], "no-leap", j)
        self.assertLess(abs(float(j["offset"])), 1e-3, j)

    def test_chronyd_selects_appliance(self):
        c = netlab.Chrony(self.lab.cli, self.lab.dir, [f"server {SERVER_IP} minpoll -4 maxpoll -4 iburst"])
        try:
            def selected():
                line = [ln for ln in c.chronyc("sources").splitlines() if SERVER_IP in ln]
                return line and line[0].startswith("^*") and line[0]
            line = wait_for(selected, 30, interval=0.5, what="chronyd to select the appliance (^*)")
            self.assertEqual(int(line.split()[2]), 2, line)  # stratum column

            def offset():
                rows = [ln.split() for ln in c.chronyc("sourcestats").splitlines() if SERVER_IP in ln]
                return rows and rows[0][6] != "+0ns" and rows[0]
            # Enough samples for chrony's regression to mean something.
            row = wait_for(lambda: (r := offset()) and int(r[1]) >= 16 and r, 30, interval=0.5,
                           what="16 samples in chronyc sourcestats")
            off = parse_duration_s(row[6])
            print(f"\n  chronyd sourcestats: {' '.join(row)} -> offset {off * 1e6:.2f} us", file=sys.stderr)
            self.assertLess(abs(off), 100e-6, row)
        finally:
            c.stop()

    def test_ntpctl_status_and_metrics(self):
        out = self.lab.app.ctl("status")
        self.assertIn(" clock status: synchronized\n", out)
        self.assertIn(" clock stratum: 2\n", out)
        self.assertIn(" reference clock ID: LOCAL(0)\n", out)
        self.assertIn(" synchronization state: clock synchronized\n", out)
        metrics = self.lab.app.http("/metrics")
        r = subprocess.run(["python3", PROMCHECK, "--prefix", "ntp_"], input=metrics, capture_output=True, text=True)
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        self.assertRegex(metrics, r"(?m)^ntp_stratum 2$")

class MalformedPcapTest(unittest.TestCase):
    """Malformed frames get no answer and move the right drop counter; the
    frames operators' networks carry (802.1p priority tags, IPv4 options)
    are answered.

    On each port type the fragments are counted as what the dataplane sees:
    net_pcap hands it every fragment (ip_fragment, one each), while
    net_af_packet's kernel fanout (PACKET_FANOUT_FLAG_DEFRAG, which DPDK
    22.11 always sets) reassembles them first, and the whole datagram, an
    NTP header with 200 bytes that are no extension field, is one
    ntp_bad_length.
    """
    TAG = "mf"
    DEVICE = "net_pcap0,iface=dp0"
    FRAGMENTS_COUNTED_AS = None  # (reason, count): the fragments one each

    @classmethod
    def setUpClass(cls):
        cls.lab = Lab(cls.TAG, device=cls.DEVICE)
        cls.server_mac = cls.lab.app.status()["ports"][0]["mac"]

    def test_priority_tagged_and_ip_options_requests_answered(self):
        from scapy.all import IP, UDP, Dot1Q, Ether, Raw  # noqa: imported late: slow
        eth = Ether(dst=self.server_mac, src=self.lab.cli.exec("cat", "/sys/class/net/cli0/address").stdout.strip())
        req = bytes([0x23]) + bytes(39) + bytes.fromhex("0102030405060708")
        cases = {
            "priority tag (PCP 5, VLAN 0)": (Ether(bytes(eth)[:12] + b"\x81\x00\xa0\x00\x08\x00") /
                                             IP(src=CLIENT_IP, dst=SERVER_IP) / UDP(sport=40001, dport=123) / Raw(req)),
            "router alert option": eth / IP(src=CLIENT_IP, dst=SERVER_IP, options=b"\x94\x04\x00\x00") /
                                   UDP(sport=40002, dport=123) / Raw(req),
            "record route option": eth / IP(src=CLIENT_IP, dst=SERVER_IP, options=b"\x07\x07\x04" + bytes(5)) /
                                   UDP(sport=40003, dport=123) / Raw(req),
        }
        for what, frame in cases.items():
            with self.subTest(what):
                # NTP answers only: the client's kernel may be resolving us meanwhile.
                got = [g for g in self.send_frames([bytes(frame)], listen=0.5) if UDP in Ether(g)]
                self.assertEqual(len(got), 1, f"{what}: {len(got)} answers: {[g.hex() for g in got]}")
                reply = Ether(got[0])
                tagged = Dot1Q in reply
                self.assertEqual(tagged, "priority" in what, f"{what}: the reply's tag: {reply!r}")
                if tagged:
                    self.assertEqual((reply[Dot1Q].prio, reply[Dot1Q].vlan), (5, 0), repr(reply))
                self.assertEqual(reply[IP].ihl, 5, "the reply carries no options")
                self.assertEqual(reply[UDP].dport, frame[UDP].sport)
                ntp = bytes(reply[UDP].payload)
                self.assertEqual((ntp[0] & 7, ntp[1]), (4, 2), f"{what}: mode and stratum")
                self.assertEqual(ntp[24:32], req[40:48], f"{what}: origin = our transmit")

    def test_malformed_frames_dropped_and_counted(self):
        from scapy.all import ARP, ICMP, IP, UDP, Ether, Raw, fragment  # noqa: imported late: slow
        eth = Ether(dst=self.server_mac, src=self.lab.cli.exec("cat", "/sys/class/net/cli0/address").stdout.strip())
        ip = IP(src=CLIENT_IP, dst=SERVER_IP)
        req = bytes([0x23]) + bytes(39) + bytes.fromhex("0102030405060708")

        def raw(p):
            return bytes(p)

        def with_bad_udp_checksum():
            b = bytearray(raw(eth / ip / UDP(sport=40000, dport=123) / Raw(req)))
            b[14 + 20 + 6] ^= 0x55
            return bytes(b)

        def with_bad_ip_checksum():
            b = bytearray(raw(eth / ip / UDP(sport=40000, dport=123) / Raw(req)))
            b[14 + 10] ^= 0x55
            return bytes(b)

        big = eth / ip / UDP(sport=40000, dport=123) / Raw(req + bytes(1600))
        cases = {
            "ntp_too_short": [raw(eth / ip / UDP(sport=40000, dport=123) / Raw(req[:20]))],
            "bad_udp_length": [raw(eth / ip / UDP(sport=40000, dport=123, len=200) / Raw(req))],
            "bad_udp_checksum": [with_bad_udp_checksum()],
            "bad_ip_checksum": [with_bad_ip_checksum()],
            "ntp_bad_version": [raw(eth / ip / UDP(sport=40000, dport=123) / Raw(bytes([v << 3 | 3]) + req[1:]))
                                for v in (0, 5, 6, 7)],
            "ntp_bad_mode": [raw(eth / ip / UDP(sport=40000, dport=123) / Raw(bytes([0x20 | m]) + req[1:]))
                             for m in (0, 5)],
            "ntp_control_mode": [raw(eth / ip / UDP(sport=40000, dport=123) /
                                     Raw(bytes([0x16, 0x02, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0]))),  # ntpq readvar
                                 raw(eth / ip / UDP(sport=40000, dport=123) / Raw(bytes([0x27]) + bytes(47)))],
            "ntp_bad_length": [raw(eth / ip / UDP(sport=40000, dport=123) /
                                   Raw(req + bytes.fromhex("0104000a") + bytes(28)))],  # EF length 10
            "udp_port_closed": [raw(eth / ip / UDP(sport=40000, dport=124) / Raw(req))],
            "ip_fragment": [raw(eth / f) for f in fragment(ip / UDP(sport=40000, dport=123) / Raw(req + bytes(200)),
                                                            fragsize=64)],
            # A loose source route: we send nothing along a path the sender chose.
            "ip_options": [raw(eth / IP(src=CLIENT_IP, dst=SERVER_IP, options=b"\x83\x07\x04\x0a\x00\x01\x63\x00") /
                               UDP(sport=40000, dport=123) / Raw(req))],
            "oversized": [raw(big)],
            "unsupported_ethertype": [raw(Ether(dst=self.server_mac, type=0x88F7) / Raw(bytes(60)))],
            "unsupported_ip_proto": [raw(eth / IP(src=CLIENT_IP, dst=SERVER_IP, proto=6) / Raw(bytes(20)))],
            "bad_source_address": [raw(eth / IP(src="255.255.255.255", dst=SERVER_IP) /
                                       UDP(sport=40000, dport=123) / Raw(req)),
                                   raw(eth / IP(src="224.0.0.1", dst=SERVER_IP) / UDP(sport=40000, dport=123) /
                                       Raw(req))],
            "bad_arp": [raw(eth / ARP(op=1, hwtype=6, pdst=SERVER_IP))],
            "not_for_us": [raw(eth / IP(src=CLIENT_IP, dst="10.0.1.99") / UDP(sport=40000, dport=123) / Raw(req))],
            "icmp_not_echo": [raw(eth / ip / ICMP(type=13))],
            "bad_icmp": [bytes(bytearray(raw(eth / ip / ICMP(type=8, chksum=0x1234) / Raw(b"x" * 8))))],
        }
        for reason, frames in cases.items():
            with self.subTest(reason=reason):
                before = self.lab.counters()
                got = self.send_frames(frames, listen=0.3)
                self.assertEqual(got, [], f"{reason}: the appliance answered a malformed frame")
                counted = len(frames)
                if reason == "ip_fragment" and self.FRAGMENTS_COUNTED_AS:
                    reason, counted = self.FRAGMENTS_COUNTED_AS
                key = "drop:" + reason
                want = before.get(key, 0) + counted
                wait_for(lambda: self.lab.counters().get(key, 0) >= want, 5,
                         what=f"drop counter {reason} to reach {want}")
                after = self.lab.counters()
                self.assertEqual(after.get(key, 0), want, f"{reason}: {after.get(key, 0)} != {want}")
        # And a valid request right after all that is answered.
        replies = self.lab.ntpclient(count=3, interval=0.1)
        self.assertTrue(all(r["reply"] and r["stratum"] == 2 for r in replies), replies)

    def send_frames(self, frames, listen):
        return netlab.raw_exchange(self.lab.cli, "cli0", self.server_mac, frames, listen)


class MalformedAfPacketTest(MalformedPcapTest):
    TAG = "mk"
    DEVICE = "net_af_packet0,iface=dp0"
    FRAGMENTS_COUNTED_AS = ("ntp_bad_length", 1)  # reassembled by the kernel's fanout



class HoldoverTest(unittest.TestCase):
    """kill -9 of ntp-control while a client polls."""

    HOLDOVER_S = 4

    def test_dataplane_serves_through_control_plane_death(self):
        lab = Lab("ho", holdover_s=self.HOLDOVER_S)
        client = subprocess.Popen(
            ["ip", "netns", "exec", lab.cli.name, "/usr/bin/python3", os.path.join(HERE, "ntpclient.py"), SERVER_IP,
             "--count", "100000", "--interval", "0.1", "--timeout", "1"],
            stdout=subprocess.PIPE, text=True)
        netlab._cleanups.append(lambda: client.poll() is None and client.kill())
        replies = []

        def read_until(cond, timeout, what):
            deadline = time.monotonic() + timeout
            while time.monotonic() < deadline:
                line = client.stdout.readline()
                if not line:
                    break
                replies.append(json.loads(line))
                if cond(replies[-1]):
                    return replies[-1]
            raise TimeoutError(f"timed out waiting for {what}; last: {replies[-1:]}")

        read_until(lambda r: r["reply"] and r["leap"] == 0 and r["stratum"] == 2, 10, "a synchronized answer")
        lab.app.kill_control()
        killed_at = len(replies)
        t_kill = time.monotonic()
        unsync = read_until(lambda r: r["reply"] and r["leap"] == 3, self.HOLDOVER_S + 10,
                            "leap 3 after the holdover")
        elapsed = time.monotonic() - t_kill
        during = replies[killed_at:-1]
        self.assertGreater(len(during), 10)
        self.assertTrue(all(r["leap"] == 0 and r["stratum"] == 2 for r in during), during[-3:])
        disp = [r["root_dispersion_s"] for r in during]
        self.assertGreater(disp[-1], disp[0], "root dispersion must grow while the control plane is gone")
        self.assertGreaterEqual(elapsed, self.HOLDOVER_S - 1.5, "went unsynchronized before the holdover")
        self.assertEqual(unsync["stratum"], 0, unsync)
        # RFC 5905 section 7.4: at stratum 0 the reference ID is a kiss code;
        # it says why (the holdover ran out), not the stale source.
        self.assertEqual(unsync["refid_text"], "HOLD", unsync)

        lab.app.start_control()
        read_until(lambda r: r["reply"] and r["leap"] == 0 and r["stratum"] == 2, 15,
                   "synchronized answers after the restart")
        client.kill()
        client.wait()
        self.assertTrue(lab.app.log_contains("control", "re-attached"), lab.app.log("control"))
        missing = [r for r in replies if not r["reply"]]
        self.assertEqual(missing, [], f"{len(missing)} of {len(replies)} requests went unanswered")
        # The served error bound (issue 8) on every synchronized answer,
        # before, during and after the holdover: |theta| - delta/2 <= root
        # delay / 2 + root dispersion (ntpclient.bound_check).
        synced = [r for r in replies if r["leap"] != 3]
        worst = max(synced, key=lambda r: r["bound_ratio"])
        self.assertLessEqual(worst["bound_ratio"], 1.0, worst)
        print(f"\n  holdover: {len(replies)} requests, all answered; leap 3 after {elapsed:.1f} s "
              f"(holdover {self.HOLDOVER_S} s); root dispersion {disp[0] * 1e6:.0f} -> {disp[-1] * 1e6:.0f} us; "
              f"worst |error|/bound {worst['bound_ratio']:.3f} over {len(synced)} synchronized answers",
              file=sys.stderr)


if __name__ == "__main__":
    unittest.main(verbosity=2)
