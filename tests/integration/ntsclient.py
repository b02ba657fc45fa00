#!/usr/bin/python3
"""An NTS client (RFC 8915 section 5) for the tests, with OpenSSL's AES-SIV
(Python cryptography's AESSIV): another implementation than the
appliance's Nettle.

Without NTS-KE it mints its own cookie in the appliance's format
(crypto/nts_cookie.h: key ID, nonce, AES-SIV of C2S||S2C with the ID as
associated data) from a cookie keys file it is given, as a server sharing
that file would. It sends requests laid out as chronyd's, except for one
16-octet extension field inside the authenticator (OpenSSL's AES-SIV will
not seal an empty plaintext), and checks each reply as a client does: the
origin and Unique Identifier, the authenticator under S2C over the reply up
to it, and that every fresh cookie inside opens to the same keys.

usage: ntsclient.py SERVER KEYS_FILE [--key-id ID] [--placeholders N]
                    [--count N] [--corrupt-cookie] [--timeout S]
Prints one JSON object per request: {"kind": "reply"|"nak"|"none"|"bad",
"why": ..., "cookies": [key ids of the fresh cookies], "stratum": ...}.
"""
import argparse
import json
import os
import socket
import struct
import sys

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESSIV

EF_UID, EF_COOKIE, EF_PLACEHOLDER, EF_AUTH = 0x0104, 0x0204, 0x0304, 0x0404


def load_keys(path):
    keys = {}
    for line in open(path):
        f = line.split()
        if not f or f[0].startswith("#"):
            continue
        keys[int(f[0])] = bytes.fromhex(f[2][4:])
    return keys


def ef(ftype, body):
    padded = body + b"\0" * (-len(body) % 4)
    n = max(16, 4 + len(padded))
    return struct.pack("!HH", ftype, n) + padded + b"\0" * (n - 4 - len(padded))


def mint_cookie(key_id, key, c2s, s2c):
    kid = struct.pack("!I", key_id)
    nonce = os.urandom(16)
    return kid + nonce + AESSIV(key).encrypt(c2s + s2c, [kid, nonce])


def open_cookie(keys, cookie):
    kid = cookie[:4]
    key = keys.get(struct.unpack("!I", kid)[0])
    if key is None or len(cookie) != 100:
        return None
    try:
        plain = AESSIV(key).decrypt(cookie[20:], [kid, cookie[4:20]])
    except InvalidTag:
        return None
    return plain[:32], plain[32:]


def fields(pkt, start=48):
    out, pos = [], start
    while pos + 4 <= len(pkt):
        t, n = struct.unpack("!HH", pkt[pos:pos + 4])
        if n < 16 or pos + n > len(pkt):
            return None
        out.append((t, pos, pkt[pos + 4:pos + n]))
        pos += n
    return out if pos == len(pkt) else None


def request(cookie, c2s, uid, placeholders, transmit):
    head = bytearray(48)
    head[0] = 0x23  # LI 0, VN 4, mode 3
    head[40:48] = transmit
    body = bytes(head) + ef(EF_UID, uid) + ef(EF_COOKIE, cookie)
    for _ in range(placeholders):
        body += ef(EF_PLACEHOLDER, bytes(len(cookie)))
    nonce = os.urandom(16)
    inner = ef(0x7777, b"encrypted-ef")  # 16 octets: OpenSSL seals no empty plaintext
    sealed = AESSIV(c2s).encrypt(inner, [body, nonce])
    auth = struct.pack("!HH", 16, len(sealed)) + nonce + sealed
    return body + ef(EF_AUTH, auth)


def check(reply, keys, c2s, s2c, uid, transmit):
    if len(reply) < 48:
        return {"kind": "bad", "why": "short"}
    stratum, refid = reply[1], reply[12:16]
    if reply[0] & 7 != 4:
        return {"kind": "bad", "why": "not mode 4"}
    if reply[24:32] != transmit:
        return {"kind": "bad", "why": "origin is not our transmit"}
    fs = fields(reply)
    if fs is None:
        return {"kind": "bad", "why": "extension fields do not parse"}
    uids = [b for t, _, b in fs if t == EF_UID]
    if uids != [uid]:
        return {"kind": "bad", "why": "unique identifier not echoed"}
    auths = [(pos, b) for t, pos, b in fs if t == EF_AUTH]
    if stratum == 0 and refid == b"NTSN":
        if auths or any(t == EF_COOKIE for t, _, _ in fs):
            return {"kind": "bad", "why": "a NAK with a cookie or an authenticator"}
        return {"kind": "nak", "stratum": 0, "len": len(reply)}
    if len(auths) != 1 or fs[-1][0] != EF_AUTH:
        return {"kind": "bad", "why": "no authenticator last"}
    pos, body = auths[0]
    nlen, clen = struct.unpack("!HH", body[:4])
    nonce = body[4:4 + nlen]
    ct = body[4 + nlen + (-nlen % 4):][:clen]
    try:
        plain = AESSIV(s2c).decrypt(ct, [reply[:pos], nonce])
    except InvalidTag:
        return {"kind": "bad", "why": "authenticator does not open under S2C"}
    inner = fields(plain, 0)
    if inner is None:
        return {"kind": "bad", "why": "the encrypted fields do not parse"}
    ids = []
    for t, _, b in inner:
        if t != EF_COOKIE:
            continue
        opened = open_cookie(keys, b)
        if opened != (c2s, s2c):
            return {"kind": "bad", "why": "a fresh cookie does not open to our keys"}
        ids.append(struct.unpack("!I", b[:4])[0])
    return {"kind": "reply", "stratum": stratum, "cookies": ids, "len": len(reply)}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("server")
    ap.add_argument("keys_file")
    ap.add_argument("--key-id", type=int, default=None, help="the cookie's key (default: the file's last)")
    ap.add_argument("--placeholders", type=int, default=0)
    ap.add_argument("--count", type=int, default=1)
    ap.add_argument("--corrupt-cookie", action="store_true")
    ap.add_argument("--timeout", type=float, default=1.0)
    a = ap.parse_args()
    keys = load_keys(a.keys_file)
    key_id = a.key_id if a.key_id is not None else list(keys)[-1]
    # A key the file does not hold (a retired one): a random secret under its ID.
    key = keys.get(key_id, os.urandom(32))
    c2s, s2c = os.urandom(32), os.urandom(32)
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.settimeout(a.timeout)
    for _ in range(a.count):
        cookie = bytearray(mint_cookie(key_id, key, c2s, s2c))
        if a.corrupt_cookie:
            cookie[60] ^= 1
        uid, transmit = os.urandom(32), os.urandom(8)
        req = request(bytes(cookie), c2s, uid, a.placeholders, transmit)
        s.sendto(req, (a.server, 123))
        try:
            reply, _ = s.recvfrom(2048)
        except socket.timeout:
            print(json.dumps({"kind": "none"}), flush=True)
            continue
        r = check(reply, keys, c2s, s2c, uid, transmit)
        r["request_len"] = len(req)
        print(json.dumps(r), flush=True)


if __name__ == "__main__":
    sys.exit(main())
