#include "proto/channel_abi.h"

#include <cstdio>

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
    case DropReason::kCount: break;
  }
  return "unknown";
}

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
  if (h->n_workers == 0 || h->n_workers > kMaxWorkers || h->n_ports > kMaxPorts) return "segment has impossible worker or port counts";
  auto in_range = [&](uint64_t off) { return off >= sizeof(SegmentHeader) && off < mapped_size; };
  for (uint32_t w = 0; w < h->n_workers; w++)
    if (!in_range(h->rx_ring_offset[w])) return "segment ring offsets are out of range";
  if (!in_range(h->tx_ring_offset) || !in_range(h->tx_report_ring_offset)) return "segment ring offsets are out of range";
  return {};
}

}  // namespace ntp::proto
