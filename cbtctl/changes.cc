// `cbtctl changes`: the debugging entry point that prints the changed set
// of a volume against an explicit base, computed by the same cbt/ code the
// backup run uses.
#include <sys/stat.h>
#include <unistd.h>

#include <cstring>
#include <iostream>
#include <map>
#include <nlohmann/json.hpp>
#include <string>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "cbt/changed_set.h"
#include "cbt/device_mapper.h"
#include "cbt/era_method.h"
#include "cbt/era_stack.h"
#include "cbt/external_method.h"
#include "cbt/hash_method.h"
#include "cbt/lvm_methods.h"
#include "cbtctl/commands.h"
#include "common/block_reader.h"
#include "common/fs.h"
#include "common/units.h"

namespace cbtd::cbtctl {
namespace {

constexpr char kChangesUsage[] =
    "Usage: cbtctl changes VOLUME --method METHOD [options] [--json]\n"
    "  thin-delta  VOLUME=VG/LV --base VG/OLD_SNAP --new VG/NEW_SNAP\n"
    "  cow-table   VOLUME=VG/ORIGIN --base VG/COW_SNAP\n"
    "  era         VOLUME=ERA_DM_NAME --since ERA [--era-generation G]\n"
    "              [--metadata DEV (default: the recorded stack's)]\n"
    "  hash        VOLUME=PATH [--chunk-bytes N] [--previous-hashes FILE]\n"
    "              [--save-hashes FILE]\n"
    "  external    VOLUME=PATH --extents FILE --generation ID\n"
    "Prints the changed set (--json: the debug dump). Exit 0 also when\n"
    "tracking is lost: the output says so and why.\n";

constexpr char kRunDir[] = "/run/cbtd";

struct Args {
  std::string volume;
  std::map<std::string, std::string> opts;
  bool json = false;
};

// --key value pairs after one positional argument; false on bad syntax.
bool ParseArgs(std::span<char*> args, Args* out) {
  for (size_t i = 1; i < args.size(); ++i) {
    const std::string a = args[i];
    if (a == "--json") {
      out->json = true;
    } else if (a.rfind("--", 0) == 0 && i + 1 < args.size()) {
      out->opts[a.substr(2)] = args[++i];
    } else if (a.rfind("--", 0) != 0 && out->volume.empty()) {
      out->volume = a;
    } else {
      return false;
    }
  }
  return !out->volume.empty();
}

std::string Opt(const Args& a, const std::string& k) {
  auto it = a.opts.find(k);
  return it == a.opts.end() ? std::string() : it->second;
}

std::string LockPath(const std::string& kind, const std::string& dm_name) {
  ::mkdir(kRunDir, 0700);
  return absl::StrCat(kRunDir, "/", kind, "-", dm_name, ".lock");
}

std::string LockDir() {
  ::mkdir(kRunDir, 0700);
  return kRunDir;
}

absl::StatusOr<std::vector<cbt::ChunkDigest>> ReadDigests(
    const std::string& path) {
  absl::StatusOr<std::string> bytes = common::ReadFile(path);
  if (!bytes.ok()) return bytes.status();
  if (bytes->size() % 32 != 0) {
    return absl::InvalidArgumentError(
        absl::StrCat(path, " is not a list of 32-byte digests"));
  }
  std::vector<cbt::ChunkDigest> out(bytes->size() / 32);
  for (size_t i = 0; i < out.size(); ++i) {
    std::memcpy(out[i].data(), bytes->data() + i * 32, 32);
  }
  return out;
}

int Fail(const absl::Status& st) {
  std::cerr << "cbtctl changes: " << st << "\n";
  return common::kExitFailure;
}

}  // namespace

int RunChangesCommand(std::span<char*> args) {
  Args a;
  if (!ParseArgs(args, &a) || Opt(a, "method").empty()) {
    std::cerr << kChangesUsage;
    return common::kExitUsage;
  }
  absl::StatusOr<cbt::Method> method = cbt::ParseMethod(Opt(a, "method"));
  if (!method.ok()) return Fail(method.status());
  std::unique_ptr<cbt::CommandRunner> run = cbt::NewLinuxCommandRunner();
  std::unique_ptr<cbt::DeviceMapper> dm = cbt::NewLinuxDeviceMapper();
  absl::StatusOr<cbt::ChangedSet> set;
  nlohmann::json extra = nlohmann::json::object();
  switch (*method) {
    case cbt::Method::kThinDelta:
      set = cbt::ThinDeltaBetweenLvs(*run, *dm, a.volume, Opt(a, "base"),
                                     Opt(a, "new"), LockDir());
      break;
    case cbt::Method::kCowTable:
      set = cbt::CowTableOfLv(*run, a.volume, Opt(a, "base"));
      break;
    case cbt::Method::kEra: {
      cbt::EraRequest req;
      req.era_dm_name = a.volume;
      req.metadata_path = Opt(a, "metadata");
      req.expected_generation = Opt(a, "era-generation");
      if (req.metadata_path.empty()) {
        const cbt::EraStackRegistry reg(Opt(a, "registry").empty()
                                            ? cbt::kDefaultEraRegistryDir
                                            : Opt(a, "registry"));
        auto spec = reg.Find(a.volume);
        if (!spec.ok()) return Fail(spec.status());
        if (!spec->has_value()) {
          std::cerr << "cbtctl changes: " << a.volume
                    << " is not a recorded era stack; give --metadata DEV\n";
          return common::kExitUsage;
        }
        req.metadata_path = (*spec)->metadata_path;
      }
      if (!common::ParseDecimalUint64(Opt(a, "since"), &req.since_era)) {
        std::cerr << "cbtctl changes: --since ERA is required for era\n";
        return common::kExitUsage;
      }
      req.lock_path = LockPath("era", a.volume);
      absl::StatusOr<cbt::EraResult> r = cbt::ComputeEra(*run, *dm, req);
      if (!r.ok()) return Fail(r.status());
      extra["next_since_era"] = r->next_since_era;
      extra["era_generation"] = r->generation;
      set = std::move(r->set);
      break;
    }
    case cbt::Method::kHash: {
      uint64_t chunk = 64 * 1024;
      if (!Opt(a, "chunk-bytes").empty() &&
          !common::ParseDecimalUint64(Opt(a, "chunk-bytes"), &chunk)) {
        std::cerr << "cbtctl changes: bad --chunk-bytes\n";
        return common::kExitUsage;
      }
      std::unique_ptr<cbt::VectorChunkHashes> prev;
      if (!Opt(a, "previous-hashes").empty()) {
        auto d = ReadDigests(Opt(a, "previous-hashes"));
        if (!d.ok()) return Fail(d.status());
        prev = std::make_unique<cbt::VectorChunkHashes>(chunk, std::move(*d));
      }
      auto dev = common::OpenBlockReader(a.volume);
      if (!dev.ok()) return Fail(dev.status());
      auto r = cbt::ComputeHash(**dev, chunk, prev.get());
      if (!r.ok()) return Fail(r.status());
      if (!Opt(a, "save-hashes").empty()) {
        std::string bytes;
        for (const auto& d : r->digests) {
          bytes.append(reinterpret_cast<const char*>(d.data()), d.size());
        }
        absl::Status st = common::AtomicWriteFile(Opt(a, "save-hashes"), bytes);
        if (!st.ok()) return Fail(st);
      }
      set = std::move(r->set);
      break;
    }
    case cbt::Method::kExternal: {
      auto dev = common::OpenBlockReader(a.volume);
      if (!dev.ok()) return Fail(dev.status());
      auto file = common::ReadFile(Opt(a, "extents"));
      if (!file.ok()) return Fail(file.status());
      set = cbt::ComputeExternal(*file, Opt(a, "generation"),
                                 (*dev)->SizeBytes());
      break;
    }
  }
  if (!set.ok()) return Fail(set.status());
  if (a.json) {
    nlohmann::json j = nlohmann::json::parse(cbt::ChangedSetToJson(*set));
    j["volume"] = a.volume;
    j.update(extra);
    std::cout << j.dump(2) << "\n";
  } else {
    std::cout << a.volume << ": method " << cbt::MethodName(set->method)
              << ", generation " << set->generation << "\n";
    if (set->lost) std::cout << "tracking LOST: " << set->lost_reason << "\n";
    std::cout << "changed " << set->changed.TotalBytes() << " bytes in "
              << set->changed.size() << " extents, zeroed "
              << set->zeroed.TotalBytes() << " bytes, of "
              << set->volume_size_bytes << "\n";
    if (!extra.empty()) std::cout << extra.dump() << "\n";
  }
  return common::kExitOk;
}

}  // namespace cbtd::cbtctl
