// The ChunkIndex contract (receiver/chunk_index.h), written against the
// interface so every implementation runs the same tests: each is one
// IndexFactory in the INSTANTIATE_TEST_SUITE_P below. Then what only the
// SQLite implementation promises (receiver/sqlite_chunk_index.h).
//
// Built twice: receiver_chunk_index_test (SQLite) and, with
// CBTD_TEST_RADOS, receiver_rados_chunk_index_test (receiver/
// rados_chunk_index.h on a real Ceph cluster the binary starts).
#include <sqlite3.h>

#include <array>
#include <filesystem>
#include <fstream>
#include <functional>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/status/status.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "receiver/chunk_index.h"
#include "receiver/sqlite_chunk_index.h"
#include "tests/common/temp_dir.h"
#ifdef CBTD_TEST_RADOS
#include "receiver/rados_chunk_index.h"
#include "receiver/rados_object_store.h"
#include "tests/common/ceph_environment.h"
#endif

namespace cbtd::receiver {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::IsEmpty;
using ::testing::Optional;

ChunkHash Id(uint32_t n) {
  std::array<uint8_t, ChunkHash::kSize> b{};
  for (size_t i = 0; i < b.size(); ++i)
    b[i] = static_cast<uint8_t>(n >> (i % 4 * 8)) ^ static_cast<uint8_t>(i);
  return ChunkHash(b);
}

PackInfo Pack(std::string name, uint64_t chunk_count = 0) {
  return PackInfo{.pack = std::move(name),
                  .size_bytes = 1 << 20,
                  .chunk_count = chunk_count,
                  .added_unix_ms = 1700000000000};
}

ChunkLocation At(std::string pack, uint64_t offset, uint32_t length) {
  return ChunkLocation{
      .pack = std::move(pack), .offset_bytes = offset, .length_bytes = length};
}

// How a test gets an implementation: `open(dir)` opens the index kept under
// `dir`, creating it if needed. Two calls with one `dir` are two
// independent handles (connections) to one index.
struct IndexFactory {
  std::string name;
  std::function<absl::StatusOr<std::unique_ptr<ChunkIndex>>(
      const std::string& dir)>
      open;
};

std::string SqlitePath(const std::string& dir) {
  return dir + "/chunks.sqlite";
}

[[maybe_unused]] IndexFactory SqliteFactory() {
  return {"Sqlite",
          [](const std::string& dir)
              -> absl::StatusOr<std::unique_ptr<ChunkIndex>> {
            auto index = SqliteChunkIndex::Open(SqlitePath(dir), true);
            if (!index.ok()) return index.status();
            return std::unique_ptr<ChunkIndex>(std::move(*index));
          }};
}

#ifdef CBTD_TEST_RADOS
::testing::Environment* const kCeph =
    ::testing::AddGlobalTestEnvironment(new test::CephEnvironment);

// A handle: a client of its own (as another receiver would have) and the
// index over it. The store is a base so that it is built first and goes
// last.
struct StoreHolder {
  std::unique_ptr<RadosObjectStore> store;
};
class OwningIndex : private StoreHolder, public RadosChunkIndex {
 public:
  explicit OwningIndex(std::unique_ptr<RadosObjectStore> s)
      : StoreHolder{std::move(s)},
        RadosChunkIndex(store->ioctx(), store->where()) {}
  librados::IoCtx& ioctx_for_test() { return store->ioctx(); }
};

// Each test's `dir` names a namespace of its own: an empty index.
IndexFactory RadosFactory() {
  return {
      "Rados",
      [](const std::string& dir)
          -> absl::StatusOr<std::unique_ptr<ChunkIndex>> {
        RadosStoreOptions options;
        options.conf_path = test::CephEnvironment::cluster().conf_path();
        options.client_id = "cbtd";
        options.pool = test::CephCluster::kPool;
        options.ns = std::filesystem::path(dir).filename().string();
        options.op_timeout_seconds = 10;
        auto store = RadosObjectStore::Open(options);
        if (!store.ok()) return store.status();
        return std::unique_ptr<ChunkIndex>(new OwningIndex(*std::move(store)));
      }};
}
#endif

class ChunkIndexTest : public ::testing::TestWithParam<IndexFactory> {
 protected:
  void SetUp() override { index_ = Open(); }

  std::unique_ptr<ChunkIndex> Open() {
    auto index = GetParam().open(dir_.path());
    EXPECT_TRUE(index.ok()) << index.status();
    return index.ok() ? std::move(*index) : nullptr;
  }

  void Add(ChunkIndex& index, std::string_view tenant, const std::string& pack,
           std::vector<PackEntry> entries) {
    ASSERT_TRUE(
        index.AddPack(tenant, Pack(pack, entries.size()), entries, kNoSession)
            .ok());
  }
  void Add(std::string_view tenant, const std::string& pack,
           std::vector<PackEntry> entries) {
    Add(*index_, tenant, pack, std::move(entries));
  }

  std::optional<ChunkLocation> Find(ChunkIndex& index, std::string_view tenant,
                                    const ChunkHash& id) {
    auto found = index.Find(tenant, id);
    EXPECT_TRUE(found.ok()) << found.status();
    return found.ok() ? *found : std::nullopt;
  }
  std::optional<ChunkLocation> Find(std::string_view tenant,
                                    const ChunkHash& id) {
    return Find(*index_, tenant, id);
  }

  std::vector<std::string> PackNames(ChunkIndex& index,
                                     std::string_view tenant) {
    auto packs = index.ListPacks(tenant);
    EXPECT_TRUE(packs.ok()) << packs.status();
    std::vector<std::string> names;
    if (packs.ok()) {
      for (const PackInfo& p : *packs) names.push_back(p.pack);
    }
    return names;
  }
  std::vector<std::string> PackNames(std::string_view tenant) {
    return PackNames(*index_, tenant);
  }

  test::TempDir dir_{"cbtd-chunk-index-"};
  std::unique_ptr<ChunkIndex> index_;
};

TEST_P(ChunkIndexTest, FindsEveryEntryOfAnAddedPack) {
  Add("t", "p1", {{Id(1), 0, 100}, {Id(2), 100, 50}, {Id(3), 150, 7}});

  EXPECT_THAT(Find("t", Id(1)), Optional(At("p1", 0, 100)));
  EXPECT_THAT(Find("t", Id(2)), Optional(At("p1", 100, 50)));
  EXPECT_THAT(Find("t", Id(3)), Optional(At("p1", 150, 7)));
  EXPECT_EQ(Find("t", Id(4)), std::nullopt);
}

TEST_P(ChunkIndexTest, FindManyAnswersEveryIdInOrder) {
  Add("t", "p1", {{Id(1), 0, 100}, {Id(2), 100, 50}});
  Add("u", "q1", {{Id(3), 0, 10}});
  const std::vector<ChunkHash> ids = {Id(2), Id(3), Id(1), Id(9), Id(2)};

  auto found = index_->FindMany("t", ids);
  ASSERT_TRUE(found.ok()) << found.status();
  EXPECT_THAT(*found, ElementsAre(Optional(At("p1", 100, 50)),
                                  std::nullopt,  // u's, not t's
                                  Optional(At("p1", 0, 100)), std::nullopt,
                                  Optional(At("p1", 100, 50))));
  auto none = index_->FindMany("t", std::vector<ChunkHash>{});
  ASSERT_TRUE(none.ok());
  EXPECT_THAT(*none, IsEmpty());
}

TEST_P(ChunkIndexTest, TenantsNeverSeeEachOthersChunksOrPacks) {
  Add("b", "pb", {{Id(2), 0, 10}});
  Add("a", "pa", {{Id(1), 0, 10}});

  EXPECT_EQ(Find("b", Id(1)), std::nullopt);
  EXPECT_EQ(Find("a", Id(2)), std::nullopt);
  EXPECT_EQ(Find("c", Id(1)), std::nullopt);

  // b storing the same chunk gets its own location; a keeps its own.
  Add("b", "pb2", {{Id(1), 20, 10}});
  EXPECT_THAT(Find("b", Id(1)), Optional(At("pb2", 20, 10)));
  EXPECT_THAT(Find("a", Id(1)), Optional(At("pa", 0, 10)));

  EXPECT_THAT(PackNames("a"), ElementsAre("pa"));
  EXPECT_THAT(PackNames("b"), ElementsAre("pb", "pb2"));
  EXPECT_THAT(PackNames("c"), IsEmpty());
  auto tenants = index_->ListTenants();
  ASSERT_TRUE(tenants.ok()) << tenants.status();
  EXPECT_THAT(*tenants, ElementsAre("a", "b"));
}

TEST_P(ChunkIndexTest, ListPacksReturnsWhatWasRecordedSortedByName) {
  const PackInfo p2{
      .pack = "p2", .size_bytes = 5000, .chunk_count = 1, .added_unix_ms = 42};
  const PackInfo p1{
      .pack = "p1", .size_bytes = 7000, .chunk_count = 2, .added_unix_ms = 43};
  const std::vector<PackEntry> e2 = {{Id(1), 0, 10}};
  const std::vector<PackEntry> e1 = {{Id(2), 0, 10}, {Id(3), 10, 10}};
  ASSERT_TRUE(index_->AddPack("t", p2, e2, kNoSession).ok());
  ASSERT_TRUE(index_->AddPack("t", p1, e1, kNoSession).ok());

  auto packs = index_->ListPacks("t");
  ASSERT_TRUE(packs.ok()) << packs.status();
  EXPECT_THAT(*packs, ElementsAre(p1, p2));
}

TEST_P(ChunkIndexTest, AnIdAlreadyHeldKeepsItsFirstLocation) {
  Add("t", "p1", {{Id(1), 0, 10}});
  Add("t", "p2", {{Id(1), 500, 10}, {Id(2), 0, 10}, {Id(2), 20, 10}});

  EXPECT_THAT(Find("t", Id(1)), Optional(At("p1", 0, 10)));
  // Twice in one pack: the first entry wins too.
  EXPECT_THAT(Find("t", Id(2)), Optional(At("p2", 0, 10)));
}

TEST_P(ChunkIndexTest, ARecordedPackNameIsAlreadyExistsAndChangesNothing) {
  Add("t", "p1", {{Id(1), 0, 10}});
  const std::vector<PackEntry> again = {{Id(1), 99, 10}, {Id(2), 0, 10}};

  EXPECT_EQ(index_->AddPack("t", Pack("p1"), again, kNoSession).code(),
            absl::StatusCode::kAlreadyExists);
  // Pack names are unique in the vault, not per tenant.
  EXPECT_EQ(index_->AddPack("u", Pack("p1"), again, kNoSession).code(),
            absl::StatusCode::kAlreadyExists);

  EXPECT_THAT(Find("t", Id(1)), Optional(At("p1", 0, 10)));
  EXPECT_EQ(Find("t", Id(2)), std::nullopt);
  EXPECT_EQ(Find("u", Id(2)), std::nullopt);
  EXPECT_THAT(PackNames("t"), ElementsAre("p1"));
  EXPECT_THAT(PackNames("u"), IsEmpty());
}

TEST_P(ChunkIndexTest, UsageCountsMarkedChunksPerPackIncludingDeadPacks) {
  Add("t", "p1", {{Id(1), 0, 100}, {Id(2), 100, 200}, {Id(3), 300, 400}});
  Add("t", "p2", {{Id(4), 0, 1000}});
  Add("t", "p3", {{Id(5), 0, 7}});
  Add("u", "q1", {{Id(5), 0, 7}});
  const std::vector<ChunkHash> live = {Id(1), Id(3), Id(4), Id(3), Id(99)};

  ASSERT_TRUE(index_->BeginMark("t").ok());
  ASSERT_TRUE(index_->MarkLive("t", live).ok());
  // Another tenant's mark of p3's chunk does not make it live for t.
  ASSERT_TRUE(index_->BeginMark("u").ok());
  ASSERT_TRUE(index_->MarkLive("u", std::vector<ChunkHash>{Id(5)}).ok());

  auto usage = index_->Usage("t");
  ASSERT_TRUE(usage.ok()) << usage.status();
  ASSERT_EQ(usage->size(), 3u);
  EXPECT_EQ((*usage)[0].info, Pack("p1", 3));
  EXPECT_EQ((*usage)[0].live_chunks, 2u);
  EXPECT_EQ((*usage)[0].live_bytes, 500u);
  EXPECT_EQ((*usage)[1].info.pack, "p2");
  EXPECT_EQ((*usage)[1].live_chunks, 1u);
  EXPECT_EQ((*usage)[1].live_bytes, 1000u);
  EXPECT_EQ((*usage)[2].info.pack, "p3");
  EXPECT_EQ((*usage)[2].live_chunks, 0u);
  EXPECT_EQ((*usage)[2].live_bytes, 0u);

  auto u = index_->Usage("u");
  ASSERT_TRUE(u.ok()) << u.status();
  ASSERT_EQ(u->size(), 1u);
  EXPECT_EQ((*u)[0].live_chunks, 1u);
}

TEST_P(ChunkIndexTest, BeginMarkForgetsThePreviousMark) {
  Add("t", "p1", {{Id(1), 0, 100}});
  ASSERT_TRUE(index_->BeginMark("t").ok());
  ASSERT_TRUE(index_->MarkLive("t", std::vector<ChunkHash>{Id(1)}).ok());
  ASSERT_TRUE(index_->BeginMark("t").ok());

  auto usage = index_->Usage("t");
  ASSERT_TRUE(usage.ok()) << usage.status();
  ASSERT_EQ(usage->size(), 1u);
  EXPECT_EQ((*usage)[0].live_chunks, 0u);
  EXPECT_EQ((*usage)[0].live_bytes, 0u);
}

TEST_P(ChunkIndexTest, LiveEntriesAreTheMarkedOnesByAscendingOffset) {
  Add("t", "p1",
      {{Id(4), 300, 30}, {Id(1), 0, 10}, {Id(3), 200, 20}, {Id(2), 100, 10}});
  Add("t", "p2", {{Id(5), 0, 10}});
  ASSERT_TRUE(index_->BeginMark("t").ok());
  ASSERT_TRUE(
      index_->MarkLive("t", std::vector<ChunkHash>{Id(4), Id(1), Id(3), Id(5)})
          .ok());

  auto live = index_->LiveEntries("t", "p1");
  ASSERT_TRUE(live.ok()) << live.status();
  EXPECT_THAT(*live,
              ElementsAre(PackEntry{Id(1), 0, 10}, PackEntry{Id(3), 200, 20},
                          PackEntry{Id(4), 300, 30}));
}

TEST_P(ChunkIndexTest, ReplacePacksRepacksLiveEntriesIntoTheReplacement) {
  Add("t", "p1", {{Id(1), 0, 10}, {Id(2), 10, 10}});
  Add("t", "p2", {{Id(3), 0, 10}, {Id(4), 10, 10}});
  Add("t", "p3", {{Id(5), 0, 10}});
  const std::vector<std::string> old = {"p1", "p2"};
  const std::vector<PackEntry> moved = {{Id(1), 0, 10}, {Id(3), 10, 10}};

  ASSERT_TRUE(index_->ReplacePacks("t", old, Pack("r1", 2), moved, 0).ok());

  EXPECT_THAT(Find("t", Id(1)), Optional(At("r1", 0, 10)));
  EXPECT_THAT(Find("t", Id(3)), Optional(At("r1", 10, 10)));
  EXPECT_EQ(Find("t", Id(2)), std::nullopt);
  EXPECT_EQ(Find("t", Id(4)), std::nullopt);
  EXPECT_THAT(Find("t", Id(5)), Optional(At("p3", 0, 10)));
  EXPECT_THAT(PackNames("t"), ElementsAre("p3", "r1"));
}

TEST_P(ChunkIndexTest, ReplacePacksWithoutReplacementForgetsDeadPacks) {
  Add("t", "p1", {{Id(1), 0, 10}, {Id(2), 10, 10}});
  Add("t", "p2", {{Id(3), 0, 10}});
  const std::vector<std::string> old = {"p1"};

  ASSERT_TRUE(index_->ReplacePacks("t", old, std::nullopt, {}, 0).ok());

  EXPECT_EQ(Find("t", Id(1)), std::nullopt);
  EXPECT_EQ(Find("t", Id(2)), std::nullopt);
  EXPECT_THAT(Find("t", Id(3)), Optional(At("p2", 0, 10)));
  EXPECT_THAT(PackNames("t"), ElementsAre("p2"));
  auto usage = index_->Usage("t");
  ASSERT_TRUE(usage.ok()) << usage.status();
  ASSERT_EQ(usage->size(), 1u);
  EXPECT_EQ((*usage)[0].info.pack, "p2");
  // A chunk the tenant lost can be stored again.
  Add("t", "p4", {{Id(1), 0, 10}});
  EXPECT_THAT(Find("t", Id(1)), Optional(At("p4", 0, 10)));
}

TEST_P(ChunkIndexTest, EverythingSurvivesCloseAndReopen) {
  Add("t", "p1", {{Id(1), 0, 10}, {Id(2), 10, 20}});
  ASSERT_TRUE(index_->BeginMark("t").ok());
  ASSERT_TRUE(index_->MarkLive("t", std::vector<ChunkHash>{Id(2)}).ok());
  index_.reset();

  index_ = Open();
  ASSERT_NE(index_, nullptr);
  EXPECT_THAT(Find("t", Id(1)), Optional(At("p1", 0, 10)));
  EXPECT_THAT(PackNames("t"), ElementsAre("p1"));
  auto usage = index_->Usage("t");
  ASSERT_TRUE(usage.ok()) << usage.status();
  ASSERT_EQ(usage->size(), 1u);
  EXPECT_EQ((*usage)[0].live_bytes, 20u);
}

TEST_P(ChunkIndexTest, TwoHandlesSeeEachOthersWrites) {
  std::unique_ptr<ChunkIndex> other = Open();
  ASSERT_NE(other, nullptr);

  Add(*index_, "t", "p1", {{Id(1), 0, 10}});
  EXPECT_THAT(Find(*other, "t", Id(1)), Optional(At("p1", 0, 10)));
  Add(*other, "t", "p2", {{Id(2), 0, 10}});
  EXPECT_THAT(Find(*index_, "t", Id(2)), Optional(At("p2", 0, 10)));
  EXPECT_THAT(PackNames(*index_, "t"), ElementsAre("p1", "p2"));
}

TEST_P(ChunkIndexTest, ConcurrentWritersThroughOneAndTwoHandlesLoseNothing) {
  std::unique_ptr<ChunkIndex> other = Open();
  ASSERT_NE(other, nullptr);
  constexpr int kPacks = 20;
  // Threads 0 and 1 share index_; thread 2 writes through `other`.
  std::vector<std::thread> writers;
  std::array<absl::Status, 3> failures;
  for (int w = 0; w < 3; ++w) {
    writers.emplace_back([&, w] {
      ChunkIndex& index = w == 2 ? *other : *index_;
      for (int i = 0; i < kPacks; ++i) {
        const uint32_t n = w * 1000 + i;
        const std::vector<PackEntry> e = {{Id(n), 0, 10}};
        absl::Status s =
            index.AddPack("t", Pack("p" + std::to_string(n), 1), e, kNoSession);
        if (!s.ok()) failures[w] = s;
      }
    });
  }
  for (std::thread& t : writers) t.join();

  for (const absl::Status& s : failures) EXPECT_TRUE(s.ok()) << s;
  EXPECT_EQ(PackNames("t").size(), 3u * kPacks);
  for (uint32_t w = 0; w < 3; ++w) {
    for (uint32_t i = 0; i < kPacks; ++i) {
      const uint32_t n = w * 1000 + i;
      EXPECT_THAT(Find("t", Id(n)),
                  Optional(At("p" + std::to_string(n), 0, 10)));
    }
  }
}

// --- Sessions and pins (chunk_index.h, "Receives and GC run at the same
// time").

SessionInfo Session(std::string tenant, std::string version) {
  return SessionInfo{.tenant = std::move(tenant),
                     .lock_name = "receive-" + version,
                     .host = "h",
                     .volume = "v",
                     .version = std::move(version)};
}

TEST_P(ChunkIndexTest, APackFoundAndPinnedIsNotForgottenUntilTheSessionEnds) {
  Add("t", "p1", {{Id(1), 0, 10}, {Id(2), 10, 10}});
  Add("t", "p2", {{Id(3), 0, 10}});
  auto clock = index_->SessionClock();
  ASSERT_TRUE(clock.ok()) << clock.status();
  auto session = index_->BeginSession(Session("t", "v1"));
  ASSERT_TRUE(session.ok()) << session.status();
  auto found = index_->FindAndPin(*session, "t", Id(2));
  ASSERT_TRUE(found.ok()) << found.status();
  EXPECT_THAT(*found, Optional(At("p1", 10, 10)));
  auto pinned = index_->PinnedPacks("t", *clock);
  ASSERT_TRUE(pinned.ok()) << pinned.status();
  EXPECT_THAT(*pinned, ElementsAre("p1"));

  const std::vector<std::string> both = {"p1", "p2"};
  absl::Status s = index_->ReplacePacks("t", both, std::nullopt, {}, *clock);
  EXPECT_EQ(s.code(), absl::StatusCode::kAborted) << s;
  EXPECT_THAT(s.message(), HasSubstr("p1"));
  EXPECT_THAT(PackNames("t"), ElementsAre("p1", "p2"));  // nothing changed
  EXPECT_THAT(Find("t", Id(3)), Optional(At("p2", 0, 10)));

  // Ended after `clock`: still pinned for a GC that began before the end.
  ASSERT_TRUE(index_->EndSession(*session).ok());
  auto open = index_->OpenSessions();
  ASSERT_TRUE(open.ok());
  EXPECT_THAT(*open, IsEmpty());
  auto since = index_->SessionsSince(*clock);
  ASSERT_TRUE(since.ok());
  ASSERT_EQ(since->size(), 1u);
  EXPECT_EQ((*since)[0].version, "v1");
  EXPECT_EQ(index_->ReplacePacks("t", both, std::nullopt, {}, *clock).code(),
            absl::StatusCode::kAborted);
  // A GC that began after the end is free.
  auto later = index_->SessionClock();
  ASSERT_TRUE(later.ok());
  EXPECT_GT(*later, *clock);
  ASSERT_TRUE(index_->ReplacePacks("t", both, std::nullopt, {}, *later).ok());
  EXPECT_THAT(PackNames("t"), IsEmpty());
}

TEST_P(ChunkIndexTest, AddPackPinsToTheSessionAndForgetSessionsDropsIt) {
  auto clock = index_->SessionClock();
  ASSERT_TRUE(clock.ok());
  auto session = index_->BeginSession(Session("t", "v1"));
  ASSERT_TRUE(session.ok());
  const std::vector<PackEntry> e = {{Id(1), 0, 10}};
  ASSERT_TRUE(index_->AddPack("t", Pack("p1", 1), e, *session).ok());
  ASSERT_TRUE(index_->AddPack("u", Pack("q1", 1), e, kNoSession).ok());
  auto pinned = index_->PinnedPacks("t", *clock);
  ASSERT_TRUE(pinned.ok());
  EXPECT_THAT(*pinned, ElementsAre("p1"));
  pinned = index_->PinnedPacks("u", *clock);
  ASSERT_TRUE(pinned.ok());
  EXPECT_THAT(*pinned, IsEmpty());
  // An open session is never forgotten.
  ASSERT_TRUE(index_->ForgetSessions(*clock + 100).ok());
  EXPECT_THAT(*index_->PinnedPacks("t", *clock), ElementsAre("p1"));
  ASSERT_TRUE(index_->EndSession(*session).ok());
  auto ended = index_->SessionClock();
  ASSERT_TRUE(ended.ok());
  ASSERT_TRUE(index_->ForgetSessions(*ended).ok());
  EXPECT_THAT(*index_->PinnedPacks("t", *clock), IsEmpty());
  auto since = index_->SessionsSince(*clock);
  ASSERT_TRUE(since.ok());
  EXPECT_THAT(*since, IsEmpty());
}

TEST_P(ChunkIndexTest, FindAndPinOfAChunkTheTenantLacksPinsNothing) {
  Add("u", "q1", {{Id(1), 0, 10}});
  auto session = index_->BeginSession(Session("t", "v1"));
  ASSERT_TRUE(session.ok());
  auto found = index_->FindAndPin(*session, "t", Id(1));
  ASSERT_TRUE(found.ok()) << found.status();
  EXPECT_EQ(*found, std::nullopt);  // another tenant's chunk
  EXPECT_THAT(*index_->PinnedPacks("u", 0), IsEmpty());
}

#ifdef CBTD_TEST_RADOS
INSTANTIATE_TEST_SUITE_P(
    Implementations, ChunkIndexTest, ::testing::Values(RadosFactory()),
    [](const ::testing::TestParamInfo<IndexFactory>& param_info) {
      return param_info.param.name;
    });
#else
INSTANTIATE_TEST_SUITE_P(
    Implementations, ChunkIndexTest, ::testing::Values(SqliteFactory()),
    [](const ::testing::TestParamInfo<IndexFactory>& param_info) {
      return param_info.param.name;
    });
#endif

#ifdef CBTD_TEST_RADOS
// --- What the RADOS implementation rests on (rados_chunk_index.h): the
// OSD's compare of an absent key, and the "doomed" mark a GC sets first.

class RadosChunkIndexTest : public ChunkIndexTest {
 protected:
  librados::IoCtx& io() {
    return static_cast<OwningIndex&>(*index_).ioctx_for_test();
  }
  // What ReplacePacks writes first: `pack` of `tenant` is being forgotten.
  void Doom(const std::string& tenant, const std::string& pack) {
    librados::ObjectWriteOperation op;
    op.omap_set({{pack, librados::bufferlist()}});
    ASSERT_EQ(io().operate(".chunk-index/t/" + tenant + "/doomed", &op), 0);
  }
};

// Every "keep the first location" write rests on this: an omap_cmp of an
// absent key against an empty value passes, of a present key fails.
TEST_P(RadosChunkIndexTest, TheOsdComparesAnAbsentKeyAsEmpty) {
  auto cmp_set = [&](const std::string& key) {
    librados::ObjectWriteOperation op;
    op.create(false);
    op.omap_cmp({{key, {librados::bufferlist(), LIBRADOS_CMPXATTR_OP_EQ}}},
                nullptr);
    librados::bufferlist v;
    v.append("x");
    op.omap_set({{key, v}});
    return io().operate("cmp-probe", &op);
  };
  EXPECT_EQ(cmp_set("k"), 0);           // absent: written
  EXPECT_EQ(cmp_set("k"), -ECANCELED);  // present now: refused
}

TEST_P(RadosChunkIndexTest, APackAGcIsForgettingIsNotFoundAndNotPinned) {
  Add("t", "p1", {{Id(1), 0, 10}});
  auto session = index_->BeginSession(Session("t", "v1"));
  ASSERT_TRUE(session.ok());
  Doom("t", "p1");

  auto found = index_->FindAndPin(*session, "t", Id(1));
  ASSERT_TRUE(found.ok()) << found.status();
  EXPECT_EQ(*found, std::nullopt);  // the receive stores the chunk again
  // ... and its new pack takes the id over, so the GC cannot take it away.
  const std::vector<PackEntry> e = {{Id(1), 0, 10}};
  ASSERT_TRUE(index_->AddPack("t", Pack("p2", 1), e, *session).ok());
  EXPECT_THAT(Find("t", Id(1)), Optional(At("p2", 0, 10)));
  // The pin was written before the doom was seen: a GC reading the pins
  // now gives up; one after the session's end forgets p1, and its removal
  // spares the re-pointed entry.
  const std::vector<std::string> old = {"p1"};
  EXPECT_EQ(index_->ReplacePacks("t", old, std::nullopt, {}, 0).code(),
            absl::StatusCode::kAborted);
  ASSERT_TRUE(index_->EndSession(*session).ok());
  auto later = index_->SessionClock();
  ASSERT_TRUE(later.ok());
  ASSERT_TRUE(index_->ReplacePacks("t", old, std::nullopt, {}, *later).ok());
  EXPECT_THAT(Find("t", Id(1)), Optional(At("p2", 0, 10)));
  EXPECT_THAT(PackNames("t"), ElementsAre("p2"));
}

TEST_P(RadosChunkIndexTest, AKeptLocationIsPinnedToTheSession) {
  Add("t", "p1", {{Id(1), 0, 10}});
  auto clock = index_->SessionClock();
  ASSERT_TRUE(clock.ok());
  auto session = index_->BeginSession(Session("t", "v1"));
  ASSERT_TRUE(session.ok());
  const std::vector<PackEntry> e = {{Id(1), 0, 10}, {Id(2), 10, 10}};
  ASSERT_TRUE(index_->AddPack("t", Pack("p2", 2), e, *session).ok());

  EXPECT_THAT(Find("t", Id(1)), Optional(At("p1", 0, 10)));
  EXPECT_THAT(*index_->PinnedPacks("t", *clock), ElementsAre("p1", "p2"));
  const std::vector<std::string> old = {"p1"};
  EXPECT_EQ(index_->ReplacePacks("t", old, std::nullopt, {}, *clock).code(),
            absl::StatusCode::kAborted);
}

TEST_P(RadosChunkIndexTest, ADoomedMarkAGcLeftIsClearedByTheNextMark) {
  Add("t", "p1", {{Id(1), 0, 10}});
  Doom("t", "p1");  // a GC died after its first step
  auto session = index_->BeginSession(Session("t", "v1"));
  ASSERT_TRUE(session.ok());
  EXPECT_EQ(*index_->FindAndPin(*session, "t", Id(1)), std::nullopt);

  ASSERT_TRUE(index_->BeginMark("t").ok());
  EXPECT_THAT(*index_->FindAndPin(*session, "t", Id(1)),
              Optional(At("p1", 0, 10)));
}

TEST_P(RadosChunkIndexTest, RacingAddsOfOneIdLeaveItAtOneOfThem) {
  std::unique_ptr<ChunkIndex> other = Open();
  ASSERT_NE(other, nullptr);
  constexpr uint32_t kIds = 300;
  std::vector<PackEntry> a, b;
  for (uint32_t i = 0; i < kIds; ++i) {
    a.push_back({Id(i), i * 10, 10});
    b.push_back({Id(i), i * 10 + 5, 5});
  }
  PackInfo pa = Pack("pa", kIds), pb = Pack("pb", kIds);
  pa.size_bytes = pb.size_bytes = kIds * 10 + 10;
  absl::Status sa, sb;
  std::thread t1([&] { sa = index_->AddPack("t", pa, a, kNoSession); });
  std::thread t2([&] { sb = other->AddPack("t", pb, b, kNoSession); });
  t1.join();
  t2.join();
  ASSERT_TRUE(sa.ok()) << sa;
  ASSERT_TRUE(sb.ok()) << sb;
  for (uint32_t i = 0; i < kIds; ++i) {
    auto loc = Find("t", Id(i));
    ASSERT_TRUE(loc.has_value()) << i;
    EXPECT_TRUE(*loc == At("pa", i * 10, 10) || *loc == At("pb", i * 10 + 5, 5))
        << i;
  }
}

INSTANTIATE_TEST_SUITE_P(
    Rados, RadosChunkIndexTest, ::testing::Values(RadosFactory()),
    [](const ::testing::TestParamInfo<IndexFactory>& param_info) {
      return param_info.param.name;
    });
#endif

#ifndef CBTD_TEST_RADOS
// --- What only the SQLite implementation promises.

class SqliteChunkIndexTest : public ::testing::Test {
 protected:
  std::string path() const { return SqlitePath(dir_.path()); }

  // Runs `sql` on the file through a connection of its own.
  void RawExec(const std::string& sql) {
    sqlite3* db = nullptr;
    ASSERT_EQ(sqlite3_open(path().c_str(), &db), SQLITE_OK);
    char* err = nullptr;
    const int rc = sqlite3_exec(db, sql.c_str(), nullptr, nullptr, &err);
    EXPECT_EQ(rc, SQLITE_OK) << (err ? err : "");
    sqlite3_free(err);
    sqlite3_close(db);
  }

  test::TempDir dir_{"cbtd-sqlite-index-"};
};

TEST_F(SqliteChunkIndexTest, OpenWithoutCreateOfAMissingFileIsNotFound) {
  auto index = SqliteChunkIndex::Open(path(), false);

  ASSERT_EQ(index.status().code(), absl::StatusCode::kNotFound);
  EXPECT_THAT(index.status().message(), HasSubstr(path()));
  EXPECT_FALSE(std::filesystem::exists(path()));
}

TEST_F(SqliteChunkIndexTest, OpenWithoutCreateOfAnExistingIndexWorks) {
  {
    auto index = SqliteChunkIndex::Open(path(), true);
    ASSERT_TRUE(index.ok()) << index.status();
    const std::vector<PackEntry> e = {{Id(1), 0, 10}};
    ASSERT_TRUE((*index)->AddPack("t", Pack("p1", 1), e, kNoSession).ok());
  }
  auto index = SqliteChunkIndex::Open(path(), false);
  ASSERT_TRUE(index.ok()) << index.status();
  auto found = (*index)->Find("t", Id(1));
  ASSERT_TRUE(found.ok()) << found.status();
  EXPECT_THAT(*found, Optional(At("p1", 0, 10)));
}

TEST_F(SqliteChunkIndexTest,
       AnotherSchemaVersionIsRefusedNamingFileAndVersions) {
  ASSERT_TRUE(SqliteChunkIndex::Open(path(), true).ok());
  RawExec("UPDATE meta SET value = 99 WHERE key = 'schema_version'");

  for (bool create : {true, false}) {
    auto index = SqliteChunkIndex::Open(path(), create);
    ASSERT_EQ(index.status().code(), absl::StatusCode::kFailedPrecondition)
        << index.status();
    EXPECT_THAT(index.status().message(), HasSubstr(path()));
    EXPECT_THAT(index.status().message(), HasSubstr("version 99"));
    EXPECT_THAT(index.status().message(), HasSubstr("reads version 2"));
  }
}

// A version-1 index (before sessions) gains the session tables when opened
// and keeps every entry.
TEST_F(SqliteChunkIndexTest, AVersion1IndexIsUpgradedKeepingItsEntries) {
  {
    auto index = SqliteChunkIndex::Open(path(), true);
    ASSERT_TRUE(index.ok()) << index.status();
    const std::vector<PackEntry> e = {{Id(1), 0, 10}};
    ASSERT_TRUE((*index)->AddPack("t", Pack("p1", 1), e, kNoSession).ok());
  }
  RawExec(
      "DROP TABLE pins; DROP TABLE sessions; "
      "DELETE FROM meta WHERE key = 'session_clock'; "
      "UPDATE meta SET value = 1 WHERE key = 'schema_version'");
  for (int i = 0; i < 2; ++i) {  // the second open finds it upgraded
    auto index = SqliteChunkIndex::Open(path(), false);
    ASSERT_TRUE(index.ok()) << index.status();
    EXPECT_THAT(*(*index)->Find("t", Id(1)), Optional(At("p1", 0, 10)));
    auto session = (*index)->BeginSession(Session("t", "v1"));
    ASSERT_TRUE(session.ok()) << session.status();
    ASSERT_TRUE((*index)->EndSession(*session).ok());
  }
}

TEST_F(SqliteChunkIndexTest, AnSqliteDatabaseOfSomethingElseIsRefused) {
  RawExec("CREATE TABLE volumes (name TEXT PRIMARY KEY)");

  auto index = SqliteChunkIndex::Open(path(), true);
  ASSERT_EQ(index.status().code(), absl::StatusCode::kFailedPrecondition)
      << index.status();
  EXPECT_THAT(index.status().message(), HasSubstr(path()));
}

TEST_F(SqliteChunkIndexTest, AFileThatIsNotSqliteIsDataLossNamingIt) {
  {
    std::ofstream out(path());
    for (int i = 0; i < 200; ++i) out << "this is not an SQLite database\n";
  }
  for (bool create : {true, false}) {
    auto index = SqliteChunkIndex::Open(path(), create);
    ASSERT_EQ(index.status().code(), absl::StatusCode::kDataLoss)
        << index.status();
    EXPECT_THAT(index.status().message(), HasSubstr(path()));
  }
}

TEST_F(SqliteChunkIndexTest, UsesAWalJournal) {
  ASSERT_TRUE(SqliteChunkIndex::Open(path(), true).ok());
  sqlite3* db = nullptr;
  ASSERT_EQ(sqlite3_open(path().c_str(), &db), SQLITE_OK);
  sqlite3_stmt* s = nullptr;
  ASSERT_EQ(sqlite3_prepare_v2(db, "PRAGMA journal_mode", -1, &s, nullptr),
            SQLITE_OK);
  ASSERT_EQ(sqlite3_step(s), SQLITE_ROW);
  EXPECT_STREQ(reinterpret_cast<const char*>(sqlite3_column_text(s, 0)), "wal");
  sqlite3_finalize(s);
  sqlite3_close(db);
}

TEST_F(SqliteChunkIndexTest,
       ReplacePacksNamingAnotherTenantsPackChangesNothing) {
  auto index = SqliteChunkIndex::Open(path(), true);
  ASSERT_TRUE(index.ok()) << index.status();
  ChunkIndex& ix = **index;
  const std::vector<PackEntry> e = {{Id(1), 0, 10}};
  ASSERT_TRUE(ix.AddPack("t", Pack("p1", 1), e, kNoSession).ok());
  ASSERT_TRUE(ix.AddPack("u", Pack("q1", 1), e, kNoSession).ok());
  const std::vector<std::string> old = {"p1", "q1"};

  absl::Status s = ix.ReplacePacks("t", old, Pack("r1", 1), e, 0);

  EXPECT_EQ(s.code(), absl::StatusCode::kNotFound) << s;
  EXPECT_THAT(s.message(), HasSubstr("q1"));
  auto t = ix.Find("t", Id(1));
  ASSERT_TRUE(t.ok());
  EXPECT_THAT(*t, Optional(At("p1", 0, 10)));
  auto u = ix.Find("u", Id(1));
  ASSERT_TRUE(u.ok());
  EXPECT_THAT(*u, Optional(At("q1", 0, 10)));
  auto packs = ix.ListPacks("t");
  ASSERT_TRUE(packs.ok());
  ASSERT_EQ(packs->size(), 1u);
  EXPECT_EQ((*packs)[0].pack, "p1");
}

TEST_F(SqliteChunkIndexTest, LiveEntriesOfAnUnknownPackIsNotFound) {
  auto index = SqliteChunkIndex::Open(path(), true);
  ASSERT_TRUE(index.ok()) << index.status();
  const std::vector<PackEntry> e = {{Id(1), 0, 10}};
  ASSERT_TRUE((*index)->AddPack("u", Pack("q1", 1), e, kNoSession).ok());

  EXPECT_EQ((*index)->LiveEntries("t", "q1").status().code(),
            absl::StatusCode::kNotFound);
  EXPECT_EQ((*index)->LiveEntries("u", "nope").status().code(),
            absl::StatusCode::kNotFound);
}

TEST_F(SqliteChunkIndexTest, AnEntryPastTheEndOfItsPackIsInvalid) {
  auto index = SqliteChunkIndex::Open(path(), true);
  ASSERT_TRUE(index.ok()) << index.status();
  PackInfo pack = Pack("p1", 1);
  pack.size_bytes = 100;
  const std::vector<PackEntry> e = {{Id(1), 90, 11}};

  absl::Status s = (*index)->AddPack("t", pack, e, kNoSession);

  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument) << s;
  EXPECT_THAT(s.message(), HasSubstr("p1"));
  auto packs = (*index)->ListPacks("t");
  ASSERT_TRUE(packs.ok());
  EXPECT_THAT(*packs, IsEmpty());
}

#endif  // !CBTD_TEST_RADOS

}  // namespace
}  // namespace cbtd::receiver
