// cbtd's configuration: /etc/cbtd/cbtd.conf, an INI file read with
// Boost.Program_options. Sections:
//
//   [agent]          state_dir, socket, metrics_file, max_concurrent_runs,
//                    bandwidth_limit (bytes/s, e.g. 100M; 0 = unlimited),
//                    encryption (aes-256-gcm | none; default aes-256-gcm),
//                    key_file (the tenant key; default
//                    transport::kDefaultKeyFile, created at first use)
//   [receiver]       address (host:port, [v6]:port or unix:/path),
//                    ca_file, cert_file, key_file
//   [volume.NAME]    path, method (auto|thin-delta|cow-table|era|hash|
//                    external, with changes_file),
//                    chunk_size, cow_size (e.g. 20% or 10G), cow_max_size,
//                    cow_device
//                    (two devices; dm volumes that are not LVs),
//                    snapshot (auto|none: none reads a plain block device
//                    or an image file live), schedule, randomized_delay,
//                    keep_last, keep_hourly, keep_daily, keep_weekly,
//                    keep_monthly
//   [group.NAME]     members (volume names, space or comma separated),
//                    freeze (yes|no), freeze_timeout, hook_timeout,
//                    pre_hook / frozen_hook / post_hook (repeatable; run
//                    in file order), sequential (yes|no), schedule,
//                    randomized_delay
//
// docs/operations.md has a full example. Names are [A-Za-z0-9_-]+.
// Values run to the end of the line; '#' starts a comment anywhere.
//
// Thread-safety: Config is a value; LoadConfig/CheckConfig are reentrant.
#ifndef CBTD_AGENT_CONFIG_H_
#define CBTD_AGENT_CONFIG_H_

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "agent/schedule.h"
#include "snapshot/volume.h"
#include "transport/key_file.h"

namespace cbtd::agent {

enum class TrackingMethod {
  kAuto,
  kThinDelta,
  kCowTable,
  kEra,
  kHash,
  kExternal
};
std::string_view TrackingMethodName(TrackingMethod m);  // "thin-delta", ...

// How many versions the receiver keeps (0 = that rule keeps none). A version
// survives when any rule keeps it; all zero means "keep everything".
struct RetentionPolicy {
  int keep_last = 0;
  int keep_hourly = 0;
  int keep_daily = 0;
  int keep_weekly = 0;
  int keep_monthly = 0;
  bool KeepsEverything() const {
    return keep_last + keep_hourly + keep_daily + keep_weekly + keep_monthly ==
           0;
  }
};

// COW (thick) snapshot size: a percentage of the origin or fixed bytes.
struct CowSizePolicy {
  int percent_of_origin = 20;  // used when bytes == 0
  uint64_t bytes = 0;

  uint64_t BytesFor(uint64_t origin_bytes) const {
    const uint64_t pct = static_cast<uint64_t>(percent_of_origin);
    return bytes > 0
               ? bytes
               : origin_bytes / 100 * pct + origin_bytes % 100 * pct / 100;
  }
};

struct VolumeConfig {
  std::string name;
  std::string path;  // the origin block device, e.g. /dev/vg0/db
  TrackingMethod method = TrackingMethod::kAuto;
  uint64_t chunk_bytes = 64 * 1024;  // power of two, 4K..16M
  CowSizePolicy cow_size;
  // How large a run's COW snapshot may grow: cbtd extends one that fills
  // past 60% while a run reads it (snapshot/cow_guard.h). Default: the
  // origin's size, at which it cannot overflow.
  CowSizePolicy cow_max_size{.percent_of_origin = 100, .bytes = 0};
  // A device-mapper volume lvm2 does not manage: two block devices for its
  // snapshots' COW stores, used in turn (the base snapshot keeps one while
  // the next snapshot is taken on the other); overwritten by backups.
  std::vector<std::string> cow_devices;
  // `snapshot = none`: read a plain block device or an image file live,
  // with no snapshot (consistent only if nothing writes to it during the
  // run; a block device is held open exclusively, so nothing can mount or
  // stack on it meanwhile). Default: snapshot, or refuse.
  bool live_read = false;
  // method = external: the file a hypervisor (or any tool that knows the
  // volume's writes) leaves before each run, JSON
  //   {"generation": G, "next_generation": N, "extents": [[off, len], ...]}
  // meaning "every write since the point that started G"; N names the
  // tracking that started at this run's point. A list is trusted only when
  // G is the N the last committed run stored (cbt_change_tracker.h).
  // Optional: lists may come through the control API instead.
  std::string changes_file;
  // Not from the file: a list in that JSON handed in for one run through
  // the control API (BackupNow / ConsistencyPoint `changes`); used instead
  // of changes_file.
  std::string handed_changes;
  std::optional<Schedule> schedule;
  // Each scheduled start waits a random time in [0, randomized_delay] (as
  // systemd's RandomizedDelaySec=), drawn once per slot, to spread the
  // load of many hosts on one receiver.
  absl::Duration randomized_delay = absl::ZeroDuration();
  RetentionPolicy retention;
};

struct GroupConfig {
  std::string name;
  std::vector<std::string> members;  // volume names, at least one
  bool freeze = true;                // FIFREEZE mounted filesystems
  absl::Duration freeze_timeout = absl::Seconds(10);
  absl::Duration hook_timeout = absl::Seconds(30);
  std::vector<std::string> pre_hooks;  // shell command lines, in order
  // Run inside the freeze window; must not write to the members.
  std::vector<std::string> frozen_hooks;
  std::vector<std::string> post_hooks;  // run after thaw, in order
  // Snapshot members one after another with no common window (needed for
  // groups with thick members); each is then consistent only on its own.
  bool sequential = false;
  // How many members are sent at once after the point (1: one after the
  // other), so a snapshot is held for the longest member's transfer, not
  // the sum.
  int parallel = 2;
  std::optional<Schedule> schedule;
  absl::Duration randomized_delay = absl::ZeroDuration();  // as a volume's
};

struct ReceiverConfig {
  std::string address;  // empty: no receiver configured
  std::string ca_file;
  std::string cert_file;
  std::string key_file;
};

// How backups are sealed before they leave the host (docs/operations.md,
// "Encryption keys").
struct EncryptionConfig {
  bool enabled = true;  // aes-256-gcm; false: "none", stored as plaintext
  std::string key_file = std::string(transport::kDefaultKeyFile);
};

struct Config {
  std::string path;  // the file it was read from
  std::string state_dir = "/var/lib/cbtd";
  std::string socket_path = "/run/cbtd/cbtd.sock";
  std::string metrics_file;  // empty: no metrics file
  int max_concurrent_runs = 2;
  uint64_t bandwidth_limit_bytes_per_sec = 0;  // 0 = unlimited
  ReceiverConfig receiver;
  EncryptionConfig encryption;
  std::vector<VolumeConfig> volumes;  // in file order
  std::vector<GroupConfig> groups;
  // "volume.db.path" -> line number, for problems found after parsing.
  std::map<std::string, int> key_lines;

  const VolumeConfig* FindVolume(std::string_view name) const;
  const GroupConfig* FindGroup(std::string_view name) const;
  // The line a key was written on, or 0 when it was defaulted.
  int LineOf(const std::string& key) const;
};

// One thing wrong with a config, where it is.
struct ConfigProblem {
  int line = 0;  // 0: not tied to a line
  std::string message;
  // A warning does not make the config invalid (e.g. the receiver is down
  // right now: cbtd must still start, and its runs say why they fail).
  bool warning = false;
};
bool HasErrors(const std::vector<ConfigProblem>& problems);
// "cbtd.conf:12: message" lines ("cbtd.conf:12: warning: ..."), one per
// problem.
std::string FormatProblems(const std::string& file,
                           const std::vector<ConfigProblem>& problems);

// Parses and validates the syntax and values of `text` (as read from
// `path`). INVALID_ARGUMENT lists every problem found, each with its line.
absl::StatusOr<Config> ParseConfig(const std::string& path,
                                   const std::string& text);
// ParseConfig on the file's contents; NOT_FOUND etc. when it can't be read.
absl::StatusOr<Config> LoadConfig(const std::string& path);

// What --check-config asks of the host; LinuxConfigProbe is the real one.
class ConfigProbe {
 public:
  virtual ~ConfigProbe() = default;
  // OK when `path` exists and is a block device (or a regular file).
  virtual absl::Status CheckVolumePath(const std::string& path) = 0;
  // OK when the file can be opened for reading.
  virtual absl::Status CheckReadable(const std::string& path) = 0;
  // OK when the receiver accepts a connection (a warning otherwise).
  virtual absl::Status CheckReachable(const std::string& address) = 0;
  // What a run would find at `path` (snapshot::DiscoverVolume): its kind,
  // device numbers and why it cannot be snapshotted. Errors as
  // DiscoverVolume's.
  virtual absl::StatusOr<snapshot::VolumeInfo> DescribeVolume(
      const std::string& path) = 0;
};

// One line for --check-config saying how backups are encrypted, e.g.
// "encryption: aes-256-gcm, key /var/lib/cbtd/keys/default.key", or with
// `none` that backups are stored unencrypted.
std::string EncryptionSummary(const Config& config);

// Checks the host against a parsed config: volume paths and what a run
// would refuse there (a volume cbtd cannot snapshot, a dm volume without
// cow_device, one device in a group under two names; a method that does
// not fit the volume's kind is a warning: the run would fall back to
// hash), TLS files, the receiver. Returns every problem (empty when all is
// well).
std::vector<ConfigProblem> CheckConfig(const Config& config,
                                       ConfigProbe& probe);

}  // namespace cbtd::agent

#endif  // CBTD_AGENT_CONFIG_H_
