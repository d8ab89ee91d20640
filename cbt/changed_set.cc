#include "cbt/changed_set.h"

#include <nlohmann/json.hpp>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"

namespace cbtd::cbt {
namespace {

constexpr struct {
  Method method;
  const char* name;
} kMethodNames[] = {
    {Method::kThinDelta, "thin-delta"},
    {Method::kCowTable, "cow-table"},
    {Method::kEra, "era"},
    {Method::kHash, "hash"},
    {Method::kExternal, "external"},
};

class JsonEmitter : public ChangedSetEmitter {
 public:
  explicit JsonEmitter(nlohmann::json& out) : out_(out) {}
  void Begin(const ChangedSet& s) override {
    out_["method"] = MethodName(s.method);
    out_["generation"] = s.generation;
    out_["volume_size_bytes"] = s.volume_size_bytes;
    out_["granularity_bytes"] = s.granularity_bytes;
    out_["lost"] = s.lost;
    out_["lost_reason"] = s.lost_reason;
    out_["changed_bytes"] = s.changed.TotalBytes();
    out_["zeroed_bytes"] = s.zeroed.TotalBytes();
    out_["extents"] = nlohmann::json::array();
  }
  void Changed(const Extent& e) override { Add(e, false); }
  void Zeroed(const Extent& e) override { Add(e, true); }
  void End() override {}

 private:
  void Add(const Extent& e, bool zero) {
    out_["extents"].push_back({{"offset", e.offset_bytes},
                               {"length", e.length_bytes},
                               {"zero", zero}});
  }
  nlohmann::json& out_;
};

}  // namespace

std::string MethodName(Method m) {
  for (const auto& row : kMethodNames) {
    if (row.method == m) return row.name;
  }
  return "unknown";
}

absl::StatusOr<Method> ParseMethod(std::string_view name) {
  for (const auto& row : kMethodNames) {
    if (name == row.name) return row.method;
  }
  return absl::InvalidArgumentError(
      absl::StrCat("unknown tracking method '", std::string(name),
                   "'; use thin-delta, cow-table, era, hash or external"));
}

ChangedSet ChangedSet::Lost(Method method, uint64_t volume_size_bytes,
                            std::string reason) {
  ChangedSet s;
  s.method = method;
  s.volume_size_bytes = volume_size_bytes;
  s.granularity_bytes = volume_size_bytes;
  s.changed.Add(0, volume_size_bytes);
  s.lost = true;
  s.lost_reason = std::move(reason);
  return s;
}

ExtentSet ChangedSet::AllChanged() const {
  ExtentSet all = changed;
  all.Add(zeroed);
  return all;
}

void Emit(const ChangedSet& set, ChangedSetEmitter& emitter) {
  emitter.Begin(set);
  const std::vector<Extent> changed = set.changed.ToVector();
  const std::vector<Extent> zeroed = set.zeroed.ToVector();
  size_t c = 0;
  size_t z = 0;
  while (c < changed.size() || z < zeroed.size()) {
    if (z == zeroed.size() ||
        (c < changed.size() &&
         changed[c].offset_bytes <= zeroed[z].offset_bytes)) {
      emitter.Changed(changed[c++]);
    } else {
      emitter.Zeroed(zeroed[z++]);
    }
  }
  emitter.End();
}

std::string ChangedSetToJson(const ChangedSet& set) {
  nlohmann::json j;
  JsonEmitter emitter(j);
  Emit(set, emitter);
  return j.dump(2);
}

}  // namespace cbtd::cbt
