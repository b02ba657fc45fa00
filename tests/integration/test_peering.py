#!/usr/bin/python3
"""Closed peering and RFC 5905's on-wire order under attack (issue 9).

The appliance with access.peer = 10.0.10.0/24, passive associations
clamped to poll 1..2 and removed 20 s after their last packet, and a
configured [[peer]] at poll 2, a real chronyd (always -x) that peers back
at poll 0. From the
lab's namespace (tests/tools/ntpflood.cc sends and counts what comes back):
- 100 spoofed mode-1 packets with poll 17 from outside access.peer: no
  association, not one packet to them (answer_unknown_peers = false);
- spoofed mode-1 packets with poll 17 from 16 addresses inside: 16 passive
  sessions, polling at the clamped poll, gone 20 s after their last packet;
- spoofed mode-2 packets with origin 0 from chronyd's address at 2 Hz for
  60 s: chronyd stays the system peer, its reach stays 377, and what the
  appliance knows of it (its stratum) is not overwritten.
"""
import ipaddress
import os
import sys
import time
import unittest

sys.path.insert(0, os.path.dirname(__file__))
import netlab  # noqa: E402
from netlab import wait_for  # noqa: E402

APPLIANCE_IP = "10.0.10.10"
CHRONY_IP = "10.0.10.20"
INSIDE = "10.0.10.96/28"      # 16 addresses of the lab, in access.peer
OUTSIDE = "10.0.11.0/24"      # not in access.peer
PASSIVE_MINPOLL, PASSIVE_MAXPOLL, PASSIVE_TIMEOUT_S = 1, 2, 20
SPOOF_S = 60


def full(reach):
    """The reach register (RFC 5905 section 13) has lost nothing: every bit
    set but perhaps the lowest, which is 0 from our transmit until the
    answer to it (in symmetric mode up to the peer's next poll)."""
    return reach is not None and reach | 1 == 255


def within(addr, prefix):
    return ipaddress.ip_address(addr) in ipaddress.ip_network(prefix)


class PeeringTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.app_ns, cls.lab_ns = netlab.appliance_link("pr", CHRONY_IP, "eth0")
        # The inside sources are addresses of the lab, so that the passive
        # associations' polls reach them and can be counted.
        for a in ipaddress.ip_network(INSIDE):
            cls.lab_ns.exec("ip", "addr", "add", f"{a}/24", "dev", "eth0")
        cls.dir = netlab.workdir("pr")
        # chronyd polls every second, we every 4 s: each of our polls has a
        # fresh answer to count in the reach register (at the same poll on
        # both sides, two unsynchronised timers leave a poll without one now
        # and then: measured 2 of 10 bits lost without any attack).
        cls.chrony = netlab.Chrony(cls.lab_ns, cls.dir, ["local stratum 1", "allow all",
                                                         f"peer {APPLIANCE_IP} minpoll 0 maxpoll 0"])
        sysname = netlab.unique("P")
        ntp = "\n".join([f"passive_minpoll_log2 = {PASSIVE_MINPOLL}", f"passive_maxpoll_log2 = {PASSIVE_MAXPOLL}",
                         f"passive_timeout_s = {PASSIVE_TIMEOUT_S}"])
        cls.app = netlab.Appliance(cls.app_ns, sysname, cls.dir, netlab.appliance_config(
            sysname, "net_af_packet0,iface=dp0", f"{APPLIANCE_IP}/24", clock='source = "virtual"\noffset_ms = 2',
            access='peer = ["10.0.10.0/24"]', ntp=ntp,
            peers=[{"address": CHRONY_IP, "minpoll": 2, "maxpoll": 2, "iburst": True}])).start()

    def associations(self):
        return (self.app.status() or {}).get("associations", [])

    def totals(self):
        return netlab.worker_totals(self.app.status() or {})

    def flood(self, name, **opts):
        return netlab.Flood(self.lab_ns, "eth0", APPLIANCE_IP, os.path.join(self.dir, name + ".json"),
                            capture=True, **opts)

    def test_1_outside_access_peer_nothing(self):
        before = self.totals()
        r = self.flood("outside", src_prefix=OUTSIDE, sources=100, count=100, rate=200, duration=5, mode=1,
                       poll=17, linger=3, seed=17).result()
        d = netlab.counter_delta(before, self.totals())
        outside = [a["address"] for a in self.associations() if within(a["address"], OUTSIDE)]
        print(f"\n  100 spoofed mode-1 packets, poll 17, from {OUTSIDE}: {len(outside)} associations, "
              f"{r['rx']['to_sources']} packets and {r['rx']['arp_requests']} ARP requests to those sources in 3 s; "
              f"dataplane not_a_peer {d.get('drop_not_a_peer')}, to the control plane {d.get('ntp_to_control')}",
              file=sys.stderr)
        self.assertEqual(r["sent"], 100)
        self.assertEqual(outside, [])
        self.assertEqual(r["rx"]["to_sources"], 0, r)
        self.assertEqual(r["rx"]["arp_requests"], 0, r)
        self.assertGreaterEqual(d.get("drop_not_a_peer", 0), 100, d)

    def test_2_inside_sessions_clamped_and_expire(self):
        linger = PASSIVE_TIMEOUT_S + 6
        f = self.flood("inside", src_prefix=INSIDE, sources=16, count=16, rate=100, duration=5, mode=1, poll=17,
                       linger=linger, seed=18)
        t_sent = time.monotonic()  # the 16 packets leave within 0.2 s of this

        def inside():
            return [a for a in self.associations() if within(a["address"], INSIDE)]
        sessions = wait_for(lambda: len(x := inside()) == 16 and x, 5, interval=0.2,
                            what="16 passive sessions from inside access.peer")
        polls = sorted({(a["mode"], a["poll_log2"], a["peer_poll_log2"]) for a in sessions})
        self.assertEqual([m for m, _, _ in polls], ["symmetric passive"] * len(polls), polls)
        for _, poll, _ in polls:
            self.assertGreaterEqual(poll, PASSIVE_MINPOLL, polls)
            self.assertLessEqual(poll, PASSIVE_MAXPOLL, polls)
        # Still there shortly before the timeout, gone shortly after it.
        wait_for(lambda: time.monotonic() - t_sent > PASSIVE_TIMEOUT_S - 2, PASSIVE_TIMEOUT_S, interval=0.5,
                 what="the timeout to come near")
        left = len(inside())
        wait_for(lambda: not inside(), 10, interval=0.2, what="the passive sessions to be removed")
        gone_after = time.monotonic() - t_sent
        r = f.result(timeout=linger + 30)
        per_source = r["rx"]["to_sources"] / 16
        print(f"\n  16 spoofed mode-1 packets, poll 17, from {INSIDE}: 16 sessions (mode, poll, peer poll) {polls}; "
              f"{left} still there {PASSIVE_TIMEOUT_S - 2} s later, all gone {gone_after:.1f} s after the packets "
              f"(passive_timeout_s {PASSIVE_TIMEOUT_S}); {r['rx']['to_sources']} packets to them "
              f"({per_source:.1f} each)", file=sys.stderr)
        self.assertEqual(left, 16)
        self.assertLess(gone_after, PASSIVE_TIMEOUT_S + 4)
        # Polled at the clamped poll (every 2^1..2^2 s) until removed, not at
        # the attacker's 2^17 s, nor faster than the clamp.
        self.assertGreaterEqual(per_source, PASSIVE_TIMEOUT_S / 2 ** PASSIVE_MAXPOLL - 2, r)
        self.assertLessEqual(per_source, PASSIVE_TIMEOUT_S / 2 ** PASSIVE_MINPOLL + 2, r)

    def test_3_origin_zero_spoof_leaves_the_peer_alone(self):
        def peer():
            for a in self.associations():
                if a["address"] == CHRONY_IP:
                    return a
            return None
        wait_for(lambda: (p := peer()) and p["reach"] == 255 and p["selection"] == "system peer" and
                 self.app.status()["system"]["synchronized"], 150, interval=0.5,
                 what="chronyd to be the system peer with reach 377, the appliance synchronized to it")
        # The baseline: 10 s unspoofed, the reach stays full (so what follows
        # is the spoofing's doing, not a lossy lab).
        t0 = time.monotonic()
        baseline = []
        for i in range(10):
            time.sleep(max(0.0, t0 + i - time.monotonic()))
            baseline.append((peer() or {}).get("reach"))
        self.assertEqual([full(r) for r in baseline], [True] * 10, baseline)
        before = peer()
        spoof = self.flood("spoof", src=CHRONY_IP, src_port=123, mode=2, stratum=3, poll=0, origin_zero=True,
                           rate=2, duration=SPOOF_S, linger=0, seed=19)
        readings = []
        start = time.monotonic()
        for i in range(SPOOF_S):
            # One reading a second over the minute (the reach register
            # shifts once a poll, 4 s here); a late reading does not delay the next.
            time.sleep(max(0.0, start + i - time.monotonic()))
            s = self.app.status() or {}
            p = next((a for a in s.get("associations", []) if a["address"] == CHRONY_IP), None)
            readings.append((full(p and p["reach"]), p and p["selection"], p and p["stratum"],
                             s.get("system", {}).get("synchronized"), p and p["reach"]))
        r = spoof.result(timeout=30)
        bad = [x for x in readings if x[:4] != (True, "system peer", before["stratum"], True)]
        print(f"\n  {r['sent']} spoofed mode-2 packets with origin 0 from {CHRONY_IP} over {r['seconds']:.0f} s: "
              f"{len(readings) - len(bad)} of {len(readings)} readings with reach 377 (376 while a poll is answered), chronyd the system peer at "
              f"stratum {before['stratum']} and the system synchronized; others: {bad[:5]}", file=sys.stderr)
        self.assertGreaterEqual(r["sent"], 2 * SPOOF_S - 2)
        self.assertEqual(len(readings), SPOOF_S)
        self.assertEqual(bad, [])


if __name__ == "__main__":
    unittest.main(verbosity=2)
