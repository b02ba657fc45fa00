#!/usr/bin/python3
"""Issue 11: NTS end to end with a second real NTS client, NTPsec's ntpd
(1.2.2, Debian 12's, unpacked by deploy/bootstrap.sh into
/opt/ntpsec-client: the package conflicts with chrony). The lab is
test_nts_ke's: ntp-control's NTS-KE server on a kernel address of the
appliance's namespace (10.0.3.1:4460, a certificate with that IP address
as its SAN from a CA this test makes), whose NTPv4 Server Negotiation
record names the dataplane's address (10.0.1.31), where ntpd's
NTS-protected requests are answered by the dataplane's workers.

ntpd never touches the host clock: it runs without CAP_SYS_TIME (capsh,
checked in its /proc status), with `disable ntp` and `disable kernel`; it
still calls ntp_adjtime at start, which fails with EPERM, and the test
checks that the kernel's clock state (adjtimex) and CLOCK_REALTIME against
CLOCK_MONOTONIC are as they were.

Checked: NTS-KE succeeds (ntpd's KE probes good, the certificate valid, the
server record followed), ntpd's NTS requests are answered and authenticated
(its recvs good, none bad; the association's auth "ok"; the dataplane counts
NTS replies and no NAK), the appliance becomes ntpd's system peer; with a CA
that did not sign the certificate, NTS-KE fails and no NTS request is made.
"""
import ctypes
import os
import re
import sys
import time
import unittest

sys.path.insert(0, os.path.dirname(__file__))
import netlab  # noqa: E402
from netlab import wait_for  # noqa: E402

NTP_IP = "10.0.1.31"      # the dataplane's
CLIENT_IP = "10.0.1.100"
KE_IP = "10.0.3.1"        # the kernel's, in the appliance's namespace
KE_CLIENT_IP = "10.0.3.2"
KE_PORT = 4460
GOOD = 8                  # authenticated answers asked of ntpd


class Timex(ctypes.Structure):
    # struct timex (<sys/timex.h>), with room for its reserved tail.
    _fields_ = [("modes", ctypes.c_uint), ("offset", ctypes.c_long), ("freq", ctypes.c_long),
                ("maxerror", ctypes.c_long), ("esterror", ctypes.c_long), ("status", ctypes.c_int),
                ("constant", ctypes.c_long), ("precision", ctypes.c_long), ("tolerance", ctypes.c_long),
                ("tv_sec", ctypes.c_long), ("tv_usec", ctypes.c_long), ("tick", ctypes.c_long),
                ("rest", ctypes.c_long * 32)]


def host_clock():
    """The kernel clock's discipline state (adjtimex with modes 0: reads
    only) and CLOCK_REALTIME - CLOCK_MONOTONIC in ns (a step moves it, a
    slew of the discipline does not, but shows in offset/freq)."""
    t = Timex()
    state = ctypes.CDLL(None, use_errno=True).adjtimex(ctypes.byref(t))
    return {"state": state, "offset": t.offset, "freq": t.freq, "status": t.status, "constant": t.constant,
            "tick": t.tick, "realtime_minus_monotonic_ns": time.clock_gettime_ns(time.CLOCK_REALTIME)
            - time.clock_gettime_ns(time.CLOCK_MONOTONIC)}


@unittest.skipUnless(os.access(netlab.NTPSEC_NTPD, os.X_OK) and os.access(netlab.NTPSEC_NTPQ, os.X_OK),
                     f"no NTPsec ntpd/ntpq in {netlab.NTPSEC_DIR} (deploy/bootstrap.sh unpacks them)")
class NtsNtpsecTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.srv, cls.cli = netlab.appliance_link("ns", CLIENT_IP)
        netlab.veth_pair(cls.srv, "ke0", cls.cli, "cke0")
        cls.srv.exec("ip", "addr", "add", f"{KE_IP}/24", "dev", "ke0")
        cls.cli.exec("ip", "addr", "add", f"{KE_CLIENT_IP}/24", "dev", "cke0")
        cls.dir = netlab.workdir("ntsntpsec")
        cls.ca, cert, key = netlab.make_certificates(cls.dir, KE_IP)
        # A second CA, which did not sign the appliance's certificate.
        other = os.path.join(cls.dir, "other")
        os.mkdir(other)
        cls.other_ca = netlab.make_certificates(other, KE_IP)[0]
        sysname = netlab.unique("P")
        cls.app = netlab.Appliance(cls.srv, sysname, cls.dir, netlab.appliance_config(
            sysname, "net_af_packet0,iface=dp0", f"{NTP_IP}/24", refclock_master=2,
            extra=(f'[nts]\ncookie_keys_file = "{cls.dir}/ntskeys"\nke_listen = "{KE_IP}:{KE_PORT}"\n'
                   f'certificate = "{cert}"\nprivate_key = "{key}"\nntp_server = "{NTP_IP}"\n')))
        cls.app.start()
        # Its last line at start: listening, with a key the dataplane holds.
        wait_for(lambda: cls.app.log_contains("control", f"NTS-KE server on {KE_IP}:{KE_PORT} ("), 15,
                 what="the NTS-KE server")
        wait_for(lambda: (cls.app.status() or {}).get("system", {}).get("synchronized"), 15,
                 what="the control plane to publish a synchronized state")
        cls.clock_before = host_clock()
        cls.ntpd = cls.start_ntpd(cls.ca)

    @classmethod
    def start_ntpd(cls, ca):
        # The server line names the NTS-KE server; the NTP server is the one
        # its Server record names. Polls every second (minpoll 0).
        return netlab.Ntpsec(cls.cli, cls.dir, [f"server {KE_IP} nts ca {ca} iburst minpoll 0 maxpoll 0"])

    def counters(self):
        return netlab.worker_totals(self.app.status())

    def settled_counters(self):
        """The dataplane's counters once they have stopped moving: its NTS
        counters the same in two /status snapshots 1.5 s apart (after a
        client stopped, its last answers are in them)."""
        def nts(c):
            return {k: v for k, v in c.items() if k.startswith("nts_")}
        first = self.counters()
        time.sleep(1.5)
        return nts(first) == nts(self.counters()) and first

    def ke_counters(self):
        """The NTS-KE server's counters (its /status entry's numbers)."""
        ke = (self.app.status() or {}).get("nts_ke")
        return {k: v for k, v in ke[0].items() if isinstance(v, int)} if ke else {}

    def diagnostics(self, ntpd):
        try:
            q = f"{ntpd.ntpq('peers', 'associations')}{ntpd.nts_counters()}"
        except Exception as e:  # ntpd may be what failed
            q = f"({e})"
        return f"\nntpq: {q}\nntpd log:\n{ntpd.log()[-4000:]}\ncontrol log:\n{self.app.log('control')[-2000:]}"

    def wait_ntpd(self, ntpd, cond, timeout, what):
        try:
            return wait_for(cond, timeout, interval=0.5, what=what)
        except TimeoutError as e:
            self.fail(f"{e}{self.diagnostics(ntpd)}")

    def assert_host_clock_untouched(self):
        after = host_clock()
        before = dict(self.clock_before)
        step = after.pop("realtime_minus_monotonic_ns") - before.pop("realtime_minus_monotonic_ns")
        self.assertEqual(after, before, "the kernel's clock discipline state changed")
        self.assertLess(abs(step), 1_000_000, f"CLOCK_REALTIME moved {step} ns against CLOCK_MONOTONIC")
        return step

    def test_1_nts_ke_succeeds(self):
        self.wait_ntpd(self.ntpd, lambda: self.ntpd.nts_counters().get("nts_ke_probes_good", 0) >= 1, 30,
                       "ntpd's NTS-KE to succeed")
        log = self.ntpd.log()
        self.assertIn("NTSc: certificate is valid.", log)
        # The Server record is followed: NTP goes to the dataplane's address.
        self.assertIn(f"NTSc: Using server {NTP_IP}=>{NTP_IP}\n", log)
        self.assertIn(f"DNS: Server taking: {NTP_IP}\n", log)
        self.assertRegex(log, r"NTSc: Got 8 cookies, length 100, aead=15\.")
        c = self.ntpd.nts_counters()
        self.assertEqual(c.get("nts_ke_probes_bad"), 0, self.diagnostics(self.ntpd))
        # /status follows the NTS-KE server's counters within a second or so.
        ke = wait_for(lambda: self.ke_counters().get("served", 0) >= 1 and self.ke_counters(), 10,
                      what="the appliance to count the NTS-KE served")
        self.assertEqual(ke.get("cookies", 0), 8 * ke.get("served", 0), ke)
        print(f"\n  ntpd NTS-KE: {c}; appliance KE {ke}", file=sys.stderr)

    def test_2_nts_answers_are_authenticated(self):
        self.wait_ntpd(self.ntpd, lambda: self.ntpd.nts_counters().get("nts_client_recv_good", 0) >= GOOD, 60,
                       f"{GOOD} authenticated NTS answers")
        c = self.ntpd.nts_counters()
        self.assertEqual(c.get("nts_client_recv_bad"), 0, c)
        self.assertGreaterEqual(c.get("nts_client_send", 0), c["nts_client_recv_good"], c)
        assoc = self.ntpd.associations()
        self.assertEqual(len(assoc), 1, assoc)
        self.assertEqual(assoc[0]["auth"], "ok", assoc)
        v = self.ntpd.variables(assoc[0]["assid"], ("srcadr", "reach", "flash"))
        self.assertEqual(v.get("srcadr"), NTP_IP, v)
        # Every answer ntpd took is one the dataplane sent under NTS; none NAKed.
        d = netlab.wait_counter_delta(self.app, {}, lambda d: d.get("nts_replies", 0) >= c["nts_client_recv_good"],
                                      "the dataplane's NTS replies")
        self.assertEqual(d.get("nts_naks", 0), 0, d)
        print(f"\n  ntpd NTS: {c}; dataplane nts_replies {d.get('nts_replies')}, nts_naks 0; {v}", file=sys.stderr)

    def system_peer(self):
        a = self.ntpd.associations()
        return a and a[0]["condition"] == "sys.peer" and a[0]

    def test_3_the_appliance_is_the_system_peer(self):
        self.wait_ntpd(self.ntpd, self.system_peer, 90, "ntpd to select the appliance")
        peers = self.ntpd.ntpq("peers")
        self.assertRegex(peers, rf"(?m)^\*{re.escape(NTP_IP)}\s")
        a = self.system_peer()
        v = self.ntpd.variables(a["assid"], ("srcadr", "stratum", "reach", "offset", "delay", "jitter", "flash"))
        self.assertEqual(v.get("stratum"), "2", v)
        self.assertEqual(int(v.get("flash", "-1"), 16), 0, v)  # no test failed
        sysv = self.ntpd.variables(0, ("peeradr", "stratum", "offset", "sys_jitter"))
        self.assertEqual(sysv.get("stratum"), "3", sysv)
        print(f"\n  ntpd peers:\n{peers.rstrip()}\n  peer {v}\n  system {sysv}", file=sys.stderr)

    def test_4_the_host_clock_is_untouched(self):
        # ntpd has been running with the capability dropped: what it tried
        # (ntp_adjtime at start) failed, and nothing in the kernel moved.
        for k in ("CapEff", "CapPrm", "CapBnd"):
            self.assertFalse(self.ntpd.caps[k] >> netlab.CAP_SYS_TIME & 1, self.ntpd.caps)
        log = self.ntpd.log()
        adjtime = re.findall(r"(?m)^.*ntp_adjtime.*$", log)
        self.assertTrue(adjtime, "ntpd 1.2.2 logs its ntp_adjtime at start")
        for line in adjtime:
            self.assertIn("ntp_adjtime: Operation not permitted", line)
        tried = [re.search(r"CLOCK: (\w+):", line).group(1) for line in adjtime]
        self.assertNotRegex(log, r"(?i)\bstep(ped)?\b|time reset|\bslew")
        step = self.assert_host_clock_untouched()
        print(f"\n  ntp_adjtime refused (EPERM) in {tried}; adjtimex state unchanged "
              f"({self.clock_before['status']:#x} status, freq {self.clock_before['freq']}); "
              f"CLOCK_REALTIME - CLOCK_MONOTONIC moved {step} ns", file=sys.stderr)

    def test_5_a_wrong_ca_fails_nts_ke(self):
        self.ntpd.stop()
        before = wait_for(self.settled_counters, 15, what="the dataplane's counters to settle")
        ke_before = self.ke_counters()
        bad = self.start_ntpd(self.other_ca)
        try:
            self.wait_ntpd(bad, lambda: bad.nts_counters().get("nts_ke_probes_bad", 0) >= 1, 30,
                           "ntpd's NTS-KE to fail")
            self.assertRegex(bad.log(), r"NTSc: certificate invalid: \d+=>")
            c = bad.nts_counters()
            self.assertEqual((c.get("nts_ke_probes_good"), c.get("nts_client_send"), c.get("nts_client_recv_good")),
                             (0, 0, 0), c)
            d = netlab.counter_delta(before, self.counters())
            self.assertEqual(d.get("nts_replies", 0), 0, d)
            # The appliance took the connection (ntpd checks the certificate
            # after the handshake, then closes) and served nothing.
            ke = wait_for(lambda: (lambda k: k.get("accepted", 0) >= 1 and k)(
                netlab.counter_delta(ke_before, self.ke_counters())), 10, what="the appliance to count the connection")
            self.assertEqual(ke.get("served", 0), 0, ke)
            a = bad.associations()
            self.assertEqual([(x["auth"], x["reach"]) for x in a], [("bad", "no")], a)
            print(f"\n  wrong CA: ntpd {c}; appliance KE delta {ke}", file=sys.stderr)
        finally:
            bad.stop()
        self.assert_host_clock_untouched()


if __name__ == "__main__":
    unittest.main()
