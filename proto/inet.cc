#include "proto/inet.h"

namespace ntp::proto {

std::string ipv4_to_string(uint32_t a) {
  return std::to_string(a >> 24) + "." + std::to_string(a >> 16 & 0xFF) + "." + std::to_string(a >> 8 & 0xFF) +
         "." + std::to_string(a & 0xFF);
}

std::optional<uint32_t> parse_ipv4(std::string_view s) {
  uint32_t addr = 0;
  size_t i = 0;
  for (int part = 0; part < 4; ++part) {
    if (part > 0) {
      if (i >= s.size() || s[i] != '.') return std::nullopt;
      ++i;
    }
    const size_t start = i;
    uint32_t v = 0;
    while (i < s.size() && s[i] >= '0' && s[i] <= '9' && i - start < 3) v = v * 10 + (s[i++] - '0');
    const size_t n = i - start;
    if (n == 0 || v > 255 || (n > 1 && s[start] == '0')) return std::nullopt;
    addr = addr << 8 | v;
  }
  if (i != s.size()) return std::nullopt;
  return addr;
}

std::optional<uint16_t> parse_port(std::string_view digits) {
  if (digits.empty()) return std::nullopt;
  uint32_t port = 0;
  for (char c : digits) {
    if (c < '0' || c > '9') return std::nullopt;
    port = port * 10 + static_cast<uint32_t>(c - '0');
    if (port > 65535) return std::nullopt;
  }
  if (port < 1) return std::nullopt;
  return static_cast<uint16_t>(port);
}

std::optional<HostPort> split_host_port(std::string_view s) {
  const size_t colon = s.rfind(':');
  if (colon == std::string_view::npos) return std::nullopt;
  const std::optional<uint16_t> port = parse_port(s.substr(colon + 1));
  if (!port) return std::nullopt;
  return HostPort{std::string(s.substr(0, colon)), *port};
}

}  // namespace ntp::proto
