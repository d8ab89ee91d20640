// Wrappers that pass every call to a real ObjectStore / ChunkIndex and make
// the N-th call that writes fail instead (before it does anything), to put
// a crash point at each step of a writer: every step of GC, receive and
// migrate is durable and atomic on its own, so a step that fails leaves
// the vault as a kill at that point would.
#ifndef CBTD_TESTS_RECEIVER_FAULT_INJECTION_H_
#define CBTD_TESTS_RECEIVER_FAULT_INJECTION_H_

#include <atomic>
#include <functional>
#include <memory>
#include <string>

#include "receiver/chunk_index.h"
#include "receiver/object_store.h"

namespace cbtd::receiver::testing {

// Counts writing calls shared by the wrappers; the call numbered `fail_at`
// (0-based) fails with UNAVAILABLE "injected fault". -1: never.
struct FaultPlan {
  std::atomic<int> calls{0};
  int fail_at = -1;
  bool fired = false;
  // Called first by every call of the plan: lets a test act at a step.
  std::function<void(std::string_view)> on_call;
  absl::Status Next(const std::string& what) {
    if (on_call) on_call(what);
    if (calls++ != fail_at) return absl::OkStatus();
    fired = true;
    return absl::UnavailableError("injected fault at " + what);
  }
};

// A writer whose Append and Publish are writing calls of the plan.
class FaultyWriter : public ObjectWriter {
 public:
  FaultyWriter(std::unique_ptr<ObjectWriter> inner, std::string key,
               FaultPlan& plan)
      : inner_(std::move(inner)), key_(std::move(key)), plan_(plan) {}
  absl::Status Append(std::string_view data) override {
    if (auto s = plan_.Next("Append " + key_); !s.ok()) return s;
    return inner_->Append(data);
  }
  uint64_t size_bytes() const override { return inner_->size_bytes(); }
  absl::StatusOr<std::string> ReadBack(uint64_t offset,
                                       uint32_t length) override {
    return inner_->ReadBack(offset, length);
  }
  absl::Status Publish() override {
    if (auto s = plan_.Next("Publish " + key_); !s.ok()) return s;
    return inner_->Publish();
  }

 private:
  std::unique_ptr<ObjectWriter> inner_;
  const std::string key_;
  FaultPlan& plan_;
};

class FaultyStore : public ObjectStore {
 public:
  FaultyStore(ObjectStore& inner, FaultPlan& plan)
      : inner_(inner), plan_(plan) {}
  absl::Status Put(const std::string& key, std::string_view data) override {
    if (auto s = plan_.Next("Put " + key); !s.ok()) return s;
    return inner_.Put(key, data);
  }
  absl::Status PutUnsynced(const std::string& key,
                           std::span<const std::string_view> parts) override {
    if (auto s = plan_.Next("PutUnsynced " + key); !s.ok()) return s;
    return inner_.PutUnsynced(key, parts);
  }
  absl::Status SyncAll() override {
    if (auto s = plan_.Next("SyncAll"); !s.ok()) return s;
    return inner_.SyncAll();
  }
  absl::Status Publish(const std::string& key, std::string_view data) override {
    if (auto s = plan_.Next("Publish " + key); !s.ok()) return s;
    return inner_.Publish(key, data);
  }
  absl::Status Delete(const std::string& key) override {
    if (auto s = plan_.Next("Delete " + key); !s.ok()) return s;
    return inner_.Delete(key);
  }
  absl::StatusOr<std::unique_ptr<ObjectWriter>> OpenWriter(
      const std::string& key) override {
    if (auto s = plan_.Next("OpenWriter " + key); !s.ok()) return s;
    auto w = inner_.OpenWriter(key);
    if (!w.ok()) return w.status();
    return std::make_unique<FaultyWriter>(*std::move(w), key, plan_);
  }
  absl::StatusOr<std::string> Get(const std::string& key) override {
    return inner_.Get(key);
  }
  absl::StatusOr<std::unique_ptr<ObjectReader>> OpenReader(
      const std::string& key) override {
    return inner_.OpenReader(key);
  }
  absl::StatusOr<std::string> GetRange(const std::string& key, uint64_t off,
                                       uint32_t len) override {
    return inner_.GetRange(key, off, len);
  }
  absl::StatusOr<bool> Exists(const std::string& key) override {
    return inner_.Exists(key);
  }
  absl::Status Touch(const std::string& key) override {
    return inner_.Touch(key);
  }
  absl::StatusOr<int64_t> ModifiedUnixMs(const std::string& key) override {
    return inner_.ModifiedUnixMs(key);
  }
  absl::StatusOr<std::vector<std::string>> List(
      const std::string& prefix) override {
    return inner_.List(prefix);
  }
  absl::StatusOr<uint64_t> RemoveTempFiles(const std::string& prefix,
                                           int64_t older) override {
    return inner_.RemoveTempFiles(prefix, older);
  }
  absl::StatusOr<std::unique_ptr<StoreLock>> Lock(const std::string& name,
                                                  LockMode mode,
                                                  bool wait) override {
    return inner_.Lock(name, mode, wait);
  }
  absl::Status DeleteLock(const std::string& name) override {
    return inner_.DeleteLock(name);
  }

 private:
  ObjectStore& inner_;
  FaultPlan& plan_;
};

class FaultyIndex : public ChunkIndex {
 public:
  FaultyIndex(ChunkIndex& inner, FaultPlan& plan)
      : inner_(inner), plan_(plan) {}
  absl::StatusOr<std::optional<ChunkLocation>> Find(
      std::string_view tenant, const ChunkHash& id) override {
    return inner_.Find(tenant, id);
  }
  absl::Status AddPack(std::string_view tenant, const PackInfo& pack,
                       std::span<const PackEntry> entries,
                       SessionId session) override {
    if (auto s = plan_.Next("AddPack"); !s.ok()) return s;
    return inner_.AddPack(tenant, pack, entries, session);
  }
  // Session bookkeeping may be lost in a crash by design; not a fault point.
  absl::StatusOr<SessionId> BeginSession(const SessionInfo& info) override {
    return inner_.BeginSession(info);
  }
  absl::Status EndSession(SessionId session) override {
    return inner_.EndSession(session);
  }
  absl::StatusOr<std::optional<ChunkLocation>> FindAndPin(
      SessionId session, std::string_view tenant,
      const ChunkHash& id) override {
    return inner_.FindAndPin(session, tenant, id);
  }
  absl::StatusOr<uint64_t> SessionClock() override {
    return inner_.SessionClock();
  }
  absl::StatusOr<std::vector<SessionInfo>> SessionsSince(
      uint64_t since) override {
    return inner_.SessionsSince(since);
  }
  absl::StatusOr<std::vector<SessionInfo>> OpenSessions() override {
    return inner_.OpenSessions();
  }
  absl::StatusOr<std::vector<std::string>> PinnedPacks(
      std::string_view tenant, uint64_t since) override {
    return inner_.PinnedPacks(tenant, since);
  }
  absl::Status ForgetSessions(uint64_t until) override {
    return inner_.ForgetSessions(until);
  }
  absl::StatusOr<std::vector<std::string>> ListTenants() override {
    return inner_.ListTenants();
  }
  absl::StatusOr<std::vector<PackInfo>> ListPacks(
      std::string_view tenant) override {
    return inner_.ListPacks(tenant);
  }
  absl::Status BeginMark(std::string_view tenant) override {
    if (auto s = plan_.Next("BeginMark"); !s.ok()) return s;
    return inner_.BeginMark(tenant);
  }
  absl::Status MarkLive(std::string_view tenant,
                        std::span<const ChunkHash> ids) override {
    if (auto s = plan_.Next("MarkLive"); !s.ok()) return s;
    return inner_.MarkLive(tenant, ids);
  }
  absl::StatusOr<std::vector<PackUsage>> Usage(
      std::string_view tenant) override {
    return inner_.Usage(tenant);
  }
  absl::StatusOr<std::vector<PackEntry>> LiveEntries(
      std::string_view tenant, std::string_view pack) override {
    return inner_.LiveEntries(tenant, pack);
  }
  absl::Status ReplacePacks(std::string_view tenant,
                            std::span<const std::string> old_packs,
                            const std::optional<PackInfo>& replacement,
                            std::span<const PackEntry> entries,
                            uint64_t pins_since) override {
    if (auto s = plan_.Next("ReplacePacks"); !s.ok()) return s;
    return inner_.ReplacePacks(tenant, old_packs, replacement, entries,
                               pins_since);
  }

 private:
  ChunkIndex& inner_;
  FaultPlan& plan_;
};

}  // namespace cbtd::receiver::testing

#endif  // CBTD_TESTS_RECEIVER_FAULT_INJECTION_H_
