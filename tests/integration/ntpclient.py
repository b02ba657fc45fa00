#!/usr/bin/python3
"""A minimal NTP client for tests, run inside a namespace: sends mode-3
requests at a fixed interval and prints one JSON line per request with what
came back (or that nothing did). Standard library only.

t1 and t4 are read from the host clock, which every namespace shares: the
test's truth. Each reply also carries what it proves about the served
error bound (bound_check below); with --check the client exits 1 if any
synchronized answer broke it.

usage: ntpclient.py SERVER [--count N (0: until killed)] [--interval S] [--timeout S] [--version V] [--poll P]
                          [--source ADDR] [--check]
       ntpclient.py --status URL   (the bound from a /status snapshot: the served clock minus the host clock)
"""
import argparse
import itertools
import json
import os
import socket
import struct
import sys
import time
import urllib.request

NTP_UNIX = 2208988800


def to_ntp(ns):
    s, frac_ns = divmod(ns, 1_000_000_000)
    return ((s + NTP_UNIX) & 0xFFFFFFFF) << 32 | (frac_ns << 32) // 1_000_000_000


def from_ntp(v, pivot_ns):
    secs, frac = v >> 32, v & 0xFFFFFFFF
    pivot_s = pivot_ns // 1_000_000_000 + NTP_UNIX
    era_s = pivot_s + ((secs - pivot_s + 2**31) % 2**32 - 2**31)
    return (era_s - NTP_UNIX) * 1_000_000_000 + (frac * 1_000_000_000 >> 32)


def refid_text(refid_bytes, stratum):
    """RFC 5905 section 7.3: at stratum 0 (a kiss code) and 1 (a reference
    clock) the reference ID is four ASCII characters, else an IPv4 address."""
    if stratum <= 1:
        return refid_bytes.rstrip(b"\0").decode("ascii", "replace")
    return socket.inet_ntoa(refid_bytes)


def bound_check(r):
    """What one reply proves about the invariant |served - true| <= root
    delay / 2 + root dispersion.

    The server stamped t2 and t3 at true times T2, T3 with t1 <= T2 and
    T3 <= t4 (t1, t4 from the true clock) and T3 - T2 = t3 - t2, so its
    error e = t2 - T2 lies in [t3 - t4, t2 - t1] = theta +- delta/2. The
    smallest error consistent with the reply is max(0, |theta| - delta/2):
    the bound is broken for certain only if that exceeds it, and any
    larger allowance would be a fudge factor. Returns (error_min_ns,
    bound_ns, ratio); the bound is exact (root delay and dispersion in
    units of 2^-16 s, as on the wire).
    """
    bound_ns = r["root_delay_raw"] * 1_000_000_000 / 65536 / 2 + r["root_dispersion_raw"] * 1_000_000_000 / 65536
    err_min_ns = max(0, abs(r["offset_ns"]) - r["delay_ns"] / 2)
    ratio = err_min_ns / bound_ns if bound_ns > 0 else (0.0 if err_min_ns == 0 else float("inf"))
    return err_min_ns, bound_ns, ratio


def status_bound(system):
    """The same from a /status snapshot: clock_minus_host_ns is the served
    clock read next to the host clock (no network path, so no delta), and
    the root delay and dispersion are the control plane's at that moment."""
    bound_ns = system["root_delay_ns"] / 2 + system["root_dispersion_ns"]
    err_ns = abs(system["clock_minus_host_ns"])
    ratio = err_ns / bound_ns if bound_ns > 0 else (0.0 if err_ns == 0 else float("inf"))
    return err_ns, bound_ns, ratio


def realtime_minus_monotonic_ns():
    """CLOCK_REALTIME minus CLOCK_MONOTONIC, read between two monotonic
    reads; of five tries the tightest bracket (a preemption between the
    reads would look like a step)."""
    best = None
    for _ in range(5):
        m0 = time.clock_gettime_ns(time.CLOCK_MONOTONIC)
        r = time.clock_gettime_ns(time.CLOCK_REALTIME)
        m1 = time.clock_gettime_ns(time.CLOCK_MONOTONIC)
        if best is None or m1 - m0 < best[0]:
            best = (m1 - m0, r - (m0 + m1) // 2)
        if best[0] < 5_000:
            break
    return best[1]


def query(s, server, version, poll=0):
    t1 = time.time_ns()
    xmt = to_ntp(t1) ^ (os.getpid() & 0xFFF)  # unique per request
    req = bytes([(0 << 6) | (version << 3) | 3, 0, poll & 0xFF]) + bytes(37) + struct.pack("!Q", xmt)
    s.sendto(req, (server, 123))
    # CLOCK_REALTIME minus CLOCK_MONOTONIC: it moves only when something
    # steps the host clock (both are slewed alike), i.e. when the truth
    # these tests measure against jumped (a VM's host may step its guests).
    out = {"sent_ns": t1, "reply": False, "realtime_minus_monotonic_ns": realtime_minus_monotonic_ns()}
    deadline = time.monotonic() + s.gettimeout()
    while time.monotonic() < deadline:
        try:
            data, _ = s.recvfrom(2048)
        except socket.timeout:
            break
        t4 = time.time_ns()
        if len(data) < 48 or struct.unpack("!Q", data[24:32])[0] != xmt:
            continue  # a late answer to an earlier request
        li_vn_mode, stratum, prec = data[0], data[1], struct.unpack("!b", data[3:4])[0]
        reply_poll = struct.unpack("!b", data[2:3])[0]
        rootdelay, rootdisp = struct.unpack("!II", data[4:12])
        t2 = from_ntp(struct.unpack("!Q", data[32:40])[0], t1)
        t3 = from_ntp(struct.unpack("!Q", data[40:48])[0], t1)
        out.update(reply=True, length=len(data), leap=li_vn_mode >> 6, version=(li_vn_mode >> 3) & 7,
                   mode=li_vn_mode & 7, stratum=stratum, poll=reply_poll, precision=prec, root_delay_raw=rootdelay, root_dispersion_raw=rootdisp,
                   root_delay_s=rootdelay / 65536, root_dispersion_s=rootdisp / 65536,
                   refid=socket.inet_ntoa(data[12:16]), refid_text=refid_text(data[12:16], stratum),
                   t1_ns=t1, t2_ns=t2, t3_ns=t3, t4_ns=t4,
                   offset_ns=((t2 - t1) + (t3 - t4)) // 2, delay_ns=(t4 - t1) - (t3 - t2))
        out["error_min_ns"], out["bound_ns"], out["bound_ratio"] = bound_check(out)
        break
    return out


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("server", nargs="?")
    ap.add_argument("--count", type=int, default=1)
    ap.add_argument("--interval", type=float, default=0.2)
    ap.add_argument("--timeout", type=float, default=1.0)
    ap.add_argument("--version", type=int, default=4)
    ap.add_argument("--poll", type=int, default=0, help="the request's poll field, log2 s")
    ap.add_argument("--source", help="send from this local address")
    ap.add_argument("--check", action="store_true", help="exit 1 if a synchronized answer broke its bound")
    ap.add_argument("--status", metavar="URL", help="check the bound of a /status snapshot instead")
    a = ap.parse_args()
    if a.status:
        system = json.loads(urllib.request.urlopen(a.status, timeout=2).read())["system"]
        err_ns, bound_ns, ratio = status_bound(system)
        print(json.dumps({"synchronized": system["synchronized"], "clock_minus_host_ns": system["clock_minus_host_ns"],
                          "bound_ns": bound_ns, "bound_ratio": ratio}), flush=True)
        return 1 if a.check and system["synchronized"] and ratio > 1 else 0
    if not a.server:
        ap.error("a server is needed (or --status URL)")
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.settimeout(a.timeout)
    if a.source:
        s.bind((a.source, 0))
    broken = 0
    for i in itertools.count() if a.count == 0 else range(a.count):
        out = query(s, a.server, a.version, a.poll)
        out = {"seq": i, **out}
        print(json.dumps(out), flush=True)
        # Leap 3: the server says it does not know the time; no bound is claimed.
        if out["reply"] and out["leap"] != 3 and out["bound_ratio"] > 1:
            broken += 1
        rest = a.interval - (time.time_ns() - out["sent_ns"]) / 1e9
        if rest > 0 and (a.count == 0 or i + 1 < a.count):
            time.sleep(rest)
    return 1 if a.check and broken else 0


if __name__ == "__main__":
    sys.exit(main())
