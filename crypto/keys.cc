#include "crypto/keys.h"

#include <fcntl.h>
#include <pwd.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <map>

namespace ntp::crypto {
namespace {

struct TypeName {
  const char* name;
  MacType type;
};
constexpr TypeName kTypes[] = {
    {"AES128", MacType::kAes128Cmac}, {"HMAC-SHA256", MacType::kHmacSha256}, {"SHA256", MacType::kSha256},
    {"SHA1", MacType::kSha1},         {"MD5", MacType::kMd5},
};
constexpr const char* kTypeList = "AES128, HMAC-SHA256, SHA256, SHA1, MD5";

bool iequal(std::string_view a, std::string_view b) {
  return a.size() == b.size() && std::equal(a.begin(), a.end(), b.begin(), [](char x, char y) {
           auto up = [](char c) { return c >= 'a' && c <= 'z' ? static_cast<char>(c - 'a' + 'A') : c; };
           return up(x) == up(y);
         });
}

bool is_blank(char c) { return c == ' ' || c == '\t' || c == '\r'; }
bool is_hex(char c) { return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F'); }
int hex_value(char c) { return c <= '9' ? c - '0' : (c | 0x20) - 'a' + 10; }

// A field in the wrong column may be the secret ("1 ASCII:topsecret pw",
// "hunter2 MD5 HEX:00"), however short: a message quotes a key ID only once
// it parsed as a number in range, and a type only when it is one of the
// known names; anything else is named by its column and length alone.
const char* known_type_name(std::string_view field) {
  for (const auto& t : kTypes)
    if (iequal(field, t.name)) return t.name;
  return nullptr;
}

bool looks_like_key(std::string_view field) { return field.substr(0, 4) == "HEX:" || field.substr(0, 6) == "ASCII:"; }

struct Field {
  std::string_view text;
  size_t column;  // 1-based
};

// "column 9, 7 characters": where a field is, never what it holds.
std::string where(const Field& f, const char* unit = "character") {
  return "column " + std::to_string(f.column) + ", " + std::to_string(f.text.size()) + " " + unit +
         (f.text.size() == 1 ? "" : "s");
}

// Why a field may be in the wrong column, said without its text: a type
// name where the ID or (the TYPE field not being one) the KEY belongs, or a
// key's prefix in this field.
std::string column_hint(const std::vector<Field>& fields, size_t index) {
  const char* in_id = known_type_name(fields[0].text);
  const char* in_key = known_type_name(fields[1].text) == nullptr ? known_type_name(fields[2].text) : nullptr;
  if (in_id != nullptr) return std::string("; the ID field is the type name ") + in_id + ": the order is `ID TYPE KEY`";
  if (in_key != nullptr) return std::string("; the KEY field is the type name ") + in_key + ": the order is `ID TYPE KEY`";
  if (looks_like_key(fields[index].text)) return "; it starts like a key (a HEX: or ASCII: prefix): the order is `ID TYPE KEY`";
  return "";
}

class Parser {
 public:
  explicit Parser(std::string_view path) : path_(path) {}

  KeysFile run(std::string_view text) {
    if (text.size() > kMaxKeysFileBytes) {
      error(0, "larger than " + std::to_string(kMaxKeysFileBytes) + " bytes: not a keys file");
      return finish();
    }
    int line_no = 0;
    size_t pos = 0;
    while (pos < text.size()) {
      size_t nl = text.find('\n', pos);
      if (nl == std::string_view::npos) nl = text.size();
      line(++line_no, text.substr(pos, nl - pos));
      pos = nl + 1;
    }
    return finish();
  }

 private:
  void error(int line, std::string message) { out_.errors.push_back({std::string(path_), line, std::move(message)}); }
  void warn(int line, std::string message) { out_.warnings.push_back({std::string(path_), line, std::move(message)}); }

  void line(int n, std::string_view s) {
    if (s.size() > kMaxKeysLineBytes) {
      error(n, "line longer than " + std::to_string(kMaxKeysLineBytes) + " bytes");
      return;
    }
    std::vector<Field> fields;
    for (size_t i = 0; i < s.size();) {
      const unsigned char c = static_cast<unsigned char>(s[i]);
      if (is_blank(s[i])) {
        ++i;
        continue;
      }
      if (fields.empty() && std::strchr("#!;%", s[i]) != nullptr) return;  // a comment line (chrony's set)
      if (c < 0x20 || c == 0x7f) {
        // Its column, not its byte: it may sit inside a secret.
        error(n, "control character at column " + std::to_string(i + 1) +
                     " (write a secret with such bytes in hex, with the HEX: prefix)");
        return;
      }
      size_t j = i;
      while (j < s.size() && !is_blank(s[j]) && static_cast<unsigned char>(s[j]) >= 0x20 && s[j] != 0x7f) ++j;
      fields.push_back({s.substr(i, j - i), i + 1});
      i = j;
    }
    if (fields.empty()) return;
    if (fields.size() != 3) {
      std::string m = "expected `ID TYPE KEY`, found " + std::to_string(fields.size()) + " field" +
                      (fields.size() == 1 ? "" : "s");
      if (fields.size() == 2) m += " (chrony's `ID KEY` form, MD5 implied, is not accepted: write the type)";
      if (fields.size() > 3) m += " (a key has no blanks; comments take a line of their own, starting with #)";
      error(n, m);
      return;
    }
    KeyEntry e;
    e.line = n;
    bool ok = parse_id(n, fields, e.id);
    ok = parse_type(n, fields, e.id, e.type) && ok;
    ok = parse_secret(n, fields[2], e) && ok;
    if (!ok) return;
    if (auto [it, fresh] = first_line_.emplace(e.id, n); !fresh) {
      error(n, "key " + std::to_string(e.id) + " defined again (first at line " + std::to_string(it->second) + ")");
      return;
    }
    e.weak = mac_type_is_weak(e.type);
    if (e.weak)
      warn(n, "key " + std::to_string(e.id) + ": " + mac_type_name(e.type) +
                  " is weak, for interop with legacy peers only (prefer AES128)");
    if (e.type != MacType::kAes128Cmac && e.secret.size() < 16)
      warn(n, "key " + std::to_string(e.id) + ": a secret of " + std::to_string(e.secret.size()) +
                  " bytes is short (use 16 or more random bytes, e.g. from `chronyc keygen`)");
    out_.keys.push_back(std::move(e));
  }

  bool parse_id(int n, const std::vector<Field>& fields, uint32_t& id) {
    const Field& f = fields[0];
    const bool all_digits = std::all_of(f.text.begin(), f.text.end(), [](char c) { return c >= '0' && c <= '9'; });
    if (!all_digits) {
      error(n, "the key ID (" + where(f) + ") is not a decimal number (1..4294967295)" + column_hint(fields, 0));
      return false;
    }
    uint64_t v = 0;
    size_t significant = 0;  // leading zeros do not count ("0007" is 7)
    for (char c : f.text) {
      if (significant == 0 && c == '0') continue;
      if (++significant > 10) break;
      v = v * 10 + static_cast<uint64_t>(c - '0');
    }
    if (significant > 10 || v > 0xFFFFFFFFull) {
      error(n, "the key ID (" + where(f, "digit") + ") is out of range 1..4294967295");
      return false;
    }
    if (v == 0) {
      error(n, "key ID 0 is reserved: it marks a crypto-NAK (RFC 5905 section 7.4); use 1..4294967295");
      return false;
    }
    id = static_cast<uint32_t>(v);
    return true;
  }

  bool parse_type(int n, const std::vector<Field>& fields, uint32_t id, MacType& type) {
    const Field& f = fields[1];
    for (const auto& t : kTypes)
      if (iequal(f.text, t.name)) {
        type = t.type;
        return true;
      }
    std::string m = "unknown key type (" + where(f) + ")";
    if (id != 0) m += " for key " + std::to_string(id);
    m += " (expected one of " + std::string(kTypeList) + ")";
    // NTPsec's names for CMAC, said in our spelling, not the field's.
    if (iequal(f.text, "AES")) m += "; NTPsec's AES is AES128 here";
    else if (iequal(f.text, "AES128CMAC")) m += "; NTPsec's AES128CMAC is AES128 here";
    else m += column_hint(fields, 1);
    error(n, m);
    return false;
  }

  bool parse_secret(int n, Field f, KeyEntry& e) {
    const std::string who = e.id != 0 ? "key " + std::to_string(e.id) : "the key";
    std::string_view v = f.text;
    bool hex = false;
    if (v.substr(0, 4) == "HEX:") {
      hex = true;
      v.remove_prefix(4);
    } else if (v.substr(0, 6) == "ASCII:") {
      v.remove_prefix(6);
    } else if (v.size() >= 32 && v.size() % 2 == 0 && std::all_of(v.begin(), v.end(), is_hex)) {
      warn(n, who + ": the key looks like hex but has no HEX: prefix; it is used as ASCII text, as chrony does "
                    "(NTPsec would read it as hex)");
    }
    if (v.empty()) {
      error(n, who + ": empty secret");
      return false;
    }
    if (hex) {
      if (v.size() % 2 != 0) {
        error(n, who + ": HEX: needs an even number of hex digits, found " + std::to_string(v.size()));
        return false;
      }
      for (size_t i = 0; i < v.size(); ++i)
        if (!is_hex(v[i])) {
          // The column, never the character: the message must not leak the secret.
          error(n, who + ": not a hex digit at column " + std::to_string(f.column + 4 + i));
          return false;
        }
      e.secret.resize(v.size() / 2);
      for (size_t i = 0; i < e.secret.size(); ++i)
        e.secret[i] = static_cast<uint8_t>(hex_value(v[2 * i]) << 4 | hex_value(v[2 * i + 1]));
    } else {
      e.secret.assign(v.begin(), v.end());
    }
    if (e.secret.size() > kMaxSecretBytes) {
      error(n, who + ": a secret of " + std::to_string(e.secret.size()) + " bytes is longer than " +
                   std::to_string(kMaxSecretBytes));
      return false;
    }
    if (e.type == MacType::kAes128Cmac && e.secret.size() != kAes128KeyBytes) {
      error(n, who + ": an AES128 key is exactly 16 bytes (128 bits, RFC 8573), this one is " +
                   std::to_string(e.secret.size()) + " (write HEX: and 32 hex digits)");
      return false;
    }
    return true;
  }

  KeysFile finish() {
    if (out_.keys.size() > kMaxKeys)
      error(0, std::to_string(out_.keys.size()) + " keys, more than the " + std::to_string(kMaxKeys) + " supported");
    if (!out_.errors.empty()) {
      out_.keys.clear();
    } else {
      std::sort(out_.keys.begin(), out_.keys.end(), [](const KeyEntry& a, const KeyEntry& b) { return a.id < b.id; });
    }
    return std::move(out_);
  }

  std::string_view path_;
  KeysFile out_;
  std::map<uint32_t, int> first_line_;
};

std::string user_name(uid_t uid) {
  struct passwd pw, *found = nullptr;
  char buf[1024];
  if (getpwuid_r(uid, &pw, buf, sizeof buf, &found) == 0 && found != nullptr)
    return std::string(found->pw_name) + " (uid " + std::to_string(uid) + ")";
  return "uid " + std::to_string(uid);
}

std::string octal_mode(mode_t mode) {
  char buf[8];
  std::snprintf(buf, sizeof buf, "%04o", static_cast<unsigned>(mode & 07777));
  return buf;
}

}  // namespace

std::string KeyError::to_string() const {
  return line > 0 ? file + ":" + std::to_string(line) + ": " + message : file + ": " + message;
}

KeysFile parse_keys(std::string_view text, std::string_view path) { return Parser(path).run(text); }

bool read_secret_file(const std::string& path, std::optional<uint32_t> also_owner, size_t max_bytes, SecretText& out,
                      std::vector<KeyError>& errors) {
  out.text.clear();
  out.text.resize(max_bytes + 1, '\0');
  out.len = 0;
  auto refuse = [&](std::string m) { errors.push_back({path, 0, std::move(m)}); };
  const int fd = ::open(path.c_str(), O_RDONLY | O_NOFOLLOW | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);
  if (fd < 0) {
    refuse(errno == ELOOP ? std::string("is a symbolic link: name the file itself")
                          : std::string("cannot open: ") + std::strerror(errno));
    return false;
  }
  struct stat st{};
  if (::fstat(fd, &st) != 0) {
    refuse(std::string("cannot stat: ") + std::strerror(errno));
    ::close(fd);
    return false;
  }
  if (!S_ISREG(st.st_mode)) {
    refuse("not a regular file");
    ::close(fd);
    return false;
  }
  const std::string who = "mode " + octal_mode(st.st_mode) + ", owner " + user_name(st.st_uid);
  if (st.st_uid != 0 && st.st_uid != ::geteuid() && (!also_owner || st.st_uid != *also_owner))
    refuse("owned by neither root nor this process's user " + user_name(::geteuid()) +
           (also_owner ? " nor " + user_name(*also_owner) : std::string()) + " (" + who + "): chown it");
  if ((st.st_mode & (S_IRGRP | S_IWGRP | S_IROTH | S_IWOTH)) != 0)
    refuse("readable or writable by group or other (" + who + "): chmod 600 it");
  if (static_cast<uint64_t>(st.st_size) > max_bytes) {
    refuse("larger than " + std::to_string(max_bytes) + " bytes: not a keys file");
    ::close(fd);
    return false;
  }
  // Read straight into one buffer that never grows (a string that grew
  // would free unwiped copies of the secrets): one byte more than the file
  // may have, so a file that grew while we read is still reported.
  while (out.len < out.text.size()) {
    const ssize_t n = ::read(fd, out.text.data() + out.len, out.text.size() - out.len);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) {
      refuse(std::string("cannot read: ") + std::strerror(errno));
      ::close(fd);
      out.wipe();
      return false;
    }
    if (n == 0) break;
    out.len += static_cast<size_t>(n);
  }
  ::close(fd);
  return true;
}

KeysFile load_keys(const std::string& path, std::optional<uint32_t> also_owner) {
  std::vector<KeyError> refused;
  SecretText text;
  if (!read_secret_file(path, also_owner, kMaxKeysFileBytes, text, refused)) {
    KeysFile fail;
    fail.errors = std::move(refused);
    return fail;
  }
  KeysFile parsed = parse_keys(text.view(), path);
  if (!refused.empty()) {  // owner/mode first, then whatever else is wrong in it
    parsed.errors.insert(parsed.errors.begin(), refused.begin(), refused.end());
    parsed.keys.clear();
  }
  return parsed;
}

bool build_key_table(const std::vector<KeyEntry>& keys, KeyTable& table, std::string* error) {
  table.clear();
  if (keys.size() > kMaxKeys) {
    if (error) *error = std::to_string(keys.size()) + " keys, more than the " + std::to_string(kMaxKeys) + " supported";
    return false;
  }
  for (const KeyEntry& e : keys) {
    MacKey k;  // wiped when it goes (~MacKey)
    if (!mac_key_init(k, e.id, e.type, e.secret.data(), e.secret.size())) {
      if (error) *error = "key " + std::to_string(e.id) + " (line " + std::to_string(e.line) + "): not a valid " +
                          mac_type_name(e.type) + " key";
      table.clear();
      return false;
    }
    if (!table.insert(k)) {
      if (error) *error = "key " + std::to_string(e.id) + " (line " + std::to_string(e.line) + "): defined twice";
      table.clear();
      return false;
    }
  }
  return true;
}

}  // namespace ntp::crypto
