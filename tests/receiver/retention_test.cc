#include "receiver/retention.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <thread>

#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "receiver/gc.h"
#include "receiver/vault_restore.h"
#include "receiver/verify.h"
#include "tests/receiver/vault_fixture.h"

namespace cbtd::receiver {

using restore::OpenRestoreTarget;
using restore::RestoreOptions;
namespace {

using ::testing::HasSubstr;
using testing::VaultFixture;

constexpr int64_t kHour = 3600000;
constexpr int64_t kDay = 24 * kHour;
// 2023-11-14 22:13:20 UTC, a Tuesday.
constexpr int64_t kT0 = 1700000000000;

struct RetentionRow {
  std::string name;
  std::vector<VersionStamp> versions;
  RetentionPolicy policy;
  std::set<std::string> keep;
};

class VersionsToKeepTest : public ::testing::TestWithParam<RetentionRow> {};

TEST_P(VersionsToKeepTest, KeepsExactlyTheExpectedVersions) {
  EXPECT_EQ(VersionsToKeep(GetParam().versions, GetParam().policy),
            GetParam().keep);
}

INSTANTIATE_TEST_SUITE_P(
    Table, VersionsToKeepTest,
    ::testing::Values(
        RetentionRow{"KeepLastTwo",
                     {{"a", kT0}, {"b", kT0 + 1}, {"c", kT0 + 2}},
                     {.keep_last = 2},
                     {"b", "c"}},
        RetentionRow{"ProtectedAlwaysKept",
                     {{"a", kT0, true}, {"b", kT0 + 1}, {"c", kT0 + 2}},
                     {.keep_last = 1},
                     {"a", "c"}},
        RetentionRow{"HourlyKeepsNewestPerHour",
                     {{"a", kT0},
                      {"b", kT0 + 10},
                      {"c", kT0 + kHour},
                      {"d", kT0 + kHour + 5},
                      {"e", kT0 + 2 * kHour}},
                     {.hourly = 2},
                     {"e", "d"}},
        RetentionRow{"DailyOverThreeDays",
                     {{"a", kT0},
                      {"b", kT0 + kDay},
                      {"c", kT0 + kDay + kHour},
                      {"d", kT0 + 2 * kDay}},
                     {.daily = 3},
                     {"a", "c", "d"}},
        RetentionRow{"WeeklyAndMonthly",
                     // kT0 is a Tuesday: +6 days is next Monday (new week).
                     {{"a", kT0},
                      {"b", kT0 + 5 * kDay},
                      {"c", kT0 + 6 * kDay},
                      {"d", kT0 + 40 * kDay}},
                     {.weekly = 2, .monthly = 1},
                     {"c", "d"}},
        RetentionRow{"CombinedRulesUnion",
                     {{"a", kT0}, {"b", kT0 + kDay}, {"c", kT0 + 2 * kDay}},
                     {.keep_last = 1, .daily = 2},
                     {"b", "c"}}),
    [](const auto& param_info) { return param_info.param.name; });

class RetentionVaultTest : public VaultFixture {
 protected:
  // v1 .. v{count}, one day apart, each a small incremental.
  void MakeVersions(int count) {
    std::string vol = RandomVolume(24 * kChunk, 3);
    const VersionIndex* base = nullptr;
    VersionIndex prev;
    for (int v = 1; v <= count; ++v) {
      cbt::ExtentSet changed;
      if (v > 1) Scribble(vol, changed, 3, 50 + v);
      transport::ProducerOptions opts;
      opts.created_unix_ms = kT0 + v * kDay;
      auto r = Receive(Produce(vol, base, changed, absl::StrCat("v", v), opts));
      ASSERT_TRUE(r.ok()) << r.status();
      prev = Index(absl::StrCat("v", v));
      base = &prev;
      states_.push_back(vol);
    }
  }
  bool Restores(int v) {
    const std::string path = absl::StrCat(dir_, "/r", v, "-", ++restores_);
    auto target = OpenRestoreTarget(path);
    if (!target.ok()) return false;
    RestoreOptions opts;
    opts.verify = true;
    auto s =
        RestoreVersion(*vault_, kVol, absl::StrCat("v", v), **target, opts);
    if (!s.ok()) {
      ADD_FAILURE() << s.status();
      return false;
    }
    return ReadWholeFile(path) == states_[v - 1];
  }
  std::vector<std::string> states_;
  int restores_ = 0;
};

TEST_F(RetentionVaultTest, PruneAndGcKeepRetainedVersionsRestorable) {
  MakeVersions(6);
  ASSERT_TRUE(vault_->SetProtected(kVol, "v2", true).ok());
  const size_t packs_before = Keys("tenants/host1/packs").size();
  auto pruned = Prune(*vault_, {kVol}, {.keep_last = 2}, false);
  ASSERT_TRUE(pruned.ok()) << pruned.status();
  EXPECT_EQ(Versions(), (std::vector<std::string>{"v2", "v5", "v6"}));
  auto gc = CollectGarbage(*vault_, {.grace_ms = 0});
  ASSERT_TRUE(gc.ok()) << gc.status();
  EXPECT_GT(gc->bytes_reclaimed, 0u) << "nothing was collected";
  EXPECT_EQ(Keys("tenants/host1/packs").size(),
            packs_before - gc->packs_deleted - gc->packs_repacked +
                gc->packs_written);
  for (int v : {2, 5, 6}) EXPECT_TRUE(Restores(v)) << "v" << v;
  auto report = VerifyVault(*vault_, {});
  ASSERT_TRUE(report.ok());
  EXPECT_TRUE(report->ok());
}

// An NBD export's hold keeps a version while its lease runs; a lapsed
// lease (the export died without releasing it) no longer does.
TEST_F(RetentionVaultTest, HeldVersionIsKeptUntilItsHoldLapses) {
  MakeVersions(4);
  const int64_t now = absl::ToUnixSeconds(absl::Now());
  ASSERT_TRUE(vault_->SetHeldUntil(kVol, "v1", now + 600).ok());
  ASSERT_TRUE(vault_->SetHeldUntil(kVol, "v2", now - 1).ok());
  EXPECT_TRUE(absl::IsNotFound(vault_->SetHeldUntil(kVol, "v9", now + 600)));
  auto pruned = Prune(*vault_, {kVol}, {.keep_last = 1}, false);
  ASSERT_TRUE(pruned.ok()) << pruned.status();
  EXPECT_EQ(Versions(), (std::vector<std::string>{"v1", "v4"}));
  EXPECT_TRUE(Restores(1));
  // Released: the next prune removes it, and its hold record with it.
  ASSERT_TRUE(vault_->SetHeldUntil(kVol, "v1", 0).ok());
  ASSERT_TRUE(vault_->SetHeldUntil(kVol, "v4", now + 600).ok());
  ASSERT_TRUE(Prune(*vault_, {kVol}, {.keep_last = 1}, false).ok());
  EXPECT_EQ(Versions(), (std::vector<std::string>{"v4"}));
  EXPECT_TRUE(Keys("hosts/host1/vol1/held/v1").empty());
  EXPECT_TRUE(Keys("hosts/host1/vol1/held/v2").empty());
}

TEST_F(RetentionVaultTest, PruneRefusesPolicyThatKeepsNothing) {
  MakeVersions(2);
  auto pruned = Prune(*vault_, {kVol}, {}, false);
  ASSERT_FALSE(pruned.ok());
  EXPECT_THAT(std::string(pruned.status().message()),
              HasSubstr("keeps nothing"));
  EXPECT_EQ(Versions(), (std::vector<std::string>{"v1", "v2"}));
}

TEST_F(RetentionVaultTest, GcGraceSparesRecentUnreferencedChunks) {
  MakeVersions(3);
  // v2's and v3's packs hold only chunks no remaining version references.
  ASSERT_TRUE(vault_->DeleteIndex(kVol, "v3").ok());
  ASSERT_TRUE(vault_->DeleteIndex(kVol, "v2").ok());
  const auto before = Keys("tenants/host1/packs");
  auto gc = CollectGarbage(*vault_, {.grace_ms = 3600 * 1000});
  ASSERT_TRUE(gc.ok());
  EXPECT_EQ(gc->packs_deleted + gc->packs_repacked, 0u);
  EXPECT_EQ(gc->packs_in_grace, 2u);
  EXPECT_EQ(Keys("tenants/host1/packs"), before);
  gc = CollectGarbage(*vault_, {.grace_ms = 0});
  ASSERT_TRUE(gc.ok());
  EXPECT_EQ(gc->packs_deleted, 2u);
}

// GC runs while a receive is open (docs/vault.md, "GC while receiving"),
// and the receive's base cannot be pruned under it.
TEST_F(RetentionVaultTest, GcRunsWhileAReceiveIsOpenAndItsBaseIsKept) {
  MakeVersions(1);
  ASSERT_TRUE(Prune(*vault_, {kVol}, {.keep_last = 1}, false).ok());
  // A receive of v2 that references v1's chunks is in flight.
  std::string vol = states_[0];
  cbt::ExtentSet changed;
  Scribble(vol, changed, 2, 77);
  VersionIndex v1 = Index("v1");
  Produce(vol, &v1, changed, "v2");
  auto session = ReceiveSession::Open(*vault_, records_[0].header());
  ASSERT_TRUE(session.ok());
  absl::Status refused = vault_->DeleteIndex(kVol, "v1");
  EXPECT_TRUE(absl::IsFailedPrecondition(refused)) << refused;
  auto gc = CollectGarbage(*vault_, {.grace_ms = 0, .wait = false});
  ASSERT_TRUE(gc.ok()) << gc.status();
  for (size_t i = 1; i < records_.size(); ++i) {
    ASSERT_TRUE((*session)->Apply(records_[i]).ok());
  }
  ASSERT_TRUE((*session)->committed());
  session->reset();
  // Now v1 can go; v2 keeps what it shares with it.
  ASSERT_TRUE(vault_->DeleteIndex(kVol, "v1").ok());
  gc = CollectGarbage(*vault_, {.grace_ms = 0});
  ASSERT_TRUE(gc.ok()) << gc.status();
  states_.push_back(vol);
  EXPECT_TRUE(Restores(2));
}

TEST_F(RetentionVaultTest, ASecondGcRefusesWhileOneRuns) {
  MakeVersions(1);
  auto running = store_->Lock(kGcRunLockName, LockMode::kExclusive, false);
  ASSERT_TRUE(running.ok()) << running.status();
  auto gc = CollectGarbage(*vault_, {.grace_ms = 0, .wait = false});
  ASSERT_TRUE(absl::IsUnavailable(gc.status())) << gc.status();
  EXPECT_THAT(gc.status().message(),
              ::testing::HasSubstr("another gc is running"));
  EXPECT_THAT(gc.status().message(), ::testing::HasSubstr("--wait"));
  running->reset();
  EXPECT_TRUE(CollectGarbage(*vault_, {.grace_ms = 0}).ok());
}

TEST_F(RetentionVaultTest, ConcurrentGcNeverLosesAChunkAReceiveReferences) {
  MakeVersions(1);
  std::atomic<bool> stop{false};
  std::atomic<int> gcs{0};
  // GC (waiting for the lock) in a loop while incrementals arrive, each
  // followed by pruning all but the newest version.
  absl::Status gc_error;
  std::thread gc_thread([&] {
    while (!stop && gc_error.ok()) {
      auto gc = CollectGarbage(*vault_, {.grace_ms = 0, .wait = true});
      if (!gc.ok()) gc_error = gc.status();
      ++gcs;
    }
  });
  // Failures are collected, not asserted, until the GC thread is joined:
  // an assertion returning here would leave it running (std::terminate).
  absl::Status error;
  std::string vol = states_[0];
  for (int v = 2; v <= 6 && error.ok(); ++v) {
    cbt::ExtentSet changed;
    Scribble(vol, changed, 3, 90 + v);
    VersionIndex base = Index(absl::StrCat("v", v - 1));
    transport::ProducerOptions opts;
    opts.created_unix_ms = kT0 + v * kDay;
    auto r = Receive(Produce(vol, &base, changed, absl::StrCat("v", v), opts));
    if (!r.ok()) {
      error = absl::Status(
          r.status().code(),
          absl::StrCat("receive of v", v, ": ", r.status().message()));
      break;
    }
    states_.push_back(vol);
    auto pruned = Prune(*vault_, {kVol}, {.keep_last = 1}, false);
    if (!pruned.ok()) {
      error = absl::Status(
          pruned.status().code(),
          absl::StrCat("prune after v", v, ": ", pruned.status().message()));
    }
  }
  stop = true;
  gc_thread.join();
  ASSERT_TRUE(error.ok()) << error;
  ASSERT_TRUE(gc_error.ok()) << gc_error;
  EXPECT_GT(gcs.load(), 0);
  EXPECT_TRUE(Restores(6));
}

TEST_F(RetentionVaultTest, VerifyReportsDamagedAndMissingChunksByVersion) {
  MakeVersions(3);
  // Damage a chunk only v3 has, and remove one every version has.
  const VersionIndex v2 = Index("v2"), v3 = Index("v3");
  std::optional<ChunkHash> only_v3, shared;
  for (size_t i = 0; i < v3.entries.size(); ++i) {
    if (transport::IsZeroEntry(v3.entries[i])) continue;
    if (v3.entries[i] != v2.entries[i] && !only_v3) only_v3 = v3.entries[i];
    if (v3.entries[i] == v2.entries[i] && !shared) shared = v3.entries[i];
  }
  ASSERT_TRUE(only_v3 && shared);
  DamageChunk(*only_v3);
  const auto damaged = Listing();
  auto report = VerifyVault(*vault_, {});
  ASSERT_TRUE(report.ok());
  ASSERT_EQ(report->damaged.size(), 1u);
  EXPECT_EQ(report->damaged[0].version, "v3");
  EXPECT_THAT(report->damaged[0].reason, HasSubstr(only_v3->ToHex()));
  LoseChunk(*shared);
  const auto lost = Listing();
  report = VerifyVault(*vault_, {});
  ASSERT_TRUE(report.ok());
  EXPECT_EQ(report->damaged.size(), 3u);
  // Verify never repairs: every object is still there, unchanged.
  EXPECT_EQ(Listing(), lost);
  EXPECT_NE(Listing(), damaged);  // (the index forgot the lost chunk)
}

}  // namespace
}  // namespace cbtd::receiver
