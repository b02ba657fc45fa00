// libFuzzer target: dp::respond on arbitrary NTP payloads.
//
// Input: a 64-byte prefix that chooses the ReplyParams, then the payload.
//   prefix[0] bit 0-1 leap, bit 2 synchronized, bit 3 serving,
//             bit 4: build the params with reply_params() from a fuzzed
//             ServerStateData (bit 5: have_state) instead of directly;
//             bit 6: that state announces its leap at a fuzzed leap_ns
//             around now, and the request arrived a fuzzed time before now
//   prefix[1..]  the fields, read in order (see read_params below)
// The payload is copied into a heap buffer of exactly the size respond()'s
// contract promises (max(len, kMaxReplyLen)), so ASan catches any write past
// it. Invariants:
//  - kReply without a MAC: reply_len is 48 or 52 (<= kMaxReplyLen); the reply parses,
//    mode 4, same version, the fields are the params', origin = the
//    request's transmit, receive = rx, transmit zero (stamped later);
//    a 52-byte reply ends in a zero crypto-NAK
//  - kToControl / kDrop: the payload is left untouched (the worker copies
//    it to the control plane after the decision)
//  - reply_params(): unsynchronized <=> leap 3 and stratum 0; synchronized
//    => stratum 1..15
//  - around a leap: a request received before leap_ns gets the state's
//    warning (LI 1/2), one received at or after it LI 0
//  - no reply larger than its request (a crypto-NAK answers a longer MAC)
//  - on copies of every request classify_request accepts:
//    kiss_of_death() (RATE and DENY, the code from prefix[63]) only for
//    NTPv4, otherwise nothing written; a KoD is 48 bytes, LI 3, mode 4,
//    stratum 0, the kiss code, the client's poll, origin = receive =
//    transmit = the request's transmit, reply_sum the sum of its words;
//    answer(kSymmetricPassive) is respond()'s reply but mode 2
//  - authenticated requests, against a fixed table of five keys (one per
//    type, ids 1..5): prefix[0] bit 7 replaces the payload's tail after its
//    first 48 bytes by a MAC of key 1 + (prefix[63] >> 1) % 6 (6: id 77,
//    unknown) in the form (prefix[63] >> 4) % 5: the full digest, 20 bytes,
//    the full digest with a flipped bit, 4 bytes short, or 36 bytes of a
//    16-byte type; on any input: a reply with a MAC (d.mac_key) is the
//    request's length or shorter, its key ID the request's, and after
//    stamping and seal_reply it verifies with the key (check_mac kOk) and
//    its reply_sum plus the stamp's and the seal's words is the sum of its
//    words; a request whose MAC verifies is always answered with one, a
//    valid MAC made here always verifies, a mutilated one never does
#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <optional>
#include <span>

#include "crypto/mac.h"
#include "dataplane/responder.h"
#include "proto/ntp_packet.h"

namespace {

using namespace ntp;

constexpr size_t kPrefixLen = 64;

[[noreturn]] void fail(const char* what, size_t size) {
  std::fprintf(stderr, "fuzz_responder: invariant violated: %s (payload %zu bytes)\n", what, size);
  std::abort();
}

struct Reader {
  const uint8_t* p;
  template <class T>
  T get() {
    T v;
    std::memcpy(&v, p, sizeof v);
    p += sizeof v;
    return v;
  }
};

}  // namespace

namespace {

// One key of each type (fixed secrets: the fuzzer makes valid MACs itself).
const crypto::KeyTable& fuzz_keys() {
  static const crypto::KeyTable table = [] {
    crypto::KeyTable t;
    const uint8_t secret[32] = {0x2B, 0x7E, 0x15, 0x16, 0x28, 0xAE, 0xD2, 0xA6, 0xAB, 0xF7, 0x15,
                                0x88, 0x09, 0xCF, 0x4F, 0x3C, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16};
    const crypto::MacType types[] = {crypto::MacType::kAes128Cmac, crypto::MacType::kHmacSha256,
                                     crypto::MacType::kSha256, crypto::MacType::kSha1, crypto::MacType::kMd5};
    for (uint32_t i = 0; i < 5; i++) {
      crypto::MacKey k;
      if (!crypto::mac_key_init(k, i + 1, types[i], secret, i == 0 ? 16 : 20 + i) || !t.insert(k)) std::abort();
    }
    return t;
  }();
  return table;
}

uint64_t sum_words(const uint8_t* b, size_t n) {
  uint64_t sum = 0;
  for (size_t i = 0; i < n; i += 4) sum += proto::load_be32(b + i);
  return sum;
}

// kiss_of_death and the stateless mode-2 answer on copies of the request.
void check_kod_and_passive(const uint8_t* req, size_t len, proto::NtpTimestamp rx, const dp::ReplyParams& p,
                           uint8_t choice) {
  const size_t cap = std::max(len, dp::kMaxReplyLen);
  auto k = std::make_unique<uint8_t[]>(cap);
  std::memcpy(k.get(), req, len);
  std::memset(k.get() + len, 0xA5, cap - len);
  const dp::NtpRequest q = dp::classify_request(k.get(), len);
  if (!q.ok) {
    if (std::memcmp(k.get(), req, len) != 0) fail("classify_request wrote", len);
    return;
  }
  const uint32_t code = choice & 1 ? proto::kKissDeny : proto::kKissRate;
  const dp::NtpDecision kd = dp::kiss_of_death(k.get(), q, code);
  if (q.version != 4) {
    if (kd.action == dp::NtpAction::kReply) fail("a KoD to an NTPv1-3 request", len);
    if (std::memcmp(k.get(), req, len) != 0) fail("a refused KoD wrote", len);
  } else {
    if (kd.action != dp::NtpAction::kReply || kd.reply_len != proto::kHeaderLen) fail("a KoD is not 48 bytes", len);
    if (kd.reply_len > len) fail("a KoD larger than its request", len);
    const uint8_t* h = k.get();
    if (h[0] != 0xE4 || h[1] != 0 || h[2] != req[2]) fail("KoD LI/VN/mode, stratum or poll", len);
    if (proto::load_be32(h + 12) != code) fail("KoD kiss code", len);
    for (int at : {24, 32, 40})
      if (std::memcmp(h + at, req + 40, 8) != 0) fail("KoD timestamps are not the request's transmit", len);
    if (std::memcmp(h + 3, req + 3, 9) != 0 || std::memcmp(h + 16, req + 16, 8) != 0)
      fail("KoD changed the client's own fields", len);
    if (kd.reply_sum != sum_words(h, proto::kHeaderLen)) fail("KoD reply_sum is not the sum of its words", len);
    if (std::memcmp(h + proto::kHeaderLen, req + proto::kHeaderLen, len - proto::kHeaderLen) != 0)
      fail("KoD wrote past its 48 bytes", len);
  }
  // The stateless passive answer: the server reply's bytes but mode 2.
  auto a = std::make_unique<uint8_t[]>(cap), b = std::make_unique<uint8_t[]>(cap);
  std::memcpy(a.get(), req, len);
  std::memcpy(b.get(), req, len);
  const dp::NtpDecision da = dp::answer(a.get(), q, rx, p, proto::Mode::kSymmetricPassive, &fuzz_keys());
  const dp::NtpDecision db = dp::answer(b.get(), q, rx, p, proto::Mode::kServer, &fuzz_keys());
  if (da.auth != db.auth || da.mac_key != db.mac_key) fail("passive answer's MAC differs", len);
  if (da.reply_len != db.reply_len || da.reply_len > len) fail("passive answer length", len);
  if ((a[0] & 7) != 2 || (b[0] & 7) != 4 || (a[0] & 0xF8) != (b[0] & 0xF8)) fail("passive answer LI/VN/mode", len);
  if (std::memcmp(a.get() + 1, b.get() + 1, da.reply_len - 1) != 0) fail("passive answer differs beyond the mode", len);
  if (da.reply_sum != db.reply_sum - 2 * (uint64_t{1} << 24)) fail("passive answer's reply_sum", len);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size < kPrefixLen) return -1;
  Reader rd{data};
  const uint8_t flags = rd.get<uint8_t>();
  const bool serving = flags & 8;
  dp::ReplyParams p;
  proto::NtpTimestamp rx;
  std::optional<proto::Leap> expect_leap;  // set when the state announces a leap
  if (flags & 16) {
    proto::ServerStateData s;
    s.leap = rd.get<uint8_t>() & 3;
    s.stratum = rd.get<uint8_t>();
    s.precision_log2 = rd.get<int8_t>();
    s.synchronized = rd.get<uint8_t>() & 1;
    s.refid = rd.get<uint32_t>();
    s.reference_time_ns = rd.get<int64_t>();
    s.root_delay_ns = rd.get<int64_t>();
    s.root_dispersion_ns = rd.get<int64_t>();
    s.published_ns = rd.get<int64_t>();
    s.holdover_ns = rd.get<int64_t>();
    s.dispersion_rate_ppb = rd.get<uint32_t>();
    const int64_t now_ns = rd.get<int64_t>();
    const int64_t leap_from_now_ns = int64_t{rd.get<int8_t>()} * 100'000'000;  // +-12.8 s
    const int64_t rx_before_now_ns = int64_t{rd.get<uint8_t>()} * 10'000'000;  // 0..2.55 s: a NIC stamp older than the burst
    // 63 of the 64 prefix bytes read
    if (flags & 64) {
      const __int128 leap_ns = static_cast<__int128>(now_ns) + leap_from_now_ns;
      s.leap_ns = leap_ns > INT64_MAX || leap_ns < INT64_MIN ? 0 : static_cast<int64_t>(leap_ns);
    }
    const bool have_state = flags & 32;
    p = dp::reply_params(s, have_state, now_ns);
    if (p.synchronized) {
      if (p.leap == proto::Leap::kUnsynchronized || p.stratum < 1 || p.stratum > proto::kStratumMax)
        fail("reply_params: synchronized with leap 3 or stratum outside 1..15", size);
      if (!have_state || !s.synchronized) fail("reply_params: synchronized without a synchronized state", size);
    } else if (p.leap != proto::Leap::kUnsynchronized || p.stratum != proto::kStratumUnspecified) {
      fail("reply_params: unsynchronized but not leap 3 / stratum 0", size);
    }
    if (p.precision_log2 != s.precision_log2) fail("reply_params: precision not the state's", size);
    const int64_t rx_ns = now_ns < INT64_MIN + rx_before_now_ns ? now_ns : now_ns - rx_before_now_ns;
    rx = proto::ntp_from_unix_ns(rx_ns);
    if (p.synchronized && s.leap_ns != 0 && (s.leap == 1 || s.leap == 2)) {
      // What the reply must announce: the warning until the leap's midnight.
      const proto::Leap want = rx_ns < s.leap_ns ? static_cast<proto::Leap>(s.leap) : proto::Leap::kNone;
      expect_leap = want;
    }
  } else {
    p.leap = static_cast<proto::Leap>(flags & 3);
    p.synchronized = flags & 4;
    p.stratum = rd.get<uint8_t>();
    p.precision_log2 = rd.get<int8_t>();
    p.root_delay = rd.get<uint32_t>();
    p.root_dispersion = rd.get<uint32_t>();
    p.refid = rd.get<uint32_t>();
    p.reference = proto::NtpTimestamp::from_raw(rd.get<uint64_t>());
    rx = proto::NtpTimestamp::from_raw(rd.get<uint64_t>());
  }

  const uint8_t* req = data + kPrefixLen;
  size_t len = size - kPrefixLen;
  // An authenticated request made here: the payload's first 48 bytes and a
  // MAC (see the top).
  enum class Made { kNone, kValid, kMutilated } made = Made::kNone;
  uint8_t keyed[proto::kHeaderLen + 4 + crypto::kMaxDigestBytes + 4];
  if ((flags & 128) && len >= proto::kHeaderLen) {
    const uint8_t sel = data[kPrefixLen - 1];
    const uint32_t id = 1 + (sel >> 1) % 6;
    const unsigned form = (sel >> 4) % 5;
    std::memcpy(keyed, req, proto::kHeaderLen);
    const crypto::MacKey* k = fuzz_keys().find(id == 6 ? 1 : id);
    size_t digest = form == 1 ? crypto::kV4DigestBytes : k->digest_bytes;
    size_t n = crypto::append_mac(*k, keyed, proto::kHeaderLen, digest);
    made = Made::kValid;
    // A digest cut to 20 bytes is NTPv4's alone (RFC 7822); NTPv3 and older carry it whole.
    if (form == 1 && k->digest_bytes > crypto::kV4DigestBytes && ((keyed[0] >> 3) & 7) != 4) made = Made::kMutilated;
    if (id == 6) proto::store_be32(keyed + proto::kHeaderLen, 77), made = Made::kMutilated;
    // form 1 of a 16-byte type (CMAC, MD5): append_mac writes its full 16, a valid MAC
    if (form == 2) keyed[n - 1] ^= 0x10, made = Made::kMutilated;
    if (form == 3) n -= 4, made = Made::kMutilated;
    if (form == 4 && k->digest_bytes == 16) std::memset(keyed + n, 0x5A, 16), n += 16, made = Made::kMutilated;
    req = keyed;
    len = proto::kHeaderLen + n;
  }
  const size_t cap = std::max(len, dp::kMaxReplyLen);
  auto buf = std::make_unique<uint8_t[]>(cap);
  std::memcpy(buf.get(), req, len);
  std::memset(buf.get() + len, 0xA5, cap - len);

  check_kod_and_passive(req, len, rx, p, data[kPrefixLen - 1]);
  const dp::NtpDecision d = dp::respond(buf.get(), len, rx, p, serving, &fuzz_keys());
  if (d.action != dp::NtpAction::kReply) {
    if (std::memcmp(buf.get(), req, len) != 0) fail("a packet not answered was modified", len);
    if (d.action == dp::NtpAction::kToControl) {
      const auto r = proto::parse({req, len});
      if (!r.ok() || (r.packet.header.mode != proto::Mode::kSymmetricActive &&
                      r.packet.header.mode != proto::Mode::kSymmetricPassive &&
                      r.packet.header.mode != proto::Mode::kServer))
        fail("kToControl for something not a valid mode 1/2/4 packet", len);
    }
    return 0;
  }

  if (!serving) fail("answered while not serving", len);
  if (d.reply_len > len) fail("reply larger than its request", len);
  const proto::ParseResult q = proto::parse({req, len});
  if (!q.ok()) fail("answered an unparseable request", len);
  // The request's own verdict on its MAC, from the request's bytes.
  const crypto::MacResult want =
      crypto::check_mac(fuzz_keys(), req, len - q.packet.mac_len, req + len - q.packet.mac_len, q.packet.mac_len);
  const bool verified = q.packet.mac_len > 4 && want.check == crypto::MacCheck::kOk;
  if (made == Made::kValid && !verified) fail("a MAC made with a table key does not verify", len);
  if (made == Made::kMutilated && verified) fail("a mutilated MAC verifies", len);
  if (verified != (d.mac_key != nullptr)) fail("a verified MAC not answered with one, or one answered without", len);
  if (d.mac_key != nullptr) {
    if (d.auth != dp::AuthOutcome::kOk || d.mac_key != want.key || d.mac_digest_bytes != want.digest_bytes)
      fail("the reply's key or digest length is not the request's", len);
    if (d.reply_len != proto::kHeaderLen + 4 + d.mac_digest_bytes) fail("MACed reply_len", len);
    if (proto::load_be32(buf.get() + proto::kHeaderLen) != q.packet.key_id) fail("the reply's key ID", len);
    // Stamp and seal as the worker does, then the client's check.
    auto sealed = std::make_unique<uint8_t[]>(cap);
    std::memcpy(sealed.get(), buf.get(), cap);
    const proto::NtpTimestamp tx = proto::NtpTimestamp::from_raw(rx.raw() + 1234567);
    proto::store_ts(sealed.get() + proto::offs::kTransmit, tx);
    const uint64_t seal = dp::seal_reply(sealed.get(), *d.mac_key, d.mac_digest_bytes);
    if (d.reply_sum + tx.seconds + tx.fraction + seal != sum_words(sealed.get(), d.reply_len))
      fail("MACed reply's sum", len);
    const crypto::MacResult got = crypto::check_mac(fuzz_keys(), sealed.get(), proto::kHeaderLen,
                                                    sealed.get() + proto::kHeaderLen, d.reply_len - proto::kHeaderLen);
    if (got.check != crypto::MacCheck::kOk) fail("a MACed reply does not verify with its key", len);
    std::memset(buf.get() + proto::kHeaderLen, 0, 4);  // the checks below see a 48-byte reply
    if (proto::parse({buf.get(), proto::kHeaderLen}).status != proto::ParseStatus::kOk) fail("MACed reply header", len);
  } else {
    if (d.reply_len != proto::kHeaderLen && d.reply_len != proto::kHeaderLen + 4) fail("reply_len not 48 or 52", len);
    if (d.reply_len > dp::kMaxReplyLen) fail("reply_len > kMaxReplyLen", len);
    if (q.packet.mac_len > 4 && d.auth != (want.check == crypto::MacCheck::kUnknownKey ? dp::AuthOutcome::kUnknownKey
                                                                                      : dp::AuthOutcome::kBadMac))
      fail("the failure's outcome", len);
  }
  const size_t head_len = d.mac_key ? proto::kHeaderLen : d.reply_len;
  const proto::ParseResult r = proto::parse({buf.get(), head_len});
  if (!r.ok()) fail("the reply does not parse", len);
  const proto::NtpHeader& h = r.packet.header;
  if (h.mode != proto::Mode::kServer) fail("reply mode is not 4", len);
  if (h.version != q.packet.header.version) fail("reply version differs from the request's", len);
  if (expect_leap && h.leap != *expect_leap) fail("around a leap: the LI is not the warning before leap_ns, 0 after", len);
  if (!expect_leap && h.leap != p.leap) fail("reply LI is not the params'", len);
  if (h.stratum != p.stratum || h.precision_log2 != p.precision_log2 ||
      h.root_delay != p.root_delay || h.root_dispersion != p.root_dispersion || h.refid != p.refid ||
      !(h.reference == p.reference))
    fail("reply header fields are not the params'", len);
  if (h.poll_log2 != q.packet.header.poll_log2) fail("reply poll is not the request's", len);
  if (!(h.origin == q.packet.header.transmit)) fail("reply origin is not the request's transmit", len);
  if (!(h.receive == rx)) fail("reply receive is not rx", len);
  if (!h.transmit.is_zero()) fail("reply transmit not left zero", len);
  if (d.mac_key != nullptr) {
    // checked above
  } else if (d.reply_len == proto::kHeaderLen + 4) {
    if (q.packet.mac_len <= 4) fail("crypto-NAK for a request without a MAC", len);
    if (r.packet.mac_len != 4 || r.packet.key_id != 0) fail("crypto-NAK is not a zero key ID", len);
  } else if (q.packet.mac_len > 4) {
    fail("no crypto-NAK for a request with a MAC we cannot check", len);
  }
  return 0;
}
