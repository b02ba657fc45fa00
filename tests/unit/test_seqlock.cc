// The single-writer seqlock (proto/seqlock.h): no torn reads under a writer
// at full speed, across threads and across processes (shared memory), a
// writer that died mid-write, and generation().
#include "proto/seqlock.h"

#include <gtest/gtest.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <new>
#include <thread>
#include <type_traits>
#include <vector>

namespace ntp::proto {
namespace {

// 80 bytes, every field derived from one counter: a read mixing two writes
// is inconsistent.
struct Payload {
  uint64_t n;
  uint64_t inv;
  uint64_t times3;
  uint64_t xored;
  uint64_t rot;
  uint64_t square;
  uint32_t lo, hi;
  uint64_t mixed;
  uint64_t tail;
};
static_assert(sizeof(Payload) >= 64);
static_assert(std::is_trivially_copyable_v<Payload>);

Payload make_payload(uint64_t n) {
  Payload p;
  p.n = n;
  p.inv = ~n;
  p.times3 = n * 3;
  p.xored = n ^ 0xdeadbeefcafef00dULL;
  p.rot = (n << 17) | (n >> 47);
  p.square = n * n;
  p.lo = static_cast<uint32_t>(n);
  p.hi = static_cast<uint32_t>(n >> 32) ^ 0x5a5a5a5au;
  p.mixed = n * 0x9E3779B97F4A7C15ULL;
  p.tail = n + 0x0123456789abcdefULL;
  return p;
}
bool consistent(const Payload& p) {
  const Payload want = make_payload(p.n);
  return std::memcmp(&p, &want, sizeof p) == 0;
}

// An odd size (not a multiple of 8): the last word is partly padding.
struct Odd61 {
  uint8_t b[61];
};
Odd61 make_odd(uint64_t n) {
  Odd61 o;
  for (size_t i = 0; i < sizeof o.b; i++) o.b[i] = static_cast<uint8_t>(n * 7 + i * 13 + (n >> 8));
  return o;
}
// Within one value b[i] - b[0] = 13 i (mod 256); bytes of two different
// values break that (unless 7 dn + d(n >> 8) = 0 mod 256).
bool consistent(const Odd61& o, uint64_t* n_out) {
  for (size_t i = 1; i < sizeof o.b; i++)
    if (static_cast<uint8_t>(o.b[i] - o.b[0]) != static_cast<uint8_t>(13 * i)) return false;
  if (n_out) *n_out = o.b[0];
  return true;
}

TEST(Seqlock, FreshIsGenerationZero) {
  Seqlock<Payload> lock;
  EXPECT_EQ(lock.generation(), 0u);
  // Never written: readable, all zero. Callers tell this case apart by
  // generation() == 0.
  Payload out = make_payload(99);
  EXPECT_TRUE(lock.try_load(out));
  const Payload zero{};
  EXPECT_EQ(std::memcmp(&out, &zero, sizeof out), 0);
}

TEST(Seqlock, StoreLoadAndGeneration) {
  Seqlock<Payload> lock;
  for (uint64_t i = 1; i <= 1000; i++) {
    lock.store(make_payload(i * 1000003));
    EXPECT_EQ(lock.generation(), i);
    Payload out{};
    ASSERT_TRUE(lock.try_load(out));
    EXPECT_EQ(out.n, i * 1000003);
    EXPECT_TRUE(consistent(out));
  }
  Seqlock<Odd61> odd;
  odd.store(make_odd(5));
  Odd61 o{};
  ASSERT_TRUE(odd.try_load(o));
  const Odd61 want = make_odd(5);
  EXPECT_EQ(std::memcmp(&o, &want, sizeof o), 0);
  EXPECT_EQ(odd.generation(), 1u);
}

TEST(Seqlock, ZeroTriesNeverReads) {
  Seqlock<Payload> lock;
  lock.store(make_payload(1));
  Payload out = make_payload(2);
  EXPECT_FALSE(lock.try_load(out, 0));
  EXPECT_EQ(out.n, 2u);
}

// One writer storing at full speed, two readers calling try_load millions of
// times between them: every successful read is one complete write, and a
// reader never sees the counter go backwards.
TEST(Seqlock, NoTornReadsUnderConcurrentWriter) {
  Seqlock<Payload> lock;
  lock.store(make_payload(0));
  std::atomic<bool> stop{false};
  std::atomic<uint64_t> written{0};
  std::thread writer([&] {
    uint64_t n = 1;
    while (!stop.load(std::memory_order_relaxed)) {
      lock.store(make_payload(n));
      written.store(n, std::memory_order_relaxed);
      n++;
    }
  });
  // At least this many calls each, and more (for at most 10 s) until the
  // reader has seen 100 different values: a writer storing back to back
  // leaves readers little room, and on a small loaded machine most of their
  // successful reads come while it is descheduled.
  constexpr uint64_t kCallsPerReader = 3000000;
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
  struct Stats {
    uint64_t calls = 0, ok = 0, failed = 0, torn = 0, backwards = 0, distinct = 0, gen_behind = 0;
  };
  std::vector<Stats> stats(2);
  std::vector<std::thread> readers;
  for (int r = 0; r < 2; r++) {
    readers.emplace_back([&, r] {
      Stats& s = stats[r];
      uint64_t last = 0;
      for (; s.calls < kCallsPerReader ||
             (s.distinct < 100 && ((s.calls & 0xFFFF) != 0 || std::chrono::steady_clock::now() < deadline));
           s.calls++) {
        Payload out;
        std::memset(&out, 0xFF, sizeof out);
        if (!lock.try_load(out)) {
          s.failed++;
          continue;
        }
        s.ok++;
        if (!consistent(out)) {
          s.torn++;
          continue;
        }
        if (out.n < last) s.backwards++;
        if (out.n != last) s.distinct++;
        last = out.n;
        // The write we saw completed, so the generation counts it (the
        // initial store is generation 1, value n is generation n + 1).
        if (lock.generation() < out.n + 1) s.gen_behind++;
      }
    });
  }
  for (auto& t : readers) t.join();
  stop = true;
  writer.join();
  const uint64_t total_writes = written.load();
  for (int r = 0; r < 2; r++) {
    SCOPED_TRACE(r);
    const Stats& s = stats[r];
    std::printf("reader %d: %llu ok, %llu gave up, %llu distinct values; %llu writes\n", r,
                static_cast<unsigned long long>(s.ok), static_cast<unsigned long long>(s.failed),
                static_cast<unsigned long long>(s.distinct), static_cast<unsigned long long>(total_writes));
    EXPECT_EQ(s.torn, 0u);
    EXPECT_EQ(s.backwards, 0u);
    EXPECT_EQ(s.gen_behind, 0u);
    EXPECT_EQ(s.ok + s.failed, s.calls);
    EXPECT_GE(s.calls, kCallsPerReader);
    // Progress: readers got through and saw the writer move.
    EXPECT_GT(s.ok, kCallsPerReader / 100);
    EXPECT_GE(s.distinct, 10u);
  }
  EXPECT_GT(total_writes, 1000u);
  EXPECT_EQ(lock.generation(), total_writes + 1);
}

TEST(Seqlock, NoTornReadsOddSizedPayload) {
  Seqlock<Odd61> lock;
  lock.store(make_odd(0));
  std::atomic<bool> stop{false};
  std::thread writer([&] {
    for (uint64_t n = 1; !stop.load(std::memory_order_relaxed); n++) lock.store(make_odd(n));
  });
  uint64_t ok = 0, torn = 0, changes = 0, prev = 0;
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
  for (uint64_t i = 0;
       i < 2000000 || (changes < 100 && ((i & 0xFFFF) != 0 || std::chrono::steady_clock::now() < deadline));
       i++) {
    Odd61 o;
    if (!lock.try_load(o)) continue;
    ok++;
    uint64_t n = 0;
    if (!consistent(o, &n)) torn++;
    if (n != prev) changes++;
    prev = n;
  }
  stop = true;
  writer.join();
  EXPECT_EQ(torn, 0u);
  EXPECT_GT(ok, 10000u);
  EXPECT_GT(changes, 10u);
}

// The writer and the reader in different processes, the seqlock in a
// MAP_SHARED mapping: what the channel does between dataplane and control.
TEST(Seqlock, AcrossProcessesInSharedMemory) {
  struct Shared {
    Seqlock<Payload> lock;
    std::atomic<uint32_t> go{0}, stop{0};
    std::atomic<uint64_t> last_written{0};
  };
  static_assert(std::atomic<uint32_t>::is_always_lock_free);
  void* mem = mmap(nullptr, sizeof(Shared), PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
  ASSERT_NE(mem, MAP_FAILED);
  Shared* sh = new (mem) Shared();
  sh->lock.store(make_payload(0));  // a fresh seqlock reads as all zeros (generation 0)
  const pid_t child = fork();
  ASSERT_GE(child, 0);
  if (child == 0) {  // the writer process: no gtest here
    while (sh->go.load() == 0) cpu_relax();
    uint64_t n = 1;
    for (; sh->stop.load(std::memory_order_relaxed) == 0; n++) sh->lock.store(make_payload(n));
    sh->last_written.store(n - 1);
    _exit(0);
  }
  sh->go.store(1);
  uint64_t ok = 0, torn = 0, backwards = 0, last = 0, distinct = 0;
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
  for (uint64_t i = 0;
       i < 1000000 || (distinct < 1000 && ((i & 0xFFFF) != 0 || std::chrono::steady_clock::now() < deadline));
       i++) {
    Payload out;
    if (!sh->lock.try_load(out)) continue;
    ok++;
    if (!consistent(out)) {
      torn++;
      continue;
    }
    if (out.n < last) backwards++;
    if (out.n != last) distinct++;
    last = out.n;
  }
  sh->stop.store(1);
  int status = 0;
  ASSERT_EQ(waitpid(child, &status, 0), child);
  EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0);
  std::printf("cross-process: %llu ok reads, %llu distinct values, %llu writes\n",
              static_cast<unsigned long long>(ok), static_cast<unsigned long long>(distinct),
              static_cast<unsigned long long>(sh->last_written.load()));
  EXPECT_EQ(torn, 0u);
  EXPECT_EQ(backwards, 0u);
  EXPECT_GT(ok, 0u);
  EXPECT_GE(distinct, 10u);
  Payload out{};
  ASSERT_TRUE(sh->lock.try_load(out));
  const uint64_t writes = sh->last_written.load();
  EXPECT_EQ(out.n, writes);
  EXPECT_TRUE(consistent(out));
  EXPECT_EQ(sh->lock.generation(), writes + 1);
  sh->~Shared();
  munmap(mem, sizeof(Shared));
}

// A writer (another process) that died between its first and last sequence
// store leaves an odd sequence and half-written words in shared memory. We
// make that state in the bytes of a seqlock that lives in a raw buffer, as
// it would in a mapping: odd sequence first (its first 8 bytes), payload
// words partly overwritten.
TEST(Seqlock, WriterDiedMidWrite) {
  using Lock = Seqlock<Payload>;
  static_assert(std::is_standard_layout_v<Lock>, "the sequence is the first member");
  alignas(Lock) unsigned char mem[sizeof(Lock)];
  Lock* lock = new (mem) Lock();
  lock->store(make_payload(1));
  lock->store(make_payload(2));
  ASSERT_EQ(lock->generation(), 2u);
  // The layout this test relies on: the sequence (2 writes = 4) comes first.
  uint64_t seq = 0;
  std::memcpy(&seq, mem, sizeof seq);
  ASSERT_EQ(seq, 4u);
  ASSERT_EQ(sizeof(Lock), 8 + sizeof(Payload));

  // The dead writer: sequence 5 (write in progress), first words of the
  // third value written, the rest still the second.
  const Payload third = make_payload(3);
  seq = 5;
  std::memcpy(mem, &seq, sizeof seq);
  std::memcpy(mem + 8, &third, 24);

  const Payload sentinel = make_payload(777);
  Payload out = sentinel;
  EXPECT_FALSE(lock->try_load(out, 1000));
  EXPECT_EQ(std::memcmp(&out, &sentinel, sizeof out), 0) << "out was touched";
  EXPECT_FALSE(lock->try_load(out));
  EXPECT_EQ(out.n, 777u);
  EXPECT_EQ(lock->generation(), 2u);  // completed writes only

  // A new writer (restarted process) recovers: the next store completes a
  // consistent value and an even sequence.
  lock->store(make_payload(4));
  std::memcpy(&seq, mem, sizeof seq);
  EXPECT_EQ(seq % 2, 0u);
  EXPECT_GT(seq, 5u);
  EXPECT_EQ(lock->generation(), 3u);
  ASSERT_TRUE(lock->try_load(out));
  EXPECT_EQ(out.n, 4u);
  EXPECT_TRUE(consistent(out));
  lock->~Lock();
}

// A reader that gives up returns in bounded time even with max_tries large.
TEST(Seqlock, GivesUpInBoundedTime) {
  using Lock = Seqlock<Payload>;
  alignas(Lock) unsigned char mem[sizeof(Lock)];
  Lock* lock = new (mem) Lock();
  lock->store(make_payload(1));
  const uint64_t odd = 3;
  std::memcpy(mem, &odd, sizeof odd);
  Payload out = make_payload(9);
  for (int tries : {1, 2, 64, 100000}) {
    EXPECT_FALSE(lock->try_load(out, tries)) << tries;
    EXPECT_EQ(out.n, 9u);
  }
  lock->~Lock();
}

}  // namespace
}  // namespace ntp::proto
