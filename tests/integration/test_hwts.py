#!/usr/bin/python3
"""Hardware receive timestamps, through the emulated NIC clock: the veth's
driver (net_af_packet) offers no RX timestamps, so an RX callback stamps each
packet from a simulated NIC oscillator and the dataplane maps that clock to
the TSC exactly as it does a timestamping NIC's. Real clients (chronyd -x,
ntpdig) must get correct time; status and /metrics must say "hardware"; the
NIC-path receive timestamps must agree with the TSC path.
"""
import json
import os
import subprocess
import sys
import unittest

sys.path.insert(0, os.path.dirname(__file__))
import netlab  # noqa: E402
from netlab import wait_for  # noqa: E402
from test_serve import Lab, SERVER_IP, PROMCHECK, parse_duration_s  # noqa: E402

# The bound the README documents for the emulation: the NIC stamp is taken in
# the RX callback inside rx_burst, the software one just after it returns.
HW_SW_MEAN_BOUND_NS = 5_000
HW_SW_MAX_BOUND_NS = 100_000


class HardwareTimestampTest(unittest.TestCase):
    def run_lab(self, tag, nic, nic_hz, min_seconds=0):
        lab = Lab(tag, interface_extra=nic)
        port = wait_for(lambda: (p := lab.app.status()["ports"][0]) and p["nic_map_valid"] and p, 20, interval=0.5,
                        what="the NIC clock mapping to become valid")
        rounds_valid = port["nic_rounds"]
        self.assertEqual(port["timestamping"], "hardware", port)
        self.assertTrue(port["nic_emulated"])

        r = lab.cli.exec("ntpdig", "-j", "-p", "4", "-t", "2", SERVER_IP, check=False)
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        j = json.loads(r.stdout)
        self.assertEqual(j["stratum"], 2, j)
        self.assertLess(abs(float(j["offset"])), 1e-3, j)

        c = netlab.Chrony(lab.cli, lab.dir, [f"server {SERVER_IP} minpoll -4 maxpoll -4 iburst"])
        try:
            def row():
                rows = [ln.split() for ln in c.chronyc("sourcestats").splitlines() if SERVER_IP in ln]
                return rows and int(rows[0][1]) >= 16 and rows[0]
            wait_for(lambda: any(ln.startswith("^*") for ln in c.chronyc("sources").splitlines()), 30,
                     interval=0.5, what="chronyd to select the appliance")
            stats = wait_for(row, 30, interval=0.5, what="16 samples in chronyc sourcestats")
            off = parse_duration_s(stats[6])
            self.assertLess(abs(off), 100e-6, stats)
        finally:
            c.stop()

        # The mapping samples the NIC clock every 100 ms: wait for its rounds,
        # not for time, when the test must span a counter wrap.
        wait_for(lambda: lab.app.status()["ports"][0]["nic_rounds"] >= rounds_valid + 10 * min_seconds, 30,
                 interval=0.5, what=f"{min_seconds} s of NIC clock rounds")
        r = lab.cli.exec("ntpdig", "-j", "-p", "4", "-t", "2", SERVER_IP, check=False)
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        self.assertLess(abs(float(json.loads(r.stdout)["offset"])), 1e-3, r.stdout)
        # /status is a snapshot of the last second: at 16 polls a second,
        # chronyd's samples can be ahead of it, so wait for it to count them.
        def requests_in(st):
            return sum(w["ntp_requests"] for w in st["workers"])
        try:
            wait_for(lambda: requests_in(lab.app.status()) >= 16 + 1, 5, interval=0.2,
                     what="the status snapshot to count chronyd's and ntpdig's requests")
        except TimeoutError:
            pass  # the assertion below says what it counted
        status = lab.app.status()
        port = status["ports"][0]
        self.assertEqual(port["nic_restarts"], 0, port)  # the wrap was unwrapped, not a restart
        # Every NTP packet the worker took in (ntpdig's, chronyd's >= 16) was
        # stamped by the NIC path; none fell back to the TSC.
        ntp_in = requests_in(status)
        self.assertGreaterEqual(ntp_in, 16 + 1, status["workers"])
        self.assertGreaterEqual(port["hw_timestamps"], ntp_in, port)
        self.assertEqual(port["sw_timestamps"], 0, port)
        # The fitted NIC frequency is the emulated one (relative to the
        # dataplane's calibrated TSC, which the emulation also uses).
        self.assertLess(abs(port["nic_clock_hz"] / nic_hz - 1), 0.5e-6, port)
        self.assertLess(port["hw_rejected"], 0.01 * port["hw_timestamps"] + 2, port)
        self.assertLess(abs(port["hw_minus_sw_mean_ns"]), HW_SW_MEAN_BOUND_NS, port)
        self.assertLess(port["hw_minus_sw_max_ns"], HW_SW_MAX_BOUND_NS, port)
        metrics = lab.app.http("/metrics")
        r = subprocess.run(["python3", PROMCHECK, "--prefix", "ntp_"], input=metrics, capture_output=True, text=True)
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        self.assertRegex(metrics, r'(?m)^ntp_port_hardware_timestamping\{port="GigabitEthernet0/1/0"\} 1$')
        self.assertRegex(metrics, r'(?m)^ntp_port_info\{.*timestamping="hardware"\} 1$')
        self.assertIn("receive timestamps: hardware (emulated NIC clock)", lab.app.ctl("ports"))
        print(f"\n  {tag}: chronyd offset {off * 1e6:+.2f} us over {stats[1]} samples; {port['hw_timestamps']} "
              f"hardware timestamps, {port['hw_rejected']} rejected; NIC minus TSC path mean "
              f"{port['hw_minus_sw_mean_ns'] / 1000:+.3f} us, largest {port['hw_minus_sw_max_ns'] / 1000:.3f} us; "
              f"mapping residual {port['nic_residual_ns']:.1f} ns, NIC clock {port['nic_clock_hz']:.1f} Hz",
              file=sys.stderr)

    def test_nanosecond_counter(self):
        # An ice/igc-like clock: a 64-bit nanosecond counter, 37 ppm off.
        self.run_lab("hw", "emulated_nic_clock = true\nemulated_nic_frequency_ppm = 37\n"
                           "emulated_nic_offset_ns = 9.9e17\nemulated_nic_read_jitter_ns = 1", 1e9 * (1 + 37e-6))

    def test_wrapping_tick_counter(self):
        # A free-running tick counter (mlx5-like: ticks, not ns), 32 bits at
        # 644.53125 MHz: it wraps every 6.66 s, and the test runs until the
        # mapping has seen at least 7 s of rounds, so it crosses a wrap.
        self.run_lab("hx", "emulated_nic_clock = true\nemulated_nic_hz = 644531250\nemulated_nic_bits = 32\n"
                           "emulated_nic_frequency_ppm = -80\nemulated_nic_offset_ns = 27000000000\n"
                           "emulated_nic_read_jitter_ns = 5", 644531250 * (1 - 80e-6), min_seconds=7)
    def test_hardware_mode_refused_without_timestamping_nic(self):
        # net_af_packet offers no RX timestamps: `timestamping = "hardware"`
        # refuses to start (saying why), nothing is left behind; `auto`
        # falls back to software timestamps and says why.
        ns = netlab.Namespace(netlab.unique("ntphr"))
        peer = netlab.Namespace(netlab.unique("ntphp"))
        netlab.veth_pair(ns, "dp0", peer, "eth0")
        netlab.dataplane_side(ns, "dp0")
        d = netlab.workdir("hr")
        sysname = netlab.unique("H")
        path = os.path.join(d, "hw.toml")
        with open(path, "w") as f:
            f.write(netlab.appliance_config(sysname, "net_af_packet0,iface=dp0", "10.0.1.31/24", refclock_master=2,
                                            interface_extra='timestamping = "hardware"'))
        r = ns.exec(netlab.DATAPLANE, "--config", path, check=False, timeout=60)
        out = r.stdout + r.stderr
        self.assertNotEqual(r.returncode, 0, out)
        self.assertIn('timestamping = "hardware", but the driver offers no RX timestamp offload', out)
        self.assertFalse(os.path.exists(f"/dev/shm/ntp-test-{sysname}"), "shared memory was left behind")
        self.assertFalse(os.path.exists(f"/var/run/dpdk/ntp-{sysname}"), "EAL runtime files were left behind")

        app = netlab.Appliance(ns, sysname, d, netlab.appliance_config(
            sysname, "net_af_packet0,iface=dp0", "10.0.1.31/24", refclock_master=2)).start()
        port = app.status()["ports"][0]
        self.assertEqual(port["timestamping"], "software", port)
        self.assertEqual(port["timestamp_reason"], "software: the driver offers no RX timestamp offload", port)
        self.assertTrue(app.log_contains("dataplane", "receive timestamps: software: the driver offers no RX"))
        self.assertIn("receive timestamps: software", app.ctl("ports"))
        app.stop()
        self.assertFalse(os.path.exists(f"/var/run/dpdk/ntp-{sysname}"), "EAL runtime files were left behind")


if __name__ == "__main__":
    unittest.main(verbosity=2)
