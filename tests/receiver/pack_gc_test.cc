// GC of format-2 vaults: dead packs deleted, sparse packs repacked, every
// step a crash point that loses nothing, readers undisturbed by a repack.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <atomic>
#include <set>
#include <thread>

#include "receiver/gc.h"
#include "receiver/pack.h"
#include "receiver/verify.h"
#include "tests/receiver/fault_injection.h"
#include "tests/receiver/vault_fixture.h"

namespace cbtd::receiver {
namespace {

using testing::FaultPlan;
using testing::FaultyIndex;
using testing::FaultyStore;
using testing::VaultFixture;

class PackGcTest : public VaultFixture {
 protected:
  // v1: a full of 32 chunks; v2: the same with the first `rewritten`
  // chunks replaced. Then v1 is pruned: its pack keeps 32 - rewritten live
  // chunks.
  void MakeVersions(size_t rewritten) {
    v1_ = RandomVolume(32 * kChunk, 5);
    ASSERT_TRUE(Receive(Produce(v1_, nullptr, {}, "v1")).ok());
    v2_ = v1_;
    std::mt19937 rng(9);
    for (size_t i = 0; i < rewritten * kChunk; ++i) {
      v2_[i] = static_cast<char>(rng());
    }
    cbt::ExtentSet changed;
    changed.Add(0, rewritten * kChunk);
    const VersionIndex base = Index("v1");
    ASSERT_TRUE(Receive(Produce(v2_, &base, changed, "v2")).ok());
    ASSERT_TRUE(vault_->DeleteIndex(kVol, "v1").ok());
  }

  std::set<std::string> PackObjects() {
    std::set<std::string> out;
    for (const std::string& k : Keys("tenants/host1/packs")) out.insert(k);
    return out;
  }
  std::set<std::string> IndexedPacks() {
    auto packs = vault_->chunk_index()->ListPacks("host1");
    EXPECT_TRUE(packs.ok()) << packs.status();
    std::set<std::string> out;
    for (const PackInfo& p : *packs) {
      out.insert(Vault::PackKey("host1", p.pack));
    }
    return out;
  }

  // v2 restores byte-equal, verify finds nothing, every indexed pack
  // exists and no pack object is unknown to the index.
  void ExpectSound() {
    EXPECT_TRUE(RestoresTo("v2", v2_));
    auto report = VerifyVault(*vault_, {});
    ASSERT_TRUE(report.ok()) << report.status();
    EXPECT_TRUE(report->ok());
    EXPECT_EQ(PackObjects(), IndexedPacks());
  }

  std::string v1_, v2_;
};

TEST_F(PackGcTest, SparsePackIsRepackedAndTheRestFreed) {
  MakeVersions(24);  // v1's pack: 8 of 32 chunks live
  const auto before = PackObjects();
  ASSERT_EQ(before.size(), 2u);
  auto gc = CollectGarbage(*vault_, {.grace_ms = 0});
  ASSERT_TRUE(gc.ok()) << gc.status();
  EXPECT_EQ(gc->packs_seen, 2u);
  EXPECT_EQ(gc->packs_repacked, 1u);
  EXPECT_EQ(gc->packs_written, 1u);
  EXPECT_EQ(gc->packs_deleted, 0u);
  EXPECT_GT(gc->bytes_rewritten, 0u);
  EXPECT_GT(gc->bytes_reclaimed, gc->bytes_rewritten);
  const auto after = PackObjects();
  EXPECT_EQ(after.size(), 2u);
  EXPECT_NE(after, before) << "the sparse pack was not replaced";
  ExpectSound();
  // A second GC finds nothing to do.
  gc = CollectGarbage(*vault_, {.grace_ms = 0});
  ASSERT_TRUE(gc.ok()) << gc.status();
  EXPECT_EQ(gc->packs_repacked + gc->packs_deleted, 0u);
  EXPECT_EQ(PackObjects(), after);
}

TEST_F(PackGcTest, DeadPackIsDeleted) {
  MakeVersions(32);  // nothing of v1 is live
  auto gc = CollectGarbage(*vault_, {.grace_ms = 0});
  ASSERT_TRUE(gc.ok()) << gc.status();
  EXPECT_EQ(gc->packs_deleted, 1u);
  EXPECT_EQ(gc->packs_repacked, 0u);
  EXPECT_EQ(PackObjects().size(), 1u);
  ExpectSound();
}

TEST_F(PackGcTest, MostlyLivePackIsLeftAlone) {
  MakeVersions(4);  // 28 of 32 live: above the threshold
  const auto before = PackObjects();
  auto gc = CollectGarbage(*vault_, {.grace_ms = 0});
  ASSERT_TRUE(gc.ok()) << gc.status();
  EXPECT_EQ(gc->packs_repacked + gc->packs_deleted, 0u);
  EXPECT_EQ(PackObjects(), before);
}

TEST_F(PackGcTest, GraceSparesRecentPacks) {
  MakeVersions(32);
  const auto before = PackObjects();
  auto gc = CollectGarbage(*vault_, {.grace_ms = 3600 * 1000});
  ASSERT_TRUE(gc.ok()) << gc.status();
  EXPECT_EQ(gc->packs_deleted, 0u);
  EXPECT_EQ(gc->packs_in_grace, 1u);
  EXPECT_EQ(PackObjects(), before);
}

TEST_F(PackGcTest, DryRunChangesNothing) {
  MakeVersions(24);
  // (The chunk index holds GC's mark, so only it may change.)
  auto objects = [&] {
    auto all = Listing();
    std::erase_if(all, [](const auto& kv) {
      return kv.first.find("/vault/index/") != std::string::npos;
    });
    return all;
  };
  const auto before = objects();
  const auto packs = IndexedPacks();
  auto gc = CollectGarbage(*vault_, {.grace_ms = 0, .dry_run = true});
  ASSERT_TRUE(gc.ok()) << gc.status();
  EXPECT_EQ(gc->packs_repacked, 1u);
  EXPECT_EQ(objects(), before);
  EXPECT_EQ(IndexedPacks(), packs);
  ExpectSound();
}

TEST_F(PackGcTest, UnindexedPackObjectIsRemovedAsOrphan) {
  MakeVersions(4);
  // What a receive killed between writing a pack and indexing it leaves.
  PackBuilder b;
  const std::string orphan = Vault::PackKey("host1", NewPackName());
  ASSERT_TRUE(store_->Put(orphan, JoinParts(b.Seal())).ok());
  auto gc = CollectGarbage(*vault_, {.grace_ms = 0});
  ASSERT_TRUE(gc.ok()) << gc.status();
  EXPECT_EQ(gc->orphan_packs_removed, 1u);
  EXPECT_FALSE(PackObjects().contains(orphan));
  ExpectSound();
}

// A GC that dies at any of its writing steps (each step is atomic and
// durable, so a failure there leaves what a kill would) loses nothing,
// and the next GC finishes the job.
TEST_F(PackGcTest, GcInterruptedAtEveryStepLosesNothing) {
  for (const bool repack : {true, false}) {
    for (int n = 0;; ++n) {
      SCOPED_TRACE(::testing::Message()
                   << "repack " << repack << " step " << n);
      ResetVault();
      MakeVersions(repack ? 24 : 32);
      FaultPlan plan;
      plan.fail_at = n;
      FaultyStore store(*store_, plan);
      FaultyIndex index(*vault_->chunk_index(), plan);
      Vault faulty(store, &index);
      auto gc = CollectGarbage(faulty, {.grace_ms = 0});
      EXPECT_EQ(gc.ok(), !plan.fired) << gc.status();
      EXPECT_TRUE(RestoresTo("v2", v2_));
      auto again = CollectGarbage(*vault_, {.grace_ms = 0});
      ASSERT_TRUE(again.ok()) << again.status();
      ExpectSound();
      EXPECT_EQ(PackObjects().size(), repack ? 2u : 1u);
      if (!plan.fired) break;
      ASSERT_LT(n, 50) << "GC never finished";
    }
  }
}

// A restore running while GC repacks every pack over and over always reads
// the right bytes: a reader that finds a pack gone looks the chunk up again.
TEST_F(PackGcTest, RestoresDuringRepackReadTheRightBytes) {
  MakeVersions(24);
  std::atomic<bool> stop{false};
  std::atomic<int> repacks{0};
  std::thread gc([&] {
    while (!stop) {
      auto r = CollectGarbage(*vault_,
                              {.grace_ms = 0, .wait = true, .repack_below = 1});
      ASSERT_TRUE(r.ok()) << r.status();
      repacks += r->packs_repacked;
    }
  });
  for (int i = 0; i < 20; ++i) EXPECT_TRUE(RestoresTo("v2", v2_)) << i;
  stop = true;
  gc.join();
  EXPECT_GT(repacks.load(), 0);
  ExpectSound();
}

}  // namespace
}  // namespace cbtd::receiver
