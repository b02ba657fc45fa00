// libFuzzer target: proto::parse on arbitrary bytes (an NTP UDP payload).
// Invariants checked beyond "no crash, no sanitizer report":
//  - ok => 48 + extension_bytes + mac_len == size
//  - ok => version 1..4, mac_len one of 0/4/20/24/36 (12 only below v4),
//    no extension fields below v4, each extension field >= 16 bytes
//  - the fixed header round-trips: write_header(read_header(b)) == b[0..48)
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <span>

#include "proto/ntp_packet.h"

namespace {

[[noreturn]] void fail(const char* what, size_t size) {
  std::fprintf(stderr, "fuzz_ntp_parse: invariant violated: %s (input %zu bytes)\n", what, size);
  std::abort();
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace ntp::proto;
  // The largest UDP payload over IPv4; parse's 16-bit extension_bytes
  // cannot describe more, and no packet can carry more.
  if (size > 65507) return -1;
  const ParseResult r = parse(std::span<const uint8_t>(data, size));
  if (size < kHeaderLen) {
    if (r.status != ParseStatus::kTooShort) fail("short input not kTooShort", size);
    return 0;
  }
  // The header codec loses no bit.
  uint8_t back[kHeaderLen];
  write_header(read_header(data), back);
  if (std::memcmp(back, data, kHeaderLen) != 0) fail("write_header(read_header(b)) != b", size);

  if (!r.ok()) return 0;
  const ParsedPacket& p = r.packet;
  if (kHeaderLen + p.extension_bytes + p.mac_len != size) fail("48 + extension_bytes + mac_len != size", size);
  if (p.header.version < 1 || p.header.version > 4) fail("accepted version outside 1..4", size);
  if (!(p.header == read_header(data))) fail("parsed header differs from read_header", size);
  switch (p.mac_len) {
    case 0: case 4: case 20: case 24: case 36: break;
    case 12: if (p.header.version < 4) break; [[fallthrough]];
    default: fail("mac_len not a MAC length", size);
  }
  if (p.header.version < 4 && (p.extension_fields != 0 || p.extension_bytes != 0))
    fail("extension fields below NTPv4", size);
  if (p.extension_bytes < size_t{p.extension_fields} * 16) fail("extension field shorter than 16 bytes", size);
  if (p.extension_bytes % 4 != 0) fail("extension bytes not a multiple of 4", size);
  if (p.mac_len != 0 && p.key_id != load_be32(data + size - p.mac_len)) fail("key_id not from the MAC", size);
  return 0;
}
