#!/usr/bin/python3
"""A userspace 802.1Q switch for the tests, run inside a namespace: TRUNK
carries tagged frames; each ACCESS interface is one VLAN's untagged port.
What an access port receives goes out on the trunk tagged with its VLAN;
what the trunk receives tagged with an access port's VLAN goes out there
untagged (the rest is dropped). The kernel of this machine has neither
VLAN devices nor a VLAN-filtering bridge, so this is how real clients
(chronyd, ntpdig) in their own namespaces reach the appliance over VLANs.
Standard library only.

usage: vlantrunk.py TRUNK VID:ACCESS [VID:ACCESS ...]
"""
import select
import socket
import struct
import sys

SOL_PACKET = 263
PACKET_AUXDATA = 8
TP_STATUS_VLAN_VALID = 0x10


def open_port(name):
    s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(0x0003))
    s.bind((name, 0))
    s.setsockopt(SOL_PACKET, PACKET_AUXDATA, 1)
    return s


def receive(s):
    """A frame arriving on s (not one sent from it), and its VLAN tag:
    inline, or as the kernel took it off into the packet's metadata."""
    data, anc, _, addr = s.recvmsg(65535, socket.CMSG_SPACE(32))
    if addr[2] == socket.PACKET_OUTGOING:
        return None, None
    for level, kind, aux in anc:
        if level == SOL_PACKET and kind == PACKET_AUXDATA and len(aux) >= 20:
            status, _, _, _, _, tci, _ = struct.unpack("=IIIHHHH", aux[:20])
            if status & TP_STATUS_VLAN_VALID:
                return data, tci & 0x0FFF
    if len(data) >= 18 and data[12:14] == b"\x81\x00":
        return data[:12] + data[16:], struct.unpack(">H", data[14:16])[0] & 0x0FFF
    return data, None


def main():
    trunk = open_port(sys.argv[1])
    access = {}
    for arg in sys.argv[2:]:
        vid, name = arg.split(":", 1)
        access[int(vid)] = open_port(name)
    by_socket = {s: vid for vid, s in access.items()}
    print("ready", flush=True)
    while True:
        ready, _, _ = select.select([trunk, *access.values()], [], [])
        for s in ready:
            frame, vid = receive(s)
            if frame is None:
                continue
            if s is trunk:
                if vid in access:
                    access[vid].send(frame)
            elif vid is None:  # untagged from an access port: onto the trunk, tagged
                trunk.send(frame[:12] + struct.pack(">HH", 0x8100, by_socket[s]) + frame[12:])


if __name__ == "__main__":
    main()
