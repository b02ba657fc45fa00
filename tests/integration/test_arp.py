#!/usr/bin/python3
"""Issue 8: ARP defence (RFC 5227 section 2.4).

Three namespaces on a bridge: the appliance (refclock_master 2, virtual
clock), a client querying it every 0.2 s, and a spoofer that sends
gratuitous ARPs claiming the appliance's address from its own MAC. A
capture in the client's namespace records every ARP packet claiming that
address and, after each of the appliance's own, polls the client kernel's
ARP cache (/proc/net/arp) until it points at the appliance again.

What defence can do: a Linux client updates an existing cache entry from
any gratuitous ARP (the spoofer's and ours alike), so our announcement,
sent within the burst that saw the claim, puts the client back on the
appliance at once. What it cannot do: with at most one defence per 10 s, a
spoofer that claims the address every second wins in between, and after
its last (undefended) claim the client stays on the spoofer's MAC until its
own kernel re-resolves the address. The test asserts the first and
measures the second.

As a helper (run inside a namespace by the test itself):
  test_arp.py capture IFACE IP MAC one JSON line per ARP packet claiming IP;
                                   after one from MAC, how long until this
                                   namespace's ARP cache held MAC for IP
  test_arp.py spoof IFACE IP N S   N gratuitous ARPs for IP, S seconds apart
"""
import json
import os
import select
import socket
import struct
import sys
import time
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
SERVER_IP = "10.0.1.31"
CLIENT_IP = "10.0.1.100"
DEFEND_INTERVAL_S = 10.0  # RFC 5227 section 1.1


# ------------------------------------------------------------------ helpers

def mac_bytes(text):
    return bytes.fromhex(text.replace(":", ""))


def mac_text(b):
    return ":".join(f"{x:02x}" for x in b)


def announcement(mac, ip):
    """An RFC 5227 ARP Announcement, built here field by field: broadcast,
    ARP request, sender = target = ip, target hardware address zero."""
    ipb = socket.inet_aton(ip)
    return (b"\xff" * 6 + mac + b"\x08\x06" + struct.pack("!HHBBH", 1, 0x0800, 6, 4, 1) + mac + ipb + bytes(6) + ipb)


def neigh_mac(ip):
    """This namespace's kernel ARP cache entry for ip (complete ones only)."""
    with open("/proc/net/arp") as f:
        for line in f.readlines()[1:]:
            cols = line.split()
            if cols[0] == ip and int(cols[2], 16) & 0x2:  # ATF_COM
                return cols[3]
    return None


def capture(iface, ip, watch_mac):
    ipb = socket.inet_aton(ip)
    s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(0x0806))
    s.bind((iface, 0))
    print(json.dumps({"ready": True}), flush=True)
    while True:
        data, addr = s.recvfrom(2048)
        t_ns = time.time_ns()
        if addr[2] == socket.PACKET_OUTGOING or len(data) < 42 or data[28:32] != ipb:
            continue
        rec = {"t_ns": t_ns, "hex": data.hex(), "eth_src": mac_text(data[6:12]), "sha": mac_text(data[22:28]),
               "op": struct.unpack("!H", data[20:22])[0]}
        if rec["sha"] == watch_mac:
            # The packet socket sees the frame before the kernel's ARP code
            # has run on it: poll the cache for up to 0.3 s.
            deadline = time.monotonic() + 0.3
            while neigh_mac(ip) != watch_mac and time.monotonic() < deadline:
                time.sleep(0.001)
            rec["cache_ms"] = (time.time_ns() - t_ns) / 1e6 if neigh_mac(ip) == watch_mac else None
        print(json.dumps(rec), flush=True)


def spoof(iface, ip, count, interval_s):
    s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(0x0806))
    s.bind((iface, 0))
    mine = s.getsockname()[4][:6]
    frame = announcement(mine, ip)  # the same announcement, from another MAC
    start = time.monotonic()
    for i in range(count):
        rest = start + i * interval_s - time.monotonic()
        if rest > 0:
            time.sleep(rest)
        s.send(frame)
        print(json.dumps({"t_ns": time.time_ns(), "mac": mac_text(mine)}), flush=True)


if __name__ == "__main__" and len(sys.argv) > 1 and sys.argv[1] in ("capture", "spoof"):
    if sys.argv[1] == "capture":
        capture(sys.argv[2], sys.argv[3], sys.argv[4].lower())
    else:
        spoof(sys.argv[2], sys.argv[3], int(sys.argv[4]), float(sys.argv[5]))
    sys.exit(0)

sys.path.insert(0, HERE)
import netlab  # noqa: E402
from netlab import wait_for  # noqa: E402


class Lab:
    def __init__(self):
        self.br = netlab.Namespace(netlab.unique("arpb"))
        self.srv = netlab.Namespace(netlab.unique("arps"))
        self.cli = netlab.Namespace(netlab.unique("arpc"))
        self.spf = netlab.Namespace(netlab.unique("arpx"))
        bridge = netlab.Bridge(self.br)
        bridge.attach(self.srv, "dp0")
        bridge.attach(self.cli, "cli0")
        bridge.attach(self.spf, "spf0")
        netlab.dataplane_side(self.srv, "dp0")
        self.cli.exec("ip", "addr", "add", f"{CLIENT_IP}/24", "dev", "cli0")
        # The spoofer has no address: its kernel answers nothing, and what
        # the client sends to its MAC is lost, as with a real duplicate.
        self.spf.exec("ip", "link", "set", "spf0", "arp", "off")
        self.dir = netlab.workdir("arp")
        sysname = netlab.unique("A")
        self.app = netlab.Appliance(self.srv, sysname, self.dir, netlab.appliance_config(
            sysname, "net_af_packet0,iface=dp0", f"{SERVER_IP}/24", refclock_master=2))
        self.app.start()
        wait_for(lambda: (self.app.status() or {}).get("system", {}).get("synchronized"), 10,
                 what="the control plane to publish a synchronized state")
        self.app_mac = self.app.status()["ports"][0]["mac"].lower()
        self.spoofer_mac = self.spf.exec("cat", "/sys/class/net/spf0/address").stdout.strip().lower()

        self.cap_log = os.path.join(self.dir, "capture.jsonl")
        self.cap = self.cli.popen(["/usr/bin/python3", "-u", os.path.abspath(__file__), "capture", "cli0", SERVER_IP,
                                   self.app_mac], self.cap_log)
        wait_for(lambda: '"ready"' in open(self.cap_log).read() or self.cap.poll() is not None, 10,
                 what="the capture to start")
        self.sampler = netlab.Sampler(self.cli, SERVER_IP, os.path.join(self.dir, "client.jsonl"),
                                      interval=0.2, timeout=0.5)
        wait_for(lambda: sum(s["reply"] for s in self.sampler.samples()) >= 3, 10,
                 what="the client's first answers")

    def counters(self):
        st = self.app.status()
        return {k: sum(w[k] for w in st["workers"]) for k in ("arp_conflicts", "arp_defences", "arp_replies")}

    def captured(self):
        with open(self.cap_log) as f:
            lines = f.read().split("\n")
        return [json.loads(ln) for ln in lines[:-1] if ln.startswith("{") and '"ready"' not in ln]

    def defences(self, since_ns):
        """The appliance's own ARP packets claiming its address, captured
        after since_ns (less 50 ms: the capture and the spoofer share a CPU,
        so the capture may stamp the answer before the spoofer stamps its
        claim).
        Its ARP replies (sender IP ours too) to the client re-resolving it
        are not defences: a defence is the broadcast announcement.
        """
        ann = announcement(mac_bytes(self.app_mac), SERVER_IP).hex()
        return [c for c in self.captured() if c["t_ns"] > since_ns - 50_000_000 and c["eth_src"] == self.app_mac
                and c["hex"].startswith(ann[:12]) and c["op"] == 1]

    def spoof(self, count, interval_s):
        out = self.spf.exec("/usr/bin/python3", "-u", os.path.abspath(__file__), "spoof", "spf0", SERVER_IP,
                            str(count), str(interval_s), timeout=count * interval_s + 30).stdout
        return [json.loads(ln)["t_ns"] for ln in out.splitlines()]

    def client_points_at(self, mac, timeout=0.5):
        """Polls the client's ARP cache until it holds mac for the appliance."""
        try:
            wait_for(lambda: self._cache_mac() == mac, timeout, interval=0.01, what=f"client ARP cache -> {mac}")
            return True
        except TimeoutError:
            return False

    def _cache_mac(self):
        for line in self.cli.exec("cat", "/proc/net/arp").stdout.splitlines()[1:]:
            cols = line.split()
            if cols[0] == SERVER_IP and int(cols[2], 16) & 0x2:
                return cols[3].lower()
        return None


class ArpDefenceTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.lab = Lab()

    @classmethod
    def tearDownClass(cls):
        cls.lab.sampler.stop()
        cls.lab.app.stop()

    def check_defence_frame(self, c):
        frame = bytes.fromhex(c["hex"])
        want = announcement(mac_bytes(self.lab.app_mac), SERVER_IP)
        self.assertEqual(frame[:42].hex(), want.hex(), "the defence is not our RFC 5227 announcement")
        self.assertEqual(frame[42:], bytes(len(frame) - 42), "padding after the announcement")

    def answered_between(self, a_ns, b_ns):
        s = [x for x in self.lab.sampler.samples() if a_ns <= x["sent_ns"] < b_ns]
        return s, [x for x in s if x["reply"]]

    def test_defence(self):
        lab = self.lab
        self.assertEqual(lab._cache_mac(), lab.app_mac, "the client should know the appliance before the spoof")

        # ---- 1: one claim (a host coming up with our address): defended at
        # once, the client's cache is put back, the client loses nothing.
        before = lab.counters()
        t_spoof = lab.spoof(1, 0)[0]
        d = wait_for(lambda: lab.defences(t_spoof), 2, what="the appliance's defence on the wire")[0]
        self.check_defence_frame(d)
        defence_ms = (d["t_ns"] - t_spoof) / 1e6
        self.assertLess(defence_ms, 100, "the defence should follow the claim within the burst that saw it")
        self.assertIsNotNone(d["cache_ms"], "the client's ARP cache was not put back on the appliance")
        self.assertEqual(lab._cache_mac(), lab.app_mac)
        t_first_defence = d["t_ns"]
        wait_for(lambda: lab.counters()["arp_defences"] == before["arp_defences"] + 1, 5, what="arp_defences + 1")
        after = lab.counters()
        self.assertEqual(after["arp_conflicts"], before["arp_conflicts"] + 1)
        self.assertEqual(after["arp_defences"], before["arp_defences"] + 1)
        # Told to the operator by the main lcore: our address and the claimant.
        wait_for(lambda: lab.app.log_contains(
            "dataplane", f"ARP conflict: {SERVER_IP} claimed by {lab.spoofer_mac} (1 conflicting packet, 1 defence"),
            5, what="the dataplane's log line naming the claimant")
        # Every request answered but one sent between the claim and the
        # defence, which would go to the spoofer.
        t_end = time.time_ns() + 3_000_000_000
        wait_for(lambda: lab.sampler.samples() and lab.sampler.samples()[-1]["sent_ns"] > t_end, 10,
                 what="3 s of client requests after the defence")
        window = [x for x in lab.sampler.samples() if t_spoof - 2_000_000_000 <= x["sent_ns"] <= t_end]
        lost = [x for x in window if not x["reply"] and not (t_spoof - 5_000_000 <= x["sent_ns"] <= d["t_ns"] + 5_000_000)]
        print(f"\n  one claim: defended after {defence_ms:.2f} ms, client's cache back after {d['cache_ms']:.2f} ms; "
              f"client {sum(x['reply'] for x in window)}/{len(window)} answered around it", file=sys.stderr)
        # 5 s at 5 requests/s; the sampler waits for each answer, so a loaded
        # machine sends fewer: what matters is that it ran on both sides.
        self.assertGreaterEqual(len(window), 10)
        self.assertTrue(any(x["sent_ns"] < t_spoof for x in window), "no request before the claim")
        self.assertGreaterEqual(sum(x["sent_ns"] > d["t_ns"] for x in window), 5, "too few requests after the defence")
        self.assertEqual(lost, [], "requests lost around a defended claim")

        # ---- 2: a claim within 10 s of that defence is counted, not defended.
        c0 = lab.counters()
        t2 = lab.spoof(1, 0)[0]
        wait_for(lambda: lab.counters()["arp_conflicts"] == c0["arp_conflicts"] + 1, 5, what="arp_conflicts + 1")
        self.assertTrue(lab.client_points_at(lab.spoofer_mac), "the spoofer's claim should reach the client")
        self.assertEqual(lab.counters()["arp_defences"], c0["arp_defences"])
        self.assertEqual(lab.defences(t2), [], "defended twice within 10 s")

        # ---- 3: a spoofer claiming the address every second for 20 s, once
        # the 10 s since the first defence have passed.
        while time.time_ns() < t_first_defence + int(DEFEND_INTERVAL_S * 1e9) + 200_000_000:
            time.sleep(0.05)  # the rate limit runs on time: nothing else to poll
        c1 = lab.counters()
        spoofs = lab.spoof(20, 1.0)
        t_last = spoofs[-1]
        wait_for(lambda: lab.counters()["arp_conflicts"] >= c1["arp_conflicts"] + 20, 5, what="20 more conflicts")
        c2 = lab.counters()
        defs = lab.defences(spoofs[0] - 1)
        gaps = [(b["t_ns"] - a["t_ns"]) / 1e9 for a, b in zip(defs, defs[1:])]
        print(f"  spoofer every 1 s x 20: {c2['arp_conflicts'] - c1['arp_conflicts']} conflicts, "
              f"{len(defs)} defences, {gaps} s apart", file=sys.stderr)
        self.assertEqual(c2["arp_conflicts"] - c1["arp_conflicts"], 20)
        self.assertEqual(c2["arp_defences"] - c1["arp_defences"], len(defs))
        self.assertIn(len(defs), (2, 3))
        for g in gaps:
            self.assertGreaterEqual(g, DEFEND_INTERVAL_S - 0.05, "two defences less than 10 s apart")
        self.assertLessEqual(abs(defs[0]["t_ns"] - spoofs[0]) / 1e6, 100, "the first claim was not defended")
        for dd in defs:
            self.check_defence_frame(dd)
            # Each defence answers a claim, within the burst that saw it, and
            # puts the client's cache back on the appliance.
            self.assertLess(min(abs(dd["t_ns"] - s) for s in spoofs) / 1e6, 100)
            self.assertIsNotNone(dd["cache_ms"], "the client's ARP cache was not put back after a defence")
        # After each defence the client is back on the appliance and answered
        # until the spoofer's next claim.
        for dd in defs:
            # The claim it answered is stamped when the spoofer's send returned,
            # which can be after the capture saw the defence (-0.2 ms seen):
            # the next claim is the first one well after the defence.
            nxt = min([s for s in spoofs if s > dd["t_ns"] + 100_000_000], default=t_last + 1_000_000_000)
            sent, ok = self.answered_between(dd["t_ns"], nxt)
            self.assertTrue(ok, f"no answer between a defence and the next claim ({len(sent)} requests)")
        sent, ok = self.answered_between(spoofs[0], t_last)
        print(f"  during the 20 s: {len(ok)}/{len(sent)} requests answered (defence cannot win against a claim "
              f"every second); cache back after {[dd['cache_ms'] for dd in defs]} ms", file=sys.stderr)
        # After the last, undefended claim: the client's kernel re-resolves by itself.
        t_back = wait_for(lambda: next((x["sent_ns"] for x in lab.sampler.samples()
                                        if x["sent_ns"] > t_last and x["reply"]), None), 40, interval=0.2,
                          what="the client to be answered again after the spoofer stopped")
        print(f"  after the last claim the client was answered again {(t_back - t_last) / 1e9:.1f} s later "
              f"(its own re-resolution; the claim came within 10 s of a defence)", file=sys.stderr)
        metrics = lab.app.http("/metrics")
        total = sum(int(ln.split()[-1]) for ln in metrics.splitlines()
                    if ln.startswith("ntp_worker_arp_defences_total{"))
        self.assertEqual(total, lab.counters()["arp_defences"])
        self.assertGreaterEqual(total, 3)
        # Rate-limited: 22 conflicts in about 30 s, a line per 10 s at most;
        # the last claim is told at the latest 10 s after the line before.
        wait_for(lambda: lab.app.log_contains("dataplane", "(22 conflicting packets, 3 defences so far)"), 12,
                 what="the log line with all 22 conflicts")
        lines = [ln for ln in lab.app.log("dataplane").splitlines() if "ARP conflict:" in ln]
        print(f"  dataplane log: {len(lines)} conflict lines; last: {lines[-1].split(' ', 3)[-1]}", file=sys.stderr)
        self.assertLessEqual(len(lines), 5)


if __name__ == "__main__":
    unittest.main()
