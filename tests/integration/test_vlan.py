#!/usr/bin/python3
"""Issue 13: VLANs and several interfaces on one DPDK port.

One veth is a trunk: the appliance's end is one DPDK port (net_af_packet)
carrying two [[interface]] tables, VLAN 10 (10.0.10.31/24) and VLAN 20
(10.0.20.31/24). This machine's kernel has no VLAN devices (no 8021q, no
VLAN-filtering bridge), so the client's end is a userspace 802.1Q switch
(vlantrunk.py) with one namespace per VLAN behind an untagged port, where
the real clients run; raw tagged frames go on the trunk itself. Checked: ntpdig and ping are answered on each VLAN; a
request for one interface's address on the other's VLAN, on a third VLAN
or untagged gets nothing and moves not_for_us or vlan_not_ours; an answer
goes back on the VLAN it came on; chronyd -x on VLAN 20 selects the
appliance; the appliance, a client of a chronyd -x on VLAN 20 (its own
requests and ARP tagged by the dataplane), synchronizes to it; /status and
ntpctl ports show each interface's VLAN.
"""
import json
import os
import sys
import unittest

sys.path.insert(0, os.path.dirname(__file__))
import netlab  # noqa: E402
from netlab import wait_for  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
IP10, IP20 = "10.0.10.31", "10.0.20.31"
CLI10, CLI20 = "10.0.10.100", "10.0.20.100"


class VlanTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.srv, cls.cli = netlab.appliance_link("vl", "10.0.1.100")
        # This kernel has no VLAN devices: a userspace 802.1Q switch in the
        # client's namespace (vlantrunk.py) makes cli0 a trunk and gives
        # each VLAN a namespace of its own with an untagged veth.
        cls.vlan_ns = {}
        ports = []
        for vid, ip in ((10, CLI10), (20, CLI20)):
            ns = netlab.Namespace(netlab.unique(f"ntpv{vid}"))
            netlab.veth_pair(cls.cli, f"acc{vid}", ns, "eth0")
            netlab.dataplane_side(cls.cli, f"acc{vid}")
            ns.exec("ip", "addr", "add", f"{ip}/24", "dev", "eth0")
            cls.vlan_ns[vid] = ns
            ports.append(f"{vid}:acc{vid}")
        cls.dir = netlab.workdir("vlan")
        log = os.path.join(cls.dir, "vlantrunk.log")
        cls.trunk = cls.cli.popen(["/usr/bin/python3", os.path.join(HERE, "vlantrunk.py"), "cli0", *ports], log)
        wait_for(lambda: "ready" in netlab.read_text(log), 10, what="the VLAN switch")
        # chronyd on VLAN 20, for the appliance to be a client of.
        cls.upstream = netlab.Chrony(cls.vlan_ns[20], netlab.workdir("vlanup"), ["local stratum 1", "allow all"])
        sysname = netlab.unique("V")
        second = ('[[interface]]\nname = "GigabitEthernet0/1/0.20"\ndevice = "net_af_packet0,iface=dp0"\n'
                  f'address = "{IP20}/24"\nvlan = 20\nntp_server = true\n')
        cls.app = netlab.Appliance(cls.srv, sysname, cls.dir, netlab.appliance_config(
            sysname, "net_af_packet0,iface=dp0", f"{IP10}/24", interface_extra="vlan = 10",
            clock='source = "virtual"\noffset_ms = 3',
            servers=[{"address": CLI20, "minpoll": 0, "maxpoll": 1, "iburst": True}], extra=second))
        cls.app.start()
        cls.mac = cls.app.status()["ports"][0]["mac"]
        # Its requests and ARP leave tagged for VLAN 20, chronyd's answers come back on it.
        wait_for(lambda: (lambda st: st.get("synchronized") and st.get("stratum") == 2)(
            (cls.app.status() or {}).get("system", {})), 60, interval=0.5,
            what="the appliance synchronized to chronyd on VLAN 20")

    def counters(self):
        return netlab.worker_totals(self.app.status() or {})

    def send_frames(self, frames, listen):
        return netlab.raw_exchange(self.cli, "cli0", self.mac, frames, listen)

    def test_1_status_shows_both_interfaces_on_one_port(self):
        ports = self.app.status()["ports"]
        self.assertEqual([(p["address"], p["vlan"]) for p in ports], [(f"{IP10}/24", 10), (f"{IP20}/24", 20)])
        self.assertEqual(ports[0]["mac"], ports[1]["mac"])
        out = self.app.ctl("ports")
        self.assertIn(f"address: {IP10}/24, mac {self.mac}, VLAN 10", out)
        self.assertIn(f"address: {IP20}/24, mac {self.mac}, VLAN 20", out)

    def test_2_each_vlan_answers_ntpdig_and_ping(self):
        for vid, ip in ((10, IP10), (20, IP20)):
            with self.subTest(ip):
                ns = self.vlan_ns[vid]
                r = ns.exec("ntpdig", "-j", "-t", "2", ip, check=False)
                self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
                self.assertEqual(json.loads(r.stdout)["stratum"], 2, r.stdout)
                p = ns.exec("ping", "-c", "2", "-i", "0.2", "-W", "1", ip, check=False)
                self.assertIn("2 received", p.stdout, p.stdout + p.stderr)

    def test_3_only_on_its_own_vlan_and_address(self):
        from scapy.all import IP, UDP, Dot1Q, Ether, Raw  # noqa: imported late: slow
        src = self.cli.exec("cat", "/sys/class/net/cli0/address").stdout.strip()
        req = bytes([0x23]) + bytes(39) + bytes.fromhex("0102030405060708")

        def frame(vid, dst, src_ip):
            l2 = Ether(dst=self.mac, src=src) / Dot1Q(vlan=vid) if vid is not None else Ether(dst=self.mac, src=src)
            return bytes(l2 / IP(src=src_ip, dst=dst) / UDP(sport=40100, dport=123) / Raw(req))

        def answer(g):  # to our request (not the appliance's own polls of chronyd)
            e = Ether(g)
            return UDP in e and e[UDP].sport == 123 and e[UDP].dport == 40100

        cases = [
            ("VLAN 20's address on VLAN 10", frame(10, IP20, CLI10), "drop_not_for_us"),
            ("VLAN 10's address on VLAN 20", frame(20, IP10, CLI20), "drop_not_for_us"),
            ("VLAN 30", frame(30, IP10, CLI10), "drop_vlan_not_ours"),
            ("untagged", frame(None, IP10, CLI10), "drop_vlan_not_ours"),
        ]
        for what, f, counter in cases:
            with self.subTest(what):
                before = self.counters().get(counter, 0)
                got = [g for g in self.send_frames([f], 0.3) if answer(g)]
                self.assertEqual(got, [], f"{what}: answered")
                wait_for(lambda: self.counters().get(counter, 0) >= before + 1, 5, what=f"{counter} to move")
        # And on its own VLAN, the answer goes back on that VLAN.
        for vid, ip, src_ip in ((10, IP10, CLI10), (20, IP20, CLI20)):
            got = [Ether(g) for g in self.send_frames([frame(vid, ip, src_ip)], 0.5) if answer(g)]
            self.assertEqual(len(got), 1, got)
            self.assertEqual(got[0][Dot1Q].vlan, vid, repr(got[0]))
            self.assertEqual(got[0][IP].src, ip)

    def test_4_chronyd_on_vlan_20_selects_the_appliance(self):
        c = netlab.Chrony(self.vlan_ns[20], netlab.workdir("vlancl"), [f"server {IP20} minpoll -4 maxpoll -4 iburst"])
        try:
            def selected():
                line = [ln for ln in c.chronyc("sources").splitlines() if IP20 in ln]
                return line and line[0].startswith("^*") and line[0]
            line = wait_for(selected, 30, interval=0.5, what="chronyd to select the appliance on VLAN 20")
            print(f"\n  chronyd on VLAN 20: {line}", file=sys.stderr)
        finally:
            c.stop()

    def test_5_the_appliance_synchronizes_to_chronyd_on_vlan_20(self):
        s = self.app.status()["system"]  # setUpClass waited for it
        self.assertTrue(s.get("synchronized") and s.get("stratum") == 2, s)
        assoc = [a for a in self.app.status().get("associations", []) if a["address"] == CLI20]
        self.assertTrue(assoc and assoc[0]["reach"] != 0, assoc)
        print(f"\n  appliance: stratum {s['stratum']} from {CLI20} (reach {assoc[0]['reach']:o}); "
              f"control_tx {self.counters().get('control_tx', 0)}", file=sys.stderr)


if __name__ == "__main__":
    unittest.main()
