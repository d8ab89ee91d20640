// In-memory Lvm and Host/DeviceMapper mocks for snapshot/ unit tests.
#ifndef CBTD_TESTS_SNAPSHOT_FAKES_H_
#define CBTD_TESTS_SNAPSHOT_FAKES_H_

#include <gmock/gmock.h>

#include <mutex>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "snapshot/device_mapper.h"
#include "snapshot/host.h"
#include "snapshot/lvm.h"

namespace cbtd::snapshot {

// LVs in memory; every mutating call is appended to `calls`.
class FakeLvm : public Lvm {
 public:
  std::vector<LvReport> lvs;
  VgReport vg{"vg", 4 << 20, 100};
  std::vector<std::string> calls;
  absl::Status create_error;
  uint64_t next_thin_id = 10;

  absl::StatusOr<std::vector<LvReport>> ListLvs(
      const std::string& vg_name) override {
    std::lock_guard lock(mu_);
    std::vector<LvReport> out;
    for (const LvReport& lv : lvs) {
      if (vg_name.empty() || lv.vg == vg_name) out.push_back(lv);
    }
    return out;
  }
  absl::StatusOr<VgReport> GetVg(const std::string& name) override {
    if (name != vg.name) return absl::NotFoundError("no vg " + name);
    return vg;
  }
  absl::Status CreateSnapshot(const SnapshotRequest& r) override {
    std::lock_guard lock(mu_);
    calls.push_back(absl::StrCat("create ", r.vg, "/", r.name,
                                 r.cow_size_bytes ? " cow" : " thin",
                                 r.activate ? " active" : " inactive"));
    if (!create_error.ok()) return create_error;
    LvReport lv;
    lv.vg = r.vg;
    lv.name = r.name;
    lv.origin = r.origin;
    lv.tags = {r.tag};
    lv.segtype = r.cow_size_bytes ? "linear" : "thin";
    if (!r.cow_size_bytes) lv.thin_id = next_thin_id++;
    lv.active = r.cow_size_bytes.has_value() || r.activate;
    lvs.push_back(lv);
    return absl::OkStatus();
  }
  absl::Status SetActive(const std::string& vg_name, const std::string& name,
                         bool active) override {
    std::lock_guard lock(mu_);
    calls.push_back(
        absl::StrCat(active ? "activate " : "deactivate ", vg_name, "/", name));
    for (LvReport& lv : lvs) {
      if (lv.vg == vg_name && lv.name == name) lv.active = active;
    }
    return absl::OkStatus();
  }
  absl::Status RemoveLv(const std::string& vg_name,
                        const std::string& name) override {
    std::lock_guard lock(mu_);
    calls.push_back(absl::StrCat("remove ", vg_name, "/", name));
    std::erase_if(lvs, [&](const LvReport& lv) {
      return lv.vg == vg_name && lv.name == name;
    });
    return absl::OkStatus();
  }

  // Adds an LV and returns it for further setup.
  LvReport& Add(const std::string& name, const std::string& segtype) {
    LvReport lv;
    lv.vg = "vg";
    lv.name = name;
    lv.segtype = segtype;
    lv.size_bytes = 64 << 20;
    lvs.push_back(lv);
    return lvs.back();
  }

 private:
  std::mutex mu_;
};

class MockDeviceMapper : public DeviceMapper {
 public:
  MOCK_METHOD(absl::StatusOr<std::optional<DmInfo>>, InfoByDevice,
              (uint32_t, uint32_t), (override));
  MOCK_METHOD(absl::Status, Suspend, (const std::string&), (override));
  MOCK_METHOD(absl::Status, Resume, (const std::string&), (override));
  MOCK_METHOD(absl::Status, Message, (const std::string&, const std::string&),
              (override));
};

class MockHost : public Host {
 public:
  MOCK_METHOD(absl::StatusOr<BlockDeviceId>, StatBlockDevice,
              (const std::string&), (override));
  MOCK_METHOD(absl::StatusOr<std::vector<std::string>>, MountPoints,
              (uint32_t, uint32_t), (override));
  MOCK_METHOD(absl::Status, Freeze, (const std::string&), (override));
  MOCK_METHOD(absl::Status, Thaw, (const std::string&), (override));
  MOCK_METHOD(absl::Status, RunHook,
              (const std::string&, const std::vector<std::string>&,
               std::chrono::milliseconds),
              (override));
};

}  // namespace cbtd::snapshot

#endif  // CBTD_TESTS_SNAPSHOT_FAKES_H_
