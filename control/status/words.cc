#include "control/status/words.h"

#include <cstdio>

#include "proto/inet.h"

namespace ntp::status {

const char* mode_text(ctl::AssocMode m) {
  switch (m) {
    case ctl::AssocMode::kClient: return "client";
    case ctl::AssocMode::kSymmetricActive: return "symmetric active";
    case ctl::AssocMode::kSymmetricPassive: return "symmetric passive";
  }
  return "?";
}

const char* peer_mode_text(proto::Mode m) {
  // What an association can hear: a server answers a client, peers speak
  // the symmetric modes.
  if (m == proto::Mode::kServer) return "server";
  if (m == proto::Mode::kSymmetricActive) return "symmetric active";
  return "symmetric passive";
}

const char* unfit_text(ctl::Unfit u) {
  switch (u) {
    case ctl::Unfit::kNone: return "fit";
    case ctl::Unfit::kUnreachable: return "unreachable";
    case ctl::Unfit::kUnsynchronized: return "unsynchronized";
    case ctl::Unfit::kStratumTooHigh: return "stratum too high";
    case ctl::Unfit::kNoSamples: return "no samples yet";
    case ctl::Unfit::kLoopToUs: return "loop: its reference is us";
    case ctl::Unfit::kLoopToSystemPeer: return "loop: it follows our system peer";
    case ctl::Unfit::kTooDistant: return "too distant";
    case ctl::Unfit::kNotAuthenticated: return "not authenticated";
  }
  return "?";
}

const char* auth_text(ctl::AuthState a) {
  switch (a) {
    case ctl::AuthState::kNone: return "none";
    case ctl::AuthState::kOk: return "ok";
    case ctl::AuthState::kFailed: return "failed";
    case ctl::AuthState::kPending: return "pending";
  }
  return "?";
}

const char* sync_state_text(ctl::SyncState s) {
  switch (s) {
    case ctl::SyncState::kClockNotSet: return "clock not set";
    case ctl::SyncState::kFrequencySet: return "frequency set";
    case ctl::SyncState::kSynchronized: return "clock synchronized";
    case ctl::SyncState::kSpike: return "clock spike";
  }
  return "unknown";
}

const char* unsync_reason_text(ctl::UnsyncReason r) {
  switch (r) {
    case ctl::UnsyncReason::kNoSelectableSource: return "no selectable source";
    case ctl::UnsyncReason::kPanic: return "panic";
  }
  return "?";
}

const char* selection_text(ctl::SelectionState s, ctl::Unfit u) {
  switch (s) {
    case ctl::SelectionState::kSystemPeer: return "system peer";
    case ctl::SelectionState::kUnfit: return unfit_text(u);
    case ctl::SelectionState::kFalseticker: return "falseticker";
    case ctl::SelectionState::kOutlier: return "outlier";
    case ctl::SelectionState::kSurvivor: return "survivor";
    case ctl::SelectionState::kCandidate: return "candidate";
  }
  return "?";
}

std::string refid_text(uint32_t refid, int stratum) {
  if (refid == proto::kRefidLocal) return "LOCAL(0)";
  if (stratum >= 2 && stratum <= 15) return proto::ipv4_to_string(refid);
  // ASCII: printable characters, then only NUL padding (at least one character).
  std::string s;
  bool padding = false, ascii = true;
  for (int shift = 24; shift >= 0; shift -= 8) {
    const auto c = static_cast<unsigned char>((refid >> shift) & 0xFF);
    if (c == 0) {
      padding = true;
    } else if (padding || c < 0x20 || c >= 0x7F) {
      ascii = false;
    } else {
      s += static_cast<char>(c);
    }
  }
  if (ascii && !s.empty()) return s;
  char hex[9];
  std::snprintf(hex, sizeof hex, "%08X", refid);
  return hex;
}

}  // namespace ntp::status
