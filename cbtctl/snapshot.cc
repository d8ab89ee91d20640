// `cbtctl snapshot ...`: drives the snapshot engine directly, without the
// daemon, for debugging and the VM tests.
#include <iostream>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "cbtctl/commands.h"
#include "common/units.h"
#include "nlohmann/json.hpp"
#include "snapshot/consistency_group.h"
#include "snapshot/linux.h"
#include "snapshot/naming.h"
#include "snapshot/snapshotter.h"

namespace cbtd::cbtctl {
namespace {

using nlohmann::json;
using snapshot::SnapshotInfo;
using snapshot::VolumeInfo;

constexpr char kUsage[] =
    "Usage: cbtctl snapshot COMMAND [OPTIONS]\n"
    "\n"
    "  create [OPTIONS] VOLUME...   one consistent snapshot of the volumes\n"
    "      --group NAME             group name for hooks (default: default)\n"
    "      --pre-hook CMD           run before freezing (repeatable)\n"
    "      --frozen-hook CMD        run while frozen; must not write to the\n"
    "                               volumes (repeatable)\n"
    "      --post-hook CMD          run after thawing, always (repeatable)\n"
    "      --hook-timeout SEC       per hook (default 30)\n"
    "      --freeze-bound SEC       watchdog bound on the window (default 10)\n"
    "      --pool-limit PCT         refuse above this thin pool fill (80)\n"
    "      --cow-percent PCT        COW size of thick snapshots (20)\n"
    "      --cow-size BYTES         fixed COW size instead (suffix k/M/G)\n"
    "      --cow-device [VOLUME=]DEV  COW store of a device-mapper volume\n"
    "                               that is not an LV (its start is zeroed,\n"
    "                               all of it is used; repeatable, VOLUME=\n"
    "                               needed with several volumes)\n"
    "      --sequential             one lvcreate per member, no common\n"
    "                               instant (needed with thick members)\n"
    "  discover VOLUME...           what a volume is and whether it can be\n"
    "                               snapshotted\n"
    "  list [VG]                    cbtd's snapshots (dm ones as dm/NAME)\n"
    "  remove VG/NAME...            remove cbtd snapshots (only cbtd's)\n"
    "  cleanup [--keep VG/NAME]...  remove every other cbtd snapshot\n"
    "\n"
    "Every command takes --json. Exit codes: 0 ok, 1 failed, 2 usage,\n"
    "3 refused (nothing was changed).\n";

int ExitCodeFor(const absl::Status& st) {
  switch (st.code()) {
    case absl::StatusCode::kOk:
      return common::kExitOk;
    case absl::StatusCode::kNotFound:
    case absl::StatusCode::kInvalidArgument:
    case absl::StatusCode::kFailedPrecondition:
    case absl::StatusCode::kResourceExhausted:
      return common::kExitRefused;
    default:
      return common::kExitFailure;
  }
}

int Fail(const absl::Status& st) {
  std::cerr << "cbtctl snapshot: " << st.message() << "\n";
  return ExitCodeFor(st);
}

int Usage(const std::string& why) {
  std::cerr << "cbtctl snapshot: " << why << "\n" << kUsage;
  return common::kExitUsage;
}

json ToJson(const SnapshotInfo& s) {
  json j = {{"vg", s.vg},
            {"name", s.name},
            {"origin", s.origin},
            {"timestamp", s.timestamp},
            {"kind", std::string(snapshot::VolumeKindName(s.kind))},
            {"uuid", s.uuid},
            {"size_bytes", s.size_bytes},
            {"active", s.active},
            {"device_path", s.device_path}};
  if (s.kind != snapshot::VolumeKind::kThinLv) {
    j["cow_dm_path"] = s.cow_dm_path;
    j["cow_fill_percent"] = s.cow_fill_percent.value_or(-1);
    j["invalid"] = s.invalid;
  } else {
    if (s.thin_id) j["thin_id"] = *s.thin_id;
    j["pool_lv"] = s.pool_lv;
  }
  return j;
}

json ToJson(const VolumeInfo& v) {
  json j = {{"path", v.path},
            {"kind", std::string(snapshot::VolumeKindName(v.kind))},
            {"size_bytes", v.size_bytes},
            {"device", absl::StrCat(v.major, ":", v.minor)},
            {"uuid", v.uuid},
            {"dm_name", v.dm_name},
            {"snapshottable", v.not_snapshottable_reason.empty()}};
  if (!v.not_snapshottable_reason.empty()) {
    j["reason"] = v.not_snapshottable_reason;
  }
  if (!v.vg.empty()) {
    j["vg"] = v.vg;
    j["lv"] = v.lv;
  }
  if (v.kind == snapshot::VolumeKind::kThinLv) {
    j["pool_lv"] = v.pool_lv;
    if (v.thin_id) j["thin_id"] = *v.thin_id;
    j["pool_dm_name"] = v.pool_dm_name;
    j["pool_metadata_dm_path"] = v.pool_metadata_dm_path;
    j["pool_data_percent"] = v.pool_data_percent.value_or(-1);
    j["pool_metadata_percent"] = v.pool_metadata_percent.value_or(-1);
  }
  return j;
}

void PrintSnapshots(const std::vector<SnapshotInfo>& snaps, bool as_json) {
  if (as_json) {
    json arr = json::array();
    for (const SnapshotInfo& s : snaps) arr.push_back(ToJson(s));
    std::cout << json{{"snapshots", arr}}.dump(2) << "\n";
    return;
  }
  for (const SnapshotInfo& s : snaps) {
    std::cout << s.FullName() << "  " << snapshot::VolumeKindName(s.kind)
              << "  origin=" << (s.origin.empty() ? "-" : s.origin) << "  "
              << s.device_path;
    if (s.cow_fill_percent) std::cout << "  cow " << *s.cow_fill_percent << "%";
    if (s.invalid) std::cout << "  INVALID";
    std::cout << "\n";
  }
}

struct Engine {
  std::unique_ptr<snapshot::Lvm> lvm = snapshot::NewLinuxLvm();
  std::unique_ptr<snapshot::DeviceMapper> dm = snapshot::NewLinuxDeviceMapper();
  std::unique_ptr<snapshot::Host> host = snapshot::NewLinuxHost();
  snapshot::Snapshotter snapshotter;
  explicit Engine(snapshot::SnapshotPolicy policy)
      : snapshotter(*lvm, *dm, *host, policy) {}
};

// The command line after the command name.
struct SnapshotArgs {
  bool as_json = false;
  snapshot::SnapshotPolicy policy;
  snapshot::GroupOptions group;
  std::set<std::string> keep;
  std::vector<std::string> positional;
  std::vector<std::string> cow_devices;  // [VOLUME=]DEV, as given
};

// The values that follow an option, read from args[i + 1] on (advancing i).
class OptionValues {
 public:
  OptionValues(std::span<char*> args, size_t& i) : args_(args), i_(i) {}

  std::optional<std::string> Next() {
    if (i_ + 1 >= args_.size()) return std::nullopt;
    return std::string(args_[++i_]);
  }
  // Seconds > 0, possibly fractional.
  bool Seconds(std::chrono::milliseconds& out) {
    std::optional<std::string> v = Next();
    double s;
    if (!v || !absl::SimpleAtod(*v, &s) || s <= 0) return false;
    out = std::chrono::milliseconds(static_cast<int64_t>(s * 1000));
    return true;
  }
  // A percentage in (0, 100].
  bool Percent(double& out) {
    std::optional<std::string> v = Next();
    return v && absl::SimpleAtod(*v, &out) && out > 0 && out <= 100;
  }

 private:
  std::span<char*> args_;
  size_t& i_;
};

// Applies option `a` (its values read from `values`) to `out`; returns the
// usage error, if any.
std::optional<std::string> ParseOption(const std::string& a,
                                       OptionValues& values,
                                       SnapshotArgs& out) {
  snapshot::GroupOptions& group = out.group;
  snapshot::SnapshotPolicy& policy = out.policy;
  std::optional<std::string> v;
  if (a == "--json") {
    out.as_json = true;
  } else if (a == "--group") {
    if (!(v = values.Next())) return "--group needs a name";
    group.group_name = *v;
  } else if (a == "--pre-hook" || a == "--frozen-hook" || a == "--post-hook") {
    if (!(v = values.Next())) return a + " needs a command";
    (a == "--pre-hook"      ? group.pre_hooks
     : a == "--frozen-hook" ? group.frozen_hooks
                            : group.post_hooks)
        .push_back(*v);
  } else if (a == "--hook-timeout") {
    if (!values.Seconds(group.hook_timeout)) return "bad --hook-timeout";
  } else if (a == "--freeze-bound") {
    if (!values.Seconds(group.freeze_bound)) return "bad --freeze-bound";
  } else if (a == "--pool-limit") {
    if (!values.Percent(policy.pool_fill_limit_percent)) {
      return "bad --pool-limit";
    }
  } else if (a == "--cow-percent") {
    if (!values.Percent(policy.cow_percent)) return "bad --cow-percent";
  } else if (a == "--cow-size") {
    if (!(v = values.Next())) return "--cow-size needs a size";
    absl::StatusOr<uint64_t> bytes = common::ParseBytes(*v);
    if (!bytes.ok()) return std::string(bytes.status().message());
    policy.cow_size_bytes = *bytes;
  } else if (a == "--cow-device") {
    if (!(v = values.Next()) || v->empty()) {
      return "--cow-device needs [VOLUME=]DEV";
    }
    out.cow_devices.push_back(*v);
  } else if (a == "--sequential") {
    group.sequential = true;
  } else if (a == "--keep") {
    if (!(v = values.Next())) return "--keep needs VG/NAME";
    out.keep.insert(*v);
  } else {
    return "unknown option " + a;
  }
  return std::nullopt;
}

// Keys each --cow-device by its volume, like VolumeInfo::path; returns the
// usage error, if any.
std::optional<std::string> ResolveCowDevices(SnapshotArgs& args) {
  for (const std::string& c : args.cow_devices) {
    const size_t eq = c.find('=');
    std::string volume, device = c;
    if (eq != std::string::npos) {
      volume = c.substr(0, eq);
      device = c.substr(eq + 1);
    } else if (args.positional.size() == 1) {
      volume = args.positional[0];
    } else {
      return "with several volumes, say which: --cow-device VOLUME=DEV";
    }
    // Keyed like VolumeInfo::path: VG/LV means /dev/VG/LV.
    if (!volume.empty() && volume[0] != '/') volume = "/dev/" + volume;
    args.policy.dm_cow_device_for[volume] = device;
  }
  return std::nullopt;
}

// Parses args[2...]; returns the usage error, if any.
std::optional<std::string> ParseArgs(std::span<char*> args, SnapshotArgs& out) {
  for (size_t i = 2; i < args.size(); ++i) {
    const std::string a = args[i];
    if (a.empty() || a[0] != '-') {
      out.positional.push_back(a);
      continue;
    }
    OptionValues values(args, i);
    if (std::optional<std::string> err = ParseOption(a, values, out)) {
      return err;
    }
  }
  return ResolveCowDevices(out);
}

int Create(Engine& engine, const SnapshotArgs& args) {
  if (args.positional.empty()) return Usage("create needs a VOLUME");
  absl::StatusOr<snapshot::GroupSnapshot> g =
      snapshot::TakeGroupSnapshot(engine.snapshotter, *engine.dm, *engine.host,
                                  args.positional, args.group);
  if (!g.ok()) return Fail(g.status());
  absl::StatusOr<std::vector<SnapshotInfo>> ours = engine.snapshotter.List();
  if (!ours.ok()) return Fail(ours.status());  // removes them all
  std::vector<SnapshotInfo> infos;
  for (auto& s : g->snapshots) {
    for (const SnapshotInfo& info : *ours) {
      if (info.vg == s->vg() && info.name == s->name()) infos.push_back(info);
    }
  }
  if (infos.size() != g->snapshots.size()) {
    return Fail(absl::InternalError("lvs does not list the new snapshots"));
  }
  for (auto& s : g->snapshots) s->Release();
  if (args.as_json) {
    json arr = json::array();
    for (size_t i = 0; i < infos.size(); ++i) {
      json j = ToJson(infos[i]);
      j["volume"] = g->members[i].path;
      arr.push_back(j);
    }
    std::cout << json{{"group", args.group.group_name},
                      {"window_ms", g->window.count()},
                      {"snapshots", arr}}
                     .dump(2)
              << "\n";
  } else {
    PrintSnapshots(infos, false);
    std::cerr << "window (frozen and held): " << g->window.count() << " ms\n";
  }
  return common::kExitOk;
}

int Discover(Engine& engine, const SnapshotArgs& args) {
  if (args.positional.empty()) return Usage("discover needs a VOLUME");
  json arr = json::array();
  for (const std::string& p : args.positional) {
    absl::StatusOr<VolumeInfo> v = engine.snapshotter.Discover(p);
    if (!v.ok()) return Fail(v.status());
    if (args.as_json) {
      arr.push_back(ToJson(*v));
    } else {
      std::cout << ToJson(*v).dump() << "\n";
    }
  }
  if (args.as_json) std::cout << json{{"volumes", arr}}.dump(2) << "\n";
  return common::kExitOk;
}

int List(Engine& engine, const SnapshotArgs& args) {
  if (args.positional.size() > 1) return Usage("list takes at most one VG");
  absl::StatusOr<std::vector<SnapshotInfo>> l = engine.snapshotter.List(
      args.positional.empty() ? "" : args.positional[0]);
  if (!l.ok()) return Fail(l.status());
  PrintSnapshots(*l, args.as_json);
  return common::kExitOk;
}

int Remove(Engine& engine, const SnapshotArgs& args) {
  if (args.positional.empty()) return Usage("remove needs VG/NAME");
  for (const std::string& full : args.positional) {
    std::string vg, name;
    if (!snapshot::SplitFullName(full, &vg, &name))
      return Usage("not VG/NAME: " + full);
    absl::Status st = engine.snapshotter.Remove(vg, name);
    if (!st.ok()) return Fail(st);
  }
  if (args.as_json) {
    std::cout << json{{"removed", args.positional}}.dump(2) << "\n";
  }
  return common::kExitOk;
}

int Cleanup(Engine& engine, const SnapshotArgs& args) {
  absl::StatusOr<std::vector<SnapshotInfo>> removed =
      engine.snapshotter.RemoveOrphans(args.keep);
  if (!removed.ok()) return Fail(removed.status());
  if (args.as_json) {
    PrintSnapshots(*removed, true);
  } else {
    for (const SnapshotInfo& s : *removed) {
      std::cout << "removed " << s.FullName() << "\n";
    }
  }
  return common::kExitOk;
}

}  // namespace

int RunSnapshotCommand(std::span<char*> args) {
  if (args.size() < 2) return Usage("missing command");
  const std::string cmd = args[1];
  if (cmd == "-h" || cmd == "--help") {
    std::cout << kUsage;
    return common::kExitOk;
  }
  SnapshotArgs parsed;
  if (std::optional<std::string> err = ParseArgs(args, parsed)) {
    return Usage(*err);
  }
  Engine engine(parsed.policy);
  if (cmd == "create") return Create(engine, parsed);
  if (cmd == "discover") return Discover(engine, parsed);
  if (cmd == "list") return List(engine, parsed);
  if (cmd == "remove") return Remove(engine, parsed);
  if (cmd == "cleanup") return Cleanup(engine, parsed);
  return Usage("unknown command " + cmd);
}

}  // namespace cbtd::cbtctl
