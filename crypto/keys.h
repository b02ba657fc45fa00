// The keys file: the symmetric keys an operator writes by hand, in chrony's
// format (chrony.conf(5), `keyfile`), one key per line:
//
//     # comment (a line whose first non-blank character is # ! ; or %)
//     1 AES128 HEX:2B7E151628AED2A6ABF7158809CF4F3C
//     2 HMAC-SHA256 ASCII:a long shared secret
//     3 SHA1 plainsecret          (no prefix: ASCII, as chrony does)
//
//   ID    decimal, 1..4294967295 (0 is the crypto-NAK's key ID, RFC 5905 7.4)
//   TYPE  AES128 (CMAC, RFC 8573, recommended), HMAC-SHA256 (the seed vendor's
//         `authentication-mode hmac-sha256`), SHA256, SHA1, MD5 (weak: legacy
//         interop); case-insensitive
//   KEY   HEX:<hex digits> or ASCII:<text> or <text>; 1..kMaxSecretBytes bytes,
//         exactly 16 for AES128. No blanks inside (they separate fields).
//
// Unlike chrony, the two-field form (`ID KEY`, MD5 implied) is an error: the
// type is written out. Every problem is reported, each with file:line, and
// no message quotes a field that may be the secret, however short: a key ID
// only once it parsed in range, a type only when it is a known name, any
// other field by its column and length.
// The file must be a regular file owned by root, by this process's user or by
// the one other user load_keys is given, neither readable nor writable by
// group or other (the secrets are shared with peers: anyone who reads them
// can impersonate us to them).
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "crypto/mac.h"

namespace ntp::crypto {

inline constexpr size_t kMaxSecretBytes = 128;
inline constexpr size_t kMaxKeysFileBytes = 1 << 20;
inline constexpr size_t kMaxKeysLineBytes = 2048;  // chrony's line buffer

// Memory that held a secret is zeroed (explicit_bzero) before it is given
// back: when a KeyEntry is destroyed, cleared or copied into a larger buffer.
template <class T>
struct WipingAllocator {
  using value_type = T;
  WipingAllocator() = default;
  template <class U>
  WipingAllocator(const WipingAllocator<U>&) noexcept {}
  T* allocate(size_t n) { return std::allocator<T>().allocate(n); }
  void deallocate(T* p, size_t n) noexcept {
    wipe_secret(p, n * sizeof(T));
    std::allocator<T>().deallocate(p, n);
  }
  template <class U>
  bool operator==(const WipingAllocator<U>&) const noexcept {
    return true;
  }
};
using SecretBytes = std::vector<uint8_t, WipingAllocator<uint8_t>>;

struct KeyEntry {
  uint32_t id = 0;
  MacType type = MacType::kNone;
  SecretBytes secret;
  int line = 0;       // where it is defined, for messages
  bool weak = false;  // MD5 or SHA1: log a warning when it is used
};

struct KeyError {
  std::string file;
  int line = 0;  // 1-based, 0 for the file as a whole
  std::string message;
  std::string to_string() const;  // "file:line: message" (":line" left out when 0)
};

struct KeysFile {
  std::vector<KeyEntry> keys;       // sorted by id, unique, at most kMaxKeys
  std::vector<KeyError> errors;     // every problem found; keys is empty when there is one
  std::vector<KeyError> warnings;   // weak types, short secrets, hex-looking ASCII
  bool ok() const { return errors.empty(); }
};

// Parse keys file text; `path` names it in messages. Never throws on any input.
KeysFile parse_keys(std::string_view text, std::string_view path);

// Open path (O_NOFOLLOW: not a symlink), check it is a regular file with the
// owner and mode above (checked on the opened descriptor), read and parse it.
// also_owner: one more user who may own it (the two daemons run as different
// users and a 0600 file has one reader: the dataplane, as root, passes the
// control plane's user, whose file it then is). A bad owner or mode is an
// error naming both, e.g.
//   "/etc/ntp/keys: readable or writable by group or other (mode 0644, owner root (uid 0)): chmod 600 it"
KeysFile load_keys(const std::string& path, std::optional<uint32_t> also_owner = std::nullopt);

// A secret file's text, in one buffer that never grows and is wiped when
// it goes (read_secret_file).
struct SecretText {
  std::string text;  // capacity fixed by read_secret_file
  size_t len = 0;
  std::string_view view() const { return std::string_view(text).substr(0, len); }
  void wipe() noexcept {
    wipe_secret(text.data(), text.size());
    len = 0;
  }
  ~SecretText() { wipe(); }
};

// What load_keys does before it parses, for any file of secrets: open
// without following a symlink, a regular file, owned by root, this
// process's user or also_owner, no group or other access (errors, each
// naming the owner and mode; the text is still read, so that the caller
// reports the file's own errors after them), at most max_bytes. False when
// it could not be read at all.
bool read_secret_file(const std::string& path, std::optional<uint32_t> also_owner, size_t max_bytes, SecretText& out,
                      std::vector<KeyError>& errors);

// The precomputed table of parsed keys (off the hot path). False, with
// *error set, if a key does not initialise or there are more than kMaxKeys.
bool build_key_table(const std::vector<KeyEntry>& keys, KeyTable& table, std::string* error);

}  // namespace ntp::crypto
