// In-memory Lvm and DeviceMapper fakes, Host/DeviceMapper mocks for
// snapshot/ unit tests.
#ifndef CBTD_TESTS_SNAPSHOT_FAKES_H_
#define CBTD_TESTS_SNAPSHOT_FAKES_H_

#include <gmock/gmock.h>

#include <map>
#include <mutex>
#include <optional>
#include <set>
#include <string>
#include <utility>
#include <vector>

#include "absl/strings/match.h"
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
  std::vector<SnapshotRequest> requests;  // every CreateSnapshot, in order
  absl::Status create_error;
  absl::Status extend_error;
  std::string create_error_origin;  // if set, create_error only for it
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
    requests.push_back(r);
    if (!create_error.ok() &&
        (create_error_origin.empty() || create_error_origin == r.origin)) {
      return create_error;
    }
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
  absl::Status ExtendLv(const std::string& vg_name, const std::string& name,
                        uint64_t size_bytes) override {
    std::lock_guard lock(mu_);
    calls.push_back(
        absl::StrCat("extend ", vg_name, "/", name, " ", size_bytes));
    if (!extend_error.ok()) return extend_error;
    for (LvReport& lv : lvs) {
      if (lv.vg == vg_name && lv.name == name) lv.size_bytes = size_bytes;
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

// FakeLvm that counts its reports (each one an `lvs` or `vgs` run on a
// host). Like lvm2, it answers a report of a VG that is neither `vg` nor
// the VG of one of its LVs with NOT_FOUND. `list_error`, when set, is the
// answer to the next ListLvs only.
class CountingFakeLvm : public FakeLvm {
 public:
  int list_lvs_calls = 0;
  int get_vg_calls = 0;
  absl::Status list_error;

  absl::StatusOr<std::vector<LvReport>> ListLvs(
      const std::string& vg_name) override {
    ++list_lvs_calls;
    if (!list_error.ok()) return std::exchange(list_error, absl::OkStatus());
    bool known = vg_name.empty() || vg_name == vg.name;
    for (const LvReport& lv : lvs) known |= lv.vg == vg_name;
    if (!known) {
      return absl::NotFoundError("Volume group not found: " + vg_name);
    }
    return FakeLvm::ListLvs(vg_name);
  }
  absl::StatusOr<VgReport> GetVg(const std::string& name) override {
    ++get_vg_calls;
    return FakeLvm::GetVg(name);
  }
};

// Defaults (for NiceMock): no dm devices at all.
class MockDeviceMapper : public DeviceMapper {
 public:
  MockDeviceMapper() {
    ON_CALL(*this, List())
        .WillByDefault(::testing::Return(
            absl::StatusOr<std::vector<DmInfo>>(std::vector<DmInfo>{})));
    ON_CALL(*this, InfoByName(::testing::_))
        .WillByDefault(::testing::Return(
            absl::StatusOr<std::optional<DmInfo>>(std::optional<DmInfo>())));
  }
  MOCK_METHOD(absl::StatusOr<std::optional<DmInfo>>, InfoByDevice,
              (uint32_t, uint32_t), (override));
  MOCK_METHOD(absl::StatusOr<std::optional<DmInfo>>, InfoByName,
              (const std::string&), (override));
  MOCK_METHOD(absl::StatusOr<std::vector<DmInfo>>, List, (), (override));
  MOCK_METHOD(absl::StatusOr<DmTable>, Table, (const std::string&), (override));
  MOCK_METHOD(absl::StatusOr<DmTable>, Status, (const std::string&),
              (override));
  MOCK_METHOD(absl::Status, Create,
              (const std::string&, const std::string&, const DmTable&, bool),
              (override));
  MOCK_METHOD(absl::Status, Load, (const std::string&, const DmTable&),
              (override));
  MOCK_METHOD(absl::Status, Remove, (const std::string&), (override));
  MOCK_METHOD(absl::Status, Suspend, (const std::string&), (override));
  MOCK_METHOD(absl::Status, Resume, (const std::string&), (override));
  MOCK_METHOD(absl::Status, Message, (const std::string&, const std::string&),
              (override));
};

// Device-mapper in memory, with the kernel's rules that matter here: a
// loaded table goes live at resume, a device used by another's table
// cannot be removed. Mutating calls are logged in `calls` ("create NAME",
// "load NAME TYPE", "suspend NAME", "resume NAME", "remove NAME"); a call
// whose log line is in `fail_once` fails, changing nothing, the first time.
class FakeDeviceMapper : public DeviceMapper {
 public:
  struct Device {
    std::string uuid;
    uint32_t minor = 0;
    DmTable live;
    std::optional<DmTable> inactive;
    bool suspended = false;
    bool read_only = false;
  };
  std::map<std::string, Device> devices;
  std::vector<std::string> calls;
  std::set<std::string> fail_once;
  // Status of "snapshot" targets.
  std::string snapshot_status = "16/131072 16";

  void Add(const std::string& name, const std::string& uuid, uint32_t minor,
           DmTable table) {
    devices[name] =
        Device{uuid, minor, std::move(table), std::nullopt, false, false};
  }
  std::string DevOf(const std::string& name) {
    return absl::StrCat("253:", devices.at(name).minor);
  }

  absl::StatusOr<std::optional<DmInfo>> InfoByDevice(uint32_t major,
                                                     uint32_t minor) override {
    std::lock_guard lock(mu_);
    if (major != 253) return std::optional<DmInfo>();
    for (const auto& [name, d] : devices) {
      if (d.minor == minor) return std::optional<DmInfo>(Info(name, d));
    }
    return absl::NotFoundError("no dm device");
  }
  absl::StatusOr<std::optional<DmInfo>> InfoByName(
      const std::string& name) override {
    std::lock_guard lock(mu_);
    auto it = devices.find(name);
    if (it == devices.end()) return std::optional<DmInfo>();
    return std::optional<DmInfo>(Info(name, it->second));
  }
  absl::StatusOr<std::vector<DmInfo>> List() override {
    std::lock_guard lock(mu_);
    std::vector<DmInfo> out;
    for (const auto& [name, d] : devices) out.push_back(Info(name, d));
    return out;
  }
  absl::StatusOr<DmTable> Table(const std::string& name) override {
    std::lock_guard lock(mu_);
    auto it = devices.find(name);
    if (it == devices.end()) return absl::NotFoundError("no " + name);
    return it->second.live;
  }
  absl::StatusOr<DmTable> Status(const std::string& name) override {
    std::lock_guard lock(mu_);
    auto it = devices.find(name);
    if (it == devices.end()) return absl::NotFoundError("no " + name);
    DmTable out = it->second.live;
    for (DmTarget& t : out) {
      t.params = t.type == "snapshot" ? snapshot_status : "";
    }
    return out;
  }
  absl::Status Create(const std::string& name, const std::string& uuid,
                      const DmTable& table, bool read_only) override {
    std::lock_guard lock(mu_);
    if (absl::Status st = Log("create " + name); !st.ok()) return st;
    if (devices.count(name)) return absl::AlreadyExistsError(name);
    devices[name] =
        Device{uuid, next_minor_++, table, std::nullopt, false, read_only};
    return absl::OkStatus();
  }
  absl::Status Load(const std::string& name, const DmTable& table) override {
    std::lock_guard lock(mu_);
    if (absl::Status st = Log(absl::StrCat("load ", name, " ",
                                           table.empty() ? "" : table[0].type));
        !st.ok()) {
      return st;
    }
    auto it = devices.find(name);
    if (it == devices.end()) return absl::NotFoundError("no " + name);
    it->second.inactive = table;
    return absl::OkStatus();
  }
  absl::Status Remove(const std::string& name) override {
    std::lock_guard lock(mu_);
    if (absl::Status st = Log("remove " + name); !st.ok()) return st;
    auto it = devices.find(name);
    if (it == devices.end()) return absl::NotFoundError("no " + name);
    const std::string dev = absl::StrCat("253:", it->second.minor);
    for (const auto& [other, d] : devices) {
      for (const DmTable* t : {&d.live, d.inactive ? &*d.inactive : nullptr}) {
        if (t == nullptr) continue;
        for (const DmTarget& target : *t) {
          if (absl::StrContains(target.params, dev)) {
            return absl::FailedPreconditionError(
                absl::StrCat(name, " is in use by ", other));
          }
        }
      }
    }
    devices.erase(it);
    return absl::OkStatus();
  }
  absl::Status Suspend(const std::string& name) override {
    std::lock_guard lock(mu_);
    if (absl::Status st = Log("suspend " + name); !st.ok()) return st;
    devices.at(name).suspended = true;
    return absl::OkStatus();
  }
  absl::Status Resume(const std::string& name) override {
    std::lock_guard lock(mu_);
    if (absl::Status st = Log("resume " + name); !st.ok()) return st;
    Device& d = devices.at(name);
    if (!d.suspended) return absl::OkStatus();
    if (d.inactive) d.live = *std::exchange(d.inactive, std::nullopt);
    d.suspended = false;
    return absl::OkStatus();
  }
  absl::Status Message(const std::string& name,
                       const std::string& message) override {
    return absl::UnimplementedError("no messages");
  }

 private:
  absl::Status Log(const std::string& call) {
    calls.push_back(call);
    if (fail_once.erase(call)) {
      return absl::UnavailableError("injected failure: " + call);
    }
    return absl::OkStatus();
  }
  static DmInfo Info(const std::string& name, const Device& d) {
    DmInfo info;
    info.name = name;
    info.uuid = d.uuid;
    info.suspended = d.suspended;
    info.major = 253;
    info.minor = d.minor;
    for (const DmTarget& t : d.live) info.target_types.push_back(t.type);
    return info;
  }

  std::mutex mu_;
  uint32_t next_minor_ = 100;
};

class MockHost : public Host {
 public:
  MOCK_METHOD(absl::StatusOr<BlockDeviceId>, StatBlockDevice,
              (const std::string&), (override));
  MOCK_METHOD(absl::Status, ZeroStart, (const std::string&, uint64_t),
              (override));
  MOCK_METHOD(absl::StatusOr<std::vector<std::string>>, MountPoints,
              (uint32_t, uint32_t), (override));
  MOCK_METHOD(absl::Status, Freeze, (const std::string&), (override));
  MOCK_METHOD(absl::Status, Thaw, (const std::string&), (override));
  MOCK_METHOD(absl::Status, RunHook,
              (const std::string&, const std::vector<std::string>&,
               std::chrono::milliseconds),
              (override));
  MOCK_METHOD(absl::Status, CloneFile, (const std::string&, const std::string&),
              (override));
  MOCK_METHOD(absl::Status, RemoveFile, (const std::string&), (override));
  MOCK_METHOD(std::vector<std::string>, ListDirectory,
              (const std::string&, const std::string&), (override));
  MOCK_METHOD(absl::StatusOr<std::unique_ptr<ExclusiveHold>>, HoldExclusive,
              (const std::string&), (override));
};

}  // namespace cbtd::snapshot

#endif  // CBTD_TESTS_SNAPSHOT_FAKES_H_
