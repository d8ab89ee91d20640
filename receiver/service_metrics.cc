#include "receiver/service_metrics.h"

#include "common/prometheus.h"

namespace cbtd::receiver {
namespace {

const char* OpName(Operation op) {
  switch (op) {
    case Operation::kCommit:
      return "commit";
    case Operation::kGroupCommit:
      return "group_commit";
    case Operation::kPrune:
      return "prune";
    case Operation::kGc:
      return "gc";
    case Operation::kVerify:
      return "verify";
  }
  return "unknown";
}

constexpr Operation kOperations[] = {Operation::kCommit,
                                     Operation::kGroupCommit, Operation::kPrune,
                                     Operation::kGc, Operation::kVerify};

}  // namespace

void ServiceMetrics::AddReceived(uint64_t payload_bytes) {
  std::lock_guard lock(mu_);
  received_bytes_ += payload_bytes;
}

void ServiceMetrics::SessionRefused() {
  std::lock_guard lock(mu_);
  ++sessions_refused_;
}

void ServiceMetrics::SessionEnded(bool committed) {
  std::lock_guard lock(mu_);
  ++(committed ? sessions_committed_ : sessions_failed_);
}

void ServiceMetrics::AddCommitted(uint64_t stored_bytes,
                                  uint64_t deduped_bytes) {
  std::lock_guard lock(mu_);
  stored_bytes_ += stored_bytes;
  deduped_bytes_ += deduped_bytes;
}

bool ServiceMetrics::IsBackendError(const absl::Status& s) {
  switch (s.code()) {
    case absl::StatusCode::kOk:
    case absl::StatusCode::kInvalidArgument:
    case absl::StatusCode::kFailedPrecondition:
    case absl::StatusCode::kAlreadyExists:
    case absl::StatusCode::kNotFound:
    case absl::StatusCode::kOutOfRange:
    case absl::StatusCode::kPermissionDenied:
    case absl::StatusCode::kCancelled:
      return false;
    default:
      // DATA_LOSS, INTERNAL, UNKNOWN, RESOURCE_EXHAUSTED (a full disk),
      // UNAVAILABLE, ABORTED, ...: the store, not the request.
      return true;
  }
}

void ServiceMetrics::Finished(Operation op, const absl::Status& s,
                              absl::Duration took) {
  std::lock_guard lock(mu_);
  OpStats& o = ops_[op];
  const double seconds = absl::ToDoubleSeconds(took);
  o.seconds += seconds;
  o.last_seconds = seconds;
  if (s.ok()) {
    ++o.ok;
    o.last_success_unix = absl::ToUnixSeconds(absl::Now());
  } else {
    ++o.failed;
  }
  if (IsBackendError(s)) ++backend_errors_;
}

void ServiceMetrics::NoteError(const absl::Status& s) {
  if (!IsBackendError(s)) return;
  std::lock_guard lock(mu_);
  ++backend_errors_;
}

void ServiceMetrics::GcReclaimed(uint64_t bytes) {
  std::lock_guard lock(mu_);
  gc_last_reclaimed_bytes_ = bytes;
}

void ServiceMetrics::VerifyDamaged(uint64_t damaged_versions) {
  std::lock_guard lock(mu_);
  verify_last_damaged_ = damaged_versions;
}

std::string ServiceMetrics::Render(int open_sessions, absl::Time now) const {
  std::lock_guard lock(mu_);
  common::PrometheusText t;
  const auto one = [&](const char* name, const char* type, const char* help,
                       uint64_t value) {
    t.Family(name, type, help);
    t.Sample(name, {}, value);
  };
  one("cbt_receiver_received_bytes_total", "counter",
      "Chunk payload bytes received (as sent: compressed or sealed), by "
      "every session, committed or not.",
      received_bytes_);
  one("cbt_receiver_stored_bytes_total", "counter",
      "Bytes of new chunk objects stored by committed versions.",
      stored_bytes_);
  one("cbt_receiver_deduped_bytes_total", "counter",
      "Bytes committed versions did not send nor store because the vault "
      "held them (chunks sent by hash, at the version's chunk size).",
      deduped_bytes_);
  one("cbt_receiver_sessions_open", "gauge",
      "Receive sessions open now (streaming or awaiting resume).",
      static_cast<uint64_t>(open_sessions < 0 ? 0 : open_sessions));
  t.Family("cbt_receiver_sessions_total", "counter",
           "Receive sessions by how they ended: committed, failed (aborted, "
           "cut and not resumed, or refused at the commit) or refused (at "
           "the header, nothing written).");
  t.Sample("cbt_receiver_sessions_total", {{"outcome", "committed"}},
           sessions_committed_);
  t.Sample("cbt_receiver_sessions_total", {{"outcome", "failed"}},
           sessions_failed_);
  t.Sample("cbt_receiver_sessions_total", {{"outcome", "refused"}},
           sessions_refused_);
  one("cbt_receiver_backend_errors_total", "counter",
      "Errors of the vault's store (I/O, damage, full disk, unavailable), "
      "as opposed to refused requests.",
      backend_errors_);
  const auto per_op = [&](const char* name, const char* type, const char* help,
                          auto value) {
    t.Family(name, type, help);
    for (Operation op : kOperations) {
      auto it = ops_.find(op);
      const OpStats o = it == ops_.end() ? OpStats{} : it->second;
      value(name, OpName(op), o);
    }
  };
  per_op("cbt_receiver_operations_total", "counter",
         "Commits, group commits, prunes, GC and verify runs by outcome.",
         [&](const char* name, const char* op, const OpStats& o) {
           t.Sample(name, {{"operation", op}, {"outcome", "ok"}}, o.ok);
           t.Sample(name, {{"operation", op}, {"outcome", "error"}}, o.failed);
         });
  per_op("cbt_receiver_operation_seconds_total", "counter",
         "Time spent in each operation (divide by operations_total for the "
         "mean latency).",
         [&](const char* name, const char* op, const OpStats& o) {
           t.Sample(name, {{"operation", op}}, o.seconds);
         });
  per_op("cbt_receiver_operation_last_duration_seconds", "gauge",
         "Duration of the last run of each operation.",
         [&](const char* name, const char* op, const OpStats& o) {
           t.Sample(name, {{"operation", op}}, o.last_seconds);
         });
  per_op("cbt_receiver_operation_last_success_timestamp_seconds", "gauge",
         "End of the last successful run of each operation (0: none since "
         "serve started).",
         [&](const char* name, const char* op, const OpStats& o) {
           t.Sample(name, {{"operation", op}}, o.last_success_unix);
         });
  one("cbt_receiver_gc_last_reclaimed_bytes", "gauge",
      "Bytes the last successful GC freed.", gc_last_reclaimed_bytes_);
  one("cbt_receiver_verify_last_damaged_versions", "gauge",
      "Damaged versions the last verify found (0: the vault verified).",
      verify_last_damaged_);
  t.Family("cbt_receiver_metrics_timestamp_seconds", "gauge",
           "When cbt-receiver wrote these metrics.");
  t.Sample("cbt_receiver_metrics_timestamp_seconds", {},
           static_cast<int64_t>(absl::ToUnixSeconds(now)));
  return t.text();
}

}  // namespace cbtd::receiver
