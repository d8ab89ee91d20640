#include "agent/job_runner.h"

#include <algorithm>

#include "absl/strings/str_cat.h"

namespace cbtd::agent {

JobRunner::JobRunner(int max_concurrent)
    : max_concurrent_(std::max(1, max_concurrent)) {}

JobRunner::~JobRunner() { Shutdown(/*cancel_running=*/true); }

absl::StatusOr<JobRunner::Submitted> JobRunner::Submit(
    const std::vector<std::string>& volumes, JobFn fn) {
  std::lock_guard lock(mu_);
  if (shut_down_) {
    return absl::UnavailableError("cbtd is shutting down; no new runs");
  }
  for (const std::string& v : volumes) {
    if (busy_volumes_.contains(v)) {
      return absl::FailedPreconditionError(
          absl::StrCat("volume '", v,
                       "' already has a run queued or in progress; wait for it "
                       "('cbtctl runs') or cancel it ('cbtctl cancel RUN')"));
    }
  }
  auto job = std::make_shared<Job>();
  job->id = next_id_++;
  job->volumes = volumes;
  job->fn = std::move(fn);
  job->control = std::make_shared<RunControl>();
  busy_volumes_.insert(volumes.begin(), volumes.end());
  queue_.push_back(job);
  DispatchLocked();
  return Submitted{job->id, job->control};
}

void JobRunner::DispatchLocked() {
  JoinFinishedLocked();
  while (!queue_.empty() &&
         static_cast<int>(running_.size()) < max_concurrent_) {
    std::shared_ptr<Job> job = queue_.front();
    queue_.pop_front();
    running_[job->id] = job;
    threads_[job->id] = std::thread([this, job] { RunJob(job); });
  }
}

void JobRunner::RunJob(std::shared_ptr<Job> job) {
  job->fn(*job->control);
  std::lock_guard lock(mu_);
  running_.erase(job->id);
  for (const std::string& v : job->volumes) busy_volumes_.erase(v);
  // This thread cannot join itself; the next dispatch or Shutdown does.
  finished_threads_.push_back(job->id);
  DispatchLocked();
  idle_cv_.notify_all();
}

void JobRunner::JoinFinishedLocked() {
  for (JobId id : finished_threads_) {
    auto it = threads_.find(id);
    if (it == threads_.end()) continue;
    if (it->second.get_id() == std::this_thread::get_id()) continue;
    // That thread recorded itself here under mu_ and has released it
    // since (we hold it now): it is only returning, so this join is short
    // and cannot deadlock.
    it->second.join();
    threads_.erase(it);
  }
  finished_threads_.erase(
      std::remove_if(finished_threads_.begin(), finished_threads_.end(),
                     [this](JobId id) { return !threads_.contains(id); }),
      finished_threads_.end());
}

absl::Status JobRunner::Cancel(JobId id) {
  std::lock_guard lock(mu_);
  if (auto it = running_.find(id); it != running_.end()) {
    it->second->control->Cancel();
    return absl::OkStatus();
  }
  for (const std::shared_ptr<Job>& job : queue_) {
    if (job->id == id) {
      job->control->Cancel();
      return absl::OkStatus();
    }
  }
  return absl::NotFoundError(
      absl::StrCat("job ", id, " is not queued or running"));
}

void JobRunner::SetMaxConcurrent(int max_concurrent) {
  std::lock_guard lock(mu_);
  max_concurrent_ = std::max(1, max_concurrent);
  DispatchLocked();
}

bool JobRunner::Busy(const std::string& volume) const {
  std::lock_guard lock(mu_);
  return busy_volumes_.contains(volume);
}

int JobRunner::running() const {
  std::lock_guard lock(mu_);
  return static_cast<int>(running_.size());
}

int JobRunner::queued() const {
  std::lock_guard lock(mu_);
  return static_cast<int>(queue_.size());
}

void JobRunner::WaitIdle() {
  std::unique_lock lock(mu_);
  idle_cv_.wait(lock, [this] { return queue_.empty() && running_.empty(); });
}

void JobRunner::Shutdown(bool cancel_running) {
  std::unique_lock lock(mu_);
  shut_down_ = true;
  for (const std::shared_ptr<Job>& job : queue_) job->control->Cancel();
  if (cancel_running) {
    for (auto& [id, job] : running_) job->control->Cancel();
  }
  idle_cv_.wait(lock, [this] { return queue_.empty() && running_.empty(); });
  std::map<JobId, std::thread> threads = std::move(threads_);
  threads_.clear();
  finished_threads_.clear();
  lock.unlock();
  for (auto& [id, t] : threads) {
    if (t.joinable()) t.join();
  }
}

}  // namespace cbtd::agent
