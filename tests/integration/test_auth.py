#!/usr/bin/python3
"""Issue 10: symmetric-key authentication, the server side in the dataplane.

One appliance (refclock_master 2, virtual clock) with a keys file of one key
per type; real clients in a second namespace: a chronyd -x per key type
(`server APPLIANCE key N`), which must see `Authenticated : Yes` and select
the appliance; chronyd with the wrong secret (crypto-NAKs: never valid,
never selected, the appliance counts auth_bad_mac) and with a key the
appliance lacks (auth_unknown_key); ntpdig -a (NTPsec) with the right and
the wrong secret. With auth.authenticate, symmetric-active packets from a
peer-class address reach the control plane only with a valid MAC of a
trusted key (the rest: drop not_authenticated). The keys are this test's
own, in 0600 files of its temporary directory (removed at exit).
"""
import os
import sys
import unittest

sys.path.insert(0, os.path.dirname(__file__))
import netlab  # noqa: E402
from netlab import wait_for  # noqa: E402

SERVER_IP = "10.0.1.31"
CLIENT_IP = "10.0.1.100"

# id: (chrony type, NTPsec type, secret hex). SHA256 makes chronyd send
# NTPv3 with the full 32-byte digest, ntpdig NTPv4 with 32 bytes.
KEYS = {
    1: ("AES128", "AES", "2B7E151628AED2A6ABF7158809CF4F3C"),
    2: ("SHA256", "SHA256", "00112233445566778899AABBCCDDEEFF0123456789ABCDEF0123456789ABCDEF"),
    3: ("SHA1", "SHA1", "5C46D0B3F59AEBD3E4A6C7F2B8D9E0A1B2C3D4E5"),
    4: ("MD5", "MD5", "6D643573656372657421696E7465726F"),
}
UNKNOWN_KEY = 9  # in the clients' files only


def wrong(secret_hex):
    """The same length, the last digit changed."""
    return secret_hex[:-1] + ("0" if secret_hex[-1] != "0" else "1")


def write_0600(path, text):
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(text)
    os.chmod(path, 0o600)
    return path


def chrony_keys(keys):
    return "".join(f"{i} {t} HEX:{s}\n" for i, (t, s) in keys.items())


def ntpsec_keys(keys):
    # NTPsec's ntp.keys(5): a key of more than 20 characters is hex, else
    # ASCII; every secret here is hex of at least 32 digits.
    return "".join(f"{i} {t} {s}\n" for i, (t, s) in keys.items())


class Lab:
    def __init__(self, tag, auth_extra=""):
        self.srv, self.cli = netlab.appliance_link(tag, CLIENT_IP)
        self.dir = netlab.workdir(tag)
        self.keys_file = write_0600(os.path.join(self.dir, "appliance.keys"),
                                    chrony_keys({i: (k[0], k[2]) for i, k in KEYS.items()}))
        sysname = netlab.unique("K")
        self.app = netlab.Appliance(self.srv, sysname, self.dir, netlab.appliance_config(
            sysname, "net_af_packet0,iface=dp0", f"{SERVER_IP}/24", refclock_master=2,
            extra=f'[auth]\nkeys_file = "{self.keys_file}"\n{auth_extra}'))
        self.app.start()
        wait_for(lambda: (self.app.status() or {}).get("system", {}).get("synchronized"), 15,
                 what="the control plane to publish a synchronized state")

    def counters(self):
        return netlab.worker_totals(self.app.status())

    def settled_counters(self):
        """The counters once nothing is in flight: two snapshots (a poll
        count apart, so the second is newer) with the same rx_packets. A
        test's `before` taken earlier would miss the last answers of the
        test before it, which the snapshot shows a moment later."""
        prev = self.counters()

        def same():
            nonlocal prev
            cur = self.counters()
            if cur.get("polls") == prev.get("polls"):
                return None  # not a new snapshot yet
            done = cur.get("rx_packets") == prev.get("rx_packets")
            prev = cur
            return done and cur
        return wait_for(same, 15, interval=0.3, what="the appliance's counters to settle")

    def wait_counters(self, before, cond, what):
        """The appliance's counters since `before` once cond(delta) holds."""
        return netlab.wait_counter_delta(self.app, before, cond, what)

    def chronyd(self, key_id, keys, name):
        keyfile = write_0600(os.path.join(self.dir, f"{name}.keys"), chrony_keys(keys))
        # port 0: a client only (several chronyd share the namespace).
        return netlab.Chrony(self.cli, self.dir, [
            f"server {SERVER_IP} key {key_id} iburst minpoll 0 maxpoll 0",
            f"keyfile {keyfile}",
            "port 0",
        ])


def ntpdata(chrony):
    out = chrony.chronyc("ntpdata")
    fields = {}
    for line in out.splitlines():
        if ":" in line:
            k, _, v = line.partition(":")
            fields[k.strip()] = v.strip()
    return fields


def selected(chrony):
    return any(line.startswith("^*") and SERVER_IP in line for line in chrony.chronyc("sources").splitlines())


class AuthTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.lab = Lab("au")

    def test_chronyd_every_key_type_authenticated_and_selected(self):
        before = self.lab.settled_counters()
        clients = {}
        for key_id, (ctype, _, secret) in KEYS.items():
            clients[key_id] = self.lab.chronyd(key_id, {key_id: (ctype, secret)}, f"chrony-{ctype}")
        try:
            for key_id, c in clients.items():
                with self.subTest(key=KEYS[key_id][0]):
                    try:
                        wait_for(lambda: ntpdata(c).get("Authenticated") == "Yes" and selected(c), 40,
                                 interval=0.25, what=f"chronyd with {KEYS[key_id][0]} to authenticate and select")
                    except Exception:
                        self.fail(f"{KEYS[key_id][0]}: {ntpdata(c)} {c.chronyc('sources')}")
                    d = ntpdata(c)
                    self.assertEqual(d.get("Authenticated"), "Yes", d)
                    self.assertGreater(int(d.get("Total valid RX", "0")), 0, d)
                    # The reply carries the request's version: NTPv3 for SHA256.
                    self.assertEqual(d.get("Version"), "3" if KEYS[key_id][0] == "SHA256" else "4", d)
        finally:
            for c in clients.values():
                c.stop()
        delta = self.lab.wait_counters(before, lambda d: d.get("auth_replies", 0) >= 4 * 2, "auth_replies")
        self.assertGreaterEqual(delta.get("auth_replies", 0), 4 * 2, delta)
        self.assertEqual(delta.get("auth_bad_mac", 0), 0, delta)

    def test_chronyd_wrong_secret_not_authenticated_not_selected(self):
        before = self.lab.settled_counters()
        ctype, _, secret = KEYS[1]
        c = self.lab.chronyd(1, {1: (ctype, wrong(secret))}, "chrony-wrong")
        try:
            # Crypto-NAKs come back (chronyd counts them as received, none valid).
            wait_for(lambda: int(ntpdata(c).get("Total RX", "0")) >= 4, 40, interval=0.25,
                     what="chronyd with the wrong secret to hear four answers")
            d = ntpdata(c)
            self.assertEqual(d.get("Authenticated"), "No", d)
            self.assertEqual(d.get("Total valid RX"), "0", d)
            self.assertFalse(selected(c), c.chronyc("sources"))
        finally:
            c.stop()
        delta = self.lab.wait_counters(before, lambda d: d.get("auth_bad_mac", 0) >= 4, "auth_bad_mac")
        self.assertGreaterEqual(delta.get("auth_bad_mac", 0), 4, delta)
        self.assertEqual(delta.get("auth_replies", 0), 0, delta)

    def test_chronyd_unknown_key_gets_crypto_nak(self):
        before = self.lab.settled_counters()
        c = self.lab.chronyd(UNKNOWN_KEY, {UNKNOWN_KEY: KEYS[1][::2]}, "chrony-unknown")
        try:
            wait_for(lambda: int(ntpdata(c).get("Total RX", "0")) >= 2, 40, interval=0.25,
                     what="chronyd with an unknown key to hear two answers")
            d = ntpdata(c)
            self.assertEqual(d.get("Total valid RX"), "0", d)
            self.assertFalse(selected(c))
        finally:
            c.stop()
        delta = self.lab.wait_counters(before, lambda d: d.get("auth_unknown_key", 0) >= 2, "auth_unknown_key")
        self.assertGreaterEqual(delta.get("auth_unknown_key", 0), 2, delta)
        self.assertEqual(delta.get("auth_replies", 0), 0, delta)

    def test_ntpdig(self):
        right = write_0600(os.path.join(self.lab.dir, "ntpsec.keys"),
                           ntpsec_keys({i: (k[1], k[2]) for i, k in KEYS.items()}))
        bad = write_0600(os.path.join(self.lab.dir, "ntpsec-wrong.keys"),
                         ntpsec_keys({i: (k[1], wrong(k[2])) for i, k in KEYS.items()}))
        for key_id in KEYS:
            with self.subTest(key=KEYS[key_id][1]):
                r = self.lab.cli.exec("ntpdig", "-t", "2", "-c", "1", "-k", right, "-a", str(key_id), SERVER_IP,
                                      check=False, timeout=20)
                self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
                self.assertIn(SERVER_IP, r.stdout, r.stdout + r.stderr)
                # ntpdig 1.2.2 dies with a traceback on the crypto-NAK: only
                # its exit status says it did not take the answer.
                r = self.lab.cli.exec("ntpdig", "-t", "2", "-c", "1", "-k", bad, "-a", str(key_id), SERVER_IP,
                                      check=False, timeout=20)
                self.assertNotEqual(r.returncode, 0, r.stdout + r.stderr)


SEND_MODE1 = r"""
import socket, struct, sys, hashlib
key_id, secret_hex, dst, mac = int(sys.argv[1]), sys.argv[2], sys.argv[3], sys.argv[4]
pkt = bytes([0x21, 2, 6, 0xE7]) + bytes(36) + struct.pack(">II", 0xEEB97426, 0x12345678)
if mac == "good":
    pkt += struct.pack(">I", key_id) + hashlib.sha1(bytes.fromhex(secret_hex) + pkt).digest()
elif mac == "bad":
    pkt += struct.pack(">I", key_id) + bytes(20)
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.bind(("0.0.0.0", 123))
for _ in range(3):
    s.sendto(pkt, (dst, 123))
"""


class AuthenticateTest(unittest.TestCase):
    """auth.authenticate = true with SHA1 key 3 trusted: the lab's clients
    are in access.peer (10.0.0.0/8), so their mode-1 packets are the
    peer-class lane the dataplane checks."""

    @classmethod
    def setUpClass(cls):
        cls.lab = Lab("aa", auth_extra="trusted_keys = [3]\nauthenticate = true\n")

    def send(self, key_id, secret, mac):
        self.lab.cli.exec("/usr/bin/python3", "-c", SEND_MODE1, str(key_id), secret, SERVER_IP, mac)

    def test_only_a_valid_mac_of_a_trusted_key_reaches_the_control_plane(self):
        sha1 = KEYS[3][2]
        cases = [("no MAC", 3, sha1, "none", False), ("zero digest", 3, sha1, "bad", False),
                 ("wrong secret", 3, wrong(sha1), "good", False),
                 ("a key held but not trusted", 1, KEYS[1][2], "bad", False),
                 ("valid, trusted", 3, sha1, "good", True)]
        for what, key_id, secret, mac, forwarded in cases:
            with self.subTest(what):
                before = self.lab.settled_counters()
                self.send(key_id, secret, mac)
                key = "ntp_to_control" if forwarded else "drop_not_authenticated"
                delta = self.lab.wait_counters(before, lambda d: d.get(key, 0) >= 3, key)
                self.assertEqual(delta.get(key, 0), 3, delta)
                other = "drop_not_authenticated" if forwarded else "ntp_to_control"
                self.assertEqual(delta.get(other, 0), 0, delta)


if __name__ == "__main__":
    unittest.main()
