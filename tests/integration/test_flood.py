#!/usr/bin/python3
"""A spoofed mode-4 flood cannot starve the appliance's own server (issue 9).

The appliance is a client of a real chronyd server (`local stratum 1`,
always -x) at poll 0. Once synchronized with reach 377, 200k spoofed server
replies (mode 4) a second for 60 s hit it from the lab's namespace: 160k/s
from 100k random sources, 40k/s spoofing chronyd's address, half to port
123 and half to random ports (our client association's port is
random, RFC 9109: a spoofer has to guess it). Read once a second: chronyd
stays the system peer with reach 377 and the appliance synchronized.
"""
import os
import sys
import time
import unittest

sys.path.insert(0, os.path.dirname(__file__))
import netlab  # noqa: E402
from netlab import wait_for  # noqa: E402

APPLIANCE_IP = "10.0.12.10"
CHRONY_IP = "10.0.12.20"
FLOOD_S = 60
RATE = 200000
SERVER_SHARE = 0.2    # of it from chronyd's address, half to port 123, half to random ports


class FloodTest(unittest.TestCase):
    def test_spoofed_mode4_flood_keeps_the_server_reachable(self):
        app_ns = netlab.Namespace(netlab.unique("ntpfla"))
        lab_ns = netlab.Namespace(netlab.unique("ntpflc"))
        netlab.veth_pair(app_ns, "dp0", lab_ns, "eth0")
        netlab.dataplane_side(app_ns, "dp0")
        lab_ns.exec("ip", "addr", "add", f"{CHRONY_IP}/24", "dev", "eth0")
        d = netlab.workdir("fl")
        netlab.Chrony(lab_ns, d, ["local stratum 1", "allow all"])
        sysname = netlab.unique("F")
        app = netlab.Appliance(app_ns, sysname, d, netlab.appliance_config(
            sysname, netlab.flood_device("dp0"), f"{APPLIANCE_IP}/24", clock='source = "virtual"\noffset_ms = 2',
            servers=[{"address": CHRONY_IP, "minpoll": 0, "maxpoll": 0, "iburst": True}])).start()

        def reading():
            s = app.status() or {}
            p = next((a for a in s.get("associations", []) if a["address"] == CHRONY_IP), None)
            # The reach register has lost nothing: every bit set but perhaps
            # the lowest, 0 from our transmit until its answer (RFC 5905 13).
            full = p is not None and p["reach"] | 1 == 255
            return (full, p and p["selection"], s.get("system", {}).get("synchronized"), p and p["reach"]), s
        good = (True, "system peer", True)
        wait_for(lambda: reading()[0][:3] == good, 150, interval=0.5,
                 what="the appliance synchronized to chronyd with reach 377")
        before = netlab.worker_totals(reading()[1])

        # One process for the mix (three would share CPU 0 worse: 140k/s
        # together where one reaches 200k/s).
        flood = netlab.Flood(lab_ns, "eth0", APPLIANCE_IP, os.path.join(d, "flood.json"), mode=4, rate=RATE,
                             duration=FLOOD_S, linger=0, src_prefix="100.64.0.0/10", sources=100000, order="random",
                             dst_port=123, also_src=CHRONY_IP, also_fraction=SERVER_SHARE, seed=41)
        readings = []
        start = time.monotonic()
        for i in range(FLOOD_S):
            time.sleep(max(0.0, start + i - time.monotonic()))
            readings.append(reading()[0])
        r = flood.result(timeout=30)
        after = netlab.worker_totals(reading()[1])
        delta = netlab.counter_delta(before, after)
        bad = [x for x in readings if x[:3] != good]
        print(f"\n  spoofed mode-4 flood for {r['seconds']:.0f} s at {r['rate_achieved']:.0f} packets/s ({r['sent']} sent, "
              f"{r['also_sent']} of them from {CHRONY_IP}, seed {r['seed']}): {len(readings) - len(bad)} of "
              f"{len(readings)} readings with reach 377, chronyd the system peer and the appliance synchronized; "
              f"others {bad[:5]}; dataplane: rx {delta.get('rx_packets')}, unexpected_server "
              f"{delta.get('drop_unexpected_server')}, to the control plane {delta.get('ntp_to_control')}, "
              f"control_ring_full {delta.get('drop_control_ring_full')}", file=sys.stderr)
        self.assertEqual(len(readings), FLOOD_S)
        self.assertEqual(bad, [])
        # The random sources are none of ours: dropped in the dataplane,
        # never a load on the control plane.
        self.assertGreaterEqual(delta.get("drop_unexpected_server", 0), 0.99 * (r["sent"] - r["also_sent"]), delta)
        # The flood must have been one: on this 2-CPU VM, with chronyd, both
        # control processes and this test on CPU 0 beside it, one ntpflood
        # sustains 146k-166k/s of the 200k/s asked for over the 60 s (200k/s
        # for 5 s in test_ratelimit); below 100k/s this proves too little.
        self.assertGreaterEqual(r["rate_achieved"], 100000, r)


if __name__ == "__main__":
    unittest.main(verbosity=2)
