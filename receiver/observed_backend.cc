#include "receiver/observed_backend.h"

#include <span>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"

namespace cbtd::receiver {
namespace {

std::string OutcomeOf(const absl::Status& s) {
  if (s.ok()) return "ok";
  return ServiceMetrics::IsBackendError(s) ? "error" : "refused";
}

AuditFields ErrorField(const absl::Status& s) {
  if (s.ok()) return {};
  return {{"error", std::string(s.message())}};
}

AuditFields Plus(AuditFields a, const AuditFields& b) {
  a.insert(a.end(), b.begin(), b.end());
  return a;
}

// One session: counts the payload bytes as they arrive, audits the commit
// and the end (committed, aborted, or dropped by the server).
class ObservedUpload : public transport::UploadSession {
 public:
  ObservedUpload(std::unique_ptr<transport::UploadSession> inner,
                 ServiceMetrics& metrics, const AuditSink& audit,
                 AuditFields what)
      : inner_(std::move(inner)),
        metrics_(metrics),
        audit_(audit),
        what_(std::move(what)) {}

  ~ObservedUpload() override {
    if (!ended_) End("aborted", {});
  }

  absl::StatusOr<std::vector<bool>> HaveChunks(
      std::span<const transport::ChunkHash> hashes) override {
    return inner_->HaveChunks(hashes);
  }

  absl::Status Apply(const stream::Record& record) override {
    if (record.has_chunk()) {
      received_bytes_ += record.chunk().payload().size();
      metrics_.AddReceived(record.chunk().payload().size());
    }
    absl::Status s = inner_->Apply(record);
    if (!s.ok()) metrics_.NoteError(s);
    return s;
  }

  absl::StatusOr<transport::CommitResult> Commit(
      const stream::Trailer& trailer) override {
    const absl::Time start = absl::Now();
    absl::StatusOr<transport::CommitResult> r = inner_->Commit(trailer);
    const absl::Duration took = absl::Now() - start;
    metrics_.Finished(Operation::kCommit, r.status(), took);
    AuditFields details = {
        {"duration_ms", absl::StrCat(absl::ToInt64Milliseconds(took))}};
    if (r.ok()) {
      const transport::IndexStats& st = r->stats;
      // Chunks of the version the vault did not store again: sent by hash,
      // or sent with their bytes but already held.
      const uint64_t deduped_chunks =
          st.chunk_ref_records + (st.chunk_records > st.new_objects
                                      ? st.chunk_records - st.new_objects
                                      : 0);
      const uint64_t deduped = deduped_chunks * r->chunk_size_bytes;
      metrics_.AddCommitted(st.stored_bytes, deduped);
      details.insert(details.begin(),
                     {{"bytes", absl::StrCat(st.stored_bytes)},
                      {"received_bytes", absl::StrCat(received_bytes_)},
                      {"deduped_bytes", absl::StrCat(deduped)},
                      {"new_chunks", absl::StrCat(st.new_objects)}});
    }
    audit_(FormatAuditLine("commit", what_, OutcomeOf(r.status()),
                           Plus(details, ErrorField(r.status()))),
           r.ok());
    if (r.ok()) {
      End("committed", {});
    } else {
      commit_error_ = std::string(r.status().message());
    }
    return r;
  }

  void Abort() override {
    inner_->Abort();
    if (!ended_) End("aborted", {});
  }

 private:
  void End(const std::string& outcome, const AuditFields& extra) {
    ended_ = true;
    const bool committed = outcome == "committed";
    metrics_.SessionEnded(committed);
    AuditFields details = {{"received_bytes", absl::StrCat(received_bytes_)}};
    if (!commit_error_.empty()) details.push_back({"error", commit_error_});
    audit_(FormatAuditLine("session-end", what_, outcome, Plus(details, extra)),
           committed);
  }

  std::unique_ptr<transport::UploadSession> inner_;
  ServiceMetrics& metrics_;
  const AuditSink& audit_;
  const AuditFields what_;
  uint64_t received_bytes_ = 0;
  std::string commit_error_;
  bool ended_ = false;
};

}  // namespace

absl::StatusOr<std::unique_ptr<transport::UploadSession>>
ObservedBackend::OpenSession(const stream::Header& header) {
  AuditFields what = {{"host", header.source_host()},
                      {"volume", header.volume_id()},
                      {"version", header.new_version_id()}};
  AuditFields details;
  if (!header.base_version_id().empty()) {
    details.push_back({"base", header.base_version_id()});
  }
  if (!header.group().empty()) details.push_back({"group", header.group()});
  auto s = inner_.OpenSession(header);
  if (!s.ok()) {
    metrics_.SessionRefused();
    metrics_.NoteError(s.status());
    audit_(FormatAuditLine(
               "session-start", what,
               ServiceMetrics::IsBackendError(s.status()) ? "error" : "refused",
               Plus(details, ErrorField(s.status()))),
           false);
    return s.status();
  }
  audit_(FormatAuditLine("session-start", what, "ok", details), true);
  return std::make_unique<ObservedUpload>(*std::move(s), metrics_, audit_,
                                          std::move(what));
}

absl::StatusOr<std::vector<transport::VersionSummary>>
ObservedBackend::ListVersions(const std::string& source_host,
                              const std::string& volume_id) {
  auto r = inner_.ListVersions(source_host, volume_id);
  metrics_.NoteError(r.status());
  return r;
}

absl::StatusOr<transport::VersionIndex> ObservedBackend::GetIndex(
    const std::string& source_host, const std::string& volume_id,
    const std::string& version_id) {
  auto r = inner_.GetIndex(source_host, volume_id, version_id);
  metrics_.NoteError(r.status());
  return r;
}

absl::StatusOr<std::unique_ptr<transport::IndexEntrySource>>
ObservedBackend::OpenIndex(const std::string& source_host,
                           const std::string& volume_id,
                           const std::string& version_id) {
  auto r = inner_.OpenIndex(source_host, volume_id, version_id);
  metrics_.NoteError(r.status());
  return r;
}

absl::StatusOr<std::unique_ptr<transport::ChunkSource>>
ObservedBackend::OpenChunks(const std::string& source_host,
                            const std::string& volume_id,
                            const std::string& version_id) {
  auto r = inner_.OpenChunks(source_host, volume_id, version_id);
  metrics_.NoteError(r.status());
  return r;
}

absl::StatusOr<transport::PruneOutcome> ObservedBackend::Prune(
    const std::string& source_host, const std::string& volume_id,
    const transport::PruneRule& rule, bool dry_run,
    const transport::PruneScope& scope) {
  const absl::Time start = absl::Now();
  auto r = inner_.Prune(source_host, volume_id, rule, dry_run, scope);
  const absl::Duration took = absl::Now() - start;
  if (!dry_run) metrics_.Finished(Operation::kPrune, r.status(), took);
  AuditFields what = {{"host", source_host}};
  if (scope.group.empty()) {
    what.push_back({"volume", volume_id});
  } else {
    what.push_back({"group", scope.group});
  }
  AuditFields details = {
      {"dry_run", dry_run ? "yes" : "no"},
      {"keep",
       absl::StrCat("last:", rule.keep_last, ",hourly:", rule.keep_hourly,
                    ",daily:", rule.keep_daily, ",weekly:", rule.keep_weekly,
                    ",monthly:", rule.keep_monthly)}};
  if (r.ok()) {
    details.push_back({"kept", absl::StrCat(r->kept.size())});
    details.push_back({"removed", absl::StrCat(r->removed.size())});
    std::string ids;
    for (const std::string& id : r->removed) {
      absl::StrAppend(&ids, ids.empty() ? "" : ",", id);
    }
    if (!ids.empty()) details.push_back({"removed_versions", ids});
  }
  details.push_back(
      {"duration_ms", absl::StrCat(absl::ToInt64Milliseconds(took))});
  audit_(FormatAuditLine("prune", what, OutcomeOf(r.status()),
                         Plus(details, ErrorField(r.status()))),
         r.ok());
  return r;
}

absl::Status ObservedBackend::CommitGroup(
    const std::string& source_host, const transport::GroupCommit& commit) {
  const absl::Time start = absl::Now();
  absl::Status s = inner_.CommitGroup(source_host, commit);
  const absl::Duration took = absl::Now() - start;
  metrics_.Finished(Operation::kGroupCommit, s, took);
  audit_(
      FormatAuditLine(
          "group-commit",
          {{"host", source_host},
           {"group", commit.group},
           {"version", commit.group_version_id}},
          OutcomeOf(s),
          Plus({{"members", absl::StrCat(commit.members.size())},
                {"duration_ms", absl::StrCat(absl::ToInt64Milliseconds(took))}},
               ErrorField(s))),
      s.ok());
  return s;
}

absl::StatusOr<int64_t> ObservedBackend::HoldVersion(
    const std::string& source_host, const std::string& volume_id,
    const std::string& version_id, uint32_t hold_seconds) {
  auto r = inner_.HoldVersion(source_host, volume_id, version_id, hold_seconds);
  metrics_.NoteError(r.status());
  return r;
}

}  // namespace cbtd::receiver
