#include "receiver/retention.h"

#include <time.h>

#include <algorithm>
#include <chrono>
#include <functional>
#include <unordered_set>

#include "absl/strings/str_cat.h"

namespace cbtd::receiver {
namespace {

int64_t NowMs() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

int64_t FloorDiv(int64_t a, int64_t b) {
  return a / b - ((a % b != 0) && ((a < 0) != (b < 0)));
}

int64_t MonthKey(int64_t ms) {
  const time_t secs = static_cast<time_t>(FloorDiv(ms, 1000));
  struct tm tm;
  gmtime_r(&secs, &tm);
  return static_cast<int64_t>(tm.tm_year) * 12 + tm.tm_mon;
}

}  // namespace

std::set<std::string> VersionsToKeep(const std::vector<VersionStamp>& versions,
                                     const RetentionPolicy& policy) {
  std::vector<const VersionStamp*> order;
  for (const VersionStamp& v : versions) order.push_back(&v);
  // Newest first; ties broken by id so the result is deterministic.
  std::sort(order.begin(), order.end(), [](auto* a, auto* b) {
    if (a->created_unix_ms != b->created_unix_ms) {
      return a->created_unix_ms > b->created_unix_ms;
    }
    return a->id > b->id;
  });
  std::set<std::string> keep;
  for (const VersionStamp* v : order) {
    if (v->is_protected) keep.insert(v->id);
  }
  for (int i = 0; i < policy.keep_last && i < static_cast<int>(order.size());
       ++i) {
    keep.insert(order[i]->id);
  }
  auto by_period = [&](int count, const std::function<int64_t(int64_t)>& key) {
    int periods = 0;
    bool have_last = false;
    int64_t last = 0;
    for (const VersionStamp* v : order) {
      if (periods >= count) break;
      const int64_t k = key(v->created_unix_ms);
      if (have_last && k == last) continue;  // an older one in the same period
      have_last = true;
      last = k;
      keep.insert(v->id);
      ++periods;
    }
  };
  by_period(policy.hourly, [](int64_t ms) { return FloorDiv(ms, 3600000); });
  by_period(policy.daily, [](int64_t ms) { return FloorDiv(ms, 86400000); });
  // ISO weeks start on Monday; 1970-01-01 was a Thursday.
  by_period(policy.weekly,
            [](int64_t ms) { return FloorDiv(FloorDiv(ms, 86400000) + 3, 7); });
  by_period(policy.monthly, MonthKey);
  return keep;
}

absl::StatusOr<PruneResult> Prune(Vault& vault,
                                  const std::vector<VolumeName>& volumes,
                                  const RetentionPolicy& policy, bool dry_run) {
  if (policy.empty()) {
    return absl::InvalidArgumentError(
        "the retention policy keeps nothing; give at least one of "
        "--keep-last, --hourly, --daily, --weekly, --monthly");
  }
  PruneResult result;
  for (const VolumeName& vol : volumes) {
    auto ids = vault.ListVersions(vol);
    if (!ids.ok()) return ids.status();
    std::vector<VersionStamp> stamps;
    for (const std::string& id : *ids) {
      auto idx = vault.ReadIndex(vol, id);
      if (!idx.ok()) {
        return absl::Status(
            idx.status().code(),
            absl::StrCat("prune stopped, nothing removed from ", vol.host, "/",
                         vol.volume, ": ", idx.status().message(),
                         "; run `cbt-receiver verify`"));
      }
      auto prot = vault.IsProtected(vol, id);
      if (!prot.ok()) return prot.status();
      stamps.push_back({id, idx->created_unix_ms, *prot});
    }
    const std::set<std::string> keep = VersionsToKeep(stamps, policy);
    for (const VersionStamp& s : stamps) {
      if (keep.contains(s.id)) {
        result.kept.emplace_back(vol, s.id);
        continue;
      }
      if (!dry_run) {
        if (auto st = vault.DeleteIndex(vol, s.id); !st.ok()) return st;
      }
      result.removed.emplace_back(vol, s.id);
    }
  }
  return result;
}

absl::StatusOr<GcResult> CollectGarbage(Vault& vault, int64_t grace_ms,
                                        bool wait, bool dry_run) {
  auto lock = vault.store().Lock(kGcLockName, LockMode::kExclusive, wait);
  if (!lock.ok()) {
    if (absl::IsUnavailable(lock.status())) {
      return absl::UnavailableError(absl::StrCat(
          "a receive is running on this vault; retry gc later or pass --wait "
          "(",
          lock.status().message(), ")"));
    }
    return lock.status();
  }
  GcResult result;
  // Mark, under the lock: every index that exists now.
  std::unordered_set<ChunkHash, transport::ChunkHashStdHash> live;
  auto volumes = vault.ListVolumes();
  if (!volumes.ok()) return volumes.status();
  for (const VolumeName& vol : *volumes) {
    auto ids = vault.ListVersions(vol);
    if (!ids.ok()) return ids.status();
    for (const std::string& id : *ids) {
      auto idx = vault.ReadIndex(vol, id);
      // Pruned between the listing and the read (prune does not take the GC
      // lock): a deleted index protects nothing. Receives cannot publish
      // while we hold the lock, so no new index can appear unseen.
      if (absl::IsNotFound(idx.status())) continue;
      if (!idx.ok()) {
        return absl::Status(
            idx.status().code(),
            absl::StrCat(
                "gc stopped before deleting anything: ", idx.status().message(),
                "; an unreadable index could reference any chunk"));
      }
      ++result.indexes;
      for (const ChunkHash& h : idx->entries) {
        if (!transport::IsZeroEntry(h)) live.insert(h);
      }
    }
  }
  result.referenced = live.size();
  // Sweep.
  auto keys = vault.store().List("chunks");
  if (!keys.ok()) return keys.status();
  const int64_t cutoff = NowMs() - grace_ms;
  for (const std::string& key : *keys) {
    ++result.chunks_seen;
    auto hash = ChunkHash::FromHex(key.substr(key.rfind('/') + 1));
    if (hash.ok() && live.contains(*hash)) continue;
    if (!hash.ok()) continue;  // not ours: never delete what we do not know
    auto mtime = vault.store().ModifiedUnixMs(key);
    if (!mtime.ok()) return mtime.status();
    if (*mtime > cutoff) {
      ++result.chunks_in_grace;
      continue;
    }
    if (!dry_run) {
      if (auto s = vault.store().Delete(key); !s.ok()) return s;
    }
    ++result.chunks_deleted;
  }
  // Temporary files of receives that died before renaming them: no
  // receive runs while we hold the lock, so none of them is in use.
  if (!dry_run) {
    auto temps = vault.store().RemoveTempFiles("chunks", cutoff);
    if (!temps.ok()) return temps.status();
    result.temp_files_removed = *temps;
  }
  return result;
}

}  // namespace cbtd::receiver
