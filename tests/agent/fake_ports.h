// In-memory fakes of agent/backup_ports.h for unit tests. Each records what
// it was asked and can be told to fail; FakeSnapshots tracks which
// snapshots exist so tests can assert nothing leaked or vanished.
#ifndef CBTD_TESTS_AGENT_FAKE_PORTS_H_
#define CBTD_TESTS_AGENT_FAKE_PORTS_H_

#include <atomic>
#include <map>
#include <mutex>
#include <set>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "agent/backup_ports.h"

namespace cbtd::agent::testing {

class FakeSnapshots : public ConsistencyPointTaker {
 public:
  absl::Status take_error;  // returned by Take when not OK
  absl::Status remove_error;

  absl::StatusOr<std::unique_ptr<ConsistencyPoint>> Take(
      const ConsistencyRequest& request) override {
    std::lock_guard lock(mu_);
    requests.push_back(request);
    if (!take_error.ok()) return take_error;
    std::vector<SnapshotRef> refs;
    for (const VolumeConfig& v : request.volumes) {
      const std::string name = absl::StrCat(v.name, "_cbtd_", ++counter_);
      refs.push_back({v.name, name, "/dev/fake/" + name});
      existing.insert(name);
    }
    return std::unique_ptr<ConsistencyPoint>(new Point(this, std::move(refs)));
  }
  absl::Status RemoveSnapshot(const std::string& volume,
                              const std::string& name) override {
    std::lock_guard lock(mu_);
    if (!remove_error.ok()) return remove_error;
    existing.erase(name);
    return absl::OkStatus();
  }
  absl::Status orphans_error;
  absl::Status RemoveOrphans(const std::vector<std::string>& keep) override {
    std::lock_guard lock(mu_);
    if (!orphans_error.ok()) return orphans_error;
    std::set<std::string> k(keep.begin(), keep.end());
    std::erase_if(existing,
                  [&](const std::string& n) { return !k.contains(n); });
    return absl::OkStatus();
  }
  std::set<std::string> Existing() {
    std::lock_guard lock(mu_);
    return existing;
  }

  std::vector<ConsistencyRequest> requests;
  std::set<std::string> existing;

 private:
  class Point : public ConsistencyPoint {
   public:
    Point(FakeSnapshots* owner, std::vector<SnapshotRef> refs)
        : owner_(owner), refs_(std::move(refs)) {}
    ~Point() override {
      std::lock_guard lock(owner_->mu_);
      for (const SnapshotRef& r : refs_) {
        if (!kept_.contains(r.volume)) owner_->existing.erase(r.snapshot_name);
      }
    }
    const std::vector<SnapshotRef>& snapshots() const override { return refs_; }
    void Keep(const std::string& volume) override { kept_.insert(volume); }

   private:
    FakeSnapshots* owner_;
    std::vector<SnapshotRef> refs_;
    std::set<std::string> kept_;
  };
  std::mutex mu_;
  int counter_ = 0;
};

class FakeTracker : public ChangeTracker {
 public:
  absl::Status error;
  std::string fallback_reason;
  bool keep_snapshot = true;

  absl::StatusOr<ChangedSet> ComputeChanges(
      const VolumeConfig& volume, const std::optional<TrackingRecord>& base,
      const SnapshotRef& snapshot, bool full) override {
    if (!error.ok()) return error;
    ChangedSet c;
    c.volume_bytes = 1 << 20;
    c.full = full || !base.has_value() || !fallback_reason.empty();
    c.method = fallback_reason.empty() ? "thin-delta" : "hash";
    c.fallback_reason = fallback_reason;
    if (c.full) {
      c.extents.Add(0, c.volume_bytes);
    } else {
      c.extents.Add(4096, 8192);
    }
    c.next_state_blob = "state-after-" + snapshot.snapshot_name;
    c.keep_snapshot = keep_snapshot;
    return c;
  }
};

class FakeSender : public Sender {
 public:
  absl::Status error;
  std::atomic<int> sends{0};
  std::vector<std::string> base_versions;  // what each send was based on
  // Returned instead of a commit when the request has a base version.
  absl::Status error_with_base;
  // When set, called inside SendAndCommit (e.g. to block or cancel).
  std::function<void(RunControl&)> during_send;
  // When set, called with every request.
  std::function<void(const SendRequest&)> during_request;
  // Per volume: returned instead of a commit.
  std::map<std::string, absl::Status> volume_errors;
  // Every request's group fields, in order: "volume group@id created".
  std::vector<std::string> group_tags;
  // Group versions committed, and the error CommitGroup returns.
  std::vector<GroupPoint> group_points;
  absl::Status group_error;

  absl::Status CommitGroup(const GroupPoint& point) override {
    std::lock_guard lock(mu_);
    if (!group_error.ok()) return group_error;
    group_points.push_back(point);
    return absl::OkStatus();
  }

  absl::StatusOr<SendResult> SendAndCommit(const SendRequest& request,
                                           RunControl& control) override {
    if (during_request) during_request(request);
    if (during_send) during_send(control);
    if (control.cancelled()) return absl::CancelledError("send cancelled");
    {
      std::lock_guard lock(mu_);
      base_versions.push_back(request.base_version);
      group_tags.push_back(
          absl::StrCat(request.volume->name, " ", request.group, "@",
                       request.group_version_id, " ", request.created_unix_ms));
      if (auto it = volume_errors.find(request.volume->name);
          it != volume_errors.end()) {
        return it->second;
      }
    }
    if (!error.ok()) return error;
    if (!request.base_version.empty() && !error_with_base.ok()) {
      return error_with_base;
    }
    const int n = ++sends;
    control.SetBytes(request.changes->extents.TotalBytes(),
                     request.changes->extents.TotalBytes());
    return SendResult{absl::StrCat(request.volume->name, "-v", n),
                      std::string(64, 'a' + n % 6),
                      request.changes->extents.TotalBytes(),
                      request.changes->extents.TotalBytes() / 2};
  }

 private:
  std::mutex mu_;
};

class FakeRetention : public RetentionApplier {
 public:
  absl::Status error;
  std::vector<std::string> applied;
  std::vector<RetentionPolicy> policies;
  std::vector<std::string> groups_applied;
  std::vector<RetentionPolicy> group_policies;
  absl::Status ApplyGroup(const std::string& group,
                          const RetentionPolicy& policy) override {
    groups_applied.push_back(group);
    group_policies.push_back(policy);
    return error;
  }
  absl::Status Apply(const std::string& volume,
                     const RetentionPolicy& policy) override {
    applied.push_back(volume);
    policies.push_back(policy);
    return error;
  }
};

}  // namespace cbtd::agent::testing

#endif  // CBTD_TESTS_AGENT_FAKE_PORTS_H_
