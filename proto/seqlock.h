// A single-writer seqlock that works across processes in shared memory.
// Readers never block the writer and never see a torn value; a reader that
// keeps finding a write in progress gives up after a bounded number of tries
// (a writer may have died mid-write), and the caller keeps its last copy.
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <type_traits>

#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
#endif

namespace ntp::proto {

inline void cpu_relax() {
#if defined(__x86_64__) || defined(__i386__)
  _mm_pause();
#endif
}

template <class T>
class Seqlock {
  static_assert(std::is_trivially_copyable_v<T>, "seqlock payload must be trivially copyable");
  static_assert(std::atomic<uint64_t>::is_always_lock_free, "needs address-free 64-bit atomics");
  static constexpr size_t kWords = (sizeof(T) + 7) / 8;

 public:
  // Single writer. Every word is an atomic so that concurrent readers are
  // free of data races in the C++ memory model (Boehm, "Can seqlocks get
  // along with programming language memory models?").
  void store(const T& value) {
    uint64_t w[kWords] = {};
    std::memcpy(w, &value, sizeof(T));
    // An odd sequence means a previous writer (another process) died
    // mid-write; carry on from it so readers keep seeing "in progress".
    const uint64_t s = seq_.load(std::memory_order_relaxed) & ~uint64_t{1};
    seq_.store(s + 1, std::memory_order_relaxed);
    std::atomic_thread_fence(std::memory_order_release);
    for (size_t i = 0; i < kWords; i++) words_[i].store(w[i], std::memory_order_relaxed);
    seq_.store(s + 2, std::memory_order_release);
  }

  // Returns false, leaving out untouched, when every try met a write in
  // progress or a changed sequence.
  bool try_load(T& out, int max_tries = 64) const {
    for (int t = 0; t < max_tries; t++) {
      const uint64_t s1 = seq_.load(std::memory_order_acquire);
      if (s1 & 1) {
        cpu_relax();
        continue;
      }
      uint64_t w[kWords];
      for (size_t i = 0; i < kWords; i++) w[i] = words_[i].load(std::memory_order_relaxed);
      std::atomic_thread_fence(std::memory_order_acquire);
      if (seq_.load(std::memory_order_relaxed) == s1) {
        std::memcpy(&out, w, sizeof(T));
        return true;
      }
    }
    return false;
  }

  // Number of completed writes; 0 means never written.
  uint64_t generation() const { return seq_.load(std::memory_order_acquire) / 2; }

 private:
  std::atomic<uint64_t> seq_{0};
  std::atomic<uint64_t> words_[kWords] = {};
};

}  // namespace ntp::proto
