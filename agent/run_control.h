// The handle one backup job shares with whoever watches it: a cancel flag
// the job polls between steps (and the Sender polls between chunks), and
// progress counters the control API reads.
//
// Thread-safety: every method may be called from any thread.
#ifndef CBTD_AGENT_RUN_CONTROL_H_
#define CBTD_AGENT_RUN_CONTROL_H_

#include <atomic>
#include <cstdint>
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
  RunControl(const RunControl&) = delete;
  RunControl& operator=(const RunControl&) = delete;

  // Asks the job to stop at its next check; it records 'cancelled' and
  // leaves the previous base intact. Idempotent.
  void Cancel() { cancelled_.store(true, std::memory_order_relaxed); }
  bool cancelled() const { return cancelled_.load(std::memory_order_relaxed); }

  void SetStep(const std::string& volume, const std::string& step) {
    std::lock_guard lock(mu_);
    progress_ = RunProgress{volume, step, 0, 0};
  }
  void SetBytes(uint64_t done_bytes, uint64_t total_bytes) {
    std::lock_guard lock(mu_);
    progress_.done_bytes = done_bytes;
    progress_.total_bytes = total_bytes;
  }
  RunProgress progress() const {
    std::lock_guard lock(mu_);
    return progress_;
  }

 private:
  std::atomic<bool> cancelled_{false};
  mutable std::mutex mu_;
  RunProgress progress_;
};

}  // namespace cbtd::agent

#endif  // CBTD_AGENT_RUN_CONTROL_H_
