"""Test lab for the appliance: network namespaces joined by veth pairs or a
bridge, appliance instances (ntp-dataplane + ntp-control) with their own
configs, real chronyd/ntpdig peers. Everything created here is removed on
exit, also when a test fails or is interrupted.

Nothing leaves the namespaces: addresses exist only inside them, the host's
namespace gets nothing but the bridge/veth ends that are moved away at once.
No test touches the host clock: chronyd always runs with -x, NTPsec's ntpd
without CAP_SYS_TIME, the appliance uses the virtual clock source.
"""
import atexit
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
BUILD = os.environ.get("BUILD_DIR", os.path.join(ROOT, "build"))
DATAPLANE = os.path.join(BUILD, "dataplane", "ntp-dataplane")
CONTROL = os.path.join(BUILD, "control", "ntp-control")
NTPCTL = os.path.join(BUILD, "control", "ntpctl")
NTPFLOOD = os.path.join(BUILD, "tests", "ntpflood")

_cleanups = []

# Software timestamps are taken when the busy-polling worker sees a packet;
# if a client, chronyd or the control plane runs on the worker's CPU the
# worker waits a time slice and the timestamp is late by milliseconds. Keep
# everything but the dataplane's worker lcores (EAL pins those) on CPU 0,
# as an operator would with isolcpus/CPUAffinity.
if len(os.sched_getaffinity(0)) > 1:
    os.sched_setaffinity(0, {0})


def _run_cleanups():
    while _cleanups:
        fn = _cleanups.pop()
        try:
            fn()
        except Exception as e:  # keep cleaning up
            print(f"netlab: cleanup failed: {e}", file=sys.stderr)


atexit.register(_run_cleanups)


def _on_signal(signum, frame):
    # A second signal (timeout(1) forwarding what pkill also sent) must not
    # re-enter the cleanup: that would kill the namespaces' processes with
    # SIGKILL while the first pass is still stopping the appliance with
    # SIGTERM, and the dataplane would leave its shared memory behind.
    for s in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(s, signal.SIG_IGN)
    _run_cleanups()
    sys.exit(128 + signum)


for _s in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
    signal.signal(_s, _on_signal)


def sh(*args, check=True, capture=True, timeout=30, ns=None):
    """Run a command (list), optionally inside namespace ns."""
    cmd = list(args)
    if ns:
        cmd = ["ip", "netns", "exec", ns] + cmd
    r = subprocess.run(cmd, capture_output=capture, text=True, timeout=timeout)
    if check and r.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed ({r.returncode}): {r.stderr.strip()}")
    return r


def unique(prefix):
    """A short unique name (interface names are limited to 15 bytes)."""
    return f"{prefix}{os.getpid() % 100000:05d}{len(_cleanups) % 100:02d}"


def raw_exchange(ns, ifname, from_mac, frames, listen):
    """Sends raw Ethernet frames on ifname in ns (rawframes.py) and returns
    the frames from from_mac received within listen seconds (VLAN tags a
    veth stripped put back)."""
    p = subprocess.run(["ip", "netns", "exec", ns.name, "/usr/bin/python3",
                        os.path.join(os.path.dirname(os.path.abspath(__file__)), "rawframes.py"), ifname, from_mac,
                        str(listen)],
                       input=json.dumps([f.hex() for f in frames]), capture_output=True, text=True, timeout=30)
    if p.returncode != 0:
        raise RuntimeError(p.stderr)
    return [bytes.fromhex(h) for h in json.loads(p.stdout)]


def read_text(path):
    """A file's text (closed again), or "" while it does not exist."""
    try:
        with open(path) as f:
            return f.read()
    except FileNotFoundError:
        return ""


def wait_for(cond, timeout, interval=0.05, what="condition"):
    """Poll cond() until it returns a true value; return it, or raise."""
    deadline = time.monotonic() + timeout
    last_exc = None
    while time.monotonic() < deadline:
        try:
            v = cond()
            if v:
                return v
        except Exception as e:  # the thing polled may not be up yet
            last_exc = e
        time.sleep(interval)
    raise TimeoutError(f"timed out after {timeout} s waiting for {what}" + (f" (last error: {last_exc})" if last_exc else ""))


class Namespace:
    def __init__(self, name):
        self.name = name
        sh("ip", "netns", "add", name)
        _cleanups.append(self.remove)
        self.exec("ip", "link", "set", "lo", "up")
        # No IPv6 chatter (router solicitations, MLD) from the kernel.
        self.exec("sysctl", "-q", "-w", "net.ipv6.conf.all.disable_ipv6=1")
        self.exec("sysctl", "-q", "-w", "net.ipv6.conf.default.disable_ipv6=1")

    def exec(self, *args, **kw):
        return sh(*args, ns=self.name, **kw)

    def popen(self, args, log_path, env=None, append=False):
        """args run in the namespace in a session of their own (stop_process
        ends it), output to log_path."""
        f = open(log_path, "a" if append else "w")
        p = subprocess.Popen(["ip", "netns", "exec", self.name] + list(args), stdout=f, stderr=subprocess.STDOUT,
                             env=env, start_new_session=True)
        p._log = f
        return p

    def remove(self):
        # Kill anything still running inside, then delete.
        r = sh("ip", "netns", "pids", self.name, check=False)
        for pid in r.stdout.split():
            try:
                os.kill(int(pid), signal.SIGKILL)
            except ProcessLookupError:
                pass
        sh("ip", "netns", "del", self.name, check=False)


def veth_pair(ns_a, name_a, ns_b, name_b):
    """A veth pair with one end in each namespace; returns nothing."""
    tmp_a, tmp_b = unique("va"), unique("vb")
    sh("ip", "link", "add", tmp_a, "type", "veth", "peer", "name", tmp_b)
    sh("ip", "link", "set", tmp_a, "netns", ns_a.name)
    sh("ip", "link", "set", tmp_b, "netns", ns_b.name)
    ns_a.exec("ip", "link", "set", tmp_a, "name", name_a)
    ns_b.exec("ip", "link", "set", tmp_b, "name", name_b)
    for ns, name in ((ns_a, name_a), (ns_b, name_b)):
        # veth hands frames over with the UDP checksum left to "hardware"
        # (CHECKSUM_PARTIAL); a NIC would fill it in, veth does not, and the
        # dataplane (rightly) drops what arrives with a wrong checksum.
        ns.exec("ethtool", "-K", name, "tx", "off", check=False)
        ns.exec("ip", "link", "set", name, "up")


class Bridge:
    """A bridge in its own namespace; members are veths from other namespaces."""

    def __init__(self, ns):
        self.ns = ns
        ns.exec("ip", "link", "add", "br0", "type", "bridge")
        ns.exec("ip", "link", "set", "br0", "up")
        self.n = 0

    def attach(self, ns, ifname):
        self.n += 1
        port = f"p{self.n}"
        veth_pair(self.ns, port, ns, ifname)
        self.ns.exec("ip", "link", "set", port, "master", "br0")


def dataplane_side(ns, ifname):
    """The veth end the dataplane owns: up, no kernel address, no IPv6, and
    no kernel answers (the dataplane answers ARP itself)."""
    ns.exec("sysctl", "-q", "-w", f"net.ipv6.conf.{ifname}.disable_ipv6=1", check=False)
    ns.exec("ip", "link", "set", ifname, "arp", "off")
    # The dataplane answers; large offloads would hand it frames above MTU.
    ns.exec("ethtool", "-K", ifname, "tso", "off", "gso", "off", "gro", "off", check=False)


def appliance_link(tag, client_ip, client_if="cli0"):
    """The usual lab: the appliance's namespace and a client's, one veth
    between them (dp0, the dataplane's, and client_if with client_ip/24).
    Returns (appliance namespace, client namespace)."""
    app = Namespace(unique(f"ntp{tag}s"))
    cli = Namespace(unique(f"ntp{tag}c"))
    veth_pair(app, "dp0", cli, client_if)
    dataplane_side(app, "dp0")
    cli.exec("ip", "addr", "add", f"{client_ip}/24", "dev", client_if)
    return app, cli


def flood_device(ifname, frames=8192):
    """The dataplane's net_af_packet device for tests that flood it: a ring
    of `frames` (DPDK's default is 512, 4 ms at 137k packets/s), so that the
    worker's lcore being taken for a time slice by another process on a
    loaded 2-CPU host does not lose packets in the kernel before the
    dataplane sees them (measured: 43% lost at 110k/s with 512, none with
    8192)."""
    return f"net_af_packet0,iface={ifname},framecnt={frames}"


class Appliance:
    """One instance: ntp-dataplane and ntp-control in namespace ns."""

    def __init__(self, ns, name, workdir, config_text):
        self.ns, self.name, self.workdir = ns, name, workdir
        self.config_path = os.path.join(workdir, f"{name}.toml")
        self.dp = None
        self.cp = None
        # The daemons' instance locks go to this run's lock directory
        # (lab_lock_dir, removed at exit, with what a killed daemon left).
        config_text = with_lab_lock_dir(config_text, name)
        with open(self.config_path, "w") as f:
            f.write(config_text)
        _cleanups.append(self.stop)

    def lock_file(self, role):
        """Where this instance's daemon of role takes its lock."""
        with open(self.config_path) as f:
            text = f.read()
        shm = re.search(r'shm_name\s*=\s*"/([^"/]+)"', text).group(1)
        lock_dir = re.search(r'lock_dir\s*=\s*"([^"]+)"', text).group(1)
        return os.path.join(lock_dir, f"{shm}.{role}.lock")

    def start_dataplane(self, wait=True):
        self.dp = self.ns.popen([DATAPLANE, "--config", self.config_path],
                                os.path.join(self.workdir, f"{self.name}-dataplane.log"))
        if wait:
            wait_for(lambda: self.log_contains("dataplane", "worker 0 running") or self._died(self.dp, "dataplane"),
                     30, what=f"{self.name} dataplane to start")

    def start_control(self, wait=True, append_log=False):
        # append_log: a restarted control plane's log follows the first one's.
        self.cp = self.ns.popen([CONTROL, "--config", self.config_path],
                                os.path.join(self.workdir, f"{self.name}-control.log"), append=append_log)
        if wait:
            wait_for(lambda: self._died(self.cp, "control") or self.status(), 30,
                     what=f"{self.name} control plane to publish")

    def start(self):
        self.start_dataplane()
        self.start_control()
        return self

    def _died(self, p, which):
        if p.poll() is not None:
            raise RuntimeError(f"{self.name} {which} exited with {p.returncode}:\n" + self.log(which)[-3000:])
        return False

    def log(self, which):
        with open(os.path.join(self.workdir, f"{self.name}-{which}.log")) as f:
            return f.read()

    def reload(self, *which):
        """SIGHUP to each daemon named ("dataplane", "control"), in order;
        waits until each has logged the outcome of this reload (its n-th
        'SIGHUP: reloading' has an answer). Returns the last one's log
        from that line on."""
        procs = {"dataplane": self.dp, "control": self.cp}
        tail = None
        for w in which:
            before = self.log(w).count("SIGHUP: reloading")
            os.kill(procs[w].pid, signal.SIGHUP)

            def answered(w=w, before=before):
                log = self.log(w)
                t = log.split("SIGHUP: reloading")[-1] if log.count("SIGHUP: reloading") > before else None
                done = t is not None and any(
                    x in t for x in ("reloaded ", "refused", "nothing to change live", "keeping the running"))
                return done and t
            tail = wait_for(lambda: answered() or self._died(procs[w], w), 10, what=f"{self.name}'s {w} to reload")
        return tail

    def log_contains(self, which, text):
        try:
            return text in self.log(which)
        except FileNotFoundError:
            return False

    def ctl(self, *args, check=True):
        return self.ns.exec(NTPCTL, "--config", self.config_path, *args, check=check).stdout

    def http(self, path):
        # Through the namespace: the endpoint listens on its loopback.
        r = self.ns.exec("python3", "-c",
                         "import sys,urllib.request;sys.stdout.write(urllib.request.urlopen("
                         f"'http://{self.listen}{path}',timeout=2).read().decode())", check=True)
        return r.stdout

    @property
    def listen(self):
        with open(self.config_path) as f:
            m = re.search(r'listen\s*=\s*"([^"]+)"', f.read())
        return m.group(1) if m else "127.0.0.1:9123"

    def status(self):
        try:
            return json.loads(self.http("/status"))
        except Exception:
            return None

    def kill_control(self, sig=signal.SIGKILL):
        if self.cp and self.cp.poll() is None:
            os.killpg(self.cp.pid, sig)
            self.cp.wait(timeout=10)
            self.cp._log.close()

    def stop(self):
        for p in (self.cp, self.dp):
            if p and p.poll() is None:
                try:
                    os.killpg(p.pid, signal.SIGTERM)
                    p.wait(timeout=10)
                except (subprocess.TimeoutExpired, ProcessLookupError):
                    try:
                        os.killpg(p.pid, signal.SIGKILL)
                    except ProcessLookupError:
                        pass
                    p.wait(timeout=10)
            if p and not p._log.closed:
                p._log.close()


def stop_process(p, timeout=5):
    """Ends a process of Netns.popen (SIGTERM, then SIGKILL after timeout s)
    and closes its log; again is a no-op."""
    if p._log.closed:
        return
    if p.poll() is None:
        os.killpg(p.pid, signal.SIGTERM)
        try:
            p.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            os.killpg(p.pid, signal.SIGKILL)
            p.wait()
    p._log.close()


def make_certificates(d, ip):
    """A test CA and a server certificate for ip (an IP address SAN, what
    chronyd checks when its server directive names an address, and what
    NTPsec's ntpd checks too: OpenSSL 3's SSL_set1_host takes an address).
    Returns the paths (CA, certificate, key) in d."""
    def openssl(*args):
        sh("openssl", *args)
    ca_key, ca, key, csr, cert = (os.path.join(d, n) for n in ("ca.key", "ca.pem", "ke.key", "ke.csr", "ke.pem"))
    ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"]
    openssl("req", "-x509", *ec, "-keyout", ca_key, "-out", ca, "-days", "2", "-subj", "/CN=ntp-appliance test CA")
    openssl("req", *ec, "-keyout", key, "-out", csr, "-subj", f"/CN={ip}")
    ext = os.path.join(d, "ke.ext")
    with open(ext, "w") as f:
        f.write(f"subjectAltName=IP:{ip}\nbasicConstraints=CA:FALSE\nkeyUsage=digitalSignature\n"
                "extendedKeyUsage=serverAuth\n")
    openssl("x509", "-req", "-in", csr, "-CA", ca, "-CAkey", ca_key, "-CAcreateserial", "-out", cert, "-days", "2",
            "-extfile", ext)
    os.chmod(key, 0o600)
    return ca, cert, key


class Chrony:
    """A real chronyd in namespace ns, never touching the host clock (-x)."""

    def __init__(self, ns, workdir, lines):
        self.ns = ns
        self.dir = tempfile.mkdtemp(prefix="chrony-", dir=workdir)
        self.sock = os.path.join(self.dir, "chronyd.sock")
        conf = os.path.join(self.dir, "chrony.conf")
        with open(conf, "w") as f:
            f.write("\n".join(lines + [
                f"pidfile {self.dir}/chronyd.pid",
                f"bindcmdaddress {self.sock}",
                "cmdport 0",
                f"driftfile {self.dir}/drift",
                "",
            ]))
        # -u root: chronyd would otherwise drop to its own user, which cannot
        # use a command socket in our private temporary directory.
        self.p = ns.popen(["chronyd", "-u", "root", "-x", "-d", "-f", conf], os.path.join(self.dir, "chronyd.log"))
        _cleanups.append(self.stop)
        try:
            wait_for(lambda: os.path.exists(self.sock) or self._died(), 10, what="chronyd to start")
        except Exception:
            self.stop()
            raise

    def _died(self):
        if self.p.poll() is not None:
            raise RuntimeError("chronyd exited: " + open(os.path.join(self.dir, "chronyd.log")).read())
        return False

    def chronyc(self, *args):
        return self.ns.exec("chronyc", "-h", self.sock, "-n", *args).stdout

    def stop(self):
        stop_process(self.p)


NTPSEC_DIR = os.environ.get("NTPSEC_DIR", "/opt/ntpsec-client")  # deploy/bootstrap.sh unpacks it
NTPSEC_NTPD = os.path.join(NTPSEC_DIR, "usr", "sbin", "ntpd")
NTPSEC_NTPQ = os.path.join(NTPSEC_DIR, "usr", "bin", "ntpq")
CAP_SYS_TIME = 25

# Run by capsh, which has taken CAP_SYS_TIME out of the bounding set: the
# shell checks that no set it could come back from (bounding, inheritable,
# ambient) holds it before it becomes ntpd, so every adjtimex, clock_settime
# or settimeofday that ntpd tries fails with EPERM.
_NO_SYS_TIME = ('for s in CapBnd CapInh CapAmb; do '
                'v=$(sed -n "s/^$s:[[:space:]]*//p" /proc/$$/status); '
                f'if [ $(( (0x$v >> {CAP_SYS_TIME}) & 1 )) -ne 0 ]; then '
                'echo "CAP_SYS_TIME still in $s: not starting ntpd" >&2; exit 99; fi; done; exec "$0" "$@"')


def capabilities(pid):
    """A process's capability sets from /proc (CapEff, CapPrm, ...) as ints."""
    with open(f"/proc/{pid}/status") as f:
        return {k: int(v, 16) for k, v in (line.split(":", 1) for line in f) if k.startswith("Cap")}


class Ntpsec:
    """NTPsec's ntpd (NTPSEC_NTPD, unpacked by deploy/bootstrap.sh) in
    namespace ns as a client, which cannot touch the host clock: it runs
    without CAP_SYS_TIME (capsh; checked before and after it starts), with
    the discipline off (disable ntp, disable kernel) and -x; lines are its
    server lines. Its log, drift file and peerstats are in a directory of
    its own under workdir."""

    def __init__(self, ns, workdir, lines):
        self.ns = ns
        self.dir = tempfile.mkdtemp(prefix="ntpsec-", dir=workdir)
        self.log_path = os.path.join(self.dir, "ntpd.log")
        conf = os.path.join(self.dir, "ntp.conf")
        with open(conf, "w") as f:
            f.write("\n".join([
                f"driftfile {self.dir}/drift",
                f"logfile {self.log_path}",
                f"statsdir {self.dir}/",
                "statistics peerstats",
                "filegen peerstats file peerstats type none enable",
                "disable ntp",
                "disable kernel",
                # ntpd's default restriction is noquery: ntpq (mode 6)
                # from the namespace's own loopback only.
                "restrict 127.0.0.1",
                "restrict ::1",
            ] + list(lines) + [""]))
        self.p = ns.popen(["capsh", "--drop=cap_sys_time", "--", "-c", _NO_SYS_TIME,
                           NTPSEC_NTPD, "-n", "-x", "-c", conf], os.path.join(self.dir, "ntpd.out"))
        _cleanups.append(self.stop)
        try:
            # ip netns exec, capsh and the shell each exec the next: the
            # process started becomes ntpd.
            wait_for(lambda: self._died() or self._comm() == "ntpd", 10, what="ntpd to start")
            self.caps = capabilities(self.p.pid)
            for k in ("CapEff", "CapPrm", "CapBnd", "CapInh", "CapAmb"):
                if self.caps[k] >> CAP_SYS_TIME & 1:
                    raise RuntimeError(f"ntpd holds CAP_SYS_TIME in {k}: {self.caps}")
            wait_for(lambda: self._died() or "INIT: Running with OpenSSL" in self.log(), 10,
                     what="ntpd to initialize")
        except Exception:
            self.stop()
            raise

    def _comm(self):
        with open(f"/proc/{self.p.pid}/comm") as f:
            return f.read().strip()

    def _died(self):
        if self.p.poll() is not None:
            raise RuntimeError(f"ntpd exited with {self.p.returncode}: "
                               + open(os.path.join(self.dir, "ntpd.out")).read()[-2000:] + self.log()[-3000:])
        return False

    def log(self):
        try:
            with open(self.log_path) as f:
                return f.read()
        except FileNotFoundError:
            return ""

    def ntpq(self, *commands):
        """ntpq -n with each of commands (-c) against this ntpd (mode 6 on
        the namespace's loopback)."""
        args = [NTPSEC_NTPQ, "-n"]
        for c in commands:
            args += ["-c", c]
        return self.ns.exec(*args, "127.0.0.1", timeout=20).stdout

    def variables(self, assoc=0, names=()):
        """ntpq's readvar of association assoc (0: the system's), as a dict
        of strings (quotes taken off)."""
        out = self.ntpq(f"rv {assoc} " + ",".join(names))
        return {k: v.strip('"') for k, v in re.findall(r'([A-Za-z_][\w.]*)=("[^"]*"|[^,\s]*)', out)}

    def nts_counters(self):
        """The NTS counters (ntpq ntsinfo's variables) as ints."""
        names = ("nts_client_send", "nts_client_recv_good", "nts_client_recv_bad", "nts_ke_probes_good",
                 "nts_ke_probes_bad")
        return {k: int(v) for k, v in self.variables(0, names).items() if k in names}

    def associations(self):
        """ntpq associations: one dict per row (ind, assid, status, conf,
        reach, auth, condition, last_event, cnt)."""
        rows = []
        for line in self.ntpq("associations").splitlines():
            f = line.split()
            if len(f) >= 7 and f[0].isdigit():
                rows.append(dict(zip(("ind", "assid", "status", "conf", "reach", "auth", "condition",
                                      "last_event", "cnt"), f)))
        return rows

    def stop(self):
        stop_process(self.p)


class Sampler:
    """ntpclient.py in namespace ns querying server every interval until
    stopped, one JSON line per request in log_path (t1/t4 from the host
    clock, the truth in these tests; see ntpclient.bound_check)."""

    def __init__(self, ns, server, log_path, interval=0.2, timeout=0.5):
        self.path = log_path
        self.p = ns.popen(["/usr/bin/python3", "-u", os.path.join(os.path.dirname(os.path.abspath(__file__)),
                                                                   "ntpclient.py"), server, "--count", "0",
                           "--interval", str(interval), "--timeout", str(timeout)], log_path)
        _cleanups.append(self.stop)

    def samples(self):
        """Every request so far (the line being written, if any, left out)."""
        if self.p.poll() is not None and not self.p._log.closed:
            raise RuntimeError(f"sampler exited with {self.p.returncode}: " + open(self.path).read()[-2000:])
        with open(self.path) as f:
            lines = f.read().split("\n")
        return [json.loads(ln) for ln in lines[:-1] if ln.startswith("{")]

    def stop(self):
        stop_process(self.p)


class Flood:
    """tests/tools/ntpflood in namespace ns, sending on iface to target
    (whole frames on an AF_PACKET socket: any source, spoofed or churning);
    opts are its options without the dashes (src_prefix="10.0.4.0/22",
    capture=True, ...). result() waits for its one-line JSON summary; with
    capture its "rx" counts what the target sent back to its sources."""

    def __init__(self, ns, iface, target, log_path, **opts):
        args = [NTPFLOOD, "--iface", iface, "--target", target]
        for k, v in opts.items():
            if v is False or v is None:
                continue
            args.append("--" + k.replace("_", "-"))
            if v is not True:
                args.append(str(v))
        self.args, self.path = args, log_path
        self.p = ns.popen(args, log_path)
        _cleanups.append(self.stop)

    def result(self, timeout=120):
        try:
            self.p.wait(timeout=timeout)
        finally:
            self.stop()
        with open(self.path) as f:
            out = f.read()
        if self.p.returncode != 0:
            raise RuntimeError(f"ntpflood exited with {self.p.returncode}: {out[-2000:]}")
        lines = [ln for ln in out.splitlines() if ln.startswith("{")]
        if not lines:
            raise RuntimeError(f"ntpflood printed no summary: {out[-2000:]}")
        return json.loads(lines[-1])

    def stop(self):
        stop_process(self.p)


def flood(ns, iface, target, log_path, timeout=120, **opts):
    """Runs ntpflood to its end; returns its summary (see Flood)."""
    return Flood(ns, iface, target, log_path, **opts).result(timeout)


def worker_totals(status):
    """The dataplane's per-worker counters of a /status snapshot summed over
    the workers, drops by reason as drop_<reason>."""
    out = {}
    for w in status.get("workers", []):
        for k, v in w.items():
            if k == "drops":
                for reason, n in v.items():
                    out["drop_" + reason] = out.get("drop_" + reason, 0) + n
            elif isinstance(v, int) and k != "id":
                out[k] = out.get(k, 0) + v
    return out


def counter_delta(before, after):
    return {k: after.get(k, 0) - before.get(k, 0) for k in after}


def wait_counter_delta(app, before, cond, what, timeout=10):
    """The appliance's summed worker counters since `before` once cond(delta)
    holds, or as they are after `timeout` s (the caller asserts on them: the
    status snapshot follows the workers' counters within a poll)."""
    delta = {}

    def ok():
        nonlocal delta
        delta = counter_delta(before, worker_totals(app.status()))
        return cond(delta)
    try:
        wait_for(ok, timeout, interval=0.2, what=what)
    except Exception:
        pass
    return delta


_lab_locks_parent = None


def lab_lock_dir(instance):
    """channel.lock_dir of an appliance instance in this run: <tmp>/<instance>,
    which its first daemon makes (0755, or 1770 for channel.control_user's
    group: one directory per instance, as each may share it with another
    user), under a directory of ours that nobody else can write but
    everybody may enter (a control plane dropped to another user reaches
    its lock). Removed at exit, also after a failure."""
    global _lab_locks_parent
    if _lab_locks_parent is None:
        _lab_locks_parent = tempfile.mkdtemp(prefix="ntplab-locks-")
        os.chmod(_lab_locks_parent, 0o755)
        parent = _lab_locks_parent
        _cleanups.insert(0, lambda: shutil.rmtree(parent, ignore_errors=True))
    return os.path.join(_lab_locks_parent, instance)


def with_lab_lock_dir(text, instance):
    """A configuration with channel.lock_dir = lab_lock_dir(instance), unless
    it says one: never the host's /run/ntp-appliance."""
    if re.search(r"^\s*lock_dir\s*=", text, re.M):
        return text
    line = f'lock_dir = "{lab_lock_dir(instance)}"'
    if re.search(r"^\[channel\]\s*$", text, re.M):
        return re.sub(r"^\[channel\]\s*$", lambda m: "[channel]\n" + line, text, count=1, flags=re.M)
    return text + f"\n[channel]\n{line}\n"


def workdir(name):
    d = tempfile.mkdtemp(prefix=f"ntplab-{name}-")
    if not os.environ.get("KEEP_LOGS"):
        _cleanups.insert(0, lambda: shutil.rmtree(d, ignore_errors=True))
    return d


LAB_ACCESS = 'peer = ["10.0.0.0/8"]'
# The lab's peers poll every few seconds, so its passive associations may
# too (the default passive_minpoll_log2 = 6 would answer a chronyd peer at
# poll 0 once a minute), unless a test says otherwise (ntp="" for the defaults).
LAB_NTP = "passive_minpoll_log2 = -4"


def appliance_config(sysname, device, address, *, refclock_master=None, ntp_server=True, extra="",
                     listen="127.0.0.1:9123", clock='source = "virtual"', holdover_s=None, idle_sleep_us=0,
                     servers=(), peers=(), interface_extra="", access=None, ntp=None, worker_lcores=(1,),
                     worker_cpus=()):
    lines = [f'sysname = "{sysname}"', "log_level = \"info\"", ""]
    lines += ["[clock]", clock, ""]
    lines += ["[ntp]"]
    if refclock_master is not None:
        lines.append(f"refclock_master = {refclock_master}")
    if holdover_s is not None:
        lines.append(f"holdover_s = {holdover_s}")
    lines.append(LAB_NTP if ntp is None else ntp)
    lines += ["", "[dataplane]", "main_lcore = 0", f"worker_lcores = {list(worker_lcores)}",
              f"worker_cpus = {list(worker_cpus)}",
              'eal_args = ["--no-huge", "--no-pci", "-m", "128", "--no-telemetry", '
              '"--log-level", "lib.eal:warning"]',
              f"idle_sleep_us = {idle_sleep_us}", "",
              "[channel]", f'shm_name = "/ntp-test-{sysname}"', f'lock_dir = "{lab_lock_dir(sysname)}"', "",
              "[stats]", f'listen = "{listen}"', "",
              # The lab's own hosts may peer and are never rate-limited,
              # unless a test says otherwise (access="" gives the defaults).
              "[access]", LAB_ACCESS if access is None else access, "",
              "[[interface]]", 'name = "GigabitEthernet0/1/0"', f'device = "{device}"',
              f'address = "{address}"', f"ntp_server = {'true' if ntp_server else 'false'}", interface_extra, ""]
    for kind, items in (("server", servers), ("peer", peers)):
        for item in items:
            lines.append(f"[[{kind}]]")
            for k, v in item.items():
                lines.append(f"{k} = {json.dumps(v)}")
            lines.append("")
    lines.append(extra)
    return "\n".join(lines)
