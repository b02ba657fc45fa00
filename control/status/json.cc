// /status: the snapshot as JSON and back, both ways driven by the field
// tables (fields.h).
#include <cmath>
#include <exception>
#include <limits>
#include <string>
#include <type_traits>
#include <utility>

#include <nlohmann/json.hpp>

#include "control/status/fields.h"
#include "control/status/numbers.h"
#include "control/status/status.h"

namespace ntp::status {
namespace {

// The array members of the field tables (written and read element-wise).
template <class V>
inline constexpr bool kIsArray = std::is_same_v<V, std::vector<FilterStage>> ||
                                 std::is_same_v<V, std::vector<LimitedSourceStatus>>;

using ordered_json = nlohmann::ordered_json;
using json = nlohmann::json;
using fields::table;

// ---------------------------------------------------------------------------
// JSON out.

// Doubles: numbers, or "NaN", "+Inf", "-Inf" (JSON has no such numbers).
ordered_json jdouble(double v) {
  if (std::isfinite(v)) return v;
  return detail::double_text(v);
}

template <class S>
ordered_json write(const S& s);
template <class S>
ordered_json write_array(const std::vector<S>& v);

template <class S>
void write_fields(const S& s, ordered_json& j) {
  for (const auto& f : table<S>().fields) {
    if (!f.key) continue;
    std::visit(
        [&](auto m) {
          if constexpr (!std::is_same_v<decltype(m), std::monostate>) {
            const auto& v = s.*m;
            using V = std::remove_cvref_t<decltype(v)>;
            if constexpr (std::is_same_v<V, double>) {
              j[f.key] = jdouble(v);
            } else if constexpr (std::is_same_v<V, std::optional<bool>>) {
              j[f.key] = v ? ordered_json(*v) : ordered_json(nullptr);
            } else if constexpr (kIsArray<V>) {
              j[f.key] = write_array(v);
            } else {
              j[f.key] = v;
            }
          }
        },
        f.member);
  }
}

template <class S>
ordered_json write(const S& s) {
  ordered_json j;
  write_fields(s, j);
  return j;
}

template <>
ordered_json write(const WorkerStatus& w) {
  ordered_json j;
  write_fields(w, j);
  for (size_t i = 0; i < proto::kWorkerCounterCount; ++i) j[proto::kWorkerCounterFields[i].key] = w.counters[i];
  ordered_json drops = ordered_json::object();
  for (size_t r = 0; r < proto::kDropReasonCount; ++r)
    drops[proto::drop_reason_name(static_cast<proto::DropReason>(r))] = w.drops[r];
  j["drops"] = std::move(drops);
  return j;
}

template <class S>
ordered_json write_array(const std::vector<S>& v) {
  ordered_json a = ordered_json::array();
  for (const auto& e : v) a.push_back(write(e));
  return a;
}

// ---------------------------------------------------------------------------
// JSON in. Every access checks the type first: nothing here throws on
// well-formed JSON of the wrong shape.

class Reader {
 public:
  bool ok() const { return err_.empty(); }
  const std::string& error() const { return err_; }

  void fail(const std::string& path, const std::string& what) {
    if (err_.empty()) err_ = path + ": " + what;
  }

  // The member `key` of object `o` if present, else nullptr (and an error
  // when required).
  const json* member(const json& o, const char* key, const std::string& path, bool required) {
    auto it = o.find(key);
    if (it == o.end()) {
      if (required) fail(path + "." + key, "missing");
      return nullptr;
    }
    return &*it;
  }

  template <class T>
  void integer(const json& o, const char* key, const std::string& path, T& out, bool required = false) {
    static_assert(std::is_integral_v<T> && !std::is_same_v<T, bool>);
    const json* v = member(o, key, path, required);
    if (!v) return;
    integer_value(*v, path + "." + key, out);
  }

  template <class T>
  void integer_value(const json& v, const std::string& path, T& out) {
    if (!ok()) return;
    if (v.is_number_unsigned()) {
      const uint64_t u = v.get<uint64_t>();
      if (u > static_cast<uint64_t>(std::numeric_limits<T>::max())) return fail(path, "out of range");
      out = static_cast<T>(u);
    } else if (v.is_number_integer()) {
      const int64_t s = v.get<int64_t>();
      if constexpr (std::is_unsigned_v<T>) {
        if (s < 0) return fail(path, "out of range");
        if (static_cast<uint64_t>(s) > static_cast<uint64_t>(std::numeric_limits<T>::max()))
          return fail(path, "out of range");
      } else {
        if (s < static_cast<int64_t>(std::numeric_limits<T>::min()) ||
            s > static_cast<int64_t>(std::numeric_limits<T>::max()))
          return fail(path, "out of range");
      }
      out = static_cast<T>(s);
    } else {
      fail(path, std::string("expected an integer, got ") + v.type_name());
    }
  }

  void number(const json& o, const char* key, const std::string& path, double& out, bool required = false) {
    const json* v = member(o, key, path, required);
    if (!v || !ok()) return;
    if (v->is_number()) {
      out = v->get<double>();
    } else if (v->is_string()) {
      const auto& s = v->get_ref<const std::string&>();
      if (s == "NaN") out = std::numeric_limits<double>::quiet_NaN();
      else if (s == "+Inf") out = std::numeric_limits<double>::infinity();
      else if (s == "-Inf") out = -std::numeric_limits<double>::infinity();
      else fail(path + "." + key, "expected a number, \"NaN\", \"+Inf\" or \"-Inf\"");
    } else {
      fail(path + "." + key, std::string("expected a number, got ") + v->type_name());
    }
  }

  void boolean(const json& o, const char* key, const std::string& path, bool& out, bool required = false) {
    const json* v = member(o, key, path, required);
    if (!v || !ok()) return;
    if (!v->is_boolean()) return fail(path + "." + key, std::string("expected a boolean, got ") + v->type_name());
    out = v->get<bool>();
  }

  // A boolean or null (nullopt).
  void optional_boolean(const json& o, const char* key, const std::string& path, std::optional<bool>& out,
                        bool required = false) {
    const json* v = member(o, key, path, required);
    if (!v || !ok()) return;
    if (v->is_null()) {
      out.reset();
    } else if (v->is_boolean()) {
      out = v->get<bool>();
    } else {
      fail(path + "." + key, std::string("expected a boolean or null, got ") + v->type_name());
    }
  }

  void string(const json& o, const char* key, const std::string& path, std::string& out, bool required = false) {
    const json* v = member(o, key, path, required);
    if (!v || !ok()) return;
    if (!v->is_string()) return fail(path + "." + key, std::string("expected a string, got ") + v->type_name());
    out = v->get<std::string>();
  }

  // Array member: nullptr when absent (or not an array: error).
  const json* array(const json& o, const char* key, const std::string& path, bool required = false) {
    const json* v = member(o, key, path, required);
    if (!v || !ok()) return nullptr;
    if (!v->is_array()) {
      fail(path + "." + key, std::string("expected an array, got ") + v->type_name());
      return nullptr;
    }
    return v;
  }

  bool object(const json& v, const std::string& path) {
    if (!ok()) return false;
    if (!v.is_object()) {
      fail(path, std::string("expected an object, got ") + v.type_name());
      return false;
    }
    return true;
  }

 private:
  std::string err_;
};

template <class S>
void read(Reader& r, const json& j, const std::string& p, S& s);
// The array at j[key] into out; its elements' paths are prefix + key + "[i]".
template <class T>
void read_array(Reader& r, const json& j, const char* key, const std::string& path, const std::string& prefix,
                std::vector<T>& out, bool required = false);

template <class S>
void read_fields(Reader& r, const json& j, const std::string& p, S& s) {
  for (const auto& f : table<S>().fields) {
    if (!f.key || !r.ok()) continue;
    std::visit(
        [&](auto m) {
          if constexpr (!std::is_same_v<decltype(m), std::monostate>) {
            auto& v = s.*m;
            using V = std::remove_cvref_t<decltype(v)>;
            if constexpr (std::is_same_v<V, std::string>) {
              r.string(j, f.key, p, v, f.required);
            } else if constexpr (std::is_same_v<V, bool>) {
              r.boolean(j, f.key, p, v, f.required);
            } else if constexpr (std::is_same_v<V, std::optional<bool>>) {
              r.optional_boolean(j, f.key, p, v, f.required);
            } else if constexpr (std::is_same_v<V, double>) {
              r.number(j, f.key, p, v, f.required);
            } else if constexpr (kIsArray<V>) {
              read_array(r, j, f.key, p, p + ".", v, f.required);
            } else {
              r.integer(j, f.key, p, v, f.required);
            }
          }
        },
        f.member);
  }
}

template <class S>
void read(Reader& r, const json& j, const std::string& p, S& s) {
  if (!r.object(j, p)) return;
  read_fields(r, j, p, s);
}

template <>
void read(Reader& r, const json& j, const std::string& p, WorkerStatus& w) {
  if (!r.object(j, p)) return;
  read_fields(r, j, p, w);
  for (size_t i = 0; i < proto::kWorkerCounterCount; ++i)
    r.integer(j, proto::kWorkerCounterFields[i].key, p, w.counters[i]);
  const json* d = r.member(j, "drops", p, false);
  if (!d || !r.object(*d, p + ".drops")) return;
  // By name: a reason this build does not know (a newer peer) is ignored.
  for (size_t i = 0; i < proto::kDropReasonCount; ++i)
    r.integer(*d, proto::drop_reason_name(static_cast<proto::DropReason>(i)), p + ".drops", w.drops[i]);
}

template <class T>
void read_array(Reader& r, const json& j, const char* key, const std::string& path, const std::string& prefix,
                std::vector<T>& out, bool required) {
  const json* arr = r.array(j, key, path, required);
  if (!arr) return;
  out.clear();
  out.reserve(arr->size());
  for (size_t i = 0; i < arr->size() && r.ok(); ++i) {
    T v;
    read(r, (*arr)[i], prefix + key + "[" + std::to_string(i) + "]", v);
    out.push_back(std::move(v));
  }
}

}  // namespace

std::string to_json(const Status& s) {
  ordered_json j;
  j["system"] = write(s.system);
  j["ports"] = write_array(s.ports);
  j["workers"] = write_array(s.workers);
  j["associations"] = write_array(s.associations);
  j["steered_clocks"] = write_array(s.steered_clocks);
  j["nts_ke"] = write_array(s.nts_ke);
  // Invalid UTF-8 in a string (never expected: names come from a validated
  // config) is replaced rather than thrown.
  return j.dump(2, ' ', false, nlohmann::ordered_json::error_handler_t::replace) + "\n";
}

std::optional<Status> from_json(const std::string& text, std::string& err) {
  try {
    if (text.size() > kMaxJsonBytes) {
      err = "status document too large (" + std::to_string(text.size()) + " bytes)";
      return std::nullopt;
    }
    const json j = json::parse(text, nullptr, /*allow_exceptions=*/false);
    if (j.is_discarded()) {
      err = "malformed JSON";
      return std::nullopt;
    }
    Reader r;
    Status s;
    if (r.object(j, "status")) {
      const json* sys = r.member(j, "system", "status", true);
      if (sys) read(r, *sys, "system", s.system);
      read_array(r, j, "ports", "status", "", s.ports);
      read_array(r, j, "workers", "status", "", s.workers);
      read_array(r, j, "associations", "status", "", s.associations);
      read_array(r, j, "steered_clocks", "status", "", s.steered_clocks);
      read_array(r, j, "nts_ke", "status", "", s.nts_ke);
    }
    if (!r.ok()) {
      err = r.error();
      return std::nullopt;
    }
    return s;
  } catch (const std::exception& e) {
    err = std::string("bad status document: ") + e.what();
  } catch (...) {
    err = "bad status document";
  }
  return std::nullopt;
}

}  // namespace ntp::status
