// The client side of NTS (see nts_client.h).
#include "control/ntp/nts_client.h"

#include <algorithm>
#include <cstring>

#include "crypto/random.h"
#include "proto/inet.h"
#include "proto/ntp_packet.h"
#include "proto/nts.h"

namespace ntp::ctl {

namespace {

constexpr size_t kUidBytes = 32;    // RFC 8915 section 5.3: at least 32 octets
constexpr size_t kNonceBytes = 16;  // the authenticator's nonce (its padding rule's minimum, N_REQ)
constexpr size_t kMaxReplyBytes = 1024;  // what the channel carries is less (512)

}  // namespace

const char* to_string(NtsState s) {
  switch (s) {
    case NtsState::kKePending: return "ke pending";
    case NtsState::kOk: return "ok";
    case NtsState::kKeFailed: return "ke failed";
    case NtsState::kNak: return "nak";
    case NtsState::kNoCookies: return "no cookies";
  }
  return "?";
}

NtsSession::NtsSession(const config::Association& cfg, uint32_t assoc_id)
    : cfg_(cfg), assoc_id_(assoc_id), ntp_port_(cfg.port) {}

std::optional<NtsKeRequest> NtsSession::ke_due(int64_t now_ns) {
  if (ke_running_ || !cookies_.empty() || now_ns < next_ke_ns_) return std::nullopt;
  ke_running_ = true;
  next_ke_ns_ = now_ns + kKeMinGapNs;
  uint64_t tag = 0;
  do {
    if (!crypto::random_bytes(&tag, sizeof tag)) tag = ke_tag_ + 1;  // unique is all it needs to be
  } while (tag == 0 || tag == ke_tag_);
  ke_tag_ = tag;
  return NtsKeRequest{.tag = tag,
                      .assoc_id = assoc_id_,
                      .address = cfg_.address,
                      .ke_port = cfg_.nts_ke_port,
                      .name = cfg_.nts_name,
                      .ca_file = cfg_.nts_ca_file,
                      .pin_sha256 = cfg_.nts_pin_sha256};
}

int64_t NtsSession::next_ke_ns() const { return ke_running_ || !cookies_.empty() ? INT64_MAX : next_ke_ns_; }

void NtsSession::on_ke_result(uint64_t tag, NtsKeResult& r, int64_t now_ns) {
  if (!ke_running_ || tag != ke_tag_) {
    r.keys.wipe();
    return;
  }
  ke_running_ = false;
  // The next NTS-KE waits the back-off, whatever this one gave: only an
  // authenticated answer shows that its keys work (check_reply resets it).
  next_ke_ns_ = now_ns + ke_backoff_ns_;
  ke_backoff_ns_ = std::min(ke_backoff_ns_ * 2, kKeRetryMaxNs);
  std::string why = r.ok ? "" : r.error.empty() ? "NTS-KE failed" : r.error;
  if (r.ok && !r.ntp_server.empty() && proto::parse_ipv4(r.ntp_server) != cfg_.address)
    why = "NTS-KE named another NTP server, " + r.ntp_server + " (not supported: NTP goes to " +
          proto::ipv4_to_string(cfg_.address) + ")";
  else if (r.ok && r.cookies.empty())
    why = "NTS-KE gave no cookies";
  else if (r.ok && (!crypto::siv_key_init(c2s_, r.keys.c2s, sizeof r.keys.c2s) ||
                    !crypto::siv_key_init(s2c_, r.keys.s2c, sizeof r.keys.s2c)))
    why = "NTS-KE keys unusable";
  r.keys.wipe();
  if (!why.empty()) {
    c2s_.wipe();
    s2c_.wipe();
    cookies_.clear();
    uid_live_ = false;
    state_ = NtsState::kKeFailed;
    error_ = why;
    counters_.ke_failed++;
    return;
  }
  cookies_.clear();
  for (auto& c : r.cookies)
    if (!c.empty() && c.size() <= proto::kNtsMaxCookieBytes && cookies_.size() < proto::kNtsMaxCookiesPerReply)
      cookies_.push_back(std::move(c));
  // RFC 8915 section 4.1.8: without a Port Negotiation record, the port
  // the client would use anyway (the configured one).
  ntp_port_ = r.ntp_port != 0 ? r.ntp_port : cfg_.port;
  uid_live_ = false;  // an answer to a request under the old keys cannot be checked any more
  nak_seen_ = false;
  state_ = NtsState::kOk;
  error_.clear();
  counters_.ke_ok++;
}

size_t NtsSession::seal_request(uint8_t* pkt, size_t cap) {
  const size_t auth_bytes = proto::nts_authenticator_bytes(kNonceBytes, crypto::kSivTagBytes);
  if (nak_seen_) {
    // RFC 8915 section 5.7 (as chronyd): the last request was NAKed and no
    // authenticated answer came after it: the cookies are no good.
    nak_seen_ = false;
    cookies_.clear();
    uid_live_ = false;
    return 0;
  }
  if (cookies_.empty()) {
    if (state_ == NtsState::kOk) state_ = NtsState::kNoCookies;
    return 0;
  }
  const size_t cookie_field = proto::ef_field_bytes(cookies_.front().size());
  const size_t need = proto::kHeaderLen + proto::ef_field_bytes(kUidBytes) + cookie_field + auth_bytes;
  if (need > cap) return 0;
  const std::vector<uint8_t>& cookie = cookies_.front();
  // RFC 8915 section 5.7: one cookie comes back per cookie and placeholder
  // sent; ask for what brings the store back to eight, as fits in cap.
  constexpr size_t kMaxCookies = proto::kNtsMaxCookiesPerReply;
  size_t placeholders = kMaxCookies - std::min(cookies_.size(), kMaxCookies);  // the one sent included
  placeholders = std::min(placeholders, (cap - need) / cookie_field);

  uint8_t uid[kUidBytes];
  uint8_t nonce[kNonceBytes];
  if (!crypto::random_bytes(uid, sizeof uid) || !crypto::random_bytes(nonce, sizeof nonce)) return 0;
  size_t pos = proto::kHeaderLen;
  pos += proto::write_ef(pkt + pos, proto::kEfUniqueIdentifier, uid, kUidBytes);
  pos += proto::write_ef(pkt + pos, proto::kEfNtsCookie, cookie.data(), cookie.size());
  for (size_t i = 0; i < placeholders; ++i)
    pos += proto::write_ef(pkt + pos, proto::kEfNtsCookiePlaceholder, nullptr, cookie.size());
  // RFC 8915 section 5.6: the associated data is the packet up to the
  // authenticator; the plaintext is empty (nothing of ours is secret).
  const size_t at = pos;
  pos += proto::write_nts_authenticator(pkt + at, nonce, kNonceBytes, crypto::kSivTagBytes);
  if (!crypto::siv_seal(c2s_, nonce, kNonceBytes, pkt, at, nullptr, 0,
                        pkt + at + proto::nts_ciphertext_offset(kNonceBytes)))
    return 0;
  // Sent: the cookie is spent, the answer must carry this identifier.
  cookies_.pop_front();
  std::memcpy(uid_, uid, sizeof uid_);
  uid_live_ = true;
  return pos;
}

NtsReply NtsSession::check_reply(const uint8_t* pkt, size_t len) {
  if (!uid_live_ || len < proto::kHeaderLen) return NtsReply::kBad;
  const proto::NtsReplyView v = proto::parse_nts_reply(pkt, len, crypto::kSivTagBytes);
  if (v.unique_id == nullptr || v.unique_id_len != kUidBytes || std::memcmp(v.unique_id, uid_, kUidBytes) != 0)
    return NtsReply::kBad;
  const proto::NtpHeader h = proto::read_header(pkt);
  if (v.status == proto::NtsParse::kNoAuthenticator) {
    // RFC 8915 section 5.7: a NAK is a kiss of death NTSN echoing our
    // Unique Identifier, unauthenticated (the server could not open our
    // cookie): what it can cost is a new NTS-KE, held to kKeMinGapNs.
    // The identifier stays live: anybody on the path can read it and
    // send a NAK first, so the real answer may still come (see kNak).
    if (h.stratum != 0 || h.refid != proto::kKissNtsn) return NtsReply::kBad;
    if (!nak_seen_) counters_.naks++;
    nak_seen_ = true;
    state_ = NtsState::kNak;
    error_ = "the server could not open our cookie (NTS NAK)";
    return NtsReply::kNak;
  }
  if (!v.ok()) return NtsReply::kBad;
  uint8_t plain[kMaxReplyBytes];
  const size_t plain_len = v.ciphertext_len - crypto::kSivTagBytes;
  if (plain_len > sizeof plain ||
      !crypto::siv_open(s2c_, v.nonce, v.nonce_len, pkt, v.auth_at, v.ciphertext, v.ciphertext_len, plain))
    return NtsReply::kBad;
  uid_live_ = false;  // answered: a replay of it is bogus
  size_t pos = 0;
  proto::EfView f;
  while (proto::next_ef(plain, plain_len, pos, f) == proto::EfNext::kField)
    if (f.type == proto::kEfNtsCookie && f.body_len > 0 && f.body_len <= proto::kNtsMaxCookieBytes &&
        cookies_.size() < proto::kNtsMaxCookiesPerReply)
      cookies_.emplace_back(f.body, f.body + f.body_len);
  crypto::wipe_secret(plain, sizeof plain);
  nak_seen_ = false;
  state_ = NtsState::kOk;
  error_.clear();
  // The keys work: NTS-KE again as soon as the cookies need it.
  ke_backoff_ns_ = kKeRetryMinNs;
  next_ke_ns_ = 0;
  return NtsReply::kOk;
}

}  // namespace ntp::ctl
