// Per-client rate limiting: a set-associative table of token buckets
// (chrony's clientlog.c model: a request costs a token, tokens come back at
// one per 2^interval s up to burst, a limited request leaks with probability
// 2^-leak) plus an excess budget so that over-limit answers (leaks and KoDs)
// to one source are bounded whatever its rate. See ratelimit.h.
#include "dataplane/ratelimit.h"

#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <new>
#include <stdexcept>
#include <string>

namespace ntp::dp {
namespace {

// Time in the table is kept in ticks of 2^20 ns (~1.05 ms): 32 bits last
// 52 days, differences are taken modulo 2^32 and read as signed (a gap of
// more than ~26 days reads as a backwards step: no refill, see check_v4).
constexpr int kTickShift = 20;
constexpr int64_t kTickNs = int64_t{1} << kTickShift;
constexpr int kWays = 4;  // 4 x 16 B = one cache line per bucket

// One client. Credits are time in ticks (a GCRA-like token bucket): a
// request costs cost_ticks, the elapsed time is credited exactly, so no
// rounding accumulates between requests and no multiply or divide is needed.
struct Entry {
  uint32_t key;           // IPv4 host order; IPv6 later: the upper half of a 64-bit keyed hash (the lower half picks the bucket)
  uint32_t last_tick;     // last request; 0: the way is empty (see tick_of)
  uint32_t credit_ticks;  // token bucket: burst * cost_ticks at most
  uint32_t excess_ticks;  // excess budget: cost_ticks at most (one excess answer)
};
static_assert(sizeof(Entry) == 16);

struct alignas(64) Bucket {
  Entry way[kWays];
};
static_assert(sizeof(Bucket) == 64);

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

struct TopSlot {
  uint32_t ipv4;
  uint64_t count;  // space-saving estimate (an upper bound of the true count)
  int64_t last_ns;
};

}  // namespace

struct RateLimiter::Impl {
  Bucket* buckets = nullptr;
  uint64_t bucket_mask = 0;
  size_t capacity = 0;
  // Keyed mix: an attacker who does not know these cannot aim sources at
  // one bucket (the seeds are derived from the worker's secret hash_key).
  uint64_t k_add = 0;
  uint64_t k_mul = 0;
  uint64_t rng = 0;  // xorshift64 state, never 0

  // Parameters in ticks (set_params).
  uint32_t cost_ticks = 1;      // 2^interval_log2 s, rounded up: never more than the configured rate
  uint32_t burst_ticks = 1;     // burst * cost_ticks
  uint32_t min_ticks = 0;       // min_interval_ns rounded down: a request spaced min_interval is never limited
  int leak_log2 = 0;

  size_t fill = 0;
  uint64_t inserts = 0;
  uint64_t evictions = 0;

  TopSlot top[proto::kTopLimitedSources] = {};
  uint32_t n_top = 0;
  uint32_t last_top = 0;  // slot of the last hit: a flood hits the same one

  uint64_t hash(uint32_t ipv4) const {
    uint64_t x = (static_cast<uint64_t>(ipv4) + k_add) * k_mul;
    x ^= x >> 32;
    x *= 0xD6E8FEB86659FD93ull;
    x ^= x >> 29;
    return x;
  }

  bool leak() {
    if (leak_log2 <= 0) return true;
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    return (rng >> (64 - leak_log2)) == 0;  // the top leak_log2 bits all 0: 1 in 2^leak_log2
  }

  // Space-saving (Metwally et al. 2005): a source not in the list replaces
  // the one with the smallest count and inherits it + 1.
  void note_limited(uint32_t ipv4, int64_t now_ns) {
    if (last_top < n_top && top[last_top].ipv4 == ipv4) {
      ++top[last_top].count;
      top[last_top].last_ns = now_ns;
      return;
    }
    uint32_t min_i = 0;
    for (uint32_t i = 0; i < n_top; ++i) {
      if (top[i].ipv4 == ipv4) {
        ++top[i].count;
        top[i].last_ns = now_ns;
        last_top = i;
        return;
      }
      if (top[i].count < top[min_i].count) min_i = i;
    }
    if (n_top < proto::kTopLimitedSources) {
      top[n_top] = TopSlot{ipv4, 1, now_ns};
      last_top = n_top++;
      return;
    }
    top[min_i] = TopSlot{ipv4, top[min_i].count + 1, now_ns};
    last_top = min_i;
  }
};

RateLimiter::RateLimiter(size_t capacity, const RateLimitParams& p, uint64_t hash_key) : impl_(std::make_unique<Impl>()) {
  if (capacity < 1024 || (capacity & (capacity - 1)) != 0 || capacity > (size_t{1} << 30)) {
    throw std::invalid_argument("ratelimit: capacity " + std::to_string(capacity) +
                                " is not a power of two in 1024..2^30");
  }
  Impl& m = *impl_;
  m.capacity = capacity;
  const size_t n_buckets = capacity / kWays;
  m.bucket_mask = n_buckets - 1;
  void* mem = std::aligned_alloc(alignof(Bucket), n_buckets * sizeof(Bucket));
  if (mem == nullptr) throw std::bad_alloc();
  std::memset(mem, 0, n_buckets * sizeof(Bucket));
  m.buckets = static_cast<Bucket*>(mem);
  uint64_t s = hash_key;
  m.k_add = splitmix64(s);
  m.k_mul = splitmix64(s) | 1;  // odd: the multiply is a bijection
  m.rng = splitmix64(s);
  if (m.rng == 0) m.rng = 0x2545F4914F6CDD1Dull;
  set_params(p);
}

RateLimiter::~RateLimiter() {
  if (impl_) std::free(impl_->buckets);
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

RateVerdict RateLimiter::check_v4(uint32_t ipv4, int64_t now_ns) {
  Impl& m = *impl_;
  const uint32_t now_t = tick_of(now_ns);
  Bucket& b = m.buckets[m.hash(ipv4) & m.bucket_mask];

  Entry* e = nullptr;
  for (Entry& w : b.way) {
    if (w.key == ipv4 && w.last_tick != 0) {
      e = &w;
      break;
    }
  }
  if (e == nullptr) {
    // Miss: an empty way, else the least recently seen one.
    Entry* victim = &b.way[0];
    uint32_t oldest_age = 0;
    bool empty = false;
    for (Entry& w : b.way) {
      if (w.last_tick == 0) {
        victim = &w;
        empty = true;
        break;
      }
      const uint32_t age = now_t - w.last_tick;  // modulo 2^32
      if (age >= oldest_age) {
        oldest_age = age;
        victim = &w;
      }
    }
    if (empty) {
      ++m.fill;
    } else {
      ++m.evictions;
    }
    ++m.inserts;
    // A new client starts with a full bucket and a full excess budget.
    *victim = Entry{ipv4, now_t, m.burst_ticks - m.cost_ticks, m.cost_ticks};
    return RateVerdict::kPass;
  }

  // Elapsed ticks, wrap-safe; a backwards step (negative) credits nothing
  // and keeps last_tick, so the stepped-over time is not credited twice.
  const auto diff = static_cast<int32_t>(now_t - e->last_tick);
  uint32_t elapsed = 0;
  if (diff > 0) {
    elapsed = static_cast<uint32_t>(diff);
    e->last_tick = now_t;
  }
  const bool too_soon = m.min_ticks != 0 && elapsed < m.min_ticks;
  e->credit_ticks = static_cast<uint32_t>(std::min<uint64_t>(uint64_t{e->credit_ticks} + elapsed, m.burst_ticks));
  e->excess_ticks = static_cast<uint32_t>(std::min<uint64_t>(uint64_t{e->excess_ticks} + elapsed, m.cost_ticks));

  if (!too_soon && e->credit_ticks >= m.cost_ticks) {
    e->credit_ticks -= m.cost_ticks;
    return RateVerdict::kPass;
  }
  m.note_limited(ipv4, now_ns);
  if (e->excess_ticks < m.cost_ticks) return RateVerdict::kDrop;
  e->excess_ticks -= m.cost_ticks;
  return m.leak() ? RateVerdict::kLeak : RateVerdict::kKod;
}

size_t RateLimiter::capacity() const { return impl_->capacity; }
size_t RateLimiter::fill() const { return impl_->fill; }
size_t RateLimiter::memory_bytes() const { return impl_->capacity * sizeof(Entry) + sizeof(Impl); }
uint64_t RateLimiter::inserts() const { return impl_->inserts; }
uint64_t RateLimiter::evictions() const { return impl_->evictions; }

void RateLimiter::top_limited(proto::LimiterStatus& status) const {
  const Impl& m = *impl_;
  TopSlot sorted[proto::kTopLimitedSources];
  std::copy(m.top, m.top + m.n_top, sorted);
  std::sort(sorted, sorted + m.n_top, [](const TopSlot& a, const TopSlot& b) {
    return a.count != b.count ? a.count > b.count : a.ipv4 < b.ipv4;
  });
  status.n_top = m.n_top;
  for (uint32_t i = 0; i < proto::kTopLimitedSources; ++i) {
    proto::LimitedSource& out = status.top[i];
    out = proto::LimitedSource{};
    if (i >= m.n_top) continue;
    // ::ffff:a.b.c.d (RFC 4291 section 2.5.5.2)
    out.address[10] = 0xff;
    out.address[11] = 0xff;
    out.address[12] = static_cast<uint8_t>(sorted[i].ipv4 >> 24);
    out.address[13] = static_cast<uint8_t>(sorted[i].ipv4 >> 16);
    out.address[14] = static_cast<uint8_t>(sorted[i].ipv4 >> 8);
    out.address[15] = static_cast<uint8_t>(sorted[i].ipv4);
    out.limited = sorted[i].count;
    out.last_ns = sorted[i].last_ns;
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
