#!/usr/bin/python3
"""A bad configuration is refused by both daemons, with file, line and key,
and nothing is started: no shared memory, no DPDK runtime files, no process.
So is a valid one the host cannot run (an lcore it does not have, a stats
address that is not its own, an interface that is not there): at --check and
at a start alike, without EAL's usage text.
"""
import os
import subprocess
import sys
import tempfile
import unittest

sys.path.insert(0, os.path.dirname(__file__))
import netlab  # noqa: E402

# lo: the dataplane checks that its interfaces exist (in its own namespace,
# the test's here), so the good file names one that does.
GOOD = netlab.appliance_config("Refuse1", "net_af_packet0,iface=lo", "10.0.1.31/24", refclock_master=2,
                               listen="127.0.0.1:19123")


def online_cpus():
    with open("/sys/devices/system/cpu/online") as f:
        cpus = set()
        for part in f.read().strip().split(","):
            lo, _, hi = part.partition("-")
            cpus.update(range(int(lo), int(hi or lo) + 1))
        return cpus


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

    def refused_by_host(self, text, prog, args=()):
        d = netlab.workdir("cfg")
        path = os.path.join(d, "host.toml")
        with open(path, "w") as f:
            f.write(text)
        r = subprocess.run([prog, "--config", path, *args], capture_output=True, text=True, timeout=30)
        out = r.stdout + r.stderr
        self.assertEqual(r.returncode, 2, out)
        self.assertEqual(r.stdout, "", "a refusal is on stderr only")
        self.assertIn("nothing started", r.stderr)
        # EAL never ran: none of its usage text, none of its log lines.
        self.assertNotIn("Usage:", out)
        self.assertNotIn("EAL", out)
        self.assertFalse(os.path.exists("/dev/shm/ntp-test-Refuse1"), "shared memory was created")
        self.assertFalse(os.path.exists("/var/run/dpdk/ntp-Refuse1"), "EAL runtime files were created")
        return path, r.stderr

    def test_host_cannot_run_it(self):
        # A worker lcore that is not a CPU here (7 on the 2-CPU test host)
        # and a stats address that is not the host's (TEST-NET-1).
        lcore = next(c for c in (7, 1023) if c not in online_cpus())
        text = GOOD.replace("worker_lcores = [1]", f"worker_lcores = [{lcore}]")
        text = text.replace('listen = "127.0.0.1:19123"', 'listen = "192.0.2.1:9123"')
        lcore_at = f":{self.line_of(text, 'worker_lcores')}:18: dataplane.worker_lcores[0]: lcore {lcore} is not a CPU of this host"
        stats_at = f":{self.line_of(text, '192.0.2.1')}:10: stats.listen: cannot listen on 192.0.2.1:9123"
        for args in ((), ("--check",)):
            with self.subTest(prog="ntp-dataplane", args=args):
                path, err = self.refused_by_host(text, netlab.DATAPLANE, args)
                self.assertIn(f"ntp-dataplane: {path}{lcore_at}", err)
                self.assertNotIn("stats.listen", err, "the stats port is the control plane's to check")
                self.assertIn(f"ntp-dataplane: 1 error(s) in {path}; nothing started", err)
            with self.subTest(prog="ntp-control", args=args):
                path, err = self.refused_by_host(text, netlab.CONTROL, args)
                self.assertIn(f"ntp-control: {path}{lcore_at}", err)
                self.assertIn(f"ntp-control: {path}{stats_at}", err)
                self.assertIn("no interface of this host, in this network namespace, has 192.0.2.1", err)
                self.assertIn(f"ntp-control: 2 error(s) in {path}; nothing started", err)
                self.assertNotIn("stats endpoint on", err)

    def test_interface_not_there(self):
        text = GOOD.replace("iface=lo", "iface=ntpabsent0")
        for args in ((), ("--check",)):
            with self.subTest(args=args):
                path, err = self.refused_by_host(text, netlab.DATAPLANE, args)
                self.assertIn(f"ntp-dataplane: {path}:{self.line_of(text, 'ntpabsent0')}:10: interface[0].device: "
                              "interface 'ntpabsent0' (iface= of net_af_packet0) does not exist in this network namespace",
                              err)
        # The control plane never opens the devices (and may run in another
        # namespace than the dataplane): it does not look.
        d = netlab.workdir("cfg")
        path = os.path.join(d, "iface.toml")
        with open(path, "w") as f:
            f.write(text)
        r = subprocess.run([netlab.CONTROL, "--config", path, "--check"], capture_output=True, text=True, timeout=30)
        self.assertEqual(r.returncode, 0, r.stderr)

    def test_eal_argument_refused_without_usage_text(self):
        # What the host checks cannot foresee (an EAL argument EAL refuses):
        # EAL's own complaint and ours, not its ~100 lines of usage.
        text = GOOD.replace('"--no-telemetry"', '"--no-such-eal-option"')
        d = netlab.workdir("cfg")
        path = os.path.join(d, "eal.toml")
        with open(path, "w") as f:
            f.write(text)
        r = subprocess.run([netlab.DATAPLANE, "--config", path], capture_output=True, text=True, timeout=30)
        out = r.stdout + r.stderr
        self.assertEqual(r.returncode, 1, out)
        self.assertIn("unrecognized option '--no-such-eal-option'", out)
        self.assertIn(f"rte_eal_init failed: Invalid argument (EAL arguments above; dataplane.eal_args in {path})", out)
        self.assertNotIn("Usage:", out)
        self.assertNotIn("--vdev", out.split("EAL arguments:")[1].split("\n", 1)[1], "EAL's option list was printed")
        self.assertLess(len(out.splitlines()), 12, out)
        self.assertFalse(os.path.exists("/var/run/dpdk/ntp-Refuse1"), "EAL runtime files were left")

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
