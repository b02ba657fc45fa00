#!/usr/bin/python3
"""Issue 13: two workers on one port, clients spread over them and each
client kept on its worker (the per-worker client tables depend on it).

The port is net_af_packet with qpairs=2: the kernel's PACKET_FANOUT hashes
each flow (addresses and ports) to one of the two queues, as a NIC's RSS
does to its queues, and each worker owns one queue. This machine has two
CPUs, so the two workers share CPU 1 (dataplane.worker_cpus = [1, 1],
EAL --lcores 1@1,2@1): enough to see the spreading, not to measure it.

Checked: 64 flows (4 source addresses x 16 ports) are all answered, both
workers' ntp_requests move, and the moves add up to the answers; one flow
alone moves exactly one worker's counter, by its request count, and the
same worker again later.
"""
import json
import os
import sys
import unittest

sys.path.insert(0, os.path.dirname(__file__))
import netlab  # noqa: E402
from netlab import wait_for  # noqa: E402

SERVER_IP = "10.0.1.31"
CLIENT_IPS = ["10.0.1.100", "10.0.1.101", "10.0.1.102", "10.0.1.103"]

# Sends `count` NTPv4 requests from each (address, port) flow, one at a time,
# and prints per flow how many valid answers came (mode 4, stratum 2,
# origin = our transmit).
CLIENT = r'''
import json, os, socket, struct, sys
server, count, flows = sys.argv[1], int(sys.argv[2]), json.loads(sys.argv[3])
out = {}
for addr, port in flows:
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.bind((addr, port))
    s.settimeout(1.0)
    good = 0
    for _ in range(count):
        tx = os.urandom(8)
        s.sendto(bytes([0x23]) + bytes(39) + tx, (server, 123))
        try:
            while True:
                r, _ = s.recvfrom(2048)
                if len(r) >= 48 and r[24:32] == tx:
                    break
        except socket.timeout:
            continue
        good += (r[0] & 7) == 4 and r[1] == 2
    s.close()
    out[f"{addr}:{port}"] = good
print(json.dumps(out))
'''


class RssTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.srv, cls.cli = netlab.appliance_link("rs", CLIENT_IPS[0])
        for ip in CLIENT_IPS[1:]:
            cls.cli.exec("ip", "addr", "add", f"{ip}/24", "dev", "cli0")
        cls.dir = netlab.workdir("rss")
        cls.client = os.path.join(cls.dir, "client.py")
        with open(cls.client, "w") as f:
            f.write(CLIENT)
        sysname = netlab.unique("R")
        cls.app = netlab.Appliance(cls.srv, sysname, cls.dir, netlab.appliance_config(
            sysname, "net_af_packet0,iface=dp0,qpairs=2", f"{SERVER_IP}/24", refclock_master=2,
            worker_lcores=(1, 2), worker_cpus=(1, 1)))
        cls.app.start()
        wait_for(lambda: (cls.app.status() or {}).get("system", {}).get("synchronized"), 15,
                 what="the control plane to publish a synchronized state")

    def per_worker(self):
        return [w.get("ntp_requests", 0) for w in (self.app.status() or {}).get("workers", [])]

    def run_flows(self, flows, count):
        """Sends from each flow, waits until /status (a snapshot a second)
        has counted every answer, and returns (answers per flow, the move of
        each worker's ntp_requests)."""
        before = self.per_worker()
        out = self.cli.exec("/usr/bin/python3", self.client, SERVER_IP, str(count), json.dumps(flows),
                            timeout=60 + 2 * count * len(flows)).stdout
        answered = json.loads(out)
        total = sum(answered.values())
        after = wait_for(lambda: (lambda a: a if sum(a) - sum(before) >= total else None)(self.per_worker()), 10,
                         what=f"the workers to count {total} requests")
        return answered, [a - b for a, b in zip(after, before)]

    def test_1_two_workers_with_their_queues(self):
        st = self.app.status()
        self.assertEqual(len(st["workers"]), 2, st["workers"])
        self.assertTrue(self.app.log_contains("dataplane", "worker 1 running on lcore 2"), self.app.log("dataplane"))
        # Two pollers on one CPU is said at start.
        self.assertTrue(self.app.log_contains("dataplane", "CPU 1 also runs worker 0"), self.app.log("dataplane"))

    def test_2_flows_spread_over_both_workers(self):
        flows = [(ip, 40000 + p) for ip in CLIENT_IPS for p in range(16)]
        answered, moved = self.run_flows(flows, 3)
        print(f"\n  64 flows x 3 requests: {sum(answered.values())} answered; ntp_requests moved {moved}",
              file=sys.stderr)
        self.assertEqual(sum(answered.values()), 3 * len(flows), {k: v for k, v in answered.items() if v != 3})
        self.assertEqual(sum(moved), 3 * len(flows), moved)
        self.assertTrue(all(m > 0 for m in moved), f"a worker answered nothing: {moved}")

    def test_3_a_client_stays_on_its_worker(self):
        flows = [(CLIENT_IPS[i % 4], 41000 + i) for i in range(4)]
        first = {}
        for rnd in range(2):
            for flow in flows:
                answered, moved = self.run_flows([flow], 10)
                self.assertEqual(sum(answered.values()), 10, answered)
                busy = [w for w, m in enumerate(moved) if m]
                self.assertEqual(len(busy), 1, f"flow {flow} moved {moved}: more than one worker")
                self.assertEqual(moved[busy[0]], 10, moved)
                if rnd == 0:
                    first[flow] = busy[0]
                else:
                    self.assertEqual(busy[0], first[flow], f"flow {flow} moved from worker {first[flow]}")
        print(f"\n  flows and their workers (twice each, 10 requests a time): {first}", file=sys.stderr)


if __name__ == "__main__":
    unittest.main()
