// Lvm over the lvm2 command line. Reports are always requested as JSON with
// byte units and binary flags, so nothing depends on human-readable output.
#include <string>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "common/exec.h"
#include "snapshot/linux.h"
#include "snapshot/lvm.h"

namespace cbtd::snapshot {
namespace {

constexpr char kLvFields[] =
    "vg_name,lv_name,lv_uuid,segtype,pool_lv,origin,metadata_lv,lv_tags,"
    "lv_size,data_percent,metadata_percent,thin_id,lv_kernel_major,"
    "lv_kernel_minor,lv_active,lv_snapshot_invalid";

class LinuxLvm : public Lvm {
 public:
  explicit LinuxLvm(const LinuxLvmOptions& options) : options_(options) {}

  absl::StatusOr<std::vector<LvReport>> ListLvs(
      const std::string& vg) override {
    std::vector<std::string> argv = {
        "lvs", "-a",         "--reportformat", "json", "--units",
        "b",   "--nosuffix", "--binary",       "-o",   kLvFields};
    if (!vg.empty()) argv.push_back(vg);
    absl::StatusOr<std::string> out = Run(argv, vg);
    if (!out.ok()) return out.status();
    return ParseLvsJson(*out);
  }

  absl::StatusOr<VgReport> GetVg(const std::string& vg) override {
    absl::StatusOr<std::string> out =
        Run({"vgs", "--reportformat", "json", "--units", "b", "--nosuffix",
             "-o", "vg_name,vg_extent_size,vg_free_count", vg},
            vg);
    if (!out.ok()) return out.status();
    return ParseVgsJson(*out);
  }

  absl::Status CreateSnapshot(const SnapshotRequest& r) override {
    // ignore_suspended_devices: while a consistency group holds its
    // members suspended, lvm2 must not block reading one of them.
    std::vector<std::string> argv = {
        "lvcreate",   "--config", "devices { ignore_suspended_devices = 1 }",
        "--snapshot", "--name",   r.name,
        "--addtag",   r.tag,      "--permission",
        "r"};
    if (r.cow_size_bytes.has_value()) {
      argv.push_back("--size");
      argv.push_back(absl::StrCat(*r.cow_size_bytes, "b"));
    } else if (r.activate) {
      // Thin snapshots carry the activation-skip flag (so a reboot does not
      // activate them); -K activates this one for reading anyway.
      argv.push_back("--ignoreactivationskip");
    }
    argv.push_back(absl::StrCat(r.vg, "/", r.origin));
    return Run(argv, r.vg).status();
  }

  absl::Status SetActive(const std::string& vg, const std::string& name,
                         bool active) override {
    std::vector<std::string> argv = {"lvchange", active ? "-ay" : "-an"};
    if (active) argv.push_back("--ignoreactivationskip");
    argv.push_back(absl::StrCat(vg, "/", name));
    return Run(argv, vg).status();
  }

  absl::Status ExtendLv(const std::string& vg, const std::string& name,
                        uint64_t size_bytes) override {
    return Run({"lvextend", "--size", absl::StrCat(size_bytes, "b"),
                absl::StrCat(vg, "/", name)},
               vg)
        .status();
  }

  absl::Status RemoveLv(const std::string& vg,
                        const std::string& name) override {
    return Run({"lvremove", "--yes", absl::StrCat(vg, "/", name)}, vg).status();
  }

 private:
  absl::StatusOr<std::string> Run(const std::vector<std::string>& argv,
                                  const std::string& vg) {
    common::CommandOptions opts;
    opts.env = {"LVM_SUPPRESS_FD_WARNINGS=1"};
    opts.timeout = options_.command_timeout;
    absl::StatusOr<common::CommandResult> r = common::RunCommand(argv, opts);
    if (!r.ok()) {
      return absl::FailedPreconditionError(
          absl::StrCat("cannot run lvm2 (is the lvm2 package installed?): ",
                       r.status().message()));
    }
    if (r->timed_out) {
      return absl::DeadlineExceededError(absl::StrCat(
          "'", common::CommandLine(argv), "' did not finish within ",
          options_.command_timeout.count(),
          " ms and was killed; check for another lvm2 command holding the "
          "lock of VG ",
          vg));
    }
    if (r->exit_code != 0) {
      std::string err = r->err;
      while (!err.empty() && (err.back() == '\n' || err.back() == ' ')) {
        err.pop_back();
      }
      std::string msg =
          absl::StrCat("'", common::CommandLine(argv), "' failed (exit ",
                       r->exit_code, "): ", err);
      if (absl::StrContains(err, "not found") ||
          absl::StrContains(err, "Failed to find")) {
        return absl::NotFoundError(msg);
      }
      if (absl::StrContains(err, "Insufficient free space") ||
          absl::StrContains(err, "insufficient")) {
        return absl::ResourceExhaustedError(msg);
      }
      return absl::FailedPreconditionError(msg);
    }
    return std::move(r->out);
  }

  LinuxLvmOptions options_;
};

}  // namespace

std::unique_ptr<Lvm> NewLinuxLvm(const LinuxLvmOptions& options) {
  return std::make_unique<LinuxLvm>(options);
}

}  // namespace cbtd::snapshot
