// ServiceMetrics: what `cbt-receiver serve` counts, rendered in the
// Prometheus text format (common/prometheus.h) for node_exporter's textfile
// collector. docs/operations.md ("Running the receiver as a service") lists
// every metric and what it means. Counters start at 0 when serve starts
// (Prometheus handles the reset).
//
// Thread-safety: every method may be called from any thread.
#ifndef CBTD_RECEIVER_SERVICE_METRICS_H_
#define CBTD_RECEIVER_SERVICE_METRICS_H_

#include <cstdint>
#include <map>
#include <mutex>
#include <string>

#include "absl/status/status.h"
#include "absl/time/time.h"

namespace cbtd::receiver {

// What the receiver does that has an outcome and a duration.
enum class Operation { kCommit, kGroupCommit, kPrune, kGc, kVerify };

class ServiceMetrics {
 public:
  // Chunk payload bytes as they arrived (compressed or sealed), of every
  // session, committed or not.
  void AddReceived(uint64_t payload_bytes);
  // A session was refused at its header (nothing written).
  void SessionRefused();
  // A session ended: committed, or failed/aborted.
  void SessionEnded(bool committed);
  // A committed version's new bytes stored and the bytes it did not have
  // to store because the vault held them (chunks sent by hash).
  void AddCommitted(uint64_t stored_bytes, uint64_t deduped_bytes);
  // An operation finished; `s` is its outcome. A failure whose code says
  // the store failed (not a refusal of bad input or state) is also a
  // backend error.
  void Finished(Operation op, const absl::Status& s, absl::Duration took);
  // An error from the vault outside those operations (reads, listing).
  void NoteError(const absl::Status& s);
  // The last GC's bytes reclaimed and the last verify's damaged versions.
  void GcReclaimed(uint64_t bytes);
  void VerifyDamaged(uint64_t damaged_versions);

  // Whether `s` is an error of the store rather than a refusal.
  static bool IsBackendError(const absl::Status& s);

  // The exposition text; `open_sessions` is the server's count now, `now`
  // becomes cbt_receiver_metrics_timestamp_seconds.
  std::string Render(int open_sessions, absl::Time now) const;

 private:
  struct OpStats {
    uint64_t ok = 0;
    uint64_t failed = 0;
    double seconds = 0;  // summed over both
    double last_seconds = 0;
    int64_t last_success_unix = 0;
  };
  mutable std::mutex mu_;
  uint64_t received_bytes_ = 0;
  uint64_t stored_bytes_ = 0;
  uint64_t deduped_bytes_ = 0;
  uint64_t sessions_committed_ = 0;
  uint64_t sessions_failed_ = 0;
  uint64_t sessions_refused_ = 0;
  uint64_t backend_errors_ = 0;
  uint64_t gc_last_reclaimed_bytes_ = 0;
  uint64_t verify_last_damaged_ = 0;
  std::map<Operation, OpStats> ops_;
};

}  // namespace cbtd::receiver

#endif  // CBTD_RECEIVER_SERVICE_METRICS_H_
