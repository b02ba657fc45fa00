// Secret random bytes from the kernel (getrandom(2)): keys, nonce seeds,
// hash keys. Off the hot path (one system call per use); the packet path
// draws from a NonceSource seeded here.
#pragma once

#include <cstddef>

namespace ntp::crypto {

// len bytes into out; false only when the kernel has no getrandom (ENOSYS,
// before Linux 3.17) or refuses: then nothing safe can be made.
bool random_bytes(void* out, size_t len);

}  // namespace ntp::crypto
