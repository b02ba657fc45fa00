// proto/nts: an NTS request's fields found by their declared lengths, in
// the layout chronyd sends (a Unique Identifier of 32 octets, one cookie,
// placeholders as long as it, the authenticator last with a 16-octet nonce),
// and every malformed variant refused with its reason.
#include "proto/nts.h"

#include <gtest/gtest.h>

#include <cstring>
#include <vector>

#include "proto/inet.h"

namespace ntp::proto {
namespace {

constexpr size_t kTag = 16;

struct Builder {
  std::vector<uint8_t> p = std::vector<uint8_t>(48, 0);
  Builder() { p[0] = 0x23; }  // LI 0, VN 4, mode 3
  Builder& field(uint16_t type, size_t body_len, uint8_t fill = 0) {
    std::vector<uint8_t> body(body_len, fill);
    std::vector<uint8_t> f(ef_field_bytes(body_len));
    write_ef(f.data(), type, body.data(), body.size());
    p.insert(p.end(), f.begin(), f.end());
    return *this;
  }
  Builder& uid(size_t n = 32) { return field(kEfUniqueIdentifier, n, 0x11); }
  Builder& cookie(size_t n = 100) { return field(kEfNtsCookie, n, 0x22); }
  Builder& placeholder(size_t n = 100) { return field(kEfNtsCookiePlaceholder, n, 0); }
  Builder& auth(size_t nonce_len = 16, size_t ct_len = kTag) {
    std::vector<uint8_t> nonce(nonce_len, 0x44);
    std::vector<uint8_t> f(nts_authenticator_bytes(nonce_len, ct_len));
    write_nts_authenticator(f.data(), nonce.data(), nonce_len, ct_len);
    for (size_t i = 0; i < ct_len; ++i) f[nts_ciphertext_offset(nonce_len) + i] = 0x55;
    p.insert(p.end(), f.begin(), f.end());
    return *this;
  }
  // A raw field: type, declared length, then body bytes as given.
  Builder& raw(uint16_t type, uint16_t declared, std::vector<uint8_t> body) {
    const size_t at = p.size();
    p.resize(at + 4);
    store_be16(p.data() + at, type);
    store_be16(p.data() + at + 2, declared);
    p.insert(p.end(), body.begin(), body.end());
    return *this;
  }
  NtsRequestView parse() const { return parse_nts_request(p.data(), p.size(), kTag); }
};

TEST(NtsParse, FindsTheFieldsOfAChronyRequest) {
  Builder b;
  b.uid().cookie().placeholder().placeholder().auth();
  const NtsRequestView v = b.parse();
  ASSERT_TRUE(v.ok()) << to_string(v.status);
  EXPECT_EQ(v.unique_id, b.p.data() + 48 + 4);
  EXPECT_EQ(v.unique_id_len, 32);
  EXPECT_EQ(v.cookie, b.p.data() + 48 + 36 + 4);
  EXPECT_EQ(v.cookie_len, 100);
  EXPECT_EQ(v.placeholders, 2);
  EXPECT_EQ(v.auth_at, 48 + 36 + 3 * 104);
  EXPECT_EQ(v.nonce, b.p.data() + v.auth_at + 8);
  EXPECT_EQ(v.nonce_len, 16);
  EXPECT_EQ(v.ciphertext, b.p.data() + v.auth_at + 8 + 16);
  EXPECT_EQ(v.ciphertext_len, kTag);
  EXPECT_EQ(b.p.size(), v.auth_at + 40u);  // 4 + 4 + 16 + 16
}

TEST(NtsParse, FieldsInAnyOrderBeforeTheAuthenticatorAndUnknownOnesSkipped) {
  Builder b;
  b.placeholder().field(0x7777, 12, 0x99).cookie().placeholder().uid(64).auth();
  const NtsRequestView v = b.parse();
  ASSERT_TRUE(v.ok()) << to_string(v.status);
  EXPECT_EQ(v.placeholders, 2) << "a placeholder before the cookie counts too";
  EXPECT_EQ(v.unique_id_len, 64);
}

TEST(NtsParse, OnlyPlaceholdersAsLongAsTheCookieAskAndAtMostSeven) {
  {
    Builder b;
    b.uid().cookie().placeholder(100).placeholder(96).placeholder(104).auth();
    const NtsRequestView v = b.parse();
    ASSERT_TRUE(v.ok());
    EXPECT_EQ(v.placeholders, 1) << "a shorter placeholder would make the reply larger than the request";
  }
  {
    Builder b;
    b.uid().cookie();
    for (int i = 0; i < 12; ++i) b.placeholder();
    b.auth();
    const NtsRequestView v = b.parse();
    ASSERT_TRUE(v.ok());
    EXPECT_EQ(v.placeholders, kNtsMaxCookiesPerReply - 1);
  }
}

TEST(NtsParse, RefusesEachMissingOrRepeatedField) {
  EXPECT_EQ(Builder().cookie().auth().parse().status, NtsParse::kNoUniqueId);
  EXPECT_EQ(Builder().uid().uid().cookie().auth().parse().status, NtsParse::kDuplicateUniqueId);
  EXPECT_EQ(Builder().uid(28).cookie().auth().parse().status, NtsParse::kShortUniqueId);
  EXPECT_EQ(Builder().uid().auth().parse().status, NtsParse::kNoCookie);
  EXPECT_EQ(Builder().uid().cookie().cookie().auth().parse().status, NtsParse::kDuplicateCookie);
  EXPECT_EQ(Builder().uid().cookie(260).auth().parse().status, NtsParse::kBadCookieLength);
  EXPECT_EQ(Builder().uid().cookie().parse().status, NtsParse::kNoAuthenticator);
  EXPECT_EQ(Builder().uid().cookie().auth().placeholder().parse().status, NtsParse::kNotLast);
  EXPECT_EQ(Builder().uid().cookie().auth().auth().parse().status, NtsParse::kNotLast);
  std::vector<uint8_t> short_packet(47, 0);
  EXPECT_EQ(parse_nts_request(short_packet.data(), short_packet.size(), kTag).status, NtsParse::kNoHeader);
  EXPECT_EQ(parse_nts_request(nullptr, 200, kTag).status, NtsParse::kNoHeader);
  EXPECT_EQ(Builder().parse().status, NtsParse::kNoUniqueId) << "a plain 48-byte request";
}

TEST(NtsParse, RefusesFieldLengthsRfc7822DoesNotAllow) {
  // Declared 12 (< 16), 18 (not a multiple of 4), past the end, a lone
  // 2-byte tail.
  EXPECT_EQ(Builder().uid().raw(kEfNtsCookie, 12, std::vector<uint8_t>(8)).parse().status, NtsParse::kBadField);
  EXPECT_EQ(Builder().uid().raw(kEfNtsCookie, 18, std::vector<uint8_t>(14)).parse().status, NtsParse::kBadField);
  EXPECT_EQ(Builder().uid().raw(kEfNtsCookie, 108, std::vector<uint8_t>(100)).parse().status, NtsParse::kBadField);
  Builder tail;
  tail.uid().cookie().auth();
  tail.p.push_back(0);
  tail.p.push_back(0);
  EXPECT_EQ(tail.parse().status, NtsParse::kNotLast);
  Builder tail2;
  tail2.uid().cookie();
  tail2.p.push_back(0);
  EXPECT_EQ(tail2.parse().status, NtsParse::kBadField);
}

TEST(NtsParse, TheAuthenticatorsLengthsMustFitItsBody) {
  auto body = [](uint16_t nonce_len, uint16_t ct_len, size_t body_len) {
    std::vector<uint8_t> b(body_len, 0);
    store_be16(b.data(), nonce_len);
    store_be16(b.data() + 2, ct_len);
    return b;
  };
  auto with = [&](std::vector<uint8_t> b) {
    return Builder().uid().cookie().raw(kEfNtsAuthenticator, static_cast<uint16_t>(4 + b.size()), b).parse().status;
  };
  EXPECT_EQ(with(body(16, 16, 36)), NtsParse::kOk);
  EXPECT_EQ(with(body(0, 16, 36)), NtsParse::kBadAuthenticator) << "no nonce";
  EXPECT_EQ(with(body(16, 15, 36)), NtsParse::kBadAuthenticator) << "a ciphertext shorter than the tag";
  EXPECT_EQ(with(body(16, 20, 36)), NtsParse::kBadAuthenticator) << "ciphertext past the body";
  EXPECT_EQ(with(body(32, 16, 36)), NtsParse::kBadAuthenticator) << "nonce past the body";
  EXPECT_EQ(with(body(12, 16, 32)), NtsParse::kBadAuthenticator) << "a 12-octet nonce without Additional Padding";
  EXPECT_EQ(with(body(12, 16, 36)), NtsParse::kOk) << "a 12-octet nonce padded to 16 (RFC 8915 section 5.6)";
  EXPECT_EQ(with(body(13, 16, 36)), NtsParse::kOk) << "13 octets padded to 16";
  EXPECT_EQ(Builder().uid().cookie().auth(12).parse().status, NtsParse::kOk);
}

TEST(NtsReplyParse, FindsTheUniqueIdentifierAndTheAuthenticatorLast) {
  Builder b;
  b.uid().field(0x7777, 12).auth(16, kTag + 104);
  const NtsReplyView v = parse_nts_reply(b.p.data(), b.p.size(), kTag);
  ASSERT_TRUE(v.ok()) << to_string(v.status);
  EXPECT_EQ(v.unique_id, b.p.data() + 48 + 4);
  EXPECT_EQ(v.unique_id_len, 32u);
  EXPECT_EQ(v.auth_at, 48u + 36u + 16u);
  EXPECT_EQ(v.nonce_len, 16u);
  EXPECT_EQ(v.ciphertext_len, kTag + 104);
  // A NAK: the Unique Identifier, no authenticator.
  Builder nak;
  nak.uid();
  const NtsReplyView n = parse_nts_reply(nak.p.data(), nak.p.size(), kTag);
  EXPECT_EQ(n.status, NtsParse::kNoAuthenticator);
  EXPECT_NE(n.unique_id, nullptr);
}

TEST(NtsReplyParse, RefusesWhatAReplyMayNotBe) {
  auto status = [](const Builder& b) { return parse_nts_reply(b.p.data(), b.p.size(), kTag).status; };
  EXPECT_EQ(status(Builder{}.auth()), NtsParse::kNoUniqueId);
  EXPECT_EQ(status(Builder{}.uid().uid().auth()), NtsParse::kDuplicateUniqueId);
  EXPECT_EQ(status(Builder{}.uid().auth().field(0x7777, 12)), NtsParse::kNotLast);
  EXPECT_EQ(status(Builder{}.uid().auth(16, 8)), NtsParse::kBadAuthenticator);
  EXPECT_EQ(status(Builder{}.uid().raw(0x0404, 8, {0, 0, 0, 0})), NtsParse::kBadField);
  EXPECT_EQ(status(Builder{}.uid().raw(0x0404, 200, std::vector<uint8_t>(40, 0))), NtsParse::kBadField);
  const std::vector<uint8_t> short_pkt(47, 0);
  EXPECT_EQ(parse_nts_reply(short_pkt.data(), short_pkt.size(), kTag).status, NtsParse::kNoHeader);
  // Truncated anywhere: never ok, never past the end (ASan would say).
  Builder full;
  full.uid().auth(16, kTag + 104);
  for (size_t n = 48; n < full.p.size(); ++n)
    EXPECT_FALSE(parse_nts_reply(full.p.data(), n, kTag).ok()) << n;
}

TEST(NtsFieldWalk, WalksByDeclaredLengthsAndStopsAtTheFirstBadOne) {
  Builder b;
  b.field(kEfNtsCookie, 100).field(kEfNtsCookie, 20).raw(0x0204, 6, {1, 2});
  size_t pos = 48;
  EfView f;
  ASSERT_EQ(next_ef(b.p.data(), b.p.size(), pos, f), EfNext::kField);
  EXPECT_EQ(f.type, kEfNtsCookie);
  EXPECT_EQ(f.body_len, 100u);
  EXPECT_EQ(f.at, 48u);
  ASSERT_EQ(next_ef(b.p.data(), b.p.size(), pos, f), EfNext::kField);
  EXPECT_EQ(f.body_len, 20u);
  EXPECT_EQ(next_ef(b.p.data(), b.p.size(), pos, f), EfNext::kBad);
  size_t end = b.p.size();
  EXPECT_EQ(next_ef(b.p.data(), b.p.size(), end, f), EfNext::kEnd);
}

TEST(NtsWrite, FieldsArePaddedToFourAndSixteen) {
  uint8_t out[64];
  std::memset(out, 0xFF, sizeof out);
  const uint8_t body[5] = {1, 2, 3, 4, 5};
  EXPECT_EQ(write_ef(out, kEfNtsCookie, body, 5), 16u) << "at least 16";
  EXPECT_EQ(load_be16(out), kEfNtsCookie);
  EXPECT_EQ(load_be16(out + 2), 16);
  EXPECT_EQ(out[8], 5);
  for (int i = 9; i < 16; ++i) EXPECT_EQ(out[i], 0) << i;
  EXPECT_EQ(out[16], 0xFF) << "nothing past the field";
  EXPECT_EQ(ef_field_bytes(100), 104u);
  EXPECT_EQ(ef_field_bytes(13), 20u);
  // A body already in place is kept.
  std::memset(out, 0, sizeof out);
  for (int i = 0; i < 20; ++i) out[4 + i] = static_cast<uint8_t>(i + 1);
  EXPECT_EQ(write_ef(out, kEfUniqueIdentifier, out + 4, 20), 24u);
  for (int i = 0; i < 20; ++i) EXPECT_EQ(out[4 + i], i + 1);
  EXPECT_EQ(nts_authenticator_bytes(16, 16), 40u);
  EXPECT_EQ(nts_authenticator_bytes(12, 16), 40u) << "the nonce's Additional Padding to 16";
  EXPECT_EQ(nts_authenticator_bytes(16, 16 + 104), 144u);
}

}  // namespace
}  // namespace ntp::proto
