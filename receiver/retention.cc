#include "receiver/retention.h"

#include <time.h>

#include <algorithm>
#include <chrono>
#include <functional>

#include "absl/strings/str_cat.h"

namespace cbtd::receiver {
namespace {

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
      auto idx = vault.ReadIndexMetadata(vol, id);
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
        absl::Status st = vault.DeleteIndex(vol, s.id);
        if (absl::IsFailedPrecondition(st)) {
          result.in_use.emplace_back(vol, s.id);
          continue;
        }
        if (!st.ok()) return st;
      }
      result.removed.emplace_back(vol, s.id);
    }
  }
  return result;
}

}  // namespace cbtd::receiver
