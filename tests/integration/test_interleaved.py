#!/usr/bin/python3
"""Issue 12: interleaved mode (RFC 9769) served by the dataplane to a real
chronyd -x client (`server APPLIANCE xleave`).

The appliance (refclock_master 2, virtual clock) serves on a veth through
net_af_packet; chronyd polls four times a second. Checked: chronyd sees the
appliance's answers as interleaved (chronyc ntpdata `Interleaved : Yes`) and
takes them (its offsets stay within 1 ms of the host clock, which the
virtual clock follows, so no answer carried another client's or a stale
transmit time); the workers count the interleaved answers; ntpdig, a basic
client, is answered in basic mode meanwhile; with `ntp.interleaved = false`
the same chronyd gets basic answers only. chronyd's sourcestats standard
deviation, basic against interleaved, is printed.
"""
import os
import re
import sys
import unittest

sys.path.insert(0, os.path.dirname(__file__))
import netlab  # noqa: E402
from netlab import wait_for  # noqa: E402

SERVER_IP = "10.0.1.31"
CLIENT_IP = "10.0.1.100"
SAMPLES = 16  # chronyd's samples before its statistics are read (4 s at minpoll -2)


def ntpdata(chrony):
    """chronyc ntpdata of the one source, as {field: value}."""
    out = {}
    for line in chrony.chronyc("ntpdata").splitlines():
        k, sep, v = line.partition(":")
        if sep:
            out[k.strip()] = v.strip()
    return out


def sourcestats(chrony):
    """The source's (samples, std dev in s) from chronyc -c sourcestats."""
    for line in chrony.chronyc("-c", "sourcestats").splitlines():
        f = line.split(",")
        if len(f) >= 8 and f[0] == SERVER_IP:
            return int(f[1]), float(f[7])
    return 0, 0.0


class InterleavedServiceTest(unittest.TestCase):
    def lab(self, tag, interleaved, interface_extra=""):
        srv, cli = netlab.appliance_link(tag, CLIENT_IP)
        d = netlab.workdir(tag)
        sysname = netlab.unique("X")
        ntp = netlab.LAB_NTP + ("" if interleaved else "\ninterleaved = false")
        app = netlab.Appliance(srv, sysname, d, netlab.appliance_config(
            sysname, "net_af_packet0,iface=dp0", f"{SERVER_IP}/24", refclock_master=2, ntp=ntp,
            interface_extra=interface_extra))
        app.start()
        self.addCleanup(app.stop)
        wait_for(lambda: (app.status() or {}).get("system", {}).get("synchronized"), 15,
                 what="the control plane to publish a synchronized state")
        chrony = netlab.Chrony(cli, d, [f"server {SERVER_IP} iburst xleave minpoll -2 maxpoll -2"])
        self.addCleanup(chrony.stop)
        return app, cli, chrony

    def interleaved_replies(self, app):
        return netlab.worker_totals(app.status()).get("ntp_interleaved_replies", 0)

    def test_chronyd_xleave_client_gets_interleaved_answers(self):
        app, cli, chrony = self.lab("xl", True)
        try:
            wait_for(lambda: ntpdata(chrony).get("Interleaved") == "Yes", 30, interval=0.25,
                     what="chronyd to take an interleaved answer")
        except Exception:
            self.fail(f"chronyd: {chrony.chronyc('ntpdata')}\nappliance: {netlab.worker_totals(app.status())}")
        # /status follows the workers' counters within a poll.
        n0 = wait_for(lambda: self.interleaved_replies(app), 5, what="the workers to count interleaved answers")
        wait_for(lambda: sourcestats(chrony)[0] >= SAMPLES, 60, interval=0.5, what=f"{SAMPLES} samples")
        d = ntpdata(chrony)
        self.assertEqual(d.get("Interleaved"), "Yes", d)
        offset_s = float(re.match(r"[+-]?[0-9.e+-]+", d["Offset"]).group(0))
        delay_s = float(re.match(r"[0-9.e+-]+", d["Peer delay"]).group(0))
        self.assertLess(abs(offset_s), 1e-3, d)
        self.assertLess(delay_s, 5e-3, d)
        self.assertGreater(self.interleaved_replies(app), n0, "answers go on interleaved")
        n, sd = sourcestats(chrony)
        # A basic client meanwhile: ntpdig checks that the origin is its own
        # transmit timestamp (a basic answer).
        r = cli.exec("ntpdig", "-t", "2", SERVER_IP, check=False)
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        print(f"\n  chronyd xleave: Interleaved {d['Interleaved']}, offset {offset_s * 1e6:+.1f} us, "
              f"peer delay {delay_s * 1e6:.1f} us, std dev {sd * 1e6:.1f} us over {n} samples; "
              f"{self.interleaved_replies(app)} interleaved answers; ntpdig answered in basic mode", file=sys.stderr)

    def test_emulated_nic_transmit_timestamps(self):
        # The emulated NIC stamps every frame it sends (a TX callback): the
        # transmit times kept are the NIC's, through the NIC-to-TSC map.
        app, cli, chrony = self.lab("xh", True, interface_extra="emulated_nic_clock = true")
        wait_for(lambda: ntpdata(chrony).get("Interleaved") == "Yes", 30, interval=0.25,
                 what="chronyd to take an interleaved answer")

        def port():
            return app.status()["ports"][0]
        p0 = wait_for(lambda: port() if port().get("tx_hw_timestamps", 0) > 0 else None, 10,
                      what="transmit times from the NIC")
        wait_for(lambda: sourcestats(chrony)[0] >= SAMPLES, 60, interval=0.5, what=f"{SAMPLES} samples")
        d = ntpdata(chrony)
        self.assertEqual(d.get("Interleaved"), "Yes", d)
        offset_s = float(re.match(r"[+-]?[0-9.e+-]+", d["Offset"]).group(0))
        self.assertLess(abs(offset_s), 1e-3, d)
        p1 = port()
        self.assertGreater(p1["tx_hw_timestamps"], p0["tx_hw_timestamps"])
        # Software only before the NIC map is first valid.
        self.assertEqual(p1["tx_sw_timestamps"], p0["tx_sw_timestamps"], p1)
        self.assertIn("transmit times kept (interleaved answers)", app.ctl("ports"))
        n, sd = sourcestats(chrony)
        print(f"\n  emulated NIC transmit timestamps: {p1['tx_hw_timestamps']} kept from the NIC, "
              f"{p1['tx_sw_timestamps']} from the TSC; chronyd offset {d['Offset']}, peer delay {d['Peer delay']}, "
              f"std dev {sd * 1e6:.1f} us over {n} samples", file=sys.stderr)

    def test_off_answers_basic_only(self):
        app, cli, chrony = self.lab("xo", False)
        wait_for(lambda: sourcestats(chrony)[0] >= SAMPLES, 60, interval=0.5, what=f"{SAMPLES} samples")
        d = ntpdata(chrony)
        self.assertEqual(d.get("Interleaved"), "No", d)
        self.assertEqual(self.interleaved_replies(app), 0)
        self.assertIn("client table", app.log("dataplane"))
        self.assertNotIn("interleaved mode", app.log("dataplane"))
        n, sd = sourcestats(chrony)
        print(f"\n  ntp.interleaved = false: chronyd xleave gets basic answers, offset {d['Offset']}, peer delay "
              f"{d['Peer delay']}, std dev {sd * 1e6:.1f} us over {n} samples", file=sys.stderr)


if __name__ == "__main__":
    unittest.main()
