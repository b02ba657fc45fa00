// ntp-control's NTS cookie keys: nts.cookie_keys_file as loaded, made when
// absent and rotated every nts.cookie_rotate_s (crypto::rotate_cookie_keys,
// secrets from getrandom), written back whole (crypto::write_cookie_keys)
// so that a restart opens the cookies handed out before it. The keys go to
// the NTS-KE server as a ring and to the dataplane through the segment;
// this class only decides and writes the file.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "config/config.h"
#include "crypto/nts_keys.h"

namespace ntp::ctl {

class CookieKeyKeeper {
 public:
  // nts's file (nothing when it names none). Absent with rotation on: no
  // keys yet (the first tick makes one). False with each error (file:line)
  // otherwise; the keys held stay as they were then.
  bool load(const config::Nts& nts, std::vector<std::string>& errors);

  struct Tick {
    bool changed = false;
    uint32_t added = 0;             // the new key's ID, 0: none
    std::vector<uint32_t> retired;  // IDs dropped
    std::string write_error;        // the file could not be written (the keys are used anyway)
  };
  // One rotation step at now_unix_s (nothing with cookie_rotate_s 0).
  Tick tick(int64_t now_unix_s);

  bool enabled() const { return !nts_.cookie_keys_file.empty(); }
  const std::vector<crypto::CookieKeyEntry>& keys() const { return keys_; }
  // The ring of the keys (null when there are none).
  std::shared_ptr<const crypto::CookieKeyRing> ring() const { return ring_; }
  uint32_t sealing_id() const { return keys_.empty() ? 0 : keys_.back().id; }

 private:
  void rebuild();
  config::Nts nts_;
  std::vector<crypto::CookieKeyEntry> keys_;
  std::shared_ptr<const crypto::CookieKeyRing> ring_;
};

}  // namespace ntp::ctl
