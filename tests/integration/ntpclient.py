#!/usr/bin/python3
"""A minimal NTP client for tests, run inside a namespace: sends mode-3
requests at a fixed interval and prints one JSON line per request with what
came back (or that nothing did). Standard library only.

usage: ntpclient.py SERVER [--count N] [--interval S] [--timeout S] [--version V]
"""
import argparse
import json
import os
import socket
import struct
import sys
import time

NTP_UNIX = 2208988800


def to_ntp(ns):
    s, frac_ns = divmod(ns, 1_000_000_000)
    return ((s + NTP_UNIX) & 0xFFFFFFFF) << 32 | (frac_ns << 32) // 1_000_000_000


def from_ntp(v, pivot_ns):
    secs, frac = v >> 32, v & 0xFFFFFFFF
    pivot_s = pivot_ns // 1_000_000_000 + NTP_UNIX
    era_s = pivot_s + ((secs - pivot_s + 2**31) % 2**32 - 2**31)
    return (era_s - NTP_UNIX) * 1_000_000_000 + (frac * 1_000_000_000 >> 32)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("server")
    ap.add_argument("--count", type=int, default=1)
    ap.add_argument("--interval", type=float, default=0.2)
    ap.add_argument("--timeout", type=float, default=1.0)
    ap.add_argument("--version", type=int, default=4)
    a = ap.parse_args()
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.settimeout(a.timeout)
    for i in range(a.count):
        t1 = time.time_ns()
        xmt = to_ntp(t1) ^ (os.getpid() & 0xFFF)  # unique per request
        req = bytes([(0 << 6) | (a.version << 3) | 3]) + bytes(39) + struct.pack("!Q", xmt)
        s.sendto(req, (a.server, 123))
        out = {"seq": i, "sent_ns": t1, "reply": False}
        deadline = time.monotonic() + a.timeout
        while time.monotonic() < deadline:
            try:
                data, _ = s.recvfrom(2048)
            except socket.timeout:
                break
            t4 = time.time_ns()
            if len(data) < 48 or struct.unpack("!Q", data[24:32])[0] != xmt:
                continue  # a late answer to an earlier request
            li_vn_mode, stratum, poll, prec = data[0], data[1], data[2], struct.unpack("!b", data[3:4])[0]
            rootdelay, rootdisp, refid = struct.unpack("!III", data[4:16])
            t2 = from_ntp(struct.unpack("!Q", data[32:40])[0], t1)
            t3 = from_ntp(struct.unpack("!Q", data[40:48])[0], t1)
            out.update(reply=True, leap=li_vn_mode >> 6, version=(li_vn_mode >> 3) & 7, mode=li_vn_mode & 7,
                       stratum=stratum, precision=prec, root_delay_s=rootdelay / 65536,
                       root_dispersion_s=rootdisp / 65536, refid=socket.inet_ntoa(struct.pack("!I", refid)),
                       offset_ns=((t2 - t1) + (t3 - t4)) // 2, delay_ns=(t4 - t1) - (t3 - t2))
            break
        print(json.dumps(out), flush=True)
        rest = a.interval - (time.time_ns() - t1) / 1e9
        if rest > 0 and i + 1 < a.count:
            time.sleep(rest)


if __name__ == "__main__":
    sys.exit(main())
