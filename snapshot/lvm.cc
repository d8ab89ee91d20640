#include "snapshot/lvm.h"

#include <algorithm>
#include <set>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "nlohmann/json.hpp"

namespace cbtd::snapshot {
namespace {

using nlohmann::json;

// lvm2 prints every value as a string; absent ones as "".
std::string Str(const json& row, const char* key) {
  auto it = row.find(key);
  if (it == row.end() || !it->is_string()) return "";
  return it->get<std::string>();
}

std::optional<double> Percent(const json& row, const char* key) {
  double v;
  const std::string s = Str(row, key);
  if (s.empty() || !absl::SimpleAtod(s, &v)) return std::nullopt;
  return v;
}

uint64_t U64(const json& row, const char* key) {
  uint64_t v = 0;
  if (!absl::SimpleAtoi(Str(row, key), &v)) return 0;
  return v;
}

absl::StatusOr<json> ReportRows(const std::string& text, const char* kind) {
  json doc = json::parse(text, nullptr, /*allow_exceptions=*/false);
  if (doc.is_discarded() || !doc.contains("report") ||
      !doc["report"].is_array()) {
    return absl::InternalError(
        absl::StrCat("lvm2 printed a report that is not the expected JSON: ",
                     text.substr(0, 200)));
  }
  json rows = json::array();
  for (const json& part : doc["report"]) {
    auto it = part.find(kind);
    if (it == part.end() || !it->is_array()) continue;
    for (const json& r : *it) rows.push_back(r);
  }
  return rows;
}

}  // namespace

bool LvReport::HasTag(std::string_view tag) const {
  return std::find(tags.begin(), tags.end(), tag) != tags.end();
}

absl::StatusOr<std::vector<LvReport>> ParseLvsJson(const std::string& text) {
  absl::StatusOr<json> rows = ReportRows(text, "lv");
  if (!rows.ok()) return rows.status();
  std::vector<LvReport> out;
  std::set<std::string> seen;
  for (const json& row : *rows) {
    LvReport lv;
    lv.vg = Str(row, "vg_name");
    lv.name = Str(row, "lv_name");
    lv.uuid = Str(row, "lv_uuid");
    if (!seen.insert(lv.vg + "/" + lv.uuid + lv.name).second) continue;
    lv.segtype = Str(row, "segtype");
    lv.pool_lv = Str(row, "pool_lv");
    lv.origin = Str(row, "origin");
    lv.metadata_lv = Str(row, "metadata_lv");
    const std::string tags = Str(row, "lv_tags");
    if (!tags.empty()) lv.tags = absl::StrSplit(tags, ',');
    lv.size_bytes = U64(row, "lv_size");
    lv.data_percent = Percent(row, "data_percent");
    lv.metadata_percent = Percent(row, "metadata_percent");
    uint64_t thin_id;
    if (absl::SimpleAtoi(Str(row, "thin_id"), &thin_id)) lv.thin_id = thin_id;
    if (!absl::SimpleAtoi(Str(row, "lv_kernel_major"), &lv.kernel_major)) {
      lv.kernel_major = -1;
    }
    if (!absl::SimpleAtoi(Str(row, "lv_kernel_minor"), &lv.kernel_minor)) {
      lv.kernel_minor = -1;
    }
    const std::string active = Str(row, "lv_active");
    lv.active = active == "1" || active == "active";
    const std::string invalid = Str(row, "lv_snapshot_invalid");
    lv.snapshot_invalid = invalid == "1" || invalid == "invalid";
    out.push_back(std::move(lv));
  }
  return out;
}

absl::StatusOr<VgReport> ParseVgsJson(const std::string& text) {
  absl::StatusOr<json> rows = ReportRows(text, "vg");
  if (!rows.ok()) return rows.status();
  if (rows->empty()) return absl::NotFoundError("vgs reported no VG");
  const json& row = (*rows)[0];
  VgReport vg;
  vg.name = Str(row, "vg_name");
  vg.extent_size_bytes = U64(row, "vg_extent_size");
  vg.free_extents = U64(row, "vg_free_count");
  return vg;
}

std::string DmName(const std::string& vg, const std::string& lv) {
  auto escape = [](const std::string& s) {
    std::string out;
    for (char c : s) {
      out += c;
      if (c == '-') out += '-';
    }
    return out;
  };
  return absl::StrCat(escape(vg), "-", escape(lv));
}

}  // namespace cbtd::snapshot
