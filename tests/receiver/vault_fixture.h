// Shared helpers for the receiver tests: a vault in a temporary directory,
// volumes as strings, streams produced by the real producer.
#ifndef CBTD_TESTS_RECEIVER_VAULT_FIXTURE_H_
#define CBTD_TESTS_RECEIVER_VAULT_FIXTURE_H_

#include <gtest/gtest.h>
#include <stdlib.h>

#include <filesystem>
#include <fstream>
#include <iostream>
#include <map>
#include <memory>
#include <random>
#include <sstream>
#include <string>

#include "receiver/local_object_store.h"
#include "receiver/receive_session.h"
#include "receiver/vault.h"
#include "tests/common/temp_dir.h"
#include "transport/stream_codec.h"
#include "transport/stream_producer.h"

namespace cbtd::receiver::testing {

class VaultFixture : public ::testing::Test {
 protected:
  static constexpr uint32_t kChunk = 16 * 1024;

  void SetUp() override {
    auto store = LocalObjectStore::Open(dir_ + "/vault", true);
    ASSERT_TRUE(store.ok()) << store.status();
    store_ = *std::move(store);
    vault_ = std::make_unique<Vault>(*store_);
  }

  // Deterministic bytes: compressible-ish runs and some zero chunks.
  static std::string RandomVolume(size_t size, uint32_t seed) {
    std::mt19937 rng(seed);
    std::string v(size, '\0');
    for (size_t i = 0; i < size; i += 64) {
      const char c = static_cast<char>(rng());
      const bool text = rng() % 2;
      for (size_t j = i; j < std::min(size, i + 64); ++j) {
        v[j] = text ? c : static_cast<char>(rng());
      }
    }
    // Zero the chunk at 1/4 of the volume.
    const size_t z = (size / 4) / kChunk * kChunk;
    std::fill(v.begin() + z, v.begin() + std::min(size, z + kChunk), '\0');
    return v;
  }

  // Writes `count` random runs into `vol`, recording them in `changed`.
  static void Scribble(std::string& vol, cbt::ExtentSet& changed, int count,
                       uint32_t seed) {
    std::mt19937 rng(seed);
    for (int k = 0; k < count; ++k) {
      const size_t len = 1 + rng() % 5000;
      const size_t off = rng() % (vol.size() - len);
      for (size_t j = 0; j < len; ++j) vol[off + j] = static_cast<char>(rng());
      changed.Add(off, len);
    }
  }

  // The framed stream of `vol` against `base` (nullptr: full).
  std::string Produce(const std::string& vol, const VersionIndex* base,
                      const cbt::ExtentSet& changed, const std::string& id,
                      transport::ProducerOptions opts = {}) {
    common::MemoryBlockReader dev(vol);
    transport::VectorRecordSink sink;
    if (opts.host.empty()) opts.host = "host1";
    if (opts.volume.empty()) opts.volume = "vol1";
    opts.version_id = id;
    opts.chunk_size_bytes = kChunk;
    if (opts.created_unix_ms == 0) opts.created_unix_ms = 1700000000000;
    auto r = transport::ProduceStream(dev, changed, {}, base, opts, sink);
    EXPECT_TRUE(r.ok()) << r.status();
    records_ = sink.records;
    return transport::FrameRecords(sink.records);
  }

  absl::StatusOr<ReceiveResult> Receive(std::string framed) {
    transport::StreamReader reader(
        transport::StringByteSource(std::move(framed)));
    return ReceiveStream(*vault_, reader);
  }

  VersionIndex Index(const std::string& id) {
    auto idx = vault_->ReadIndex(kVol, id);
    EXPECT_TRUE(idx.ok()) << idx.status();
    return idx.ok() ? *idx : VersionIndex{};
  }

  // Every file of the vault (but lock files) with its contents.
  std::map<std::string, std::string> Listing() {
    std::map<std::string, std::string> out;
    for (auto& e :
         std::filesystem::recursive_directory_iterator(dir_ + "/vault")) {
      if (!e.is_regular_file()) continue;
      std::string p = e.path().string();
      if (p.find("/locks/") != std::string::npos) continue;
      std::ifstream in(p, std::ios::binary);
      std::stringstream ss;
      ss << in.rdbuf();
      out[p] = ss.str();
    }
    return out;
  }

  std::vector<std::string> Versions() {
    auto v = vault_->ListVersions(kVol);
    EXPECT_TRUE(v.ok()) << v.status();
    return v.ok() ? *v : std::vector<std::string>{};
  }
  std::vector<std::string> Keys(const std::string& prefix) {
    auto v = store_->List(prefix);
    EXPECT_TRUE(v.ok()) << v.status();
    return v.ok() ? *v : std::vector<std::string>{};
  }

  // A refused stream left every object that existed before unchanged and
  // added, at most (unless `exact`), chunk objects that verify.
  void ExpectUntouched(const std::map<std::string, std::string>& before,
                       bool exact) {
    const auto after = Listing();
    if (exact) {
      for (const auto& [path, contents] : after) {
        auto it = before.find(path);
        EXPECT_TRUE(it != before.end() && it->second == contents)
            << "refused stream added or changed " << path;
      }
      EXPECT_EQ(after.size(), before.size()) << "refused stream removed files";
      return;
    }
    for (const auto& [path, contents] : before) {
      auto it = after.find(path);
      ASSERT_TRUE(it != after.end()) << "refused stream removed " << path;
      EXPECT_EQ(it->second, contents) << "refused stream changed " << path;
    }
    for (const auto& [path, contents] : after) {
      if (before.contains(path)) continue;
      ASSERT_NE(path.find("/vault/chunks/"), std::string::npos)
          << "refused stream added " << path;
      auto hash = ChunkHash::FromHex(path.substr(path.rfind('/') + 1));
      ASSERT_TRUE(hash.ok()) << path;
      EXPECT_TRUE(vault_->ReadChunk(*hash).ok()) << path;
    }
  }

  // Seed for randomized tests: $CBTD_TEST_SEED or a fixed default.
  static uint32_t TestSeed() {
    const char* env = std::getenv("CBTD_TEST_SEED");
    const uint32_t seed = env ? static_cast<uint32_t>(std::stoul(env)) : 42;
    std::cerr << "CBTD_TEST_SEED=" << seed << "\n";
    return seed;
  }

  std::string ReadWholeFile(const std::string& path) {
    std::ifstream in(path, std::ios::binary);
    std::stringstream ss;
    ss << in.rdbuf();
    return ss.str();
  }

  inline static const VolumeName kVol{"host1", "vol1"};
  const test::TempDir tmp_{"cbtd-vault-test-"};
  const std::string dir_ = tmp_.path();
  std::unique_ptr<LocalObjectStore> store_;
  std::unique_ptr<Vault> vault_;
  std::vector<stream::Record> records_;  // of the last Produce
};

}  // namespace cbtd::receiver::testing

#endif  // CBTD_TESTS_RECEIVER_VAULT_FIXTURE_H_
