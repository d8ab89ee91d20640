#include "cbt/lvm_query.h"

#include <nlohmann/json.hpp>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "cbt/xml_elements.h"

namespace cbtd::cbt {
namespace {

std::string Mangle(const std::string& s) {
  std::string out;
  for (char c : s) {
    out += c;
    if (c == '-') out += '-';
  }
  return out;
}

}  // namespace

std::string LvmDmName(const std::string& vg, const std::string& lv,
                      const std::string& layer) {
  std::string out = absl::StrCat(Mangle(vg), "-", Mangle(lv));
  if (!layer.empty()) absl::StrAppend(&out, "-", layer);
  return out;
}

absl::StatusOr<LvInfo> QueryLv(CommandRunner& runner,
                               const std::string& vg_lv) {
  const size_t slash = vg_lv.find('/');
  if (slash == std::string::npos || slash == 0 || slash + 1 == vg_lv.size()) {
    return absl::InvalidArgumentError(
        absl::StrCat("'", vg_lv, "' is not VG/LV"));
  }
  absl::StatusOr<std::string> out = runner.Run(
      {"lvs", "--reportformat", "json", "--units", "b", "--nosuffix", "-o",
       "vg_name,lv_name,segtype,pool_lv,origin,lv_attr,lv_size,thin_id",
       vg_lv});
  if (!out.ok()) {
    if (out.status().message().find("Failed to find") != std::string::npos) {
      return absl::NotFoundError(absl::StrCat("LV ", vg_lv, " not found"));
    }
    return out.status();
  }
  nlohmann::json j = nlohmann::json::parse(*out, nullptr, false);
  auto bad = [&]() {
    return absl::InternalError(
        absl::StrCat("lvs ", vg_lv, ": unexpected JSON report"));
  };
  if (j.is_discarded() || !j.contains("report") || !j["report"].is_array() ||
      j["report"].empty() || !j["report"][0].contains("lv") ||
      !j["report"][0]["lv"].is_array()) {
    return bad();
  }
  const nlohmann::json& lvs = j["report"][0]["lv"];
  if (lvs.empty())
    return absl::NotFoundError(absl::StrCat("LV ", vg_lv, " not found"));
  const nlohmann::json& r = lvs[0];
  auto str = [&](const char* k) {
    return r.contains(k) && r[k].is_string() ? r[k].get<std::string>()
                                             : std::string();
  };
  LvInfo info;
  info.vg = str("vg_name");
  info.lv = str("lv_name");
  info.segtype = str("segtype");
  info.pool_lv = str("pool_lv");
  info.origin = str("origin");
  info.attr = str("lv_attr");
  if (!ParseDecimalUint64(str("lv_size"), &info.size_bytes)) return bad();
  const std::string tid = str("thin_id");
  if (!tid.empty()) {
    if (!ParseDecimalUint64(tid, &info.thin_id)) return bad();
    info.has_thin_id = true;
  }
  return info;
}

Method SelectMethod(VolumeKind kind, bool have_external_list) {
  if (have_external_list) return Method::kExternal;
  switch (kind) {
    case VolumeKind::kLvmThin:
      return Method::kThinDelta;
    case VolumeKind::kLvmThick:
      return Method::kCowTable;
    case VolumeKind::kEraStack:
      return Method::kEra;
    case VolumeKind::kOther:
      break;
  }
  return Method::kHash;
}

}  // namespace cbtd::cbt
