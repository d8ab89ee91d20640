// Tenants that group hosts (issue 14, receiver/tenants.h): hosts of one
// tenant deduplicate against each other and share one key; nothing crosses
// a tenant; GC and verify see a grouped tenant whole; and assignments that
// would orphan references or share chunks unasked are refused, unchanged.
#include "receiver/tenants.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <tuple>

#include "receiver/gc.h"
#include "receiver/verify.h"
#include "tests/receiver/vault_fixture.h"
#include "transport/chunk_cipher.h"

namespace cbtd::receiver {
namespace {

using restore::OpenRestoreTarget;
using restore::RestoreOptions;
using ::testing::ElementsAre;
using ::testing::HasSubstr;
using testing::VaultFixture;
using transport::TenantKey;

TenantKey NewKey() {
  auto k = TenantKey::Generate();
  EXPECT_TRUE(k.ok()) << k.status();
  return *k;
}

class TenantTest : public VaultFixture {
 protected:
  absl::StatusOr<AssignResult> Assign(const std::string& host,
                                      const std::string& tenant,
                                      bool join_existing = false) {
    AssignOptions o;
    o.join_existing = join_existing;
    return AssignTenant(*vault_, host, tenant, o);
  }

  static transport::ProducerOptions As(const std::string& host,
                                       std::optional<TenantKey> key = {}) {
    transport::ProducerOptions o;
    o.host = host;
    o.volume = "disk";
    o.key = std::move(key);
    return o;
  }

  // A full stream of `bytes` as `host`, received.
  absl::StatusOr<ReceiveResult> ReceiveAs(const std::string& host,
                                          const std::string& bytes,
                                          const std::string& id,
                                          std::optional<TenantKey> key = {}) {
    return Receive(Produce(bytes, nullptr, {}, id, As(host, std::move(key))));
  }

  // records_ (the last Produce) with every chunk record turned into a
  // reference by hash alone, the trailer's counts to match: what a sender
  // that trusts the dedup handshake sends.
  std::string AsReferences() {
    std::vector<stream::Record> recs = records_;
    uint64_t refs = 0;
    for (stream::Record& r : recs) {
      if (!r.has_chunk()) continue;
      stream::Record ref;
      ref.set_required(true);
      ref.mutable_chunk_ref()->set_chunk_index(r.chunk().chunk_index());
      ref.mutable_chunk_ref()->set_hash(r.chunk().hash());
      r = ref;
      ++refs;
    }
    stream::Trailer* t = recs.back().mutable_trailer();
    t->set_chunk_records(0);
    t->set_payload_bytes(0);
    t->set_raw_bytes(0);
    t->set_chunk_ref_records(refs);
    return transport::FrameRecords(recs);
  }

  // The non-zero chunk ids of records_.
  std::vector<ChunkHash> SentIds() {
    std::vector<ChunkHash> out;
    for (const stream::Record& r : records_) {
      if (r.has_chunk()) out.push_back(*ChunkHash::FromBytes(r.chunk().hash()));
    }
    return out;
  }

  std::string Restored(const VolumeName& vol, const std::string& version,
                       std::optional<TenantKey> key = {}) {
    const std::string path =
        dir_ + "/restored-" + vol.host + "-" + vol.volume + "-" + version;
    std::filesystem::remove(path);
    auto target = OpenRestoreTarget(path);
    EXPECT_TRUE(target.ok()) << target.status();
    if (!target.ok()) return "";
    RestoreOptions opts;
    opts.verify = true;
    opts.key = std::move(key);
    auto s = RestoreVersion(*vault_, vol, version, **target, opts);
    target->reset();
    EXPECT_TRUE(s.ok()) << s.status();
    return s.ok() ? ReadWholeFile(path) : "";
  }

  std::string TenantOf(const std::string& host) {
    auto t = vault_->TenantOf(host);
    EXPECT_TRUE(t.ok()) << t.status();
    return t.ok() ? *t : "";
  }

  // Assigns web1 and web2 to "acme".
  void GroupWebHosts() {
    ASSERT_TRUE(Assign("web1", "acme").ok());
    ASSERT_TRUE(Assign("web2", "acme").ok());
  }

  static std::string Message(const absl::Status& s) {
    return std::string(s.message());
  }

  const std::string image_ = RandomVolume(24 * kChunk + 3000, 7);
};

TEST_F(TenantTest, GroupedHostsDedupAgainstEachOther) {
  GroupWebHosts();
  ASSERT_TRUE(ReceiveAs("web1", image_, "v1").ok());
  const auto packs = Keys("tenants/acme/packs");
  ASSERT_FALSE(packs.empty());
  const auto before = Listing();

  // web2 sends the same image: the handshake says acme holds every chunk,
  // and a stream of references alone is accepted.
  Produce(image_, nullptr, {}, "v1", As("web2"));
  const std::vector<ChunkHash> ids = SentIds();
  {
    auto session = ReceiveSession::Open(*vault_, records_[0].header());
    ASSERT_TRUE(session.ok()) << session.status();
    auto have = (*session)->HaveChunks(ids);
    ASSERT_TRUE(have.ok()) << have.status();
    EXPECT_EQ(*have, std::vector<bool>(ids.size(), true));
  }
  auto r = Receive(AsReferences());
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(r->index.stats.chunk_ref_records, ids.size());
  EXPECT_EQ(r->index.stats.stored_bytes, 0u);

  // No pack byte was written, under acme or anywhere else.
  EXPECT_EQ(Keys("tenants/acme/packs"), packs);
  EXPECT_TRUE(Keys("tenants/web2").empty());
  const auto after = Listing();
  for (const auto& [path, contents] : before) {
    if (path.find("/packs/") == std::string::npos) continue;
    // (Not the chunk index's own objects on RADOS: pins change there.)
    if (path.find("/vault/index/") != std::string::npos) continue;
    auto it = after.find(path);
    ASSERT_TRUE(it != after.end()) << path;
    EXPECT_EQ(it->second, contents) << path;
  }
  EXPECT_EQ(Restored({"web2", "disk"}, "v1"), image_);
  EXPECT_EQ(Restored({"web1", "disk"}, "v1"), image_);
}

TEST_F(TenantTest, HostOutsideTheGroupCannotReferenceOrProbeItsChunks) {
  GroupWebHosts();
  ASSERT_TRUE(ReceiveAs("web1", image_, "v1").ok());
  const auto before = Listing();

  Produce(image_, nullptr, {}, "loot", As("intruder"));
  const std::vector<ChunkHash> ids = SentIds();
  {
    auto session = ReceiveSession::Open(*vault_, records_[0].header());
    ASSERT_TRUE(session.ok()) << session.status();
    auto have = (*session)->HaveChunks(ids);
    ASSERT_TRUE(have.ok()) << have.status();
    EXPECT_EQ(*have, std::vector<bool>(ids.size(), false))
        << "a host outside acme learned which chunks acme holds";
  }
  auto r = Receive(AsReferences());
  ASSERT_FALSE(r.ok()) << "a forged reference into another tenant was taken";
  EXPECT_EQ(r.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(Message(r.status()), HasSubstr("send its bytes"));
  ExpectUntouched(before, /*exact=*/true);
  EXPECT_EQ(TenantOf("intruder"), "intruder");
}

TEST_F(TenantTest, GroupedHostsWithDifferentKeysAreRefusedNamingBothKeys) {
  GroupWebHosts();
  const TenantKey key1 = NewKey();
  const TenantKey key2 = NewKey();
  ASSERT_TRUE(ReceiveAs("web1", image_, "v1", key1).ok());
  const auto before = Listing();

  auto r = ReceiveAs("web2", image_, "v1", key2);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), absl::StatusCode::kFailedPrecondition);
  const std::string m = Message(r.status());
  EXPECT_THAT(m,
              HasSubstr("tenant 'acme' is bound to key " + key1.fingerprint()));
  EXPECT_THAT(m, HasSubstr("has key " + key2.fingerprint()));
  EXPECT_THAT(m, HasSubstr("the hosts of one tenant share one key"));
  EXPECT_THAT(m, HasSubstr("cbtctl key export"));
  EXPECT_THAT(m, HasSubstr("cbtctl key import"));
  ExpectUntouched(before, /*exact=*/true);

  // With the tenant's key web2 is accepted and dedups against web1.
  const auto packs = Keys("tenants/acme/packs");
  r = ReceiveAs("web2", image_, "v1", key1);
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(r->index.stats.stored_bytes, 0u);
  EXPECT_EQ(Keys("tenants/acme/packs"), packs);
  EXPECT_EQ(Restored({"web2", "disk"}, "v1", key1), image_);
}

// Before tenants grouped hosts, "plaintext" was read from the sending
// host's own versions: a new host of a plaintext group would have bound
// the group to its key.
TEST_F(TenantTest, EncryptedNewcomerToAPlaintextGroupIsRefused) {
  GroupWebHosts();
  ASSERT_TRUE(ReceiveAs("web1", image_, "v1").ok());
  const auto before = Listing();
  auto r = ReceiveAs("web2", image_, "v1", NewKey());
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(Message(r.status()),
              HasSubstr("tenant 'acme' is bound to no key (plaintext)"));
  EXPECT_THAT(Message(r.status()),
              HasSubstr("the hosts of one tenant share one key"));
  ExpectUntouched(before, /*exact=*/true);
  EXPECT_FALSE(*store_->Exists(Vault::TenantKeyKey("acme")));
  ASSERT_TRUE(ReceiveAs("web2", image_, "v1").ok());
}

// A chunk stored by web1 and referenced only by web2's version after
// web1's versions are gone is live: GC marks a tenant with the versions of
// all its hosts.
TEST_F(TenantTest, GcKeepsAChunkStoredByOneHostAndReferencedByAnother) {
  GroupWebHosts();
  ASSERT_TRUE(ReceiveAs("web1", image_, "v1").ok());
  const std::string only_web1 = RandomVolume(6 * kChunk, 99);
  auto r = Receive(Produce(only_web1, nullptr, {}, "o1", [] {
    auto o = As("web1");
    o.volume = "scratch";
    return o;
  }()));
  ASSERT_TRUE(r.ok()) << r.status();
  const ChunkHash web1_only = SentIds().front();
  Produce(image_, nullptr, {}, "v1", As("web2"));
  ASSERT_TRUE(Receive(AsReferences()).ok());

  ASSERT_TRUE(vault_->DeleteIndex({"web1", "disk"}, "v1").ok());
  ASSERT_TRUE(vault_->DeleteIndex({"web1", "scratch"}, "o1").ok());
  GcOptions gc;
  gc.grace_ms = -1000;  // everything unreferenced is old enough
  auto result = CollectGarbage(*vault_, gc);
  ASSERT_TRUE(result.ok()) << result.status();
  // GC did collect: the chunk of web1's pruned volume alone is gone...
  EXPECT_FALSE(*vault_->HasChunk("acme", web1_only));
  EXPECT_GT(result->packs_deleted + result->packs_repacked, 0u);
  // ... and web2's version, all of whose chunks web1 stored, is whole.
  EXPECT_EQ(Restored({"web2", "disk"}, "v1"), image_);
  auto report = VerifyVault(*vault_, {});
  ASSERT_TRUE(report.ok()) << report.status();
  EXPECT_TRUE(report->ok());
  EXPECT_EQ(report->versions_checked, 1u);
}

TEST_F(TenantTest, VerifyReportsADamagedSharedChunkInEveryHostsVersion) {
  GroupWebHosts();
  ASSERT_TRUE(ReceiveAs("web1", image_, "v1").ok());
  Produce(image_, nullptr, {}, "v1", As("web2"));
  ASSERT_TRUE(Receive(AsReferences()).ok());
  auto report = VerifyVault(*vault_, {});
  ASSERT_TRUE(report.ok()) << report.status();
  EXPECT_TRUE(report->ok());
  EXPECT_EQ(report->versions_checked, 2u);

  DamageChunk(SentIds().front(), "acme");
  report = VerifyVault(*vault_, {});
  ASSERT_TRUE(report.ok()) << report.status();
  std::vector<std::string> damaged;
  for (const auto& d : report->damaged) damaged.push_back(d.volume.host);
  EXPECT_THAT(damaged, ElementsAre("web1", "web2"));
}

TEST_F(TenantTest, AssignRefusesAHostThatHasVersions) {
  ASSERT_TRUE(ReceiveAs("web1", image_, "v1").ok());
  const auto before = Listing();
  auto r = Assign("web1", "acme");
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(Message(r.status()),
              HasSubstr("host 'web1' already has 1 versions"));
  EXPECT_THAT(Message(r.status()),
              HasSubstr("send it under a new host name assigned to it"));
  ExpectUntouched(before, /*exact=*/true);
  EXPECT_EQ(TenantOf("web1"), "web1");
  EXPECT_EQ(Restored({"web1", "disk"}, "v1"), image_);
}

// A backup that stopped before its commit left chunks under the host's own
// tenant; a resumed one would name them.
TEST_F(TenantTest, AssignRefusesAHostWithChunksButNoVersion) {
  Produce(image_, nullptr, {}, "v1", As("web1"));
  {
    auto session = ReceiveSession::Open(*vault_, records_[0].header());
    ASSERT_TRUE(session.ok()) << session.status();
    ASSERT_TRUE((*session)->Apply(records_[1]).ok());
  }  // aborted: its chunk is stored
  ASSERT_FALSE(Keys("tenants/web1/packs").empty());
  const auto before = Listing();
  auto r = Assign("web1", "acme");
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(Message(r.status()),
              HasSubstr("already stored chunks under its own tenant 'web1'"));
  EXPECT_THAT(Message(r.status()), HasSubstr("gc --grace-seconds 0"));
  ExpectUntouched(before, /*exact=*/true);

  // The remedy the message gives works.
  GcOptions gc;
  gc.grace_ms = -1000;
  ASSERT_TRUE(CollectGarbage(*vault_, gc).ok());
  EXPECT_TRUE(Assign("web1", "acme").ok());
}

TEST_F(TenantTest, AssignIsIdempotentAndRefusesAnotherTenant) {
  auto first = Assign("web1", "acme");
  ASSERT_TRUE(first.ok()) << first.status();
  EXPECT_FALSE(first->already);
  const auto before = Listing();

  auto again = Assign("web1", "acme");
  ASSERT_TRUE(again.ok()) << again.status();
  EXPECT_TRUE(again->already);
  ExpectUntouched(before, /*exact=*/true);

  auto other = Assign("web1", "globex");
  ASSERT_FALSE(other.ok());
  EXPECT_EQ(other.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(Message(other.status()),
              HasSubstr("host 'web1' is already assigned to tenant 'acme'"));
  EXPECT_THAT(Message(other.status()), HasSubstr("never changes"));
  ExpectUntouched(before, /*exact=*/true);
  EXPECT_EQ(TenantOf("web1"), "acme");
}

TEST_F(TenantTest, AssignRefusesInvalidNames) {
  const auto before = Listing();
  for (const auto& [host, tenant, what] :
       std::vector<std::tuple<std::string, std::string, std::string>>{
           {"../web1", "acme", "invalid host '../web1'"},
           {"", "acme", "invalid host ''"},
           {"web1", ".acme", "invalid tenant '.acme'"},
           {"web1", "a/b", "invalid tenant 'a/b'"},
           {"web1", std::string(129, 'a'), "invalid tenant"}}) {
    auto r = Assign(host, tenant);
    ASSERT_FALSE(r.ok()) << host << " -> " << tenant;
    EXPECT_EQ(r.status().code(), absl::StatusCode::kInvalidArgument);
    EXPECT_THAT(Message(r.status()), HasSubstr(what));
  }
  ExpectUntouched(before, /*exact=*/true);
}

TEST_F(TenantTest, JoiningAHostsOwnTenantNeedsJoinExistingAndPinsThatHost) {
  ASSERT_TRUE(ReceiveAs("web1", image_, "v1").ok());
  const auto before = Listing();
  auto r = Assign("web2", "web1");
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(Message(r.status()), HasSubstr("tenant 'web1' already holds"));
  EXPECT_THAT(Message(r.status()), HasSubstr("versions of hosts web1"));
  EXPECT_THAT(Message(r.status()), HasSubstr("--join-existing"));
  ExpectUntouched(before, /*exact=*/true);

  r = Assign("web2", "web1", /*join_existing=*/true);
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_THAT(r->pinned, ElementsAre("web1"));
  EXPECT_EQ(TenantOf("web1"), "web1");
  EXPECT_EQ(TenantOf("web2"), "web1");
  // web2 dedups against web1; web1 goes on backing up into its tenant.
  Produce(image_, nullptr, {}, "v1", As("web2"));
  ASSERT_TRUE(Receive(AsReferences()).ok());
  EXPECT_EQ(Restored({"web2", "disk"}, "v1"), image_);
  ASSERT_TRUE(ReceiveAs("web1", image_, "v2").ok());
}

TEST_F(TenantTest, JoiningAGroupThatHoldsChunksNeedsJoinExisting) {
  GroupWebHosts();
  ASSERT_TRUE(Assign("web3", "acme").ok()) << "an empty group is joined freely";
  ASSERT_TRUE(ReceiveAs("web1", image_, "v1").ok());
  const auto before = Listing();
  auto r = Assign("web4", "acme");
  ASSERT_FALSE(r.ok());
  EXPECT_THAT(Message(r.status()), HasSubstr("tenant 'acme' already holds"));
  EXPECT_THAT(Message(r.status()), HasSubstr("--join-existing"));
  ExpectUntouched(before, /*exact=*/true);
  r = Assign("web4", "acme", /*join_existing=*/true);
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_TRUE(r->pinned.empty()) << "no host is named acme";
  EXPECT_EQ(TenantOf("web4"), "acme");
}

// Without the rule, a new host that happened to be named like a group's
// tenant would silently share the group's chunks.
TEST_F(TenantTest, UnassignedHostNamedLikeAGroupIsRefused) {
  GroupWebHosts();
  ASSERT_TRUE(ReceiveAs("web1", image_, "v1").ok());
  const auto before = Listing();
  Produce(image_, nullptr, {}, "v1", As("acme"));
  auto r = Receive(AsReferences());
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(Message(r.status()),
              HasSubstr("host 'acme' is assigned to no tenant, but hosts "
                        "web1, web2 are assigned to tenant 'acme'"));
  EXPECT_THAT(Message(r.status()), HasSubstr("cbt-receiver tenant assign"));
  ExpectUntouched(before, /*exact=*/true);
}

TEST_F(TenantTest, DamagedAssignmentIsDataLossNamingTheObject) {
  ASSERT_TRUE(Assign("web1", "acme").ok());
  ASSERT_TRUE(store_->Put(Vault::HostTenantKey("web2"), "../etc\n").ok());
  auto t = vault_->TenantOf("web2");
  ASSERT_FALSE(t.ok());
  EXPECT_EQ(t.status().code(), absl::StatusCode::kDataLoss);
  EXPECT_THAT(Message(t.status()), HasSubstr("host-tenants/web2"));
  const auto before = Listing();
  auto r = ReceiveAs("web2", image_, "v1");
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), absl::StatusCode::kDataLoss);
  ExpectUntouched(before, /*exact=*/true);
  // Every host's tenant is in doubt for a listing: it says so.
  auto list = ListTenants(*vault_);
  ASSERT_FALSE(list.ok());
  EXPECT_THAT(Message(list.status()), HasSubstr("host-tenants/web2"));
}

TEST_F(TenantTest, AssignDuringAReceiveIsRefusedUnchanged) {
  Produce(image_, nullptr, {}, "v1", As("web1"));
  auto session = ReceiveSession::Open(*vault_, records_[0].header());
  ASSERT_TRUE(session.ok()) << session.status();
  auto r = Assign("web2", "acme");
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), absl::StatusCode::kUnavailable);
  EXPECT_THAT(Message(r.status()), HasSubstr("a receive is running"));
  EXPECT_FALSE(*store_->Exists(Vault::HostTenantKey("web2")));
  session->reset();
  EXPECT_TRUE(Assign("web2", "acme").ok());
}

TEST_F(TenantTest, ListShowsHostsKeysAndPacksPerTenant) {
  GroupWebHosts();
  const TenantKey key = NewKey();
  ASSERT_TRUE(ReceiveAs("web1", image_, "v1", key).ok());
  ASSERT_TRUE(ReceiveAs("db1", image_, "v1").ok());
  auto list = ListTenants(*vault_);
  ASSERT_TRUE(list.ok()) << list.status();
  ASSERT_EQ(list->size(), 2u);
  const TenantSummary& acme = (*list)[0];
  EXPECT_EQ(acme.tenant, "acme");
  ASSERT_EQ(acme.hosts.size(), 2u);
  EXPECT_EQ(acme.hosts[0].host, "web1");
  EXPECT_TRUE(acme.hosts[0].assigned);
  EXPECT_EQ(acme.hosts[1].host, "web2");
  EXPECT_EQ(acme.key_fingerprint, key.fingerprint());
  EXPECT_EQ(acme.packs, Keys("tenants/acme/packs").size());
  EXPECT_GT(acme.pack_bytes, 0u);
  const TenantSummary& db1 = (*list)[1];
  EXPECT_EQ(db1.tenant, "db1");
  ASSERT_EQ(db1.hosts.size(), 1u);
  EXPECT_FALSE(db1.hosts[0].assigned);
  EXPECT_EQ(db1.key_fingerprint, "");
  EXPECT_EQ(db1.packs, Keys("tenants/db1/packs").size());
}

}  // namespace
}  // namespace cbtd::receiver
