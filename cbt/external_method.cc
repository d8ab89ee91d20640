#include "cbt/external_method.h"

#include <nlohmann/json.hpp>

#include "absl/strings/str_cat.h"

namespace cbtd::cbt {

ChangedSet ComputeExternal(std::string_view file_contents,
                           const std::string& expected_generation,
                           uint64_t volume_size_bytes) {
  auto lost = [&](std::string why) {
    return ChangedSet::Lost(Method::kExternal, volume_size_bytes,
                            absl::StrCat("external extent list: ", why));
  };
  nlohmann::json j = nlohmann::json::parse(file_contents, nullptr,
                                           /*allow_exceptions=*/false);
  if (j.is_discarded() || !j.is_object()) return lost("not valid JSON");
  if (!j.contains("generation") || !j["generation"].is_string()) {
    return lost("no \"generation\" string");
  }
  const std::string gen = j["generation"].get<std::string>();
  if (gen != expected_generation) {
    return lost(absl::StrCat("generation '", gen, "' does not match '",
                             expected_generation,
                             "' (a bitmap was reset or is from another run)"));
  }
  if (!j.contains("extents") || !j["extents"].is_array()) {
    return lost("no \"extents\" array");
  }
  ChangedSet set;
  set.method = Method::kExternal;
  set.generation = absl::StrCat("external:", gen);
  set.volume_size_bytes = volume_size_bytes;
  set.granularity_bytes = 1;
  for (const nlohmann::json& e : j["extents"]) {
    if (!e.is_array() || e.size() != 2 || !e[0].is_number_unsigned() ||
        !e[1].is_number_unsigned()) {
      return lost("an extent is not [offset_bytes, length_bytes]");
    }
    const uint64_t off = e[0].get<uint64_t>();
    const uint64_t len = e[1].get<uint64_t>();
    if (off > volume_size_bytes || len > volume_size_bytes - off) {
      return lost(absl::StrCat("extent [", off, ", +", len,
                               ") is beyond the volume (", volume_size_bytes,
                               " bytes)"));
    }
    set.changed.Add(off, len);
  }
  return set;
}

}  // namespace cbtd::cbt
