// Byte order and IPv4 address helpers: the one copy of each, used by the
// wire format, the frame layer, the configuration and the status text.
// Addresses are uint32_t in host order everywhere above the wire.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace ntp::proto {

inline uint16_t load_be16(const uint8_t* p) { return static_cast<uint16_t>((p[0] << 8) | p[1]); }
inline void store_be16(uint8_t* p, uint16_t v) {
  p[0] = static_cast<uint8_t>(v >> 8);
  p[1] = static_cast<uint8_t>(v);
}
inline uint32_t load_be32(const uint8_t* p) {
  return (uint32_t{p[0]} << 24) | (uint32_t{p[1]} << 16) | (uint32_t{p[2]} << 8) | p[3];
}
inline void store_be32(uint8_t* p, uint32_t v) {
  p[0] = static_cast<uint8_t>(v >> 24);
  p[1] = static_cast<uint8_t>(v >> 16);
  p[2] = static_cast<uint8_t>(v >> 8);
  p[3] = static_cast<uint8_t>(v);
}

// The mask of an IPv4 prefix of prefix_len bits, 0..32 (the configuration
// refuses longer ones; the dataplane calls this per packet).
inline constexpr uint32_t netmask(unsigned prefix_len) {
  return prefix_len == 0 ? 0 : ~uint32_t{0} << (32 - prefix_len);
}
inline constexpr bool in_prefix(uint32_t addr, uint32_t net, unsigned prefix_len) {
  return ((addr ^ net) & netmask(prefix_len)) == 0;
}

// "10.0.1.31".
std::string ipv4_to_string(uint32_t host_order);
// Strict dotted quad: four decimal parts 0..255, no leading zeros.
std::optional<uint32_t> parse_ipv4(std::string_view s);

// A port: decimal digits only, 1..65535.
std::optional<uint16_t> parse_port(std::string_view digits);

// "host:port" split at the last colon; nullopt without a colon or with a
// port that parse_port() refuses. The host is not checked.
struct HostPort {
  std::string host;
  uint16_t port = 0;
};
std::optional<HostPort> split_host_port(std::string_view s);

}  // namespace ntp::proto
