// MaintenanceScheduler: runs GC (receiver/gc.h) and verify
// (receiver/verify.h) on the vault every so often, in one background
// thread, for `cbt-receiver serve --gc-every/--verify-every`. Never two at
// once (one thread); GC is safe alongside receives on a format-2 vault (on a
// format-1 vault it is skipped while a receive runs: UNAVAILABLE). A failed
// or damaged run is reported (an audit line, metrics, last_status()) and the
// schedule goes on: a failure is never fatal to serve.
//
// Audit events: gc and verify, outcome ok, skipped (busy), damaged
// (verify) or error.
//
//   [waiting] --interval elapsed--> [running GC | verify] --> [waiting]
//       |                                   |
//       +------- Stop() -------> [stopped] <+ (after the run in progress)
//
// The first run of each comes one interval after Start(), not at once: a
// restart loop must not turn into a GC loop.
//
// Thread-safety: Start/Stop from one thread; last_status() from any.
#ifndef CBTD_RECEIVER_MAINTENANCE_H_
#define CBTD_RECEIVER_MAINTENANCE_H_

#include <condition_variable>
#include <mutex>
#include <string>
#include <thread>

#include "absl/time/time.h"
#include "receiver/audit.h"
#include "receiver/gc.h"
#include "receiver/service_metrics.h"
#include "receiver/vault.h"

namespace cbtd::receiver {

struct MaintenanceOptions {
  absl::Duration gc_every = absl::ZeroDuration();      // zero: never
  absl::Duration verify_every = absl::ZeroDuration();  // zero: never
  GcOptions gc;            // `wait` is forced off: a busy GC is skipped
  int verify_threads = 1;  // a background job: gentle on the disks
};

class MaintenanceScheduler {
 public:
  // `vault` and `metrics` must outlive the scheduler.
  MaintenanceScheduler(Vault& vault, MaintenanceOptions options,
                       ServiceMetrics& metrics, AuditSink audit);
  ~MaintenanceScheduler();  // Stop()
  MaintenanceScheduler(const MaintenanceScheduler&) = delete;
  MaintenanceScheduler& operator=(const MaintenanceScheduler&) = delete;

  // Starts the thread (nothing when neither interval is set).
  void Start();
  // Starts no run any more; returns at once.
  void RequestStop();
  // Whether a GC or verify is running now. After RequestStop(), false
  // means none will run again.
  bool busy() const;
  // RequestStop() and join: waits for a run in progress to finish (serve
  // does not wait for a long verify at shutdown: it checks busy() and
  // exits; GC and verify are safe to end anywhere).
  void Stop();

  // "gc ok at 14:02:03Z, verify damaged at ..." for systemd's STATUS=;
  // "" before the first run.
  std::string last_status() const;

 private:
  void Loop();
  // Marks a run as begun unless stopping (then false); End() unmarks it.
  bool Begin();
  void End();
  void RunGc();
  void RunVerify();

  Vault& vault_;
  const MaintenanceOptions options_;
  ServiceMetrics& metrics_;
  const AuditSink audit_;
  mutable std::mutex mu_;
  std::condition_variable wake_;
  bool stop_ = false;
  bool busy_ = false;
  std::string gc_status_;
  std::string verify_status_;
  std::thread thread_;
};

}  // namespace cbtd::receiver

#endif  // CBTD_RECEIVER_MAINTENANCE_H_
