// What a worker does with one received Ethernet frame: answer ARP, ICMP echo
// and NTP client requests in place, defend our addresses against ARP
// conflicts, hand NTP peer/server packets to the control plane, or drop with
// a reason. Pure: bytes in, verdict out.
#pragma once

#include <cstddef>
#include <cstdint>

#include "dataplane/neighbour.h"
#include "dataplane/responder.h"
#include "proto/channel_abi.h"

namespace ntp::dp {

// One port as the frame logic sees it.
struct PortIdentity {
  uint8_t mac[6] = {};
  uint32_t ipv4 = 0;        // host order
  uint8_t prefix_len = 24;
  bool ntp_server = false;  // answer client requests here
};

enum class FrameAction : uint8_t {
  kDrop,
  kTransmit,   // the frame was rewritten in place into a reply of `len` bytes; send it on the same port
  kToControl,  // an NTP packet for the control plane: see the l4 fields
  kConsumed,   // handled, nothing to send (an ARP reply we learned from, a conflict not defended again)
};

// kArpDefence: the frame was rewritten into our own RFC 5227 announcement
// (broadcast), in answer to a conflicting ARP packet.
enum class ReplyKind : uint8_t { kNone, kNtp, kArp, kIcmpEcho, kArpDefence };

struct FrameVerdict {
  FrameAction action = FrameAction::kDrop;
  proto::DropReason reason = proto::DropReason::kNotForUs;  // when kDrop
  ReplyKind kind = ReplyKind::kNone;
  uint16_t len = 0;          // kTransmit: frame length of the reply
  uint16_t ntp_offset = 0;   // kTransmit/kNtp and kToControl: offset of the NTP payload in the frame
  uint16_t ntp_len = 0;      // kToControl: NTP payload bytes
  bool unsynchronized = false;  // kNtp: answered with leap 3
  bool learned_neighbour = false;
  bool arp_conflict = false;  // an ARP packet from another MAC claimed our address (see ArpDefence)
  uint32_t src_ip = 0, dst_ip = 0;  // kToControl, host order
  uint16_t src_port = 0, dst_port = 0;
};

// Handles the frame in place. buf holds len bytes of frame; the NTP reply
// may grow the frame by up to 4 bytes (crypto-NAK) so buf must have room for
// len + 4 (an mbuf always has tailroom). rx: the receive timestamp for
// requests in this frame; now_ns: monotonic time (the burst's TSC reading,
// not the served clock, which the control plane may step) for the neighbour
// cache and the ARP defence's rate limit in `neighbours`.
FrameVerdict handle_frame(uint8_t* buf, size_t len, const PortIdentity& port, const ReplyParams& params,
                          proto::NtpTimestamp rx, NeighbourTable& neighbours, int64_t now_ns);

// Writes the transmit timestamp of an NTP reply made by handle_frame (at
// frame offset ntp_offset) and folds it into the UDP checksum, which
// handle_frame computed with the transmit timestamp zero.
void stamp_transmit(uint8_t* frame, uint16_t ntp_offset, proto::NtpTimestamp tx);

// Builds an IPv4/UDP frame around payload (already at buf + kEthHeaderLen +
// 20 + 8) for the control plane's packets; returns the frame length.
size_t build_udp_frame(uint8_t* buf, const uint8_t* src_mac, const uint8_t* dst_mac, uint32_t src_ip, uint32_t dst_ip,
                       uint16_t src_port, uint16_t dst_port, size_t payload_len);

// Builds a broadcast ARP request for target_ip (RFC 826) into buf (at least
// 42 bytes); returns the frame length. target_ip == src_ip makes it a
// gratuitous ARP (RFC 5227 announcement).
size_t build_arp_request(uint8_t* buf, const uint8_t* src_mac, uint32_t src_ip, uint32_t target_ip);

// The next hop for dst from a port with this identity and gateway (0: none):
// dst itself when on-link, the gateway otherwise, 0 when unreachable.
uint32_t next_hop(const PortIdentity& port, uint32_t gateway, uint32_t dst);

// One line for the operator about an ARP conflict record, e.g.
// "ARP conflict: 10.99.0.1 claimed by 02:66:77:88:99:aa (3 conflicts, 1
// defence so far)"; writes at most cap bytes (NUL included), returns the
// length written without the NUL. Not for the hot path (snprintf).
size_t format_arp_conflict(const ArpConflictRecord& r, char* out, size_t cap);

}  // namespace ntp::dp
