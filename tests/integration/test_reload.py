#!/usr/bin/python3
"""Issue 9: SIGHUP reloads the configuration in both daemons.

One appliance (refclock_master 2) in its own namespace; a client namespace
holds two addresses: 10.0.1.140 asks for time (ntpclient.py), 10.0.1.150 is
a real chronyd (-x, local stratum 3) that serves time. Asserted, with both
daemons' pids unchanged and serving throughout:
- a second ntp-dataplane or ntp-control on the same segment exits 1,
  "already running";
- a deny of the client's /32 takes effect without a restart (no answer,
  counted access_denied), and its removal gives answers again;
- a file with errors is refused with file:line:col: key in both logs, and
  the running configuration keeps going (the client is still answered, the
  association still there with its reach);
- a [[server]] added to the file appears in `ntpctl sessions` and is
  polled (reach > 0: the dataplane forwards its replies, the control plane
  sends) without a restart, reloading ntp-control alone;
- a key that needs a restart is named in the log, and nothing else happens.
Also what the systemd unit relies on: ntp-control as an unprivileged user
with no capability serves and reloads; a stats port another user took
first does not stop it (it serves NTP and binds the port once free).
"""
import json
import os
import sys
import unittest

sys.path.insert(0, os.path.dirname(__file__))
import netlab  # noqa: E402
from netlab import wait_for  # noqa: E402

SERVER_IP = "10.0.1.41"
CLIENT_IP = "10.0.1.140"
CHRONY_IP = "10.0.1.150"
NTPCLIENT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "ntpclient.py")


class ReloadTest(unittest.TestCase):
    def setUp(self):
        self.srv = netlab.Namespace(netlab.unique("ntprls"))
        self.cli = netlab.Namespace(netlab.unique("ntprlc"))
        netlab.veth_pair(self.srv, "dp0", self.cli, "cli0")
        netlab.dataplane_side(self.srv, "dp0")
        for ip in (CLIENT_IP, CHRONY_IP):
            self.cli.exec("ip", "addr", "add", f"{ip}/24", "dev", "cli0")
        self.dir = netlab.workdir("rl")
        self.sysname = netlab.unique("L")
        self.app = netlab.Appliance(self.srv, self.sysname, self.dir, self.config())
        # A server for the association added by a reload; it serves anyone
        # and never touches the host clock.
        self.chrony = netlab.Chrony(self.cli, self.dir, [
            f"bindaddress {CHRONY_IP}", "local stratum 3", "allow 10.0.0.0/8", "port 123"])

    def tearDown(self):
        self.app.stop()
        self.chrony.stop()

    def config(self, access_extra="", servers=(), extra="", idle_sleep_us=0):
        return netlab.appliance_config(
            self.sysname, "net_af_packet0,iface=dp0", f"{SERVER_IP}/24", refclock_master=2,
            access=netlab.LAB_ACCESS + "\n" + access_extra, servers=servers, extra=extra,
            idle_sleep_us=idle_sleep_us)

    def write(self, text):
        # Through a temporary name: a daemon re-reading mid-write must see
        # the old file or the new one.
        tmp = self.app.config_path + ".new"
        with open(tmp, "w") as f:
            f.write(text)
        os.rename(tmp, self.app.config_path)

    def query(self, count=3):
        """ntpclient.py from the client address: how many of count got a reply."""
        r = self.cli.exec("/usr/bin/python3", NTPCLIENT, SERVER_IP, "--source", CLIENT_IP, "--count", str(count),
                          "--interval", "0.1", "--timeout", "0.5", check=False)
        return sum(1 for ln in r.stdout.splitlines() if ln.startswith("{") and json.loads(ln)["reply"])

    def denied(self):
        return netlab.worker_totals(self.app.status()).get("drop_access_denied", 0)

    def sessions(self):
        return self.app.ctl("sessions")

    def association(self, address):
        for a in (self.app.status() or {}).get("associations", []):
            if a.get("address") == address:
                return a
        return None

    def assert_alive(self, pids):
        self.assertIsNone(self.app.dp.poll(), "dataplane exited:\n" + self.app.log("dataplane")[-3000:])
        self.assertIsNone(self.app.cp.poll(), "control plane exited:\n" + self.app.log("control")[-3000:])
        self.assertEqual((self.app.dp.pid, self.app.cp.pid), pids)

    def test_sighup_reloads_both_daemons_live(self):
        app = self.app
        app.start()
        pids = (app.dp.pid, app.cp.pid)
        wait_for(lambda: (app.status() or {}).get("system", {}).get("synchronized"), 15, what="a synchronized state")
        self.assertEqual(self.query(), 3)
        # The rate-limit table's memory is said at start.
        self.assertRegex(app.log("dataplane"), r"worker 0: client table \d+ clients \(rate limits, interleaved mode\), [\d.]+ MiB")

        # A second instance of either daemon on the same segment: refused by
        # the instance lock before it touches anything, the first serves on.
        for binary in (netlab.DATAPLANE, netlab.CONTROL):
            r = self.srv.exec(binary, "--config", app.config_path, check=False, timeout=20)
            self.assertEqual(r.returncode, 1, r.stdout + r.stderr)
            self.assertIn("already running", r.stdout + r.stderr)
        self.assertEqual(self.query(), 3)
        self.assert_alive(pids)

        # An unchanged file: both say so, nothing else.
        self.app.reload("dataplane", "control")
        self.assertIn("nothing to change live", app.log("dataplane"))
        self.assertIn("nothing to change live", app.log("control"))
        self.assert_alive(pids)

        # Deny the client: no answer, and the dataplane counts why.
        self.write(self.config(access_extra=f'deny = ["{CLIENT_IP}/32"]'))
        d0 = self.denied()
        self.app.reload("dataplane", "control")
        self.assertIn("reloaded", app.log("dataplane").split("SIGHUP: reloading")[-1])
        self.assertEqual(self.query(), 0, "a denied client was answered after the reload")
        wait_for(lambda: self.denied() >= d0 + 3, 5, what="access_denied to count the client's requests")
        self.assert_alive(pids)

        # Allowed again.
        self.write(self.config())
        self.app.reload("dataplane", "control")
        self.assertEqual(self.query(), 3, "the client got no answers after the deny was lifted")
        self.assert_alive(pids)

        # A server added, reloading ntp-control alone: a session without a
        # restart, polled through the dataplane, which learns the new
        # endpoint from the segment and forwards its replies on the
        # associations' lane (before, it waited for its own reload).
        server = {"address": CHRONY_IP, "iburst": True, "minpoll": 4, "maxpoll": 4}
        self.write(self.config(servers=[server]))
        self.assertIsNone(self.association(CHRONY_IP))
        dp_reloads = app.log("dataplane").count("SIGHUP: reloading")
        self.app.reload("control")
        wait_for(lambda: CHRONY_IP in self.sessions(), 10, what=f"{CHRONY_IP} in ntpctl sessions")
        wait_for(lambda: (self.association(CHRONY_IP) or {}).get("reach", 0) > 0, 20,
                 what=f"{CHRONY_IP} to be reached")
        self.assertEqual(app.log("dataplane").count("SIGHUP: reloading"), dp_reloads)
        # The dataplane's own reload of the same file has nothing to take:
        # the associations are the control plane's.
        self.app.reload("dataplane")
        self.assertIn("nothing to change live", app.log("dataplane").split("SIGHUP: reloading")[-1])
        self.assert_alive(pids)

        # A broken file: refused with where and what, the running
        # configuration (the server, the client's access) stays.
        good = self.config(servers=[server])
        broken = good.replace("[access]\n", "[access]\nbogus_key = 1\n", 1)
        line = broken.splitlines().index("bogus_key = 1") + 1
        self.write(broken)
        reach_before = self.association(CHRONY_IP)["reach"]
        self.app.reload("dataplane", "control")
        for w in ("dataplane", "control"):
            log = app.log(w).split("SIGHUP: reloading")[-1]
            self.assertIn(f"{app.config_path}:{line}:1: access.bogus_key", log, w)
            self.assertIn("refused", log, w)
            self.assertIn("keeping the running configuration", log, w)
        self.assertEqual(self.query(), 3, "the running configuration stopped serving after a refused reload")
        a = self.association(CHRONY_IP)
        self.assertIsNotNone(a, "the association went with a refused reload")
        # Reach is an 8-bit shift register: it was not reset (a new
        # association would start from 0 and have at most a bit or two).
        self.assertGreaterEqual(bin(a["reach"]).count("1"), min(bin(reach_before).count("1"), 2))
        self.assert_alive(pids)

        # Keys that need a restart are named; the rest of the file is taken.
        self.write(self.config(servers=[server], idle_sleep_us=7,
                               extra="").replace('source = "virtual"', 'source = "virtual"\noffset_ms = 3', 1))
        self.app.reload("dataplane", "control")
        self.assertIn("dataplane.idle_sleep_us changed: needs a restart of ntp-dataplane",
                      app.log("dataplane").split("SIGHUP: reloading")[-1])
        self.assertIn("clock.offset_ms changed: needs a restart of ntp-control",
                      app.log("control").split("SIGHUP: reloading")[-1])
        self.assertEqual(self.query(), 3)
        self.assertIn(CHRONY_IP, self.sessions())
        self.assert_alive(pids)

    def test_control_plane_runs_unprivileged(self):
        """What the systemd unit does: ntp-control as an unprivileged user
        (here nobody) with no capability, on a segment the root dataplane
        handed to it (channel.control_user); it serves, and reloads."""
        app = self.app
        uid = 65534
        text = self.config().replace("[channel]\n", '[channel]\ncontrol_user = "nobody"\n', 1)
        self.write(text)
        os.chmod(self.dir, 0o755)
        os.chmod(app.config_path, 0o644)
        app.start_dataplane()
        app.cp = self.srv.popen(["setpriv", f"--reuid={uid}", f"--regid={uid}", "--clear-groups",
                                 "--inh-caps=-all", "--bounding-set=-all", "--no-new-privs",
                                 netlab.CONTROL, "--config", app.config_path],
                                os.path.join(self.dir, f"{app.name}-control.log"))
        wait_for(lambda: app._died(app.cp, "control") or app.status(), 30, what="the unprivileged control plane")
        with open(f"/proc/{app.cp.pid}/status") as f:
            st = dict(ln.split(":", 1) for ln in f.read().splitlines() if ":" in ln)
        self.assertEqual(st["Uid"].split()[1], str(uid))  # effective uid
        self.assertEqual(int(st["CapEff"].strip(), 16), 0)
        wait_for(lambda: (app.status() or {}).get("system", {}).get("synchronized"), 15, what="a synchronized state")
        self.assertEqual(self.query(), 3)
        self.write(text.replace("[access]\n", f'[access]\ndeny = ["{CLIENT_IP}/32"]\n', 1))
        os.chmod(app.config_path, 0o644)
        self.app.reload("control")
        self.assertIn("reloaded", app.log("control").split("SIGHUP: reloading")[-1])
        self.assertIsNone(app.cp.poll())

    def test_stats_port_taken_is_retried(self):
        """A local user holds the stats port first: ntp-control starts all the
        same, serves NTP, says it retries, and binds once the port is free."""
        app = self.app
        holder = self.srv.popen(["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", "/usr/bin/python3",
                                 "-c", "import socket,time\ns=socket.socket()\ns.bind(('127.0.0.1',9123))\n"
                                 "s.listen()\nprint('bound',flush=True)\ntime.sleep(600)"],
                                os.path.join(self.dir, "holder.log"))
        wait_for(lambda: "bound" in open(os.path.join(self.dir, "holder.log")).read() or holder.poll() is not None,
                 10, what="the port holder")
        self.assertIsNone(holder.poll(), open(os.path.join(self.dir, "holder.log")).read())
        app.start_dataplane()
        app.start_control(wait=False)
        wait_for(lambda: app._died(app.cp, "control") or app.log_contains("control", "retrying every 5 s"), 15,
                 what="the control plane to say it retries the stats port")
        wait_for(lambda: app._died(app.cp, "control") or app.log_contains("control", "serving synchronized"), 15,
                 what="the control plane to serve without its stats endpoint")
        self.assertEqual(self.query(), 3)
        netlab.stop_process(holder)
        wait_for(lambda: app._died(app.cp, "control") or app.status(), 15, what="the stats endpoint after the port is free")
        self.assertRegex(app.log("control"), r"stats endpoint on 127\.0\.0\.1:9123 after \d+ failed attempt")


if __name__ == "__main__":
    unittest.main()
