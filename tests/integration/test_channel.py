#!/usr/bin/python3
"""Issue 9: a channel only the two daemons can use.

- A segment planted under the instance's name by another user (uid 65534,
  mode 0666, a header with the right magic and ABI) while the dataplane is
  down: ntp-control refuses it with a message naming the owner and the
  mode, says so once, and writes nothing into it; a dataplane started
  then replaces it and the control plane attaches to the real one.
- A second ntp-control for the same instance exits non-zero with "already
  running" and the first one's pid, while the first keeps publishing.
- A second ntp-dataplane likewise, while the first keeps answering clients
  and the control plane stays attached to its segment.
- channel.control_user = "nobody": the dataplane gives its segment to that
  user and makes the lock directory 1770 for its group; a root ntp-control
  refuses the segment, one running as nobody takes its lock there and
  serves from it.
- The instance locks live in channel.lock_dir, not /dev/shm: lock files
  squatted in /dev/shm by uid 65534 (the old attack) stop nothing, and
  uid 65534 cannot make a file in the lock directory (EACCES); a lock
  directory others may write refuses the start, naming it, its owner and
  mode and the key.
- A member of the shared lock directory's group (uid 65534 in a 1770
  root:65534 directory, channel.control_user = "nobody") that makes
  <name>.dataplane.lock first no longer keeps the root dataplane from
  starting: its file is replaced by the dataplane's own lock, and the
  dataplane serves.
"""
import errno
import os
import re
import struct
import subprocess
import sys
import time
import unittest

sys.path.insert(0, os.path.dirname(__file__))
import netlab  # noqa: E402
from netlab import wait_for  # noqa: E402

SERVER_IP = "10.0.9.41"
CLIENT_IP = "10.0.9.140"
NOBODY = 65534
CHANNEL_MAGIC = 0x4E54504150504C31  # "NTPAPPL1", proto/channel_abi.h
# The ABI version the daemons check (a planted segment looks real).
with open(os.path.join(netlab.ROOT, "proto", "channel_abi.h")) as _f:
    CHANNEL_ABI = int(re.search(r"kChannelAbiVersion = (\d+);", _f.read()).group(1))
NTPCLIENT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "ntpclient.py")


def plant_segment(path, size=1 << 20):
    """Creates path as uid/gid 65534 with mode 0666, as another local user
    would: the magic and ABI version of a real segment, zeros after."""
    code = (
        "import os,struct,sys\n"
        "fd = os.open(sys.argv[1], os.O_RDWR | os.O_CREAT | os.O_EXCL, 0o666)\n"
        "os.fchmod(fd, 0o666)\n"
        "os.ftruncate(fd, int(sys.argv[2]))\n"
        f"os.pwrite(fd, struct.pack('<QII', {CHANNEL_MAGIC}, {CHANNEL_ABI}, 0), 0)\n"
        "os.close(fd)\n")

    subprocess.run([sys.executable, "-c", code, path, str(size)], preexec_fn=drop_to_nobody, check=True, timeout=10)


def drop_to_nobody():
    os.setgroups([])
    os.setgid(NOBODY)
    os.setuid(NOBODY)


def as_nobody(code, *args):
    """Runs python code as uid/gid 65534; its stdout."""
    r = subprocess.run([sys.executable, "-c", code, *args], preexec_fn=drop_to_nobody, capture_output=True,
                       text=True, timeout=10)
    if r.returncode != 0:
        raise RuntimeError(f"as nobody: {r.stderr}")
    return r.stdout.strip()


def shm_file(sysname):
    return f"/dev/shm/ntp-test-{sysname}"


class ChannelTest(unittest.TestCase):
    def lab(self, tag):
        srv = netlab.Namespace(netlab.unique(f"ntch{tag}s"))
        cli = netlab.Namespace(netlab.unique(f"ntch{tag}c"))
        netlab.veth_pair(srv, "dp0", cli, "cli0")
        netlab.dataplane_side(srv, "dp0")
        cli.exec("ip", "addr", "add", f"{CLIENT_IP}/24", "dev", "cli0")
        d = netlab.workdir(f"ch{tag}")
        sysname = netlab.unique(f"Ch{tag}")
        # The segment, and lock files squatted where they used to be.
        files = [shm_file(sysname) + s for s in ("", ".control.lock", ".dataplane.lock")]

        def remove_files():
            for p in files:
                if os.path.lexists(p):
                    os.unlink(p)

        # Whatever a failed run left under this name (unique, but never trust
        # /dev/shm), and at the end, after the appliance stopped, what a
        # refused or killed process left.
        remove_files()
        netlab._cleanups.append(remove_files)
        app = netlab.Appliance(srv, sysname, d, netlab.appliance_config(
            sysname, "net_af_packet0,iface=dp0", f"{SERVER_IP}/24", refclock_master=2))
        return srv, cli, d, sysname, app

    def answered(self, cli):
        r = cli.exec("/usr/bin/python3", NTPCLIENT, SERVER_IP, "--count", "1", "--timeout", "1", check=False)
        return '"reply": true' in r.stdout

    def test_planted_segment_is_refused_and_replaced_by_the_dataplane(self):
        srv, cli, d, sysname, app = self.lab("p")
        path = shm_file(sysname)
        plant_segment(path)
        planted = open(path, "rb").read()
        st = os.lstat(path)
        self.assertEqual((st.st_uid, st.st_mode & 0o777), (NOBODY, 0o666))

        app.start_control(wait=False)
        refusal = (f"shared memory /ntp-test-{sysname} is owned by uid {NOBODY} with mode 0666, not by us "
                   f"(uid 0) with mode 0600: refusing it (planted by another user?)")
        wait_for(lambda: app._died(app.cp, "control") or app.log_contains("control", refusal), 20,
                 what="the control plane to refuse the planted segment")
        # It keeps retrying (every 200 ms) for a real one: observed over 3 s,
        # the refusal is logged once, nothing attached, nothing written.
        time.sleep(3)
        log = app.log("control")
        self.assertIsNone(app.cp.poll(), "the control plane must wait for a real segment, not exit")
        self.assertEqual(log.count(refusal), 1, log[-3000:])
        self.assertNotIn("attached to shared memory", log)
        self.assertEqual(open(path, "rb").read(), planted, "the control plane wrote into the planted segment")

        # The dataplane (holding its lock) replaces the planted file with its
        # own, mode 0600, and the control plane attaches to that one.
        app.start_dataplane()
        st = os.lstat(path)
        self.assertEqual((st.st_uid, st.st_mode & 0o777), (0, 0o600))
        wait_for(lambda: app._died(app.cp, "control") or app.log_contains("control", "attached to shared memory"),
                 20, what="the control plane to attach to the dataplane's segment")
        wait_for(lambda: app.status(), 20, what="the control plane to publish")
        wait_for(lambda: self.answered(cli), 20, what="an answer from the appliance")

    def test_second_control_plane_exits_already_running(self):
        srv, cli, d, sysname, app = self.lab("c")
        app.start()
        first_pid = app.status()["system"]["control_pid"]
        second = srv.popen([netlab.CONTROL, "--config", app.config_path], os.path.join(d, "second-control.log"))
        try:
            rc = second.wait(timeout=30)
        finally:
            netlab.stop_process(second)
        log = open(os.path.join(d, "second-control.log")).read()
        self.assertNotEqual(rc, 0, log)
        self.assertIn(f"ntp-control for /ntp-test-{sysname} is already running (pid {first_pid} holds "
                      f"{app.lock_file('control')})", log)
        self.assertNotIn("attached to shared memory", log)
        # The first one goes on: alive, still the segment's control plane,
        # and its publications keep coming.
        self.assertIsNone(app.cp.poll())
        before = app.status()["system"]
        self.assertEqual(before["control_pid"], first_pid)
        wait_for(lambda: app.status()["system"]["state_publications"] > before["state_publications"] + 2, 10,
                 what="the first control plane to keep publishing")
        self.assertTrue(self.answered(cli))

    def test_second_dataplane_exits_already_running(self):
        srv, cli, d, sysname, app = self.lab("d")
        app.start()
        wait_for(lambda: self.answered(cli), 20, what="an answer from the appliance")
        first = app.status()["system"]
        st = os.lstat(shm_file(sysname))
        second = srv.popen([netlab.DATAPLANE, "--config", app.config_path], os.path.join(d, "second-dataplane.log"))
        try:
            rc = second.wait(timeout=30)
        finally:
            netlab.stop_process(second)
        log = open(os.path.join(d, "second-dataplane.log")).read()
        self.assertNotEqual(rc, 0, log)
        self.assertIn(f"ntp-dataplane for /ntp-test-{sysname} is already running (pid {first['dataplane_pid']} "
                      f"holds {app.lock_file('dataplane')})", log)
        # The first one's segment is the same file, the control plane still on
        # it, and clients are still answered.
        st2 = os.lstat(shm_file(sysname))
        self.assertEqual((st2.st_dev, st2.st_ino), (st.st_dev, st.st_ino), "the segment was replaced")
        self.assertIsNone(app.dp.poll())
        self.assertNotIn("went away", app.log("control"))
        self.assertEqual(app.status()["system"]["dataplane_pid"], first["dataplane_pid"])
        self.assertTrue(self.answered(cli))

    def test_unprivileged_control_plane_on_a_segment_given_to_it(self):
        # channel.control_user: the dataplane (root) gives the segment to the
        # user ntp-control runs as; a control plane of any other uid (root
        # included) refuses it, that user's attaches and serves.
        srv, cli, d, sysname, app = self.lab("u")
        with open(app.config_path) as f:
            text = f.read()
        text = text.replace(f'shm_name = "/ntp-test-{sysname}"',
                            f'shm_name = "/ntp-test-{sysname}"\ncontrol_user = "nobody"')
        with open(app.config_path, "w") as f:
            f.write(text)
        os.chmod(d, 0o755)
        os.chmod(app.config_path, 0o644)
        app.start_dataplane()
        st = os.lstat(shm_file(sysname))
        self.assertEqual((st.st_uid, st.st_mode & 0o777), (NOBODY, 0o600))
        # The lock directory it made: root's, shared with nobody's group,
        # sticky (nobody can make its lock, not remove the dataplane's).
        lock_dir = os.path.dirname(app.lock_file("dataplane"))
        st = os.lstat(lock_dir)
        self.assertEqual((st.st_uid, st.st_gid, st.st_mode & 0o7777), (0, NOBODY, 0o1770))
        self.assertEqual(as_nobody("import os,sys\ntry:\n os.unlink(sys.argv[1]); print('removed')\n"
                                   "except OSError as e:\n print(e.errno)", app.lock_file("dataplane")),
                         str(errno.EPERM))

        as_root = srv.popen([netlab.CONTROL, "--config", app.config_path], os.path.join(d, "root-control.log"))
        refusal = (f"shared memory /ntp-test-{sysname} is owned by uid {NOBODY} with mode 0600, not by us (uid 0) "
                   f"with mode 0600: refusing it (planted by another user?)")
        try:
            wait_for(lambda: as_root.poll() is not None or refusal in open(os.path.join(d, "root-control.log")).read(),
                     20, what="a root control plane to refuse the segment given to nobody")
            self.assertIsNone(as_root.poll())
        finally:
            netlab.stop_process(as_root)  # SIGTERM: it removes its lock file

        app.cp = srv.popen(["setpriv", f"--reuid={NOBODY}", f"--regid={NOBODY}", "--clear-groups", netlab.CONTROL,
                            "--config", app.config_path], os.path.join(d, f"{sysname}-control.log"))
        wait_for(lambda: app._died(app.cp, "control") or app.status(), 30, what="nobody's control plane to publish")
        wait_for(lambda: app.log_contains("control", "attached to shared memory"), 10, what="it to attach")
        pid = app.status()["system"]["control_pid"]
        with open(f"/proc/{pid}/status") as f:
            uids = next(line for line in f if line.startswith("Uid:")).split()[1:]
        self.assertEqual(set(uids), {str(NOBODY)})
        st = os.lstat(app.lock_file("control"))
        self.assertEqual((st.st_uid, st.st_mode & 0o777), (NOBODY, 0o600))
        wait_for(lambda: (app.status() or {}).get("system", {}).get("synchronized"), 20, what="a synchronized state")
        self.assertTrue(self.answered(cli))

    def test_locks_squatted_in_dev_shm_stop_nothing_and_nobody_writes_the_lock_dir(self):
        srv, cli, d, sysname, app = self.lab("q")
        # The old attack: another user makes both lock files first where
        # they used to be.
        squatted = [f"{shm_file(sysname)}.{role}.lock" for role in ("control", "dataplane")]
        for path in squatted:
            as_nobody("import os,sys\nfd = os.open(sys.argv[1], os.O_RDWR | os.O_CREAT | os.O_EXCL, 0o644)\n"
                      "os.write(fd, b'1\\n')\nos.close(fd)", path)
        app.start()
        wait_for(lambda: self.answered(cli), 20, what="an answer from the appliance")
        for path in squatted:
            st = os.lstat(path)
            self.assertEqual(st.st_uid, NOBODY)
            with open(path) as f:
                self.assertEqual(f.read(), "1\n", f"{path} was written")
        # The locks are in the lock directory, root's, which the daemons
        # made 0755 (no channel.control_user here).
        for role in ("control", "dataplane"):
            st = os.lstat(app.lock_file(role))
            self.assertEqual((st.st_uid, st.st_mode & 0o777), (0, 0o600))
        lock_dir = os.path.dirname(app.lock_file("control"))
        st = os.lstat(lock_dir)
        self.assertEqual((st.st_uid, st.st_mode & 0o7777), (0, 0o755))
        # Nobody can make a name there: neither a lock of an instance not
        # yet started, nor anything else.
        for name in (f"ntp-test-{sysname}x.control.lock", "squat"):
            self.assertEqual(as_nobody("import os,sys\ntry:\n os.close(os.open(sys.argv[1], os.O_RDWR | os.O_CREAT | "
                                       "os.O_EXCL, 0o644)); print('created')\nexcept OSError as e:\n print(e.errno)",
                                       os.path.join(lock_dir, name)), str(errno.EACCES))

    def test_a_squat_in_the_shared_lock_dir_does_not_stop_the_dataplane(self):
        srv, cli, d, sysname, app = self.lab("g")
        with open(app.config_path) as f:
            text = f.read()
        with open(app.config_path, "w") as f:
            f.write(text.replace(f'shm_name = "/ntp-test-{sysname}"',
                                 f'shm_name = "/ntp-test-{sysname}"\ncontrol_user = "nobody"'))
        # The directory as tmpfiles.d makes it, shared with nobody's group.
        lock_dir = os.path.dirname(app.lock_file("dataplane"))
        os.mkdir(lock_dir)
        os.chown(lock_dir, 0, NOBODY)
        os.chmod(lock_dir, 0o1770)
        self.assertEqual(as_nobody("import os,sys\nfd = os.open(sys.argv[1], os.O_RDWR | os.O_CREAT | os.O_EXCL, 0o600)"
                                   "\nos.write(fd, b'1\\n')\nos.close(fd)\nprint('planted')", app.lock_file("dataplane")),
                         "planted")
        app.start_dataplane()  # until its worker runs; raises if it exited
        st = os.lstat(app.lock_file("dataplane"))
        self.assertEqual((st.st_uid, st.st_mode & 0o7777), (0, 0o600))
        with open(app.lock_file("dataplane")) as f:
            holder = int(f.read())
        with open(f"/proc/{holder}/comm") as f:
            self.assertEqual(f.read().strip(), "ntp-dataplane")
        self.assertEqual(sorted(n for n in os.listdir(lock_dir) if n.startswith(f"ntp-test-{sysname}")),
                         [f"ntp-test-{sysname}.dataplane.lock"], "a temporary name was left behind")

    def test_a_lock_dir_others_may_write_refuses_the_start(self):
        srv, cli, d, sysname, app = self.lab("w")
        open_dir = os.path.join(d, "open-locks")
        os.mkdir(open_dir)
        os.chmod(open_dir, 0o1777)  # like /dev/shm
        with open(app.config_path) as f:
            text = f.read()
        with open(app.config_path, "w") as f:
            f.write(text.replace(f'lock_dir = "{netlab.lab_lock_dir(sysname)}"', f'lock_dir = "{open_dir}"'))
        refusal = (f"the lock directory {open_dir} (channel.lock_dir) is owned by uid 0 gid 0 with mode 1777: "
                   "refusing it; it must be owned by root or by us (uid 0) and writable by no other user (by its group "
                   "only when sticky, e.g. 1770 root:<channel.control_user's group>)")
        for binary, which in ((netlab.DATAPLANE, "dataplane"), (netlab.CONTROL, "control")):
            r = srv.exec(binary, "--config", app.config_path, check=False, timeout=20)
            self.assertEqual(r.returncode, 1, r.stdout + r.stderr)
            self.assertIn(refusal, r.stdout + r.stderr)
            self.assertEqual(os.listdir(open_dir), [], f"{which} made a file in the refused directory")
        self.assertFalse(os.path.lexists(shm_file(sysname)), "the dataplane made its segment")


if __name__ == "__main__":
    unittest.main()
