#include "proto/channel_abi.h"

#include <algorithm>
#include <cstdio>
#include <cstring>

#include "proto/rte_ring_layout.h"

namespace ntp::proto {

static_assert(sizeof(RxPacket) % 8 == 0 && sizeof(TxPacket) % 8 == 0 && sizeof(TxReport) % 8 == 0,
              "rte_ring element sizes must be multiples of 4 (we keep 8)");
static_assert(sizeof(WorkerCounters) % kCacheLine == 0);
static_assert(alignof(SegmentHeader) == kCacheLine);

const char* drop_reason_name(DropReason r) {
  switch (r) {
    case DropReason::kNotForUs: return "not_for_us";
    case DropReason::kUnsupportedEthertype: return "unsupported_ethertype";
    case DropReason::kBadIpHeader: return "bad_ip_header";
    case DropReason::kBadIpChecksum: return "bad_ip_checksum";
    case DropReason::kIpFragment: return "ip_fragment";
    case DropReason::kIpOptions: return "ip_options";
    case DropReason::kUnsupportedIpProto: return "unsupported_ip_proto";
    case DropReason::kBadUdpLength: return "bad_udp_length";
    case DropReason::kBadUdpChecksum: return "bad_udp_checksum";
    case DropReason::kUdpPortClosed: return "udp_port_closed";
    case DropReason::kNtpServerDisabled: return "ntp_server_disabled";
    case DropReason::kNtpTooShort: return "ntp_too_short";
    case DropReason::kNtpBadVersion: return "ntp_bad_version";
    case DropReason::kNtpBadLength: return "ntp_bad_length";
    case DropReason::kNtpBadMode: return "ntp_bad_mode";
    case DropReason::kNtpControlMode: return "ntp_control_mode";
    case DropReason::kOversized: return "oversized";
    case DropReason::kBadArp: return "bad_arp";
    case DropReason::kBadIcmp: return "bad_icmp";
    case DropReason::kIcmpNotEcho: return "icmp_not_echo";
    case DropReason::kControlRingFull: return "control_ring_full";
    case DropReason::kTxFull: return "tx_full";
    case DropReason::kNoNeighbour: return "no_neighbour";
    case DropReason::kRuntFrame: return "runt_frame";
    case DropReason::kBadSourceAddress: return "bad_source_address";
    case DropReason::kAccessDenied: return "access_denied";
    case DropReason::kRateLimited: return "rate_limited";
    case DropReason::kReplyCap: return "reply_cap";
    case DropReason::kNotAPeer: return "not_a_peer";
    case DropReason::kUnexpectedServer: return "unexpected_server";
    case DropReason::kBadControlPacket: return "bad_control_packet";
    case DropReason::kAssocOverBudget: return "assoc_over_budget";
    case DropReason::kNotAuthenticated: return "not_authenticated";
    case DropReason::kExceptionRate: return "exception_rate";
    case DropReason::kExceptionFull: return "exception_full";
    case DropReason::kVlanNotOurs: return "vlan_not_ours";
    case DropReason::kCount: break;
  }
  return "unknown";
}

namespace {

// One ring the segment says it holds, to be checked.
struct RingExtent {
  char what[40];      // "rx ring of worker 3"
  uint64_t offset;
  uint64_t bytes;
};

uint32_t ring_u32(const SegmentHeader* h, uint64_t offset, size_t field) {
  uint32_t v;
  std::memcpy(&v, reinterpret_cast<const uint8_t*>(h) + offset + field, sizeof v);
  return v;
}

// The ring at r.offset as ntp-dataplane creates it (rte_ring_init with
// RING_F_SP_ENQ | RING_F_SC_DEQ, count ring_size): within the mapping,
// aligned, and its own size, mask, capacity, flags and sync types as made.
// rte_ring indexes its slots with (index & mask) up to size elements of the
// size the caller passes: a mask or size larger than made would read and
// write past the ring, and past the mapping.
std::string check_ring(const SegmentHeader* h, size_t mapped_size, const RingExtent& r) {
  namespace L = rte_ring_layout;
  char buf[256];
  const auto off = static_cast<unsigned long long>(r.offset);
  if (r.offset < sizeof(SegmentHeader)) {
    std::snprintf(buf, sizeof buf, "segment's %.39s at offset %llu overlaps the header (%zu bytes)", r.what, off,
                  sizeof(SegmentHeader));
    return buf;
  }
  if (r.offset % L::kAlign != 0) {
    std::snprintf(buf, sizeof buf, "segment's %.39s at offset %llu is not aligned to %zu bytes", r.what, off, L::kAlign);
    return buf;
  }
  if (r.offset > mapped_size || r.bytes > mapped_size - r.offset) {
    std::snprintf(buf, sizeof buf, "segment's %.39s at offset %llu, %llu bytes, ends beyond the %zu bytes mapped", r.what,
                  off, static_cast<unsigned long long>(r.bytes), mapped_size);
    return buf;
  }
  const uint32_t size = ring_u32(h, r.offset, L::kSize), mask = ring_u32(h, r.offset, L::kMask),
                 capacity = ring_u32(h, r.offset, L::kCapacity), flags = ring_u32(h, r.offset, L::kFlags),
                 prod_sync = ring_u32(h, r.offset, L::kProdSyncType),
                 cons_sync = ring_u32(h, r.offset, L::kConsSyncType);
  if (size != h->ring_size) {
    std::snprintf(buf, sizeof buf, "segment's %.39s has size %u, but the segment's ring size is %u", r.what, size,
                  h->ring_size);
    return buf;
  }
  if (mask != size - 1) {
    std::snprintf(buf, sizeof buf, "segment's %.39s has mask 0x%x, not its size - 1 (0x%x)", r.what, mask, size - 1);
    return buf;
  }
  if (capacity != size - 1) {
    std::snprintf(buf, sizeof buf, "segment's %.39s has capacity %u, not its size - 1 (%u)", r.what, capacity, size - 1);
    return buf;
  }
  if (flags != (L::kFlagSpEnq | L::kFlagScDeq) || prod_sync != L::kSyncSt || cons_sync != L::kSyncSt) {
    std::snprintf(buf, sizeof buf,
                  "segment's %.39s has flags 0x%x and sync types %u/%u, not single-producer/single-consumer "
                  "(0x%x, %u/%u) as ntp-dataplane creates it",
                  r.what, flags, prod_sync, cons_sync, L::kFlagSpEnq | L::kFlagScDeq, L::kSyncSt, L::kSyncSt);
    return buf;
  }
  return {};
}

}  // namespace

std::string check_segment(const SegmentHeader* h, size_t mapped_size) {
  char buf[256];
  if (mapped_size < sizeof(SegmentHeader)) {
    std::snprintf(buf, sizeof buf, "segment is %zu bytes, smaller than its header (%zu bytes)", mapped_size,
                  sizeof(SegmentHeader));
    return buf;
  }
  if (h->magic != kChannelMagic) return "segment has the wrong magic number: not an ntp-dataplane segment";
  if (h->abi_version != kChannelAbiVersion) {
    std::snprintf(buf, sizeof buf,
                  "segment ABI version %u, this program speaks version %u: run ntp-dataplane and ntp-control "
                  "from the same build",
                  h->abi_version, kChannelAbiVersion);
    return buf;
  }
  if (h->header_size != sizeof(SegmentHeader)) {
    std::snprintf(buf, sizeof buf, "segment header is %u bytes, expected %zu (mismatched builds)", h->header_size,
                  sizeof(SegmentHeader));
    return buf;
  }
  if (h->total_size != mapped_size) {
    std::snprintf(buf, sizeof buf, "segment says it is %llu bytes but %zu are mapped",
                  static_cast<unsigned long long>(h->total_size), mapped_size);
    return buf;
  }
  if (h->n_workers == 0 || h->n_workers > kMaxWorkers || h->n_ports > kMaxPorts) {
    std::snprintf(buf, sizeof buf, "segment has %u workers and %u ports: impossible (1..%zu workers, 0..%zu ports)",
                  h->n_workers, h->n_ports, kMaxWorkers, kMaxPorts);
    return buf;
  }
  // Two slots at least: rte_ring keeps one free (capacity size - 1).
  const uint32_t n = h->ring_size;
  if (n < 2 || (n & (n - 1)) != 0 || n > rte_ring_layout::kMaxCount) {
    std::snprintf(buf, sizeof buf, "segment's ring size %u is not a power of two from 2 to 2^30", n);
    return buf;
  }

  RingExtent rings[2 * kMaxWorkers + 2];
  size_t n_rings = 0;
  // worker < 0: a ring of the whole segment.
  auto add = [&](uint64_t offset, size_t elem_bytes, const char* kind, int worker) {
    RingExtent& r = rings[n_rings++];
    if (worker < 0)
      std::snprintf(r.what, sizeof r.what, "%s", kind);
    else
      std::snprintf(r.what, sizeof r.what, "%s of worker %d", kind, worker);
    r.offset = offset;
    r.bytes = rte_ring_layout::memsize(elem_bytes, n);
  };
  for (uint32_t w = 0; w < h->n_workers; w++) {
    add(h->rx_ring_offset[w], sizeof(RxPacket), "rx ring", static_cast<int>(w));
    add(h->assoc_ring_offset[w], sizeof(RxPacket), "assoc ring", static_cast<int>(w));
  }
  add(h->tx_ring_offset, sizeof(TxPacket), "tx ring", -1);
  add(h->tx_report_ring_offset, sizeof(TxReport), "tx report ring", -1);
  for (size_t i = 0; i < n_rings; i++)
    if (std::string why = check_ring(h, mapped_size, rings[i]); !why.empty()) return why;

  // Each within the mapping, and none on another: a worker's enqueue into
  // one must not move another's indexes or mask.
  std::sort(rings, rings + n_rings, [](const RingExtent& a, const RingExtent& b) { return a.offset < b.offset; });
  for (size_t i = 1; i < n_rings; i++)
    if (rings[i].offset < rings[i - 1].offset + rings[i - 1].bytes) {
      std::snprintf(buf, sizeof buf, "segment's %.39s and %.39s overlap", rings[i - 1].what, rings[i].what);
      return buf;
    }
  return {};
}

}  // namespace ntp::proto
