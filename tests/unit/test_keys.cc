// The keys file (crypto/keys.h): chrony's `ID TYPE KEY` lines, every error
// with file:line (all of them at once, never the secret in a message), the
// warnings for weak types, and load_keys's refusal of a file that group or
// other can read or that someone else owns.
#include "crypto/keys.h"

#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cstdint>
#include <cstdlib>
#include <fstream>
#include <string>
#include <vector>

namespace ntp::crypto {
namespace {

KeysFile parse(const std::string& text) { return parse_keys(text, "keys"); }

// The one error of a file, as to_string() prints it.
std::string only_error(const std::string& text) {
  const KeysFile f = parse(text);
  EXPECT_EQ(f.errors.size(), 1u) << text;
  EXPECT_TRUE(f.keys.empty());
  return f.errors.empty() ? "" : f.errors[0].to_string();
}

bool contains(const std::string& s, const std::string& part) { return s.find(part) != std::string::npos; }

TEST(Keys, ParsesEachTypeAndEncoding) {
  const KeysFile f = parse(
      "# keys shared with the seed's devices\n"
      "\n"
      "   ! chrony's other comment characters\n"
      "; also\n"
      "% and this\n"
      "10 AES128 HEX:2B7E151628AED2A6ABF7158809CF4F3C\n"
      "2 HMAC-SHA256 ASCII:vendor-router-secret\n"
      "\t3  sha256\tHEX:000102030405060708090a0b0c0d0e0f10111213\r\n"
      "4294967295 SHA1 plain-ascii-secret!!\n"
      "1 md5 ASCII:HEX:isASCII-here\n");
  ASSERT_TRUE(f.ok()) << f.errors[0].to_string();
  ASSERT_EQ(f.keys.size(), 5u);
  // Sorted by id.
  EXPECT_EQ(f.keys[0].id, 1u);
  EXPECT_EQ(f.keys[1].id, 2u);
  EXPECT_EQ(f.keys[2].id, 3u);
  EXPECT_EQ(f.keys[3].id, 10u);
  EXPECT_EQ(f.keys[4].id, 4294967295u);

  EXPECT_EQ(f.keys[0].type, MacType::kMd5);
  EXPECT_EQ(std::string(f.keys[0].secret.begin(), f.keys[0].secret.end()), "HEX:isASCII-here");
  EXPECT_TRUE(f.keys[0].weak);
  EXPECT_EQ(f.keys[0].line, 10);

  EXPECT_EQ(f.keys[1].type, MacType::kHmacSha256);
  EXPECT_EQ(std::string(f.keys[1].secret.begin(), f.keys[1].secret.end()), "vendor-router-secret");
  EXPECT_FALSE(f.keys[1].weak);

  EXPECT_EQ(f.keys[2].type, MacType::kSha256);
  ASSERT_EQ(f.keys[2].secret.size(), 20u);
  EXPECT_EQ(f.keys[2].secret[0], 0x00);
  EXPECT_EQ(f.keys[2].secret[19], 0x13);

  EXPECT_EQ(f.keys[3].type, MacType::kAes128Cmac);
  ASSERT_EQ(f.keys[3].secret.size(), 16u);
  EXPECT_EQ(f.keys[3].secret[0], 0x2B);
  EXPECT_EQ(f.keys[3].secret[15], 0x3C);

  EXPECT_EQ(f.keys[4].type, MacType::kSha1);
  EXPECT_EQ(std::string(f.keys[4].secret.begin(), f.keys[4].secret.end()), "plain-ascii-secret!!");
  EXPECT_TRUE(f.keys[4].weak);

  // The two weak keys are warned about, with their lines.
  ASSERT_EQ(f.warnings.size(), 2u);
  EXPECT_EQ(f.warnings[0].to_string(), "keys:9: key 4294967295: SHA1 is weak, for interop with legacy peers only (prefer AES128)");
  EXPECT_EQ(f.warnings[1].to_string(), "keys:10: key 1: MD5 is weak, for interop with legacy peers only (prefer AES128)");
}

TEST(Keys, EmptyFileHasNoKeys) {
  const KeysFile f = parse("# nothing yet\n\n");
  EXPECT_TRUE(f.ok());
  EXPECT_TRUE(f.keys.empty());
  EXPECT_TRUE(parse("").ok());
  EXPECT_EQ(parse("1 AES128 HEX:2B7E151628AED2A6ABF7158809CF4F3C").keys.size(), 1u);  // no final newline
}

TEST(Keys, FieldCount) {
  EXPECT_EQ(only_error("5\n"), "keys:1: expected `ID TYPE KEY`, found 1 field");
  EXPECT_EQ(only_error("\n5 secret\n"),
            "keys:2: expected `ID TYPE KEY`, found 2 fields (chrony's `ID KEY` form, MD5 implied, is not accepted: "
            "write the type)");
  EXPECT_TRUE(contains(only_error("5 SHA1 secret-secret-1 # trailing comment\n"), "found 6 fields (a key has no blanks"));
}

TEST(Keys, KeyIds) {
  const std::string k = " SHA256 HEX:000102030405060708090a0b0c0d0e0f\n";
  EXPECT_EQ(only_error("0" + k),
            "keys:1: key ID 0 is reserved: it marks a crypto-NAK (RFC 5905 section 7.4); use 1..4294967295");
  // Not in range, so maybe a secret of digits: its size, not its digits.
  EXPECT_EQ(only_error("4294967296" + k), "keys:1: the key ID (column 1, 10 digits) is out of range 1..4294967295");
  EXPECT_EQ(only_error("999999999999" + k), "keys:1: the key ID (column 1, 12 digits) is out of range 1..4294967295");
  EXPECT_EQ(only_error("99999999999999999999999" + k),
            "keys:1: the key ID (column 1, 23 digits) is out of range 1..4294967295");
  EXPECT_EQ(only_error("abc" + k), "keys:1: the key ID (column 1, 3 characters) is not a decimal number (1..4294967295)");
  EXPECT_EQ(only_error("+1" + k), "keys:1: the key ID (column 1, 2 characters) is not a decimal number (1..4294967295)");
  EXPECT_EQ(only_error("  0x10" + k),
            "keys:1: the key ID (column 3, 4 characters) is not a decimal number (1..4294967295)");
  EXPECT_EQ(parse("0007" + k).keys.at(0).id, 7u);
  EXPECT_EQ(parse("00000000004294967295" + k).keys.at(0).id, 4294967295u);  // leading zeros are not digits of range
  EXPECT_EQ(only_error("1" + k + "2" + k + "1" + k), "keys:3: key 1 defined again (first at line 1)");
}

TEST(Keys, Types) {
  // Not a known name, so maybe a secret: its place, not its text.
  EXPECT_EQ(only_error("1 SHA512 secretsecretsecret\n"),
            "keys:1: unknown key type (column 3, 6 characters) for key 1 (expected one of AES128, HMAC-SHA256, "
            "SHA256, SHA1, MD5)");
  EXPECT_TRUE(contains(only_error("1 AES 2B7E151628AED2A6ABF7158809CF4F3C\n"), "NTPsec's AES is AES128 here"));
  EXPECT_TRUE(contains(only_error("1 aes128cmac 2B7E151628AED2A6ABF7158809CF4F3C\n"),
                       "NTPsec's AES128CMAC is AES128 here"));
  EXPECT_EQ(parse("1 hmac-sha256 secretsecretsecret\n").keys.at(0).type, MacType::kHmacSha256);
  EXPECT_EQ(parse("1 Aes128 HEX:2B7E151628AED2A6ABF7158809CF4F3C\n").keys.at(0).type, MacType::kAes128Cmac);
}

// A field in the wrong column may be the secret: quoted only when it looks
// like a type name or a number, else named by its column.
TEST(Keys, AMisplacedSecretIsNeverEchoed) {
  EXPECT_EQ(only_error("1 ASCII:topsecret pw\n"),
            "keys:1: unknown key type (column 3, 15 characters) for key 1 (expected one of AES128, HMAC-SHA256, "
            "SHA256, SHA1, MD5); it starts like a key (a HEX: or ASCII: prefix): the order is `ID TYPE KEY`");
  EXPECT_EQ(only_error("hunter2hunter2 MD5 HEX:00112233445566778899\n"),
            "keys:1: the key ID (column 1, 14 characters) is not a decimal number (1..4294967295)");
  EXPECT_EQ(only_error("1 HEX:2B7E151628AED2A6 pw\n"),
            "keys:1: unknown key type (column 3, 20 characters) for key 1 (expected one of AES128, HMAC-SHA256, "
            "SHA256, SHA1, MD5); it starts like a key (a HEX: or ASCII: prefix): the order is `ID TYPE KEY`");
  EXPECT_EQ(only_error("s3cr3t:pass SHA1 HEX:00112233445566778899\n"),
            "keys:1: the key ID (column 1, 11 characters) is not a decimal number (1..4294967295)");
  // Known type names are quoted, to say what is where.
  EXPECT_EQ(parse("MD5 pw 1\n").errors.at(0).to_string(),
            "keys:1: the key ID (column 1, 3 characters) is not a decimal number (1..4294967295); the ID field is "
            "the type name MD5: the order is `ID TYPE KEY`");
  EXPECT_EQ(only_error("1 pw SHA1\n"),
            "keys:1: unknown key type (column 3, 2 characters) for key 1 (expected one of AES128, HMAC-SHA256, "
            "SHA256, SHA1, MD5); the KEY field is the type name SHA1: the order is `ID TYPE KEY`");
  // A whole file of such lines: no message carries any of the secrets.
  const KeysFile f = parse("1 ASCII:topsecret pw\nhunter2hunter2 MD5 HEX:00\n  pa55word:x SHA1 y\n");
  ASSERT_EQ(f.errors.size(), 3u);
  for (const KeyError& e : f.errors)
    for (const char* secret : {"topsecret", "hunter2", "pa55word"})
      EXPECT_FALSE(contains(e.to_string(), secret)) << e.to_string();
}

// Every column of malformed lines holding a short, recognisable secret:
// no error or warning carries it, each still names file:line and the fault.
TEST(Keys, NoMessageCarriesAPlantedSecret) {
  const std::vector<std::string> secrets = {"Qx9",  "pW0rd", "hunter2", "s3-cr3t", "x:y:z", "99999999999",
                                            "4294967296", "0x1F", "-7q", "+55", "7e3", "AES256", "hmac-md5"};
  const std::vector<std::pair<std::string, std::string>> shapes = {
      // the line (@: the secret), what its first error says
      {"@ MD5 HEX:00112233445566778899aabbccddeeff", "key ID"},
      {"@ 1 MD5", "key ID"},
      {"1 @ MD5", "unknown key type"},
      {"MD5 @ 1", "key ID"},
      {"MD5 1 @", "key ID"},
      {"1 @", "found 2 fields"},
      {"@", "found 1 field"},
      {"1 MD5 @ @", "found 4 fields"},
      {"@ @ @", "key ID"},
      {"1 @ HEX:00", "unknown key type"},
      {"1 AES128 @", "exactly 16 bytes"},
      {"1 AES128 ASCII:@", "exactly 16 bytes"},
      {"1 SHA1 HEX:@g", "hex"},
      {"1 SHA1 HEX:00@g0", "hex"},
      {"1 SHA1 @\x01", "control character"},
      {"1 SHA1 \x7f@", "control character"},
      {"1 SHA1 ASCII:@" + std::string(130, 'z'), "longer than 128"},
      {"0 @ @", "key ID 0 is reserved"},
      {"1 SHA1 @\n1 MD5 @", "defined again"},
  };
  for (const std::string& secret : secrets)
    for (const auto& [shape, fault] : shapes) {
      std::string line = shape;
      for (size_t at; (at = line.find('@')) != std::string::npos;) line.replace(at, 1, secret);
      const std::string text = "# planted\n" + line + "\n";
      const KeysFile f = parse(text);
      ASSERT_FALSE(f.errors.empty()) << text;
      const int last_line = 2 + static_cast<int>(std::count(line.begin(), line.end(), '\n'));
      EXPECT_EQ(f.errors.front().to_string().rfind("keys:" + std::to_string(last_line) + ": ", 0), 0u)
          << f.errors.front().to_string();
      auto lower = [](std::string t) {
        for (char& c : t) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
        return t;
      };
      EXPECT_TRUE(contains(lower(f.errors.front().message), lower(fault))) << text << " -> " << f.errors.front().message;
      std::vector<KeyError> all = f.errors;
      all.insert(all.end(), f.warnings.begin(), f.warnings.end());
      for (const KeyError& e : all)
        EXPECT_FALSE(contains(lower(e.to_string()), lower(secret))) << "secret " << secret << " in: " << e.to_string();
    }
}

TEST(Keys, Secrets) {
  EXPECT_EQ(only_error("1 SHA1 HEX:\n"), "keys:1: key 1: empty secret");
  EXPECT_EQ(only_error("1 SHA1 ASCII:\n"), "keys:1: key 1: empty secret");
  EXPECT_EQ(only_error("1 SHA1 HEX:abc\n"), "keys:1: key 1: HEX: needs an even number of hex digits, found 3");
  // The column of the bad digit, not the digit: no part of a secret in a log.
  const std::string bad = only_error("1 SHA1 HEX:00112233zz\n");
  EXPECT_EQ(bad, "keys:1: key 1: not a hex digit at column 20");
  EXPECT_FALSE(contains(bad, "zz"));
  EXPECT_FALSE(contains(bad, "0011"));
  EXPECT_EQ(only_error("1 SHA1 " + std::string(129, 'a') + "\n"),
            "keys:1: key 1: a secret of 129 bytes is longer than 128");
  EXPECT_EQ(parse("1 SHA1 " + std::string(128, 'a') + "\n").keys.at(0).secret.size(), 128u);
  EXPECT_EQ(only_error("1 AES128 HEX:2B7E151628AED2A6ABF7158809CF4F\n"),
            "keys:1: key 1: an AES128 key is exactly 16 bytes (128 bits, RFC 8573), this one is 15 (write HEX: and 32 "
            "hex digits)");
  // 32 hex digits without HEX: are 32 ASCII bytes, as in chrony: too long for AES128.
  EXPECT_TRUE(contains(only_error("1 AES128 2B7E151628AED2A6ABF7158809CF4F3C\n"), "this one is 32"));
  EXPECT_TRUE(parse("1 AES128 ASCII:sixteen-bytes-ok\n").ok());
}

TEST(Keys, Warnings) {
  // Hex-looking text without HEX: is ASCII (chrony's rule) but NTPsec would
  // read it as hex: said, since the peers would then disagree on the key.
  KeysFile f = parse("1 SHA256 00112233445566778899aabbccddeeff00112233\n");
  ASSERT_TRUE(f.ok());
  EXPECT_EQ(f.keys[0].secret.size(), 40u);
  ASSERT_EQ(f.warnings.size(), 1u);
  EXPECT_TRUE(contains(f.warnings[0].to_string(), "keys:1: key 1: the key looks like hex but has no HEX: prefix"));
  f = parse("2 HMAC-SHA256 short\n");
  ASSERT_EQ(f.warnings.size(), 1u);
  EXPECT_EQ(f.warnings[0].to_string(),
            "keys:1: key 2: a secret of 5 bytes is short (use 16 or more random bytes, e.g. from `chronyc keygen`)");
  EXPECT_TRUE(parse("3 SHA256 ASCII:a-long-enough-secret\n").warnings.empty());
}

TEST(Keys, ControlCharactersAndLongLines) {
  // Its column, not its byte (it may be inside a secret).
  EXPECT_EQ(only_error(std::string("1 SHA1 abc\0def\n", 15)),
            "keys:1: control character at column 11 (write a secret with such bytes in hex, with the HEX: prefix)");
  EXPECT_TRUE(contains(only_error("1 SHA1 abc\x1b" "def\n"), "keys:1: control character at column 11 "));
  EXPECT_EQ(only_error("# fine\n" + std::string(2049, 'x') + "\n"), "keys:2: line longer than 2048 bytes");
  EXPECT_TRUE(parse("# " + std::string(2000, 'x') + "\n").ok());
}

TEST(Keys, ReportsEveryErrorAtOnce) {
  const KeysFile f = parse(
      "1 AES128 HEX:2B7E151628AED2A6ABF7158809CF4F3C\n"
      "0 SHA1 secretsecretsecret\n"
      "2 FOO secretsecretsecret\n"
      "3 SHA1 HEX:0\n"
      "1 MD5 secretsecretsecret\n"
      "x FOO HEX:\n"
      "4 SHA1 secretsecretsecret\n");
  EXPECT_TRUE(f.keys.empty());  // nothing of a bad file is used
  ASSERT_EQ(f.errors.size(), 7u);
  EXPECT_EQ(f.errors[0].line, 2);
  EXPECT_EQ(f.errors[1].line, 3);
  EXPECT_EQ(f.errors[2].line, 4);
  EXPECT_EQ(f.errors[3].to_string(), "keys:5: key 1 defined again (first at line 1)");
  // One line with three problems: each is said.
  EXPECT_EQ(f.errors[4].to_string(), "keys:6: the key ID (column 1, 1 character) is not a decimal number (1..4294967295)");
  EXPECT_TRUE(contains(f.errors[5].to_string(), "keys:6: unknown key type (column 3, 3 characters) (expected"));
  EXPECT_EQ(f.errors[6].to_string(), "keys:6: the key: empty secret");
}

TEST(Keys, AtMostMaxKeys) {
  std::string text;
  for (size_t i = 1; i <= kMaxKeys + 1; ++i) text += std::to_string(i) + " SHA256 ASCII:secret-number-" + std::to_string(i) + "\n";
  EXPECT_EQ(only_error(text), "keys: 257 keys, more than the 256 supported");
  const size_t cut = text.rfind(std::to_string(kMaxKeys + 1) + " ");
  EXPECT_EQ(parse(text.substr(0, cut)).keys.size(), kMaxKeys);
}

TEST(Keys, TooLargeText) {
  EXPECT_EQ(only_error(std::string(kMaxKeysFileBytes + 1, '#')), "keys: larger than 1048576 bytes: not a keys file");
}

TEST(Keys, BuildsTheTable) {
  const KeysFile f = parse(
      "7 AES128 HEX:2B7E151628AED2A6ABF7158809CF4F3C\n"
      "3 SHA1 ASCII:secretsecretsecret\n");
  ASSERT_TRUE(f.ok());
  static KeyTable table;
  std::string error;
  ASSERT_TRUE(build_key_table(f.keys, table, &error)) << error;
  EXPECT_EQ(table.count, 2u);
  ASSERT_NE(table.find(7), nullptr);
  EXPECT_EQ(table.find(7)->type, MacType::kAes128Cmac);
  EXPECT_EQ(table.find(3)->type, MacType::kSha1);
  EXPECT_EQ(table.find(5), nullptr);
  // The table's key is the file's: RFC 4493 example 2 through it.
  const uint8_t msg[16] = {0x6b, 0xc1, 0xbe, 0xe2, 0x2e, 0x40, 0x9f, 0x96, 0xe9, 0x3d, 0x7e, 0x11, 0x73, 0x93, 0x17, 0x2a};
  const uint8_t want[16] = {0x07, 0x0a, 0x16, 0xb4, 0x6b, 0x4d, 0x41, 0x44, 0xf7, 0x9b, 0xdd, 0x9d, 0xd0, 0x4a, 0x28, 0x7c};
  EXPECT_TRUE(mac_verify(*table.find(7), msg, sizeof msg, want, sizeof want));
  // Entries that do not make keys (built by hand, not by the parser) fail the whole table.
  std::vector<KeyEntry> bad = f.keys;
  bad.push_back({9, MacType::kAes128Cmac, {1, 2, 3}, 12, false});
  EXPECT_FALSE(build_key_table(bad, table, &error));
  EXPECT_EQ(error, "key 9 (line 12): not a valid AES128 key");
  EXPECT_EQ(table.count, 0u);
  // The keys built before the bad one are wiped, not only forgotten.
  const auto* bytes = reinterpret_cast<const unsigned char*>(&table);
  EXPECT_TRUE(std::all_of(bytes, bytes + sizeof table, [](unsigned char b) { return b == 0; }));
  std::vector<KeyEntry> dup = f.keys;
  dup.push_back(f.keys[0]);
  EXPECT_FALSE(build_key_table(dup, table, &error));
  EXPECT_TRUE(contains(error, "defined twice"));
}

KeyTableFingerprint fingerprint_of(const std::string& text) {
  const KeysFile f = parse(text);
  EXPECT_TRUE(f.ok()) << text;
  static KeyTable table;  // large: not on the stack
  std::string error;
  EXPECT_TRUE(build_key_table(f.keys, table, &error)) << error;
  return fingerprint(table);
}

TEST(Keys, TableFingerprint) {
  // The format, computed independently (Python hashlib):
  //   k(id, type, s) = SHA-256("ntp-appliance key v1\0" || be32 id || type "\0" || be32 len(s) || s)
  //   table = SHA-256("ntp-appliance key table v1\0" || be32 count || k... in ID order)[:16]
  const std::string two =
      "2 HMAC-SHA256 ASCII:secret\n"
      "1 AES128 HEX:2B7E151628AED2A6ABF7158809CF4F3C\n";
  EXPECT_EQ(fingerprint_hex(fingerprint_of(two)), "1881d0ec50501f16d1b00d714ea60d59");
  // The same keys written in another order, case or encoding: the same table.
  EXPECT_EQ(fingerprint_of(two), fingerprint_of("1 aes128 HEX:2b7e151628aed2a6abf7158809cf4f3c\n"
                                                 "# a comment\n"
                                                 "2 hmac-sha256 HEX:736563726574\n"));
  // Empty: the documented constant, also for a default table.
  EXPECT_EQ(fingerprint_of(""), kEmptyKeyTableFingerprint);
  EXPECT_EQ(fingerprint(KeyTable{}), kEmptyKeyTableFingerprint);
  EXPECT_EQ(fingerprint_hex(kEmptyKeyTableFingerprint), "b50919441b5cf9f46d5ac38903801dd7");
  // Any difference in a secret, a type or an ID changes it, and no two of these collide.
  const std::vector<std::string> variants = {
      two,
      "2 HMAC-SHA256 ASCII:secreT\n1 AES128 HEX:2B7E151628AED2A6ABF7158809CF4F3C\n",    // secret
      "2 HMAC-SHA256 ASCII:secret\n1 AES128 HEX:2B7E151628AED2A6ABF7158809CF4F3D\n",    // AES secret
      "2 HMAC-SHA256 ASCII:secret0\n1 AES128 HEX:2B7E151628AED2A6ABF7158809CF4F3C\n",   // longer secret
      "2 SHA256 ASCII:secret\n1 AES128 HEX:2B7E151628AED2A6ABF7158809CF4F3C\n",         // type
      "3 HMAC-SHA256 ASCII:secret\n1 AES128 HEX:2B7E151628AED2A6ABF7158809CF4F3C\n",    // ID
      "2 HMAC-SHA256 ASCII:secret\n",                                                  // one key fewer
      "1 HMAC-SHA256 ASCII:secret\n2 AES128 HEX:2B7E151628AED2A6ABF7158809CF4F3C\n",    // IDs swapped
      "1 MD5 ASCII:a\n",
      "1 MD5 ASCII:b\n",
      "1 SHA1 ASCII:a\n",
      "2 MD5 ASCII:a\n",
  };
  std::vector<KeyTableFingerprint> seen;
  for (const auto& v : variants) seen.push_back(fingerprint_of(v));
  seen.push_back(kEmptyKeyTableFingerprint);
  for (size_t i = 0; i < seen.size(); ++i)
    for (size_t j = i + 1; j < seen.size(); ++j) EXPECT_NE(seen[i], seen[j]) << i << " vs " << j;
  // The fingerprint does not show the secret.
  const std::string fp = fingerprint_hex(fingerprint_of("1 SHA1 HEX:00112233445566778899aabbccddeeff\n"));
  EXPECT_EQ(fp.size(), 32u);
  EXPECT_FALSE(contains(fp, "00112233")) << fp;
}

// load_keys on real files: a private directory of the test's own.
class KeysFileTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/test_keys.XXXXXX";
    ASSERT_NE(mkdtemp(tmpl), nullptr);
    dir_ = tmpl;
  }
  void TearDown() override {
    for (const char* n : {"keys", "link", "sub"}) {
      ::unlink((dir_ + "/" + n).c_str());
      ::rmdir((dir_ + "/" + n).c_str());
    }
    ::rmdir(dir_.c_str());
  }
  std::string write(const std::string& text, mode_t mode) {
    const std::string p = dir_ + "/keys";
    std::ofstream(p) << text;
    EXPECT_EQ(::chmod(p.c_str(), mode), 0);
    return p;
  }
  std::string dir_;
};

const char* kGood = "1 AES128 HEX:2B7E151628AED2A6ABF7158809CF4F3C\n";

TEST_F(KeysFileTest, LoadsAPrivateFile) {
  const KeysFile f = load_keys(write(kGood, 0600));
  ASSERT_TRUE(f.ok()) << f.errors[0].to_string();
  ASSERT_EQ(f.keys.size(), 1u);
  EXPECT_EQ(f.keys[0].id, 1u);
  EXPECT_TRUE(load_keys(write(kGood, 0400)).ok());
  EXPECT_TRUE(load_keys(write(kGood, 0700)).ok());  // execute bits reveal nothing
}

TEST_F(KeysFileTest, RefusesGroupOrOtherAccess) {
  const uid_t me = ::geteuid();
  for (mode_t mode : {0644, 0640, 0604, 0620, 0602, 0666}) {
    const std::string p = write(kGood, mode);
    const KeysFile f = load_keys(p);
    ASSERT_EQ(f.errors.size(), 1u) << std::oct << mode;
    EXPECT_TRUE(f.keys.empty());
    char m[8];
    std::snprintf(m, sizeof m, "%04o", static_cast<unsigned>(mode));
    const std::string e = f.errors[0].to_string();
    EXPECT_TRUE(contains(e, p + ": readable or writable by group or other (mode " + std::string(m) + ", owner "))
        << e;
    EXPECT_TRUE(contains(e, "(uid " + std::to_string(me) + ")")) << e;
    EXPECT_TRUE(contains(e, "chmod 600")) << e;
  }
}

TEST_F(KeysFileTest, RefusesAnotherUsersFile) {
  if (::geteuid() != 0) GTEST_SKIP() << "needs root to chown to another user";
  const std::string p = write(kGood, 0600);
  ASSERT_EQ(::chown(p.c_str(), 65534, 65534), 0);
  // Root may read it, but the file is not root's: someone else could rewrite our keys.
  // (As root, geteuid() is 0: the rule is "owned by root or by us".)
  const KeysFile f = load_keys(p);
  ASSERT_EQ(f.errors.size(), 1u);
  EXPECT_TRUE(contains(f.errors[0].to_string(), "owned by neither root nor this process's user")) << f.errors[0].to_string();
  EXPECT_TRUE(contains(f.errors[0].to_string(), "(uid 65534)"));
  // The dataplane (root) reading the control plane's file: that user is named.
  EXPECT_TRUE(load_keys(p, 65534).ok());
  const KeysFile g = load_keys(p, 12345);
  ASSERT_EQ(g.errors.size(), 1u);
  EXPECT_TRUE(contains(g.errors[0].to_string(), "nor uid 12345 (mode 0600, owner ")) << g.errors[0].to_string();
}

TEST_F(KeysFileTest, ReportsModeAndContentTogether) {
  const KeysFile f = load_keys(write("1 AES128 HEX:00\n0 SHA1 abcdefabcdefabcdef\n", 0644));
  ASSERT_EQ(f.errors.size(), 3u);
  EXPECT_EQ(f.errors[0].line, 0);  // the mode, first
  EXPECT_TRUE(contains(f.errors[0].message, "mode 0644"));
  EXPECT_EQ(f.errors[1].line, 1);
  EXPECT_EQ(f.errors[2].line, 2);
  EXPECT_TRUE(f.keys.empty());
}

TEST_F(KeysFileTest, MissingSymlinkOrDirectory) {
  KeysFile f = load_keys(dir_ + "/absent");
  ASSERT_EQ(f.errors.size(), 1u);
  EXPECT_EQ(f.errors[0].to_string(), dir_ + "/absent: cannot open: No such file or directory");

  const std::string p = write(kGood, 0600);
  ASSERT_EQ(::symlink(p.c_str(), (dir_ + "/link").c_str()), 0);
  f = load_keys(dir_ + "/link");
  ASSERT_EQ(f.errors.size(), 1u);
  EXPECT_EQ(f.errors[0].to_string(), dir_ + "/link: is a symbolic link: name the file itself");

  ASSERT_EQ(::mkdir((dir_ + "/sub").c_str(), 0700), 0);
  f = load_keys(dir_ + "/sub");
  ASSERT_EQ(f.errors.size(), 1u);
  EXPECT_EQ(f.errors[0].to_string(), dir_ + "/sub: not a regular file");
}

}  // namespace
}  // namespace ntp::crypto
