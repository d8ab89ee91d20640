// The handle one backup job shares with whoever watches it: a cancel flag
// the job polls between steps (and the Sender polls between chunks), and
// progress counters the control API reads.
//
// Thread-safety: every method may be called from any thread.
#ifndef CBTD_AGENT_RUN_CONTROL_H_
#define CBTD_AGENT_RUN_CONTROL_H_

#include <atomic>
#include <cstdint>
#include <map>
#include <mutex>
#include <string>

namespace cbtd::agent {

struct RunProgress {
  std::string volume;  // the member being worked on
  std::string step;    // kStep* from state_store.h
  uint64_t done_bytes = 0;
  uint64_t total_bytes = 0;  // 0 while unknown
};

class RunControl {
 public:
  RunControl() = default;
  // A group member's handle: cancelled with `parent`, and its progress is
  // reported to `parent` under its volume (members may run at once).
  explicit RunControl(RunControl* parent) : parent_(parent) {}
  RunControl(const RunControl&) = delete;
  RunControl& operator=(const RunControl&) = delete;

  // Asks the job to stop at its next check; it records 'cancelled' and
  // leaves the previous base intact. Idempotent.
  void Cancel() { cancelled_.store(true, std::memory_order_relaxed); }
  bool cancelled() const {
    return cancelled_.load(std::memory_order_relaxed) ||
           (parent_ != nullptr && parent_->cancelled());
  }

  void SetStep(const std::string& volume, const std::string& step) {
    Report(RunProgress{volume, step, 0, 0});
  }
  void SetBytes(uint64_t done_bytes, uint64_t total_bytes) {
    RunProgress p = progress();
    p.done_bytes = done_bytes;
    p.total_bytes = total_bytes;
    Report(p);
  }
  // The latest progress of any member.
  RunProgress progress() const {
    std::lock_guard lock(mu_);
    return progress_;
  }
  // `volume`'s own progress, once it has reported any; before that the
  // latest of any member without its bytes.
  RunProgress progress(const std::string& volume) const {
    std::lock_guard lock(mu_);
    if (auto it = members_.find(volume); it != members_.end()) {
      return it->second;
    }
    RunProgress p = progress_;
    p.done_bytes = p.total_bytes = 0;
    return p;
  }

 private:
  void Report(const RunProgress& p) {
    {
      std::lock_guard lock(mu_);
      progress_ = p;
      members_[p.volume] = p;
    }
    if (parent_ != nullptr) parent_->Report(p);
  }

  std::atomic<bool> cancelled_{false};
  RunControl* const parent_ = nullptr;
  mutable std::mutex mu_;
  RunProgress progress_;
  std::map<std::string, RunProgress> members_;  // by volume
};

}  // namespace cbtd::agent

#endif  // CBTD_AGENT_RUN_CONTROL_H_
