// The NTS cookie keys file: the keys a server seals and opens cookies with,
// so that a restarted server still opens the cookies it handed out, and so
// that several servers behind one anycast address can share them (chrony's
// ntsdumpdir with ntsrotate 0). One key per line, oldest first; the last one
// seals new cookies:
//
//     # comment
//     1001 AES-SIV-CMAC-256 HEX:<64 hex digits> 1764633600
//
//   ID         decimal, 1..4294967295, unique
//   ALGORITHM  AES-SIV-CMAC-256 (case-insensitive): the cookie's AEAD
//   KEY        HEX: and 32 bytes in hex
//   CREATED    Unix seconds, not decreasing down the file
//
// At most kMaxCookieKeys. Every problem is reported with file:line, and no
// message quotes a key. The file is read as load_keys reads the keys file
// (read_secret_file: not a symlink, a regular file of root's, ours or the
// other daemon's user, no group or other access).
//
// Rotation is pure (rotate_cookie_keys): a new key when the newest is older
// than the rotation interval, the oldest dropped beyond what is kept.
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "crypto/keys.h"
#include "proto/channel_abi.h"
#include "crypto/nts_cookie.h"

namespace ntp::crypto {

inline constexpr size_t kMaxCookieKeysFileBytes = 64 * 1024;

struct CookieKeyEntry {
  uint32_t id = 0;
  uint8_t secret[kSivKeyBytes] = {};
  int64_t created_s = 0;  // Unix seconds
  int line = 0;           // where it was read (0: made here)
  CookieKeyEntry() = default;
  CookieKeyEntry(const CookieKeyEntry&) = default;
  CookieKeyEntry& operator=(const CookieKeyEntry&) = default;
  ~CookieKeyEntry() { wipe_secret(secret, sizeof secret); }
};

struct CookieKeysFile {
  std::vector<CookieKeyEntry> keys;  // oldest first; empty when there is an error
  std::vector<KeyError> errors;
  bool absent = false;  // the file does not exist (and errors says so): ntp-control may make it
  bool ok() const { return errors.empty(); }
};

CookieKeysFile parse_cookie_keys(std::string_view text, std::string_view path);
CookieKeysFile load_cookie_keys(const std::string& path, std::optional<uint32_t> also_owner = std::nullopt);

// The file's text for keys (what parse_cookie_keys reads back), in a buffer
// wiped when it goes.
void format_cookie_keys(const std::vector<CookieKeyEntry>& keys, SecretText& out);

// One rotation step at now_s: when there is no key, or the newest was
// created rotate_s or more before now_s, a new key is appended (ID: the
// newest's + 1, skipping 0 and IDs in use; secret from `random`, which
// must fill all of it, from getrandom in the daemon), then the oldest are
// dropped so that at most keep_old + 1 remain (keep_old + 1 <=
// kMaxCookieKeys). rotate_s 0: never rotate (keys shared from elsewhere).
// True when keys changed.
bool rotate_cookie_keys(std::vector<CookieKeyEntry>& keys, int64_t now_s, int64_t rotate_s, size_t keep_old,
                        const std::function<void(uint8_t*, size_t)>& random);

// The ring of keys (the last one seals). False with *error when there is no
// key or more than kMaxCookieKeys.
bool build_cookie_ring(const std::vector<CookieKeyEntry>& keys, CookieKeyRing& ring, std::string* error);

// keys as the file at path, replaced whole (a temporary file of mode 0600
// in its directory, synced, renamed over it, the directory synced): a
// reader sees the old file or the new one, never a part. False with err.
bool write_cookie_keys(const std::string& path, const std::vector<CookieKeyEntry>& keys, std::string& err);

// The keys as ntp-control publishes them in the segment, and the ring the
// dataplane builds of what it read there (false with *error: none, too
// many, an ID 0 or twice). Both wipe what they copy through.
void cookie_keys_to_abi(const std::vector<CookieKeyEntry>& keys, proto::CookieKeysData& out);
bool cookie_ring_from_abi(const proto::CookieKeysData& in, CookieKeyRing& ring, std::string* error);

// The file's ring, as both daemons read it (load_cookie_keys, then
// build_cookie_ring): null, with each error as file:line: message, when the
// file or its keys have any.
std::shared_ptr<CookieKeyRing> load_cookie_ring(const std::string& path, std::optional<uint32_t> also_owner,
                                                std::vector<std::string>& errors);

}  // namespace ntp::crypto
