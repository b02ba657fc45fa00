// libFuzzer target: proto::check_segment on a segment as ntp-dataplane lays
// it out, with fuzzed words written over its header and its rings' headers
// and a fuzzed mapping size (the mapping is allocated at exactly that size,
// so ASan sees any read past it). Invariants beyond "no crash, no
// sanitizer report": an accepted segment has every ring it names
// (n_workers rx and assoc rings, tx, report) aligned, after the header,
// with its slots (mask + 1 of its element) inside the mapping, none on
// another, and size == ring_size, mask == size - 1: what the control
// plane's rte_ring calls index. Each accepted ring's last slot is read.
#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <new>
#include <vector>

#include "proto/channel_abi.h"
#include "proto/rte_ring_layout.h"

namespace {

using namespace ntp::proto;
namespace L = rte_ring_layout;

[[noreturn]] void fail(const char* what) {
  std::fprintf(stderr, "fuzz_channel_abi: invariant violated: %s\n", what);
  std::abort();
}

size_t align_up(size_t v, size_t a) { return (v + a - 1) / a * a; }

uint32_t u32_at(const uint8_t* p) {
  uint32_t v;
  std::memcpy(&v, p, 4);
  return v;
}

struct Ring {
  uint64_t offset;
  size_t elem;
};

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size < 4) return -1;
  // The layout: 1..4 workers, rings of 2..1024, as the dataplane makes it.
  const unsigned n_workers = 1 + data[0] % 4;
  const uint32_t ring_size = 1u << (1 + data[1] % 10);
  size_t off = align_up(sizeof(SegmentHeader), kCacheLine);
  std::vector<Ring> laid;
  for (unsigned w = 0; w < n_workers; w++) {
    laid.push_back({off, sizeof(RxPacket)});
    off = align_up(off + L::memsize(sizeof(RxPacket), ring_size), kCacheLine);
    laid.push_back({off, sizeof(RxPacket)});
    off = align_up(off + L::memsize(sizeof(RxPacket), ring_size), kCacheLine);
  }
  laid.push_back({off, sizeof(TxPacket)});
  off = align_up(off + L::memsize(sizeof(TxPacket), ring_size), kCacheLine);
  laid.push_back({off, sizeof(TxReport)});
  off = align_up(off + L::memsize(sizeof(TxReport), ring_size), 4096);
  const size_t total = off;
  // The mapping: as laid out, or shorter/longer by a fuzzed number of pages
  // or cache lines (total_size is fuzzed below too).
  const int delta = static_cast<int8_t>(data[2]);
  const size_t step = data[3] & 1 ? 4096 : 64;
  const size_t mapped = std::max<ptrdiff_t>(static_cast<ptrdiff_t>(sizeof(SegmentHeader)) - 64,
                                            static_cast<ptrdiff_t>(total) + delta * static_cast<ptrdiff_t>(step));
  // Built in a buffer that holds the whole layout, then copied into one of
  // exactly `mapped` bytes (page-aligned like a mapping, so ASan sees any
  // read past it).
  const size_t build_size = std::max({total, mapped, sizeof(SegmentHeader)});
  void* raw = nullptr;
  if (posix_memalign(&raw, 4096, build_size) != 0) return 0;
  auto* mem = static_cast<uint8_t*>(raw);
  std::memset(mem, 0, build_size);
  auto* h = new (mem) SegmentHeader();
  h->magic = kChannelMagic;
  h->abi_version = kChannelAbiVersion;
  h->header_size = sizeof(SegmentHeader);
  h->total_size = mapped;
  h->n_workers = n_workers;
  h->n_ports = 1;
  h->ring_size = ring_size;
  for (unsigned w = 0; w < n_workers; w++) {
    h->rx_ring_offset[w] = laid[2 * w].offset;
    h->assoc_ring_offset[w] = laid[2 * w + 1].offset;
  }
  h->tx_ring_offset = laid[2 * n_workers].offset;
  h->tx_report_ring_offset = laid[2 * n_workers + 1].offset;
  for (const Ring& r : laid) {
    uint8_t* p = mem + r.offset;
    const uint32_t fields[][2] = {{L::kFlags, L::kFlagSpEnq | L::kFlagScDeq},
                                  {L::kSize, ring_size},
                                  {L::kMask, ring_size - 1},
                                  {L::kCapacity, ring_size - 1},
                                  {L::kProdSyncType, L::kSyncSt},
                                  {L::kConsSyncType, L::kSyncSt}};
    for (const auto& f : fields) std::memcpy(p + f[0], &f[1], 4);
  }
  // Fuzzed words: (where, value) pairs of 2 + 8 bytes. "where" picks a
  // 4-byte word of the header up to the ports, or of a ring's header.
  const size_t header_words = offsetof(SegmentHeader, ports) / 4;
  const size_t ring_words = L::kBytes / 4;
  for (size_t i = 4; i + 10 <= size; i += 10) {
    const unsigned where = static_cast<unsigned>(data[i]) | static_cast<unsigned>(data[i + 1]) << 8;
    uint64_t value;
    std::memcpy(&value, data + i + 2, 8);
    const size_t n_words = header_words + laid.size() * ring_words;
    const size_t word = where % n_words;
    size_t at;
    if (word < header_words) {
      at = word * 4;
    } else {
      const Ring& r = laid[(word - header_words) / ring_words];
      at = r.offset + (word - header_words) % ring_words * 4;
    }
    // 8 bytes where 8 fit (the 64-bit fields), else 4.
    const size_t len = value >> 63 ? 8 : 4;
    if (at + len <= build_size) std::memcpy(mem + at, &value, len);
  }
  void* exact_raw = nullptr;
  if (posix_memalign(&exact_raw, 4096, mapped) != 0) {
    std::free(mem);
    return 0;
  }
  auto* exact = static_cast<uint8_t*>(exact_raw);
  std::memcpy(exact, mem, mapped);
  std::free(mem);
  struct Free {
    uint8_t* p;
    ~Free() { std::free(p); }
  } free_exact{exact};
  const auto* seg = reinterpret_cast<const SegmentHeader*>(exact);

  if (!check_segment(seg, mapped).empty()) return 0;

  // Accepted: every ring named is one the control plane may index.
  std::vector<Ring> named;
  for (unsigned w = 0; w < seg->n_workers; w++) {
    named.push_back({seg->rx_ring_offset[w], sizeof(RxPacket)});
    named.push_back({seg->assoc_ring_offset[w], sizeof(RxPacket)});
  }
  named.push_back({seg->tx_ring_offset, sizeof(TxPacket)});
  named.push_back({seg->tx_report_ring_offset, sizeof(TxReport)});
  std::vector<std::pair<uint64_t, uint64_t>> extents;
  for (const Ring& r : named) {
    if (r.offset % 64 != 0) fail("an accepted ring is not aligned");
    if (r.offset < sizeof(SegmentHeader)) fail("an accepted ring overlaps the header");
    if (r.offset > mapped || mapped - r.offset < L::kBytes) fail("an accepted ring's header is outside the mapping");
    const uint8_t* p = exact + r.offset;
    const uint32_t rsize = u32_at(p + L::kSize), mask = u32_at(p + L::kMask);
    if (rsize != seg->ring_size || mask != rsize - 1 || (rsize & mask) != 0) fail("an accepted ring's size or mask");
    const uint64_t end = r.offset + L::kBytes + uint64_t{mask + 1} * r.elem;
    if (end > mapped) fail("an accepted ring's slots end outside the mapping");
    // What rte_ring's dequeue of the last slot reads (ASan checks it).
    volatile uint8_t last = exact[end - 1];
    (void)last;
    extents.push_back({r.offset, end});
  }
  std::sort(extents.begin(), extents.end());
  for (size_t i = 1; i < extents.size(); i++)
    if (extents[i].first < extents[i - 1].second) fail("two accepted rings overlap");
  return 0;
}
