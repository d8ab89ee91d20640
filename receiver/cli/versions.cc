// cbt-receiver versions: lists volumes and versions; protects versions from
// pruning; exports a version's index (for `cbtctl send --base-index`).
#include <algorithm>
#include <iostream>
#include <map>

#include "common/cli.h"
#include "receiver/cli/util.h"
#include "receiver/groups.h"
#include "receiver/index_stream.h"

namespace cbtd::receiver::cli {
namespace {

// Writes the index object of `id` to stdout as stored, 4 MiB at a time (an
// index is 8 GiB at 16 TiB); `cbtctl send --base-index` checks it.
absl::Status ExportIndex(ObjectStore& store, Vault& vault, const VolumeName& v,
                         const std::string& id) {
  // NOT_FOUND naming the version, DATA_LOSS for a damaged head.
  if (auto reader = vault.OpenIndex(v, id); !reader.ok()) {
    return reader.status();
  }
  auto object = store.OpenReader(Vault::IndexKey(v, id));
  if (!object.ok()) return object.status();
  constexpr uint64_t kPiece = 4u << 20;
  const uint64_t size = (*object)->size_bytes();
  for (uint64_t off = 0; off < size; off += kPiece) {
    auto piece = (*object)->ReadAt(
        off, static_cast<uint32_t>(std::min(kPiece, size - off)));
    if (!piece.ok()) return piece.status();
    if (!std::cout.write(piece->data(),
                         static_cast<std::streamsize>(piece->size()))) {
      return absl::UnavailableError("writing the index to stdout failed");
    }
  }
  if (!std::cout.flush()) {
    return absl::UnavailableError("writing the index to stdout failed");
  }
  return absl::OkStatus();
}

}  // namespace

int RunVersions(std::span<char*> args) {
  po::options_description desc("Options");
  desc.add_options()("host", po::value<std::string>(), "source host")(
      "volume", po::value<std::string>(), "volume id")(
      "protect", po::value<std::string>(), "protect VERSION from pruning")(
      "unprotect", po::value<std::string>(), "remove the protection")(
      "export-index", po::value<std::string>(),
      "write VERSION's index object to stdout");
  po::variables_map vm;
  if (auto rc = ParseCommand(
          args, "versions --vault DIR [--host H --volume V] [--json]", desc,
          vm)) {
    return *rc;
  }
  if (auto rc = CheckNameArgs(
          vm, "versions",
          {"host", "volume", "protect", "unprotect", "export-index"})) {
    return *rc;
  }
  auto opened =
      OpenVault(vm, false,
                /*writable=*/vm.count("protect") + vm.count("unprotect") > 0);
  if (!opened.ok()) return Fail(vm, "versions", opened.status());
  Vault& vault = *opened->vault;
  std::vector<VolumeName> volumes;
  if (vm.count("host") && vm.count("volume")) {
    volumes.push_back(
        {vm["host"].as<std::string>(), vm["volume"].as<std::string>()});
  } else if (vm.count("host") || vm.count("volume")) {
    std::cerr << "cbt-receiver versions: give both --host and --volume\n";
    return common::kExitUsage;
  } else {
    auto all = vault.ListVolumes();
    if (!all.ok()) return Fail(vm, "versions", all.status());
    volumes = *all;
  }
  for (const char* flag : {"protect", "unprotect", "export-index"}) {
    if (!vm.count(flag)) continue;
    if (volumes.size() != 1 || !vm.count("host")) {
      std::cerr << "cbt-receiver versions: --" << flag
                << " needs --host and --volume\n";
      return common::kExitUsage;
    }
    const std::string id = vm[flag].as<std::string>();
    if (std::string_view(flag) == "export-index") {
      auto s = ExportIndex(*opened->store, vault, volumes[0], id);
      return s.ok() ? common::kExitOk : Fail(vm, "versions", s);
    }
    auto s =
        vault.SetProtected(volumes[0], id, std::string_view(flag) == "protect");
    if (!s.ok()) return Fail(vm, "versions", s);
  }
  nlohmann::json out = nlohmann::json::array();
  std::map<std::string, CommittedGroups> groups;  // per host
  for (const VolumeName& v : volumes) {
    if (!groups.contains(v.host)) {
      auto loaded = CommittedGroups::Load(vault, v.host);
      if (!loaded.ok()) return Fail(vm, "versions", loaded.status());
      groups.emplace(v.host, *std::move(loaded));
    }
    auto ids = vault.ListVersions(v);
    if (!ids.ok()) return Fail(vm, "versions", ids.status());
    for (const std::string& id : *ids) {
      auto idx = vault.ListedIndexMetadata(v, id);
      auto prot = vault.IsProtected(v, id);
      nlohmann::json j = {
          {"host", v.host}, {"volume", v.volume}, {"version", id}};
      if (!idx.ok()) {
        j["error"] = std::string(idx.status().message());
      } else {
        j["created_unix_ms"] = idx->created_unix_ms;
        j["base_version"] = idx->base_version_id;
        j["volume_size_bytes"] = idx->volume_size_bytes;
        j["chunk_size_bytes"] = idx->chunk_size_bytes;
        j["root_hash"] = idx->root_hash.ToHex();
        j["stored_bytes"] = idx->stats.stored_bytes;
        // Every line says which: "none" is never left to be inferred.
        j["encryption"] = idx->encrypted() ? "aes256gcm-v1" : "none";
        j["key_fingerprint"] = idx->key_fingerprint;
        if (!idx->group.empty()) {
          j["group"] = idx->group;
          j["group_version"] = idx->group_version_id;
          j["group_committed"] = groups.at(v.host).Listed(*idx);
        }
      }
      j["protected"] = prot.ok() && *prot;
      out.push_back(j);
    }
  }
  if (vm.count("json")) {
    PrintJson(out);
    return common::kExitOk;
  }
  for (const auto& j : out) {
    std::cout << j["host"].get<std::string>() << "/"
              << j["volume"].get<std::string>() << "@"
              << j["version"].get<std::string>();
    if (j.contains("error")) {
      std::cout << "  DAMAGED: " << j["error"].get<std::string>() << "\n";
      continue;
    }
    const std::string base = j["base_version"];
    std::cout << "  size " << j["volume_size_bytes"].get<uint64_t>()
              << "  base " << (base.empty() ? "-" : base) << "  root "
              << j["root_hash"].get<std::string>().substr(0, 16) << "  "
              << (j["key_fingerprint"].get<std::string>().empty()
                      ? std::string("encryption none")
                      : "key " + j["key_fingerprint"].get<std::string>())
              << (j["protected"].get<bool>() ? "  protected" : "");
    if (j.contains("group")) {
      std::cout << "  group " << j["group"].get<std::string>() << "@"
                << j["group_version"].get<std::string>()
                << (j["group_committed"].get<bool>()
                        ? ""
                        : " (not committed: not a restore point)");
    }
    std::cout << "\n";
  }
  return common::kExitOk;
}

}  // namespace cbtd::receiver::cli
