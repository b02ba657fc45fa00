// libFuzzer target: crypto::parse_keys on arbitrary text, then the keys it
// accepts through the key table and the MAC primitives; and the same text
// as an NTS cookie keys file (crypto::parse_cookie_keys, check_cookie_keys).
//
// Input: the keys file's text. Invariants:
//  - never a crash or a leak, whatever the bytes
//  - no message quotes a field that could be a secret: a field with a ':'
//    before its last byte or one of !$^&*~|{}[]<>?@=" (none in any fixed
//    text of a message), or of more than 12 of [A-Za-z0-9-] (no word of a
//    message is that long), or a short one of 3 or more [A-Za-z0-9-] with
//    both a letter and a digit ("Qx9", "hunter2") that is not part of a type
//    name, never appears in an error or a warning (only an ID in range and a
//    known type name are ever quoted)
//  - errors => no keys; no errors => keys sorted by id, unique, ids nonzero,
//    secrets 1..kMaxSecretBytes bytes (AES128: 16), weak <=> MD5/SHA1,
//    every line within the text's line count
//  - an accepted file builds a KeyTable that finds every key and no id 0
//  - for each key: the MAC of the input verifies (full and NTPv4 lengths),
//    one flipped bit does not, and a verify of any length and any bytes taken
//    from the input is answered (true only at a length the rules allow)
//  - check_mac of the bytes after the first 48 as a MAC field: kNoMac only
//    when there are none, kOk names the table's key, kUnknownKey one it lacks
#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <string_view>

#include "crypto/keys.h"
#include "crypto/nts_keys.h"

namespace {

using namespace ntp::crypto;

#define CHECK(cond)      \
  do {                   \
    if (!(cond)) abort(); \
  } while (0)

KeyTable table;

// The same text as an NTS cookie keys file: errors => no keys; keys => 1..8,
// IDs nonzero and unique, oldest first, lines in range, a ring builds, and
// what is written reads back the same; no message quotes a field longer
// than a key ID (10 digits) other than the fixed words.
void check_cookie_keys(std::string_view text, size_t lines) {
  const CookieKeysFile c = parse_cookie_keys(text, "fuzz");
  for (const KeyError& e : c.errors) {
    CHECK(e.line >= 0 && static_cast<size_t>(e.line) <= lines);
    for (size_t i = 0; i < text.size();) {
      auto blank = [](char ch) { return ch == ' ' || ch == '\t' || ch == '\r' || ch == '\n'; };
      while (i < text.size() && blank(text[i])) ++i;
      size_t j = i;
      while (j < text.size() && !blank(text[j])) ++j;
      const std::string_view field = text.substr(i, j - i);
      if (field.size() > 10 && std::string_view("1..4294967295 (ALGORITHM): AES-SIV-CMAC-256 characters):").find(field) ==
                                   std::string_view::npos)
        CHECK(e.message.find(field) == std::string::npos);
      i = j;
    }
  }
  if (!c.ok()) {
    CHECK(c.keys.empty());
    return;
  }
  CHECK(!c.keys.empty() && c.keys.size() <= kMaxCookieKeys);
  for (size_t i = 0; i < c.keys.size(); ++i) {
    CHECK(c.keys[i].id != 0 && c.keys[i].line >= 1 && static_cast<size_t>(c.keys[i].line) <= lines);
    for (size_t j = 0; j < i; ++j) CHECK(c.keys[j].id != c.keys[i].id);
    if (i > 0) CHECK(c.keys[i - 1].created_s <= c.keys[i].created_s);
  }
  CookieKeyRing ring;
  CHECK(build_cookie_ring(c.keys, ring, nullptr) && ring.sealing()->id == c.keys.back().id);
  SecretText written;
  format_cookie_keys(c.keys, written);
  const CookieKeysFile back = parse_cookie_keys(written.view(), "written");
  CHECK(back.ok() && back.keys.size() == c.keys.size());
  for (size_t i = 0; i < c.keys.size(); ++i)
    CHECK(back.keys[i].id == c.keys[i].id && back.keys[i].created_s == c.keys[i].created_s &&
          std::memcmp(back.keys[i].secret, c.keys[i].secret, kSivKeyBytes) == 0);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string_view text(reinterpret_cast<const char*>(data), size);
  const KeysFile f = parse_keys(text, "fuzz");
  size_t lines = 1;
  for (char c : text) lines += c == '\n';
  for (const KeyError& e : f.errors) CHECK(e.line >= 0 && static_cast<size_t>(e.line) <= lines && !e.message.empty());
  for (const KeyError& e : f.warnings) CHECK(e.line >= 1 && static_cast<size_t>(e.line) <= lines);
  // Fields as the parser splits them (blanks: space, tab, CR; lines: LF).
  for (size_t i = 0; i < text.size();) {
    auto blank = [](char c) { return c == ' ' || c == '\t' || c == '\r' || c == '\n'; };
    while (i < text.size() && blank(text[i])) ++i;
    size_t j = i;
    while (j < text.size() && !blank(text[j])) ++j;
    const std::string_view field = text.substr(i, j - i);
    const size_t colon = field.find(':');
    const bool word = std::all_of(field.begin(), field.end(), [](char c) {
      return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '-';
    });
    const bool letter = std::any_of(field.begin(), field.end(), [](char c) { return (c | 0x20) >= 'a' && (c | 0x20) <= 'z'; });
    const bool digit = std::any_of(field.begin(), field.end(), [](char c) { return c >= '0' && c <= '9'; });
    const bool short_mixed = word && field.size() >= 3 && letter && digit &&
                             std::string_view("AES128CMAC HMAC-SHA256 SHA1 MD5").find(field) == std::string_view::npos;
    const bool secret_like = (word && field.size() > 12) || short_mixed ||
                             (colon != std::string_view::npos && colon + 1 < field.size()) ||
                             field.find_first_of("!$^&*~|{}[]<>?@=\"") != std::string_view::npos;
    if (secret_like) {
      for (const auto* list : {&f.errors, &f.warnings})
        for (const KeyError& e : *list) CHECK(e.message.find(field) == std::string::npos);
    }
    i = j;
  }
  check_cookie_keys(text, lines);
  if (!f.ok()) {
    CHECK(f.keys.empty());
    return 0;
  }
  CHECK(f.keys.size() <= kMaxKeys);
  for (size_t i = 0; i < f.keys.size(); ++i) {
    const KeyEntry& k = f.keys[i];
    CHECK(k.id != 0);
    if (i > 0) CHECK(f.keys[i - 1].id < k.id);
    CHECK(!k.secret.empty() && k.secret.size() <= kMaxSecretBytes);
    CHECK(k.type != MacType::kAes128Cmac || k.secret.size() == kAes128KeyBytes);
    CHECK(k.weak == mac_type_is_weak(k.type));
    CHECK(k.line >= 1 && static_cast<size_t>(k.line) <= lines);
  }
  std::string error;
  CHECK(build_key_table(f.keys, table, &error));
  CHECK(table.count == f.keys.size());
  CHECK(table.find(0) == nullptr);
  for (const KeyEntry& e : f.keys) {
    const MacKey* k = table.find(e.id);
    CHECK(k != nullptr && k->id == e.id && k->type == e.type);
    uint8_t mac[kMaxDigestBytes];
    for (size_t n : {size_t{k->digest_bytes}, mac_wire_digest_bytes(*k, 4)}) {
      CHECK(mac_compute(*k, data, size, mac, n) == n);
      CHECK(mac_verify(*k, data, size, mac, n));
      mac[n - 1] ^= 0x80;
      CHECK(!mac_verify(*k, data, size, mac, n));
    }
    const size_t n = size % (kMaxDigestBytes + 1);
    const bool allowed = n == k->digest_bytes || (k->digest_bytes > kV4DigestBytes && n == kV4DigestBytes);
    if (size >= n && mac_verify(*k, data, size - n, data + (size - n), n)) CHECK(allowed);
  }
  // The input's tail after 48 bytes as a MAC field against the table.
  if (size >= 48) {
    const MacResult r = check_mac(table, data, 48, data + 48, size - 48);
    CHECK((r.check == MacCheck::kNoMac) == (size == 48));
    if (r.check == MacCheck::kOk) CHECK(r.key != nullptr && r.key->id == r.key_id && r.digest_bytes == size - 52);
    if (r.check == MacCheck::kUnknownKey) CHECK(r.key == nullptr && table.find(r.key_id) == nullptr);
  }
  return 0;
}
