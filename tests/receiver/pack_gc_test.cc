// GC of format-2 vaults: dead packs deleted, sparse packs repacked, every
// step a crash point that loses nothing, readers undisturbed by a repack.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <atomic>
#include <set>
#include <thread>

#include "receiver/gc.h"
#include "receiver/pack.h"
#include "receiver/receive_registration.h"
#include "receiver/retention.h"
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

  // Produces the stream of `bytes` against `base` and opens a session for
  // it (session_), applying every record but the Trailer, or none with
  // `header_only`.
  void StartReceive(const std::string& bytes, const VersionIndex* base,
                    const cbt::ExtentSet& changed, const std::string& id,
                    bool header_only = false) {
    Produce(bytes, base, changed, id);
    open_records_ = records_;
    auto session = ReceiveSession::Open(*vault_, open_records_[0].header());
    ASSERT_TRUE(session.ok()) << session.status();
    session_ = *std::move(session);
    applied_ = header_only ? 1 : open_records_.size() - 1;
    for (size_t i = 1; i < applied_; ++i) {
      ASSERT_TRUE(session_->Apply(open_records_[i]).ok()) << i;
    }
  }
  // Applies the rest, the Trailer included, and ends the session.
  void FinishReceive() {
    for (size_t i = applied_; i < open_records_.size(); ++i) {
      ASSERT_TRUE(session_->Apply(open_records_[i]).ok()) << i;
    }
    ASSERT_TRUE(session_->committed());
    session_.reset();
  }

  std::vector<stream::Record> open_records_;
  size_t applied_ = 0;
  std::unique_ptr<ReceiveSession> session_;
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

// A receive that fails at any of its writing steps (a pack write, a sync,
// an index update, the publish), with several packs in flight and a batch
// being indexed in the background, creates no version and loses nothing;
// the same stream sent again is stored whole.
TEST_F(PackGcTest, ReceiveFailingAtEveryStepLeavesNoVersionAndLosesNothing) {
  const std::string v3 = RandomVolume(32 * kChunk, 77);
  for (int n = 0;; ++n) {
    SCOPED_TRACE(::testing::Message() << "step " << n);
    ResetVault();
    MakeVersions(4);
    FaultPlan plan;
    plan.fail_at = n;
    FaultyStore store(*store_, plan);
    FaultyIndex index(*vault_->chunk_index(), plan);
    Vault faulty(store, &index);
    faulty.set_pack_target_bytes(2 * kChunk);  // 16 packs
    faulty.set_sync_batch_bytes(5 * kChunk);   // indexed 3 packs at a time
    std::string failed_at;
    plan.on_call = [&](std::string_view what) {
      if (plan.calls == plan.fail_at) failed_at = what;
    };
    transport::StreamReader reader(
        transport::StringByteSource(Produce(v3, nullptr, {}, "v3")));
    auto received = ReceiveStream(faulty, reader);
    // The index's summary is written after the publish, best effort: a
    // fault there costs the summary only (a listing reads the index).
    const bool summary_only =
        failed_at.find("/summaries/") != std::string::npos;
    EXPECT_EQ(received.ok(), !plan.fired || summary_only)
        << received.status() << " (fault at " << failed_at << ")";
    if (plan.fired && !summary_only) {
      EXPECT_THAT(std::string(received.status().message()),
                  ::testing::HasSubstr("injected fault"));
      EXPECT_THAT(*vault_->ListVersions(kVol), ::testing::ElementsAre("v2"));
      ASSERT_TRUE(Receive(Produce(v3, nullptr, {}, "v3")).ok());
    }
    EXPECT_TRUE(RestoresTo("v3", v3));
    // What the failed receive wrote and never indexed is GC's.
    ASSERT_TRUE(CollectGarbage(*vault_, {.grace_ms = 0}).ok());
    ExpectSound();
    if (!plan.fired) break;
    ASSERT_LT(n, 200) << "the receive never finished";
  }
}

// Reading many chunks at once (adjacent records of a pack in one ranged
// read) gives what reading them one by one gives, in the order asked,
// across packs, with repeats and out of pack order; a damaged record in
// the middle of a run is named.
TEST_F(PackGcTest, ReadStoredChunksMatchesOneByOne) {
  vault_->set_pack_target_bytes(5 * kChunk);
  MakeVersions(7);
  std::vector<ChunkHash> asked;
  for (const ChunkHash& h : Index("v2").entries) {
    if (!transport::IsZeroEntry(h)) asked.push_back(h);
  }
  asked.insert(asked.end(), asked.rbegin(), asked.rend());  // back again
  asked.push_back(asked[3]);
  auto many = vault_->ReadStoredChunks("host1", asked);
  ASSERT_TRUE(many.ok()) << many.status();
  ASSERT_EQ(many->size(), asked.size());
  for (size_t k = 0; k < asked.size(); ++k) {
    auto one = vault_->ReadStoredChunk("host1", asked[k]);
    ASSERT_TRUE(one.ok()) << one.status();
    EXPECT_EQ((*many)[k].data, one->data) << k;
  }
  auto loc = vault_->chunk_index()->Find("host1", asked[2]);
  ASSERT_TRUE(loc.ok() && loc->has_value());
  const std::string pack = Vault::PackKey("host1", (*loc)->pack);
  std::string bytes = *store_->Get(pack);
  bytes[(*loc)->offset_bytes + (*loc)->length_bytes / 2] ^= 0x20;
  ASSERT_TRUE(store_->Put(pack, bytes).ok());
  auto damaged = vault_->ReadStoredChunks("host1", asked);
  EXPECT_TRUE(absl::IsDataLoss(damaged.status())) << damaged.status();
  EXPECT_THAT(std::string(damaged.status().message()),
              ::testing::HasSubstr("chunk " + asked[2].ToHex() + " in pack"));
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

// GC runs while a receive does (docs/vault.md, "GC while receiving").
// v3 carries v1's bytes again: its chunks are in v1's pack, which v2 keeps
// only partly live once v1 is pruned. A GC in the middle of the receive
// must neither repack that pack (dropping the chunks v3 has found there)
// nor delete it.
TEST_F(PackGcTest, GcDuringReceiveSparesThePacksTheReceiveRelies) {
  for (const size_t rewritten : {24u, 32u}) {  // sparse, then dead
    SCOPED_TRACE(rewritten);
    ResetVault();
    MakeVersions(rewritten);
    StartReceive(v1_, nullptr, {}, "v3");
    auto gc = CollectGarbage(*vault_, {.grace_ms = 0});
    ASSERT_TRUE(gc.ok()) << gc.status();
    EXPECT_EQ(gc->packs_pinned, 1u);
    EXPECT_EQ(gc->packs_repacked + gc->packs_deleted, 0u);
    FinishReceive();
    EXPECT_TRUE(RestoresTo("v3", v1_));
    // The session ended: the next GC is free to repack what v2 and v3 no
    // longer fill.
    auto again = CollectGarbage(*vault_, {.grace_ms = 0, .repack_below = 1});
    ASSERT_TRUE(again.ok()) << again.status();
    EXPECT_EQ(again->packs_pinned, 0u);
    EXPECT_TRUE(RestoresTo("v3", v1_));
    ExpectSound();
  }
}

// A receive's packs are written before the index knows them (one sync for
// many): GC must not take them for what a crashed receive left.
TEST_F(PackGcTest, GcDuringReceiveKeepsItsUnindexedPacks) {
  MakeVersions(4);
  vault_->set_pack_target_bytes(2 * kChunk);  // a pack every few chunks
  const std::string v3 = RandomVolume(32 * kChunk, 77);
  StartReceive(v3, nullptr, {}, "v3");
  auto gc = CollectGarbage(*vault_, {.grace_ms = 0});
  ASSERT_TRUE(gc.ok()) << gc.status();
  EXPECT_EQ(gc->orphan_packs_removed, 0u);
  FinishReceive();
  EXPECT_TRUE(RestoresTo("v3", v3));
  ExpectSound();
}

// A version published after GC listed the versions, on a base deleted
// before GC read it, is marked all the same (from the sessions that ended
// since the GC began): here the receive commits and its base is pruned
// between the listing and the mark.
TEST_F(PackGcTest, VersionPublishedDuringGcIsMarked) {
  MakeVersions(4);  // v2 only
  std::string v3 = v2_;
  cbt::ExtentSet changed;
  Scribble(v3, changed, 3, 11);
  const VersionIndex base = Index("v2");
  StartReceive(v3, &base, changed, "v3");
  // The hook runs at GC's first mark: after the listing, before v2 is read.
  bool ran = false;
  FaultPlan plan;
  plan.on_call = [&](std::string_view op) {
    if (op != "BeginMark" || ran) return;
    ran = true;
    FinishReceive();
    ASSERT_TRUE(vault_->DeleteIndex(kVol, "v2").ok());
  };
  FaultyStore store(*store_, plan);
  FaultyIndex index(*vault_->chunk_index(), plan);
  Vault hooked(store, &index);
  auto gc = CollectGarbage(hooked, {.grace_ms = 0, .repack_below = 1});
  ASSERT_TRUE(gc.ok()) << gc.status();
  ASSERT_TRUE(ran);
  EXPECT_TRUE(RestoresTo("v3", v3));
  auto again = CollectGarbage(*vault_, {.grace_ms = 0, .repack_below = 1});
  ASSERT_TRUE(again.ok()) << again.status();
  EXPECT_TRUE(RestoresTo("v3", v3));
}

// Prune keeps a version a running receive builds on, and says so.
TEST_F(PackGcTest, PruneKeepsTheBaseOfARunningReceive) {
  MakeVersions(4);
  std::string v3 = v2_;
  cbt::ExtentSet changed;
  Scribble(v3, changed, 3, 12);
  const VersionIndex base = Index("v2");
  StartReceive(v3, &base, changed, "v3", /*header_only=*/true);
  absl::Status refused = vault_->DeleteIndex(kVol, "v2");
  EXPECT_EQ(refused.code(), absl::StatusCode::kFailedPrecondition) << refused;
  EXPECT_THAT(refused.message(), ::testing::HasSubstr("base of a receive"));
  // A newer version, so that keep-last 1 would remove v2.
  transport::ProducerOptions later;
  later.created_unix_ms = 1800000000000;
  ASSERT_TRUE(Receive(Produce(v2_, nullptr, {}, "v2b", later)).ok());
  auto pruned = Prune(*vault_, {kVol}, {.keep_last = 1}, false);
  ASSERT_TRUE(pruned.ok()) << pruned.status();
  ASSERT_EQ(pruned->in_use.size(), 1u);
  EXPECT_EQ(pruned->in_use[0].second, "v2");
  EXPECT_TRUE(pruned->removed.empty());
  EXPECT_TRUE(RestoresTo("v2", v2_));
  FinishReceive();
  EXPECT_TRUE(RestoresTo("v3", v3));
  EXPECT_TRUE(vault_->DeleteIndex(kVol, "v2").ok());
  EXPECT_TRUE(RestoresTo("v3", v3));
}

// A session a crash left open (its lock free) is ended by the next GC,
// which still spares its pins that once; the GC after forgets them.
TEST_F(PackGcTest, SessionACrashLeftOpenIsEndedByGc) {
  MakeVersions(24);
  auto packs = vault_->chunk_index()->ListPacks("host1");
  ASSERT_TRUE(packs.ok() && !packs->empty());
  // What a killed receive leaves: an open session, a pin, no lock held.
  ChunkIndex& index = *vault_->chunk_index();
  auto id = index.BeginSession({.tenant = "host1",
                                .lock_name = "receive-dead",
                                .host = "host1",
                                .volume = "vol1",
                                .version = "v9"});
  ASSERT_TRUE(id.ok()) << id.status();
  const std::vector<ChunkHash> live = Index("v2").entries;
  ASSERT_FALSE(live.empty());
  auto found = index.FindAndPin(*id, "host1", live.back());
  ASSERT_TRUE(found.ok() && found->has_value());
  auto gc = CollectGarbage(*vault_, {.grace_ms = 0});
  ASSERT_TRUE(gc.ok()) << gc.status();
  EXPECT_EQ(gc->dead_sessions_ended, 1u);
  EXPECT_EQ(gc->packs_pinned, 1u);
  auto open = index.OpenSessions();
  ASSERT_TRUE(open.ok());
  EXPECT_TRUE(open->empty());
  auto again = CollectGarbage(*vault_, {.grace_ms = 0});
  ASSERT_TRUE(again.ok()) << again.status();
  EXPECT_EQ(again->packs_pinned, 0u);
  EXPECT_EQ(again->packs_repacked, 1u);
  ExpectSound();
}

// Receives and GCs at the same time, over and over: incrementals with new
// and old data, the oldest versions pruned, GC repacking everything it can.
// Every version left restores byte-equal.
TEST_F(PackGcTest, ReceivesAndGcTogetherLoseNothing) {
  vault_->set_pack_target_bytes(4 * kChunk);
  std::map<std::string, std::string> contents;
  std::string vol = RandomVolume(48 * kChunk, 3);
  ASSERT_TRUE(Receive(Produce(vol, nullptr, {}, "r00")).ok());
  contents["r00"] = vol;
  std::atomic<bool> stop{false};
  std::atomic<int> runs{0}, pinned{0};
  std::thread gc([&] {
    while (!stop) {
      auto r = CollectGarbage(*vault_,
                              {.grace_ms = 0, .wait = true, .repack_below = 1});
      ASSERT_TRUE(r.ok()) << r.status();
      ++runs;
      pinned += r->packs_pinned;
    }
  });
  std::string last = "r00";
  for (int i = 1; i <= 16; ++i) {
    char id[8];
    std::snprintf(id, sizeof(id), "r%02d", i);
    cbt::ExtentSet changed;
    Scribble(vol, changed, 6, 100 + i);
    if (i % 4 == 0) {  // bring back an old version's bytes
      vol = contents.begin()->second;
      changed.Add(0, vol.size());
    }
    const VersionIndex base = Index(last);
    auto r = Receive(Produce(vol, &base, changed, id));
    ASSERT_TRUE(r.ok()) << id << ": " << r.status();
    contents[id] = vol;
    last = id;
    while (contents.size() > 3) {
      const std::string oldest = contents.begin()->first;
      ASSERT_TRUE(vault_->DeleteIndex(kVol, oldest).ok());
      contents.erase(contents.begin());
    }
    for (const auto& [v, bytes] : contents) EXPECT_TRUE(RestoresTo(v, bytes));
  }
  stop = true;
  gc.join();
  EXPECT_GT(runs.load(), 1);
  for (const auto& [v, bytes] : contents) EXPECT_TRUE(RestoresTo(v, bytes));
  auto report = VerifyVault(*vault_, {});
  ASSERT_TRUE(report.ok()) << report.status();
  EXPECT_TRUE(report->ok());
}

}  // namespace
}  // namespace cbtd::receiver
