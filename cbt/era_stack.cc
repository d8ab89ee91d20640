#include "cbt/era_stack.h"

#include <openssl/rand.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <cstdlib>
#include <filesystem>
#include <system_error>

#include "absl/status/status.h"
#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "common/block_reader.h"
#include "common/fs.h"
#include "nlohmann/json.hpp"

namespace cbtd::cbt {
namespace {

constexpr char kUuidPrefix[] = "CBTD-ERA-";
constexpr int kFormat = 1;

// dm names are also file names here: no '/', no leading '.'.
bool SafeName(const std::string& name) {
  if (name.empty() || name.size() > 127 || name[0] == '.') return false;
  return std::all_of(name.begin(), name.end(), [](char c) {
    return std::isalnum(static_cast<unsigned char>(c)) || c == '-' ||
           c == '_' || c == '.' || c == '+';
  });
}

absl::Status CheckName(const std::string& name) {
  if (SafeName(name)) return absl::OkStatus();
  return absl::InvalidArgumentError(
      absl::StrCat("era stack name '", name,
                   "' must be 1-127 letters, digits or - _ . + "
                   "(not starting with '.')"));
}

// Whether dm device NAME exists.
absl::StatusOr<bool> DeviceExists(DeviceMapper& dm, const std::string& name) {
  absl::StatusOr<std::optional<std::string>> uuid = dm.Uuid(name);
  if (!uuid.ok()) return uuid.status();
  return uuid->has_value();
}

absl::Status LoadStack(DeviceMapper& dm, const EraStackSpec& spec) {
  absl::StatusOr<std::unique_ptr<common::BlockReader>> origin =
      common::OpenBlockReader(spec.origin_path);
  if (!origin.ok()) return origin.status();
  const DmTarget era{0, (*origin)->SizeBytes() / 512, "era",
                     absl::StrCat(spec.metadata_path, " ", spec.origin_path,
                                  " ", spec.block_sectors)};
  return dm.Create(spec.name, EraStackUuid(spec.generation), {era});
}

}  // namespace

std::string EraStackUuid(std::string_view generation) {
  return std::string(kUuidPrefix).append(generation);
}

std::string EraGenerationOfUuid(std::string_view uuid) {
  while (!uuid.empty() &&
         std::isspace(static_cast<unsigned char>(uuid.back()))) {
    uuid.remove_suffix(1);
  }
  if (!uuid.starts_with(kUuidPrefix)) return "";
  return std::string(uuid.substr(std::string_view(kUuidPrefix).size()));
}

std::string NewEraGeneration() {
  unsigned char bytes[8];
  if (RAND_bytes(bytes, sizeof(bytes)) != 1) {
    // OpenSSL's generator failing is not recoverable here; a predictable
    // generation would defeat the rebuild check.
    std::abort();
  }
  return absl::BytesToHexString(
      absl::string_view(reinterpret_cast<char*>(bytes), sizeof(bytes)));
}

std::string EraStackRegistry::PathFor(const std::string& name) const {
  return absl::StrCat(dir_, "/", name, ".json");
}

std::string EraStackRegistry::Serialize(const EraStackSpec& spec) {
  return nlohmann::json{{"format", kFormat},
                        {"name", spec.name},
                        {"origin", spec.origin_path},
                        {"metadata", spec.metadata_path},
                        {"block_sectors", spec.block_sectors},
                        {"generation", spec.generation}}
             .dump(2) +
         "\n";
}

absl::StatusOr<EraStackSpec> EraStackRegistry::Parse(std::string_view json,
                                                     std::string_view where) {
  const nlohmann::json j =
      nlohmann::json::parse(json, nullptr, /*allow_exceptions=*/false);
  auto bad = [&](const std::string& why) {
    return absl::DataLossError(absl::StrCat(
        "era stack record ", std::string(where), " is damaged (", why,
        "); re-create the stack with `cbtctl era-stack create "
        "--force` (its next backup then compares hashes)"));
  };
  if (!j.is_object()) return bad("not JSON");
  if (j.value("format", 0) != kFormat) return bad("unknown format");
  EraStackSpec s;
  for (auto [key, field] :
       {std::pair{"name", &s.name}, std::pair{"origin", &s.origin_path},
        std::pair{"metadata", &s.metadata_path},
        std::pair{"generation", &s.generation}}) {
    if (!j.contains(key) || !j[key].is_string() ||
        j[key].get<std::string>().empty()) {
      return bad(absl::StrCat("no ", key));
    }
    *field = j[key].get<std::string>();
  }
  if (!j.contains("block_sectors") ||
      !j["block_sectors"].is_number_unsigned() ||
      j["block_sectors"].get<uint64_t>() == 0) {
    return bad("no block_sectors");
  }
  s.block_sectors = j["block_sectors"].get<uint64_t>();
  if (!SafeName(s.name)) return bad("bad name");
  return s;
}

absl::StatusOr<std::optional<EraStackSpec>> EraStackRegistry::Find(
    const std::string& name) const {
  absl::Status st = CheckName(name);
  if (!st.ok()) return st;
  absl::StatusOr<std::string> bytes = common::ReadFile(PathFor(name));
  if (absl::IsNotFound(bytes.status())) return std::nullopt;
  if (!bytes.ok()) return bytes.status();
  absl::StatusOr<EraStackSpec> spec = Parse(*bytes, PathFor(name));
  if (!spec.ok()) return spec.status();
  if (spec->name != name) {
    return absl::DataLossError(absl::StrCat(PathFor(name), " records stack '",
                                            spec->name, "', not '", name, "'"));
  }
  return std::optional<EraStackSpec>(std::move(*spec));
}

absl::StatusOr<std::vector<EraStackSpec>> EraStackRegistry::List() const {
  std::vector<EraStackSpec> out;
  std::error_code ec;
  std::filesystem::directory_iterator it(dir_, ec);
  if (ec == std::errc::no_such_file_or_directory) return out;
  if (ec) {
    return common::ErrnoStatus(ec.value(), absl::StrCat("list ", dir_));
  }
  std::vector<std::string> names;
  for (const auto& entry : it) {
    const std::string file = entry.path().filename().string();
    if (file[0] == '.' || !file.ends_with(".json")) continue;
    names.push_back(file.substr(0, file.size() - 5));
  }
  std::sort(names.begin(), names.end());
  for (const std::string& name : names) {
    absl::StatusOr<std::optional<EraStackSpec>> spec = Find(name);
    if (!spec.ok()) return spec.status();
    if (spec->has_value()) out.push_back(std::move(**spec));
  }
  return out;
}

absl::Status EraStackRegistry::Save(const EraStackSpec& spec) const {
  absl::Status st = CheckName(spec.name);
  if (!st.ok()) return st;
  std::error_code ec;
  std::filesystem::create_directories(dir_, ec);
  if (ec) return common::ErrnoStatus(ec.value(), absl::StrCat("mkdir ", dir_));
  return common::AtomicWriteFile(PathFor(spec.name), Serialize(spec));
}

absl::Status EraStackRegistry::Forget(const std::string& name) const {
  absl::Status st = CheckName(name);
  if (!st.ok()) return st;
  if (::unlink(PathFor(name).c_str()) != 0) {
    if (errno == ENOENT) return absl::OkStatus();  // nothing recorded
    return common::ErrnoStatus(errno, absl::StrCat("unlink ", PathFor(name)));
  }
  return common::FsyncDirectory(dir_);
}

absl::StatusOr<EraStackSpec> CreateEraStack(DeviceMapper& dm,
                                            const EraStackRegistry& registry,
                                            EraStackSpec spec, bool replace) {
  absl::Status st = CheckName(spec.name);
  if (!st.ok()) return st;
  if (spec.origin_path.empty() || spec.metadata_path.empty() ||
      spec.block_sectors == 0) {
    return absl::InvalidArgumentError(
        "an era stack needs --origin DEV, --metadata DEV and a block size");
  }
  absl::StatusOr<std::optional<EraStackSpec>> known = registry.Find(spec.name);
  // A damaged record is replaced only on request, like a sound one.
  if (!known.ok() && !replace) return known.status();
  if (known.ok() && known->has_value() && !replace) {
    return absl::AlreadyExistsError(absl::StrCat(
        "era stack ", spec.name, " is already recorded (origin ",
        (*known)->origin_path, ", generation ", (*known)->generation,
        "); `create --force` formats fresh metadata, and the next backup of "
        "it compares hashes"));
  }
  absl::StatusOr<bool> exists = DeviceExists(dm, spec.name);
  if (!exists.ok()) return exists.status();
  if (*exists) {
    return absl::FailedPreconditionError(absl::StrCat(
        "device ", spec.name,
        " exists; remove it first (cbtctl era-stack remove ", spec.name, ")"));
  }
  spec.generation = NewEraGeneration();
  // Recorded before it is live: a stack that is live is always known to
  // the boot assembly.
  st = registry.Save(spec);
  if (!st.ok()) return st;
  st = ZeroSuperblock(spec.metadata_path);
  if (st.ok()) st = LoadStack(dm, spec);
  if (!st.ok()) {
    (void)registry.Forget(spec.name);
    return st;
  }
  return spec;
}

absl::Status AssembleEraStack(DeviceMapper& dm, const EraStackSpec& spec) {
  absl::Status st = CheckName(spec.name);
  if (!st.ok()) return st;
  absl::StatusOr<bool> exists = DeviceExists(dm, spec.name);
  if (!exists.ok()) return exists.status();
  if (*exists) {
    absl::StatusOr<std::string> live = LiveEraGeneration(dm, spec.name);
    if (!live.ok()) return live.status();
    if (*live == spec.generation) {
      return absl::AlreadyExistsError(
          absl::StrCat("era stack ", spec.name, " is already assembled"));
    }
    return absl::FailedPreconditionError(absl::StrCat(
        "device ", spec.name, " exists with generation '", *live,
        "', not the recorded '", spec.generation, "'; remove it first"));
  }
  absl::StatusOr<bool> blank = SuperblockIsBlank(spec.metadata_path);
  if (!blank.ok()) return blank.status();
  if (*blank) {
    return absl::FailedPreconditionError(absl::StrCat(
        "era metadata ", spec.metadata_path, " of stack ", spec.name,
        " is blank: assembling would format it and forget every write it "
        "recorded; check the device, or start afresh with `cbtctl era-stack "
        "create --force`"));
  }
  return LoadStack(dm, spec);
}

absl::Status RemoveEraStack(DeviceMapper& dm, const std::string& name) {
  absl::Status st = dm.Remove(name);
  if (absl::IsFailedPrecondition(st)) {
    return absl::FailedPreconditionError(
        absl::StrCat(st.message(), "; unmount or close /dev/mapper/", name,
                     " and remove the era stack again"));
  }
  return st;
}

absl::StatusOr<std::string> LiveEraGeneration(DeviceMapper& dm,
                                              const std::string& name) {
  absl::StatusOr<std::optional<std::string>> uuid = dm.Uuid(name);
  if (!uuid.ok()) return uuid.status();
  if (!uuid->has_value()) {
    return absl::NotFoundError(absl::StrCat(
        "era stack ", name, " is not assembled (no device-mapper device ", name,
        "); assemble it with `cbtctl era-stack assemble ", name, "`"));
  }
  return EraGenerationOfUuid(**uuid);
}

}  // namespace cbtd::cbt
