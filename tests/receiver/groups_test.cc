// Group versions (receiver/groups.h): members are listed only once their
// group version is committed, a commit checks every member, and
// retention removes a group version as one.
#include "receiver/groups.h"

#include <gmock/gmock.h>

#include "receiver/retention.h"
#include "receiver/vault_service_backend.h"
#include "tests/receiver/vault_fixture.h"

namespace cbtd::receiver {
namespace {

using transport::GroupCommit;

class GroupsTest : public testing::VaultFixture {
 protected:
  static constexpr int64_t kHour = 3600 * 1000;

  // Receives a full version `id` of `volume` as a member of group "db"
  // version `gv` dated `created`; returns its root hash.
  ChunkHash Member(const std::string& volume, const std::string& id,
                   const std::string& gv, int64_t created, uint32_t seed) {
    const std::string bytes = RandomVolume(4 * kChunk, seed);
    cbt::ExtentSet all;
    all.Add(0, bytes.size());
    transport::ProducerOptions opts;
    opts.volume = volume;
    opts.group = gv.empty() ? "" : "db";
    opts.group_version_id = gv;
    opts.created_unix_ms = created;
    auto r = Receive(Produce(bytes, nullptr, all, id, opts));
    EXPECT_TRUE(r.ok()) << r.status();
    return r.ok() ? r->index.root_hash : ChunkHash();
  }

  GroupCommit Commit(const std::string& gv,
                     std::vector<transport::GroupMemberVersion> members) {
    return GroupCommit{"db", gv, 1700000000000, std::move(members)};
  }

  // "volume@version" of every version ListVersions (the service's) shows.
  std::vector<std::string> Listed() {
    VaultServiceBackend backend(*vault_);
    auto all = backend.ListVersions("host1", "");
    EXPECT_TRUE(all.ok()) << all.status();
    std::vector<std::string> out;
    if (!all.ok()) return {};
    for (const auto& v : *all) {
      out.push_back(absl::StrCat(v.volume_id, "@", v.version_id,
                                 v.group.empty() ? "" : " " + v.group + "@",
                                 v.group_version_id));
    }
    return out;
  }
};

TEST_F(GroupsTest, MembersAreListedOnlyOnceTheGroupVersionIsCommitted) {
  const ChunkHash a = Member("data", "v1", "g1", 1, 1);
  const ChunkHash b = Member("wal", "v1", "g1", 1, 2);
  EXPECT_TRUE(Listed().empty()) << "pending members must not be listed";

  ASSERT_TRUE(CommitGroup(*vault_, "host1",
                          Commit("g1", {{"data", "v1", a}, {"wal", "v1", b}}))
                  .ok());
  EXPECT_EQ(Listed(),
            (std::vector<std::string>{"data@v1 db@g1", "wal@v1 db@g1"}));
  auto groups = ListGroups(*vault_, "host1");
  ASSERT_TRUE(groups.ok()) << groups.status();
  ASSERT_EQ(groups->size(), 1u);
  EXPECT_EQ((*groups)[0].commit.members.size(), 2u);
  EXPECT_EQ((*groups)[0].commit.members[1].root_hash, b);

  // A retried commit (its answer lost) is fine; other members are not.
  EXPECT_TRUE(CommitGroup(*vault_, "host1",
                          Commit("g1", {{"data", "v1", a}, {"wal", "v1", b}}))
                  .ok());
  EXPECT_TRUE(absl::IsAlreadyExists(
      CommitGroup(*vault_, "host1", Commit("g1", {{"data", "v1", a}}))));
}

TEST_F(GroupsTest, ACommitThatDoesNotMatchItsMembersIsRefusedAndWritesNothing) {
  const ChunkHash a = Member("data", "v1", "g1", 1, 1);
  const ChunkHash b = Member("wal", "v1", "g1", 1, 2);
  const ChunkHash alone = Member("other", "v1", "", 1, 3);
  const auto before = Listing();

  absl::Status missing = CommitGroup(
      *vault_, "host1", Commit("g1", {{"data", "v1", a}, {"wal", "v2", b}}));
  EXPECT_TRUE(absl::IsNotFound(missing)) << missing;
  EXPECT_THAT(std::string(missing.message()), ::testing::HasSubstr("v2"));

  absl::Status untagged =
      CommitGroup(*vault_, "host1",
                  Commit("g1", {{"data", "v1", a}, {"other", "v1", alone}}));
  EXPECT_TRUE(absl::IsFailedPrecondition(untagged)) << untagged;
  EXPECT_THAT(std::string(untagged.message()),
              ::testing::HasSubstr("was not sent as a member of group "
                                   "version db@g1"));

  absl::Status other_group = CommitGroup(
      *vault_, "host1", Commit("g2", {{"data", "v1", a}, {"wal", "v1", b}}));
  EXPECT_TRUE(absl::IsFailedPrecondition(other_group)) << other_group;

  absl::Status wrong_root = CommitGroup(
      *vault_, "host1", Commit("g1", {{"data", "v1", a}, {"wal", "v1", a}}));
  EXPECT_TRUE(absl::IsFailedPrecondition(wrong_root)) << wrong_root;
  EXPECT_THAT(std::string(wrong_root.message()),
              ::testing::HasSubstr("root hash"));

  // Another host cannot commit this host's members (they are not its).
  EXPECT_TRUE(absl::IsNotFound(CommitGroup(
      *vault_, "host2", Commit("g1", {{"data", "v1", a}, {"wal", "v1", b}}))));
  EXPECT_TRUE(absl::IsInvalidArgument(CommitGroup(
      *vault_, "host1", Commit("g1", {{"data", "v1", a}, {"data", "v1", a}}))));
  EXPECT_TRUE(absl::IsInvalidArgument(
      CommitGroup(*vault_, "host1", Commit("../g1", {{"data", "v1", a}}))));

  ExpectUntouched(before, /*exact=*/true);
  EXPECT_TRUE(Listed() == std::vector<std::string>{"other@v1"});
}

TEST_F(GroupsTest, TheHeaderChecksumCoversTheGroup) {
  cbt::ExtentSet all;
  const std::string bytes = RandomVolume(2 * kChunk, 4);
  all.Add(0, bytes.size());
  transport::ProducerOptions opts;
  opts.volume = "data";
  opts.group = "db";
  opts.group_version_id = "g1";
  Produce(bytes, nullptr, all, "v1", opts);
  std::vector<stream::Record> records = records_;
  records[0].mutable_header()->set_group_version_id("g2");
  transport::StreamReader reader(
      transport::StringByteSource(transport::FrameRecords(records)));
  auto r = ReceiveStream(*vault_, reader);
  ASSERT_FALSE(r.ok());
  EXPECT_THAT(std::string(r.status().message()),
              ::testing::HasSubstr("header checksum mismatch"));
}

TEST_F(GroupsTest, ADamagedGroupRecordIsDataLossNamingIt) {
  const ChunkHash a = Member("data", "v1", "g1", 1, 1);
  ASSERT_TRUE(
      CommitGroup(*vault_, "host1", Commit("g1", {{"data", "v1", a}})).ok());
  const std::string key = GroupKey("host1", "db", "g1");
  auto bytes = store_->Get(key);
  ASSERT_TRUE(bytes.ok());
  std::string damaged = *bytes;
  damaged[damaged.find("data")] = 'D';
  ASSERT_TRUE(store_->Put(key, damaged).ok());
  auto groups = ListGroups(*vault_, "host1");
  EXPECT_TRUE(absl::IsDataLoss(groups.status())) << groups.status();
  EXPECT_THAT(std::string(groups.status().message()),
              ::testing::HasSubstr(key));
}

TEST_F(GroupsTest, RetentionPrunesAGroupVersionAsOne) {
  // Three committed points an hour apart, then a fourth whose wal member
  // failed: data's member of it is pending.
  const auto point = [&](int i) {
    const std::string gv = absl::StrCat("g", i), id = absl::StrCat("v", i);
    const ChunkHash a = Member("data", id, gv, i * kHour, 10 * i);
    const ChunkHash b = Member("wal", id, gv, i * kHour, 10 * i + 1);
    ASSERT_TRUE(CommitGroup(*vault_, "host1",
                            Commit(gv, {{"data", id, a}, {"wal", id, b}}))
                    .ok());
  };
  for (int i = 1; i <= 3; ++i) point(i);
  Member("data", "v4", "g4", 4 * kHour, 40);
  // data also has a version backed up on its own.
  Member("data", "s1", "", 90 * 60 * 1000, 99);

  RetentionPolicy keep2;
  keep2.keep_last = 2;
  auto pruned = PruneGroup(*vault_, "host1", "db", keep2, false);
  ASSERT_TRUE(pruned.ok()) << pruned.status();
  EXPECT_EQ(pruned->kept, (std::vector<std::string>{"g2", "g3"}));
  EXPECT_EQ(pruned->removed, (std::vector<std::string>{"g1"}));
  // g1 went whole; the pending member is data's newest version (the next
  // run's base): kept; the version on its own is not the group's.
  EXPECT_EQ(Listed(), (std::vector<std::string>{"data@s1", "data@v2 db@g2",
                                                "data@v3 db@g3", "wal@v2 db@g2",
                                                "wal@v3 db@g3"}));
  EXPECT_EQ(*vault_->ListVersions({"host1", "data"}),
            (std::vector<std::string>{"s1", "v2", "v3", "v4"}));

  // The volume's own rule counts only its versions on their own.
  RetentionPolicy keep1;
  keep1.keep_last = 1;
  auto alone =
      Prune(*vault_, {{"host1", "data"}}, keep1, false, VersionScope::kAlone);
  ASSERT_TRUE(alone.ok()) << alone.status();
  EXPECT_TRUE(alone->removed.empty());

  // Once a newer point exists, the stale pending member goes too.
  point(5);
  pruned = PruneGroup(*vault_, "host1", "db", keep2, false);
  ASSERT_TRUE(pruned.ok()) << pruned.status();
  EXPECT_EQ(pruned->removed, (std::vector<std::string>{"g2"}));
  std::vector<std::string> members;
  for (const auto& [v, id] : pruned->removed_members) {
    members.push_back(v.volume + "@" + id);
  }
  EXPECT_EQ(members,
            (std::vector<std::string>{"data@v2", "wal@v2", "data@v4"}));
  EXPECT_EQ(*vault_->ListVersions({"host1", "data"}),
            (std::vector<std::string>{"s1", "v3", "v5"}));

  // The operator's prune of one volume counts every version; a member it
  // removes takes its group version with it, so the group is never
  // listed with a member missing.
  auto all = Prune(*vault_, {{"host1", "wal"}}, keep1, false);
  ASSERT_TRUE(all.ok()) << all.status();
  EXPECT_EQ(Listed(), (std::vector<std::string>{"data@s1", "data@v5 db@g5",
                                                "wal@v5 db@g5"}));
  EXPECT_TRUE(absl::IsNotFound(
      PruneGroup(*vault_, "host1", "nosuch", keep2, false).status()));
  EXPECT_TRUE(absl::IsInvalidArgument(
      PruneGroup(*vault_, "host1", "db", RetentionPolicy{}, false).status()));
}

}  // namespace
}  // namespace cbtd::receiver
