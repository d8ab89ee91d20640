#include "receiver/retention.h"

#include <time.h>

#include <algorithm>
#include <chrono>
#include <functional>
#include <map>
#include <tuple>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "receiver/groups.h"

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

namespace {

// One version as Prune sees it.
struct Candidate {
  VersionStamp stamp;
  std::string group;  // a committed group version's member: its group
  std::string group_version_id;
  bool pending = false;  // a member of a group version not committed
};

// Protected, or held by an NBD export whose lease has not run out: kept
// whatever the policy says.
absl::StatusOr<bool> Pinned(Vault& vault, const VolumeName& vol,
                            const std::string& id) {
  auto prot = vault.IsProtected(vol, id);
  if (!prot.ok() || *prot) return prot;
  auto held = vault.HeldUntil(vol, id);
  if (!held.ok()) return held.status();
  return *held > absl::ToUnixSeconds(absl::Now());
}

absl::StatusOr<std::vector<Candidate>> ReadCandidates(
    Vault& vault, const VolumeName& vol, const CommittedGroups& groups) {
  auto ids = vault.ListVersions(vol);
  if (!ids.ok()) return ids.status();
  std::vector<Candidate> out;
  for (const std::string& id : *ids) {
    auto idx = vault.ListedIndexMetadata(vol, id);
    if (!idx.ok()) {
      return absl::Status(
          idx.status().code(),
          absl::StrCat("prune stopped, nothing removed from ", vol.host, "/",
                       vol.volume, ": ", idx.status().message(),
                       "; run `cbt-receiver verify`"));
    }
    auto prot = Pinned(vault, vol, id);
    if (!prot.ok()) return prot.status();
    Candidate c{{id, idx->created_unix_ms, *prot},
                idx->group,
                idx->group_version_id,
                !groups.Listed(*idx)};
    out.push_back(std::move(c));
  }
  return out;
}

// The pending member a volume's next incremental may build on: the
// volume's newest version, if it is pending.
const Candidate* NewestPending(const std::vector<Candidate>& all) {
  const Candidate* newest = nullptr;
  for (const Candidate& c : all) {
    if (newest == nullptr ||
        std::tie(c.stamp.created_unix_ms, c.stamp.id) >
            std::tie(newest->stamp.created_unix_ms, newest->stamp.id)) {
      newest = &c;
    }
  }
  return newest != nullptr && newest->pending ? newest : nullptr;
}

// Removes one version; a committed group member's group record goes
// first, so the vault never lists the group with a member missing.
absl::Status Remove(Vault& vault, const VolumeName& vol, const Candidate& c) {
  if (!c.group.empty() && !c.pending) {
    if (auto s = DeleteGroup(vault, vol.host, c.group, c.group_version_id);
        !s.ok()) {
      return s;
    }
  }
  return vault.DeleteIndex(vol, c.stamp.id);
}

absl::Status PruneVolume(Vault& vault, const VolumeName& vol,
                         const CommittedGroups& groups,
                         const RetentionPolicy& policy, bool dry_run,
                         VersionScope scope, PruneResult& result) {
  auto all = ReadCandidates(vault, vol, groups);
  if (!all.ok()) return all.status();
  if (scope == VersionScope::kAlone) {
    std::erase_if(*all, [](const Candidate& c) { return !c.group.empty(); });
  }
  // Pending members are not restore points: the rule counts the others.
  // They are removed, except the newest version of the volume (the next
  // run's base) and protected ones.
  std::vector<VersionStamp> points;
  for (const Candidate& c : *all) {
    if (!c.pending) points.push_back(c.stamp);
  }
  std::set<std::string> keep = VersionsToKeep(points, policy);
  for (const Candidate& c : *all) {
    if (c.pending && c.stamp.is_protected) keep.insert(c.stamp.id);
  }
  if (const Candidate* base = NewestPending(*all)) keep.insert(base->stamp.id);
  for (const Candidate& c : *all) {
    if (keep.contains(c.stamp.id)) {
      result.kept.emplace_back(vol, c.stamp.id);
      continue;
    }
    if (!dry_run) {
      absl::Status st = Remove(vault, vol, c);
      if (absl::IsFailedPrecondition(st)) {
        result.in_use.emplace_back(vol, c.stamp.id);
        continue;
      }
      if (!st.ok()) return st;
    }
    result.removed.emplace_back(vol, c.stamp.id);
  }
  return absl::OkStatus();
}

absl::Status RefuseEmpty(const RetentionPolicy& policy) {
  if (!policy.empty()) return absl::OkStatus();
  return absl::InvalidArgumentError(
      "the retention policy keeps nothing; give at least one of "
      "--keep-last, --hourly, --daily, --weekly, --monthly");
}

// Removes a member version of a group version PruneGroup drops.
absl::Status RemoveMember(Vault& vault, const VolumeName& vol,
                          const std::string& version,
                          GroupPruneResult& result) {
  absl::Status st = vault.DeleteIndex(vol, version);
  if (absl::IsFailedPrecondition(st)) {
    result.in_use.emplace_back(vol, version);
    return absl::OkStatus();
  }
  if (!st.ok()) return st;
  result.removed_members.emplace_back(vol, version);
  return absl::OkStatus();
}

// The group's pending members, but each volume's newest version and
// protected ones.
absl::Status RemovePendingMembers(Vault& vault, const std::string& host,
                                  const std::string& group,
                                  const std::set<std::string>& volumes,
                                  bool dry_run, GroupPruneResult& result) {
  auto committed = CommittedGroups::Load(vault, host);
  if (!committed.ok()) return committed.status();
  for (const std::string& volume : volumes) {
    const VolumeName vol{host, volume};
    auto all = ReadCandidates(vault, vol, *committed);
    if (!all.ok()) return all.status();
    const Candidate* base = NewestPending(*all);
    for (const Candidate& c : *all) {
      if (!c.pending || c.group != group || c.stamp.is_protected ||
          &c == base) {
        continue;
      }
      if (dry_run) {
        result.removed_members.emplace_back(vol, c.stamp.id);
      } else if (auto s = RemoveMember(vault, vol, c.stamp.id, result);
                 !s.ok()) {
        return s;
      }
    }
  }
  return absl::OkStatus();
}

}  // namespace

absl::StatusOr<GroupPruneResult> PruneGroup(Vault& vault,
                                            const std::string& host,
                                            const std::string& group,
                                            const RetentionPolicy& policy,
                                            bool dry_run) {
  if (auto s = RefuseEmpty(policy); !s.ok()) return s;
  if (auto s = ValidateName("group", group); !s.ok()) return s;
  auto records = ListGroups(vault, host);
  if (!records.ok()) return records.status();
  std::erase_if(*records,
                [&](const GroupRecord& r) { return r.commit.group != group; });
  if (records->empty()) {
    return absl::NotFoundError(absl::StrCat("no group versions of group '",
                                            group, "' of host '", host,
                                            "' to prune"));
  }
  std::vector<VersionStamp> stamps;
  std::set<std::string> volumes;
  for (const GroupRecord& r : *records) {
    VersionStamp stamp{r.commit.group_version_id, r.commit.created_unix_ms,
                       false};
    for (const transport::GroupMemberVersion& m : r.commit.members) {
      volumes.insert(m.volume_id);
      auto prot = Pinned(vault, {host, m.volume_id}, m.version_id);
      if (!prot.ok()) return prot.status();
      stamp.is_protected = stamp.is_protected || *prot;
    }
    stamps.push_back(stamp);
  }
  const std::set<std::string> keep = VersionsToKeep(stamps, policy);
  GroupPruneResult result;
  for (const GroupRecord& r : *records) {
    const std::string& gv = r.commit.group_version_id;
    if (keep.contains(gv)) {
      result.kept.push_back(gv);
      continue;
    }
    result.removed.push_back(gv);
    if (dry_run) continue;
    // The record first: from here on the group version is not listed.
    if (auto s = DeleteGroup(vault, host, group, gv); !s.ok()) return s;
    for (const transport::GroupMemberVersion& m : r.commit.members) {
      if (auto s =
              RemoveMember(vault, {host, m.volume_id}, m.version_id, result);
          !s.ok()) {
        return s;
      }
    }
  }
  if (auto s =
          RemovePendingMembers(vault, host, group, volumes, dry_run, result);
      !s.ok()) {
    return s;
  }
  return result;
}

absl::StatusOr<PruneResult> Prune(Vault& vault,
                                  const std::vector<VolumeName>& volumes,
                                  const RetentionPolicy& policy, bool dry_run,
                                  VersionScope scope) {
  if (auto s = RefuseEmpty(policy); !s.ok()) return s;
  PruneResult result;
  std::map<std::string, CommittedGroups> groups;  // per host
  for (const VolumeName& vol : volumes) {
    if (!groups.contains(vol.host)) {
      auto loaded = CommittedGroups::Load(vault, vol.host);
      if (!loaded.ok()) return loaded.status();
      groups.emplace(vol.host, *std::move(loaded));
    }
    if (auto s = PruneVolume(vault, vol, groups.at(vol.host), policy, dry_run,
                             scope, result);
        !s.ok()) {
      return s;
    }
  }
  return result;
}

}  // namespace cbtd::receiver
