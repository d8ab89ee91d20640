#include "agent/job_runner.h"

#include <gtest/gtest.h>

#include <atomic>
#include <condition_variable>
#include <mutex>
#include <set>

namespace cbtd::agent {
namespace {

// A gate jobs wait on, so tests decide when each finishes.
class Gate {
 public:
  void Open() {
    std::lock_guard lock(mu_);
    open_ = true;
    cv_.notify_all();
  }
  void Wait() {
    std::unique_lock lock(mu_);
    cv_.wait(lock, [this] { return open_; });
  }

 private:
  std::mutex mu_;
  std::condition_variable cv_;
  bool open_ = false;
};

TEST(JobRunnerTest, LimitsConcurrencyAndRunsQueuedJobsInOrder) {
  JobRunner runner(2);
  Gate gate;
  std::atomic<int> active{0};
  std::atomic<int> peak{0};
  std::mutex order_mu;
  std::vector<int> order;
  for (int i = 0; i < 5; ++i) {
    auto s = runner.Submit({"vol" + std::to_string(i)}, [&, i](RunControl&) {
      const int now = ++active;
      int p = peak.load();
      while (now > p && !peak.compare_exchange_weak(p, now)) {
      }
      {
        std::lock_guard lock(order_mu);
        order.push_back(i);
      }
      gate.Wait();
      --active;
    });
    ASSERT_TRUE(s.ok()) << s.status();
  }
  // Two start, three wait. (Wait for both to record themselves: `active`
  // counts a job before it appends to `order`.)
  const auto recorded = [&] {
    std::lock_guard lock(order_mu);
    return order.size();
  };
  while (recorded() < 2) std::this_thread::yield();
  EXPECT_EQ(runner.queued(), 3);
  {
    std::lock_guard lock(order_mu);
    EXPECT_EQ((std::set<int>(order.begin(), order.end())),
              (std::set<int>{0, 1}));
  }
  gate.Open();
  runner.WaitIdle();
  EXPECT_EQ(peak.load(), 2);
  EXPECT_EQ(order.size(), 5u);
}

TEST(JobRunnerTest, QueuedJobsStartInSubmissionOrder) {
  JobRunner runner(1);
  Gate gate;
  std::vector<int> order;  // one job at a time: no lock needed
  for (int i = 0; i < 5; ++i) {
    ASSERT_TRUE(runner
                    .Submit({"vol" + std::to_string(i)},
                            [&, i](RunControl&) {
                              gate.Wait();
                              order.push_back(i);
                            })
                    .ok());
  }
  gate.Open();
  runner.WaitIdle();
  EXPECT_EQ(order, (std::vector<int>{0, 1, 2, 3, 4}));
}

TEST(JobRunnerTest, OneJobPerVolume) {
  JobRunner runner(4);
  Gate gate;
  ASSERT_TRUE(
      runner.Submit({"a", "b"}, [&](RunControl&) { gate.Wait(); }).ok());
  auto again = runner.Submit({"b"}, [](RunControl&) {});
  EXPECT_EQ(again.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_NE(std::string(again.status().message()).find("'b'"),
            std::string::npos);
  EXPECT_TRUE(runner.Busy("a"));
  EXPECT_FALSE(runner.Busy("c"));
  EXPECT_TRUE(runner.Submit({"c"}, [](RunControl&) {}).ok());
  gate.Open();
  runner.WaitIdle();
  EXPECT_FALSE(runner.Busy("a"));
  EXPECT_TRUE(runner.Submit({"b"}, [](RunControl&) {}).ok());
  runner.WaitIdle();
}

TEST(JobRunnerTest, CancelReachesQueuedAndRunningJobs) {
  JobRunner runner(1);
  std::atomic<bool> first_saw_cancel{false};
  std::atomic<bool> second_saw_cancel{false};
  std::atomic<bool> started{false};
  auto first = runner.Submit({"a"}, [&](RunControl& c) {
    started = true;
    while (!c.cancelled()) std::this_thread::yield();
    first_saw_cancel = true;
  });
  auto second = runner.Submit(
      {"b"}, [&](RunControl& c) { second_saw_cancel = c.cancelled(); });
  ASSERT_TRUE(first.ok() && second.ok());
  while (!started) std::this_thread::yield();
  EXPECT_TRUE(runner.Cancel(second->id).ok());  // queued
  EXPECT_TRUE(runner.Cancel(first->id).ok());   // running
  runner.WaitIdle();
  EXPECT_TRUE(first_saw_cancel);
  EXPECT_TRUE(second_saw_cancel);
  EXPECT_EQ(runner.Cancel(first->id).code(), absl::StatusCode::kNotFound);
}

TEST(JobRunnerTest, ShutdownCancelsAndRefusesNewJobs) {
  JobRunner runner(1);
  std::atomic<bool> started{false};
  ASSERT_TRUE(runner
                  .Submit({"a"},
                          [&](RunControl& c) {
                            started = true;
                            while (!c.cancelled()) std::this_thread::yield();
                          })
                  .ok());
  while (!started) std::this_thread::yield();
  runner.Shutdown(/*cancel_running=*/true);
  EXPECT_EQ(runner.running(), 0);
  EXPECT_EQ(runner.Submit({"b"}, [](RunControl&) {}).status().code(),
            absl::StatusCode::kUnavailable);
}

TEST(JobRunnerTest, RaisingTheLimitStartsQueuedJobs) {
  JobRunner runner(1);
  Gate gate;
  ASSERT_TRUE(runner.Submit({"a"}, [&](RunControl&) { gate.Wait(); }).ok());
  ASSERT_TRUE(runner.Submit({"b"}, [&](RunControl&) { gate.Wait(); }).ok());
  EXPECT_EQ(runner.queued(), 1);
  runner.SetMaxConcurrent(2);
  EXPECT_EQ(runner.queued(), 0);
  EXPECT_EQ(runner.running(), 2);
  gate.Open();
  runner.WaitIdle();
}

}  // namespace
}  // namespace cbtd::agent
