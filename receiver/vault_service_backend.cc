#include "receiver/vault_service_backend.h"

#include <algorithm>
#include <optional>
#include <set>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "receiver/groups.h"
#include "receiver/receive_session.h"
#include "receiver/retention.h"

namespace cbtd::receiver {
namespace {

class VaultUpload : public transport::UploadSession {
 public:
  explicit VaultUpload(std::unique_ptr<ReceiveSession> session)
      : session_(std::move(session)) {}

  absl::StatusOr<std::vector<bool>> HaveChunks(
      std::span<const ChunkHash> hashes) override {
    if (!session_) return absl::FailedPreconditionError("session aborted");
    return session_->HaveChunks(hashes);
  }

  absl::Status Apply(const stream::Record& record) override {
    if (!session_) return absl::FailedPreconditionError("session aborted");
    if (record.has_trailer()) {
      return absl::InvalidArgumentError("the Trailer goes to Commit");
    }
    return session_->Apply(record);
  }

  absl::StatusOr<transport::CommitResult> Commit(
      const stream::Trailer& trailer) override {
    if (!session_) return absl::FailedPreconditionError("session aborted");
    stream::Record r;
    *r.mutable_trailer() = trailer;
    if (absl::Status s = session_->Apply(r); !s.ok()) return s;
    const IndexMetadata& meta = session_->metadata();
    return transport::CommitResult{meta.version_id, meta.root_hash, meta.stats,
                                   meta.chunk_size_bytes};
  }

  // Destroying an uncommitted ReceiveSession is its abort: chunks stay
  // (content-addressed, reusable, GC'd if unreferenced), no index.
  void Abort() override { session_.reset(); }

 private:
  std::unique_ptr<ReceiveSession> session_;
};

}  // namespace

absl::StatusOr<std::unique_ptr<transport::UploadSession>>
VaultServiceBackend::OpenSession(const stream::Header& header) {
  auto s = ReceiveSession::Open(vault_, header);
  if (!s.ok()) return s.status();
  return std::make_unique<VaultUpload>(std::move(*s));
}

absl::StatusOr<std::vector<transport::VersionSummary>>
VaultServiceBackend::ListVersions(const std::string& source_host,
                                  const std::string& volume_id) {
  if (auto s = ValidateName("host", source_host); !s.ok()) return s;
  std::vector<VolumeName> volumes;
  if (!volume_id.empty()) {
    if (auto s = ValidateName("volume", volume_id); !s.ok()) return s;
    volumes.push_back({source_host, volume_id});
  } else {
    auto all = vault_.ListVolumes();
    if (!all.ok()) return all.status();
    for (auto& v : *all) {
      if (v.host == source_host) volumes.push_back(std::move(v));
    }
  }
  // A member of a group version that is not committed is not listed: the
  // listing never shows half a group (receiver/groups.h).
  auto groups = CommittedGroups::Load(vault_, source_host);
  if (!groups.ok()) return groups.status();
  std::vector<transport::VersionSummary> out;
  for (const VolumeName& v : volumes) {
    auto ids = vault_.ListVersions(v);
    if (!ids.ok()) return ids.status();
    for (const std::string& id : *ids) {
      auto index = vault_.ListedIndexMetadata(v, id);
      // Pruned between the listing and the read: not a version any more.
      if (absl::IsNotFound(index.status())) continue;
      if (!index.ok()) return index.status();
      if (!groups->Listed(*index)) continue;
      out.push_back(transport::SummaryOf(*index));
    }
  }
  return out;
}

namespace {

absl::Status ValidateVersionNames(const std::string& host,
                                  const std::string& volume,
                                  const std::string& version) {
  for (auto [what, name] : {std::pair{"host", &host},
                            {"volume", &volume},
                            {"version id", &version}}) {
    if (auto s = ValidateName(what, *name); !s.ok()) return s;
  }
  return absl::OkStatus();
}

}  // namespace

absl::StatusOr<VersionIndex> VaultServiceBackend::GetIndex(
    const std::string& source_host, const std::string& volume_id,
    const std::string& version_id) {
  if (auto s = ValidateVersionNames(source_host, volume_id, version_id);
      !s.ok()) {
    return s;
  }
  return vault_.ReadIndex({source_host, volume_id}, version_id);
}

absl::StatusOr<std::unique_ptr<transport::IndexEntrySource>>
VaultServiceBackend::OpenIndex(const std::string& source_host,
                               const std::string& volume_id,
                               const std::string& version_id) {
  if (auto s = ValidateVersionNames(source_host, volume_id, version_id);
      !s.ok()) {
    return s;
  }
  auto reader = vault_.OpenIndex({source_host, volume_id}, version_id);
  if (!reader.ok()) return reader.status();
  return AsEntrySource(*std::move(reader));
}

namespace {

// Whether the version's index lists `hash` (one pass, bounded memory).
absl::StatusOr<bool> IndexLists(Vault& vault, const VolumeName& vol,
                                const std::string& version,
                                const ChunkHash& hash) {
  auto reader = vault.OpenIndex(vol, version);
  if (!reader.ok()) return reader.status();
  for (;;) {
    auto block = (*reader)->Next();
    if (!block.ok()) return block.status();
    if (block->empty()) return false;
    if (std::find(block->begin(), block->end(), hash) != block->end()) {
      return true;
    }
  }
}

// Reads chunks of one tenant; `allowed`, if set, limits them further.
class VaultChunkSource : public transport::ChunkSource {
 public:
  VaultChunkSource(Vault& vault, std::string tenant, VolumeName vol,
                   std::string version,
                   std::optional<std::set<ChunkHash>> allowed)
      : vault_(vault),
        tenant_(std::move(tenant)),
        vol_(std::move(vol)),
        version_(std::move(version)),
        allowed_(std::move(allowed)) {}

  absl::StatusOr<transport::StoredChunkBytes> Read(
      const ChunkHash& hash) override {
    if (allowed_.has_value() && !allowed_->contains(hash)) return Refused(hash);
    auto stored = vault_.ReadStoredChunk(tenant_, hash);
    if (absl::IsNotFound(stored.status()) && !allowed_.has_value()) {
      // Not in the tenant: a chunk the version lists is missing (damage,
      // said as such); any other is refused, saying nothing more. Only
      // this path reads the index, and a refusal ends the call.
      auto listed = IndexLists(vault_, vol_, version_, hash);
      if (!listed.ok()) return listed.status();
      if (!*listed) return Refused(hash);
    }
    if (!stored.ok()) return stored.status();
    return transport::StoredChunkBytes{std::move(stored->data), stored->sealed};
  }

 private:
  absl::Status Refused(const ChunkHash& hash) const {
    return absl::PermissionDeniedError(
        absl::StrCat("chunk ", hash.ToHex(), " is not part of version '",
                     version_, "' of ", vol_.host, "/", vol_.volume));
  }

  Vault& vault_;
  std::string tenant_;
  VolumeName vol_;
  std::string version_;
  std::optional<std::set<ChunkHash>> allowed_;
};

}  // namespace

absl::StatusOr<std::unique_ptr<transport::ChunkSource>>
VaultServiceBackend::OpenChunks(const std::string& source_host,
                                const std::string& volume_id,
                                const std::string& version_id) {
  if (auto s = ValidateVersionNames(source_host, volume_id, version_id);
      !s.ok()) {
    return s;
  }
  const VolumeName vol{source_host, volume_id};
  auto tenant = vault_.TenantOf(source_host);
  if (!tenant.ok()) return tenant.status();
  std::optional<std::set<ChunkHash>> allowed;
  if (vault_.format() == 1) {
    auto index = vault_.ReadIndex(vol, version_id);
    if (!index.ok()) return index.status();
    allowed.emplace();
    for (const auto& c : index->entries) {
      if (!IsZeroEntry(c)) allowed->insert(c);
    }
  } else {
    auto ids = vault_.ListVersions(vol);
    if (!ids.ok()) return ids.status();
    if (std::find(ids->begin(), ids->end(), version_id) == ids->end()) {
      return absl::NotFoundError(absl::StrCat(
          "no version '", version_id, "' of ", source_host, "/", volume_id));
    }
  }
  return std::make_unique<VaultChunkSource>(vault_, *std::move(tenant), vol,
                                            version_id, std::move(allowed));
}

absl::StatusOr<transport::PruneOutcome> VaultServiceBackend::Prune(
    const std::string& source_host, const std::string& volume_id,
    const transport::PruneRule& rule, bool dry_run,
    const transport::PruneScope& scope) {
  if (auto s = ValidateName("host", source_host); !s.ok()) return s;
  if (rule.keep_last < 0 || rule.keep_hourly < 0 || rule.keep_daily < 0 ||
      rule.keep_weekly < 0 || rule.keep_monthly < 0) {
    return absl::InvalidArgumentError(
        "prune: keep counts must not be negative");
  }
  RetentionPolicy policy;
  policy.keep_last = rule.keep_last;
  policy.hourly = rule.keep_hourly;
  policy.daily = rule.keep_daily;
  policy.weekly = rule.keep_weekly;
  policy.monthly = rule.keep_monthly;
  transport::PruneOutcome out;
  if (!scope.group.empty()) {
    auto result = PruneGroup(vault_, source_host, scope.group, policy, dry_run);
    if (!result.ok()) return result.status();
    out.kept = std::move(result->kept);
    out.removed = std::move(result->removed);
    return out;
  }
  if (auto s = ValidateName("volume", volume_id); !s.ok()) return s;
  const VolumeName vol{source_host, volume_id};
  auto ids = vault_.ListVersions(vol);
  if (!ids.ok()) return ids.status();
  if (ids->empty()) {
    return absl::NotFoundError(absl::StrCat("no versions of volume '",
                                            volume_id, "' of host '",
                                            source_host, "' to prune"));
  }
  // receiver::Prune refuses an empty policy itself, before touching the
  // vault.
  auto result =
      receiver::Prune(vault_, {vol}, policy, dry_run,
                      scope.alone ? VersionScope::kAlone : VersionScope::kAll);
  if (!result.ok()) return result.status();
  for (auto& [v, id] : result->kept) out.kept.push_back(std::move(id));
  for (auto& [v, id] : result->removed) out.removed.push_back(std::move(id));
  return out;
}

absl::Status VaultServiceBackend::CommitGroup(
    const std::string& source_host, const transport::GroupCommit& commit) {
  return receiver::CommitGroup(vault_, source_host, commit);
}

absl::StatusOr<int64_t> VaultServiceBackend::HoldVersion(
    const std::string& source_host, const std::string& volume_id,
    const std::string& version_id, uint32_t hold_seconds) {
  const int64_t until =
      hold_seconds == 0 ? 0 : absl::ToUnixSeconds(absl::Now()) + hold_seconds;
  if (auto s = vault_.SetHeldUntil({source_host, volume_id}, version_id, until);
      !s.ok()) {
    return s;
  }
  return until;
}

}  // namespace cbtd::receiver
