// Runs backup jobs on their own threads: at most `max_concurrent` at once,
// FIFO, and never two jobs over the same volume (Submit refuses a job that
// shares a volume with a queued or running one).
//
// A job's life:
//
//   Submit ──► queued ──(a slot frees)──► running ──► finished
//                │                          │
//                └── Cancel: still runs, ───┘ sees control.cancelled()
//                    returns at once             and stops at its next check
//
// A cancelled queued job is still started so that it records its own
// 'cancelled' outcome; job functions must check control.cancelled() first.
//
// Thread-safety: all methods may be called from any thread, including
// from inside a job (but a job must not call Shutdown or WaitIdle).
#ifndef CBTD_AGENT_JOB_RUNNER_H_
#define CBTD_AGENT_JOB_RUNNER_H_

#include <condition_variable>
#include <cstdint>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "absl/status/statusor.h"
#include "agent/run_control.h"

namespace cbtd::agent {

class JobRunner {
 public:
  using JobFn = std::function<void(RunControl& control)>;
  using JobId = int64_t;

  explicit JobRunner(int max_concurrent);
  // Shutdown(/*cancel=*/true).
  ~JobRunner();
  JobRunner(const JobRunner&) = delete;
  JobRunner& operator=(const JobRunner&) = delete;

  struct Submitted {
    JobId id;
    std::shared_ptr<RunControl> control;
  };
  // Queues `fn` over `volumes`. FAILED_PRECONDITION when a volume already
  // has a job (the message names it); UNAVAILABLE after Shutdown.
  absl::StatusOr<Submitted> Submit(const std::vector<std::string>& volumes,
                                   JobFn fn);

  // Cancels a queued or running job; NOT_FOUND when it has finished.
  absl::Status Cancel(JobId id);
  // Takes effect as running jobs finish; never stops one.
  void SetMaxConcurrent(int max_concurrent);

  bool Busy(const std::string& volume) const;
  int running() const;
  int queued() const;

  // Blocks until no job is queued or running.
  void WaitIdle();
  // Refuses new jobs, cancels queued (and, if `cancel_running`, running)
  // ones, and waits for every job to return.
  void Shutdown(bool cancel_running);

 private:
  struct Job {
    JobId id;
    std::vector<std::string> volumes;
    JobFn fn;
    std::shared_ptr<RunControl> control;
  };
  // Starts queued jobs while slots are free. Requires mu_.
  void DispatchLocked();
  void RunJob(std::shared_ptr<Job> job);
  void JoinFinishedLocked();

  mutable std::mutex mu_;
  std::condition_variable idle_cv_;
  int max_concurrent_;
  bool shut_down_ = false;
  JobId next_id_ = 1;
  std::deque<std::shared_ptr<Job>> queue_;
  std::map<JobId, std::shared_ptr<Job>> running_;
  std::set<std::string> busy_volumes_;
  std::map<JobId, std::thread> threads_;
  std::vector<JobId> finished_threads_;
};

}  // namespace cbtd::agent

#endif  // CBTD_AGENT_JOB_RUNNER_H_
