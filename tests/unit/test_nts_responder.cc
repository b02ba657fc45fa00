// dataplane/nts_responder: NTS answers as an NTS client checks them. The
// test plays the client the way chronyd lays out its requests (header,
// Unique Identifier of 32 octets, cookie, placeholders, authenticator with a
// 16-octet nonce and nothing encrypted) with keys it "got from NTS-KE", and
// checks each reply as chronyd's client does: the Unique Identifier echoed,
// the authenticator opening under S2C over the reply up to it, the cookies
// inside opening (under the server's ring) to the same C2S/S2C; NAKs for
// forged, stale and unauthenticated requests; never a reply larger than the
// request.
#include "dataplane/nts_responder.h"

#include <gtest/gtest.h>

#include <cstring>
#include <vector>

#include "proto/inet.h"
#include "tests/support/nts_client.h"

namespace ntp::dp {
namespace {

using crypto::kSivTagBytes;

crypto::CookieKeyRing ring_of(std::vector<uint32_t> ids, uint32_t current) {
  uint8_t secrets[crypto::kMaxCookieKeys][crypto::kSivKeyBytes];
  for (size_t i = 0; i < ids.size(); ++i)
    for (size_t j = 0; j < crypto::kSivKeyBytes; ++j) secrets[i][j] = static_cast<uint8_t>(ids[i] * 13 + j);
  crypto::CookieKeyRing r;
  EXPECT_TRUE(crypto::cookie_ring_init(r, ids.data(), secrets, static_cast<uint32_t>(ids.size()), current));
  return r;
}

crypto::NtsKeys client_keys() {
  crypto::NtsKeys k;
  for (size_t i = 0; i < crypto::kNtsKeyBytes; ++i) {
    k.c2s[i] = static_cast<uint8_t>(0xC0 + i);
    k.s2c[i] = static_cast<uint8_t>(0x50 + i);
  }
  return k;
}

struct Client {
  crypto::NtsKeys keys = client_keys();
  uint8_t uid[32];
  proto::NtpTimestamp transmit{0xE9000000u, 0x12345678u};
  Client() {
    for (int i = 0; i < 32; ++i) uid[i] = static_cast<uint8_t>(0xA0 + i);
  }
  // A request as chronyd sends it; a cookie from the server's ring.
  std::vector<uint8_t> request(const uint8_t* cookie, size_t cookie_len, int placeholders,
                               size_t nonce_len = 16) const {
    return test::nts_client_request(keys, cookie, cookie_len, static_cast<unsigned>(placeholders), uid, transmit,
                                       nonce_len)
        .bytes;
  }
};

std::vector<uint8_t> cookie_for(const crypto::CookieKeyRing& ring, const crypto::NtsKeys& k, uint8_t n = 1) {
  return test::nts_cookie_for(ring, k, n);
}

ReplyParams synced() {
  ReplyParams p;
  p.leap = proto::Leap::kNone;
  p.stratum = 2;
  p.refid = 0x0A000001;
  p.synchronized = true;
  return p;
}

uint8_t seed_bytes[32] = {9};

struct Served {
  NtsAnswer a;
  std::vector<uint8_t> reply;  // reply_len bytes, stamped and sealed
  uint64_t seal_sum = 0;
};

Served serve(std::vector<uint8_t> pkt, const crypto::CookieKeyRing* ring, crypto::NonceSource& rng) {
  const size_t len = pkt.size();
  const NtpRequest q = classify_request(pkt.data(), len);
  EXPECT_TRUE(q.ok);
  const proto::NtsRequestView v = proto::parse_nts_request(pkt.data(), len, kSivTagBytes);
  EXPECT_TRUE(v.ok()) << proto::to_string(v.status);
  Served s;
  NtsSeal seal;
  s.a = nts_answer(pkt.data(), len, q, v, proto::NtpTimestamp{0xE9000000u, 0x80000000u}, synced(), ring, rng, seal);
  if (s.a.outcome == NtsOutcome::kReply) {
    proto::store_ts(pkt.data() + 40, proto::NtpTimestamp{0xE9000000u, 0x80001000u});  // the worker's stamp
    s.seal_sum = nts_seal(pkt.data(), seal);
    for (uint8_t b : seal.s2c) EXPECT_EQ(b, 0) << "the seal keeps no key";
  }
  EXPECT_LE(s.a.d.reply_len, len) << "a reply larger than its request";
  s.reply.assign(pkt.begin(), pkt.begin() + (s.a.outcome == NtsOutcome::kDrop ? 0 : s.a.d.reply_len));
  return s;
}

// What chronyd's client checks of a reply (nts_ntp_client.c, RFC 8915
// section 5.7): the UID, the authenticator under S2C, and the cookies.
struct Checked {
  bool uid_ok = false;
  bool auth_ok = false;
  std::vector<std::vector<uint8_t>> cookies;
};

Checked check_as_client(const std::vector<uint8_t>& r, const Client& c) {
  Checked out;
  size_t pos = 48;
  while (pos + 4 <= r.size()) {
    const uint16_t type = proto::load_be16(r.data() + pos);
    const size_t flen = proto::load_be16(r.data() + pos + 2);
    if (flen < 16 || pos + flen > r.size()) break;
    const uint8_t* body = r.data() + pos + 4;
    if (type == proto::kEfUniqueIdentifier) out.uid_ok = flen - 4 == 32 && std::memcmp(body, c.uid, 32) == 0;
    if (type == proto::kEfNtsAuthenticator) {
      const size_t nonce_len = proto::load_be16(body);
      const size_t ct_len = proto::load_be16(body + 2);
      crypto::SivKey s2c;
      EXPECT_TRUE(crypto::siv_key_init(s2c, c.keys.s2c, sizeof c.keys.s2c));
      std::vector<uint8_t> plain(ct_len - kSivTagBytes);
      out.auth_ok = crypto::siv_open(s2c, body + 4, nonce_len, r.data(), pos, body + 4 + proto::ef_pad4(nonce_len),
                                     ct_len, plain.data());
      for (size_t at = 0; out.auth_ok && at + 4 <= plain.size();) {
        const size_t n = proto::load_be16(plain.data() + at + 2);
        if (proto::load_be16(plain.data() + at) == proto::kEfNtsCookie)
          out.cookies.emplace_back(plain.begin() + at + 4, plain.begin() + at + n);
        at += n;
      }
      EXPECT_EQ(pos + flen, r.size()) << "the authenticator is the reply's last field";
    }
    pos += flen;
  }
  return out;
}

TEST(NtsResponder, AnswersAsAnNtsClientChecksWithOneCookiePerCookieAndPlaceholder) {
  crypto::NonceSource rng(seed_bytes);
  const crypto::CookieKeyRing ring = ring_of({5, 6}, 1);
  Client c;
  for (int placeholders : {0, 1, 3, 7}) {
    SCOPED_TRACE(placeholders);
    const std::vector<uint8_t> cookie = cookie_for(ring, c.keys);
    const std::vector<uint8_t> req = c.request(cookie.data(), cookie.size(), placeholders);
    const Served s = serve(req, &ring, rng);
    ASSERT_EQ(s.a.outcome, NtsOutcome::kReply) << to_string(s.a.reason);
    EXPECT_EQ(s.a.cookies, placeholders + 1);
    EXPECT_EQ(s.reply.size(), req.size()) << "as long as chronyd's request, no longer";
    const Checked k = check_as_client(s.reply, c);
    EXPECT_TRUE(k.uid_ok);
    ASSERT_TRUE(k.auth_ok);
    ASSERT_EQ(k.cookies.size(), static_cast<size_t>(placeholders + 1));
    for (const auto& ck : k.cookies) {
      ASSERT_EQ(ck.size(), crypto::kNtsCookieBytes);
      EXPECT_EQ(proto::load_be32(ck.data()), 6u) << "sealed with the current key";
      crypto::NtsKeys inside;
      ASSERT_EQ(crypto::cookie_open(ring, ck.data(), ck.size(), inside), crypto::CookieOpen::kOk);
      EXPECT_EQ(0, std::memcmp(inside.c2s, c.keys.c2s, sizeof inside.c2s));
      EXPECT_EQ(0, std::memcmp(inside.s2c, c.keys.s2c, sizeof inside.s2c));
      EXPECT_NE(ck, cookie) << "a fresh cookie, not the one sent";
    }
    // The time fields: a server answer to this request.
    const proto::NtpHeader h = proto::read_header(s.reply.data());
    EXPECT_EQ(h.mode, proto::Mode::kServer);
    EXPECT_EQ(h.stratum, 2);
    EXPECT_EQ(h.origin, c.transmit);
    // The checksum sums: answer's plus the stamp's plus the seal's are the reply's.
    uint64_t all = 0, stamp = 0;
    for (size_t i = 0; i < s.reply.size(); i += 4) all += proto::load_be32(s.reply.data() + i);
    stamp = proto::load_be32(s.reply.data() + 40) + uint64_t{proto::load_be32(s.reply.data() + 44)};
    EXPECT_EQ(s.a.d.reply_sum + stamp + s.seal_sum, all);
  }
}

TEST(NtsResponder, TheSealCoversTheTransmitStamp) {
  crypto::NonceSource rng(seed_bytes);
  const crypto::CookieKeyRing ring = ring_of({5}, 0);
  Client c;
  const std::vector<uint8_t> cookie = cookie_for(ring, c.keys);
  Served s = serve(c.request(cookie.data(), cookie.size(), 0), &ring, rng);
  ASSERT_EQ(s.a.outcome, NtsOutcome::kReply);
  s.reply[47] ^= 1;  // a man in the middle moves the transmit time
  EXPECT_FALSE(check_as_client(s.reply, c).auth_ok);
}

TEST(NtsResponder, NaksAForgedCookieAStaleKeyAndABadAuthenticatorWithTheUidOnly) {
  crypto::NonceSource rng(seed_bytes);
  const crypto::CookieKeyRing ring = ring_of({5, 6}, 1);
  Client c;
  auto expect_nak = [&](const std::vector<uint8_t>& req, NtsReason why, const crypto::CookieKeyRing& r) {
    SCOPED_TRACE(to_string(why));
    const Served s = serve(req, &r, rng);
    ASSERT_EQ(s.a.outcome, NtsOutcome::kNak);
    EXPECT_EQ(s.a.reason, why);
    ASSERT_EQ(s.reply.size(), 48u + 36u) << "header and the UID, no cookie or authenticator";
    const proto::NtpHeader h = proto::read_header(s.reply.data());
    EXPECT_EQ(h.stratum, 0);
    EXPECT_EQ(h.refid, kKissNtsNak);
    EXPECT_EQ(h.origin, c.transmit);
    EXPECT_EQ(h.receive, c.transmit) << "a NAK reveals none of our time";
    const Checked k = check_as_client(s.reply, c);
    EXPECT_TRUE(k.uid_ok);
    EXPECT_FALSE(k.auth_ok);
    uint64_t all = 0;
    for (size_t i = 0; i < s.reply.size(); i += 4) all += proto::load_be32(s.reply.data() + i);
    EXPECT_EQ(s.a.d.reply_sum, all);
  };
  std::vector<uint8_t> cookie = cookie_for(ring, c.keys);
  cookie[50] ^= 0x10;
  expect_nak(c.request(cookie.data(), cookie.size(), 1), NtsReason::kBadCookie, ring);
  // A cookie of key 5, after a rotation dropped 5.
  const std::vector<uint8_t> old = cookie_for(ring_of({5}, 0), c.keys);
  expect_nak(c.request(old.data(), old.size(), 0), NtsReason::kStaleKey, ring_of({6, 7}, 1));
  // The right cookie, but the request sealed with another C2S (an attacker
  // who replays a cookie without its keys).
  const std::vector<uint8_t> good = cookie_for(ring, c.keys);
  Client thief;
  thief.keys.c2s[0] ^= 1;
  expect_nak(thief.request(good.data(), good.size(), 0), NtsReason::kBadAuth, ring);
  // A changed header byte after the client sealed it.
  std::vector<uint8_t> req = c.request(good.data(), good.size(), 0);
  req[2] ^= 1;  // poll
  expect_nak(req, NtsReason::kBadAuth, ring);
  // A cookie of our length that is no cookie (placeholder bytes).
  const std::vector<uint8_t> zeros(crypto::kNtsCookieBytes, 0);
  expect_nak(c.request(zeros.data(), zeros.size(), 0), NtsReason::kStaleKey, ring);
  const std::vector<uint8_t> short_cookie(96, 0);
  expect_nak(c.request(short_cookie.data(), short_cookie.size(), 0), NtsReason::kBadCookie, ring);
}

TEST(NtsResponder, OldCookieKeysStillOpenAfterARotationAndNewCookiesUseTheCurrentKey) {
  crypto::NonceSource rng(seed_bytes);
  Client c;
  const std::vector<uint8_t> cookie = cookie_for(ring_of({5}, 0), c.keys);
  const crypto::CookieKeyRing rotated = ring_of({5, 6}, 1);
  const Served s = serve(c.request(cookie.data(), cookie.size(), 0), &rotated, rng);
  ASSERT_EQ(s.a.outcome, NtsOutcome::kReply);
  const Checked k = check_as_client(s.reply, c);
  ASSERT_TRUE(k.auth_ok);
  ASSERT_EQ(k.cookies.size(), 1u);
  EXPECT_EQ(proto::load_be32(k.cookies[0].data()), 6u);
}

TEST(NtsResponder, DropsWithoutKeysAndOlderVersions) {
  crypto::NonceSource rng(seed_bytes);
  const crypto::CookieKeyRing ring = ring_of({5}, 0);
  Client c;
  const std::vector<uint8_t> cookie = cookie_for(ring, c.keys);
  std::vector<uint8_t> req = c.request(cookie.data(), cookie.size(), 0);
  const std::vector<uint8_t> copy = req;
  EXPECT_EQ(serve(req, nullptr, rng).a.reason, NtsReason::kNoKeys);
  const crypto::CookieKeyRing empty;
  EXPECT_EQ(serve(req, &empty, rng).a.outcome, NtsOutcome::kDrop);
  // NTPv3 with the same fields: classify takes no extension fields below v4
  // (a 36-byte tail is a MAC there), so it never reaches nts_answer; the
  // answer itself refuses too.
  req[0] = 0x1B;
  const NtpRequest q{true, proto::DropReason::kNtpTooShort, proto::Mode::kClient, 3, 0,
                     static_cast<uint16_t>(req.size()), c.transmit};
  const proto::NtsRequestView v = proto::parse_nts_request(req.data(), req.size(), kSivTagBytes);
  NtsSeal seal;
  EXPECT_EQ(nts_answer(req.data(), req.size(), q, v, {}, synced(), &ring, rng, seal).reason, NtsReason::kOldVersion);
}

TEST(NtsResponder, NonceSourceNeverRepeatsAndIsKeyedBySeed) {
  uint8_t s1[32] = {1}, s2[32] = {2};
  crypto::NonceSource a(s1), b(s1), other(s2);
  uint8_t x[16], y[16], z[16], w[16];
  a.fill(x, 16);
  b.fill(y, 16);
  other.fill(z, 16);
  EXPECT_EQ(0, std::memcmp(x, y, 16)) << "a stream of its seed";
  EXPECT_NE(0, std::memcmp(x, z, 16));
  std::vector<std::vector<uint8_t>> seen;
  for (int i = 0; i < 100; ++i) {  // past several refills of 256 bytes
    a.fill(w, 16);
    seen.emplace_back(w, w + 16);
  }
  for (size_t i = 0; i < seen.size(); ++i)
    for (size_t j = 0; j < i; ++j) ASSERT_NE(seen[i], seen[j]);
}

}  // namespace
}  // namespace ntp::dp
