// The NTS cookie keys file (see nts_keys.h).
#include "crypto/nts_keys.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <charconv>
#include <cstdio>
#include <cstring>
#include <set>

namespace ntp::crypto {
namespace {

constexpr std::string_view kAlgorithm = "AES-SIV-CMAC-256";
constexpr std::string_view kHexPrefix = "HEX:";

bool iequals(std::string_view a, std::string_view b) {
  return a.size() == b.size() && std::equal(a.begin(), a.end(), b.begin(), [](char x, char y) {
           return std::toupper(static_cast<unsigned char>(x)) == std::toupper(static_cast<unsigned char>(y));
         });
}

int hex_digit(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

template <class T>
bool parse_decimal(std::string_view s, T& out) {
  if (s.empty() || s.size() > 20) return false;
  for (char c : s)
    if (c < '0' || c > '9') return false;
  const auto r = std::from_chars(s.data(), s.data() + s.size(), out);
  return r.ec == std::errc() && r.ptr == s.data() + s.size();
}

}  // namespace

CookieKeysFile parse_cookie_keys(std::string_view text, std::string_view path) {
  CookieKeysFile out;
  auto error = [&](int line, std::string m) { out.errors.push_back({std::string(path), line, std::move(m)}); };
  std::set<uint32_t> ids;
  int line_no = 0;
  for (size_t pos = 0; pos <= text.size();) {
    size_t end = text.find('\n', pos);
    if (end == std::string_view::npos) end = text.size();
    std::string_view line = text.substr(pos, end - pos);
    pos = end + 1;
    ++line_no;
    if (end == text.size() && line.empty()) break;
    std::vector<std::string_view> f;
    for (size_t i = 0; i < line.size();) {
      while (i < line.size() && (line[i] == ' ' || line[i] == '\t' || line[i] == '\r')) ++i;
      size_t j = i;
      while (j < line.size() && line[j] != ' ' && line[j] != '\t' && line[j] != '\r') ++j;
      if (j > i) f.push_back(line.substr(i, j - i));
      i = j;
    }
    if (f.empty() || f[0][0] == '#') continue;
    if (f.size() != 4) {
      error(line_no, std::to_string(f.size()) + " fields, not 4 (ID ALGORITHM HEX:KEY CREATED)");
      continue;
    }
    CookieKeyEntry e;
    e.line = line_no;
    bool ok = true;
    if (!parse_decimal(f[0], e.id) || e.id == 0) {
      error(line_no, "field 1 (ID): not a decimal number in 1..4294967295");
      ok = false;
    } else if (!ids.insert(e.id).second) {
      error(line_no, "key " + std::to_string(e.id) + " defined twice");
      ok = false;
    }
    if (!iequals(f[1], kAlgorithm)) {
      error(line_no, "field 2 (ALGORITHM): not AES-SIV-CMAC-256");
      ok = false;
    }
    const std::string_view key = f[2];
    bool key_ok = key.size() == kHexPrefix.size() + 2 * kSivKeyBytes && iequals(key.substr(0, 4), kHexPrefix);
    for (size_t i = 0; key_ok && i < kSivKeyBytes; ++i) {
      const int hi = hex_digit(key[4 + 2 * i]), lo = hex_digit(key[5 + 2 * i]);
      if (hi < 0 || lo < 0) key_ok = false;
      else e.secret[i] = static_cast<uint8_t>(hi << 4 | lo);
    }
    if (!key_ok) {
      error(line_no, "field 3 (KEY, " + std::to_string(key.size()) + " characters): not HEX: and 64 hex digits");
      ok = false;
    }
    if (!parse_decimal(f[3], e.created_s) || e.created_s > (int64_t{1} << 40)) {
      error(line_no, "field 4 (CREATED): not Unix seconds");
      ok = false;
    } else if (!out.keys.empty() && e.created_s < out.keys.back().created_s) {
      error(line_no, "created before the key above it: keys go oldest first (the last one seals)");
      ok = false;
    }
    if (ok) out.keys.push_back(e);
  }
  if (out.keys.size() > kMaxCookieKeys)
    error(0, std::to_string(out.keys.size()) + " keys, more than the " + std::to_string(kMaxCookieKeys) + " kept");
  if (out.keys.empty() && out.errors.empty()) error(0, "no key");
  if (!out.errors.empty()) out.keys.clear();
  return out;
}

CookieKeysFile load_cookie_keys(const std::string& path, std::optional<uint32_t> also_owner) {
  CookieKeysFile out;
  std::vector<KeyError> refused;
  SecretText text;
  if (!read_secret_file(path, also_owner, kMaxCookieKeysFileBytes, text, refused)) {
    struct stat st{};
    out.absent = ::lstat(path.c_str(), &st) != 0 && errno == ENOENT;
    out.errors = std::move(refused);
    return out;
  }
  out = parse_cookie_keys(text.view(), path);
  if (!refused.empty()) {
    out.errors.insert(out.errors.begin(), refused.begin(), refused.end());
    out.keys.clear();
  }
  return out;
}

void format_cookie_keys(const std::vector<CookieKeyEntry>& keys, SecretText& out) {
  static constexpr char kHeader[] = "# NTS cookie keys, oldest first: the last one seals new cookies\n";
  // ID (10) + algorithm (16) + HEX: + 64 + created (20) + blanks and newline.
  constexpr size_t kLineMax = 10 + 1 + 16 + 1 + 4 + 64 + 1 + 20 + 1;
  out.wipe();
  out.text.assign(sizeof kHeader - 1 + keys.size() * kLineMax, '\0');  // sized once: never grows
  std::memcpy(out.text.data(), kHeader, sizeof kHeader - 1);
  out.len = sizeof kHeader - 1;
  for (const CookieKeyEntry& e : keys) {
    char* p = out.text.data() + out.len;
    int n = std::snprintf(p, kLineMax + 1, "%u AES-SIV-CMAC-256 HEX:", e.id);
    for (size_t i = 0; i < kSivKeyBytes; ++i) n += std::snprintf(p + n, 3, "%02x", e.secret[i]);
    n += std::snprintf(p + n, kLineMax + 1 - static_cast<size_t>(n), " %lld\n", static_cast<long long>(e.created_s));
    out.len += static_cast<size_t>(n);
  }
}

bool rotate_cookie_keys(std::vector<CookieKeyEntry>& keys, int64_t now_s, int64_t rotate_s, size_t keep_old,
                        const std::function<void(uint8_t*, size_t)>& random) {
  keep_old = std::min(keep_old, kMaxCookieKeys - 1);
  bool changed = false;
  const bool due = keys.empty() || (rotate_s > 0 && now_s - keys.back().created_s >= rotate_s);
  if (due) {
    CookieKeyEntry e;
    uint32_t id = keys.empty() ? 0 : keys.back().id;
    auto in_use = [&keys](uint32_t x) {
      return std::any_of(keys.begin(), keys.end(), [x](const CookieKeyEntry& k) { return k.id == x; });
    };
    do {
      ++id;
      if (id == 0) id = 1;
    } while (in_use(id));
    e.id = id;
    random(e.secret, sizeof e.secret);
    e.created_s = now_s;
    keys.push_back(e);
    changed = true;
  }
  if (keys.size() > keep_old + 1) {
    keys.erase(keys.begin(), keys.begin() + static_cast<std::ptrdiff_t>(keys.size() - (keep_old + 1)));
    changed = true;
  }
  return changed;
}

bool build_cookie_ring(const std::vector<CookieKeyEntry>& keys, CookieKeyRing& ring, std::string* error) {
  if (keys.size() > kMaxCookieKeys) {
    ring.wipe();
    if (error) *error = "more than " + std::to_string(kMaxCookieKeys) + " cookie keys";
    return false;
  }
  proto::CookieKeysData d;
  cookie_keys_to_abi(keys, d);
  const bool ok = cookie_ring_from_abi(d, ring, error);
  wipe_secret(&d, sizeof d);
  return ok;
}

bool write_cookie_keys(const std::string& path, const std::vector<CookieKeyEntry>& keys, std::string& err) {
  SecretText text;
  format_cookie_keys(keys, text);
  const size_t slash = path.rfind('/');
  const std::string dir = slash == std::string::npos || slash == 0 ? (slash == 0 ? "/" : ".") : path.substr(0, slash);
  const std::string tmp = path + ".new";
  ::unlink(tmp.c_str());
  const int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
  if (fd < 0) {
    err = tmp + ": cannot create: " + std::strerror(errno);
    return false;
  }
  size_t done = 0;
  const std::string_view v = text.view();
  while (done < v.size()) {
    const ssize_t n = ::write(fd, v.data() + done, v.size() - done);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) break;
    done += static_cast<size_t>(n);
  }
  const bool written = done == v.size() && ::fsync(fd) == 0;
  const int saved = errno;
  ::close(fd);
  if (!written || ::rename(tmp.c_str(), path.c_str()) != 0) {
    err = path + ": cannot write: " + std::strerror(written ? errno : saved);
    ::unlink(tmp.c_str());
    return false;
  }
  if (const int d = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC); d >= 0) {
    ::fsync(d);  // the rename itself survives a crash
    ::close(d);
  }
  return true;
}

static_assert(kMaxCookieKeys == proto::kMaxCookieKeysAbi && kSivKeyBytes == sizeof(proto::CookieKeyAbi::secret));

void cookie_keys_to_abi(const std::vector<CookieKeyEntry>& keys, proto::CookieKeysData& out) {
  wipe_secret(out.keys, sizeof out.keys);
  out.count = static_cast<uint32_t>(std::min<size_t>(keys.size(), kMaxCookieKeys));
  // The newest kMaxCookieKeys, oldest first (rotate_cookie_keys keeps no more).
  const size_t first = keys.size() - out.count;
  for (uint32_t i = 0; i < out.count; ++i) {
    out.keys[i].id = keys[first + i].id;
    std::memcpy(out.keys[i].secret, keys[first + i].secret, kSivKeyBytes);
  }
}

bool cookie_ring_from_abi(const proto::CookieKeysData& in, CookieKeyRing& ring, std::string* error) {
  ring.wipe();
  if (in.count == 0 || in.count > kMaxCookieKeys) {
    if (error) *error = in.count == 0 ? "no cookie key" : "more than " + std::to_string(kMaxCookieKeys) + " cookie keys";
    return false;
  }
  uint32_t ids[kMaxCookieKeys];
  uint8_t secrets[kMaxCookieKeys][kSivKeyBytes];
  for (uint32_t i = 0; i < in.count; ++i) {
    ids[i] = in.keys[i].id;
    std::memcpy(secrets[i], in.keys[i].secret, kSivKeyBytes);
  }
  const bool ok = cookie_ring_init(ring, ids, secrets, in.count, in.count - 1);
  wipe_secret(secrets, sizeof secrets);
  if (!ok && error) *error = "cookie keys with ID 0 or an ID twice";
  return ok;
}

std::shared_ptr<CookieKeyRing> load_cookie_ring(const std::string& path, std::optional<uint32_t> also_owner,
                                                std::vector<std::string>& errors) {
  const CookieKeysFile f = load_cookie_keys(path, also_owner);
  for (const KeyError& e : f.errors) errors.push_back(e.to_string());
  if (!f.ok()) return nullptr;
  auto ring = std::make_shared<CookieKeyRing>();
  if (std::string error; !build_cookie_ring(f.keys, *ring, &error)) {
    errors.push_back(path + ": " + error);
    return nullptr;  // ~CookieKeyRing wipes it
  }
  return ring;
}

}  // namespace ntp::crypto
