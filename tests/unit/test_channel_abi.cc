// The channel's ABI checks (proto/channel_abi.h, check_segment): what the
// control plane validates before trusting a mapping. A segment laid out
// as ntp-dataplane lays it out passes; each field a planted or mismatched
// segment could get wrong is refused with its own message. Rings are
// written through proto/rte_ring_layout.h, the mirror of DPDK's struct
// rte_ring (test_segment_client checks a real rte_ring_init'd segment).
#include "proto/channel_abi.h"

#include <gtest/gtest.h>

#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <memory>
#include <string>
#include <utility>

#include "proto/rte_ring_layout.h"

namespace ntp::proto {
namespace {

namespace L = rte_ring_layout;

size_t align_up(size_t v, size_t a) { return (v + a - 1) / a * a; }

// A segment in memory laid out like dataplane/segment.cc's create(), its
// rings' fields as rte_ring_init(SP_ENQ | SC_DEQ) leaves them.
struct FakeSegment {
  size_t size = 0;
  std::unique_ptr<uint8_t, decltype(&std::free)> mem{nullptr, &std::free};
  SegmentHeader* h() { return reinterpret_cast<SegmentHeader*>(mem.get()); }

  FakeSegment(unsigned n_workers, uint32_t ring_size) {
    size_t off = align_up(sizeof(SegmentHeader), kCacheLine);
    uint64_t rx[kMaxWorkers] = {}, assoc[kMaxWorkers] = {};
    const uint64_t rx_bytes = L::memsize(sizeof(RxPacket), ring_size);
    for (unsigned w = 0; w < n_workers; w++) {
      rx[w] = off;
      off = align_up(off + rx_bytes, kCacheLine);
      assoc[w] = off;
      off = align_up(off + rx_bytes, kCacheLine);
    }
    const uint64_t tx = off;
    off = align_up(off + L::memsize(sizeof(TxPacket), ring_size), kCacheLine);
    const uint64_t rep = off;
    off = align_up(off + L::memsize(sizeof(TxReport), ring_size), 4096);
    size = off;
    mem.reset(static_cast<uint8_t*>(std::aligned_alloc(4096, size)));
    std::memset(mem.get(), 0, size);
    SegmentHeader& s = *h();
    s.magic = kChannelMagic;
    s.abi_version = kChannelAbiVersion;
    s.header_size = sizeof(SegmentHeader);
    s.total_size = size;
    s.n_workers = n_workers;
    s.n_ports = 2;
    s.ring_size = ring_size;
    for (unsigned w = 0; w < n_workers; w++) {
      s.rx_ring_offset[w] = rx[w];
      s.assoc_ring_offset[w] = assoc[w];
      init_ring(rx[w]);
      init_ring(assoc[w]);
    }
    s.tx_ring_offset = tx;
    s.tx_report_ring_offset = rep;
    init_ring(tx);
    init_ring(rep);
  }
  void set32(uint64_t ring, size_t field, uint32_t v) { std::memcpy(mem.get() + ring + field, &v, sizeof v); }
  void init_ring(uint64_t o) {
    const uint32_t n = h()->ring_size;
    std::memcpy(mem.get() + o, "rx0", 4);
    set32(o, L::kFlags, L::kFlagSpEnq | L::kFlagScDeq);
    set32(o, L::kSize, n);
    set32(o, L::kMask, n - 1);
    set32(o, L::kCapacity, n - 1);
    set32(o, L::kProdSyncType, L::kSyncSt);
    set32(o, L::kConsSyncType, L::kSyncSt);
  }
  std::string check() { return check_segment(h(), size); }
};

TEST(RteRingLayout, MemsizeIsRteRingsFormula) {
  // rte_ring_get_memsize_elem: the header (6 cache lines) plus the slots,
  // rounded up to a cache line; nothing for counts rte_ring refuses.
  EXPECT_EQ(L::memsize(sizeof(RxPacket), 1024), 384 + 1024 * sizeof(RxPacket));
  EXPECT_EQ(L::memsize(8, 2), 448u);
  EXPECT_EQ(L::memsize(4, 2), 448u);  // 392 rounded up
  EXPECT_EQ(L::memsize(8, 1u << 30), 384 + (uint64_t{1} << 33));
  EXPECT_EQ(L::memsize(8, 0), 0u);
  EXPECT_EQ(L::memsize(8, 1000), 0u);
  EXPECT_EQ(L::memsize(8, uint64_t{1} << 31), 0u);
  EXPECT_EQ(L::memsize(6, 1024), 0u);
}

TEST(CheckSegment, AsTheDataplaneLaysItOutPasses) {
  const std::pair<unsigned, uint32_t> layouts[] = {{1, 2}, {1, 65536}, {2, 64}, {2, 1024}, {32, 64}, {32, 1024}};
  for (const auto& [workers, ring] : layouts) {
    SCOPED_TRACE(std::to_string(workers) + " workers, rings of " + std::to_string(ring));
    FakeSegment s(workers, ring);
    EXPECT_EQ(s.check(), "");
  }
}

TEST(CheckSegment, UnusedWorkerSlotsAreNotLookedAt) {
  FakeSegment s(2, 64);
  for (size_t w = 2; w < kMaxWorkers; w++) s.h()->rx_ring_offset[w] = s.h()->assoc_ring_offset[w] = ~uint64_t{0};
  EXPECT_EQ(s.check(), "");
}

// Each header field and each ring a planted or mismatched segment could get
// wrong: refused, and the message names what is wrong.
TEST(CheckSegment, EachCorruptedFieldIsRefusedWithItsMessage) {
  struct Case {
    const char* name;
    std::function<void(FakeSegment&)> spoil;
    const char* message;  // the whole message
  };
  const std::string other_abi = "segment ABI version " + std::to_string(kChannelAbiVersion - 1) +
                                ", this program speaks version " + std::to_string(kChannelAbiVersion) +
                                ": run ntp-dataplane and ntp-control from the same build";
  const Case cases[] = {
      {"wrong magic", [](FakeSegment& s) { s.h()->magic ^= 1; },
       "segment has the wrong magic number: not an ntp-dataplane segment"},
      {"other ABI", [](FakeSegment& s) { s.h()->abi_version = kChannelAbiVersion - 1; },
       other_abi.c_str()},
      {"header size", [](FakeSegment& s) { s.h()->header_size += 64; }, nullptr},
      {"total size", [](FakeSegment& s) { s.h()->total_size += 4096; }, nullptr},
      {"no workers", [](FakeSegment& s) { s.h()->n_workers = 0; },
       "segment has 0 workers and 2 ports: impossible (1..32 workers, 0..8 ports)"},
      {"33 workers", [](FakeSegment& s) { s.h()->n_workers = 33; },
       "segment has 33 workers and 2 ports: impossible (1..32 workers, 0..8 ports)"},
      {"9 ports", [](FakeSegment& s) { s.h()->n_ports = 9; },
       "segment has 2 workers and 9 ports: impossible (1..32 workers, 0..8 ports)"},
      {"ring size 0", [](FakeSegment& s) { s.h()->ring_size = 0; },
       "segment's ring size 0 is not a power of two from 2 to 2^30"},
      {"ring size 1", [](FakeSegment& s) { s.h()->ring_size = 1; },
       "segment's ring size 1 is not a power of two from 2 to 2^30"},
      {"ring size 1000", [](FakeSegment& s) { s.h()->ring_size = 1000; },
       "segment's ring size 1000 is not a power of two from 2 to 2^30"},
      {"ring size 2^31", [](FakeSegment& s) { s.h()->ring_size = 1u << 31; },
       "segment's ring size 2147483648 is not a power of two from 2 to 2^30"},
      {"rx ring on the header", [](FakeSegment& s) { s.h()->rx_ring_offset[1] = 64; }, nullptr},
      {"rx ring unaligned", [](FakeSegment& s) { s.h()->rx_ring_offset[1] += 8; },
       nullptr},
      {"assoc ring past the end", [](FakeSegment& s) { s.h()->assoc_ring_offset[0] = s.size - 4096; }, nullptr},
      {"tx ring offset wraps", [](FakeSegment& s) { s.h()->tx_ring_offset = ~uint64_t{63}; }, nullptr},
      {"tx report ring one byte short",
       [](FakeSegment& s) {
         // The report ring's slots end exactly at the mapping's end, one
         // cache line over: aligned, starts inside, ends outside.
         s.h()->tx_report_ring_offset = s.size - L::memsize(sizeof(TxReport), s.h()->ring_size) + 64;
         s.init_ring(s.h()->tx_report_ring_offset);  // a well-formed ring there: only its extent is wrong
       },
       nullptr},
      {"ring size larger than laid out",
       [](FakeSegment& s) {
         // Every ring says so too: only their extents give it away.
         s.h()->ring_size *= 2;
         for (unsigned w = 0; w < s.h()->n_workers; w++) {
           s.init_ring(s.h()->rx_ring_offset[w]);
           s.init_ring(s.h()->assoc_ring_offset[w]);
         }
         s.init_ring(s.h()->tx_ring_offset);
         s.init_ring(s.h()->tx_report_ring_offset);
       },
       nullptr},
      {"rx ring's size", [](FakeSegment& s) { s.set32(s.h()->rx_ring_offset[1], L::kSize, 4096); },
       "segment's rx ring of worker 1 has size 4096, but the segment's ring size is 1024"},
      {"assoc ring's mask", [](FakeSegment& s) { s.set32(s.h()->assoc_ring_offset[0], L::kMask, 0xffff); },
       "segment's assoc ring of worker 0 has mask 0xffff, not its size - 1 (0x3ff)"},
      {"tx ring's mask", [](FakeSegment& s) { s.set32(s.h()->tx_ring_offset, L::kMask, 0xffffffff); },
       "segment's tx ring has mask 0xffffffff, not its size - 1 (0x3ff)"},
      {"tx report ring's capacity",
       [](FakeSegment& s) { s.set32(s.h()->tx_report_ring_offset, L::kCapacity, 1024); },
       "segment's tx report ring has capacity 1024, not its size - 1 (1023)"},
      {"multi-producer flags", [](FakeSegment& s) { s.set32(s.h()->rx_ring_offset[0], L::kFlags, 0); },
       "segment's rx ring of worker 0 has flags 0x0 and sync types 1/1, not single-producer/single-consumer "
       "(0x3, 1/1) as ntp-dataplane creates it"},
      {"multi-thread producer", [](FakeSegment& s) { s.set32(s.h()->tx_ring_offset, L::kProdSyncType, 0); },
       "segment's tx ring has flags 0x3 and sync types 0/1, not single-producer/single-consumer (0x3, 1/1) as "
       "ntp-dataplane creates it"},
      {"HTS consumer", [](FakeSegment& s) { s.set32(s.h()->assoc_ring_offset[1], L::kConsSyncType, 3); },
       nullptr},
      {"two rings in one place",
       [](FakeSegment& s) { s.h()->assoc_ring_offset[1] = s.h()->rx_ring_offset[1] + 4096; },
       nullptr},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.name);
    FakeSegment s(2, 1024);
    ASSERT_EQ(s.check(), "");
    c.spoil(s);
    const std::string why = s.check();
    EXPECT_NE(why, "");
    if (c.message) EXPECT_EQ(why, c.message);
  }
}

// The messages of the cases above whose text depends on the layout.
TEST(CheckSegment, RingPlacementMessagesNameTheRingAndTheBytes) {
  FakeSegment s(2, 1024);
  const size_t hdr = sizeof(SegmentHeader);
  const uint64_t rx1 = s.h()->rx_ring_offset[1];
  s.h()->rx_ring_offset[1] = 64;
  EXPECT_EQ(s.check(), "segment's rx ring of worker 1 at offset 64 overlaps the header (" + std::to_string(hdr) +
                           " bytes)");
  s.h()->rx_ring_offset[1] = rx1 + 8;
  EXPECT_EQ(s.check(), "segment's rx ring of worker 1 at offset " + std::to_string(rx1 + 8) +
                           " is not aligned to 64 bytes");
  s.h()->rx_ring_offset[1] = rx1;
  const uint64_t rep = s.h()->tx_report_ring_offset;
  const uint64_t rep_bytes = L::memsize(sizeof(TxReport), 1024);
  s.h()->tx_report_ring_offset = s.size - rep_bytes + 64;
  EXPECT_EQ(s.check(), "segment's tx report ring at offset " + std::to_string(s.size - rep_bytes + 64) + ", " +
                           std::to_string(rep_bytes) + " bytes, ends beyond the " + std::to_string(s.size) +
                           " bytes mapped");
  // Exactly at the end is fine (the ring is copied there with its fields).
  s.h()->tx_report_ring_offset = s.size - rep_bytes;
  s.init_ring(s.size - rep_bytes);  // (not a copy of the ring at rep: the two may overlap)
  EXPECT_EQ(s.check(), "");
  s.h()->tx_report_ring_offset = rep;
  s.init_ring(rep);  // the copy may have landed on its fields (the padding before the end is what the header leaves)
  s.h()->assoc_ring_offset[1] = rx1 + 4096;
  std::memcpy(s.mem.get() + rx1 + 4096, s.mem.get() + rx1, L::kBytes);
  EXPECT_EQ(s.check(), "segment's rx ring of worker 1 and assoc ring of worker 1 overlap");
}

TEST(CheckSegment, SmallerThanItsHeader) {
  FakeSegment s(1, 64);
  EXPECT_EQ(check_segment(s.h(), sizeof(SegmentHeader) - 1),
            "segment is " + std::to_string(sizeof(SegmentHeader) - 1) + " bytes, smaller than its header (" +
                std::to_string(sizeof(SegmentHeader)) + " bytes)");
  // A mapping shorter than the header says: total_size is checked first.
  EXPECT_EQ(check_segment(s.h(), s.size - 4096),
            "segment says it is " + std::to_string(s.size) + " bytes but " + std::to_string(s.size - 4096) +
                " are mapped");
}

}  // namespace
}  // namespace ntp::proto
