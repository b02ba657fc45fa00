#!/usr/bin/python3
"""Issue 11, the dataplane's side of NTS (RFC 8915 section 5), end to end.

One appliance (refclock_master 2, virtual clock) with an NTS cookie keys
file of two keys; an NTS client in a second namespace (ntsclient.py: its
AES-SIV is OpenSSL's, not the appliance's Nettle) that mints cookies from
the same file, as a server sharing it would (cookie_rotate_s = 0: the keys
are managed outside, as by the appliances of one anycast address).
Checked: answers authenticated under S2C with one fresh cookie per cookie
and placeholder, under the current key, none longer than its request; a
cookie of the older key still answered; a forged cookie and a retired key's
cookie NAKed (NTSN, the Unique Identifier only); after a rotation by reload
(a new key, the oldest gone) the retired key's cookies are NAKed and new
cookies carry the new key; a plain NTPv4 request still gets a plain answer;
and the counters say so.
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
HERE = os.path.dirname(os.path.abspath(__file__))


def key_line(key_id, created):
    return f"{key_id} AES-SIV-CMAC-256 HEX:{os.urandom(32).hex()} {created}\n"


def write_0600(path, text):
    fd = os.open(path + ".tmp", os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(text)
    os.rename(path + ".tmp", path)
    return path


class NtsTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.srv, cls.cli = netlab.appliance_link("nt", CLIENT_IP)
        cls.dir = netlab.workdir("nts")
        cls.lines = [key_line(1, 1764547200), key_line(2, 1764633600)]
        cls.keys_file = write_0600(os.path.join(cls.dir, "ntskeys"), "".join(cls.lines))
        sysname = netlab.unique("N")
        cls.app = netlab.Appliance(cls.srv, sysname, cls.dir, netlab.appliance_config(
            sysname, "net_af_packet0,iface=dp0", f"{SERVER_IP}/24", refclock_master=2,
            extra=f'[nts]\ncookie_keys_file = "{cls.keys_file}"\ncookie_rotate_s = 0\n'))
        cls.app.start()
        wait_for(lambda: (cls.app.status() or {}).get("system", {}).get("synchronized"), 15,
                 what="the control plane to publish a synchronized state")

    def client(self, *args, count=4):
        out = self.cli.exec("/usr/bin/python3", os.path.join(HERE, "ntsclient.py"), SERVER_IP, self.keys_file,
                            "--count", str(count), *args, timeout=60).stdout
        return [json.loads(line) for line in out.splitlines() if line.startswith("{")]

    def counters(self):
        return netlab.worker_totals(self.app.status())

    def wait_delta(self, before, cond, what):
        return netlab.wait_counter_delta(self.app, before, cond, what)

    def assert_replies(self, results, cookies, key_id):
        self.assertTrue(results, "no result")
        for r in results:
            self.assertEqual(r.get("kind"), "reply", r)
            self.assertEqual(r.get("stratum"), 2, r)
            self.assertEqual(r.get("cookies"), [key_id] * cookies, r)
            self.assertLessEqual(r["len"], r["request_len"], r)

    def test_1_answers_with_nts_one_fresh_cookie_per_cookie_and_placeholder(self):
        before = self.counters()
        self.assert_replies(self.client(), 1, 2)
        self.assert_replies(self.client("--placeholders", "3"), 4, 2)
        self.assert_replies(self.client("--placeholders", "7"), 8, 2)
        # A cookie of the older key (1) is answered, and the new ones carry key 2.
        self.assert_replies(self.client("--key-id", "1"), 1, 2)
        d = self.wait_delta(before, lambda d: d.get("nts_replies", 0) >= 16, "nts_replies")
        self.assertEqual(d.get("nts_replies", 0), 16, d)
        self.assertEqual(d.get("nts_naks", 0), 0, d)

    def test_2_forged_and_retired_cookies_get_a_nak(self):
        before = self.counters()
        for r in self.client("--corrupt-cookie"):
            self.assertEqual(r.get("kind"), "nak", r)
            self.assertEqual(r["len"], 48 + 36, r)
        for r in self.client("--key-id", "9"):
            self.assertEqual(r.get("kind"), "nak", r)
        d = self.wait_delta(before, lambda d: d.get("nts_naks", 0) >= 8, "nts_naks")
        self.assertEqual(d.get("nts_bad_cookie", 0), 4, d)
        self.assertEqual(d.get("nts_stale_key", 0), 4, d)
        self.assertEqual(d.get("nts_naks", 0), 8, d)
        self.assertEqual(d.get("nts_replies", 0), 0, d)

    def test_3_a_rotation_by_reload_retires_the_oldest_key(self):
        lines = self.lines[1:] + [key_line(3, 1764720000)]
        write_0600(self.keys_file, "".join(lines))
        self.app.reload("dataplane")
        before = self.counters()
        try:
            wait_for(lambda: all(r.get("cookies") == [3] for r in self.client(count=1)), 10, interval=0.2,
                     what="new cookies under key 3")
        except Exception:
            self.fail(f"after the reload: {self.client(count=1)}")
        self.assert_replies(self.client("--key-id", "2"), 1, 3)  # the kept key still opens
        for r in self.client("--key-id", "1"):
            self.assertEqual(r.get("kind"), "nak", r)  # the retired one does not
        d = self.wait_delta(before, lambda d: d.get("nts_stale_key", 0) >= 4, "nts_stale_key")
        self.assertEqual(d.get("nts_stale_key", 0), 4, d)

    def test_4_plain_ntp_still_answered_plain(self):
        out = self.cli.exec("/usr/bin/python3", os.path.join(HERE, "ntpclient.py"), SERVER_IP, "--count", "3",
                            timeout=30).stdout
        replies = [json.loads(line) for line in out.splitlines() if line.startswith("{")]
        self.assertEqual(len(replies), 3, out)
        for r in replies:
            self.assertTrue(r["reply"], r)
            self.assertEqual((r["stratum"], r["length"], r["mode"]), (2, 48, 4), r)


if __name__ == "__main__":
    unittest.main()
