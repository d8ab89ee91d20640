// Listings take a version's metadata from its index's summary
// (Vault::ListedIndexMetadata, receiver/index_stream.h) instead of reading
// the whole index through: written at publish, rewritten by a listing when
// missing or damaged, ignored when it no longer matches the index object,
// removed with the version.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>

#include "receiver/index_stream.h"
#include "receiver/local_object_store.h"
#include "tests/receiver/vault_fixture.h"

namespace cbtd::receiver {
namespace {

using testing::VaultFixture;

class IndexSummaryTest : public VaultFixture {
 protected:
  void SetUp() override {
    VaultFixture::SetUp();
    vol_ = RandomVolume(16 * kChunk, 5);
    ASSERT_TRUE(Receive(Produce(vol_, nullptr, {}, "v1")).ok());
  }
  // Through the store, so that it works on every backend.
  void Flip(const std::string& key, size_t from_end) {
    auto obj = store_->Get(key);
    ASSERT_TRUE(obj.ok()) << obj.status();
    (*obj)[obj->size() - from_end] ^= 0x01;
    ASSERT_TRUE(store_->Put(key, *obj).ok()) << key;
  }
  const std::string index_key_ = Vault::IndexKey(kVol, "v1");
  const std::string summary_key_ = Vault::SummaryKey(kVol, "v1");
  std::string vol_;
};

TEST_F(IndexSummaryTest, PublishWritesItAndAListingReadsOnlyIt) {
  ASSERT_TRUE(*store_->Exists(summary_key_));
  auto checked = vault_->ReadIndexMetadata(kVol, "v1");
  ASSERT_TRUE(checked.ok()) << checked.status();
  // An entry damaged in the middle of the index: only a read through
  // finds it; the listing does not read that far.
  Flip(index_key_, 40);
  EXPECT_TRUE(absl::IsDataLoss(vault_->ReadIndexMetadata(kVol, "v1").status()));
  auto listed = vault_->ListedIndexMetadata(kVol, "v1");
  ASSERT_TRUE(listed.ok()) << listed.status();
  EXPECT_EQ(listed->root_hash, checked->root_hash);
  EXPECT_EQ(listed->created_unix_ms, checked->created_unix_ms);
  EXPECT_EQ(listed->volume_size_bytes, vol_.size());
}

TEST_F(IndexSummaryTest, AMissingOrDamagedSummaryIsRebuiltByAListing) {
  for (bool damage : {false, true}) {
    SCOPED_TRACE(damage ? "damaged" : "missing");
    if (damage) {
      Flip(summary_key_, 1);
    } else {
      ASSERT_TRUE(store_->Delete(summary_key_).ok());
    }
    EXPECT_FALSE(ReadIndexSummary(*store_, summary_key_, index_key_));
    auto listed = vault_->ListedIndexMetadata(kVol, "v1");
    ASSERT_TRUE(listed.ok()) << listed.status();
    auto summary = ReadIndexSummary(*store_, summary_key_, index_key_);
    ASSERT_TRUE(summary.has_value()) << "the listing did not rewrite it";
    EXPECT_EQ(summary->root_hash, listed->root_hash);
  }
}

TEST_F(IndexSummaryTest, ASummaryOfAnotherIndexIsIgnored) {
  // v1 replaced by another version's index under the same name (a vault
  // restored from a backup, say): the old summary no longer matches.
  const std::string other = RandomVolume(16 * kChunk, 6);
  ASSERT_TRUE(Receive(Produce(other, nullptr, {}, "v2")).ok());
  const std::string old_summary = *store_->Get(summary_key_);
  auto v2 = vault_->ReadIndex(kVol, "v2");
  ASSERT_TRUE(v2.ok());
  ASSERT_TRUE(vault_->DeleteIndex(kVol, "v1").ok());
  EXPECT_FALSE(*store_->Exists(summary_key_)) << "deleted with its index";
  v2->version_id = "v1";
  v2->root_hash = transport::ComputeRootHash(v2->volume_size_bytes,
                                             v2->chunk_size_bytes, v2->entries);
  ASSERT_TRUE(store_->Put(index_key_, transport::EncodeIndex(*v2)).ok());
  ASSERT_TRUE(store_->Put(summary_key_, old_summary).ok());
  auto listed = vault_->ListedIndexMetadata(kVol, "v1");
  ASSERT_TRUE(listed.ok()) << listed.status();
  EXPECT_EQ(listed->root_hash, v2->root_hash);
}

TEST_F(IndexSummaryTest, AFirstFormatVaultGetsNoSummary) {
  auto store = LocalObjectStore::Open(dir_ + "/old", true);
  ASSERT_TRUE(store.ok());
  ASSERT_TRUE((*store)->Put(index_key_, *store_->Get(index_key_)).ok());
  Vault old(**store, nullptr);  // no chunk index: format 1, read-only
  ASSERT_TRUE(old.ListedIndexMetadata(kVol, "v1").ok());
  EXPECT_FALSE(*(*store)->Exists(summary_key_));
}

}  // namespace
}  // namespace cbtd::receiver
