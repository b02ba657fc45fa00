#!/usr/bin/python3
"""Send raw Ethernet frames and report what comes back, run inside a
namespace. Reads a JSON list of hex frames on stdin, sends each on IFACE,
then listens for LISTEN seconds and prints a JSON list of the hex frames
received whose source MAC is FROM_MAC. Standard library only. A VLAN tag
the kernel took off a received frame (veths strip them into the packet's
metadata) is put back where it was, so the frame is as sent.

usage: rawframes.py IFACE FROM_MAC LISTEN_SECONDS < frames.json
"""
import json
import select
import socket
import struct
import sys
import time

SOL_PACKET = 263
PACKET_AUXDATA = 8
TP_STATUS_VLAN_VALID = 0x10
TP_STATUS_VLAN_TPID_VALID = 0x40


def with_tag(data, ancdata):
    """The frame with the VLAN tag of its tpacket_auxdata put back."""
    for level, kind, aux in ancdata:
        if level != SOL_PACKET or kind != PACKET_AUXDATA or len(aux) < 20:
            continue
        status, _, _, _, _, tci, tpid = struct.unpack("=IIIHHHH", aux[:20])
        if status & TP_STATUS_VLAN_VALID:
            tpid = tpid if status & TP_STATUS_VLAN_TPID_VALID else 0x8100
            return data[:12] + struct.pack(">HH", tpid, tci) + data[12:]
    return data


def main():
    iface, from_mac, listen = sys.argv[1], bytes.fromhex(sys.argv[2].replace(":", "")), float(sys.argv[3])
    frames = [bytes.fromhex(h) for h in json.load(sys.stdin)]
    s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(0x0003))
    s.bind((iface, 0))
    s.setsockopt(SOL_PACKET, PACKET_AUXDATA, 1)
    for f in frames:
        s.send(f)
    got = []
    deadline = time.monotonic() + listen
    while True:
        left = deadline - time.monotonic()
        if left <= 0:
            break
        r, _, _ = select.select([s], [], [], left)
        if not r:
            continue
        data, ancdata, _, addr = s.recvmsg(65535, socket.CMSG_SPACE(32))
        if addr[2] == socket.PACKET_OUTGOING:
            continue
        data = with_tag(data, ancdata)
        if data[6:12] == from_mac:
            got.append(data.hex())
    print(json.dumps(got))


if __name__ == "__main__":
    main()
