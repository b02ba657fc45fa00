// libFuzzer target: ntp::config::parse on arbitrary text. The contract
// (config/config.h): never throws, any input yields a config or errors;
// inputs over kMaxFileBytes and lines with more than kMaxDotsPerLine dots
// are refused with an error. Invariants:
//  - exactly one of: a config, or at least one error
//  - every error formats, and names the file it was given
//  - a config satisfies the documented ranges (1..8 interfaces, each with
//    a prefix 1..32; burst 1..256; sysname 1..63 chars of [A-Za-z0-9._-])
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <string_view>

#include "config/config.h"

namespace {

[[noreturn]] void fail(const char* what) {
  std::fprintf(stderr, "fuzz_config: invariant violated: %s\n", what);
  std::abort();
}

bool sysname_ok(const std::string& s) {
  if (s.empty() || s.size() > 63) return false;
  for (char c : s)
    if (!((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '.' || c == '_' ||
          c == '-'))
      return false;
  return true;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace ntp::config;
  const std::string_view text(reinterpret_cast<const char*>(data), size);
  const LoadResult r = parse(text, "fuzz.toml");
  if (r.ok() == !r.errors.empty()) fail(r.ok() ? "a config and errors" : "neither a config nor an error");
  for (const Error& e : r.errors) {
    const std::string s = e.to_string();
    if (s.rfind("fuzz.toml", 0) != 0) fail("error does not start with the file name");
    if (e.line < 0 || e.column < 0) fail("negative line or column");
  }
  if (!r.ok()) return 0;
  const Config& c = *r.config;
  if (c.interfaces.empty() || c.interfaces.size() > 8) fail("config with 0 or more than 8 interfaces");
  for (const Interface& i : c.interfaces)
    if (i.prefix_len < 1 || i.prefix_len > 32) fail("interface prefix outside 1..32");
  if (c.dataplane.burst_size < 1 || c.dataplane.burst_size > 256) fail("burst_size outside 1..256");
  if (!sysname_ok(c.sysname)) fail("sysname outside [A-Za-z0-9._-]{1,63}");
  return 0;
}
