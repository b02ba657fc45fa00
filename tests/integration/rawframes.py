#!/usr/bin/python3
"""Send raw Ethernet frames and report what comes back, run inside a
namespace. Reads a JSON list of hex frames on stdin, sends each on IFACE,
then listens for LISTEN seconds and prints a JSON list of the hex frames
received whose source MAC is FROM_MAC. Standard library only.

usage: rawframes.py IFACE FROM_MAC LISTEN_SECONDS < frames.json
"""
import json
import select
import socket
import sys
import time


def main():
    iface, from_mac, listen = sys.argv[1], bytes.fromhex(sys.argv[2].replace(":", "")), float(sys.argv[3])
    frames = [bytes.fromhex(h) for h in json.load(sys.stdin)]
    s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(0x0003))
    s.bind((iface, 0))
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
        data, addr = s.recvfrom(65535)
        if addr[2] == socket.PACKET_OUTGOING:
            continue
        if data[6:12] == from_mac:
            got.append(data.hex())
    print(json.dumps(got))


if __name__ == "__main__":
    main()
