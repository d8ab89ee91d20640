#include "cbt/tracking_state.h"

#include <openssl/sha.h>

#include <nlohmann/json.hpp>

#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "common/fs.h"

namespace cbtd::cbt {
namespace {

constexpr int kFormat = 1;

class AtomicStateFileIo : public StateFileIo {
 public:
  absl::Status Write(const std::string& path,
                     std::string_view contents) override {
    return common::AtomicWriteFile(path, contents);
  }
  absl::StatusOr<std::string> Read(const std::string& path) override {
    return common::ReadFile(path);
  }
};

std::string Sha256Hex(const std::string& s) {
  unsigned char d[SHA256_DIGEST_LENGTH];
  SHA256(reinterpret_cast<const unsigned char*>(s.data()), s.size(), d);
  return absl::BytesToHexString(
      absl::string_view(reinterpret_cast<const char*>(d), sizeof(d)));
}

nlohmann::json ToJson(const TrackingState& s) {
  return {{"volume", s.volume},
          {"method", MethodName(s.method)},
          {"generation", s.generation},
          {"base_snapshot_name", s.base_snapshot_name},
          {"base_snapshot_uuid", s.base_snapshot_uuid},
          {"base_thin_id", s.base_thin_id},
          {"era_since", s.era_since},
          {"base_version_id", s.base_version_id},
          {"base_root_hash", s.base_root_hash}};
}

// nullopt on any missing or mistyped field.
std::optional<TrackingState> FromJson(const nlohmann::json& j) {
  if (!j.is_object()) return std::nullopt;
  TrackingState s;
  for (const char* k :
       {"volume", "method", "generation", "base_snapshot_name",
        "base_snapshot_uuid", "base_version_id", "base_root_hash"}) {
    if (!j.contains(k) || !j[k].is_string()) return std::nullopt;
  }
  for (const char* k : {"base_thin_id", "era_since"}) {
    if (!j.contains(k) || !j[k].is_number_unsigned()) return std::nullopt;
  }
  absl::StatusOr<Method> m = ParseMethod(j["method"].get<std::string>());
  if (!m.ok()) return std::nullopt;
  s.volume = j["volume"];
  s.method = *m;
  s.generation = j["generation"];
  s.base_snapshot_name = j["base_snapshot_name"];
  s.base_snapshot_uuid = j["base_snapshot_uuid"];
  s.base_thin_id = j["base_thin_id"];
  s.era_since = j["era_since"];
  s.base_version_id = j["base_version_id"];
  s.base_root_hash = j["base_root_hash"];
  return s;
}

}  // namespace

std::unique_ptr<StateFileIo> NewAtomicStateFileIo() {
  return std::make_unique<AtomicStateFileIo>();
}

std::string TrackingStateStore::PathFor(const std::string& volume) const {
  // Volume names hold '/', so escape to one flat, reversible file name.
  std::string name;
  for (char c : volume) {
    const bool plain = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
                       (c >= '0' && c <= '9') || c == '-' || c == '.';
    if (plain) {
      name += c;
    } else {
      absl::StrAppend(
          &name, "_",
          absl::Hex(static_cast<unsigned char>(c), absl::kZeroPad2));
    }
  }
  return absl::StrCat(dir_, "/", name, ".json");
}

std::string TrackingStateStore::Serialize(const TrackingState& state) {
  const std::string record = ToJson(state).dump();
  nlohmann::json file = {
      {"format", kFormat}, {"record", record}, {"sha256", Sha256Hex(record)}};
  return file.dump() + "\n";
}

absl::Status TrackingStateStore::Save(const TrackingState& state) {
  return io_->Write(PathFor(state.volume), Serialize(state));
}

absl::StatusOr<LoadedState> TrackingStateStore::Load(
    const std::string& volume) {
  const std::string path = PathFor(volume);
  absl::StatusOr<std::string> bytes = io_->Read(path);
  LoadedState out;
  if (absl::IsNotFound(bytes.status())) {
    out.lost_reason = absl::StrCat("no tracking state for ", volume, " (", path,
                                   "): first run or state removed");
    return out;
  }
  if (!bytes.ok()) return bytes.status();
  auto unreadable = [&](const std::string& why) {
    LoadedState l;
    l.lost_reason =
        absl::StrCat("tracking state ", path, " is unreadable (", why,
                     "); a save was interrupted or the file "
                     "was damaged");
    return l;
  };
  nlohmann::json file = nlohmann::json::parse(*bytes, nullptr, false);
  if (file.is_discarded() || !file.is_object()) return unreadable("not JSON");
  if (!file.contains("format") || file["format"] != kFormat) {
    return unreadable("unknown format");
  }
  if (!file.contains("record") || !file["record"].is_string() ||
      !file.contains("sha256") || !file["sha256"].is_string()) {
    return unreadable("fields missing");
  }
  const std::string record = file["record"];
  if (Sha256Hex(record) != file["sha256"].get<std::string>()) {
    return unreadable("checksum mismatch");
  }
  std::optional<TrackingState> s =
      FromJson(nlohmann::json::parse(record, nullptr, false));
  if (!s.has_value()) return unreadable("record fields missing");
  if (s->volume != volume) {
    return unreadable(absl::StrCat("record is for volume ", s->volume));
  }
  out.state = std::move(s);
  return out;
}

}  // namespace cbtd::cbt
