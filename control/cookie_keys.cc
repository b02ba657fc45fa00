// ntp-control's NTS cookie keys (see cookie_keys.h).
#include "control/cookie_keys.h"

#include <algorithm>
#include <cstdlib>

#include "crypto/random.h"

namespace ntp::ctl {

bool CookieKeyKeeper::load(const config::Nts& nts, std::vector<std::string>& errors) {
  if (nts.cookie_keys_file.empty()) {
    nts_ = nts;
    keys_.clear();
    rebuild();
    return true;
  }
  crypto::CookieKeysFile f = crypto::load_cookie_keys(nts.cookie_keys_file);
  if (f.absent && nts.cookie_rotate_s > 0) {
    f.errors.clear();
    f.keys.clear();
  }
  if (!f.ok()) {
    for (const crypto::KeyError& e : f.errors) errors.push_back(e.to_string());
    return false;
  }
  nts_ = nts;
  keys_ = std::move(f.keys);
  rebuild();
  return true;
}

CookieKeyKeeper::Tick CookieKeyKeeper::tick(int64_t now_unix_s) {
  Tick t;
  if (!enabled() || nts_.cookie_rotate_s <= 0) return t;
  std::vector<uint32_t> before;
  for (const auto& k : keys_) before.push_back(k.id);
  bool random_ok = true;
  t.changed = crypto::rotate_cookie_keys(keys_, now_unix_s, nts_.cookie_rotate_s,
                                         static_cast<size_t>(nts_.cookie_old_keys), [&](uint8_t* p, size_t n) {
                                           if (!crypto::random_bytes(p, n)) random_ok = false;
                                         });
  if (!random_ok) std::abort();  // no kernel randomness: no key can be made safely
  if (!t.changed) return t;
  for (const auto& k : keys_)
    if (std::find(before.begin(), before.end(), k.id) == before.end()) t.added = k.id;
  for (uint32_t id : before)
    if (std::none_of(keys_.begin(), keys_.end(), [id](const auto& k) { return k.id == id; })) t.retired.push_back(id);
  crypto::write_cookie_keys(nts_.cookie_keys_file, keys_, t.write_error);
  rebuild();
  return t;
}

void CookieKeyKeeper::rebuild() {
  if (keys_.empty()) {
    ring_.reset();
    return;
  }
  auto r = std::make_shared<crypto::CookieKeyRing>();
  if (!crypto::build_cookie_ring(keys_, *r, nullptr)) {
    ring_.reset();
    return;
  }
  ring_ = std::move(r);
}

}  // namespace ntp::ctl
