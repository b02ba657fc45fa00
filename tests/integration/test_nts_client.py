#!/usr/bin/python3
"""Issue 11: the appliance as an NTS client (RFC 8915) of a real chronyd
(-x, `ntsserverkey`/`ntsservercert`, its own test CA), with
`[[server]] nts = true`: ntp-control's NTS-KE (TLS 1.3 over TCP) goes out
through the dataplane's exception path, its NTS-protected NTP through the
dataplane's association endpoints.

Checked, in order, on one appliance:
1. with a CA that did not sign chronyd's certificate: NTS-KE fails on the
   certificate, `ntpctl sessions` says so, nothing is synchronized, and
   chronyd saw a connection but no NTP packet;
2. SIGHUP with the right CA: NTS-KE gives eight cookies, the answers are
   authenticated, the server is the system peer, and chronyd counts
   authenticated NTP packets;
3. chronyd restarted (new server keys: our cookies no longer open there):
   chronyd answers with an NTS NAK, the appliance runs NTS-KE again and is
   authenticated again.
"""
import os
import re
import sys
import unittest

sys.path.insert(0, os.path.dirname(__file__))
import netlab  # noqa: E402
from netlab import wait_for  # noqa: E402

APPLIANCE_IP = "10.0.1.31"
CHRONY_IP = "10.0.1.100"


def chrony_server_lines(cert, key):
    return [
        "local stratum 1",
        "allow",  # chronyd applies its NTP access rules to NTS-KE too
        f"ntsserverkey {key}",
        f"ntsservercert {cert}",
    ]


class NtsClientTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.srv, cls.cli = netlab.appliance_link("nc", CHRONY_IP)
        cls.dir = netlab.workdir("ntsc")
        good, wrong = os.path.join(cls.dir, "good"), os.path.join(cls.dir, "wrong")
        os.makedirs(good)
        os.makedirs(wrong)
        cls.ca, cls.cert, cls.key = netlab.make_certificates(good, CHRONY_IP)
        cls.wrong_ca, _, _ = netlab.make_certificates(wrong, CHRONY_IP)
        cls.chrony = netlab.Chrony(cls.cli, cls.dir, chrony_server_lines(cls.cert, cls.key))
        cls.sysname = netlab.unique("N")
        cls.app = netlab.Appliance(cls.srv, cls.sysname, cls.dir, cls.config(cls.wrong_ca))
        cls.app.start()

    @classmethod
    def config(cls, ca):
        return netlab.appliance_config(
            cls.sysname, "net_af_packet0,iface=dp0", f"{APPLIANCE_IP}/24",
            clock='source = "virtual"\noffset_ms = 20',
            interface_extra="exception_path = true",
            servers=[{"address": CHRONY_IP, "nts": True, "nts_ca_file": ca, "iburst": True,
                      "minpoll": -1, "maxpoll": -1}])

    def session(self):
        s = self.app.status() or {}
        return (s.get("associations") or [{}])[0]

    def serverstat(self, name):
        m = re.search(rf"{name}\s*:\s*(\d+)", self.chrony.chronyc("serverstats"))
        return int(m.group(1)) if m else -1

    def explain(self):
        return (f"\n{self.app.ctl('sessions', '--verbose', check=False)}\n"
                f"{self.app.log('control')[-3000:]}\nchronyd serverstats:\n{self.chrony.chronyc('serverstats')}")

    def test_1_a_wrong_ca_fails_and_says_why(self):
        try:
            wait_for(lambda: self.session().get("nts") == "ke failed", 30, interval=0.2,
                     what="NTS-KE to fail on the certificate")
        except Exception:
            self.fail(self.explain())
        s = self.session()
        self.assertIn("TLS handshake", s.get("nts_error", ""), s)
        self.assertIn("NOT trusted", s["nts_error"], s)
        self.assertNotEqual(s.get("authentication"), "ok", s)
        sessions = self.app.ctl("sessions")
        self.assertRegex(sessions, r" nts: ke failed \(TLS handshake: .*NOT trusted")
        self.assertFalse((self.app.status() or {}).get("system", {}).get("synchronized"), self.explain())
        self.assertGreaterEqual(self.serverstat("NTS-KE connections accepted"), 1, self.explain())
        self.assertEqual(self.serverstat("Authenticated NTP packets"), 0, self.explain())
        self.assertIn(f"NTS-KE with {CHRONY_IP}:4460 failed: TLS handshake", self.app.log("control"))

    def test_2_right_ca_authenticated_and_selected(self):
        with open(self.app.config_path, "w") as f:
            f.write(netlab.with_lab_lock_dir(self.config(self.ca), self.sysname))
        self.app.reload("control")
        try:
            wait_for(lambda: self.session().get("selection") == "system peer"
                     and (self.app.status() or {}).get("system", {}).get("synchronized"), 60, interval=0.2,
                     what="the NTS server to be the system peer, and the appliance synchronized")
        except Exception:
            self.fail(self.explain())
        s = self.session()
        self.assertEqual(s.get("nts"), "ok", s)
        self.assertEqual(s.get("authentication"), "ok", s)
        self.assertGreaterEqual(s.get("nts_cookies", 0), 7, s)
        self.assertEqual(s.get("nts_ke_ok"), 1, s)
        self.assertEqual(s.get("stratum"), 1, s)  # chronyd's local stratum 1
        system = self.app.status()["system"]
        self.assertTrue(system["synchronized"], system)
        self.assertEqual(system["stratum"], 2, system)  # one hop below it
        # Our virtual clock started 20 ms ahead of chronyd's (the host's):
        # the authenticated samples measured that, and it is being slewed
        # out (at the 500 ppm limit: 40 s for all of it).
        self.assertLess(system["frequency_ppm"], -100, system)
        self.assertLess(system["clock_minus_host_ns"], 20_000_000, system)
        wait_for(lambda: self.serverstat("Authenticated NTP packets") >= 4, 20, interval=0.2,
                 what="chronyd to count authenticated NTP packets")
        sessions = self.app.ctl("sessions")
        self.assertIn(" nts: ok\n", sessions)
        self.assertIn(" authentication: ok\n", sessions)
        print(f"\n  chronyd: {self.serverstat('NTS-KE connections accepted')} NTS-KE accepted, "
              f"{self.serverstat('Authenticated NTP packets')} authenticated NTP packets; appliance: "
              f"{s.get('nts_cookies')} cookies, served clock minus host {system['clock_minus_host_ns'] / 1e6:+.3f} ms "
              f"(it started at +20 ms), slewing at {system['frequency_ppm']:+.1f} ppm", file=sys.stderr)
        self.assertIn(f"NTS-KE with {CHRONY_IP}:4460: 8 cookie(s)", self.app.log("control"))

    def test_3_chronyd_restarted_naks_and_nts_ke_again(self):
        before = self.session()
        self.chrony.stop()
        # Without ntsdumpdir the new chronyd has new server keys: our
        # cookies do not open there.
        type(self).chrony = netlab.Chrony(self.cli, self.dir, chrony_server_lines(self.cert, self.key))
        try:
            wait_for(lambda: self.session().get("nts_naks", 0) >= before.get("nts_naks", 0) + 1, 60, interval=0.2,
                     what="an NTS NAK from the restarted chronyd")
            wait_for(lambda: self.session().get("nts_ke_ok", 0) >= before.get("nts_ke_ok", 0) + 1
                     and self.session().get("authentication") == "ok", 60, interval=0.2,
                     what="NTS-KE again and authenticated answers")
        except Exception:
            self.fail(self.explain())
        s = self.session()
        self.assertEqual(s.get("nts"), "ok", s)
        wait_for(lambda: self.serverstat("Authenticated NTP packets") >= 1, 20, interval=0.2,
                 what="the new chronyd to count authenticated NTP packets")
        print(f"\n  after chronyd's restart: {s.get('nts_naks')} NAK(s), NTS-KE {before.get('nts_ke_ok')} -> "
              f"{s.get('nts_ke_ok')}, nts {s.get('nts')}", file=sys.stderr)


if __name__ == "__main__":
    unittest.main()
