// crypto/nts_cookie: cookies sealed under a ring's current key open again
// with the same keys, under any key still in the ring (the last rotations'),
// and never under a retired key, a forged tag, another secret with the same
// ID, or a wrong length.
#include "crypto/nts_cookie.h"

#include <gtest/gtest.h>

#include <cstring>

#include "proto/inet.h"

namespace ntp::crypto {
namespace {

uint8_t g_secrets[kMaxCookieKeys + 1][kSivKeyBytes];

const uint8_t (*secrets_from(uint32_t first))[kSivKeyBytes] {
  for (uint32_t i = 0; i <= kMaxCookieKeys; ++i)
    for (size_t j = 0; j < kSivKeyBytes; ++j) g_secrets[i][j] = static_cast<uint8_t>((first + i) * 31 + j);
  return g_secrets;
}

NtsKeys keys_of(uint8_t seed) {
  NtsKeys k;
  for (size_t i = 0; i < kNtsKeyBytes; ++i) {
    k.c2s[i] = static_cast<uint8_t>(seed + i);
    k.s2c[i] = static_cast<uint8_t>(seed * 3 + i);
  }
  return k;
}

void nonce_of(uint8_t n, uint8_t* out) {
  for (size_t i = 0; i < kNtsCookieNonceBytes; ++i) out[i] = static_cast<uint8_t>(n ^ i);
}

TEST(NtsCookie, OpensWhatItSealedWithTheKeysInside) {
  CookieKeyRing ring;
  const uint32_t ids[] = {7, 8};
  ASSERT_TRUE(cookie_ring_init(ring, ids, secrets_from(0), 2, 1));
  const NtsKeys in = keys_of(9);
  uint8_t nonce[kNtsCookieNonceBytes];
  nonce_of(1, nonce);
  uint8_t cookie[kNtsCookieBytes];
  ASSERT_TRUE(cookie_seal(*ring.sealing(), nonce, in, cookie));
  EXPECT_EQ(proto::load_be32(cookie), 8u) << "the current key's ID leads";
  EXPECT_EQ(0, std::memcmp(cookie + 4, nonce, sizeof nonce));
  // The keys are not in the clear.
  for (size_t i = 0; i + 8 <= kNtsCookieBytes; ++i) {
    EXPECT_NE(0, std::memcmp(cookie + i, in.c2s, 8));
    EXPECT_NE(0, std::memcmp(cookie + i, in.s2c, 8));
  }
  NtsKeys out;
  ASSERT_EQ(cookie_open(ring, cookie, sizeof cookie, out), CookieOpen::kOk);
  EXPECT_EQ(0, std::memcmp(out.c2s, in.c2s, kNtsKeyBytes));
  EXPECT_EQ(0, std::memcmp(out.s2c, in.s2c, kNtsKeyBytes));
}

TEST(NtsCookie, AnotherNonceGivesAnotherCookie) {
  CookieKeyRing ring;
  const uint32_t ids[] = {1};
  ASSERT_TRUE(cookie_ring_init(ring, ids, secrets_from(0), 1, 0));
  const NtsKeys k = keys_of(3);
  uint8_t n1[kNtsCookieNonceBytes], n2[kNtsCookieNonceBytes], c1[kNtsCookieBytes], c2[kNtsCookieBytes];
  nonce_of(1, n1);
  nonce_of(2, n2);
  ASSERT_TRUE(cookie_seal(*ring.sealing(), n1, k, c1));
  ASSERT_TRUE(cookie_seal(*ring.sealing(), n2, k, c2));
  EXPECT_NE(0, std::memcmp(c1 + 20, c2 + 20, kNtsCookieBytes - 20)) << "cookies of one client are unlinkable";
}

// Rotation: the ring moves on (new key current, the oldest dropped); a
// cookie of a key still in the ring opens, one of a dropped key is
// kUnknownKey (the server answers it with an NTS NAK).
TEST(NtsCookie, CookiesOfTheLastRotationsOpenARetiredKeysDoNot) {
  const NtsKeys k = keys_of(5);
  uint8_t nonce[kNtsCookieNonceBytes];
  nonce_of(4, nonce);
  CookieKeyRing old_ring;
  const uint32_t old_ids[] = {100, 101, 102};
  ASSERT_TRUE(cookie_ring_init(old_ring, old_ids, secrets_from(0), 3, 0));  // key 100 seals
  uint8_t cookie[kNtsCookieBytes];
  ASSERT_TRUE(cookie_seal(*old_ring.sealing(), nonce, k, cookie));

  // One rotation later: 101, 102, 103 (101's secret is index 1 of the old
  // numbering: secrets_from(1) starts there). 100 is gone.
  CookieKeyRing rotated;
  const uint32_t new_ids[] = {101, 102, 103};
  ASSERT_TRUE(cookie_ring_init(rotated, new_ids, secrets_from(1), 3, 2));
  NtsKeys out;
  EXPECT_EQ(cookie_open(rotated, cookie, sizeof cookie, out), CookieOpen::kUnknownKey);
  for (uint8_t b : out.c2s) ASSERT_EQ(b, 0);

  // A cookie of 101 (the old ring's second key) opens in the rotated ring.
  CookieKeyRing sealer;
  const uint32_t id101[] = {101};
  ASSERT_TRUE(cookie_ring_init(sealer, id101, secrets_from(1), 1, 0));
  ASSERT_TRUE(cookie_seal(*sealer.sealing(), nonce, k, cookie));
  EXPECT_EQ(cookie_open(rotated, cookie, sizeof cookie, out), CookieOpen::kOk);
  EXPECT_EQ(0, std::memcmp(out.s2c, k.s2c, kNtsKeyBytes));
}

TEST(NtsCookie, EveryChangedByteAnotherSecretOrLengthIsRefused) {
  CookieKeyRing ring;
  const uint32_t ids[] = {42};
  ASSERT_TRUE(cookie_ring_init(ring, ids, secrets_from(0), 1, 0));
  const NtsKeys k = keys_of(1);
  uint8_t nonce[kNtsCookieNonceBytes];
  nonce_of(9, nonce);
  uint8_t cookie[kNtsCookieBytes];
  ASSERT_TRUE(cookie_seal(*ring.sealing(), nonce, k, cookie));
  NtsKeys out;
  for (size_t i = 0; i < kNtsCookieBytes; ++i) {
    uint8_t c[kNtsCookieBytes];
    std::memcpy(c, cookie, sizeof c);
    c[i] ^= 0x01;
    const CookieOpen r = cookie_open(ring, c, sizeof c, out);
    EXPECT_EQ(r, i < 4 ? CookieOpen::kUnknownKey : CookieOpen::kBadTag) << "byte " << i;
    for (uint8_t b : out.c2s) ASSERT_EQ(b, 0) << "keys left after a refused cookie";
  }
  EXPECT_EQ(cookie_open(ring, cookie, sizeof cookie - 4, out), CookieOpen::kBadLength);
  EXPECT_EQ(cookie_open(ring, cookie, sizeof cookie + 4, out), CookieOpen::kBadLength);
  EXPECT_EQ(cookie_open(ring, nullptr, sizeof cookie, out), CookieOpen::kBadLength);
  // The same ID with another secret (another appliance, or a restart that
  // did not keep its keys): a bad cookie, not a crash or a wrong key.
  CookieKeyRing other;
  ASSERT_TRUE(cookie_ring_init(other, ids, secrets_from(5), 1, 0));
  EXPECT_EQ(cookie_open(other, cookie, sizeof cookie, out), CookieOpen::kBadTag);
}

TEST(NtsCookie, RingInitRefusesWhatItCannotServe) {
  CookieKeyRing ring;
  const uint32_t ids[] = {1, 2, 3, 4, 5, 6, 7, 8, 9};
  EXPECT_FALSE(cookie_ring_init(ring, ids, secrets_from(0), 0, 0)) << "no key";
  EXPECT_FALSE(cookie_ring_init(ring, ids, secrets_from(0), kMaxCookieKeys + 1, 0)) << "too many";
  EXPECT_FALSE(cookie_ring_init(ring, ids, secrets_from(0), 3, 3)) << "current out of range";
  const uint32_t zero[] = {1, 0};
  EXPECT_FALSE(cookie_ring_init(ring, zero, secrets_from(0), 2, 0)) << "ID 0";
  const uint32_t twice[] = {5, 6, 5};
  EXPECT_FALSE(cookie_ring_init(ring, twice, secrets_from(0), 3, 0)) << "an ID twice";
  EXPECT_EQ(ring.count, 0u);
  EXPECT_EQ(ring.sealing(), nullptr);
  EXPECT_EQ(ring.find(5), nullptr);
  ASSERT_TRUE(cookie_ring_init(ring, ids, secrets_from(0), kMaxCookieKeys, 7));
  EXPECT_EQ(ring.sealing()->id, 8u);
  EXPECT_EQ(ring.find(0), nullptr);
  EXPECT_EQ(ring.find(3)->id, 3u);
}

}  // namespace
}  // namespace ntp::crypto
