#include "crypto/random.h"

#include <sys/random.h>

#include <cerrno>
#include <cstdint>

namespace ntp::crypto {

bool random_bytes(void* out, size_t len) {
  auto* p = static_cast<uint8_t*>(out);
  while (len > 0) {
    const ssize_t n = getrandom(p, len, 0);
    if (n < 0) {
      if (errno == EINTR) continue;
      return false;
    }
    p += n;
    len -= static_cast<size_t>(n);
  }
  return true;
}

}  // namespace ntp::crypto
