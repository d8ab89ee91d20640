// Shared helpers for the receiver tests: a vault in a temporary directory,
// volumes as strings, streams produced by the real producer.
//
// Compiled with CBTD_VAULT_ON_RADOS, the vault is on the RADOS pool of a
// Ceph cluster the test binary starts once (rados_test_env.h), in a fresh
// namespace per test (and per ResetVault), so the same test sources run
// on both backends. The helpers that look under the store (Listing,
// DamageChunk, LoseChunk) do so on either.
#ifndef CBTD_TESTS_RECEIVER_VAULT_FIXTURE_H_
#define CBTD_TESTS_RECEIVER_VAULT_FIXTURE_H_

#include <gtest/gtest.h>
#include <sqlite3.h>
#include <stdlib.h>

#include <filesystem>
#include <fstream>
#include <initializer_list>
#include <iostream>
#include <map>
#include <memory>
#include <random>
#include <sstream>
#include <string>

#include "receiver/local_object_store.h"
#include "receiver/local_vault.h"
#include "receiver/pack.h"
#ifdef CBTD_VAULT_ON_RADOS
#include "receiver/rados_chunk_index_internal.h"
#include "receiver/rados_vault.h"
#include "tests/receiver/rados_test_env.h"
#endif
#include "receiver/receive_session.h"
#include "receiver/vault.h"
#include "receiver/vault_restore.h"
#include "tests/common/temp_dir.h"
#include "transport/stream_codec.h"
#include "transport/stream_producer.h"

namespace cbtd::receiver::testing {

class VaultFixture : public ::testing::Test {
 protected:
  static constexpr uint32_t kChunk = 16 * 1024;

  static constexpr bool kOnRados =
#ifdef CBTD_VAULT_ON_RADOS
      true;
#else
      false;
#endif

  void SetUp() override {
#ifdef CBTD_VAULT_ON_RADOS
    ns_ = FreshTestNamespace();
    auto opened = OpenRadosVault(TestRadosOptions(ns_), /*create=*/true,
                                 /*writable=*/true);
#else
    auto opened = OpenLocalVault(dir_ + "/vault", true);
#endif
    ASSERT_TRUE(opened.ok()) << opened.status();
    local_ = *std::move(opened);
    store_ = local_.store.get();
    vault_ = local_.vault.get();
  }

  // Closes the vault, removes it, and creates an empty one (on RADOS: in
  // a new namespace).
  void ResetVault() {
    local_ = OpenedVault{};
    if (!kOnRados) std::filesystem::remove_all(dir_ + "/vault");
    SetUp();
  }

  // A first-format vault in `dir` holding `versions` of kVol as this
  // vault has them: one object per chunk under chunks/, the same indexes.
  void WriteFormat1Copy(const std::string& dir,
                        std::initializer_list<const char*> versions) {
    auto store = LocalObjectStore::Open(dir, true);
    ASSERT_TRUE(store.ok()) << store.status();
    Vault old(**store, nullptr);
    for (const char* id : versions) {
      const VersionIndex idx = Index(id);
      std::vector<std::pair<ChunkHash, std::string>> records;
      for (const ChunkHash& h : idx.entries) {
        if (transport::IsZeroEntry(h)) continue;
        auto raw = vault_->ReadChunk("host1", h);
        ASSERT_TRUE(raw.ok()) << raw.status();
        records.emplace_back(
            h, Vault::EncodeChunk(stream::COMPRESSION_NONE, raw->size(), *raw));
      }
      ASSERT_TRUE(old.StoreChunks("", records).ok());
      ASSERT_TRUE(old.PublishIndex(idx).ok());
    }
  }

  // The restore of `version` of kVol (verified) equals `bytes`.
  bool RestoresTo(const std::string& version, const std::string& bytes) {
    const std::string path = dir_ + "/restored-" + version;
    std::filesystem::remove(path);
    auto target = restore::OpenRestoreTarget(path);
    if (!target.ok()) return false;
    restore::RestoreOptions opts;
    opts.verify = true;
    auto s = RestoreVersion(*vault_, kVol, version, **target, opts);
    target->reset();
    if (!s.ok()) {
      ADD_FAILURE() << version << ": " << s.status();
      return false;
    }
    return ReadWholeFile(path) == bytes;
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

  // Every file of the vault (but lock files) with its contents. On RADOS,
  // every object of the namespace but locks, temporaries and probes, as
  // DIR/vault/<key>, the chunk index's objects as DIR/vault/index/<name>
  // with their omap (the SQLite file's place).
  std::map<std::string, std::string> Listing() {
    std::map<std::string, std::string> out;
#ifdef CBTD_VAULT_ON_RADOS
    librados::IoCtx& io = static_cast<RadosObjectStore*>(store_)->ioctx();
    for (auto it = io.nobjects_begin(); it != io.nobjects_end(); ++it) {
      const std::string oid = it->get_oid();
      if (oid.starts_with(".locks/") || oid.starts_with(".tmp/") ||
          oid.starts_with(".probe/")) {
        continue;
      }
      std::string path = dir_ + "/vault/" + oid;
      if (oid.starts_with(".")) path = dir_ + "/vault/index/" + oid;
      librados::bufferlist data;
      EXPECT_GE(io.read(oid, data, 0, 0), 0) << oid;
      std::string contents = data.to_str();
      std::map<std::string, librados::bufferlist> omap;
      std::string after;
      while (true) {
        std::map<std::string, librados::bufferlist> page;
        EXPECT_EQ(io.omap_get_vals(oid, after, 1000, &page), 0) << oid;
        if (page.empty()) break;
        after = page.rbegin()->first;
        omap.insert(page.begin(), page.end());
      }
      for (const auto& [k, v] : omap) {
        contents += "\n" + k + "=" + v.to_str();
      }
      out[path] = contents;
    }
    return out;
#endif
    for (auto& e :
         std::filesystem::recursive_directory_iterator(dir_ + "/vault")) {
      if (!e.is_regular_file()) continue;
      std::string p = e.path().string();
      // Lock files, and SQLite's shared-memory file (which readers touch).
      if (p.find("/locks/") != std::string::npos) continue;
      if (p.ends_with("-shm")) continue;
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
  // added, at most (unless `exact`), packs whose chunks verify (and the
  // chunk index that records them).
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
      if (path.find("/vault/index/") != std::string::npos) continue;
      auto it = after.find(path);
      ASSERT_TRUE(it != after.end()) << "refused stream removed " << path;
      EXPECT_EQ(it->second, contents) << "refused stream changed " << path;
    }
    for (const auto& [path, contents] : after) {
      if (before.contains(path)) continue;
      if (path.find("/vault/index/") != std::string::npos) continue;
      ASSERT_NE(path.find("/vault/tenants/host1/packs/"), std::string::npos)
          << "refused stream added " << path;
      auto entries = ParsePack(contents, path);
      ASSERT_TRUE(entries.ok()) << entries.status();
      for (const PackEntry& e : *entries) {
        EXPECT_TRUE(vault_->ReadChunk("host1", e.id).ok()) << path;
      }
    }
  }

  // Flips one byte in the middle of the stored record of chunk `h`.
  void DamageChunk(const ChunkHash& h, const std::string& tenant = "host1") {
    auto loc = vault_->chunk_index()->Find(tenant, h);
    ASSERT_TRUE(loc.ok() && loc->has_value()) << h.ToHex();
    if (kOnRados) {
      // Rewritten whole: an object store has no update in place.
      const std::string key = Vault::PackKey(tenant, (*loc)->pack);
      auto pack = store_->Get(key);
      ASSERT_TRUE(pack.ok()) << pack.status();
      (*pack)[(*loc)->offset_bytes + (*loc)->length_bytes / 2] ^= 0x5a;
      ASSERT_TRUE(store_->Put(key, *pack).ok()) << key;
      return;
    }
    const std::string path =
        dir_ + "/vault/" + Vault::PackKey(tenant, (*loc)->pack);
    const uint64_t at = (*loc)->offset_bytes + (*loc)->length_bytes / 2;
    std::fstream f(path, std::ios::in | std::ios::out | std::ios::binary);
    ASSERT_TRUE(f.good()) << path;
    f.seekg(static_cast<std::streamoff>(at));
    char c = 0;
    f.get(c);
    f.seekp(static_cast<std::streamoff>(at));
    f.put(static_cast<char>(c ^ 0x5a));
  }

  // Makes chunk `h` missing: the chunk index forgets it (as if its row
  // were lost), its pack stays.
  void LoseChunk(const ChunkHash& h, const std::string& tenant = "host1") {
#ifdef CBTD_VAULT_ON_RADOS
    // The id's entry in its shard's omap (receiver/rados_chunk_index.h).
    namespace ci = rados_chunk_index;
    const std::string shard = ci::ShardOid(tenant, ci::ShardOf(h));
    const std::string id = ci::IdKey(h);
    librados::IoCtx& io = static_cast<RadosObjectStore*>(store_)->ioctx();
    std::map<std::string, librados::bufferlist> found;
    ASSERT_EQ(io.omap_get_vals_by_keys(shard, {id}, &found), 0) << shard;
    EXPECT_EQ(found.size(), 1u) << "chunk " << h.ToHex() << " not indexed";
    ASSERT_EQ(io.omap_rm_keys(shard, {id}), 0) << shard;
    return;
#endif
    (void)tenant;
    sqlite3* db = nullptr;
    ASSERT_EQ(sqlite3_open(LocalChunkIndexPath(dir_ + "/vault").c_str(), &db),
              SQLITE_OK);
    sqlite3_stmt* st = nullptr;
    ASSERT_EQ(sqlite3_prepare_v2(db, "DELETE FROM chunks WHERE id = ?", -1, &st,
                                 nullptr),
              SQLITE_OK)
        << sqlite3_errmsg(db);
    sqlite3_bind_blob(st, 1, h.bytes().data(), ChunkHash::kSize,
                      SQLITE_TRANSIENT);
    EXPECT_EQ(sqlite3_step(st), SQLITE_DONE) << sqlite3_errmsg(db);
    EXPECT_EQ(sqlite3_changes(db), 1)
        << "chunk " << h.ToHex() << " not indexed";
    sqlite3_finalize(st);
    sqlite3_close(db);
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
  OpenedVault local_;
  ObjectStore* store_ = nullptr;
  std::string ns_;  // the vault's RADOS namespace
  Vault* vault_ = nullptr;
  std::vector<stream::Record> records_;  // of the last Produce
};

}  // namespace cbtd::receiver::testing

#endif  // CBTD_TESTS_RECEIVER_VAULT_FIXTURE_H_
