// VersionImage over a real vault (VaultVersionSource): every byte range
// reads as the volume did, encrypted versions need their key, the cache
// stays bounded, sequential readers are read ahead, and damage is named.
#include "nbd/version_image.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <chrono>
#include <random>
#include <thread>

#include "receiver/vault_restore.h"
#include "tests/receiver/vault_fixture.h"

namespace cbtd::receiver {
namespace {

using nbd::ImageOptions;
using nbd::VersionImage;
using ::testing::HasSubstr;

class VersionImageTest : public testing::VaultFixture {
 protected:
  static constexpr size_t kChunks = 40;

  // 40 chunks and a short one; a zero chunk (RandomVolume), chunk 3
  // repeated at 7.
  void Store(const std::optional<transport::TenantKey>& key = std::nullopt) {
    vol_ = RandomVolume(kChunks * kChunk + 5000, 7);
    vol_.replace(7 * kChunk, kChunk, vol_, 3 * kChunk, kChunk);
    transport::ProducerOptions opts;
    opts.key = key;
    auto r = Receive(Produce(vol_, nullptr, {}, "v1", opts));
    ASSERT_TRUE(r.ok()) << r.status();
  }

  absl::StatusOr<std::unique_ptr<VersionImage>> Open(ImageOptions o = {}) {
    source_ = std::make_unique<VaultVersionSource>(*vault_, kVol);
    return VersionImage::Open(*source_, "v1", std::move(o));
  }

  std::string ReadRange(VersionImage& image, uint64_t offset, size_t len) {
    std::string out(len, '\x55');
    absl::Status s = image.Read(
        offset, {reinterpret_cast<uint8_t*>(out.data()), out.size()});
    EXPECT_TRUE(s.ok()) << s;
    return out;
  }

  std::unique_ptr<VaultVersionSource> source_;
  std::string vol_;
};

TEST_F(VersionImageTest, EveryRangeReadsAsTheVolume) {
  Store();
  auto image = Open();
  ASSERT_TRUE(image.ok()) << image.status();
  ASSERT_EQ((*image)->size_bytes(), vol_.size());
  EXPECT_EQ(ReadRange(**image, 0, vol_.size()), vol_);
  std::mt19937 rng(TestSeed());
  for (int i = 0; i < 300; ++i) {
    const uint64_t off = rng() % vol_.size();
    const size_t len =
        1 + rng() % std::min<uint64_t>(vol_.size() - off, 3 * kChunk + 17);
    ASSERT_EQ(ReadRange(**image, off, len), vol_.substr(off, len))
        << "offset " << off << " length " << len;
  }
  // The short last chunk, to its last byte.
  EXPECT_EQ(ReadRange(**image, vol_.size() - 100, 100),
            vol_.substr(vol_.size() - 100));
  std::string past(10, '\0');
  absl::Status s = (*image)->Read(
      vol_.size() - 5, {reinterpret_cast<uint8_t*>(past.data()), past.size()});
  EXPECT_TRUE(absl::IsInvalidArgument(s)) << s;
}

TEST_F(VersionImageTest, EncryptedVersionNeedsItsKey) {
  auto key = transport::TenantKey::Generate();
  auto other = transport::TenantKey::Generate();
  ASSERT_TRUE(key.ok() && other.ok());
  Store(*key);
  auto none = Open();
  ASSERT_TRUE(absl::IsFailedPrecondition(none.status())) << none.status();
  ImageOptions wrong;
  wrong.key = *other;
  auto refused = Open(wrong);
  ASSERT_TRUE(absl::IsFailedPrecondition(refused.status()));
  EXPECT_THAT(refused.status().message(), HasSubstr(key->fingerprint()));
  EXPECT_THAT(refused.status().message(), HasSubstr(other->fingerprint()));
  ImageOptions right;
  right.key = *key;
  auto image = Open(right);
  ASSERT_TRUE(image.ok()) << image.status();
  EXPECT_EQ(ReadRange(**image, 0, vol_.size()), vol_);
  EXPECT_EQ(ReadRange(**image, 3 * kChunk - 9, 2 * kChunk),
            vol_.substr(3 * kChunk - 9, 2 * kChunk));
}

TEST_F(VersionImageTest, SequentialReadsAreReadAheadInFewRoundTrips) {
  Store();
  ImageOptions o;
  o.readahead_chunks = 16;
  auto image = Open(o);
  ASSERT_TRUE(image.ok());
  std::string got;
  for (uint64_t off = 0; off < vol_.size(); off += 4096) {
    got += ReadRange(**image, off, std::min<uint64_t>(4096, vol_.size() - off));
  }
  EXPECT_EQ(got, vol_);
  const nbd::ImageStats st = (*image)->stats();
  // 39 distinct data chunks (41 positions, a zero one, a repeat), each
  // fetched once, in a handful of round trips instead of one per chunk.
  EXPECT_EQ(st.chunks_fetched, 39u);
  EXPECT_LE(st.fetch_calls, 4u);
  EXPECT_GT(st.chunks_read_ahead, 30u);
}

// A source that takes a while per round trip, so concurrent reads overlap.
class SlowSource : public restore::VersionSource {
 public:
  explicit SlowSource(restore::VersionSource& inner) : inner_(inner) {}
  absl::StatusOr<VersionIndex> ReadIndex(std::string_view v) override {
    return inner_.ReadIndex(v);
  }
  absl::StatusOr<std::unique_ptr<transport::IndexEntrySource>> OpenIndex(
      std::string_view v) override {
    return inner_.OpenIndex(v);
  }
  absl::StatusOr<std::vector<std::string>> ReadChunks(
      std::string_view v, std::span<const ChunkHash> hashes) override {
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
    return inner_.ReadChunks(v, hashes);
  }
  size_t max_batch_chunks() const override { return 8; }

 private:
  restore::VersionSource& inner_;
};

TEST_F(VersionImageTest, ConcurrentReadersFetchEachChunkOnce) {
  Store();
  VaultVersionSource vault_source(*vault_, kVol);
  SlowSource slow(vault_source);
  auto image = VersionImage::Open(slow, "v1", {});
  ASSERT_TRUE(image.ok()) << image.status();
  std::vector<std::string> got(4);
  std::vector<std::thread> readers;
  for (size_t t = 0; t < got.size(); ++t) {
    readers.emplace_back([&, t] {
      // Each reader starts elsewhere and wraps around, 12 KiB at a time.
      const uint64_t step = 12 * 1024;
      const uint64_t blocks = (vol_.size() + step - 1) / step;
      std::string bytes(vol_.size(), '\0');
      for (uint64_t n = 0; n < blocks; ++n) {
        const uint64_t off = (t * blocks / got.size() + n) % blocks * step;
        const uint64_t len = std::min(step, vol_.size() - off);
        absl::Status s = (*image)->Read(
            off, {reinterpret_cast<uint8_t*>(bytes.data() + off), len});
        if (!s.ok()) ADD_FAILURE() << s;
      }
      got[t] = std::move(bytes);
    });
  }
  for (auto& r : readers) r.join();
  for (const std::string& g : got) EXPECT_TRUE(g == vol_);
  // 39 distinct data chunks, each fetched by one reader only.
  EXPECT_EQ((*image)->stats().chunks_fetched, 39u);
}

TEST_F(VersionImageTest, CacheStaysBoundedAndRefetchesWhatItDropped) {
  Store();
  ImageOptions o;
  o.cache_bytes = 4 * kChunk;
  o.readahead_chunks = 0;
  auto image = Open(o);
  ASSERT_TRUE(image.ok());
  EXPECT_EQ(ReadRange(**image, 0, 10), vol_.substr(0, 10));
  EXPECT_EQ(ReadRange(**image, 0, 10), vol_.substr(0, 10));
  EXPECT_EQ((*image)->stats().chunks_fetched, 1u);
  EXPECT_EQ((*image)->stats().cache_hits, 1u);
  // Eight other chunks push chunk 0 out of a four-chunk cache.
  for (uint64_t c = 20; c < 28; ++c) ReadRange(**image, c * kChunk, 10);
  EXPECT_EQ(ReadRange(**image, 0, 10), vol_.substr(0, 10));
  EXPECT_EQ((*image)->stats().chunks_fetched, 10u);
  // A read larger than the whole cache is still served whole.
  EXPECT_EQ(ReadRange(**image, 0, vol_.size()), vol_);
}

TEST_F(VersionImageTest, DamagedChunkIsNamedAndTheRestStillReads) {
  Store();
  const VersionIndex idx = Index("v1");
  DamageChunk(idx.entries[12]);
  auto image = Open();
  ASSERT_TRUE(image.ok());
  std::string buf(kChunk, '\0');
  absl::Status s = (*image)->Read(
      12 * kChunk, {reinterpret_cast<uint8_t*>(buf.data()), buf.size()});
  ASSERT_TRUE(absl::IsDataLoss(s)) << s;
  EXPECT_THAT(s.message(), HasSubstr("chunk 12"));
  EXPECT_EQ(ReadRange(**image, 11 * kChunk, kChunk),
            vol_.substr(11 * kChunk, kChunk));
  EXPECT_EQ(ReadRange(**image, 13 * kChunk, kChunk),
            vol_.substr(13 * kChunk, kChunk));
}

TEST_F(VersionImageTest, ZeroChunksAreNeverFetchedAndShowAsZeroExtents) {
  Store();
  const size_t z = (vol_.size() / 4) / kChunk;  // RandomVolume's zero chunk
  auto image = Open();
  ASSERT_TRUE(image.ok());
  EXPECT_EQ(ReadRange(**image, z * kChunk, kChunk), std::string(kChunk, '\0'));
  EXPECT_EQ((*image)->stats().fetch_calls, 0u);
  const auto extents = (*image)->Extents(0, vol_.size());
  ASSERT_EQ(extents.size(), 3u);
  EXPECT_FALSE(extents[0].zero);
  EXPECT_EQ(extents[0].length_bytes, z * kChunk);
  EXPECT_TRUE(extents[1].zero);
  EXPECT_EQ(extents[1].offset_bytes, z * kChunk);
  EXPECT_EQ(extents[1].length_bytes, kChunk);
  EXPECT_EQ(extents[2].offset_bytes + extents[2].length_bytes, vol_.size());
}

TEST_F(VersionImageTest, MissingVersionIsNotFound) {
  auto image = Open();
  EXPECT_TRUE(absl::IsNotFound(image.status())) << image.status();
}

}  // namespace
}  // namespace cbtd::receiver
