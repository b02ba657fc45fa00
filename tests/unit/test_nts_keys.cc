// crypto/nts_keys: the NTS cookie keys file parsed (every malformed line
// with file:line, no key quoted), written and read back, loaded only with
// a safe owner and mode, rotated on time (new key current, the oldest
// dropped), and a ring built from it that opens the cookies of the keys
// kept.
#include "crypto/nts_keys.h"

#include <gtest/gtest.h>

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdlib>
#include <string>

namespace ntp::crypto {
namespace {

const std::string kHex64 = "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f";

std::string joined(const CookieKeysFile& f) {
  std::string s;
  for (const KeyError& e : f.errors) s += e.to_string() + "\n";
  return s;
}

TEST(NtsKeys, ParsesKeysOldestFirst) {
  const CookieKeysFile f = parse_cookie_keys(
      "# written by ntp-control\n"
      "\n"
      "7 AES-SIV-CMAC-256 HEX:" + kHex64 + " 1700000000\n"
      "  8\taes-siv-cmac-256 hex:" + kHex64 + " 1700086400\r\n",
      "ntskeys");
  ASSERT_TRUE(f.ok()) << joined(f);
  ASSERT_EQ(f.keys.size(), 2u);
  EXPECT_EQ(f.keys[0].id, 7u);
  EXPECT_EQ(f.keys[0].created_s, 1700000000);
  EXPECT_EQ(f.keys[0].line, 3);
  EXPECT_EQ(f.keys[1].id, 8u);
  EXPECT_EQ(f.keys[1].secret[0], 0x00);
  EXPECT_EQ(f.keys[1].secret[31], 0x1f);
}

TEST(NtsKeys, ReportsEveryBadLineAndQuotesNoKey) {
  const std::string secretish = "HEX:" + std::string(63, 'a') + "z";
  const CookieKeysFile f = parse_cookie_keys(
      "0 AES-SIV-CMAC-256 HEX:" + kHex64 + " 1\n"            // 1: ID 0
      "1 AES-128-GCM-SIV HEX:" + kHex64 + " 1\n"             // 2: algorithm
      "2 AES-SIV-CMAC-256 " + secretish + " 1\n"             // 3: not hex
      "3 AES-SIV-CMAC-256 HEX:" + kHex64.substr(2) + " 1\n"  // 4: 31 bytes
      "4 AES-SIV-CMAC-256 HEX:" + kHex64 + " yesterday\n"    // 5: created
      "5 AES-SIV-CMAC-256 HEX:" + kHex64 + "\n"              // 6: 3 fields
      "6 AES-SIV-CMAC-256 HEX:" + kHex64 + " 100\n"          // ok
      "6 AES-SIV-CMAC-256 HEX:" + kHex64 + " 200\n"          // 8: twice
      "9 AES-SIV-CMAC-256 HEX:" + kHex64 + " 50\n",          // 9: older than the one above
      "ntskeys");
  EXPECT_TRUE(f.keys.empty()) << "a file with an error gives no key";
  const std::string all = joined(f);
  for (int line : {1, 2, 3, 4, 5, 6, 8, 9}) EXPECT_NE(all.find("ntskeys:" + std::to_string(line) + ": "), std::string::npos) << line << "\n" << all;
  EXPECT_EQ(all.find("ntskeys:7:"), std::string::npos) << all;
  EXPECT_EQ(all.find(kHex64.substr(0, 16)), std::string::npos) << "a key quoted";
  EXPECT_EQ(all.find("aaaaaaaa"), std::string::npos) << "a key-like field quoted";
  EXPECT_NE(all.find("defined twice"), std::string::npos);
  EXPECT_NE(all.find("oldest first"), std::string::npos);
  EXPECT_FALSE(parse_cookie_keys("# nothing\n", "k").ok()) << "no key";
  std::string nine;
  for (int i = 1; i <= 9; ++i) nine += std::to_string(i) + " AES-SIV-CMAC-256 HEX:" + kHex64 + " 1\n";
  EXPECT_NE(joined(parse_cookie_keys(nine, "k")).find("more than the 8"), std::string::npos);
}

TEST(NtsKeys, WhatIsWrittenReadsBack) {
  std::vector<CookieKeyEntry> keys(3);
  for (size_t i = 0; i < keys.size(); ++i) {
    keys[i].id = 4000000000u + static_cast<uint32_t>(i);
    for (size_t j = 0; j < kSivKeyBytes; ++j) keys[i].secret[j] = static_cast<uint8_t>(i * 40 + j * 7);
    keys[i].created_s = 1700000000 + static_cast<int64_t>(i) * 86400;
  }
  SecretText text;
  format_cookie_keys(keys, text);
  const CookieKeysFile back = parse_cookie_keys(text.view(), "written");
  ASSERT_TRUE(back.ok()) << joined(back) << text.view();
  ASSERT_EQ(back.keys.size(), 3u);
  for (size_t i = 0; i < 3; ++i) {
    EXPECT_EQ(back.keys[i].id, keys[i].id);
    EXPECT_EQ(back.keys[i].created_s, keys[i].created_s);
    EXPECT_EQ(0, std::memcmp(back.keys[i].secret, keys[i].secret, kSivKeyBytes));
  }
}

// What ntp-control publishes in the segment makes the ring the file makes.
TEST(NtsKeys, TheSegmentsCopyMakesTheSameRing) {
  std::vector<CookieKeyEntry> keys(3);
  for (size_t i = 0; i < keys.size(); ++i) {
    keys[i].id = 70 + static_cast<uint32_t>(i);
    for (size_t j = 0; j < kSivKeyBytes; ++j) keys[i].secret[j] = static_cast<uint8_t>(i * 3 + j);
  }
  proto::CookieKeysData d;
  cookie_keys_to_abi(keys, d);
  ASSERT_EQ(d.count, 3u);
  CookieKeyRing from_abi, from_file;
  ASSERT_TRUE(cookie_ring_from_abi(d, from_abi, nullptr));
  ASSERT_TRUE(build_cookie_ring(keys, from_file, nullptr));
  EXPECT_EQ(from_abi.sealing()->id, 72u);
  NtsKeys k;
  k.c2s[0] = 9;
  uint8_t nonce[kNtsCookieNonceBytes] = {1};
  uint8_t cookie[kNtsCookieBytes];
  ASSERT_TRUE(cookie_seal(*from_file.find(71), nonce, k, cookie));
  NtsKeys out;
  EXPECT_EQ(cookie_open(from_abi, cookie, sizeof cookie, out), CookieOpen::kOk);
  EXPECT_EQ(out.c2s[0], 9);
  // Nothing, too many, or an ID twice: no ring.
  std::string err;
  d.count = 0;
  EXPECT_FALSE(cookie_ring_from_abi(d, from_abi, &err));
  d.count = 9;
  EXPECT_FALSE(cookie_ring_from_abi(d, from_abi, &err));
  d.count = 3;
  d.keys[2].id = d.keys[0].id;
  EXPECT_FALSE(cookie_ring_from_abi(d, from_abi, &err));
  EXPECT_EQ(from_abi.count, 0u);
}

TEST(NtsKeys, RotatesOnTimeKeepsTheNewestAndTheRingOpensOnlyWhatIsKept) {
  int calls = 0;
  auto random = [&calls](uint8_t* p, size_t n) {
    ++calls;
    for (size_t i = 0; i < n; ++i) p[i] = static_cast<uint8_t>(calls * 17 + i);
  };
  std::vector<CookieKeyEntry> keys;
  const int64_t day = 86400;
  EXPECT_TRUE(rotate_cookie_keys(keys, 1000, day, 2, random)) << "no key: one is made at once";
  ASSERT_EQ(keys.size(), 1u);
  EXPECT_EQ(keys[0].id, 1u);
  EXPECT_FALSE(rotate_cookie_keys(keys, 1000 + day - 1, day, 2, random)) << "not due yet";
  CookieKeyRing first;
  ASSERT_TRUE(build_cookie_ring(keys, first, nullptr));
  NtsKeys k;
  for (size_t i = 0; i < kNtsKeyBytes; ++i) k.c2s[i] = k.s2c[i] = static_cast<uint8_t>(i);
  uint8_t nonce[kNtsCookieNonceBytes] = {};
  uint8_t cookie_of_key1[kNtsCookieBytes];
  ASSERT_TRUE(cookie_seal(*first.sealing(), nonce, k, cookie_of_key1));

  for (int d = 1; d <= 3; ++d) EXPECT_TRUE(rotate_cookie_keys(keys, 1000 + d * day, day, 2, random));
  ASSERT_EQ(keys.size(), 3u) << "the current key and 2 old ones";
  EXPECT_EQ(keys[0].id, 2u);
  EXPECT_EQ(keys[2].id, 4u);
  EXPECT_EQ(calls, 4);
  CookieKeyRing ring;
  ASSERT_TRUE(build_cookie_ring(keys, ring, nullptr));
  EXPECT_EQ(ring.sealing()->id, 4u) << "the newest seals";
  NtsKeys out;
  EXPECT_EQ(cookie_open(ring, cookie_of_key1, sizeof cookie_of_key1, out), CookieOpen::kUnknownKey)
      << "key 1 is three rotations old, beyond the two kept";
  // rotate_s 0: keys shared from elsewhere never rotate here.
  EXPECT_FALSE(rotate_cookie_keys(keys, 1000 + 100 * day, 0, 2, random));
  // IDs skip 0 and those in use when they wrap.
  std::vector<CookieKeyEntry> wrap(2);
  wrap[0].id = 1;
  wrap[1].id = 0xFFFFFFFFu;
  ASSERT_TRUE(rotate_cookie_keys(wrap, 10 * day, day, 7, random));
  EXPECT_EQ(wrap.back().id, 2u);
  std::string error;
  EXPECT_FALSE(build_cookie_ring({}, ring, &error));
  EXPECT_EQ(error, "no cookie key");
}

// Owner and mode: as the keys file (the secrets open every client's cookie).
TEST(NtsKeys, LoadRefusesAFileOthersCanReadAndASymlink) {
  char dir[] = "/tmp/ntskeys.XXXXXX";
  ASSERT_NE(mkdtemp(dir), nullptr);
  const std::string path = std::string(dir) + "/ntskeys";
  const std::string body = "1 AES-SIV-CMAC-256 HEX:" + kHex64 + " 1\n";
  const int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_EXCL, 0600);
  ASSERT_GE(fd, 0);
  ASSERT_EQ(::write(fd, body.data(), body.size()), static_cast<ssize_t>(body.size()));
  ::close(fd);
  CookieKeysFile f = load_cookie_keys(path);
  EXPECT_TRUE(f.ok()) << joined(f);
  EXPECT_EQ(f.keys.size(), 1u);
  ASSERT_EQ(::chmod(path.c_str(), 0640), 0);
  f = load_cookie_keys(path);
  EXPECT_TRUE(f.keys.empty());
  EXPECT_NE(joined(f).find("chmod 600"), std::string::npos) << joined(f);
  ASSERT_EQ(::chmod(path.c_str(), 0600), 0);
  const std::string link = std::string(dir) + "/link";
  ASSERT_EQ(::symlink(path.c_str(), link.c_str()), 0);
  EXPECT_NE(joined(load_cookie_keys(link)).find("symbolic link"), std::string::npos);
  EXPECT_NE(joined(load_cookie_keys(std::string(dir) + "/none")).find("cannot open"), std::string::npos);
  ::unlink(link.c_str());
  ::unlink(path.c_str());
  ::rmdir(dir);
}

}  // namespace
}  // namespace ntp::crypto
