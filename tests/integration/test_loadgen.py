#!/usr/bin/python3
"""ntp-loadgen (issue 13): the project's own load generator, briefly, at a
modest fixed rate against both kinds of server it is for.

- memif: the appliance (refclock_master 2) on net_memif, role=server, the
  generator the memif client; both DPDK, no kernel between them. Every
  answer valid, the dataplane counted the requests, and told to expect
  stratum 3 the generator finds every answer invalid (stratum).
- veth: chronyd -x (`local stratum 1`) in one namespace, the generator on
  net_af_packet on the other end of a veth (it answers the kernel's ARP and
  neighbour solicitations for its clients), IPv4 and IPv6; told to expect
  stratum 2..15 it finds every answer invalid.
"""
import json
import os
import sys
import unittest

sys.path.insert(0, os.path.dirname(__file__))
import netlab  # noqa: E402
from netlab import wait_for  # noqa: E402

LOADGEN = os.path.join(netlab.BUILD, "tests", "bench", "loadgen", "ntp-loadgen")
APPLIANCE_IP = "10.0.0.1"
CHRONY_IP, CHRONY_IP6 = "10.0.13.1", "fd00:13::1"
RATE_PPS = 20000
LOW_RATE_PPS = 2000  # chronyd and the generator share CPU 0 with the rest of the lab
LOSS_BOUND_PCT = 2.0  # generous: a 2-CPU VM shared with other work


def run_loadgen(ns, d, tag, vdev, args, lcore):
    """Runs ntp-loadgen in ns on vdev with --json; returns (its steps, its summary)."""
    log = os.path.join(d, f"loadgen-{tag}.log")
    eal = ["-l", str(lcore), "--no-huge", "--no-pci", "-m", "256", "--file-prefix", netlab.unique("lg" + tag),
           "--no-telemetry", "--log-level", "lib.eal:warning", "--vdev", vdev]
    p = ns.popen([LOADGEN] + eal + ["--", "--json"] + args, log)
    try:
        p.wait(timeout=60)
    finally:
        netlab.stop_process(p)
    with open(log) as f:
        out = f.read()
    if p.returncode != 0:
        raise AssertionError(f"ntp-loadgen exited with {p.returncode}: {out[-3000:]}")
    objs = [json.loads(line) for line in out.splitlines() if line.startswith("{")]
    steps = [o for o in objs if "step" in o and not o.get("warmup")]
    summary = [o for o in objs if o.get("summary")]
    if not summary:
        raise AssertionError(f"ntp-loadgen printed no summary: {out[-3000:]}")
    return steps, summary[-1], out


class LoadgenCase(unittest.TestCase):
    def assert_all_valid(self, steps, summary, out, bound_pct=LOSS_BOUND_PCT):
        self.assertEqual(len(steps), 1, out)
        s = steps[0]
        self.assertFalse(s["sender_limited"], out)
        self.assertGreater(s["answered"], 0, out)
        self.assertEqual(s["invalid"], 0, out)
        self.assertEqual(summary["invalid_total"], 0, out)
        self.assertLess(s["lost_pct"], bound_pct, out)
        return s

    def assert_all_invalid(self, steps, summary, out, reason):
        s = steps[0]
        self.assertGreater(s["sent"], 0, out)
        self.assertEqual(s["answered"], 0, out)
        self.assertGreater(s["invalid_by"].get(reason, 0), 0.5 * s["sent"], out)
        self.assertEqual(set(s["invalid_by"]), {reason}, out)


class MemifTest(LoadgenCase):
    """The appliance through a real PMD, no kernel."""

    def test_memif_against_the_appliance(self):
        ns = netlab.Namespace(netlab.unique("ntplgm"))
        d = netlab.workdir("lgm")
        sock = os.path.join(d, "memif.sock")
        sysname = netlab.unique("L")
        app = netlab.Appliance(ns, sysname, d, netlab.appliance_config(
            sysname, f"net_memif0,role=server,socket={sock}", f"{APPLIANCE_IP}/16", refclock_master=2)).start()
        # Before that the appliance answers with leap 3, which the generator rightly refuses.
        wait_for(lambda: (app.status() or {}).get("system", {}).get("synchronized"), 10,
                 what="the appliance to serve synchronized time")
        before = netlab.worker_totals(app.status())
        vdev = f"net_memif0,role=client,socket={sock}"
        common = ["--dst", APPLIANCE_IP, "--src", "10.0.128.0/17", "--clients", "5000", "--step-s", "1",
                  "--rate", str(RATE_PPS)]
        # The worker is lcore 1; the generator runs on CPU 0 with the control plane.
        steps, summary, out = run_loadgen(ns, d, "ok", vdev, common, lcore=0)
        s = self.assert_all_valid(steps, summary, out, bound_pct=0.5)
        self.assertGreater(s["sent"], 0.9 * RATE_PPS, out)
        delta = netlab.wait_counter_delta(app, before, lambda dl: dl.get("ntp_requests", 0) >= s["answered"],
                                          "the dataplane's counters to show the requests answered")
        self.assertGreaterEqual(delta.get("ntp_requests", 0), s["answered"], (delta, out))

        steps, summary, out = run_loadgen(ns, d, "st3", vdev, common + ["--stratum", "3"], lcore=0)
        self.assert_all_invalid(steps, summary, out, "stratum")


class VethChronydTest(LoadgenCase):
    """A kernel server (chronyd -x) through net_af_packet on a veth."""

    @classmethod
    def setUpClass(cls):
        cls.gen = netlab.Namespace(netlab.unique("ntplgg"))
        cls.srv = netlab.Namespace(netlab.unique("ntplgc"))
        netlab.veth_pair(cls.gen, "lg0", cls.srv, "eth0")
        netlab.dataplane_side(cls.gen, "lg0")  # the generator answers ARP/NS, not the kernel
        for k in ("all", "default", "eth0"):
            cls.srv.exec("sysctl", "-q", "-w", f"net.ipv6.conf.{k}.disable_ipv6=0")
        cls.srv.exec("ip", "addr", "add", f"{CHRONY_IP}/24", "dev", "eth0")
        cls.srv.exec("ip", "-6", "addr", "add", f"{CHRONY_IP6}/64", "dev", "eth0", "nodad")
        cls.dir = netlab.workdir("lgc")
        cls.chrony = netlab.Chrony(cls.srv, cls.dir, ["local stratum 1", "allow all", "allow ::/0"])
        wait_for(lambda: "Leap status     : Normal" in cls.chrony.chronyc("tracking"), 10,
                 what="chronyd to serve its local clock")
        cls.vdev = "net_af_packet0,iface=lg0,framecnt=4096"

    def run_against_chronyd(self, tag, dst, src, extra=()):
        # --warmup-s: the kernel's first frames to each client wait for our ARP/NS answer.
        args = ["--dst", dst, "--src", src, "--clients", "1000", "--step-s", "1", "--warmup-s", "0.3",
                "--rate", str(LOW_RATE_PPS)] + list(extra)
        return run_loadgen(self.gen, self.dir, tag, self.vdev, args, lcore=1)

    def test_ipv4(self):
        steps, summary, out = self.run_against_chronyd("v4", CHRONY_IP, "10.0.13.128/25")
        self.assert_all_valid(steps, summary, out)
        self.assertGreater(summary["arp_answered"], 0, out)

    def test_ipv6(self):
        steps, summary, out = self.run_against_chronyd("v6", CHRONY_IP6, "fd00:13::1:0/112")
        self.assert_all_valid(steps, summary, out)
        self.assertGreater(summary["nd_answered"], 0, out)

    def test_wrong_stratum_is_invalid(self):
        # Clients of their own: what the kernel learned of the other cases' does not matter.
        steps, summary, out = self.run_against_chronyd("st", CHRONY_IP, "10.0.13.64/26", ["--stratum", "2-15"])
        self.assert_all_invalid(steps, summary, out, "stratum")


if __name__ == "__main__":
    unittest.main()
