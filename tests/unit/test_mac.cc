// MACs of NTP packets (crypto/mac.h): known-answer vectors from the RFCs
// (RFC 4493 CMAC-AES128, RFC 4231 HMAC-SHA256), hash(key || packet) vectors
// computed by an independent implementation, real packets with MACs made by
// chronyd 4.3 and NTPsec 1.2.2's ntpdig, the truncation and length rules,
// the constant-time verify's answers, the MAC field's check and writing
// (check_mac, append_mac), and the key table's lookup.
#include "crypto/keys.h"
#include "crypto/mac.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <fstream>
#include <memory>
#include <new>
#include <sstream>
#include <string>
#include <vector>

namespace ntp::crypto {
namespace {

std::vector<uint8_t> hex(const std::string& s) {
  std::vector<uint8_t> out;
  for (size_t i = 0; i + 1 < s.size(); i += 2) out.push_back(static_cast<uint8_t>(std::stoi(s.substr(i, 2), nullptr, 16)));
  return out;
}

std::string hex(const uint8_t* p, size_t n) {
  static const char* d = "0123456789abcdef";
  std::string s;
  for (size_t i = 0; i < n; ++i) {
    s += d[p[i] >> 4];
    s += d[p[i] & 15];
  }
  return s;
}

MacKey make(uint32_t id, MacType type, const std::vector<uint8_t>& secret) {
  MacKey k;
  EXPECT_TRUE(mac_key_init(k, id, type, secret.data(), secret.size()));
  return k;
}

std::vector<uint8_t> bytes(const std::string& s) { return {s.begin(), s.end()}; }

std::string mac_hex(const MacKey& k, const std::vector<uint8_t>& data, size_t out_bytes = kMaxDigestBytes) {
  uint8_t out[kMaxDigestBytes] = {};
  const size_t n = mac_compute(k, data.data(), data.size(), out, out_bytes);
  return hex(out, n);
}

// RFC 4493 section 4: the AES-128 key and the four examples (empty, 16, 40, 64 bytes).
const std::string kRfc4493Key = "2b7e151628aed2a6abf7158809cf4f3c";
const std::string kRfc4493Msg =
    "6bc1bee22e409f96e93d7e117393172aae2d8a571e03ac9c9eb76fac45af8e51"
    "30c81c46a35ce411e5fbc1191a0a52eff69f2445df4f9b17ad2b417be66c3710";

TEST(Mac, Rfc4493CmacAes128) {
  const MacKey k = make(1, MacType::kAes128Cmac, hex(kRfc4493Key));
  const auto msg = hex(kRfc4493Msg);
  auto first = [&](size_t n) { return std::vector<uint8_t>(msg.begin(), msg.begin() + static_cast<long>(n)); };
  EXPECT_EQ(mac_hex(k, first(0)), "bb1d6929e95937287fa37d129b756746");
  EXPECT_EQ(mac_hex(k, first(16)), "070a16b46b4d4144f79bdd9dd04a287c");
  EXPECT_EQ(mac_hex(k, first(40)), "dfa66747de9ae63030ca32611497c827");
  EXPECT_EQ(mac_hex(k, first(64)), "51f0bebf7e3b9d92fc49741779363cfe");
}

TEST(Mac, Rfc4231HmacSha256) {
  // Test case 1: key 0x0b x 20, "Hi There"; test case 2: key "Jefe".
  const MacKey k1 = make(1, MacType::kHmacSha256, std::vector<uint8_t>(20, 0x0b));
  EXPECT_EQ(mac_hex(k1, bytes("Hi There")), "b0344c61d8db38535ca8afceaf0bf12b881dc200c9833da726e9376c2e32cff7");
  const MacKey k2 = make(2, MacType::kHmacSha256, bytes("Jefe"));
  EXPECT_EQ(mac_hex(k2, bytes("what do ya want for nothing?")),
            "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843");
  // Test case 6: a key longer than the block (131 bytes of 0xaa) is hashed first.
  const MacKey k6 = make(6, MacType::kHmacSha256, std::vector<uint8_t>(131, 0xaa));
  EXPECT_EQ(mac_hex(k6, bytes("Test Using Larger Than Block-Size Key - Hash Key First")),
            "60e431591ee0b67f0d8a26aacbf5b77f8e0bc6213728c5140546040f0ee37f54");
}

// A 48-byte NTPv4 mode-3 request (poll 6, precision -20, transmit timestamp
// ec2b3c5a.1f3b6e80) and the secret "appliance-shared-secret". The expected
// digests were made with python3's hashlib (md5/sha1/sha256 over secret +
// packet), hmac (sha256) and python3-cryptography 38's CMAC (RFC 4493 key):
//   hashlib.new("sha256", secret + pkt).hexdigest()
const std::string kRequest =
    "230006ec000000000000000000000000000000000000000000000000000000000000000000000000ec2b3c5a1f3b6e80";
const std::string kSecret = "appliance-shared-secret";

TEST(Mac, HashOfKeyAndPacketMatchesHashlib) {
  const auto pkt = hex(kRequest);
  ASSERT_EQ(pkt.size(), 48u);
  EXPECT_EQ(mac_hex(make(3, MacType::kMd5, bytes(kSecret)), pkt), "8358d1d26f41996c2a2fdeccac0d48c4");
  EXPECT_EQ(mac_hex(make(4, MacType::kSha1, bytes(kSecret)), pkt), "797efc908e164021fad268f622bb5acf0dbb44a7");
  EXPECT_EQ(mac_hex(make(5, MacType::kSha256, bytes(kSecret)), pkt),
            "3b7f5775eb391b050444ee7133ca8728fb70ebedb9bf7812b4d8da820fb6c114");
  EXPECT_EQ(mac_hex(make(6, MacType::kHmacSha256, bytes(kSecret)), pkt),
            "85fa5b8e24e31d9805b58b2932e347c59d839f5b3ff62cb66b502917f83168d9");
  EXPECT_EQ(mac_hex(make(7, MacType::kAes128Cmac, hex(kRfc4493Key)), pkt), "b2063e6cbcdb34bc6f83607ffa00b231");
}

TEST(Mac, PrecomputedStateIsNotConsumed) {
  // The per-packet copy leaves the key as it was: the same packet twice, and
  // another packet between, give the same answer (a shared key in a table).
  const auto pkt = hex(kRequest);
  for (MacType t : {MacType::kSha256, MacType::kSha1, MacType::kMd5, MacType::kHmacSha256, MacType::kAes128Cmac}) {
    const MacKey k = make(9, t, t == MacType::kAes128Cmac ? hex(kRfc4493Key) : bytes(kSecret));
    const std::string first = mac_hex(k, pkt);
    (void)mac_hex(k, bytes("something else in between"));
    EXPECT_EQ(mac_hex(k, pkt), first) << mac_type_name(t);
  }
}

// Packets captured from chronyd 4.3 and ntpdig (NTPsec 1.2.2) with known
// keys, kept as golden files: tests/support/golden/auth/captured.txt (how
// they were taken is said there) and interop.keys, their keys in chrony's
// format (read by the keys file parser, so it is tested on them too).
struct Captured {
  std::string what;
  uint32_t key_id = 0;
  size_t digest_bytes = 0;  // as sent
  std::string packet;       // hex: header, key ID, digest
};

std::string golden(const std::string& name) {
  std::ifstream f(std::string(SOURCE_ROOT) + "/tests/support/golden/auth/" + name);
  EXPECT_TRUE(f.good()) << name;
  std::stringstream ss;
  ss << f.rdbuf();
  return ss.str();
}

const std::vector<Captured>& captured_packets() {
  static const std::vector<Captured> all = [] {
    std::vector<Captured> v;
    std::istringstream in(golden("captured.txt"));
    for (std::string line; std::getline(in, line);) {
      if (line.empty() || line[0] == '#') continue;
      std::istringstream fields(line);
      Captured c;
      std::string id, digest;
      std::getline(fields, c.what, '\t');
      std::getline(fields, id, '\t');
      std::getline(fields, digest, '\t');
      std::getline(fields, c.packet, '\t');
      c.key_id = static_cast<uint32_t>(std::stoul(id));
      c.digest_bytes = std::stoul(digest);
      v.push_back(c);
    }
    return v;
  }();
  return all;
}

MacKey captured_key(uint32_t id) {
  static const KeysFile keys = parse_keys(golden("interop.keys"), "interop.keys");
  EXPECT_TRUE(keys.ok());
  for (const KeyEntry& k : keys.keys)
    if (k.id == id) return make(k.id, k.type, std::vector<uint8_t>(k.secret.begin(), k.secret.end()));
  ADD_FAILURE() << "no key " << id << " in interop.keys";
  return {};
}

TEST(Mac, GoldenPacketsAreAllThere) {
  // 13 packets: requests of both clients for the four types, chronyd's
  // replies for each (two for SHA256: NTPv4 and NTPv3).
  EXPECT_EQ(captured_packets().size(), 13u);
}

TEST(Mac, VerifiesPacketsOfChronydAndNtpdig) {
  for (const Captured& c : captured_packets()) {
    SCOPED_TRACE(std::string(c.what) + ", key " + std::to_string(c.key_id));
    auto p = hex(c.packet);
    ASSERT_GT(p.size(), 52u);
    const uint32_t id = uint32_t{p[48]} << 24 | uint32_t{p[49]} << 16 | uint32_t{p[50]} << 8 | p[51];
    EXPECT_EQ(id, c.key_id);
    const MacKey k = captured_key(c.key_id);
    const size_t mac_bytes = p.size() - 52;
    const int version = (p[0] >> 3) & 7;
    EXPECT_TRUE(mac_verify(k, p.data(), 48, p.data() + 52, mac_bytes));
    // What we would send in that version is what chronyd sent (ntpdig
    // 1.2.2 differs for SHA256 in NTPv4: 32 bytes, above).
    if (std::string(c.what).rfind("chronyd", 0) == 0) {
      EXPECT_EQ(mac_wire_digest_bytes(k, version), mac_bytes) << "version " << version;
    }
    EXPECT_EQ(mac_bytes, c.digest_bytes);
    // mac_compute reproduces their digest byte for byte.
    uint8_t out[kMaxDigestBytes];
    ASSERT_EQ(mac_compute(k, p.data(), 48, out, mac_bytes), mac_bytes);
    EXPECT_EQ(hex(out, mac_bytes), hex(p.data() + 52, mac_bytes));
    // One bit anywhere in the header or the digest breaks it.
    for (size_t i : {size_t{0}, size_t{40}, size_t{47}, p.size() - 1}) {
      auto bad = p;
      bad[i] ^= 0x01;
      EXPECT_FALSE(mac_verify(k, bad.data(), 48, bad.data() + 52, mac_bytes)) << "byte " << i;
    }
    // The right digest under the wrong key of the same type.
    const MacKey other = k.type == MacType::kAes128Cmac
                             ? make(1, MacType::kAes128Cmac, hex("000102030405060708090a0b0c0d0e0f"))
                             : make(c.key_id, k.type, bytes("not the secret"));
    EXPECT_FALSE(mac_verify(other, p.data(), 48, p.data() + 52, mac_bytes));
  }
}

KeyTable captured_table() {
  KeyTable t;
  for (uint32_t id : {1u, 2u, 3u, 4u}) EXPECT_TRUE(t.insert(captured_key(id)));
  return t;
}

TEST(Mac, CheckMacOfCapturedPackets) {
  static KeyTable table;
  table = captured_table();
  for (const Captured& c : captured_packets()) {
    SCOPED_TRACE(std::string(c.what) + ", key " + std::to_string(c.key_id));
    auto p = hex(c.packet);
    const size_t mac_len = p.size() - 48;
    MacResult r = check_mac(table, p.data(), 48, p.data() + 48, mac_len);
    EXPECT_EQ(r.check, MacCheck::kOk) << mac_check_name(r.check);
    EXPECT_EQ(r.key_id, c.key_id);
    EXPECT_EQ(r.digest_bytes, c.digest_bytes);
    ASSERT_NE(r.key, nullptr);
    EXPECT_EQ(r.key->id, c.key_id);

    // append_mac writes the same field, at the same length: a reply to this
    // packet with its digest length is exactly as long (never longer).
    std::vector<uint8_t> copy(p.begin(), p.begin() + 48);
    copy.resize(48 + 4 + kMaxDigestBytes);
    EXPECT_EQ(append_mac(*r.key, copy.data(), 48, r.digest_bytes), mac_len);
    EXPECT_EQ(hex(copy.data() + 48, mac_len), hex(p.data() + 48, mac_len));

    auto bad = p;
    bad.back() ^= 0x10;
    EXPECT_EQ(check_mac(table, bad.data(), 48, bad.data() + 48, mac_len).check, MacCheck::kBadDigest);
    bad = p;
    bad[51] = 9;  // key ID 9: not ours
    r = check_mac(table, bad.data(), 48, bad.data() + 48, mac_len);
    EXPECT_EQ(r.check, MacCheck::kUnknownKey);
    EXPECT_EQ(r.key_id, 9u);
    EXPECT_EQ(r.key, nullptr);
    // The digest cut by 4 bytes: a length the type does not allow.
    EXPECT_EQ(check_mac(table, p.data(), 48, p.data() + 48, mac_len - 4).check, MacCheck::kBadLength);
  }
}

TEST(Mac, CheckMacEdgeCases) {
  static KeyTable table;
  table = captured_table();
  const auto pkt = hex(kRequest);
  uint8_t field[4 + kMaxDigestBytes] = {};
  EXPECT_EQ(check_mac(table, pkt.data(), 48, field, 0).check, MacCheck::kNoMac);
  EXPECT_EQ(check_mac(table, pkt.data(), 48, nullptr, 20).check, MacCheck::kNoMac);
  EXPECT_EQ(check_mac(table, pkt.data(), 48, field, 4).check, MacCheck::kCryptoNak);  // all zero
  EXPECT_EQ(check_mac(table, pkt.data(), 48, field, 2).check, MacCheck::kBadLength);
  EXPECT_EQ(check_mac(table, pkt.data(), 48, field, 20).check, MacCheck::kUnknownKey);  // key ID 0 with a digest
  field[3] = 1;
  EXPECT_EQ(check_mac(table, pkt.data(), 48, field, 4).check, MacCheck::kBadLength);  // key ID 1, no digest
  EXPECT_EQ(check_mac(table, pkt.data(), 48, field, 4 + 16).check, MacCheck::kBadDigest);
  EXPECT_EQ(check_mac(table, pkt.data(), 48, field, 4 + 17).check, MacCheck::kBadLength);
  EXPECT_EQ(check_mac(table, pkt.data(), 48, field, 4 + 32).check, MacCheck::kBadLength);  // CMAC is 16
  EXPECT_STREQ(mac_check_name(MacCheck::kCryptoNak), "crypto-NAK");
  EXPECT_EQ(append_mac(MacKey{}, field, 0, 16), 0u);
}

TEST(Mac, LengthsPerType) {
  EXPECT_EQ(mac_digest_bytes(MacType::kAes128Cmac), 16u);
  EXPECT_EQ(mac_digest_bytes(MacType::kHmacSha256), 32u);
  EXPECT_EQ(mac_digest_bytes(MacType::kSha256), 32u);
  EXPECT_EQ(mac_digest_bytes(MacType::kSha1), 20u);
  EXPECT_EQ(mac_digest_bytes(MacType::kMd5), 16u);
  EXPECT_EQ(mac_digest_bytes(MacType::kNone), 0u);
  const MacKey sha256 = make(1, MacType::kSha256, bytes(kSecret));
  EXPECT_EQ(mac_wire_digest_bytes(sha256, 4), 20u);
  EXPECT_EQ(mac_wire_digest_bytes(sha256, 3), 32u);
  const MacKey cmac = make(1, MacType::kAes128Cmac, hex(kRfc4493Key));
  EXPECT_EQ(mac_wire_digest_bytes(cmac, 4), 16u);
  EXPECT_EQ(mac_wire_digest_bytes(cmac, 3), 16u);
  EXPECT_TRUE(mac_type_is_weak(MacType::kMd5));
  EXPECT_TRUE(mac_type_is_weak(MacType::kSha1));
  EXPECT_FALSE(mac_type_is_weak(MacType::kSha256));
  EXPECT_FALSE(mac_type_is_weak(MacType::kHmacSha256));
  EXPECT_FALSE(mac_type_is_weak(MacType::kAes128Cmac));
  EXPECT_STREQ(mac_type_name(MacType::kHmacSha256), "HMAC-SHA256");
}

TEST(Mac, VerifyAcceptsOnlyTheFullOrTheV4Length) {
  const auto pkt = hex(kRequest);
  for (MacType t : {MacType::kSha256, MacType::kHmacSha256, MacType::kSha1, MacType::kMd5, MacType::kAes128Cmac}) {
    SCOPED_TRACE(mac_type_name(t));
    const MacKey k = make(2, t, t == MacType::kAes128Cmac ? hex(kRfc4493Key) : bytes(kSecret));
    uint8_t mac[kMaxDigestBytes];
    ASSERT_EQ(mac_compute(k, pkt.data(), pkt.size(), mac), k.digest_bytes);
    for (size_t n = 0; n <= kMaxDigestBytes; ++n) {
      // A prefix of the right digest: accepted only at the full length, or at
      // 20 bytes for a longer digest; never shorter (a 1-byte "MAC" would be
      // guessed in 256 tries).
      const bool want = n == k.digest_bytes || (k.digest_bytes > 20 && n == 20);
      EXPECT_EQ(mac_verify(k, pkt.data(), pkt.size(), mac, n), want) << n << " bytes";
    }
    EXPECT_FALSE(mac_verify(k, pkt.data(), pkt.size(), nullptr, k.digest_bytes));
  }
}

// RFC 7822's 20-byte cap is NTPv4's: in NTPv3 and older only the full
// digest is a MAC (chrony's check_symmetric_auth), so a SHA-256 digest cut
// to 20 bytes there is kBadLength, not a MAC to verify (or to answer with).
TEST(Mac, CheckMacRefusesShortenedDigestsBelowV4) {
  static KeyTable table;
  table = KeyTable{};
  for (MacType t : {MacType::kSha256, MacType::kHmacSha256, MacType::kSha1, MacType::kMd5, MacType::kAes128Cmac})
    ASSERT_TRUE(table.insert(make(static_cast<uint32_t>(t), t, t == MacType::kAes128Cmac ? hex(kRfc4493Key) : bytes(kSecret))));
  for (uint32_t id = 1; id <= table.count; ++id) {
    const MacKey& k = *table.find(id);
    for (int version = 1; version <= 4; ++version)
      for (size_t n : {size_t{k.digest_bytes}, size_t{20}, size_t{16}, size_t{12}}) {
        if (n > k.digest_bytes) continue;
        SCOPED_TRACE(std::string(mac_type_name(k.type)) + " v" + std::to_string(version) + " " + std::to_string(n) +
                     " bytes");
        auto pkt = hex(kRequest);
        pkt[0] = static_cast<uint8_t>((pkt[0] & 0xC7) | (version << 3));
        pkt.resize(48 + 4 + kMaxDigestBytes);
        ASSERT_EQ(append_mac(k, pkt.data(), 48, n), 4 + n);
        const bool want = n == k.digest_bytes || (version == 4 && n == 20);
        EXPECT_EQ(mac_length_allowed(k, n, version), want);
        // The version from the packet's header, and given.
        const MacResult r = check_mac(table, pkt.data(), 48, pkt.data() + 48, 4 + n);
        EXPECT_EQ(r.check, want ? MacCheck::kOk : MacCheck::kBadLength) << mac_check_name(r.check);
        EXPECT_EQ(check_mac(table, pkt.data(), 48, pkt.data() + 48, 4 + n, version).check, r.check);
        // A caller's version wins over the header's.
        const int other = version == 4 ? 3 : 4;
        EXPECT_EQ(check_mac(table, pkt.data(), 48, pkt.data() + 48, 4 + n, other).check,
                  n == k.digest_bytes || (other == 4 && n == 20) ? MacCheck::kOk : MacCheck::kBadLength);
      }
  }
}

TEST(Mac, ComputeTruncatesToTheBufferGiven) {
  const MacKey k = make(1, MacType::kSha256, bytes(kSecret));
  const auto pkt = hex(kRequest);
  uint8_t out[kMaxDigestBytes + 4];
  std::fill(std::begin(out), std::end(out), uint8_t{0xee});
  EXPECT_EQ(mac_compute(k, pkt.data(), pkt.size(), out, 20), 20u);
  EXPECT_EQ(hex(out, 20), "3b7f5775eb391b050444ee7133ca8728fb70ebed");  // the first 20 of the full digest
  EXPECT_EQ(out[20], 0xee);                                             // nothing past it
  EXPECT_EQ(mac_compute(k, pkt.data(), pkt.size(), out, 100), 32u);    // never more than the digest
  EXPECT_EQ(mac_compute(k, pkt.data(), pkt.size(), out, 0), 0u);
}

TEST(Mac, KeyInitRejects) {
  MacKey k;
  const auto s = bytes(kSecret);
  EXPECT_FALSE(mac_key_init(k, 0, MacType::kSha1, s.data(), s.size()));  // 0 is the crypto-NAK's
  EXPECT_FALSE(mac_key_init(k, 1, MacType::kNone, s.data(), s.size()));
  EXPECT_FALSE(mac_key_init(k, 1, MacType::kSha1, s.data(), 0));
  EXPECT_FALSE(mac_key_init(k, 1, MacType::kSha1, nullptr, 4));
  EXPECT_FALSE(mac_key_init(k, 1, MacType::kAes128Cmac, s.data(), 15));
  EXPECT_FALSE(mac_key_init(k, 1, MacType::kAes128Cmac, s.data(), 17));
  EXPECT_EQ(k.type, MacType::kNone);
  uint8_t out[kMaxDigestBytes];
  EXPECT_EQ(mac_compute(k, s.data(), s.size(), out), 0u);  // a kNone key computes nothing
  EXPECT_FALSE(mac_verify(k, s.data(), s.size(), out, 16));
  EXPECT_TRUE(mac_key_init(k, 0xFFFFFFFFu, MacType::kAes128Cmac, s.data(), 16));
  EXPECT_EQ(k.id, 0xFFFFFFFFu);
}

TEST(KeyTable, FindsByBinarySearch) {
  KeyTable t;
  const auto s = bytes(kSecret);
  // Inserted out of order; ids spread over the whole range.
  for (uint32_t id : {500u, 1u, 0xFFFFFFFFu, 42u, 7u, 100000u}) {
    MacKey k;
    ASSERT_TRUE(mac_key_init(k, id, MacType::kSha1, s.data(), s.size()));
    EXPECT_TRUE(t.insert(k));
  }
  EXPECT_EQ(t.count, 6u);
  for (uint32_t i = 1; i < t.count; ++i) EXPECT_LT(t.ids[i - 1], t.ids[i]);
  for (uint32_t id : {500u, 1u, 0xFFFFFFFFu, 42u, 7u, 100000u}) {
    const MacKey* k = t.find(id);
    ASSERT_NE(k, nullptr) << id;
    EXPECT_EQ(k->id, id);
  }
  for (uint32_t id : {0u, 2u, 43u, 499u, 501u, 0xFFFFFFFEu}) EXPECT_EQ(t.find(id), nullptr) << id;
  MacKey dup;
  ASSERT_TRUE(mac_key_init(dup, 42, MacType::kMd5, s.data(), s.size()));
  EXPECT_FALSE(t.insert(dup));
  EXPECT_EQ(t.find(42)->type, MacType::kSha1);  // the first one stays
  EXPECT_FALSE(t.insert(MacKey{}));              // kNone
  EXPECT_EQ(t.count, 6u);
}

TEST(KeyTable, HoldsUpToItsCapacity) {
  KeyTable t;
  const auto s = bytes(kSecret);
  for (uint32_t i = 0; i < kMaxKeys; ++i) {
    MacKey k;
    ASSERT_TRUE(mac_key_init(k, (kMaxKeys - i) * 3, MacType::kMd5, s.data(), s.size()));  // descending: worst case
    ASSERT_TRUE(t.insert(k));
  }
  MacKey extra;
  ASSERT_TRUE(mac_key_init(extra, 1, MacType::kMd5, s.data(), s.size()));
  EXPECT_FALSE(t.insert(extra));
  EXPECT_EQ(t.count, kMaxKeys);
  EXPECT_EQ(t.find(3)->id, 3u);
  EXPECT_EQ(t.find(kMaxKeys * 3)->id, kMaxKeys * 3);
  EXPECT_EQ(t.find(4), nullptr);
  // A copy (as into shared memory) finds the same keys and computes the same MACs.
  static KeyTable copy;
  copy = t;
  const auto pkt = hex(kRequest);
  EXPECT_EQ(mac_hex(*copy.find(300), pkt), mac_hex(*t.find(300), pkt));
}

// ---------------------------------------------------------------- wiping
// A MacKey's state is as good as its secret (the SHA/MD5 block buffer even
// holds a short secret verbatim): destroyed, moved from or assigned over, no
// byte of it may stay. Storage is inspected after the destructor ran
// (placement new), which is what a freed block would show.

bool all_zero(const void* p, size_t n) {
  const auto* b = static_cast<const unsigned char*>(p);
  return std::all_of(b, b + n, [](unsigned char c) { return c == 0; });
}
bool holds(const void* p, size_t n, const std::string& needle) {
  return memmem(p, n, needle.data(), needle.size()) != nullptr;
}
const std::string kPlanted = "planted-secret-7Qx9";  // short: absorbed into the hash's block buffer as is

TEST(MacWipe, DestroyedKeyLeavesNoByte) {
  for (MacType t : {MacType::kSha256, MacType::kHmacSha256, MacType::kSha1, MacType::kMd5, MacType::kAes128Cmac}) {
    SCOPED_TRACE(mac_type_name(t));
    alignas(MacKey) unsigned char storage[sizeof(MacKey)];
    auto* k = new (storage) MacKey;
    const auto secret = t == MacType::kAes128Cmac ? hex(kRfc4493Key) : bytes(kPlanted);
    ASSERT_TRUE(mac_key_init(*k, 3, t, secret.data(), secret.size()));
    ASSERT_FALSE(all_zero(&k->state, sizeof k->state));
    if (t == MacType::kSha256 || t == MacType::kSha1 || t == MacType::kMd5) {
      ASSERT_TRUE(holds(storage, sizeof storage, kPlanted));
    }
    k->~MacKey();
    EXPECT_TRUE(all_zero(storage, sizeof storage));
  }
}

TEST(MacWipe, MovedFromAndAssignedOverKeysKeepNothing) {
  const auto pkt = hex(kRequest);
  const MacKey ref = make(5, MacType::kSha1, bytes(kPlanted));
  MacKey a = ref;
  EXPECT_EQ(mac_hex(a, pkt), mac_hex(ref, pkt));  // a copy is the key
  MacKey b(std::move(a));
  EXPECT_TRUE(all_zero(&a, sizeof a));
  EXPECT_EQ(a.type, MacType::kNone);
  EXPECT_EQ(mac_compute(a, pkt.data(), pkt.size(), nullptr, 0), 0u);
  EXPECT_EQ(mac_hex(b, pkt), mac_hex(ref, pkt));
  MacKey c;
  c = std::move(b);
  EXPECT_TRUE(all_zero(&b, sizeof b));
  EXPECT_EQ(mac_hex(c, pkt), mac_hex(ref, pkt));
  // Assigned over by a key of a smaller state: nothing of the old one stays,
  // not in the union's tail either.
  alignas(MacKey) unsigned char storage[sizeof(MacKey)];
  auto* k = new (storage) MacKey(make(6, MacType::kHmacSha256, bytes(kPlanted)));
  std::vector<unsigned char> inner(sizeof k->state.hmac.inner.state);
  std::memcpy(inner.data(), &k->state.hmac.inner.state, inner.size());
  const std::string inner_words(inner.begin(), inner.end());
  ASSERT_TRUE(holds(storage, sizeof storage, inner_words));
  *k = make(7, MacType::kMd5, bytes("other"));
  EXPECT_FALSE(holds(storage, sizeof storage, inner_words));
  *k = ref;
  ASSERT_TRUE(holds(storage, sizeof storage, kPlanted));
  *k = MacKey{};
  EXPECT_TRUE(all_zero(storage, sizeof storage));
  k->~MacKey();
}

// A table built from a keys file, as the daemons do.
KeyTable* build_in(void* storage) {
  const KeysFile f = parse_keys("1 SHA1 ASCII:" + kPlanted + "\n2 MD5 ASCII:" + kPlanted +
                                    "\n3 AES128 HEX:2b7e151628aed2a6abf7158809cf4f3c\n4 HMAC-SHA256 ASCII:x\n",
                                "keys");
  EXPECT_TRUE(f.ok());
  auto* t = new (storage) KeyTable;
  std::string error;
  EXPECT_TRUE(build_key_table(f.keys, *t, &error)) << error;
  return t;
}

TEST(MacWipe, TablesDestroyedMovedFromClearedOrCopiedLeaveNoSecret) {
  static_assert(alignof(KeyTable) <= __STDCPP_DEFAULT_NEW_ALIGNMENT__);
  const size_t n = sizeof(KeyTable);
  std::unique_ptr<unsigned char[]> s1(new unsigned char[n]), s2(new unsigned char[n]);
  const auto pkt = hex(kRequest);

  KeyTable* t = build_in(s1.get());
  ASSERT_TRUE(holds(s1.get(), n, kPlanted));  // the search can see it
  const std::string mac1 = mac_hex(*t->find(1), pkt);
  t->~KeyTable();
  EXPECT_TRUE(all_zero(s1.get(), n));

  // Moved from: empty, and not a byte left; the new table is the old one.
  t = build_in(s1.get());
  KeyTable* moved = new (s2.get()) KeyTable(std::move(*t));
  EXPECT_EQ(t->count, 0u);
  EXPECT_EQ(t->find(1), nullptr);
  EXPECT_TRUE(all_zero(s1.get(), n));
  EXPECT_EQ(mac_hex(*moved->find(1), pkt), mac1);
  // Move-assigned over: the old content of the target goes too.
  *t = std::move(*moved);
  EXPECT_TRUE(all_zero(s2.get(), n));
  EXPECT_EQ(mac_hex(*t->find(1), pkt), mac1);
  moved->~KeyTable();

  // A copy is wiped when it goes; the original stays whole.
  auto* copy = new (s2.get()) KeyTable(*t);
  ASSERT_TRUE(holds(s2.get(), n, kPlanted));
  copy->~KeyTable();
  EXPECT_TRUE(all_zero(s2.get(), n));
  EXPECT_EQ(mac_hex(*t->find(1), pkt), mac1);

  // Assigned a smaller table: none of the old keys' state stays.
  copy = new (s2.get()) KeyTable;
  *t = *copy;
  EXPECT_EQ(t->count, 0u);
  EXPECT_FALSE(holds(s1.get(), n, kPlanted));
  copy->~KeyTable();

  // clear() as the wipe function.
  t->~KeyTable();
  t = build_in(s1.get());
  t->clear();
  EXPECT_TRUE(all_zero(s1.get(), n));
  t->~KeyTable();
}

}  // namespace
}  // namespace ntp::crypto
