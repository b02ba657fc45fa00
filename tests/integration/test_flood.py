#!/usr/bin/python3
"""A spoofed mode-4 flood cannot starve the appliance's own server (issues 9, 10).

The appliance is a client of a real chronyd server (`local stratum 1`,
always -x) at poll 0. Once synchronized with reach 377, 200k spoofed server
replies (mode 4) a second hit it from the lab's namespace, read once a
second: chronyd stays the system peer with reach 377 and the appliance
synchronized.

- mixed: for 60 s, 160k/s from 100k random sources, 40k/s spoofing chronyd's
  address, half to port 123 and half to random ports;
- from the server: for 30 s, every packet spoofs chronyd's address (its port
  123), half to port 123 and half to random ports. Our client association's
  port is random (RFC 9109) and the dataplane forwards mode 4 only from the
  server's address and port to that one port (the endpoints ntp-control
  publishes), each endpoint within a budget of 16 at once then 16/s: a
  random port hits ours about once in 64000, and what reaches the control
  plane stays within that budget whatever the rate.
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
RATE = 200000
SERVER_SHARE = 0.2    # of the mixed flood from chronyd's address, half to port 123, half to random ports
ASSOC_BUDGET_PER_S = 16   # dp::AssocTable::kBudgetPerS
ASSOC_BUDGET_BURST = 16   # dp::AssocTable::kBudgetBurst
RANDOM_PORTS = 64000      # ntpflood's random ports: 1024 + (0..63999)


class FloodTest(unittest.TestCase):
    def flood_synchronized_appliance(self, tag, seconds, **flood_opts):
        """Starts the lab, waits for reach 377, floods; returns the flood's
        summary, the readings (one a second), the dataplane's counter delta
        and the seconds between the two counter snapshots."""
        app_ns = netlab.Namespace(netlab.unique("ntpfl" + tag))
        lab_ns = netlab.Namespace(netlab.unique("ntpfc" + tag))
        netlab.veth_pair(app_ns, "dp0", lab_ns, "eth0")
        netlab.dataplane_side(app_ns, "dp0")
        lab_ns.exec("ip", "addr", "add", f"{CHRONY_IP}/24", "dev", "eth0")
        d = netlab.workdir("fl" + tag)
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
        self.good = (True, "system peer", True)
        wait_for(lambda: reading()[0][:3] == self.good, 150, interval=0.5,
                 what="the appliance synchronized to chronyd with reach 377")
        before = netlab.worker_totals(reading()[1])
        t_before = time.monotonic()

        # One process for the mix (three would share CPU 0 worse: 140k/s
        # together where one reaches 200k/s).
        flood = netlab.Flood(lab_ns, "eth0", APPLIANCE_IP, os.path.join(d, "flood.json"), mode=4, rate=RATE,
                             duration=seconds, linger=0, **flood_opts)
        readings = []
        start = time.monotonic()
        for i in range(seconds):
            time.sleep(max(0.0, start + i - time.monotonic()))
            readings.append(reading()[0])
        r = flood.result(timeout=30)
        after = netlab.worker_totals(reading()[1])
        elapsed = time.monotonic() - t_before
        return r, readings, netlab.counter_delta(before, after), elapsed

    def check(self, what, seconds, r, readings, delta, elapsed):
        bad = [x for x in readings if x[:3] != self.good]
        rx = delta.get("rx_packets", 0)
        unexpected = delta.get("drop_unexpected_server", 0)
        over_budget = delta.get("drop_assoc_over_budget", 0)
        to_control = delta.get("ntp_to_control", 0)
        random_port_spoofs = r["also_sent"] / 2
        print(f"\n  {what} for {r['seconds']:.0f} s at {r['rate_achieved']:.0f} packets/s ({r['sent']} sent, "
              f"{r['also_sent']} of them from {CHRONY_IP}, seed {r['seed']}): {len(readings) - len(bad)} of "
              f"{len(readings)} readings with reach 377, chronyd the system peer and the appliance synchronized; "
              f"others {bad[:5]}; dataplane: rx {rx}, unexpected_server {unexpected}, assoc_over_budget "
              f"{over_budget}, to the control plane {to_control} in {elapsed:.0f} s (spoofs expected on our port: "
              f"~{random_port_spoofs / RANDOM_PORTS:.0f}), control_ring_full {delta.get('drop_control_ring_full')}",
              file=sys.stderr)
        self.assertEqual(len(readings), seconds)
        self.assertEqual(bad, [])
        # What the dataplane received (the kernel may drop a share of what
        # was sent: 1.1% in one CI run) is dropped there, never a load on the
        # control plane, but for what reaches the associations' lane.
        self.assertGreaterEqual(unexpected + over_budget, 0.99 * (rx - to_control), delta)
        # The associations' lane: chronyd's real answers (one a second) and
        # at most the endpoint's budget of spoofs that found our port.
        self.assertLessEqual(to_control, (elapsed + 2) * (1 + ASSOC_BUDGET_PER_S) + ASSOC_BUDGET_BURST, delta)
        # The flood must have been one: on this 2-CPU VM, with chronyd, both
        # control processes and this test on CPU 0 beside it, one ntpflood
        # sustains 146k-166k/s of the 200k/s asked for over the 60 s (200k/s
        # for 5 s in test_ratelimit); below 100k/s this proves too little.
        self.assertGreaterEqual(r["rate_achieved"], 100000, r)

    def test_spoofed_mode4_flood_keeps_the_server_reachable(self):
        seconds = 60
        r, readings, delta, elapsed = self.flood_synchronized_appliance(
            "a", seconds, src_prefix="100.64.0.0/10", sources=100000, order="random", dst_port=123,
            also_src=CHRONY_IP, also_fraction=SERVER_SHARE, seed=41)
        self.check("spoofed mode-4 flood", seconds, r, readings, delta, elapsed)

    def test_full_rate_spoof_of_the_server_to_random_ports(self):
        seconds = 30
        r, readings, delta, elapsed = self.flood_synchronized_appliance(
            "b", seconds, also_src=CHRONY_IP, also_fraction=1.0, seed=43)
        self.assertEqual(r["also_sent"], r["sent"], r)
        self.check("mode-4 flood all from the server's address and port", seconds, r, readings, delta, elapsed)


if __name__ == "__main__":
    unittest.main(verbosity=2)
