// Per-client rate limiting in a dataplane worker ([ratelimit]; chrony's
// ratelimit interval/burst/leak, the seed vendor's `ntp-service discard`):
// a fixed-size table of recent clients, each with a token bucket, filled and
// evicted without allocation or locks. One table per worker: RSS keeps a
// client on one queue, so on one worker (with W workers a client's limit is
// its worker's, not W times it; a source spread over queues by a NIC that
// hashes ports too would get up to W times its limit). Pure: the caller
// passes the time.
//
// What one source gets over D seconds, whatever its rate: at most burst +
// D/2^interval answers within the limit, plus one excess answer (a leak or
// a RATE/DENY KoD) at once and one more per 2^interval s. The table keeps
// time in ticks of 2^20 ns (~1 ms): the interval is rounded up to ticks
// (never faster than configured), min_interval down (a client spaced
// exactly min_interval is never limited; one a tick shorter may pass). An
// evicted client comes back as new, with a full bucket: a churn of more than
// about the table's size per interval makes the table forget, which the
// worker's ReplyCap bounds.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>

#include "proto/channel_abi.h"

namespace ntp::dp {

struct RateLimitParams {
  int interval_log2 = 3;      // minimum mean interval between requests, log2 s
  int burst = 8;              // requests allowed at once above the mean
  int leak_log2 = 2;          // over the limit: 1 in 2^leak_log2 still answered
  int64_t min_interval_ns = 0;  // a request sooner than this after the previous one is over the limit; 0: off
};

enum class RateVerdict : uint8_t {
  kPass,     // within the limit: answer
  kLeak,     // over the limit, but leaked: answer
  kKod,      // over the limit: a RATE kiss-o'-death may go (when access.kod), within the client's excess budget
  kDrop,     // over the limit: nothing goes (the client's excess budget is spent)
};

// What interleaved mode (RFC 9769) needs of a client, beside its bucket:
// the receive timestamp of our last answer to it, as sent, and when that
// answer really left (0: not yet, or it did not). Raw NTP timestamps.
struct XleaveSlot {
  uint64_t rx_raw;
  uint64_t tx_raw;
};
static_assert(sizeof(XleaveSlot) == 16);

// The worker's client table (chrony's clientlog: one entry per client holds
// its rate limit and, with interleaved service on, its XleaveSlot).
class RateLimiter {
 public:
  // capacity: entries, a power of two in 1024..2^30 (config
  // ratelimit.clients), else std::invalid_argument; 16 bytes each, in
  // buckets of 4 (one cache line), on huge pages from 2 MiB; xleave: 16
  // bytes more per entry, a bucket's slots in the line after it (the pair
  // is one 128-byte block: one page, and the adjacent-line prefetcher's).
  // hash_key: secret per worker (from getrandom), so that nobody can aim
  // spoofed sources at one bucket. Allocates the table here, never later.
  RateLimiter(size_t capacity, const RateLimitParams& p, uint64_t hash_key, bool xleave = false);
  ~RateLimiter();
  RateLimiter(const RateLimiter&) = delete;
  RateLimiter& operator=(const RateLimiter&) = delete;

  // One request from ipv4 (host order) at now_ns (monotonic ns; a step
  // backwards credits nothing). A new client starts with a full bucket.
  // Over the limit (no token, or sooner than min_interval): a leak with
  // probability 2^-leak_log2, else kKod, while the excess budget lasts;
  // beyond it kDrop. Each over-limit request counts in top_limited.
  RateVerdict check_v4(uint32_t ipv4, int64_t now_ns);
  // For a source that gets no service but may get a kiss-o'-death (a DENY
  // to a denied source): true when one may go now, at most one per
  // 2^interval_log2 s (the entry's excess budget, shared with check_v4's
  // leaks and RATE KoDs), so a spoofed victim gets no more than that. The
  // source is entered into the table like a client; its tokens are not used.
  bool excess_v4(uint32_t ipv4, int64_t now_ns);
  // A client that is not rate-limited (its access class), entered or found
  // only so that its XleaveSlot is kept: its tokens are not used.
  void enter_v4(uint32_t ipv4, int64_t now_ns);
  // The XleaveSlot of the entry the last check_v4, excess_v4 or enter_v4
  // found or made (a new entry's is zero); null without xleave. Valid until
  // the next of those calls may evict it: within one burst an evicted slot
  // is some other client's from then on, which its own request rewrites.
  XleaveSlot* last_xleave();
  bool has_xleave() const { return xleave_; }
  // Starts loading ipv4's bucket (one cache line) into the cache a few
  // requests before its check_v4, so the table's cache misses overlap
  // instead of coming one after another. Inline: it costs a call otherwise.
  void prefetch_v4(uint32_t ipv4) const {
    const uint8_t* line = table_ + ((hash(ipv4) & bucket_mask_) << bucket_shift_);
    prefetch_line(line);
    if (xleave_) prefetch_line(line + kBucketBytes);
  }

  // Faults in every page of the table from the calling thread, which Linux's
  // default (local) NUMA policy then places on that thread's node: the
  // worker calls it once on its own lcore before its loop (the constructor,
  // on the main lcore, touches none). Untouched, a page faults in at its
  // first use. Allocates nothing; not for the packet path.
  void touch_pages();

  // A configuration reload: new limits (the table is kept; a bucket above
  // the new burst is cut to it at its client's next request).
  void set_params(const RateLimitParams& p);

  size_t capacity() const;
  size_t fill() const;            // entries in use
  size_t memory_bytes() const;
  uint64_t inserts() const;       // clients entered
  uint64_t evictions() const;     // of which replaced another
  // The sources limited most (space-saving estimate with random admission:
  // a source with over 1/16 of the limited requests is in it but for bad
  // luck), most
  // first; fills status.n_top/top (not capacity/fill/memory_bytes: the
  // caller adds those). Not on the packet path: it sorts 16 entries.
  void top_limited(proto::LimiterStatus& status) const;

 private:
  static constexpr size_t kBucketBytes = 64;  // one cache line: 4 ways of 16 bytes (and 4 XleaveSlots)

  static void prefetch_line(const uint8_t* line) {
#if defined(__x86_64__)
    // As DPDK's rte_prefetch0: GCC 12 drops a __builtin_prefetch inlined
    // into the worker loop (measured: none left in worker_poll_once).
    asm volatile("prefetcht0 %[p]" : : [p] "m"(*reinterpret_cast<const volatile uint8_t*>(line)));
#else
    __builtin_prefetch(line, 1 /* for writing */, 3);
#endif
  }

  // Keyed mix: an attacker who does not know k_add_ and k_mul_ (derived
  // from the worker's secret hash_key) cannot aim sources at one bucket.
  uint64_t hash(uint32_t ipv4) const {
    uint64_t x = (static_cast<uint64_t>(ipv4) + k_add_) * k_mul_;
    x ^= x >> 32;
    x *= 0xD6E8FEB86659FD93ull;
    x ^= x >> 29;
    return x;
  }

  // Here, not in Impl, for the inline prefetch_v4.
  const uint8_t* table_ = nullptr;
  unsigned bucket_shift_ = 6;  // log2 of a bucket's stride: 64 bytes, 128 with its XleaveSlots
  bool xleave_ = false;
  uint64_t bucket_mask_ = 0;
  uint64_t k_add_ = 0;
  uint64_t k_mul_ = 0;

  struct Impl;
  std::unique_ptr<Impl> impl_;
};

// The worker's cap on answers to rate-limited clients per second (a
// reflection brake whatever the sources): a token bucket of rate_per_s
// with a burst of rate_per_s / 10 (at least 1). rate_per_s 0: no cap.
class ReplyCap {
 public:
  explicit ReplyCap(uint32_t rate_per_s = 0) { set_rate(rate_per_s); }
  // A new rate starts with a full burst.
  void set_rate(uint32_t rate_per_s);
  // True when one more answer may go at now_ns (monotonic ns).
  bool take(int64_t now_ns);

 private:
  uint32_t rate_ = 0;
  int64_t burst_ = 1;         // answers
  // Tokens scaled by 1e9: elapsed_ns * rate_ adds exactly what one
  // second's rate adds per ns, so take() needs no division.
  int64_t tokens_ = 0;
  int64_t cap_ = 0;           // burst_ * 1e9
  int64_t last_ns_ = 0;
  bool started_ = false;      // last_ns_ is a real time
};

}  // namespace ntp::dp
