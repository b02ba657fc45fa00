#!/usr/bin/python3
"""Issue 13: net_af_xdp as a port, for NICs that stay on their kernel
driver. The dataplane takes a veth's queue 0 through an AF_XDP socket (the
PMD loads its XDP program, which redirects the queue's frames to the
socket: the kernel's stack no longer sees them, so nothing is answered
twice), and serves as on any port: chronyd -x selects it at stratum 2,
ntpdig gets stratum 2, ping is answered by the dataplane, and the worker's
counters say so.
"""
import json
import os
import sys
import unittest

sys.path.insert(0, os.path.dirname(__file__))
import netlab  # noqa: E402
from netlab import wait_for  # noqa: E402

SERVER_IP = "10.0.1.31"
CLIENT_IP = "10.0.1.100"


class AfXdpTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.srv, cls.cli = netlab.appliance_link("xd", CLIENT_IP)
        cls.dir = netlab.workdir("afxdp")
        sysname = netlab.unique("X")
        cls.app = netlab.Appliance(cls.srv, sysname, cls.dir, netlab.appliance_config(
            sysname, "net_af_xdp0,iface=dp0,start_queue=0,queue_count=1", f"{SERVER_IP}/24", refclock_master=2))
        cls.app.start()
        wait_for(lambda: (cls.app.status() or {}).get("system", {}).get("synchronized"), 15,
                 what="the control plane to publish a synchronized state")

    def totals(self):
        return netlab.worker_totals(self.app.status() or {})

    def test_1_the_port_is_af_xdp(self):
        port = self.app.status()["ports"][0]
        self.assertEqual(port.get("driver"), "net_af_xdp", port)
        self.assertTrue(port.get("link_up"), port)

    def test_2_ntpdig_and_ping(self):
        before = self.totals()
        r = self.cli.exec("ntpdig", "-j", "-t", "2", SERVER_IP, check=False)
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        self.assertEqual(json.loads(r.stdout)["stratum"], 2, r.stdout)
        p = self.cli.exec("ping", "-c", "3", "-i", "0.2", "-W", "1", SERVER_IP, check=False)
        self.assertEqual(p.returncode, 0, p.stdout + p.stderr)
        self.assertIn("3 received", p.stdout)
        self.assertNotIn("DUP!", p.stdout)
        after = wait_for(lambda: (lambda t: t if t.get("icmp_echo_replies", 0) >= before.get("icmp_echo_replies", 0) + 3
                                  and t.get("ntp_requests", 0) > before.get("ntp_requests", 0) else None)(self.totals()),
                         5, what="the worker to count the answers")
        print(f"\n  ntpdig stratum 2; ping 3/3; worker: ntp_requests +{after['ntp_requests'] - before.get('ntp_requests', 0)},"
              f" echo replies +{after['icmp_echo_replies'] - before.get('icmp_echo_replies', 0)}", file=sys.stderr)

    def test_3_chronyd_selects_it(self):
        c = netlab.Chrony(self.cli, self.dir, [f"server {SERVER_IP} minpoll -4 maxpoll -4 iburst"])
        try:
            def selected():
                line = [ln for ln in c.chronyc("sources").splitlines() if SERVER_IP in ln]
                return line and line[0].startswith("^*") and line[0]
            line = wait_for(selected, 30, interval=0.5, what="chronyd to select the appliance (^*)")
            self.assertEqual(int(line.split()[2]), 2, line)
            print(f"\n  chronyd over af_xdp: {line}", file=sys.stderr)
        finally:
            c.stop()


if __name__ == "__main__":
    unittest.main()
