// Per-client rate limiting: a set-associative table of token buckets
// (chrony's clientlog.c model: a request costs a token, tokens come back at
// one per 2^interval s up to burst, a limited request leaks with probability
// 2^-leak) plus an excess budget so that over-limit answers (leaks and KoDs)
// to one source are bounded whatever its rate. See ratelimit.h.
#include "dataplane/ratelimit.h"

#include <algorithm>
#include <bit>
#include <cstdlib>
#include <cstring>
#include <new>
#include <stdexcept>
#include <string>

#include <sys/mman.h>

namespace ntp::dp {
namespace {

// Time in the table is kept in ticks of 2^20 ns (~1.05 ms): 32 bits last
// 52 days, differences are taken modulo 2^32 and read as signed. The
// worker's clock (its TSC) never goes back, so a negative difference is a
// client back after 26 to 52 days: it gets a full bucket, as a new one
// would (no sweep of the table is needed). Its entry may look younger to
// the eviction than it is, which is harmless.
constexpr int kTickShift = 20;
constexpr int64_t kTickNs = int64_t{1} << kTickShift;
constexpr int kWays = 4;  // 4 x 16 B = one cache line per bucket
constexpr size_t kHugePage = size_t{2} << 20;

// A bucket of 4 clients, one cache line, as four arrays so that the lookup
// is one compare of 4 keys (vectorised or branch-free) rather than a loop.
// Credits are time in ticks (a GCRA-like token bucket): a request costs
// cost_ticks, the elapsed time is credited exactly, so no rounding
// accumulates between requests and no multiply or divide is needed.
struct alignas(64) Bucket {
  uint32_t key[kWays];           // IPv4 host order; IPv6 later: the upper half of a 64-bit keyed hash (the lower half picks the bucket)
  uint32_t last_tick[kWays];     // last request; 0: the way is empty (see tick_of)
  uint32_t credit_ticks[kWays];  // token bucket: burst * cost_ticks at most
  uint32_t excess_ticks[kWays];  // excess budget: cost_ticks at most (one excess answer)
};
static_assert(sizeof(Bucket) == 64 && alignof(Bucket) == 64);

uint64_t splitmix64(uint64_t& s) {
  uint64_t z = (s += 0x9E3779B97F4A7C15ull);
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  return z ^ (z >> 31);
}

// A tick that is never 0 (0 marks an empty way); the one tick in 2^32
// that would be 0 reads as 1, an error of one tick once every 52 days.
uint32_t tick_of(int64_t now_ns) {
  const auto t = static_cast<uint32_t>(static_cast<uint64_t>(now_ns) >> kTickShift);
  return t == 0 ? 1 : t;
}

constexpr uint32_t kTop = proto::kTopLimitedSources;

}  // namespace

struct RateLimiter::Impl {
  uint8_t* base = nullptr;  // bucket i at base + (i << shift)
  unsigned shift = 6;       // 7 with xleave: each bucket followed by its kWays XleaveSlots
  bool has_slots() const { return shift == 7; }
  Bucket& bucket(uint64_t i) const { return *reinterpret_cast<Bucket*>(base + (i << shift)); }
  static XleaveSlot* slots_of(Bucket& b) {
    return reinterpret_cast<XleaveSlot*>(reinterpret_cast<uint8_t*>(&b) + sizeof(Bucket));
  }
  void* map_base = nullptr;  // the mapping (buckets within it, aligned)
  size_t map_bytes = 0;
  uint64_t bucket_mask = 0;
  size_t capacity = 0;
  size_t table_bytes = 0;
  uint64_t rng = 0;  // xorshift64 state, never 0

  // Parameters in ticks (set_params).
  uint32_t cost_ticks = 1;      // 2^interval_log2 s, rounded up: never more than the configured rate
  uint32_t burst_ticks = 1;     // burst * cost_ticks
  uint32_t min_ticks = 0;       // min_interval_ns rounded down: a request spaced min_interval is never limited
  int leak_log2 = 0;

  size_t fill = 0;
  uint64_t inserts = 0;
  uint64_t evictions = 0;

  // The top list, as arrays so that looking a source up is a vectorised
  // compare of 16 addresses. Counts are space-saving estimates (an upper
  // bound of the true count).
  uint32_t top_ip[kTop] = {};
  uint64_t top_count[kTop] = {};
  int64_t top_last_ns[kTop] = {};
  // The last request's entry (see check_v4).
  uint32_t last_ip = 0;
  int last_way = 0;
  Bucket* last_bucket = nullptr;

  uint32_t n_top = 0;
  uint32_t last_top = 0;  // slot of the last hit: a flood hits the same one
  uint32_t min_i = 0;     // slot of the smallest count, when !min_dirty
  bool min_dirty = true;
  uint64_t admit_mask = 0;  // admission: (random & admit_mask) == 0

  // The slot of the smallest count: a tournament (8, 4, 2, 1 independent
  // compares) rather than a chain of 15 dependent ones.
  uint32_t min_slot() const {
    static_assert(kTop == 16);
    uint32_t a[8];
    for (uint32_t j = 0; j < 8; ++j) a[j] = top_count[2 * j + 1] < top_count[2 * j] ? 2 * j + 1 : 2 * j;
    for (uint32_t j = 0; j < 4; ++j) a[j] = top_count[a[2 * j + 1]] < top_count[a[2 * j]] ? a[2 * j + 1] : a[2 * j];
    for (uint32_t j = 0; j < 2; ++j) a[j] = top_count[a[2 * j + 1]] < top_count[a[2 * j]] ? a[2 * j + 1] : a[2 * j];
    return top_count[a[1]] < top_count[a[0]] ? a[1] : a[0];
  }

  uint64_t next_random() {
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    return rng;
  }

  bool leak() {
    if (leak_log2 <= 0) return true;
    return (next_random() >> (64 - leak_log2)) == 0;  // the top leak_log2 bits all 0: 1 in 2^leak_log2
  }

  // Space-saving (Metwally et al. 2005) with random admission (RAP, Ben
  // Basat et al. 2017): a limited source not in the full list takes the
  // slot of the smallest count c, inheriting c + 1, but only with
  // probability ~1/(c + 1) (here 2^-ceil(log2(c + 1)), a mask on the PRNG).
  // A churning flood of sources then costs a 16-wide compare and a random
  // number per request instead of a search for the minimum, and light
  // sources stop pushing each other in and out; a heavy one still gets in
  // after about c of its requests and stays.
  void note_limited(uint32_t ipv4, int64_t now_ns) {
    uint32_t i = last_top;
    if (!(i < n_top && top_ip[i] == ipv4)) {
      uint32_t match = 0;
      for (uint32_t j = 0; j < kTop; ++j) match |= static_cast<uint32_t>(top_ip[j] == ipv4) << j;
      match &= (uint32_t{1} << n_top) - 1;  // n_top <= 16 < 32
      if (match != 0) {
        i = static_cast<uint32_t>(__builtin_ctz(match));
      } else if (n_top < kTop) {
        i = n_top++;
        top_ip[i] = ipv4;
        top_count[i] = 0;
        min_dirty = true;
      } else {
        if (min_dirty) refresh_min();
        if ((next_random() & admit_mask) != 0) return;  // not admitted this time
        i = min_i;
        top_ip[i] = ipv4;  // inherits the count it replaces
      }
      last_top = i;
    }
    if (i == min_i) min_dirty = true;
    ++top_count[i];
    top_last_ns[i] = now_ns;
  }

  // h: the source's hash (RateLimiter::hash).
  bool locate(uint32_t ipv4, uint64_t h, uint32_t now_t);
  uint32_t refill(Bucket& b, int w, uint32_t now_t) const;

  void refresh_min() {
    min_i = min_slot();
    const uint64_t c = std::min<uint64_t>(top_count[min_i] + 1, uint64_t{1} << 62);
    admit_mask = std::bit_ceil(c) - 1;
    min_dirty = false;
  }
};

RateLimiter::RateLimiter(size_t capacity, const RateLimitParams& p, uint64_t hash_key, bool xleave)
    : impl_(std::make_unique<Impl>()) {
  if (capacity < 1024 || (capacity & (capacity - 1)) != 0 || capacity > (size_t{1} << 30)) {
    throw std::invalid_argument("ratelimit: capacity " + std::to_string(capacity) +
                                " is not a power of two in 1024..2^30");
  }
  static_assert(sizeof(Bucket) == kBucketBytes);  // prefetch_v4 indexes by kBucketBytes
  Impl& m = *impl_;
  m.capacity = capacity;
  const size_t n_buckets = capacity / kWays;
  m.bucket_mask = n_buckets - 1;
  // A table of 2 MiB or more is 2 MiB-aligned and asks for transparent huge
  // pages: a random source then costs one cache miss and rarely a TLB miss
  // (a 16 MiB table is 4096 small pages, more than the TLB holds). A hint
  // only. An anonymous mapping is zero and untouched: no page is placed
  // here (the main lcore, maybe on another NUMA node), but where the
  // worker first touches it (touch_pages, before its loop).
  static_assert(kWays * sizeof(XleaveSlot) == kBucketBytes);  // the slots are the line after their bucket
  m.shift = xleave ? 7 : 6;
  const size_t table_bytes = n_buckets << m.shift;
  const bool huge = table_bytes >= kHugePage;
  m.table_bytes = huge ? (table_bytes + kHugePage - 1) / kHugePage * kHugePage : table_bytes;
  m.map_bytes = m.table_bytes + (huge ? kHugePage : 0);  // room to align to 2 MiB
  void* mem = mmap(nullptr, m.map_bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (mem == MAP_FAILED) throw std::bad_alloc();
  m.map_base = mem;
  const uintptr_t align = huge ? kHugePage : 4096;
  auto* table = reinterpret_cast<void*>((reinterpret_cast<uintptr_t>(mem) + align - 1) / align * align);
  if (huge) (void)madvise(table, m.table_bytes, MADV_HUGEPAGE);
  m.base = static_cast<uint8_t*>(table);
  table_ = m.base;
  bucket_shift_ = m.shift;
  xleave_ = xleave;
  bucket_mask_ = m.bucket_mask;
  uint64_t s = hash_key;
  k_add_ = splitmix64(s);
  k_mul_ = splitmix64(s) | 1;  // odd: the multiply is a bijection
  m.rng = splitmix64(s);
  if (m.rng == 0) m.rng = 0x2545F4914F6CDD1Dull;
  set_params(p);
}

RateLimiter::~RateLimiter() {
  if (impl_ && impl_->map_base) munmap(impl_->map_base, impl_->map_bytes);
}

void RateLimiter::touch_pages() {
  // A write per 4 KiB page (each line is still zero: an entry's key 0 with
  // last_tick 0 is an empty way), so each is faulted in by this thread.
  auto* p = reinterpret_cast<volatile uint8_t*>(impl_->base);
  for (size_t off = 0; off < impl_->table_bytes; off += 4096) p[off] = 0;
}

void RateLimiter::set_params(const RateLimitParams& p) {
  Impl& m = *impl_;
  const int il = std::clamp(p.interval_log2, -10, 20);
  // 2^il s in ticks, rounded up (so the rate never exceeds the configured one).
  const uint64_t interval_ns = il >= 0 ? (uint64_t{1000000000} << il) : (uint64_t{1000000000} >> -il);
  const uint64_t cost = std::max<uint64_t>(1, (interval_ns + kTickNs - 1) / kTickNs);
  const uint64_t burst = static_cast<uint64_t>(std::clamp(p.burst, 1, 255));
  const uint64_t burst_ticks = std::min<uint64_t>(cost * burst, UINT32_MAX / 2);
  m.cost_ticks = static_cast<uint32_t>(std::min<uint64_t>(cost, burst_ticks));
  m.burst_ticks = static_cast<uint32_t>(burst_ticks);
  const int64_t min_ns = std::max<int64_t>(0, p.min_interval_ns);
  m.min_ticks = static_cast<uint32_t>(std::min<int64_t>(min_ns >> kTickShift, INT32_MAX));
  m.leak_log2 = std::clamp(p.leak_log2, 0, 16);
}

// Finds ipv4's entry, or enters it (with a full bucket and a full excess
// budget), and makes it the last entry. True when it is new.
bool RateLimiter::Impl::locate(uint32_t ipv4, uint64_t h, uint32_t now_t) {
  // The previous request's source again (a flood, or a client's burst):
  // its entry is known, and the branch predicted, so the entry's loads do
  // not wait on the hash and the key compare. Always consistent: any
  // request, an insert included, makes its own entry the last one.
  if (ipv4 == last_ip && last_bucket != nullptr) return false;
  Bucket& b = bucket(h & bucket_mask);
  last_ip = ipv4;
  last_bucket = &b;
  // Keys only: an empty way has key 0 (a way is never emptied, only
  // replaced), so only 0.0.0.0 needs the emptiness test.
  uint32_t hit = 0;
  for (int i = 0; i < kWays; ++i) hit |= static_cast<uint32_t>(b.key[i] == ipv4) << i;
  if (ipv4 == 0) [[unlikely]] {
    for (int i = 0; i < kWays; ++i) hit &= ~(static_cast<uint32_t>(b.last_tick[i] == 0) << i);
  }
  if (hit != 0) {
    last_way = __builtin_ctz(hit);
    return false;
  }
  // Miss: an empty way, else the least recently seen one (ages modulo 2^32).
  uint32_t empty = 0;
  for (int i = 0; i < kWays; ++i) empty |= static_cast<uint32_t>(b.last_tick[i] == 0) << i;
  int v = 0;
  if (empty != 0) {
    v = __builtin_ctz(empty);
    ++fill;
  } else {
    uint32_t oldest = now_t - b.last_tick[0];
    for (int i = 1; i < kWays; ++i) {
      const uint32_t age = now_t - b.last_tick[i];
      v = age > oldest ? i : v;
      oldest = age > oldest ? age : oldest;
    }
    ++evictions;
  }
  ++inserts;
  if (has_slots()) slots_of(b)[v] = XleaveSlot{};
  b.key[v] = ipv4;
  b.last_tick[v] = now_t;
  b.credit_ticks[v] = burst_ticks;
  b.excess_ticks[v] = cost_ticks;
  last_way = v;
  return true;
}

// Credits the time since the entry's last request to its bucket and its
// excess budget (each up to its cap); returns the ticks credited. Wrap-safe;
// a negative difference is a long absence (see kTickShift), credited in full.
uint32_t RateLimiter::Impl::refill(Bucket& b, int w, uint32_t now_t) const {
  const auto diff = static_cast<int32_t>(now_t - b.last_tick[w]);
  const uint32_t elapsed = diff >= 0 ? static_cast<uint32_t>(diff) : burst_ticks;
  b.last_tick[w] = now_t;
  // credit <= burst_ticks < 2^31 and elapsed < 2^31: the sums fit.
  b.credit_ticks[w] = std::min(b.credit_ticks[w] + elapsed, burst_ticks);
  b.excess_ticks[w] = std::min(b.excess_ticks[w] + elapsed, cost_ticks);
  return elapsed;
}

RateVerdict RateLimiter::check_v4(uint32_t ipv4, int64_t now_ns) {
  Impl& m = *impl_;
  const uint32_t now_t = tick_of(now_ns);
  const bool fresh = m.locate(ipv4, hash(ipv4), now_t);
  Bucket& b = *m.last_bucket;
  const int w = m.last_way;
  const uint32_t elapsed = m.refill(b, w, now_t);
  const bool too_soon = !fresh && elapsed < m.min_ticks;  // min_ticks 0: never
  if (!too_soon && b.credit_ticks[w] >= m.cost_ticks) {
    b.credit_ticks[w] -= m.cost_ticks;
    return RateVerdict::kPass;
  }
  m.note_limited(ipv4, now_ns);
  if (b.excess_ticks[w] < m.cost_ticks) return RateVerdict::kDrop;
  b.excess_ticks[w] -= m.cost_ticks;
  return m.leak() ? RateVerdict::kLeak : RateVerdict::kKod;
}

bool RateLimiter::excess_v4(uint32_t ipv4, int64_t now_ns) {
  Impl& m = *impl_;
  const uint32_t now_t = tick_of(now_ns);
  m.locate(ipv4, hash(ipv4), now_t);
  Bucket& b = *m.last_bucket;
  const int w = m.last_way;
  m.refill(b, w, now_t);
  if (b.excess_ticks[w] < m.cost_ticks) return false;
  b.excess_ticks[w] -= m.cost_ticks;
  return true;
}

void RateLimiter::enter_v4(uint32_t ipv4, int64_t now_ns) {
  Impl& m = *impl_;
  const uint32_t now_t = tick_of(now_ns);
  m.locate(ipv4, hash(ipv4), now_t);
  m.refill(*m.last_bucket, m.last_way, now_t);  // seen now: the eviction's age
}

XleaveSlot* RateLimiter::last_xleave() {
  const Impl& m = *impl_;
  if (!m.has_slots() || m.last_bucket == nullptr) return nullptr;
  return &Impl::slots_of(*m.last_bucket)[m.last_way];
}

size_t RateLimiter::capacity() const { return impl_->capacity; }
size_t RateLimiter::fill() const { return impl_->fill; }
size_t RateLimiter::memory_bytes() const { return impl_->table_bytes + sizeof(Impl); }
uint64_t RateLimiter::inserts() const { return impl_->inserts; }
uint64_t RateLimiter::evictions() const { return impl_->evictions; }

void RateLimiter::top_limited(proto::LimiterStatus& status) const {
  const Impl& m = *impl_;
  uint32_t order[kTop];
  for (uint32_t i = 0; i < m.n_top; ++i) order[i] = i;
  std::sort(order, order + m.n_top, [&m](uint32_t a, uint32_t b) {
    return m.top_count[a] != m.top_count[b] ? m.top_count[a] > m.top_count[b] : m.top_ip[a] < m.top_ip[b];
  });
  status.n_top = m.n_top;
  for (uint32_t i = 0; i < kTop; ++i) {
    proto::LimitedSource& out = status.top[i];
    out = proto::LimitedSource{};
    if (i >= m.n_top) continue;
    const uint32_t ip = m.top_ip[order[i]];
    // ::ffff:a.b.c.d (RFC 4291 section 2.5.5.2)
    out.address[10] = 0xff;
    out.address[11] = 0xff;
    out.address[12] = static_cast<uint8_t>(ip >> 24);
    out.address[13] = static_cast<uint8_t>(ip >> 16);
    out.address[14] = static_cast<uint8_t>(ip >> 8);
    out.address[15] = static_cast<uint8_t>(ip);
    out.limited = m.top_count[order[i]];
    out.last_ns = m.top_last_ns[order[i]];
  }
}

// ---------------------------------------------------------------- ReplyCap

namespace {
constexpr int64_t kScale = 1000000000;  // tokens are answers * 1e9
}

void ReplyCap::set_rate(uint32_t rate_per_s) {
  rate_ = rate_per_s;
  burst_ = std::max<int64_t>(1, rate_per_s / 10);
  cap_ = burst_ * kScale;
  tokens_ = cap_;
  started_ = false;
}

bool ReplyCap::take(int64_t now_ns) {
  if (rate_ == 0) return true;
  if (!started_) {
    started_ = true;
    last_ns_ = now_ns;
  } else if (now_ns > last_ns_) {
    // At most 2 s are credited: 2e9 * 2^32 < 2^63, and a full refill takes
    // burst/rate <= 0.1 s (1 s for rates under 10).
    const auto gap_ns = static_cast<uint64_t>(now_ns) - static_cast<uint64_t>(last_ns_);  // no signed overflow
    const auto elapsed_ns = static_cast<int64_t>(std::min<uint64_t>(gap_ns, 2 * kScale));
    tokens_ = std::min(cap_, tokens_ + elapsed_ns * static_cast<int64_t>(rate_));
    last_ns_ = now_ns;
  }  // a backwards step credits nothing and keeps last_ns_
  if (tokens_ < kScale) return false;
  tokens_ -= kScale;
  return true;
}

}  // namespace ntp::dp
