// The parts of DPDK 22.11's struct rte_ring (rte_ring_core.h) that
// check_segment validates, mirrored here because proto may not include
// DPDK. Held to the real struct by static_asserts in the two files that
// include DPDK's header and use the rings (dataplane/segment.cc,
// control/segment_client.cc): a DPDK whose layout differs does not build.
// x86-64, 64-byte cache lines.
#pragma once

#include <cstddef>
#include <cstdint>

namespace ntp::proto::rte_ring_layout {

inline constexpr size_t kBytes = 384;          // sizeof(struct rte_ring): 6 cache lines
inline constexpr size_t kNameBytes = 29;       // RTE_RING_NAMESIZE
inline constexpr size_t kFlags = 32;           // int flags
inline constexpr size_t kSize = 48;            // uint32_t size
inline constexpr size_t kMask = 52;            // uint32_t mask
inline constexpr size_t kCapacity = 56;        // uint32_t capacity
inline constexpr size_t kProdSyncType = 136;   // prod.sync_type (after head, tail)
inline constexpr size_t kConsSyncType = 264;   // cons.sync_type
inline constexpr size_t kAlign = 64;           // RTE_CACHE_LINE_SIZE: rings and their memsize

inline constexpr uint32_t kFlagSpEnq = 0x0001;  // RING_F_SP_ENQ
inline constexpr uint32_t kFlagScDeq = 0x0002;  // RING_F_SC_DEQ
inline constexpr uint32_t kSyncSt = 1;          // RTE_RING_SYNC_ST: single thread
inline constexpr uint32_t kMaxCount = 0x7fffffffU;  // RTE_RING_SZ_MASK

// rte_ring_get_memsize_elem(elem_bytes, count) for the counts it accepts
// (a power of two up to kMaxCount, elem_bytes a multiple of 4); 0 for the
// others. In 64 bits: no overflow for any 32-bit count.
inline constexpr uint64_t memsize(size_t elem_bytes, uint64_t count) {
  if (elem_bytes % 4 != 0 || count == 0 || (count & (count - 1)) != 0 || count > kMaxCount) return 0;
  const uint64_t bytes = kBytes + count * elem_bytes;
  return (bytes + kAlign - 1) / kAlign * kAlign;
}

}  // namespace ntp::proto::rte_ring_layout
