#!/usr/bin/env python3
"""Writes the seed corpus of the fuzz targets into tests/fuzz/corpus/<target>/.

The NTP requests are the captured ones of tests/support/golden/requests.h
(chronyd 4.3 and ntpdig); the frames wrap them in Ethernet/IPv4/UDP for the
fuzzed port 02:00:00:00:00:01 / 10.0.1.31. Re-run after changing a target's
input layout: `python3 tests/fuzz/make_corpus.py`.
"""
import pathlib
import re
import shutil
import struct

HERE = pathlib.Path(__file__).resolve().parent
ROOT = HERE.parent.parent
OUT = HERE / "corpus"

PORT_MAC = bytes.fromhex("020000000001")
PORT_IP = bytes([10, 0, 1, 31])
CLIENT_MAC = bytes.fromhex("02aabbccdd01")
CLIENT_IP = bytes([10, 0, 1, 2])


def golden_requests():
    text = (ROOT / "tests/support/golden/requests.h").read_text()
    out = {}
    for name, body in re.findall(r"inline constexpr uint8_t (k\w+)\[\d+\] = \{([^}]*)\}", text):
        out[name] = bytes(int(x, 16) for x in re.findall(r"0x[0-9a-fA-F]{2}", body))
    return out


def csum(data: bytes) -> int:
    if len(data) % 2:
        data += b"\0"
    s = sum(struct.unpack(f"!{len(data) // 2}H", data))
    while s >> 16:
        s = (s & 0xFFFF) + (s >> 16)
    return ~s & 0xFFFF


def ipv4(proto: int, payload: bytes, src=CLIENT_IP, dst=PORT_IP) -> bytes:
    h = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(payload), 0x1234, 0x4000, 64, proto, 0, src, dst)
    h = h[:10] + struct.pack("!H", csum(h)) + h[12:]
    return h + payload


def udp(sport: int, dport: int, payload: bytes, src=CLIENT_IP, dst=PORT_IP) -> bytes:
    length = 8 + len(payload)
    pseudo = src + dst + struct.pack("!BBH", 0, 17, length)
    u = struct.pack("!HHHH", sport, dport, length, 0) + payload
    c = csum(pseudo + u) or 0xFFFF
    return u[:6] + struct.pack("!H", c) + u[8:]


def eth(ethertype: int, payload: bytes, dst=PORT_MAC, src=CLIENT_MAC) -> bytes:
    return dst + src + struct.pack("!H", ethertype) + payload


def nts_request(forged: bool) -> bytes:
    from cryptography.hazmat.primitives.ciphers.aead import AESSIV
    def ef(t, body):
        body += bytes(-len(body) % 4)
        n = max(16, 4 + len(body))
        return struct.pack("!HH", t, n) + body + bytes(n - 4 - len(body))
    c2s, s2c = bytes(range(32)), bytes(range(100, 132))
    kid, cnonce = struct.pack("!I", 32), bytes([5]) * 16
    cookie = bytearray(kid + cnonce + AESSIV(bytes(j + 33 for j in range(32))).encrypt(c2s + s2c, [kid, cnonce]))
    if forged:
        cookie[60] ^= 1
    head = bytes([0x23]) + bytes(39) + struct.pack("!Q", 0xE9000000_12345678)
    body = head + ef(0x0104, bytes(range(32))) + ef(0x0204, bytes(cookie)) + ef(0x0304, bytes(100))
    nonce = bytes([7]) * 16
    sealed = AESSIV(c2s).encrypt(ef(0x7777, b"encrypted-ef"), [body, nonce])
    return body + ef(0x0404, struct.pack("!HH", 16, len(sealed)) + nonce + sealed)


def ntp_frame(payload: bytes, sport=48325) -> bytes:
    return eth(0x0800, ipv4(17, udp(sport, 123, payload)))


def arp_request() -> bytes:
    a = struct.pack("!HHBBH6s4s6s4s", 1, 0x0800, 6, 4, 1, CLIENT_MAC, CLIENT_IP, b"\0" * 6, PORT_IP)
    return eth(0x0806, a, dst=b"\xff" * 6)


def arp_conflict() -> bytes:
    # A gratuitous ARP from another MAC claiming the port's address (RFC 5227 conflict).
    spoofer = bytes.fromhex("02aabbccdd02")
    a = struct.pack("!HHBBH6s4s6s4s", 1, 0x0800, 6, 4, 1, spoofer, PORT_IP, b"\0" * 6, PORT_IP)
    return eth(0x0806, a, src=spoofer, dst=b"\xff" * 6)


def icmp_echo() -> bytes:
    body = struct.pack("!BBHHH", 8, 0, 0, 0x4242, 1) + bytes(range(56))
    body = body[:2] + struct.pack("!H", csum(body)) + body[4:]
    return eth(0x0800, ipv4(1, body))


def peer_packet() -> bytes:  # symmetric active (mode 1), v4, stratum 3
    return bytes([0x21, 3, 6, 0xEC]) + bytes(8) + PORT_IP + bytes(24) + bytes.fromhex("ebd4a1b2c3d4e5f6")


def with_mac(req: bytes, mac_len: int) -> bytes:
    return req + struct.pack("!I", 7) + bytes(range(mac_len - 4))


def with_extension(req: bytes) -> bytes:
    return req + struct.pack("!HH", 0x0104, 36) + bytes(32)


def write(target: str, name: str, data: bytes):
    d = OUT / target
    d.mkdir(parents=True, exist_ok=True)
    (d / name).write_bytes(data)


def responder_prefix(flags: int, state_path: bool) -> bytes:
    # See fuzz_responder.cc: 64 bytes; flags then the fields in order.
    if state_path:
        now = 1795670017942419000
        p = struct.pack("<BBBbBIqqqqqIq", flags | 0x10, 0, 2, -24, 1, 0x0A000101, now - 10**9, 1_000_000,
                        2_000_000, now - 5 * 10**9, 300 * 10**9, 15000, now)
    else:
        p = struct.pack("<BBbIIIQQ", flags, 2, -24, 0x123, 0x456, 0x0A000101, 0xEB00000012345678,
                        0xEBD4A1B2C3D4E5F6)
    return p + bytes(64 - len(p))


# Targets whose corpus this script writes; others (fuzz_leap_file) keep
# seeds of their own in the corpus folder.
GENERATED = ("fuzz_ntp_parse", "fuzz_responder", "fuzz_frame", "fuzz_config")


def responder_leap_prefix(leap: int, leap_from_now_100ms: int, rx_before_10ms: int) -> bytes:
    # The state path (flags 0x10 | have_state 0x20 | serving 0x08) with a
    # leap announced (0x40) at now + leap_from_now and a request received
    # rx_before earlier than the burst.
    now = 1483228800 * 10**9  # 2017-01-01T00:00:00Z, the end of 2016-12-31's leap day
    p = struct.pack("<BBBbBIqqqqqIqbB", 0x78, leap, 2, -24, 1, 0x0A000101, now - 10**9, 1_000_000, 2_000_000,
                    now - 5 * 10**9, 300 * 10**9, 15000, now, leap_from_now_100ms, rx_before_10ms)
    return p + bytes(64 - len(p))


def main():
    for target in GENERATED:
        if (OUT / target).exists():
            shutil.rmtree(OUT / target)
    g = golden_requests()
    chrony, ntpdig = g["kChronyRequest0"], g["kNtpdigRequest"]
    v3 = bytes([0x1B]) + chrony[1:]  # NTPv3 client
    v1 = bytes([0x08]) + chrony[1:]  # NTPv1: mode 0

    payloads = {
        "chronyd_request": chrony,
        "ntpdig_request": ntpdig,
        "peer_mode1": peer_packet(),
        "request_md5_mac": with_mac(chrony, 20),
        "request_sha1_mac": with_mac(chrony, 24),
        "request_crypto_nak": with_mac(chrony, 4),
        "request_extension": with_extension(chrony),
        "request_v3_des_mac": with_mac(v3, 12),
        "request_v1": v1,
    }
    for name, p in payloads.items():
        write("fuzz_ntp_parse", name, p)

    for name in ("chronyd_request", "ntpdig_request", "peer_mode1", "request_md5_mac", "request_extension", "request_v1"):
        write("fuzz_responder", name + "_direct", responder_prefix(0x0C, False) + payloads[name])
    write("fuzz_responder", "chronyd_request_state", responder_prefix(0x2C, True) + chrony)
    write("fuzz_responder", "chronyd_request_no_state", responder_prefix(0x08, True) + chrony)
    write("fuzz_responder", "insert_request_before_leap", responder_leap_prefix(1, -5, 100) + chrony)
    write("fuzz_responder", "delete_after_leap", responder_leap_prefix(2, -5, 0) + chrony)

    tx = struct.pack("<Q", 0xEBD4A1B2C3D4E5F7)
    frames = {
        "ntp_request_chronyd": ntp_frame(chrony),
        "ntp_request_ntpdig": ntp_frame(ntpdig, 44676),
        "ntp_request_md5": ntp_frame(with_mac(chrony, 20)),
        "ntp_peer_mode1": ntp_frame(peer_packet(), 123),
        "arp_request": arp_request(),
        "icmp_echo": icmp_echo(),
    }
    for name, f in frames.items():
        write("fuzz_frame", name, bytes([0x1F]) + tx + f)  # fix all checksums, synchronized, serving
    # NTS requests (issue 11) with a cookie of fuzz_frame.cc's ring (key 32,
    # secret j + 33), sealed with OpenSSL's AES-SIV; byte 5 bit 0 holds the
    # keys. A good one reaches the answer and the seal, a forged cookie the NAK.
    for name, forged in (("nts_request", False), ("nts_request_forged_cookie", True)):
        write("fuzz_frame", name, bytes([0x1F, 0x06, 0x00, 0x00, 0x00, 0x01, 0x00, 0x00, 0x00]) +
              ntp_frame(nts_request(forged)))
    # The conflict's prefix makes the replays' times uneven, so that they reach
    # both a defence and one suppressed by the 10 s limit.
    write("fuzz_frame", "arp_conflict", bytes([0x1F, 0x0A, 0x32, 0x28, 0x01, 0x64, 0x00, 0x14, 0x50]) + arp_conflict())

    write("fuzz_config", "DeviceC.toml", (ROOT / "deploy/seed/DeviceC.toml").read_bytes())
    write("fuzz_config", "minimal.toml",
          b'sysname = "x"\n[[interface]]\nname = "p0"\ndevice = "net_null0"\naddress = "192.0.2.1/24"\n')
    write("fuzz_config", "peers.toml",
          b'sysname = "DeviceE"\n[[interface]]\nname = "g0"\ndevice = "0000:01:00.0"\naddress = "10.0.2.2/24"\n'
          b'gateway = "10.0.2.1"\n[[peer]]\naddress = "10.0.1.33"\nminpoll = 4\nmaxpoll = 6\niburst = true\n'
          b'[[server]]\naddress = "10.0.1.31"\nprefer = true\n[access]\npeer = ["10.0.0.0/8"]\n')


if __name__ == "__main__":
    main()
