#!/usr/bin/python3
"""Issue 9: a stats endpoint that cannot take the control plane down.

One appliance (refclock_master 2) in its own namespace, its stats endpoint
on a kernel address of that namespace (192.168.77.1:9123); a client
namespace on the same link with addresses: .2 is in access.query, and so
are the attackers .3, .5, .6 and .10, .11 (the hard case: sources with the
query right take slots); .4 is listed nowhere (default class limited: no
query right). While the attacker holds 2000 idle TCP connections from .3
(re-opening any the endpoint closes), runs a slowloris client from .5 (four
connections, each one byte of a request a second), 500 idle connections
from .4, and, on the appliance's host as uid 65534, 300 idle connections
from 127.0.0.2...127.0.0.65 (every local user can bind all of 127/8), the
test asserts:
  - the control plane keeps publishing (state_publications in /status, read
    from .2, keeps growing);
  - `ntpctl status` from .2, and as root on the appliance's host, answers
    each time, within a few seconds;
  - each slowloris connection is closed at stats.request_timeout_s (5 s),
    not held for as long as it dribbles;
  - .4 gets 403 at once and never holds a slot (ntp_stats_connections_open
    stays below what the others hold), .2 gets 200, and so does the
    appliance's host from its second address .200 (in no list, but this
    host's own: as local as loopback); /metrics counts the
    shed, timed-out and forbidden connections and stays valid Prometheus
    text (promcheck.py).
Then, with idle floods from .3, .10 and .11 and slowloris clients from .5
and .6 (remote sources with the query right filling all they may: more
slots and workers than the endpoint has), `ntpctl status` on the appliance's
host still answers each time within a few seconds: remote sources together
never hold the local reserve (ntp_stats_connections_open stays at most
stats.max_connections - 17 + the reader's own).
A second appliance listens on a Unix socket only (mode 0660 in a 0750
directory): ntpctl --config and --endpoint unix:/path both work over it.

Run as `test_stats.py --idle HOST PORT SRC N SECONDS` (SRC a.b.c.d or
a.b.c.d-e, the connections spread over the range) or
`test_stats.py --slowloris HOST PORT SRC SECONDS` this file is the attacker.
"""
import http.client
import json
import os
import resource
import select
import socket
import stat
import subprocess
import sys
import threading
import time
import unittest

sys.path.insert(0, os.path.dirname(__file__))
import netlab  # noqa: E402
from netlab import wait_for  # noqa: E402

STATS_IP, QUERY_IP, ATTACK_IP, OTHER_IP, SLOW_IP = ("192.168.77.1", "192.168.77.2", "192.168.77.3", "192.168.77.4",
                                                    "192.168.77.5")
SLOW2_IP, FILL_IPS = "192.168.77.6", ("192.168.77.10", "192.168.77.11")
OWN2_IP = "192.168.77.200"  # a second address of the appliance's host, in no access list
MAX_CONNECTIONS = 64  # stats.max_connections, the default
LOCAL_RESERVE = 17    # of which remote sources never hold (a source's share of 16, plus one)
PORT = 9123
REQUEST_TIMEOUT_S = 5  # stats.request_timeout_s, the default
ATTACK_S = 25
PROMCHECK = os.path.join(netlab.ROOT, "tests", "tools", "promcheck.py")


# --- the attacker -------------------------------------------------------------

def source_range(src):
    """'a.b.c.d' or 'a.b.c.d-e': the addresses."""
    if "-" not in src:
        return [src]
    first, last = src.split("-")
    prefix, low = first.rsplit(".", 1)
    return [f"{prefix}.{i}" for i in range(int(low), int(last) + 1)]


def run_idle(host, port, src, n, seconds):
    """Keeps n connections open without sending anything; re-opens those the
    server closes. Prints how many were opened, how many were closed, and
    how many got a 403 before they were."""
    resource.setrlimit(resource.RLIMIT_NOFILE, (n + 256, n + 256))
    sources = source_range(src)
    socks = set()
    opened = closed = forbidden = 0
    end = time.monotonic() + seconds

    def open_one():
        nonlocal opened
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        s.setblocking(False)
        s.bind((sources[opened % len(sources)], 0))
        try:
            s.connect((host, port))
        except BlockingIOError:
            pass
        socks.add(s)
        opened += 1

    while time.monotonic() < end:
        while len(socks) < n:
            open_one()
        # Closed by the server: readable with EOF or an error (poll: the fds
        # go beyond select's FD_SETSIZE).
        p = select.poll()
        by_fd = {s.fileno(): s for s in socks}
        for fd in by_fd:
            p.register(fd, select.POLLIN)
        for fd, _ in p.poll(100):
            s = by_fd[fd]
            try:
                data = s.recv(4096)
            except (BlockingIOError, InterruptedError):
                continue
            except OSError:
                data = b""
            if data.startswith(b"HTTP/1.1 403 "):
                forbidden += 1
            if not data:
                socks.discard(s)
                s.close()
                closed += 1
        time.sleep(0.2)  # re-open at most ~5 rounds a second
    print(json.dumps({"opened": opened, "closed": closed, "forbidden": forbidden}), flush=True)


SLOW_CONNECTIONS = 4  # as many as the endpoint has workers: without its per-source share they would hold them all


def run_slowloris(host, port, src, seconds):
    """SLOW_CONNECTIONS clients, each sending a request one byte a second,
    over and over; prints how long each connection lasted before the server
    closed it."""
    lasted = []
    threads = [threading.Thread(target=slowloris_one, args=(host, port, src, seconds, lasted))
               for _ in range(SLOW_CONNECTIONS)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    print(json.dumps({"lasted": sorted(lasted)}), flush=True)


def slowloris_one(host, port, src, seconds, lasted):
    request = b"GET /status HTTP/1.1\r\nHost: x\r\nX-Slow: " + b"a" * 200 + b"\r\n\r\n"
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        s.bind((src, 0))
        s.settimeout(3)
        try:
            s.connect((host, port))
        except OSError:
            s.close()
            time.sleep(0.5)
            continue
        t0 = time.monotonic()
        try:
            for i in range(len(request)):
                s.sendall(request[i:i + 1])
                r, _, _ = select.select([s], [], [], 1.0)
                if r and not s.recv(4096):
                    break  # closed on us
        except OSError:
            pass
        if time.monotonic() < end:  # the last one is cut short by the attack's end
            lasted.append(round(time.monotonic() - t0, 2))
        s.close()


# --- the test ------------------------------------------------------------------

def get(path, src):
    """(status, body) of GET path from source address src; raises when the
    connection fails."""
    c = http.client.HTTPConnection(STATS_IP, PORT, timeout=5, source_address=(src, 0))
    try:
        c.request("GET", path)
        r = c.getresponse()
        return r.status, r.read().decode()
    finally:
        c.close()


def in_ns(ns, code):
    """Runs python code in namespace ns; its stdout."""
    return ns.exec("/usr/bin/python3", "-c", code, timeout=30).stdout


class StatsEndpointTest(unittest.TestCase):
    def test_idle_connections_and_slowloris_do_not_stop_it(self):
        srv = netlab.Namespace(netlab.unique("ntpsts"))
        cli = netlab.Namespace(netlab.unique("ntpstc"))
        netlab.veth_pair(srv, "dp0", cli, "cli0")
        netlab.dataplane_side(srv, "dp0")
        netlab.veth_pair(srv, "st0", cli, "st1")
        srv.exec("ip", "addr", "add", f"{STATS_IP}/24", "dev", "st0")
        srv.exec("ip", "addr", "add", f"{OWN2_IP}/24", "dev", "st0")
        for ip in (QUERY_IP, ATTACK_IP, OTHER_IP, SLOW_IP, SLOW2_IP) + FILL_IPS:
            cli.exec("ip", "addr", "add", f"{ip}/24", "dev", "st1")
        d = netlab.workdir("sts")
        sysname = netlab.unique("S")
        query = ", ".join(f'"{ip}/32"' for ip in (QUERY_IP, ATTACK_IP, SLOW_IP, SLOW2_IP) + FILL_IPS)
        app = netlab.Appliance(srv, sysname, d, netlab.appliance_config(
            sysname, "net_af_packet0,iface=dp0", "10.0.1.61/24", refclock_master=2,
            listen=f"{STATS_IP}:{PORT}", access=f'peer = ["10.0.0.0/8"]\nquery = [{query}]'))
        app.start()

        def status_from(src):
            code = ("import sys;sys.path.insert(0,%r);import test_stats,json;"
                    "s,b=test_stats.get('/status',%r);print(json.dumps([s,json.loads(b) if s==200 else b]))"
                    % (os.path.dirname(__file__), src))
            return json.loads(in_ns(cli, code))

        def local_ntpctl():
            """ntpctl status as root on the appliance's host (uid 0: a source
            of its own); how long it took."""
            t0 = time.monotonic()
            r = srv.exec(netlab.NTPCTL, "--endpoint", f"http://{STATS_IP}:{PORT}", "status", check=False, timeout=20)
            self.assertEqual(r.returncode, 0, r.stderr)
            self.assertIn(" clock status: synchronized", r.stdout)
            return time.monotonic() - t0

        def local_sample(name):
            for line in srv.exec(netlab.NTPCTL, "--endpoint", f"http://{STATS_IP}:{PORT}", "metrics").stdout.splitlines():
                if line.startswith(name + " "):
                    return int(line.split()[1])
            raise AssertionError(f"no {name} in /metrics")

        # Access: the listed address reads, an unlisted one gets 403.
        code, body = status_from(QUERY_IP)
        self.assertEqual(code, 200)
        code, body = status_from(OTHER_IP)
        self.assertEqual(code, 403, body)
        self.assertIn("access.query", body)
        # From another of the host's own addresses: this host, as local as
        # loopback (it was taken for a remote client without the query right).
        code, body = status_or_metrics(srv, "/status", OWN2_IP)
        self.assertEqual(code, 200, body)

        me = os.path.abspath(__file__)
        attack = lambda ns, args, log: ns.popen(["/usr/bin/python3", me] + [str(a) for a in args],  # noqa: E731
                                               os.path.join(d, log))
        idle = attack(cli, ["--idle", STATS_IP, PORT, ATTACK_IP, 2000, ATTACK_S], "idle.log")
        slow = attack(cli, ["--slowloris", STATS_IP, PORT, SLOW_IP, ATTACK_S], "slow.log")
        refused = attack(cli, ["--idle", STATS_IP, PORT, OTHER_IP, 500, ATTACK_S], "refused.log")
        # A local user other than the operator, on every loopback address.
        local = srv.popen(["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", "/usr/bin/python3", me,
                           "--idle", STATS_IP, str(PORT), "127.0.0.2-65", "300", str(ATTACK_S)],
                          os.path.join(d, "local.log"))
        time.sleep(3)  # the 2000 are open (or were shed) by now
        publications, ctl_times, local_times, open_seen = [], [], [], []
        end = time.monotonic() + ATTACK_S - 6
        while time.monotonic() < end:
            code, st = status_from(QUERY_IP)
            self.assertEqual(code, 200)
            publications.append(st["system"]["state_publications"])
            t0 = time.monotonic()
            r = cli.exec(netlab.NTPCTL, "--endpoint", f"http://{STATS_IP}:{PORT}", "status", check=False, timeout=20)
            ctl_times.append(time.monotonic() - t0)
            self.assertEqual(r.returncode, 0, r.stderr)
            self.assertIn(" clock status: synchronized", r.stdout)
            local_times.append(local_ntpctl())
            open_seen.append(local_sample("ntp_stats_connections_open"))
            time.sleep(1)
        for p in (idle, slow, refused, local):
            p.wait(timeout=ATTACK_S + 30)
        idle_result = json.loads(app_log_last_line(os.path.join(d, "idle.log")))
        slow_result = json.loads(app_log_last_line(os.path.join(d, "slow.log")))
        refused_result = json.loads(app_log_last_line(os.path.join(d, "refused.log")))
        local_result = json.loads(app_log_last_line(os.path.join(d, "local.log")))
        print(f"\n  publications seen {publications[0]}..{publications[-1]} over {len(publications)} reads; "
              f"ntpctl status took {min(ctl_times):.2f}..{max(ctl_times):.2f} s from .2, "
              f"{min(local_times):.2f}..{max(local_times):.2f} s as root on the host; connections open "
              f"{min(open_seen)}..{max(open_seen)}; idle attacker opened "
              f"{idle_result['opened']}, {idle_result['closed']} closed by the endpoint; slowloris connections "
              f"lasted {slow_result['lasted']} s; the unlisted source opened {refused_result['opened']}, "
              f"{refused_result['forbidden']} answered 403; uid 65534 on 127.0.0.2-65 opened "
              f"{local_result['opened']}, {local_result['closed']} closed", file=sys.stderr)

        self.assertGreaterEqual(len(publications), 5)
        self.assertTrue(all(b > a for a, b in zip(publications, publications[1:])), publications)
        # Not behind the slow clients: they hold at most two of the workers.
        self.assertLess(max(ctl_times), 2.0)
        self.assertLess(max(local_times), 2.0)
        self.assertGreaterEqual(idle_result["opened"], 2000)
        self.assertGreaterEqual(idle_result["closed"], 1900)
        # The local user is one source however many loopback addresses it
        # binds: its share of 16 at a time, the rest closed at once.
        self.assertGreaterEqual(local_result["opened"], 300)
        self.assertGreaterEqual(local_result["closed"], 250)
        # 403 at once, no slot: what is open is .3's share (16), .5's four,
        # the local user's share (16) and the readers, never .4's 500.
        self.assertGreaterEqual(refused_result["forbidden"], 400)
        self.assertGreaterEqual(refused_result["closed"], 500)
        self.assertLessEqual(max(open_seen), 16 + 4 + 16 + 3)
        # Each slowloris connection is held to the one deadline: closed after
        # stats.request_timeout_s, not after its ~240 bytes at a byte a second.
        # Each is held to the deadline: some wait their turn for a worker
        # (the source's share is two), none lasts beyond its deadline.
        self.assertGreaterEqual(len(slow_result["lasted"]), 3 * SLOW_CONNECTIONS)
        self.assertLessEqual(max(slow_result["lasted"]), REQUEST_TIMEOUT_S + 1.5, slow_result)
        self.assertGreaterEqual(sorted(slow_result["lasted"])[len(slow_result["lasted"]) // 2],
                                REQUEST_TIMEOUT_S - 1.5, slow_result)

        code, metrics = status_or_metrics(cli, "/metrics", QUERY_IP)
        self.assertEqual(code, 200)
        samples = dict(line.rsplit(" ", 1) for line in metrics.splitlines() if line and not line.startswith("#"))
        self.assertGreaterEqual(int(samples['ntp_stats_connections_total{result="shed"}']), 1900 + 250)
        self.assertGreaterEqual(int(samples['ntp_stats_connections_total{result="timed_out"}']), 10)
        self.assertGreaterEqual(int(samples['ntp_stats_requests_total{result="forbidden"}']), 400)
        check = subprocess.run([sys.executable, PROMCHECK, "--prefix", "ntp_"], input=metrics, text=True,
                               capture_output=True)
        self.assertEqual(check.returncode, 0, check.stdout + check.stderr)
        # The endpoint is its own again once the attack is over.
        wait_for(lambda: int(status_or_metrics_sample(cli, "ntp_stats_connections_open")) <= 1,
                 REQUEST_TIMEOUT_S + 5, what="the attack's connections to be gone")

        # Remote sources with the query right, filling all they may: three
        # idle floods (48 slots wanted) and two slowloris sources (four
        # workers wanted, with their share of two each).
        fill_s = 15
        # The slow ones first, so that they hold slots (and threads) before
        # the idle floods take the rest.
        slow_fills = [attack(cli, ["--slowloris", STATS_IP, PORT, ip, fill_s], f"fill-slow-{ip}.log")
                      for ip in (SLOW_IP, SLOW2_IP)]
        time.sleep(1)
        fills = slow_fills + [attack(cli, ["--idle", STATS_IP, PORT, ip, 100, fill_s], f"fill-{ip}.log")
                              for ip in (ATTACK_IP,) + FILL_IPS]
        wait_for(lambda: local_sample("ntp_stats_connections_open") >= MAX_CONNECTIONS - LOCAL_RESERVE, 8,
                 what="remote sources to fill their part of the slots")
        fill_times, fill_open = [], []
        end = time.monotonic() + fill_s - 5
        while time.monotonic() < end:
            fill_times.append(local_ntpctl())
            fill_open.append(local_sample("ntp_stats_connections_open"))
            time.sleep(0.5)
        for p in fills:
            p.wait(timeout=fill_s + 30)
        slow_lasted = [json.loads(app_log_last_line(os.path.join(d, f"fill-slow-{ip}.log")))["lasted"]
                       for ip in (SLOW_IP, SLOW2_IP)]
        print(f"  remote sources filling the endpoint: ntpctl status as root on the host took "
              f"{min(fill_times):.2f}..{max(fill_times):.2f} s over {len(fill_times)} calls; connections open "
              f"{min(fill_open)}..{max(fill_open)}; slowloris connections lasted {slow_lasted} s", file=sys.stderr)
        self.assertGreaterEqual(len(fill_times), 5)
        self.assertLess(max(fill_times), 2.0)
        # Remote sources at their cap (47) plus the reader's own connection
        # (and the one before it, if its worker has not let go of it yet).
        self.assertGreaterEqual(max(fill_open), MAX_CONNECTIONS - LOCAL_RESERVE)
        self.assertLessEqual(max(fill_open), MAX_CONNECTIONS - LOCAL_RESERVE + 2)
        # The slow ones were served by threads (held to the deadline), not
        # only shed: the three remote threads were busy while ntpctl was not
        # kept waiting.
        self.assertGreaterEqual(max(max(l) for l in slow_lasted), REQUEST_TIMEOUT_S - 1.5, slow_lasted)

    def test_unix_socket_with_ntpctl(self):
        srv = netlab.Namespace(netlab.unique("ntpstu"))
        peer = netlab.Namespace(netlab.unique("ntpstp"))
        netlab.veth_pair(srv, "dp0", peer, "cli0")
        netlab.dataplane_side(srv, "dp0")
        d = netlab.workdir("stu")
        sock_dir = os.path.join(d, "run")
        os.mkdir(sock_dir, 0o750)
        sock = os.path.join(sock_dir, "stats.sock")
        sysname = netlab.unique("U")
        app = netlab.Appliance(srv, sysname, d, netlab.appliance_config(
            sysname, "net_af_packet0,iface=dp0", "10.0.1.62/24", refclock_master=2, listen=f"unix:{sock}"))
        app.start_dataplane()
        app.start_control(wait=False)
        wait_for(lambda: app._died(app.cp, "control") or
                 " clock status: synchronized" in app.ctl("status", check=False), 30,
                 what="ntpctl --config status over the Unix socket to say synchronized")
        st = os.lstat(sock)
        self.assertTrue(stat.S_ISSOCK(st.st_mode))
        self.assertEqual(stat.S_IMODE(st.st_mode), 0o660)
        out = app.ctl("status")
        self.assertIn(" clock status: synchronized", out)
        r = srv.exec(netlab.NTPCTL, "--endpoint", f"unix:{sock}", "--json", "status")
        self.assertIn('"state_publications"', r.stdout)
        self.assertNotIn("origin_ts", r.stdout)
        limits = app.ctl("limits")
        self.assertIn(" worker 0\n client table: ", limits)
        metrics = app.ctl("metrics")
        self.assertIn("\nntp_ratelimit_table_capacity{worker=\"0\"} ", metrics)
        # Not a TCP endpoint any more.
        r = srv.exec(netlab.NTPCTL, "status", check=False)
        self.assertEqual(r.returncode, 1)
        app.stop()
        self.assertFalse(os.path.exists(sock), "the socket is removed at stop")


def app_log_last_line(path):
    with open(path) as f:
        lines = [l for l in f.read().splitlines() if l.startswith("{")]
    return lines[-1]


def status_or_metrics(ns, path, src):
    code = ("import sys,json;sys.path.insert(0,%r);import test_stats;print(json.dumps(test_stats.get(%r,%r)))"
            % (os.path.dirname(__file__), path, src))
    return json.loads(in_ns(ns, code))


def status_or_metrics_sample(ns, name):
    _, text = status_or_metrics(ns, "/metrics", QUERY_IP)
    for line in text.splitlines():
        if line.startswith(name + " "):
            return line.split()[1]
    raise AssertionError(f"no {name} in /metrics")


if __name__ == "__main__":
    if len(sys.argv) == 7 and sys.argv[1] == "--idle":
        run_idle(sys.argv[2], int(sys.argv[3]), sys.argv[4], int(sys.argv[5]), float(sys.argv[6]))
        sys.exit(0)
    if len(sys.argv) == 6 and sys.argv[1] == "--slowloris":
        run_slowloris(sys.argv[2], int(sys.argv[3]), sys.argv[4], float(sys.argv[5]))
        sys.exit(0)
    unittest.main(verbosity=2)
