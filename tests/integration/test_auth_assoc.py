#!/usr/bin/python3
"""Symmetric-key authentication of the appliance's own associations (issue 10).

The appliance (auth.authenticate = true, key 1 AES128-CMAC trusted) in one
namespace, three real chronyd (always -x) in the lab's, each on its own
address, sharing a keys file of this test's making (0600, in a temporary
directory removed at exit):
- GOOD, `local stratum 3`, the same secret: the appliance's [[server]] with
  key = 1 is authenticated (`ntpctl sessions`: authentication: ok) and the
  appliance synchronizes to it;
- BAD, the same key ID with another secret: chronyd drops our requests
  (their MAC does not verify), authentication failed, reach 0, never
  selected; with GOOD and PEER stopped (the last test), the appliance is
  not synchronized;
- PEER, `peer APPLIANCE key 1`: the appliance's keyed [[peer]] is
  authenticated both ways (our session ok, chronyc ntpdata: Authenticated Yes);
  a spoofer sending unauthenticated mode-1 packets from PEER's address
  is refused by the dataplane (the endpoint's key: a valid MAC before the
  endpoint's budget, not_authenticated otherwise) and changes nothing of
  the association, not even its counters, and
  mode-1 packets from other addresses of access.peer create no session;
- SIGHUP re-reads the keys file: one with an error is refused (file:line in
  the log) and the running keys stay; a new secret for key 1 is used at once
  (the good server stops answering: failed), the right one again brings it back.
"""
import os
import re
import sys
import tempfile
import time
import unittest

sys.path.insert(0, os.path.dirname(__file__))
import netlab  # noqa: E402
from netlab import wait_for  # noqa: E402

APPLIANCE_IP = "10.0.12.10"
GOOD_IP = "10.0.12.20"
BAD_IP = "10.0.12.21"
PEER_IP = "10.0.12.22"
SPOOF_PREFIX = "10.0.12.96/28"  # in access.peer, nobody's
SECRET = "HEX:" + "5A" * 8 + "C3" * 8
WRONG = "HEX:" + "5A" * 8 + "C4" * 8


def write_keys(directory, name, secret):
    path = os.path.join(directory, name)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(f"# issue 10 test keys\n1 AES128 {secret}\n")
    return path


def session_blocks(text):
    """`ntpctl sessions` as {address: block text}."""
    blocks = {}
    for block in text.split("\n\n"):
        m = re.search(r"clock source: (\S+)", block)
        if m:
            blocks[m.group(1)] = block
    return blocks


class AuthAssocTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.app_ns = netlab.Namespace(netlab.unique("ntpaua"))
        cls.lab_ns = netlab.Namespace(netlab.unique("ntpaul"))
        netlab.veth_pair(cls.app_ns, "dp0", cls.lab_ns, "eth0")
        netlab.dataplane_side(cls.app_ns, "dp0")
        for ip in (GOOD_IP, BAD_IP, PEER_IP):
            cls.lab_ns.exec("ip", "addr", "add", f"{ip}/24", "dev", "eth0")
        cls.dir = netlab.workdir("auth")
        cls.keys_dir = tempfile.mkdtemp(prefix="keys-", dir=cls.dir)
        os.chmod(cls.keys_dir, 0o700)
        good = write_keys(cls.keys_dir, "good.keys", SECRET)
        wrong = write_keys(cls.keys_dir, "wrong.keys", WRONG)
        # The appliance's own copy (test_5 rewrites it; chronyd reads its file once).
        cls.keys = write_keys(cls.keys_dir, "appliance.keys", SECRET)
        cls.good = netlab.Chrony(cls.lab_ns, cls.dir, ["local stratum 3", "allow all", f"keyfile {good}",
                                                       f"bindaddress {GOOD_IP}"])
        cls.bad = netlab.Chrony(cls.lab_ns, cls.dir, ["local stratum 3", "allow all", f"keyfile {wrong}",
                                                      f"bindaddress {BAD_IP}"])
        cls.peer = netlab.Chrony(cls.lab_ns, cls.dir, ["local stratum 6", "allow all", f"keyfile {good}",
                                                       f"bindaddress {PEER_IP}",
                                                       f"peer {APPLIANCE_IP} key 1 minpoll 0 maxpoll 0"])
        sysname = netlab.unique("A")
        auth = f'[auth]\nkeys_file = "{cls.keys}"\ntrusted_keys = [1]\nauthenticate = true\n'
        poll = {"minpoll": 0, "maxpoll": 1, "iburst": True, "key": 1}
        cls.app = netlab.Appliance(cls.app_ns, sysname, cls.dir, netlab.appliance_config(
            sysname, "net_af_packet0,iface=dp0", f"{APPLIANCE_IP}/24",
            access='peer = ["10.0.12.0/24"]',
            servers=[{"address": GOOD_IP, **poll}, {"address": BAD_IP, **poll}],
            peers=[{"address": PEER_IP, "minpoll": 1, "maxpoll": 1, "key": 1}], extra=auth)).start()

    def assoc(self, address, status=None):
        for a in (status or self.app.status() or {}).get("associations", []):
            if a["address"] == address:
                return a
        return None

    def test_1_good_server_authenticated_and_selected(self):
        wait_for(lambda: (a := self.assoc(GOOD_IP)) and a["authentication"] == "ok" and
                 a["selection"] == "system peer" and self.app.status()["system"]["synchronized"], 90,
                 interval=0.5, what="the keyed server with the right secret to be authenticated and selected")
        a = self.assoc(GOOD_IP)
        blocks = session_blocks(self.app.ctl("sessions"))
        print(f"\n  {GOOD_IP} (key 1 AES128, same secret): authentication {a['authentication']}, "
              f"{a['auth_ok']} verified packets, selection {a['selection']}, reach {a['reach']:o}", file=sys.stderr)
        self.assertIn(" authentication: ok\n", blocks[GOOD_IP] + "\n")
        self.assertGreater(a["auth_ok"], 0)
        self.assertEqual(a["auth_bad"] + a["auth_missing"] + a["crypto_nak"], 0, a)
        metrics = self.app.http("/metrics")
        self.assertRegex(metrics, r'ntp_association_authenticated\{address="%s"[^}]*authentication="ok"\} 1'
                         % re.escape(GOOD_IP))

    def test_2_wrong_secret_fails_and_is_never_selected(self):
        # chronyd drops a request whose MAC does not verify (no answer, no
        # crypto-NAK): our requests reach it, nothing of it is ever used.
        def stats():
            text = self.bad.chronyc("serverstats")
            return {k.strip(): int(v) for k, v in re.findall(r"^([^:\n]+):\s*(\d+)\s*$", text, re.M)}
        wait_for(lambda: stats().get("NTP packets received", 0) >= 10, 60, interval=0.5,
                 what="ten of our requests at the wrong-secret server")
        first = stats()
        # Pending while its first eight requests may still be answered, then failed.
        a = wait_for(lambda: (a := self.assoc(BAD_IP)) and a["authentication"] != "pending" and a, 30, interval=0.5,
                     what="the wrong-secret server's association past pending")
        wait_for(lambda: stats().get("NTP packets received", 0) > first.get("NTP packets received", 0), 30,
                 interval=0.5, what="more of our requests at the wrong-secret server")
        later = stats()
        blocks = session_blocks(self.app.ctl("sessions", "--verbose"))
        print(f"\n  {BAD_IP} (key 1, another secret): ours authentication {a['authentication']}, verified "
              f"{a['auth_ok']}, bad MACs {a['auth_bad']}, crypto-NAKs {a['crypto_nak']}, without MAC "
              f"{a['auth_missing']}, reach {a['reach']:o}, selection {a['selection']}; chronyd: NTP packets "
              f"received {first.get('NTP packets received')} -> {later.get('NTP packets received')}, "
              f"authenticated {later.get('Authenticated NTP packets')}", file=sys.stderr)
        self.assertEqual(a["authentication"], "failed")
        self.assertIn(" authentication: failed\n", blocks[BAD_IP])
        self.assertIn(" authentication keyid: 1\n", blocks[BAD_IP])
        self.assertGreater(later["NTP packets received"], first["NTP packets received"])
        self.assertEqual(later.get("Authenticated NTP packets", 0), 0)
        self.assertEqual(a["auth_ok"], 0)
        self.assertEqual(a["reach"], 0)
        self.assertNotEqual(a["selection"], "system peer")
        self.assertRegex(self.app.http("/metrics"),
                         r'ntp_association_authenticated\{address="%s"[^}]*authentication="failed"\} 0'
                         % re.escape(BAD_IP))

    def test_3_peer_authenticated_both_ways(self):
        wait_for(lambda: (a := self.assoc(PEER_IP)) and a["authentication"] == "ok" and a["reach"] != 0, 60,
                 interval=0.5, what="the keyed [[peer]] to be authenticated")
        wait_for(lambda: re.search(r"Authenticated\s*:\s*Yes", self.peer.chronyc("ntpdata", APPLIANCE_IP)), 30,
                 interval=0.5, what="chronyd to find our symmetric packets authenticated")
        a = self.assoc(PEER_IP)
        data = self.peer.chronyc("ntpdata", APPLIANCE_IP)
        rx = re.search(r"Total valid RX\s*:\s*(\d+)", data)
        print(f"\n  [[peer]] {PEER_IP} key 1: ours {a['authentication']} ({a['auth_ok']} verified), chronyd: "
              f"Authenticated Yes, valid RX {rx and rx.group(1)}", file=sys.stderr)
        self.assertEqual(a["auth_missing"] + a["auth_bad"] + a["crypto_nak"], 0, a)
        self.assertTrue(rx and int(rx.group(1)) > 0, data)

    def test_4_unauthenticated_spoof_of_the_peer_changes_nothing(self):
        # Settled first: the peer (local stratum 6) follows us once we are
        # synchronized (stratum 4 from GOOD): its stratum is ours + 1.
        def settled():
            s = self.app.status() or {}
            a = self.assoc(PEER_IP, s)
            return (a and a["authentication"] == "ok" and a["reach"] | 1 == 255 and s["system"]["synchronized"]
                    and a["stratum"] == s["system"]["stratum"] + 1)
        wait_for(settled, 90, interval=0.5, what="the keyed [[peer]] at full reach, following us")
        st0 = self.app.status()
        before = self.assoc(PEER_IP, st0)
        sessions_before = {a["address"] for a in st0["associations"]}
        flood = os.path.join(self.dir, "spoof.json")
        # Twice the endpoint's budget (16/s): unsigned, none may spend it.
        r = netlab.Flood(self.lab_ns, "eth0", APPLIANCE_IP, flood, src=PEER_IP, src_port=123, mode=1, stratum=1,
                         poll=0, rate=32, duration=10, linger=0, seed=23).result()
        others = netlab.Flood(self.lab_ns, "eth0", APPLIANCE_IP, flood + ".2", src_prefix=SPOOF_PREFIX,
                              sources=16, count=64, rate=50, duration=3, mode=1, poll=0, linger=2,
                              seed=24).result()
        s = self.app.status()
        after = self.assoc(PEER_IP, s)
        new = {a["address"] for a in s["associations"]} - sessions_before

        delta = netlab.counter_delta(netlab.worker_totals(st0), netlab.worker_totals(s))
        dropped = delta["drop_not_authenticated"]
        print(f"\n  {r['sent']} unauthenticated mode-1 packets from {PEER_IP}:123: the dataplane refused {dropped}, "
              f"demoted {delta['assoc_demoted']} of the peer's own; auth_missing "
              f"{before['auth_missing']} -> {after['auth_missing']}, reach {before['reach']:o} -> {after['reach']:o}, "
              f"stratum {before['stratum']} -> {after['stratum']}, authentication {after['authentication']}; "
              f"{others['sent']} from {SPOOF_PREFIX}: new sessions {sorted(new)}", file=sys.stderr)
        self.assertGreaterEqual(r["sent"], 300)
        self.assertGreaterEqual(dropped, 0.9 * r["sent"])
        self.assertEqual(delta["assoc_demoted"], 0)  # the real peer's packets kept their lane
        self.assertEqual(after["auth_missing"], before["auth_missing"])
        self.assertEqual(after["authentication"], "ok")
        self.assertEqual(after["reach"] | 1, 255)
        self.assertEqual(after["stratum"], before["stratum"])  # not the spoofer's 1
        self.assertEqual(after["refid_text"], before["refid_text"])
        self.assertEqual(new, set())

    def rewrite_keys(self, text):
        tmp = self.keys + ".new"
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write(text)
        os.rename(tmp, self.keys)

    def test_5_keys_file_reload(self):
        wait_for(lambda: (a := self.assoc(GOOD_IP)) and a["authentication"] == "ok" and a["reach"] != 0, 60,
                 interval=0.5, what="the good server authenticated")
        # A keys file with an error: the reload is refused with file:line, the running keys stay.
        self.rewrite_keys(f"1 AES128 {SECRET}\n2 AES128 HEX:00112233\n")
        tail = self.app.reload("control")
        self.assertIn("refused", tail)
        self.assertIn(f"{self.keys}:2:", tail)
        ok_before = self.assoc(GOOD_IP)["auth_ok"]
        wait_for(lambda: self.assoc(GOOD_IP)["auth_ok"] > ok_before + 2, 20, interval=0.5,
                 what="the good server still verified with the running keys")
        # Another secret for key 1: the good server drops our requests, and
        # after eight polls without a verified answer we say failed.
        self.rewrite_keys(f"1 AES128 {WRONG}\n")
        tail = self.app.reload("dataplane", "control")
        self.assertNotIn("refused", tail)
        a = wait_for(lambda: (a := self.assoc(GOOD_IP)) and a["reach"] == 0 and a["authentication"] == "failed" and a,
                     60, interval=0.5, what="the good server unauthenticated with the new secret")
        # The right secret again: authenticated and reachable again.
        self.rewrite_keys(f"1 AES128 {SECRET}\n")
        self.app.reload("dataplane", "control")
        b = wait_for(lambda: (b := self.assoc(GOOD_IP)) and b["authentication"] == "ok" and b["reach"] != 0 and b,
                     60, interval=0.5, what="the good server authenticated again")
        print(f"\n  keys file with an error: reload refused ({self.keys}:2 logged); key 1's secret changed: "
              f"{GOOD_IP} reach 0, authentication {a['authentication']}; the right one back: authentication "
              f"{b['authentication']}, reach {b['reach']:o}", file=sys.stderr)

    def test_6_only_the_wrong_secret_left_not_synchronized(self):
        wait_for(lambda: self.app.status()["system"]["synchronized"], 90, interval=0.5,
                 what="synchronized to the good server")
        self.good.stop()
        self.peer.stop()
        # Once the stopped ones are unreachable (8 polls of 1..2 s), only the
        # wrong-secret server answers: nothing may be selected. (test_5 gave
        # us its secret for a while: it is failed again eight unanswered
        # polls after the right one came back.)
        s = wait_for(lambda: (s := self.app.status()) and not s["system"]["synchronized"]
                     and self.assoc(BAD_IP, s)["authentication"] == "failed" and s, 60, interval=0.5,
                     what="the appliance unsynchronized, the wrong-secret server failed")
        b = self.assoc(BAD_IP, s)
        print(f"\n  good server and peer stopped: synchronized {s['system']['synchronized']}, {BAD_IP} "
              f"authentication {b['authentication']}, selection {b['selection']}, crypto-NAKs {b['crypto_nak']}, "
              f"bad MACs {b['auth_bad']}", file=sys.stderr)
        self.assertEqual(b["authentication"], "failed")
        self.assertNotEqual(b["selection"], "system peer")


if __name__ == "__main__":
    unittest.main(verbosity=2)
