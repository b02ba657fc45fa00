// crypto/siv: AEAD_AES_SIV_CMAC_256 over Nettle, against known answers
// from two other implementations (chrony's unit test vector, and OpenSSL's
// AES-SIV through Python's cryptography, AD list [ad, nonce]: RFC 5297's
// nonce-based form, which is what NTS uses), round trips and forgeries.
#include "crypto/siv.h"

#include <gtest/gtest.h>

#include <cstring>
#include <string>
#include <vector>

namespace ntp::crypto {
namespace {

std::vector<uint8_t> hex(const std::string& h) {
  std::vector<uint8_t> out;
  for (size_t i = 0; i + 1 < h.size(); i += 2) out.push_back(static_cast<uint8_t>(std::stoul(h.substr(i, 2), nullptr, 16)));
  return out;
}

std::vector<uint8_t> bytes(const std::string& s) { return {s.begin(), s.end()}; }

const std::vector<uint8_t> kKey = hex("0123456789abcdeff0123456789abcdeef0123456789abcddef0123456789abc");
const std::vector<uint8_t> kNonce = hex("101112131415161718191a1b1c1d1e1f");

SivKey key_of(const std::vector<uint8_t>& k) {
  SivKey key;
  EXPECT_TRUE(siv_key_init(key, k.data(), k.size()));
  return key;
}

struct Vector {
  const char* name;
  std::vector<uint8_t> ad, nonce, plain, sealed;
};

std::vector<Vector> vectors() {
  std::vector<uint8_t> ad100(100), plain64(64);
  for (int i = 0; i < 100; ++i) ad100[i] = static_cast<uint8_t>(i);
  for (int i = 0; i < 64; ++i) plain64[i] = static_cast<uint8_t>(i);
  return {
      // chrony test/unit/siv.c's first AEAD_AES_SIV_CMAC_256 case.
      {"chrony: empty AD and plaintext", {}, kNonce, {}, hex("223eb594e0e0254b00258e219a1ca421")},
      // OpenSSL 3.0 AES-SIV (Python cryptography AESSIV).
      {"openssl: one byte", {}, kNonce, bytes("x"), hex("2255f6ed0657f3451e5c23e035cb640ed5")},
      {"openssl: AD and text", bytes("assoc data"), kNonce, bytes("hello nts"),
       hex("cb5b08c1128ae17ca59db3196de398761d0c87836fa0e6b133")},
      // The sizes of an NTS cookie (64 bytes of keys) under packet-sized AD.
      {"openssl: cookie-sized", ad100, std::vector<uint8_t>(16, 0xa5), plain64,
       hex("1916a5d7bbb2a4d723694defec9535eaf5b55a6247c8cfefb9482edba105814a5ab0efdfe36b5c9ac5cd8b055663585937b908e7"
           "8a586e44a82b721727b382863d02a6f1b814b378cb84f0c61d74b8dd")},
  };
}

TEST(Siv, SealsAsChronyAndOpenSslDo) {
  const SivKey key = key_of(kKey);
  for (const Vector& v : vectors()) {
    SCOPED_TRACE(v.name);
    std::vector<uint8_t> out(kSivTagBytes + v.plain.size());
    ASSERT_TRUE(siv_seal(key, v.nonce.data(), v.nonce.size(), v.ad.data(), v.ad.size(), v.plain.data(), v.plain.size(),
                         out.data()));
    EXPECT_EQ(out, v.sealed);
  }
}

TEST(Siv, OpensTheKnownAnswers) {
  const SivKey key = key_of(kKey);
  for (const Vector& v : vectors()) {
    SCOPED_TRACE(v.name);
    std::vector<uint8_t> plain(v.sealed.size() - kSivTagBytes + 1, 0xEE);  // one spare byte, left alone
    ASSERT_TRUE(siv_open(key, v.nonce.data(), v.nonce.size(), v.ad.data(), v.ad.size(), v.sealed.data(),
                         v.sealed.size(), plain.data()));
    EXPECT_EQ(std::vector<uint8_t>(plain.begin(), plain.end() - 1), v.plain);
    EXPECT_EQ(plain.back(), 0xEE);
  }
}

// Any one bit changed in the tag, the ciphertext, the AD or the nonce, or
// another key: refused, and the output holds nothing of the plaintext.
TEST(Siv, RefusesEveryChangedBitAndLeavesNoPlaintext) {
  const Vector v = vectors()[3];
  const SivKey key = key_of(kKey);
  auto open = [&](const std::vector<uint8_t>& ad, const std::vector<uint8_t>& nonce, const std::vector<uint8_t>& sealed,
                  const SivKey& k) {
    std::vector<uint8_t> plain(sealed.size() - kSivTagBytes, 0x5A);
    const bool ok = siv_open(k, nonce.data(), nonce.size(), ad.data(), ad.size(), sealed.data(), sealed.size(),
                             plain.data());
    if (!ok) {
      for (uint8_t b : plain) EXPECT_EQ(b, 0) << "a refused open left bytes in the output";
    }
    return ok;
  };
  ASSERT_TRUE(open(v.ad, v.nonce, v.sealed, key));
  for (size_t bit = 0; bit < v.sealed.size() * 8; bit += 7) {
    std::vector<uint8_t> s = v.sealed;
    s[bit / 8] ^= static_cast<uint8_t>(1u << (bit % 8));
    EXPECT_FALSE(open(v.ad, v.nonce, s, key)) << "sealed bit " << bit;
  }
  for (size_t bit = 0; bit < v.ad.size() * 8; bit += 13) {
    std::vector<uint8_t> ad = v.ad;
    ad[bit / 8] ^= static_cast<uint8_t>(1u << (bit % 8));
    EXPECT_FALSE(open(ad, v.nonce, v.sealed, key)) << "AD bit " << bit;
  }
  for (size_t bit = 0; bit < v.nonce.size() * 8; ++bit) {
    std::vector<uint8_t> nonce = v.nonce;
    nonce[bit / 8] ^= static_cast<uint8_t>(1u << (bit % 8));
    EXPECT_FALSE(open(v.ad, nonce, v.sealed, key)) << "nonce bit " << bit;
  }
  std::vector<uint8_t> other = kKey;
  other[31] ^= 1;
  EXPECT_FALSE(open(v.ad, v.nonce, v.sealed, key_of(other)));
  // Truncated: one byte less of ciphertext, or of AD.
  EXPECT_FALSE(open(v.ad, v.nonce, std::vector<uint8_t>(v.sealed.begin(), v.sealed.end() - 1), key));
  EXPECT_FALSE(open(std::vector<uint8_t>(v.ad.begin(), v.ad.end() - 1), v.nonce, v.sealed, key));
}

TEST(Siv, RefusesBadKeysNoncesAndLengths) {
  SivKey key;
  const std::vector<uint8_t> k16(16, 1), k64(64, 1);
  EXPECT_FALSE(siv_key_init(key, k16.data(), k16.size()));  // AES-SIV-CMAC-256 takes 32 bytes, no other
  EXPECT_FALSE(siv_key_init(key, k64.data(), k64.size()));
  EXPECT_FALSE(siv_key_init(key, nullptr, 32));
  uint8_t out[64] = {};
  const uint8_t plain[4] = {1, 2, 3, 4};
  EXPECT_FALSE(siv_seal(key, kNonce.data(), kNonce.size(), nullptr, 0, plain, 4, out)) << "a key not ready";
  key = key_of(kKey);
  EXPECT_FALSE(siv_seal(key, kNonce.data(), 0, nullptr, 0, plain, 4, out)) << "Nettle needs a nonce";
  EXPECT_FALSE(siv_open(key, kNonce.data(), kNonce.size(), nullptr, 0, out, kSivTagBytes - 1, out + 32));
}

TEST(Siv, ARoundTripOfEveryLengthUpToAPacket) {
  const SivKey key = key_of(kKey);
  std::vector<uint8_t> ad(90, 0x33);
  for (size_t n = 0; n <= 600; n += 37) {
    std::vector<uint8_t> plain(n);
    for (size_t i = 0; i < n; ++i) plain[i] = static_cast<uint8_t>(i * 7 + n);
    std::vector<uint8_t> sealed(n + kSivTagBytes), back(n);
    ASSERT_TRUE(siv_seal(key, kNonce.data(), kNonce.size(), ad.data(), ad.size(), plain.data(), n, sealed.data()));
    ASSERT_TRUE(siv_open(key, kNonce.data(), kNonce.size(), ad.data(), ad.size(), sealed.data(), sealed.size(),
                         back.data()));
    EXPECT_EQ(back, plain) << n;
  }
}

TEST(Siv, AKeyIsWipedWhenMovedFromAndCopiesWork) {
  SivKey a = key_of(kKey);
  SivKey b = a;  // a copy seals the same
  uint8_t s1[kSivTagBytes], s2[kSivTagBytes];
  ASSERT_TRUE(siv_seal(a, kNonce.data(), kNonce.size(), nullptr, 0, nullptr, 0, s1));
  ASSERT_TRUE(siv_seal(b, kNonce.data(), kNonce.size(), nullptr, 0, nullptr, 0, s2));
  EXPECT_EQ(0, std::memcmp(s1, s2, sizeof s1));
  SivKey c = std::move(a);
  EXPECT_TRUE(c.ready);
  EXPECT_FALSE(a.ready);  // NOLINT(bugprone-use-after-move): the wipe is what is tested
  const auto* raw = reinterpret_cast<const uint8_t*>(&a);
  for (size_t i = 0; i < sizeof a; ++i) ASSERT_EQ(raw[i], 0) << "byte " << i << " of a moved-from key";
}

}  // namespace
}  // namespace ntp::crypto
