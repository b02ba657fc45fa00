#!/usr/bin/python3
"""Access classes from the outside (issue 9): [access] lists with
default_class = "deny", so the appliance serves only what they list.

The lab: the appliance's dataplane port on 10.0.6.0/24, where
10.0.6.0/24 is synchronization-only but 10.0.6.128/25 is denied (deny wins
inside an allowed prefix); 10.0.7.0/24 and the management network's
10.0.8.0/30 are query-only; the stats endpoint listens on the appliance's
management address 10.0.8.1. Requests come from spoofed sources on the same
veth (tests/tools/ntpflood.cc, which counts what comes back to them), from
ntpclient.py and from a real chronyd trying to peer.
"""
import json
import math
import os
import sys
import time
import unittest

sys.path.insert(0, os.path.dirname(__file__))
import netlab  # noqa: E402
from netlab import wait_for  # noqa: E402

APPLIANCE_IP = "10.0.6.10"
CHRONY_IP = "10.0.6.20"          # synchronization-only, an address of the lab (chronyd, ntpclient)
SYNC_SPOOF = "10.0.6.21"         # synchronization-only, spoofed
DENIED_IP = "10.0.6.200"         # in the denied /25, an address of the lab (ntpclient)
DENIED_SPOOF = "10.0.6.201"
QUERY_SPOOF = "10.0.7.5"         # query-only
UNLISTED_SPOOF = "10.0.9.9"      # in no list: default_class deny
MGMT_APP, MGMT_QUERY, MGMT_OTHER = "10.0.8.1", "10.0.8.2", "10.0.8.5"
INTERVAL_LOG2 = 3                # [ratelimit] default: DENY KoDs at most one per 8 s per source

ACCESS = "\n".join([
    'synchronization = ["10.0.6.0/24"]',
    'deny = ["10.0.6.128/25"]',
    'query = ["10.0.7.0/24", "10.0.8.0/30"]',
    'default_class = "deny"',
])

HTTP_GET = """
import json, sys, urllib.request, http.client
src, url = sys.argv[1], sys.argv[2]
host, port = url.split("/")[2].split(":")
try:
    c = http.client.HTTPConnection(host, int(port), timeout=3, source_address=(src, 0))
    c.request("GET", "/" + url.split("/", 3)[3])
    r = c.getresponse()
    body = r.read().decode(errors="replace")
    print(json.dumps({"status": r.status, "json": body.startswith("{") and "system" in json.loads(body)}))
except Exception as e:
    print(json.dumps({"status": None, "error": repr(e)}))
"""


class AccessTest(unittest.TestCase):
    def lab(self, tag, kod, access=None, extra=""):
        self.app_ns = netlab.Namespace(netlab.unique(f"ntp{tag}a"))
        self.lab_ns = netlab.Namespace(netlab.unique(f"ntp{tag}c"))
        netlab.veth_pair(self.app_ns, "dp0", self.lab_ns, "eth0")
        netlab.dataplane_side(self.app_ns, "dp0")
        self.lab_ns.exec("ip", "addr", "add", f"{CHRONY_IP}/24", "dev", "eth0")
        self.lab_ns.exec("ip", "addr", "add", f"{DENIED_IP}/24", "dev", "eth0")
        # The management network: a kernel interface for the stats endpoint.
        netlab.veth_pair(self.app_ns, "mg0", self.lab_ns, "mg0")
        self.app_ns.exec("ip", "addr", "add", f"{MGMT_APP}/24", "dev", "mg0")
        for a in (MGMT_QUERY, MGMT_OTHER):
            self.lab_ns.exec("ip", "addr", "add", f"{a}/24", "dev", "mg0")
        self.dir = netlab.workdir(tag)
        sysname = netlab.unique("X")
        access = (ACCESS if access is None else access) + ("\nkod = true" if kod else "")
        self.app = netlab.Appliance(self.app_ns, sysname, self.dir, netlab.appliance_config(
            sysname, "net_af_packet0,iface=dp0", f"{APPLIANCE_IP}/24", refclock_master=2,
            listen=f"{MGMT_APP}:9123", access=access, ntp=extra)).start()

    def flood(self, name, **opts):
        opts.setdefault("rate", 20)
        opts.setdefault("count", 20)
        opts.setdefault("duration", 5)
        opts.setdefault("linger", 1)
        return netlab.Flood(self.lab_ns, "eth0", APPLIANCE_IP, os.path.join(self.dir, name + ".json"),
                            capture=True, **opts)

    def totals(self):
        return netlab.worker_totals(self.app.status() or {})

    def get_status_from(self, src):
        out = self.lab_ns.exec("python3", "-c", HTTP_GET, src, f"http://{MGMT_APP}:9123/status").stdout
        return json.loads(out)

    def ntpclient(self, source, version=4, poll=0):
        out = self.lab_ns.exec("/usr/bin/python3", os.path.join(os.path.dirname(os.path.abspath(__file__)),
                                                                "ntpclient.py"),
                               APPLIANCE_IP, "--count", "1", "--timeout", "1", "--source", source,
                               "--version", str(version), "--poll", str(poll)).stdout
        return json.loads(out.splitlines()[-1])

    def test_silent_denial_sync_only_cannot_peer_query_only_reads_status(self):
        self.lab("acs", kod=False)
        before = self.totals()
        chrony = netlab.Chrony(self.lab_ns, self.dir, [f"peer {APPLIANCE_IP} minpoll 0 maxpoll 0"])
        t_chrony = time.monotonic()
        runs = {
            "denied v4": self.flood("denied4", src=DENIED_SPOOF),
            "denied v3": self.flood("denied3", src="10.0.6.202", version=3, seed=2),
            "denied mode 1": self.flood("denied1", src="10.0.6.203", mode=1, poll=6, seed=3),
            "unlisted": self.flood("unlisted", src=UNLISTED_SPOOF),
            "query-only": self.flood("query", src=QUERY_SPOOF),
            "sync-only": self.flood("sync", src=SYNC_SPOOF),
            # (each run from its own address: a run counts all that comes to it)
            "sync-only mode 1": self.flood("sync1", src="10.0.6.22", mode=1, poll=17, seed=4),
        }
        res = {k: f.result(timeout=30) for k, f in runs.items()}
        for k, r in res.items():
            print(f"\n  {k} ({r['source']}): {r['sent']} sent, {r['rx']['to_sources']} packets back "
                  f"({r['rx']['normal']} answers, kiss codes {r['rx']['kiss_codes']})", file=sys.stderr, end="")
        print(file=sys.stderr)
        for k in ("denied v4", "denied v3", "denied mode 1", "unlisted", "query-only", "sync-only mode 1"):
            self.assertEqual(res[k]["sent"], 20)
            self.assertEqual(res[k]["rx"]["to_sources"], 0, (k, res[k]))
            self.assertEqual(res[k]["rx"]["arp_requests"], 0, (k, res[k]))
        # The class that may get time gets it, every request.
        self.assertEqual(res["sync-only"]["rx"]["normal"], 20, res["sync-only"])
        got = self.ntpclient(CHRONY_IP)
        self.assertTrue(got["reply"], got)
        self.assertNotEqual(got["stratum"], 0, got)

        # chronyd peering from a synchronization-only address: never answered
        # in mode 2, no association on the appliance (at poll 0: 8+ tries).
        wait_for(lambda: time.monotonic() - t_chrony > 9, 15, interval=0.5, what="9 s of chronyd's peer polls")
        data = chrony.chronyc("ntpdata", APPLIANCE_IP)
        sources = chrony.chronyc("sources")
        addresses = [a["address"] for a in self.app.status()["associations"]]
        d = netlab.counter_delta(before, self.totals())
        print(f"  chronyd peering from {CHRONY_IP} (synchronization): appliance associations {addresses}, "
              f"chronyd: {[ln for ln in sources.splitlines() if APPLIANCE_IP in ln]}; dataplane: access_denied "
              f"{d.get('drop_access_denied')}, not_a_peer {d.get('drop_not_a_peer')}", file=sys.stderr)
        self.assertNotIn(CHRONY_IP, addresses)
        self.assertRegex(data, r"Total RX\s*:\s*0\n", data)
        # Counted as the dataplane's reasons: mode 3 without time rights is
        # access_denied; mode 1 from a synchronization-only address (the run
        # and chronyd's 8+ polls) not_a_peer; a denied mode 1 either.
        self.assertGreaterEqual(d.get("drop_access_denied", 0), 20 * 4, d)
        self.assertGreaterEqual(d.get("drop_not_a_peer", 0), 20 + 5, d)
        self.assertGreaterEqual(d.get("drop_access_denied", 0) + d.get("drop_not_a_peer", 0), 20 * 4 + 20 + 20 + 5, d)
        chrony.stop()

        # The stats endpoint: a query-only address reads /status, an address
        # in no list (default_class deny) does not.
        q = self.get_status_from(MGMT_QUERY)
        other = self.get_status_from(MGMT_OTHER)
        print(f"  /status from {MGMT_QUERY} (query): {q}; from {MGMT_OTHER} (unlisted, deny): {other}",
              file=sys.stderr)
        self.assertEqual(q.get("status"), 200, q)
        self.assertTrue(q.get("json"), q)
        self.assertNotEqual(other.get("status"), 200, other)

    def test_deny_kod(self):
        self.lab("ack", kod=True)
        before = self.totals()
        # The kiss-o'-death itself (RFC 5905 section 7.4): LI 3, stratum 0,
        # refid "DENY", mode 4, the request's version and poll, origin =
        # the request's transmit (ntpclient accepts only that), 48 bytes.
        k = self.ntpclient(DENIED_IP, poll=5)
        print(f"\n  NTPv4 from denied {DENIED_IP}: {k}", file=sys.stderr)
        self.assertTrue(k["reply"], k)
        self.assertEqual((k["leap"], k["stratum"], k["refid_text"], k["mode"], k["version"], k["poll"], k["length"]),
                         (3, 0, "DENY", 4, 4, 5, 48), k)
        runs = {
            # A flood from one denied source: one DENY per ratelimit interval.
            "denied v4": self.flood("kdenied4", src=DENIED_SPOOF, rate=50, count=100),
            "denied v3": self.flood("kdenied3", src="10.0.6.202", version=3),
            "unlisted": self.flood("kunlisted", src=UNLISTED_SPOOF, rate=50, count=100),
            "query-only": self.flood("kquery", src=QUERY_SPOOF, rate=50, count=100),
            "sync-only": self.flood("ksync", src=SYNC_SPOOF),
        }
        res = {k: f.result(timeout=30) for k, f in runs.items()}
        for name, r in res.items():
            print(f"  {name} ({r['source']}): {r['sent']} sent in {r['seconds']:.1f} s, {r['rx']['to_sources']} "
                  f"packets back ({r['rx']['normal']} answers, kiss codes {r['rx']['kiss_codes']})", file=sys.stderr)
        for name in ("denied v4", "unlisted", "query-only"):
            r = res[name]
            budget = 1 + math.ceil(r["seconds"] / 2 ** INTERVAL_LOG2)
            self.assertEqual(r["rx"]["normal"], 0, (name, r))
            self.assertGreaterEqual(r["rx"]["kod_deny"], 1, (name, r))
            self.assertLessEqual(r["rx"]["kod_deny"], budget, (name, r))
            self.assertEqual(r["rx"]["to_sources"], r["rx"]["kod_deny"], (name, r))
        # NTPv3: the vendor sends kiss codes to NTPv4 only; nothing.
        self.assertEqual(res["denied v3"]["rx"]["to_sources"], 0, res["denied v3"])
        self.assertEqual(res["sync-only"]["rx"]["normal"], 20, res["sync-only"])
        d = netlab.counter_delta(before, self.totals())
        print(f"  dataplane: kod_deny {d.get('kod_deny')}, access_denied {d.get('drop_access_denied')}",
              file=sys.stderr)
        self.assertEqual(d.get("kod_deny"), 1 + sum(res[n]["rx"]["kod_deny"] for n in ("denied v4", "unlisted",
                                                                                       "query-only")), d)

    def test_unknown_peer_answered_statelessly_within_its_limit(self):
        # ntp.answer_unknown_peers: a mode-1 packet from an address that may
        # not peer gets a stateless mode-2 answer, limited like a client's.
        self.lab("acu", kod=False, access='query = ["10.0.8.0/30"]', extra="answer_unknown_peers = true")
        before = self.totals()
        # Meanwhile a limited client over its limit, with kod = false: what
        # its limit allows (the leaks within its excess budget), no KoD.
        client = self.flood("limited", src="10.0.6.51", rate=100, count=200)
        r = self.flood("unknown", src="10.0.6.50", mode=1, poll=17, rate=100, count=200).result(timeout=30)
        c = client.result(timeout=30)
        d = netlab.counter_delta(before, self.totals())
        rx = r["rx"]
        burst, per_interval = 8, 1 + math.ceil(r["seconds"] / 2 ** INTERVAL_LOG2)  # [ratelimit] defaults
        print(f"\n  a limited client at 100/s for {c['seconds']:.1f} s, kod = false: {c['rx']['to_sources']} packets back, "
              f"{c['rx']['normal']} answers, kiss codes {c['rx']['kiss_codes']}", file=sys.stderr, end="")
        self.assertGreaterEqual(c["rx"]["normal"], burst, c)
        self.assertEqual(c["rx"]["to_sources"], c["rx"]["normal"], c)
        self.assertLessEqual(c["rx"]["normal"], burst + 2 * per_interval, c)
        print(f"\n  {r['sent']} mode-1 packets (poll 17) in {r['seconds']:.1f} s from an address that may not peer: "
              f"{rx['to_sources']} packets back, by mode {rx['by_mode']} (bound {burst} + 2 x {per_interval}); "
              f"associations {[a['address'] for a in self.app.status()['associations']]}; dataplane: stateless "
              f"answers {d.get('ntp_stateless_peer_replies')}, rate_limited {d.get('drop_rate_limited')}",
              file=sys.stderr)
        self.assertEqual(self.app.status()["associations"], [])
        self.assertGreaterEqual(rx["by_mode"].get("2", 0), 1, rx)
        self.assertEqual(rx["to_sources"], rx["by_mode"].get("2", 0), rx)
        self.assertLessEqual(rx["to_sources"], burst + 2 * per_interval, rx)
        self.assertEqual(rx["larger_than_request"], 0, rx)
        self.assertEqual(d.get("ntp_to_control", 0), 0, d)
        self.assertEqual(d.get("kod_rate", 0) + d.get("kod_deny", 0), 0, d)


if __name__ == "__main__":
    unittest.main(verbosity=2)
