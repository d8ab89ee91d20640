// `cbtctl changes`: the debugging entry point that prints the changed set
// of a volume against an explicit base, computed by the same cbt/ code the
// backup run uses. `cbtctl era-stack`: put a device under a dm-era stack,
// re-assemble it at boot, or remove it.
#include <sys/stat.h>

#include <cstring>
#include <iostream>
#include <map>
#include <nlohmann/json.hpp>
#include <string>

#include "absl/strings/str_cat.h"
#include "agent/cbtctl_commands.h"
#include "cbt/block_reader.h"
#include "cbt/changed_set.h"
#include "cbt/cow_store.h"
#include "cbt/era_method.h"
#include "cbt/external_method.h"
#include "cbt/hash_method.h"
#include "cbt/lvm_query.h"
#include "cbt/thin_delta_method.h"
#include "cbt/xml_elements.h"
#include "common/fs.h"

namespace cbtd::agent {
namespace {

constexpr char kChangesUsage[] =
    "Usage: cbtctl changes VOLUME --method METHOD [options] [--json]\n"
    "  thin-delta  VOLUME=VG/LV --base VG/OLD_SNAP --new VG/NEW_SNAP\n"
    "  cow-table   VOLUME=VG/ORIGIN --base VG/COW_SNAP\n"
    "  era         VOLUME=ERA_DM_NAME --metadata DEV --since ERA\n"
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

absl::StatusOr<cbt::ChangedSet> ThinDelta(cbt::CommandRunner& run,
                                          const Args& a) {
  absl::StatusOr<cbt::LvInfo> vol = cbt::QueryLv(run, a.volume);
  if (!vol.ok()) return vol.status();
  absl::StatusOr<cbt::LvInfo> base = cbt::QueryLv(run, Opt(a, "base"));
  if (absl::IsNotFound(base.status())) {
    return cbt::ChangedSet::Lost(
        cbt::Method::kThinDelta, vol->size_bytes,
        absl::StrCat("base snapshot ", Opt(a, "base"), " is missing"));
  }
  if (!base.ok()) return base.status();
  absl::StatusOr<cbt::LvInfo> next = cbt::QueryLv(run, Opt(a, "new"));
  if (!next.ok()) return next.status();
  if (!base->has_thin_id || !next->has_thin_id ||
      base->pool_lv != next->pool_lv || base->vg != next->vg) {
    return cbt::ChangedSet::Lost(
        cbt::Method::kThinDelta, next->size_bytes,
        absl::StrCat("base ", Opt(a, "base"), " and new ", Opt(a, "new"),
                     " are not thin volumes of one pool"));
  }
  cbt::ThinDeltaRequest req;
  req.pool_dm_name = cbt::LvmDmName(next->vg, next->pool_lv, "tpool");
  req.tmeta_path = absl::StrCat(
      "/dev/mapper/", cbt::LvmDmName(next->vg, next->pool_lv + "_tmeta"));
  req.base_thin_id = base->thin_id;
  req.new_thin_id = next->thin_id;
  req.volume_size_bytes = next->size_bytes;
  req.lock_path = LockPath("thin", req.pool_dm_name);
  return cbt::ComputeThinDelta(run, req);
}

absl::StatusOr<cbt::ChangedSet> CowTable(cbt::CommandRunner& run,
                                         const Args& a) {
  absl::StatusOr<cbt::LvInfo> vol = cbt::QueryLv(run, a.volume);
  if (!vol.ok()) return vol.status();
  absl::StatusOr<cbt::LvInfo> base = cbt::QueryLv(run, Opt(a, "base"));
  if (absl::IsNotFound(base.status())) {
    return cbt::ChangedSet::Lost(
        cbt::Method::kCowTable, vol->size_bytes,
        absl::StrCat("base snapshot ", Opt(a, "base"), " is missing"));
  }
  if (!base.ok()) return base.status();
  if (base->origin != vol->lv) {
    return cbt::ChangedSet::Lost(
        cbt::Method::kCowTable, vol->size_bytes,
        absl::StrCat(Opt(a, "base"), " is not a snapshot of ", a.volume));
  }
  return cbt::ComputeCowTable(
      absl::StrCat("/dev/mapper/", cbt::LvmDmName(base->vg, base->lv, "cow")),
      vol->size_bytes);
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
  absl::StatusOr<cbt::ChangedSet> set;
  nlohmann::json extra = nlohmann::json::object();
  switch (*method) {
    case cbt::Method::kThinDelta:
      set = ThinDelta(*run, a);
      break;
    case cbt::Method::kCowTable:
      set = CowTable(*run, a);
      break;
    case cbt::Method::kEra: {
      cbt::EraRequest req;
      req.era_dm_name = a.volume;
      req.metadata_path = Opt(a, "metadata");
      if (!cbt::ParseDecimalUint64(Opt(a, "since"), &req.since_era)) {
        std::cerr << "cbtctl changes: --since ERA is required for era\n";
        return common::kExitUsage;
      }
      req.lock_path = LockPath("era", a.volume);
      absl::StatusOr<cbt::EraResult> r = cbt::ComputeEra(*run, req);
      if (!r.ok()) return Fail(r.status());
      extra["next_since_era"] = r->next_since_era;
      set = std::move(r->set);
      break;
    }
    case cbt::Method::kHash: {
      uint64_t chunk = 64 * 1024;
      if (!Opt(a, "chunk-bytes").empty() &&
          !cbt::ParseDecimalUint64(Opt(a, "chunk-bytes"), &chunk)) {
        std::cerr << "cbtctl changes: bad --chunk-bytes\n";
        return common::kExitUsage;
      }
      std::unique_ptr<cbt::VectorChunkHashes> prev;
      if (!Opt(a, "previous-hashes").empty()) {
        auto d = ReadDigests(Opt(a, "previous-hashes"));
        if (!d.ok()) return Fail(d.status());
        prev = std::make_unique<cbt::VectorChunkHashes>(chunk, std::move(*d));
      }
      auto dev = cbt::OpenBlockReader(a.volume);
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
      auto dev = cbt::OpenBlockReader(a.volume);
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

int RunEraStackCommand(std::span<char*> args) {
  Args a;
  const bool ok = args.size() >= 3 && ParseArgs(args.subspan(1), &a);
  const std::string action = args.size() >= 2 ? args[1] : "";
  if (!ok ||
      (action != "create" && action != "assemble" && action != "remove")) {
    std::cerr
        << "Usage: cbtctl era-stack create|assemble NAME --origin DEV "
           "--metadata DEV [--block-sectors N]\n"
           "       cbtctl era-stack remove NAME\n"
           "create formats fresh era metadata; assemble re-loads a stack\n"
           "over existing metadata (at boot, before the origin is used).\n";
    return common::kExitUsage;
  }
  std::unique_ptr<cbt::CommandRunner> run = cbt::NewLinuxCommandRunner();
  absl::Status st;
  if (action == "remove") {
    st = cbt::RemoveEraStack(*run, a.volume);
  } else {
    cbt::EraStackSpec spec;
    spec.name = a.volume;
    spec.origin_path = Opt(a, "origin");
    spec.metadata_path = Opt(a, "metadata");
    if (!Opt(a, "block-sectors").empty() &&
        !cbt::ParseDecimalUint64(Opt(a, "block-sectors"),
                                 &spec.block_sectors)) {
      std::cerr << "cbtctl era-stack: bad --block-sectors\n";
      return common::kExitUsage;
    }
    st = action == "create" ? cbt::CreateEraStack(*run, spec)
                            : cbt::AssembleEraStack(*run, spec);
  }
  if (!st.ok()) {
    std::cerr << "cbtctl era-stack " << action << ": " << st << "\n";
    return common::kExitFailure;
  }
  return common::kExitOk;
}

}  // namespace cbtd::agent
