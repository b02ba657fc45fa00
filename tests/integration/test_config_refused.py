#!/usr/bin/python3
"""A bad configuration is refused by both daemons, with file, line and key,
and nothing is started: no shared memory, no DPDK runtime files, no process.
"""
import os
import subprocess
import sys
import tempfile
import unittest

sys.path.insert(0, os.path.dirname(__file__))
import netlab  # noqa: E402

GOOD = netlab.appliance_config("Refuse1", "net_af_packet0,iface=nonexistent0", "10.0.1.31/24", refclock_master=2)


class ConfigRefusedTest(unittest.TestCase):
    def check_refused(self, text, want_line, want_key):
        d = netlab.workdir("cfg")
        path = os.path.join(d, "bad.toml")
        with open(path, "w") as f:
            f.write(text)
        for prog in (netlab.DATAPLANE, netlab.CONTROL):
            with self.subTest(prog=os.path.basename(prog)):
                r = subprocess.run([prog, "--config", path], capture_output=True, text=True, timeout=30)
                self.assertEqual(r.returncode, 2, r.stderr)
                self.assertIn(f"{path}:{want_line}:", r.stderr)
                self.assertIn(want_key, r.stderr)
                self.assertIn("nothing started", r.stderr)
                self.assertFalse(os.path.exists("/dev/shm/ntp-test-Refuse1"), "shared memory was created")
                self.assertFalse(os.path.exists("/var/run/dpdk/ntp-Refuse1"), "EAL runtime files were created")

    def line_of(self, text, needle):
        return next(i + 1 for i, ln in enumerate(text.splitlines()) if needle in ln)

    def test_good_config_passes_check(self):
        d = netlab.workdir("cfg")
        path = os.path.join(d, "good.toml")
        with open(path, "w") as f:
            f.write(GOOD)
        for prog in (netlab.DATAPLANE, netlab.CONTROL):
            r = subprocess.run([prog, "--config", path, "--check"], capture_output=True, text=True, timeout=30)
            self.assertEqual(r.returncode, 0, r.stderr)

    def test_unknown_key(self):
        text = GOOD.replace("[ntp]\n", "[ntp]\nrefclock_mastr = 3\n")
        self.check_refused(text, self.line_of(text, "refclock_mastr"), "ntp.refclock_mastr")

    def test_bad_address(self):
        text = GOOD.replace('address = "10.0.1.31/24"', 'address = "10.0.1.300/24"')
        self.check_refused(text, self.line_of(text, "10.0.1.300"), "interface[0].address")

    def test_stratum_0_and_16(self):
        for stratum in (0, 16):
            with self.subTest(stratum=stratum):
                text = GOOD.replace("refclock_master = 2", f"refclock_master = {stratum}")
                self.check_refused(text, self.line_of(text, "refclock_master"), "ntp.refclock_master")

    def test_missing_phc_refused_before_anything_starts(self):
        # A valid file naming a PHC that is not there: ntp-control refuses at
        # start, naming the key and the device, before it listens or
        # attaches to anything.
        for key, text in (("clock.phc", GOOD.replace('source = "virtual"', 'source = "phc"\nphc = "/dev/ptp-absent9"')),
                          ("clock.steer_phc", GOOD.replace("[clock]\n", '[clock]\nsteer_phc = "/dev/ptp-absent9"\n'))):
            with self.subTest(key=key):
                self.assertIn("/dev/ptp-absent9", text)
                d = netlab.workdir("cfg")
                path = os.path.join(d, "phc.toml")
                with open(path, "w") as f:
                    f.write(text)
                r = subprocess.run([netlab.CONTROL, "--config", path], capture_output=True, text=True, timeout=30)
                self.assertEqual(r.returncode, 1, r.stdout + r.stderr)
                out = r.stdout + r.stderr
                self.assertIn(key, out)
                self.assertIn("/dev/ptp-absent9", out)
                self.assertIn("nothing started", out)
                self.assertNotIn("stats endpoint on", out)


if __name__ == "__main__":
    unittest.main(verbosity=2)
