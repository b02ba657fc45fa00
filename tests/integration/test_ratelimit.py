#!/usr/bin/python3
"""Per-client rate limiting and the reply cap under attack (issue 9).

The appliance (refclock_master, everyone in the default class "limited",
access.kod on) in one namespace; in another, on the same veth: a real
chronyd client polling four times a second (over the limit, so it is sent
RATE kiss-o'-death and must back off), one source flooding at full rate
(>= 100k requests/s for 10 s), 1000 simulated clients polling well under
the limit (every one of their requests must be answered meanwhile), then
100k churning spoofed sources, whose answers altogether must stay under
ratelimit.max_replies_per_s. Replies are counted on the wire by ntpflood
(tests/tools/ntpflood.cc), which matches each to its request by origin.
"""
import math
import os
import re
import sys
import time
import unittest

sys.path.insert(0, os.path.dirname(__file__))
import netlab  # noqa: E402
from netlab import wait_for  # noqa: E402

APPLIANCE_IP = "10.0.3.10"
CHRONY_IP = "10.0.3.20"
FLOOD_IP = "10.0.3.30"          # one source at full rate (not an address of the lab: it needs no answers delivered)
CLIENTS = "10.0.4.0/22"         # 1000 well-behaved clients
CHURN = "100.64.0.0/10"         # 100k spoofed sources

INTERVAL_LOG2 = 0               # one request per second on average...
BURST = 4                       # ... and 4 at once
LEAK_LOG2 = 2
REPLY_CAP = 20000               # answers per second to limited clients, per worker (one worker here)

FLOOD_RATE = 150000
FLOOD_S = 10
CLIENT_COUNT = 1000
CLIENT_POLL_S = 4               # each client every 4 s: under 1/s and never more than BURST at once
CHURN_SOURCES = 100000
CHURN_RATE = 200000
CHURN_S = 5


def limiter_bound(seconds):
    """The most one source may be sent in `seconds` (dataplane/ratelimit.h):
    answers within its token bucket (BURST at once, one more per
    2^INTERVAL_LOG2 s), plus its excess budget (one over-limit answer, a leak
    or a RATE KoD, per 2^INTERVAL_LOG2 s, one at the start). The +1s cover a
    partly elapsed interval at each end."""
    per_interval = math.ceil(seconds / 2 ** INTERVAL_LOG2) + 1
    return BURST + per_interval, 1 + per_interval


class RateLimitTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.app_ns, cls.lab_ns = netlab.appliance_link("rl", CHRONY_IP, "eth0")
        cls.dir = netlab.workdir("rl")
        sysname = netlab.unique("R")
        extra = "\n".join(["[ratelimit]", f"interval_log2 = {INTERVAL_LOG2}", f"burst = {BURST}",
                           f"leak_log2 = {LEAK_LOG2}", f"max_replies_per_s = {REPLY_CAP}", "clients = 262144", ""])
        cls.app = netlab.Appliance(cls.app_ns, sysname, cls.dir, netlab.appliance_config(
            sysname, netlab.flood_device("dp0"), f"{APPLIANCE_IP}/24", refclock_master=2,
            access="kod = true", extra=extra)).start()

    def log(self, name):
        return os.path.join(self.dir, name)

    def totals(self):
        return netlab.worker_totals(self.app.status() or {})

    def test_1_flood_one_source_clients_served_chronyd_backs_off(self):
        chrony = netlab.Chrony(self.lab_ns, self.dir, [f"server {APPLIANCE_IP} iburst minpoll -2 maxpoll -2"])
        t_chrony = time.monotonic()
        before = self.totals()
        clients = netlab.Flood(self.lab_ns, "eth0", APPLIANCE_IP, self.log("clients.json"), src_prefix=CLIENTS,
                               sources=CLIENT_COUNT, rate=CLIENT_COUNT / CLIENT_POLL_S, duration=FLOOD_S + 2,
                               capture=True, linger=1, seed=9001)
        flood = netlab.flood(self.lab_ns, "eth0", APPLIANCE_IP, self.log("flood.json"), src=FLOOD_IP,
                             rate=FLOOD_RATE, duration=FLOOD_S, capture=True, linger=1, seed=9002)
        served = clients.result(timeout=60)
        status = self.app.status()
        d = netlab.counter_delta(before, netlab.worker_totals(status))
        top = status["workers"][0]["top_limited"]
        limits = self.app.ctl("limits")
        fx = flood["rx"]
        pass_bound, excess_bound = limiter_bound(flood["seconds"])
        print(f"\n  one source at {flood['rate_achieved']:.0f} requests/s for {flood['seconds']:.1f} s "
              f"({flood['sent']} sent, seed {flood['seed']}): {fx['normal']} answers, {fx['kod_rate']} RATE KoD "
              f"(bound {pass_bound} + {excess_bound} from interval 2^{INTERVAL_LOG2} s, burst {BURST}); "
              f"dataplane: rate_limited {d.get('drop_rate_limited')}, kod_rate {d.get('kod_rate')}, "
              f"rate_leaked {d.get('rate_leaked')}, reply_cap {d.get('drop_reply_cap')}, "
              f"control_ring_full {d.get('drop_control_ring_full')}", file=sys.stderr)
        print(f"  {served['sources_sent']} clients polling every {CLIENT_POLL_S} s meanwhile: {served['rx']['matched']} "
              f"of {served['sent']} requests answered, {served['sources_all_answered']} clients fully served "
              f"(seed {served['seed']})", file=sys.stderr)
        self.assertGreaterEqual(flood["rate_achieved"], 100000, flood)
        # The flood: what its limit allows, the over-limit answers as RATE KoDs
        # within its excess budget; nothing else, nothing larger than asked.
        self.assertGreaterEqual(fx["normal"], 1, fx)
        self.assertGreaterEqual(fx["kod_rate"], 1, fx)
        self.assertLessEqual(fx["kod_rate"], excess_bound, fx)
        self.assertLessEqual(fx["normal"] + fx["kod_rate"], pass_bound + excess_bound, fx)
        self.assertEqual(fx["kod_other"] + fx["kod_deny"], 0, fx)
        self.assertEqual(fx["larger_than_request"], 0, fx)
        self.assertEqual(fx["duplicates"], 0, fx)
        # The dataplane saw the flood (nothing lost in the kernel before it)
        # and held it back itself, as rate limited.
        self.assertGreaterEqual(d.get("rx_packets", 0), 0.99 * (flood["sent"] + served["sent"]), d)
        self.assertGreaterEqual(d.get("drop_rate_limited", 0), 0.9 * flood["sent"], d)
        # The operator sees who: the flood heads the bounded list of the
        # most limited sources (a space-saving count: at least the true one),
        # in /status and in `ntpctl limits`; the table holds every client.
        print(f"  top limited sources: {top[:3]}; table {status['workers'][0]['ratelimit_table_entries']} of "
              f"{status['workers'][0]['ratelimit_table_capacity']} entries", file=sys.stderr)
        self.assertEqual(top[0]["address"], FLOOD_IP, top)
        self.assertGreaterEqual(top[0]["limited"], d["drop_rate_limited"] - 2 * excess_bound - 100, top)
        self.assertIn(FLOOD_IP, limits)
        self.assertGreaterEqual(status["workers"][0]["ratelimit_table_entries"], CLIENT_COUNT + 1)
        # Every request of every well-behaved client was answered, normally.
        self.assertEqual(served["sources_sent"], CLIENT_COUNT)
        self.assertEqual(served["rx"]["matched"], served["sent"], served)
        self.assertEqual(served["rx"]["normal"], served["sent"], served)
        self.assertEqual(served["sources_all_answered"], CLIENT_COUNT, served)
        # chronyd, polling at 4/s against a limit of 1/s, got RATE and backed
        # off: chrony logs each RATE KoD and adds 4 polls to its next delay
        # (ntp_core.c), so it sent fewer requests than its poll asks for.
        text = open(os.path.join(chrony.dir, "chronyd.log")).read()
        kods = len(re.findall(rf"Received KoD RATE from {re.escape(APPLIANCE_IP)}", text))
        data = chrony.chronyc("ntpdata", APPLIANCE_IP)
        tx = int(re.search(r"Total TX\s*:\s*(\d+)", data).group(1))
        rx = int(re.search(r"Total RX\s*:\s*(\d+)", data).group(1))
        chrony.stop()
        polls = (time.monotonic() - t_chrony) / 2 ** -2
        print(f"  chronyd (minpoll -2) against the limit: {kods} RATE KoDs logged; it sent {tx} requests where "
              f"its poll asks for {polls:.0f}, got {rx} packets back", file=sys.stderr)
        self.assertGreaterEqual(kods, 1, text[-2000:])
        self.assertLess(tx, 0.8 * polls, data)
        # Not rx < tx: once chronyd has backed off below the limit, each of
        # its requests is answered (seen: 24 of 24), which is the point.

    def test_2_churning_spoofed_sources_stay_under_the_cap(self):
        before = self.totals()
        churn = netlab.flood(self.lab_ns, "eth0", APPLIANCE_IP, self.log("churn.json"), src_prefix=CHURN,
                             sources=CHURN_SOURCES, rate=CHURN_RATE, duration=CHURN_S, capture=True, linger=1,
                             seed=9003)
        d = netlab.counter_delta(before, self.totals())
        cx = churn["rx"]
        replies = cx["normal"] + cx["kod_rate"] + cx["kod_deny"] + cx["kod_other"]
        # ReplyCap: a token bucket of REPLY_CAP/s with a burst of a tenth of
        # it, over the time the replies took (requests still queued for the
        # worker when the sending stopped are answered after it).
        # The span is read at the capture, whose reads may each be up to a
        # time slice (10 ms) late on a loaded core: that much more is allowed.
        span_s = cx["last_s"] - cx["first_s"] + 0.010
        bound = math.ceil(REPLY_CAP * span_s + REPLY_CAP / 10)
        print(f"\n  {CHURN_SOURCES} churning spoofed sources at {churn['rate_achieved']:.0f} requests/s for "
              f"{churn['seconds']:.1f} s ({churn['sent']} sent, seed {churn['seed']}): {replies} replies on the wire "
              f"({cx['normal']} answers, {cx['kod_rate']} RATE) over {span_s:.3f} s, {replies / span_s:.0f}/s against a "
              f"cap of {REPLY_CAP}/s (bound {bound}); dataplane: reply_cap {d.get('drop_reply_cap')}, rate_limited "
              f"{d.get('drop_rate_limited')}, ratelimit_inserts {d.get('ratelimit_inserts')}, "
              f"evictions {d.get('ratelimit_evictions')}", file=sys.stderr)
        # Enough requests that the cap is what holds the replies back.
        self.assertGreaterEqual(churn["sent"], 3 * REPLY_CAP * churn["seconds"], churn)
        self.assertLessEqual(replies, bound, cx)
        self.assertEqual(cx["larger_than_request"], 0, cx)
        # Each source alone is within its limit at first (2 requests/s each):
        # it is the cap, not the per-client limit, that holds the replies,
        # and it still lets most of its budget through.
        self.assertGreater(d.get("drop_reply_cap", 0), 0, d)
        self.assertGreaterEqual(replies, 0.5 * REPLY_CAP * churn["seconds"], cx)
        self.assertGreaterEqual(d.get("ratelimit_inserts", 0), CHURN_SOURCES, d)


if __name__ == "__main__":
    unittest.main(verbosity=2)
