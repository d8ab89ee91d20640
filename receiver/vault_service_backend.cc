#include "receiver/vault_service_backend.h"

#include "absl/strings/str_cat.h"
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
    return transport::CommitResult{session_->metadata().version_id,
                                   session_->metadata().root_hash};
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
  std::vector<transport::VersionSummary> out;
  for (const VolumeName& v : volumes) {
    auto ids = vault_.ListVersions(v);
    if (!ids.ok()) return ids.status();
    for (const std::string& id : *ids) {
      auto index = vault_.ReadIndexMetadata(v, id);
      // Pruned between the listing and the read: not a version any more.
      if (absl::IsNotFound(index.status())) continue;
      if (!index.ok()) return index.status();
      out.push_back(transport::SummaryOf(*index));
    }
  }
  return out;
}

absl::StatusOr<VersionIndex> VaultServiceBackend::GetIndex(
    const std::string& source_host, const std::string& volume_id,
    const std::string& version_id) {
  if (auto s = ValidateName("host", source_host); !s.ok()) return s;
  if (auto s = ValidateName("volume", volume_id); !s.ok()) return s;
  if (auto s = ValidateName("version id", version_id); !s.ok()) return s;
  return vault_.ReadIndex({source_host, volume_id}, version_id);
}

absl::StatusOr<std::string> VaultServiceBackend::GetChunk(
    const std::string& source_host, const ChunkHash& hash) {
  if (auto s = ValidateName("host", source_host); !s.ok()) return s;
  auto tenant = vault_.TenantOf(source_host);
  if (!tenant.ok()) return tenant.status();
  return vault_.ReadChunk(*tenant, hash);
}

absl::StatusOr<transport::PruneOutcome> VaultServiceBackend::Prune(
    const std::string& source_host, const std::string& volume_id,
    const transport::PruneRule& rule, bool dry_run) {
  if (auto s = ValidateName("host", source_host); !s.ok()) return s;
  if (auto s = ValidateName("volume", volume_id); !s.ok()) return s;
  if (rule.keep_last < 0 || rule.keep_hourly < 0 || rule.keep_daily < 0 ||
      rule.keep_weekly < 0 || rule.keep_monthly < 0) {
    return absl::InvalidArgumentError(
        "prune: keep counts must not be negative");
  }
  const VolumeName vol{source_host, volume_id};
  auto ids = vault_.ListVersions(vol);
  if (!ids.ok()) return ids.status();
  if (ids->empty()) {
    return absl::NotFoundError(absl::StrCat("no versions of volume '",
                                            volume_id, "' of host '",
                                            source_host, "' to prune"));
  }
  RetentionPolicy policy;
  policy.keep_last = rule.keep_last;
  policy.hourly = rule.keep_hourly;
  policy.daily = rule.keep_daily;
  policy.weekly = rule.keep_weekly;
  policy.monthly = rule.keep_monthly;
  // receiver::Prune refuses an empty policy itself, before touching the
  // vault.
  auto result = receiver::Prune(vault_, {vol}, policy, dry_run);
  if (!result.ok()) return result.status();
  transport::PruneOutcome out;
  for (auto& [v, id] : result->kept) out.kept.push_back(std::move(id));
  for (auto& [v, id] : result->removed) out.removed.push_back(std::move(id));
  return out;
}

}  // namespace cbtd::receiver
