// ntp-loadgen's pure parts (no DPDK): client addresses, the request and
// answer frames, the answer's validation, rate steps and the response-time
// histogram. main.cc drives them over a DPDK port; tests/unit/test_loadgen.cc
// tests them alone.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "proto/ntp_packet.h"

namespace ntp::loadgen {

// An IPv4 address (host order) or an IPv6 one (network-order bytes).
struct Address {
  bool v6 = false;
  uint32_t v4 = 0;
  std::array<uint8_t, 16> v6_bytes{};
  friend bool operator==(const Address&, const Address&) = default;
};
std::optional<Address> parse_address(std::string_view s);
std::string to_string(const Address& a);

// The host addresses of a prefix: an IPv4 one without its network and
// broadcast addresses (up to /30), an IPv6 one (/64 or longer) without its
// subnet-router anycast address (all-zero host part).
struct AddressRange {
  Address first;
  uint64_t count = 0;
};
std::optional<AddressRange> parse_range(std::string_view cidr, std::string& err);
Address nth_address(const AddressRange& r, uint64_t i);
std::optional<uint64_t> offset_in(const AddressRange& r, const Address& a);

struct Endpoint {
  Address addr;
  uint16_t port = 0;
};

// The simulated clients: client c has address c mod A (A: all the ranges'
// addresses, in order) and UDP port first_port + c / A, so that a kernel
// server needs few neighbour entries for many clients, and an answer's
// destination names its client without a lookup table.
class ClientSet {
 public:
  static std::optional<ClientSet> make(std::vector<AddressRange> ranges, uint32_t clients, uint16_t first_port,
                                       std::string& err);
  uint32_t size() const { return clients_; }
  uint64_t addresses() const { return addresses_; }
  bool v6() const { return ranges_.front().first.v6; }
  Endpoint endpoint(uint32_t client) const;
  std::optional<uint32_t> client_of(const Address& a, uint16_t port) const;
  // Whether a is one of the clients' addresses (used by at least one client).
  bool has_address(const Address& a) const;

  // The clients in turn without a division per request (the sender's walk).
  struct Cursor {
    uint32_t client = 0;
    uint32_t address = 0;  // index in the used addresses
    uint16_t port = 0;
  };
  Cursor begin() const { return {0, 0, first_port_}; }
  void advance(Cursor& c) const {
    if (++c.client == clients_) {
      c = begin();
    } else if (++c.address == addresses_) {
      c.address = 0;
      c.port++;
    }
  }
  const Address& address(uint32_t i) const { return table_[i]; }

 private:
  std::optional<uint64_t> address_index(const Address& a) const;
  std::vector<AddressRange> ranges_;
  uint32_t clients_ = 0;
  uint64_t addresses_ = 0;  // used: min(all the ranges' addresses, clients)
  uint16_t first_port_ = 0;
  std::vector<Address> table_;  // the used addresses, made once
};

// The transmit timestamp of send number seq is seq ^ key (key's top bit set,
// seq < 2^63: never zero), so the origin of an answer names the request it
// answers; sends go to the clients in turn, so seq mod clients is its client.
struct Nonce {
  uint64_t key = 0x8000000000000000ULL;
  uint64_t encode(uint64_t seq) const { return seq ^ key; }
  uint64_t decode(uint64_t transmit) const { return transmit ^ key; }
};
inline uint64_t to_u64(proto::NtpTimestamp t) { return (uint64_t{t.seconds} << 32) | t.fraction; }
inline proto::NtpTimestamp from_u64(uint64_t v) {
  return {static_cast<uint32_t>(v >> 32), static_cast<uint32_t>(v)};
}

// What a client remembers of a request it sent (two per client: the last
// and the one before, answered late but in time at high rates).
struct Sent {
  uint64_t seq = ~uint64_t{0};
  uint64_t sent_tsc = 0;
  uint32_t step = 0;
  bool answered = false;
};
struct ClientSlots {
  Sent last, before;
  void record(uint64_t seq, uint64_t tsc, uint32_t step) {
    before = last;
    last = {seq, tsc, step, false};
  }
};

// Why an answer is invalid (kNone: valid).
enum class Invalid : uint8_t {
  kNone = 0,
  kChecksum,   // IPv4 header or UDP checksum wrong
  kSource,     // to one of our clients, but not from the server's address and port
  kLength,     // UDP payload shorter than an NTP header
  kMode,       // not mode 4
  kStratum,    // outside the expected range
  kLeap,       // leap 3 (unsynchronized), unless allowed
  kOrigin,     // origin is no transmit timestamp we sent to that client
  kDuplicate,  // a second answer to one request
  kCount,
};
const char* to_string(Invalid r);

struct Expectation {
  uint8_t stratum_min = 1, stratum_max = proto::kStratumMax;
  bool allow_unsynchronized = false;
};
// The header's own checks (mode, stratum, leap); the origin is the caller's
// (it needs the client's slots).
Invalid check_header(const proto::NtpHeader& h, const Expectation& e);

// Which request of client `client` (of n_clients, next_seq sent so far in
// all) an answer whose origin decodes to seq answers.
enum class Match : uint8_t { kLast, kBefore, kOlder, kNone };
Match match_origin(const ClientSlots& s, uint64_t seq, uint32_t client, uint32_t n_clients, uint64_t next_seq);

// Frames. MACs are 6 bytes; buffers must hold kMaxRequestFrameLen.
inline constexpr size_t kMaxRequestFrameLen = 14 + 40 + 8 + proto::kHeaderLen;
inline constexpr uint16_t kEtherTypeIpv6 = 0x86DD;
struct FrameSpec {
  uint8_t src_mac[6] = {};
  uint8_t dst_mac[6] = {};
  Address server;
  uint16_t server_port = proto::kNtpPort;
};
// A client request (mode 3, NTPv4, checksums filled in); returns its length.
size_t build_request(uint8_t* buf, const FrameSpec& f, const Endpoint& client, uint64_t transmit);

// The same frame from a template made once: per request a copy, the client's
// address and port, the transmit timestamp and the checksums updated from
// the template's sums (the sender's hot path; build_request is its reference).
class RequestTemplate {
 public:
  explicit RequestTemplate(const FrameSpec& f);
  size_t write(uint8_t* buf, const Address& client, uint16_t port, uint64_t transmit) const;

 private:
  uint8_t frame_[kMaxRequestFrameLen] = {};
  size_t len_ = 0;
  bool v6_ = false;
  uint64_t ip_sum_ = 0, udp_sum_ = 0;  // unfolded sums with the client's fields and transmit zero
};

// A received frame, as far as the generator cares.
enum class FrameKind : uint8_t { kOther, kArpRequest, kArpReply, kNeighbourSolicitation, kNeighbourAdvertisement, kUdp };
struct RxFrame {
  FrameKind kind = FrameKind::kOther;
  uint8_t src_mac[6] = {};
  Address src, dst;        // IP addresses (ARP: sender and target; NS/NA: source and target)
  uint16_t src_port = 0, dst_port = 0;
  bool checksum_ok = true;  // IPv4 header and UDP (or ICMPv6) checksums
  const uint8_t* payload = nullptr;  // the UDP payload
  size_t payload_len = 0;
  bool has_lladdr = false;  // NA: a target link-layer address option
  uint8_t lladdr[6] = {};
};
RxFrame parse_frame(const uint8_t* buf, size_t len);

// ARP reply from `ip` at `mac` to the requester (rx: the request); 42 bytes.
size_t build_arp_reply(uint8_t* buf, const RxFrame& request, const uint8_t* mac);
// (An ARP request is dataplane/frame.h's build_arp_request.)
// Neighbour advertisement (RFC 4861 4.4: solicited, override, with the
// target link-layer address) answering the solicitation rx for target rx.dst.
size_t build_neighbour_advertisement(uint8_t* buf, const RxFrame& solicitation, const uint8_t* mac);
// Neighbour solicitation for target from src, to its solicited-node multicast address.
size_t build_neighbour_solicitation(uint8_t* buf, const uint8_t* mac, const Address& src, const Address& target);

// Rising rates: "R" (one step), "R1:R2:xM" (multiply by M until above R2) or
// "R1:R2:+A" (add A); at most 64 steps.
std::optional<std::vector<double>> parse_rates(std::string_view s, std::string& err);
std::optional<std::array<uint8_t, 6>> parse_mac(std::string_view s);

// Response times in ns, log-linear buckets (64 per power of two: within
// 1/64 of the value), fixed size: add() never allocates.
class LatencyHistogram {
 public:
  static constexpr unsigned kSubBits = 6;
  static constexpr size_t kBuckets = (64 - kSubBits + 1) << kSubBits;
  void add(uint64_t ns);
  void clear();
  uint64_t count() const { return count_; }
  uint64_t max() const { return max_; }
  uint64_t min() const { return count_ ? min_ : 0; }
  // The value at or below which a fraction q (0..1) of the samples lie, to
  // within a bucket's width (never above max()).
  uint64_t quantile(double q) const;
  static size_t bucket_of(uint64_t ns);
  static uint64_t bucket_low(size_t b);

 private:
  std::array<uint64_t, kBuckets> buckets_{};
  uint64_t count_ = 0, max_ = 0, min_ = ~uint64_t{0};
};

}  // namespace ntp::loadgen
