#!/usr/bin/python3
"""Issue 11: the kernel exception path (interface.exception_path). The
dataplane owns the veth, makes a TAP (ntpx0) with its MAC and address in
its namespace, and hands it what it does not answer itself.

Checked: a plain TCP connection from the client's namespace to a listener
on the appliance's address (in the appliance's namespace) exchanges data
both ways, and the worker counts frames to and from the kernel; NTP and
ping are still answered by the dataplane (their counters move, the
kernel's do not answer them twice); the kernel learned the client's MAC
through the ARP reply the dataplane passed on; a flood of TCP SYNs to a
closed port beyond interface.exception_max_pps is dropped as
exception_rate. And the deployment NTS needs on one address: chronyd -x
with `server 10.0.1.31 nts` reaches ntp-control's NTS-KE server on
10.0.1.31:4460 through the exception path and its NTP at the same address
in the dataplane, and selects it, authenticated.
"""
import json
import os
import re
import sys
import unittest

sys.path.insert(0, os.path.dirname(__file__))
import netlab  # noqa: E402
import test_nts_ke  # noqa: E402
from netlab import wait_for  # noqa: E402

SERVER_IP = "10.0.1.31"
CLIENT_IP = "10.0.1.100"
MAX_PPS = 200

# In the appliance's namespace: accept one connection at a time, answer
# each line with "echo: " and the line, until killed.
ECHO_SERVER = r'''
import socket, sys
s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind((sys.argv[1], int(sys.argv[2]))); s.listen(4)
print("listening", flush=True)
while True:
    c, _ = s.accept()
    f = c.makefile("rwb")
    for line in f:
        f.write(b"echo: " + line); f.flush()
    c.close()
'''

ECHO_CLIENT = r'''
import socket, sys
c = socket.create_connection((sys.argv[1], int(sys.argv[2])), timeout=10)
f = c.makefile("rwb")
for i in range(3):
    f.write(b"hello %d\n" % i); f.flush()
    print(f.readline().decode().strip())
'''

SYN_FLOOD = r'''
import socket, sys
from scapy.all import Ether, IP, TCP, sendp, conf
conf.verb = 0
frames = [Ether(dst=sys.argv[2]) / IP(src=sys.argv[3], dst=sys.argv[4]) / TCP(sport=10000 + i, dport=9, flags="S")
          for i in range(int(sys.argv[5]))]
sendp(frames, iface=sys.argv[1])
'''


class ExceptionPathTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.srv, cls.cli = netlab.appliance_link("ex", CLIENT_IP)
        cls.dir = netlab.workdir("exc")
        for name, text in (("echo_server.py", ECHO_SERVER), ("echo_client.py", ECHO_CLIENT),
                           ("syn_flood.py", SYN_FLOOD)):
            with open(os.path.join(cls.dir, name), "w") as f:
                f.write(text)
        # NTS-KE on the dataplane's own address, through the exception path.
        cls.ca, cert, key = test_nts_ke.make_certificates(cls.dir, SERVER_IP)
        sysname = netlab.unique("X")
        cls.app = netlab.Appliance(cls.srv, sysname, cls.dir, netlab.appliance_config(
            sysname, "net_af_packet0,iface=dp0", f"{SERVER_IP}/24", refclock_master=2,
            interface_extra=f"exception_path = true\nexception_max_pps = {MAX_PPS}",
            extra=(f'[nts]\ncookie_keys_file = "{cls.dir}/ntskeys"\nke_listen = "{SERVER_IP}:4460"\n'
                   f'certificate = "{cert}"\nprivate_key = "{key}"\n')))
        cls.app.start()
        wait_for(lambda: (cls.app.status() or {}).get("system", {}).get("synchronized"), 15,
                 what="the control plane to publish a synchronized state")
        cls.echo = cls.srv.popen(["/usr/bin/python3", os.path.join(cls.dir, "echo_server.py"), SERVER_IP, "2222"],
                                 os.path.join(cls.dir, "echo_server.log"))
        wait_for(lambda: "listening" in open(os.path.join(cls.dir, "echo_server.log")).read(), 10,
                 what="the echo server in the appliance's namespace")

    def counters(self):
        return netlab.worker_totals(self.app.status())

    def test_1_kernel_interface_has_the_ports_mac_and_address(self):
        link = self.srv.exec("ip", "-o", "link", "show", "ntpx0").stdout
        addr = self.srv.exec("ip", "-o", "-4", "addr", "show", "ntpx0").stdout
        self.assertIn("UP", link)
        self.assertIn(f"{SERVER_IP}/24", addr)
        port_mac = self.app.status()["ports"][0]["mac"].lower()
        self.assertIn(port_mac, link.lower())

    def test_2_tcp_through_the_exception_path(self):
        before = self.counters()
        out = self.cli.exec("/usr/bin/python3", os.path.join(self.dir, "echo_client.py"), SERVER_IP, "2222",
                            timeout=30).stdout.split("\n")
        self.assertEqual([line for line in out if line], ["echo: hello 0", "echo: hello 1", "echo: hello 2"])
        d = netlab.wait_counter_delta(self.app, before, lambda d: d.get("exception_from_kernel", 0) >= 4,
                                      "frames from the kernel")
        self.assertGreaterEqual(d.get("exception_to_kernel", 0), 4, d)  # SYN, ACK, data, FIN at least
        # The kernel learned the client's MAC from the ARP reply we passed on.
        neigh = self.srv.exec("ip", "neigh", "show", "dev", "ntpx0").stdout
        self.assertRegex(neigh, rf"{re.escape(CLIENT_IP)} .*lladdr")

    def test_3_ntp_and_ping_stay_the_dataplanes(self):
        before = self.counters()
        r = self.cli.exec("ntpdig", "-j", "-t", "2", SERVER_IP, check=False)
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        self.assertEqual(json.loads(r.stdout.splitlines()[-1])["stratum"], 2, r.stdout)
        p = self.cli.exec("ping", "-c", "3", "-i", "0.2", "-W", "1", SERVER_IP, check=False)
        self.assertIn("3 received", p.stdout)
        self.assertNotIn("DUP", p.stdout)  # the kernel did not answer a second time
        d = netlab.wait_counter_delta(self.app, before, lambda d: d.get("icmp_echo_replies", 0) >= 3, "echo replies")
        self.assertGreaterEqual(d.get("ntp_requests", 0), 1, d)
        self.assertEqual(d.get("exception_to_kernel", 0), 0, d)

    def test_4_a_syn_flood_is_held_to_exception_max_pps(self):
        before = self.counters()
        port_mac = self.app.status()["ports"][0]["mac"]
        self.cli.exec("/usr/bin/python3", os.path.join(self.dir, "syn_flood.py"), "cli0", port_mac, CLIENT_IP,
                      SERVER_IP, "2000", timeout=120)
        d = netlab.wait_counter_delta(
            self.app, before,
            lambda d: d.get("exception_to_kernel", 0) + d.get("drop_exception_rate", 0) >= 2000,
            "2000 SYNs handled", timeout=30)
        rate_drops = d.get("drop_exception_rate", 0)
        print(f"\n  2000 SYNs: {d.get('exception_to_kernel', 0)} to the kernel, {rate_drops} dropped as "
              f"exception_rate (exception_max_pps = {MAX_PPS})", file=sys.stderr)
        self.assertGreater(rate_drops, 0, d)

    def test_5_chronyd_over_nts_with_ke_through_the_exception_path(self):
        chrony = netlab.Chrony(self.cli, self.dir, [
            f"server {SERVER_IP} iburst nts minpoll -2 maxpoll -2",
            f"ntstrustedcerts {self.ca}",
        ])
        try:
            wait_for(lambda: any(line.startswith("^*") for line in chrony.chronyc("sources").splitlines()), 60,
                     interval=0.5, what="chronyd to select the appliance over NTS")
        except Exception:
            self.fail(f"{chrony.chronyc('sources')}{chrony.chronyc('authdata')}\n"
                      f"{self.app.log('control')[-2000:]}")
        self.assertRegex(chrony.chronyc("ntpdata"), r"Authenticated\s*:\s*Yes")
        # /status is a snapshot taken once a second, and chronyd can be
        # selected sooner than that after its NTS-KE.
        ke_served = lambda: ((self.app.status() or {}).get("nts_ke") or [{}])[0].get("served", 0) >= 1
        try:
            wait_for(ke_served, 5, what="/status to count the NTS-KE served")
        except Exception:
            self.fail(f"NTS-KE not counted as served: {(self.app.status() or {}).get('nts_ke')}")
        chrony.stop()


if __name__ == "__main__":
    unittest.main()
