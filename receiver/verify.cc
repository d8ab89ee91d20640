#include "receiver/verify.h"

#include <atomic>
#include <map>
#include <mutex>
#include <thread>
#include <unordered_map>

#include "absl/strings/str_cat.h"

namespace cbtd::receiver {

absl::StatusOr<VerifyReport> VerifyVault(Vault& vault,
                                         const VerifyScope& scope) {
  VerifyReport report;
  std::vector<VolumeName> volumes;
  if (scope.volume) {
    volumes.push_back(*scope.volume);
  } else {
    auto all = vault.ListVolumes();
    if (!all.ok()) return all.status();
    volumes = *all;
  }
  // Which versions reference which chunk: each chunk is read once however
  // many versions share it.
  std::unordered_map<ChunkHash, std::vector<size_t>,
                     transport::ChunkHashStdHash>
      users;
  std::vector<std::pair<VolumeName, std::string>> versions;
  std::map<size_t, std::string> damage;  // version slot -> first reason
  for (const VolumeName& v : volumes) {
    std::vector<std::string> ids;
    if (!scope.version.empty()) {
      ids.push_back(scope.version);
    } else {
      auto listed = vault.ListVersions(v);
      if (!listed.ok()) return listed.status();
      ids = *listed;
    }
    for (const std::string& id : ids) {
      const size_t slot = versions.size();
      versions.emplace_back(v, id);
      auto idx = vault.ReadIndex(v, id);
      if (!idx.ok()) {
        damage[slot] = std::string(idx.status().message());
        continue;
      }
      for (const ChunkHash& h : idx->entries) {
        if (transport::IsZeroEntry(h)) continue;
        auto& u = users[h];
        if (u.empty() || u.back() != slot) u.push_back(slot);
      }
    }
  }
  std::vector<const std::pair<const ChunkHash, std::vector<size_t>>*> work;
  for (const auto& kv : users) work.push_back(&kv);
  std::atomic<size_t> next{0};
  std::mutex mu;
  auto run = [&] {
    for (size_t k; (k = next++) < work.size();) {
      auto data = vault.ReadChunk(work[k]->first);
      if (data.ok()) continue;
      std::lock_guard l(mu);
      for (size_t slot : work[k]->second) {
        damage.emplace(slot, std::string(data.status().message()));
      }
    }
  };
  std::vector<std::thread> ts;
  for (int t = 1; t < std::max(1, scope.threads); ++t) ts.emplace_back(run);
  run();
  for (auto& t : ts) t.join();
  report.versions_checked = versions.size();
  report.chunks_checked = work.size();
  for (const auto& [slot, reason] : damage) {
    report.damaged.push_back(
        {versions[slot].first, versions[slot].second, reason});
  }
  return report;
}

}  // namespace cbtd::receiver
