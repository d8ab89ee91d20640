// ObservedBackend: a transport::ReceiveBackend that forwards every call to
// another one (VaultServiceBackend) and records what serve reports about
// it: ServiceMetrics, and an audit line (receiver/audit.h) for every
// session start (accepted or refused) and end, commit, group commit and
// prune. Reads (listing, index, chunks) are not audited; their store
// errors are counted.
//
// Audit events: session-start, session-end, commit, group-commit, prune.
// "host" is the caller's authenticated identity (the service passes only
// the caller's own namespace to a backend).
//
// Thread-safety: as the wrapped backend; `metrics` and `audit` must be
// thread-safe and outlive the backend and every session it opened.
#ifndef CBTD_RECEIVER_OBSERVED_BACKEND_H_
#define CBTD_RECEIVER_OBSERVED_BACKEND_H_

#include <memory>
#include <string>
#include <vector>

#include "receiver/audit.h"
#include "receiver/service_metrics.h"
#include "transport/receive_backend.h"

namespace cbtd::receiver {

class ObservedBackend : public transport::ReceiveBackend {
 public:
  // `inner` and `metrics` must outlive this backend and its sessions.
  ObservedBackend(transport::ReceiveBackend& inner, ServiceMetrics& metrics,
                  AuditSink audit)
      : inner_(inner), metrics_(metrics), audit_(std::move(audit)) {}

  absl::StatusOr<std::unique_ptr<transport::UploadSession>> OpenSession(
      const stream::Header& header) override;
  absl::StatusOr<std::vector<transport::VersionSummary>> ListVersions(
      const std::string& source_host, const std::string& volume_id) override;
  absl::StatusOr<transport::VersionIndex> GetIndex(
      const std::string& source_host, const std::string& volume_id,
      const std::string& version_id) override;
  absl::StatusOr<std::unique_ptr<transport::IndexEntrySource>> OpenIndex(
      const std::string& source_host, const std::string& volume_id,
      const std::string& version_id) override;
  absl::StatusOr<std::unique_ptr<transport::ChunkSource>> OpenChunks(
      const std::string& source_host, const std::string& volume_id,
      const std::string& version_id) override;
  absl::StatusOr<transport::PruneOutcome> Prune(
      const std::string& source_host, const std::string& volume_id,
      const transport::PruneRule& rule, bool dry_run,
      const transport::PruneScope& scope) override;
  absl::Status CommitGroup(const std::string& source_host,
                           const transport::GroupCommit& commit) override;
  absl::StatusOr<int64_t> HoldVersion(const std::string& source_host,
                                      const std::string& volume_id,
                                      const std::string& version_id,
                                      uint32_t hold_seconds) override;

 private:
  transport::ReceiveBackend& inner_;
  ServiceMetrics& metrics_;
  AuditSink audit_;
};

}  // namespace cbtd::receiver

#endif  // CBTD_RECEIVER_OBSERVED_BACKEND_H_
