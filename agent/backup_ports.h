// The narrow interfaces a backup run drives. agent/ owns them; adapters
// implement them over snapshot/ (ConsistencyPointTaker), cbt/
// (ChangeTracker) and transport/ (Sender, RetentionApplier). Unit tests use
// fakes (tests/agent/fake_ports.h).
//
// A run calls them in this order, per member volume after the first step:
//
//   Take ─► ComputeChanges ─► SendAndCommit ─► [state commit] ─► Keep
//        ─► RemoveSnapshot(old base) ─► Apply(retention)
//
// Nothing before SendAndCommit returning OK may change what the receiver
// holds as the volume's latest version, and nothing may touch the old base
// snapshot before the state commit.
//
// The adapters cbtd's main wires in:
//   ConsistencyPointTaker  LvmSnapshotPort (lvm_snapshot_port.h): snapshot/'s
//                          group capture; SnapshotRef names are "VG/LV".
//   ChangeTracker          CbtChangeTracker (cbt_change_tracker.h): cbt/'s
//                          methods, whole-volume hash fallback with reason.
//   Sender                 RemoteSender (remote_sender.h): transport/'s
//                          producer and gRPC client.
//   RetentionApplier,      RemoteVault (remote_vault.h): the receiver's
//   VaultBrowser           Prune RPC, remote restore and verify.
#ifndef CBTD_AGENT_BACKUP_PORTS_H_
#define CBTD_AGENT_BACKUP_PORTS_H_

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "agent/config.h"
#include "agent/run_control.h"
#include "agent/state_store.h"
#include "cbt/extent_set.h"

namespace cbtd::agent {

// What to capture at one instant.
struct ConsistencyRequest {
  std::string group;                  // empty for a single volume
  std::vector<VolumeConfig> volumes;  // at least one
  bool freeze = true;
  absl::Duration freeze_timeout = absl::Seconds(10);
  absl::Duration hook_timeout = absl::Seconds(30);
  std::vector<std::string> pre_hooks;
  std::vector<std::string> frozen_hooks;  // inside the freeze window
  std::vector<std::string> post_hooks;
  bool sequential = false;  // no common window (thick members)
};

// One member's snapshot, readable at device_path while it exists.
struct SnapshotRef {
  std::string volume;
  std::string snapshot_name;  // e.g. the LV name; what TrackingRecord keeps
  std::string device_path;
};

// The snapshots of one consistency point. Owns them:
//
//   taken ──Keep(v)──► v's snapshot outlives this object (it is the new base)
//     │
//     └──destroyed──► every snapshot not kept is removed
class ConsistencyPoint {
 public:
  virtual ~ConsistencyPoint() = default;
  // One per requested volume, in request order.
  virtual const std::vector<SnapshotRef>& snapshots() const = 0;
  virtual void Keep(const std::string& volume) = 0;
  // Why `volume`'s snapshot became unreadable while the run held it, when
  // the point knows (a COW snapshot that overflowed), with what to change;
  // empty otherwise.
  virtual std::string Overflow(const std::string& volume) { return ""; }
};

class ConsistencyPointTaker {
 public:
  virtual ~ConsistencyPointTaker() = default;
  // Freeze (if asked), pre-hooks, snapshot every member, thaw, post-hooks.
  // Thaws even on error; on error no snapshot is left behind. Errors say
  // which member or hook failed.
  virtual absl::StatusOr<std::unique_ptr<ConsistencyPoint>> Take(
      const ConsistencyRequest& request) = 0;
  // Removes a snapshot kept by an earlier run (an old base).
  virtual absl::Status RemoveSnapshot(const std::string& volume,
                                      const std::string& snapshot_name) = 0;
  // Removes every snapshot this agent created that is not in `keep`, and
  // any other leftovers it owns (e.g. reserved metadata snapshots). Called
  // once at start, before any run.
  virtual absl::Status RemoveOrphans(const std::vector<std::string>& keep) = 0;
};

// What may have changed since the base, for one member.
struct ChangedSet {
  cbt::ExtentSet extents;  // bytes to (re)send; over-reporting is fine
  cbt::ExtentSet zeroed;   // bytes that read as zeros now (thin discards)
  bool full = false;       // no usable base: read all, send what differs
  uint64_t volume_bytes = 0;
  std::string method;           // the method that produced it
  std::string fallback_reason;  // why `method` is not the configured one
  std::string next_state_blob;  // stored as tracking state on commit
  // Whether the next run needs this run's snapshot as its base. False for
  // a volume tracked by hash (it compares with the receiver's index): the
  // snapshot is then removed after the run instead of kept, so no COW
  // store or shared thin blocks slow the volume's writes until next time.
  bool keep_snapshot = true;
};

class ChangeTracker {
 public:
  virtual ~ChangeTracker() = default;
  // `base` is the volume's committed tracking record (nullopt before the
  // first commit). `full` forces a full read. A broken chain is not an
  // error: return full = true with a fallback_reason.
  virtual absl::StatusOr<ChangedSet> ComputeChanges(
      const VolumeConfig& volume, const std::optional<TrackingRecord>& base,
      const SnapshotRef& snapshot, bool full) = 0;
};

struct SendRequest {
  const VolumeConfig* volume = nullptr;
  SnapshotRef snapshot;
  const ChangedSet* changes = nullptr;
  std::string base_version;                    // empty for a full
  uint64_t bandwidth_limit_bytes_per_sec = 0;  // 0 = unlimited
  // A member of a group's consistency point: the version is stored as a
  // pending member of group_version_id, dated at the point's instant
  // (created_unix_ms), and listed once Sender::CommitGroup succeeds.
  std::string group;
  std::string group_version_id;
  int64_t created_unix_ms = 0;  // 0: now
};

struct SendResult {
  std::string version_id;  // committed at the receiver
  std::string root_hash;   // hex, of the committed version
  uint64_t bytes_read = 0;
  uint64_t bytes_sent = 0;
};

// A group's consistency point, as committed at the receiver.
struct GroupPoint {
  std::string group;
  std::string group_version_id;
  int64_t created_unix_ms = 0;
  struct Member {
    std::string volume;
    std::string version_id;
    std::string root_hash;  // hex
  };
  std::vector<Member> members;
};

class Sender {
 public:
  virtual ~Sender() = default;
  // Reads the changed chunks from the snapshot (never the origin), sends
  // what the receiver lacks, and returns only after the receiver has
  // published the new version. Polls control.cancelled() and reports
  // control.SetBytes(). Errors: CANCELLED when cancelled;
  // NOT_FOUND when the receiver does not hold base_version (the
  // run then sends again, a full against nothing, so only the chunks the
  // receiver lacks travel);
  // FAILED_PRECONDITION when the base cannot be continued as configured
  // (made under another key, or the encryption setting changed: the run
  // fails, no full is sent); UNAVAILABLE when the receiver cannot be
  // reached.
  virtual absl::StatusOr<SendResult> SendAndCommit(const SendRequest& request,
                                                   RunControl& control) = 0;
  // Commits a group version once every member's SendAndCommit has: until
  // then the receiver lists none of them. Idempotent.
  virtual absl::Status CommitGroup(const GroupPoint& point) = 0;
};

class RetentionApplier {
 public:
  virtual ~RetentionApplier() = default;
  // Asks the receiver to drop the volume's versions backed up on their own
  // that the policy does not keep; members of group versions are left to
  // ApplyGroup. Never called with a policy that keeps everything.
  virtual absl::Status Apply(const std::string& volume,
                             const RetentionPolicy& policy) = 0;
  // The same for the group versions of `group`, each kept or dropped
  // whole (with its members' versions).
  virtual absl::Status ApplyGroup(const std::string& group,
                                  const RetentionPolicy& policy) = 0;
};

// One version of a volume at the receiver.
struct VersionView {
  std::string volume;
  std::string version_id;
  std::string base_version_id;  // empty for a full
  int64_t created_unix_ms = 0;
  uint64_t volume_bytes = 0;
  std::string root_hash;  // hex
  // The group version the version is a member of (empty: none). Listings
  // show members of committed group versions only.
  std::string group;
  std::string group_version_id;
};

struct RestoreRequest {
  std::string volume;
  std::string version;
  std::string target_path;   // a block device or a file (created)
  std::string from_version;  // incremental: the target holds this version
  std::string state_path;    // the target's state file (incremental)
  bool verify = false;       // re-read what was written
  // Roll the volume itself back (target_path is its device): the target's
  // chunks are compared, only those that differ are written.
  bool in_place = false;
  // Called as the restore goes (bytes done, total as far as known);
  // returning false cancels it (CANCELLED).
  std::function<bool(uint64_t done_bytes, uint64_t total_bytes)> progress;
};

// The key a rollback adds to the volume's tracking state blob (the change
// tracker's JSON): the next run compares every chunk, saying why.
inline constexpr char kRolledBackToKey[] = "rolled_back_to";

struct RestoreOutcome {
  uint64_t chunks_written = 0;
  uint64_t chunks_zeroed = 0;
  uint64_t chunks_skipped = 0;
  uint64_t bytes_written = 0;
  uint64_t chunks_verified = 0;
};

struct VerifyOutcome {
  uint64_t chunks_checked = 0;
  std::vector<std::string> problems;  // empty: the version is intact
};

// The volume's versions at the receiver, as the operator sees them through
// cbtd (the receiver's own CLI serves the backup server's side).
class VaultBrowser {
 public:
  virtual ~VaultBrowser() = default;
  // Oldest first.
  virtual absl::StatusOr<std::vector<VersionView>> ListVersions(
      const std::string& volume) = 0;
  // Fetches the version's chunks from the receiver (each checked against
  // its hash) and writes them to the target.
  virtual absl::StatusOr<RestoreOutcome> Restore(
      const RestoreRequest& request) = 0;
  // Reads every chunk of the version back from the receiver and checks it.
  virtual absl::StatusOr<VerifyOutcome> Verify(const std::string& volume,
                                               const std::string& version) = 0;
};

// The ports one agent uses; not owned.
struct BackupPorts {
  ConsistencyPointTaker* snapshots = nullptr;
  ChangeTracker* tracker = nullptr;
  Sender* sender = nullptr;
  RetentionApplier* retention = nullptr;
  VaultBrowser* vault = nullptr;  // null: versions/restore/verify unavailable
};

}  // namespace cbtd::agent

#endif  // CBTD_AGENT_BACKUP_PORTS_H_
