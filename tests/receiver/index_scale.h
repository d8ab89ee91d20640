// The receiver's memory against the size of a volume (issue 14): a base
// index of `entries` entries (64 KiB chunks: 256 M entries is a 16 TiB
// volume) is synthesised straight into a vault as an index object, without
// the data; then an incremental stream of a few records is received
// against it and GC marks. Peak RSS is read after each phase. Shared by
// the tool (index_scale.cc) and the unit test that keeps the bound
// (index_memory_test.cc). Header-only, for the tests.
#ifndef CBTD_TESTS_RECEIVER_INDEX_SCALE_H_
#define CBTD_TESTS_RECEIVER_INDEX_SCALE_H_

#include <sys/resource.h>
#include <xxhash.h>

#include <algorithm>
#include <array>
#include <chrono>
#include <cstring>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "receiver/gc.h"
#include "receiver/local_vault.h"
#include "receiver/receive_session.h"
#include "transport/stream_codec.h"

namespace cbtd::receiver::testing {

inline constexpr uint32_t kScaleChunkBytes = 64 * 1024;
// Records of the incremental stream: this many new chunks, each followed
// by a reference to it, spread over the volume, and one zero run.
inline constexpr uint64_t kScaleNewChunks = 16;

struct ScaleResult {
  double synth_s = 0, receive_s = 0, gc_s = 0;
  uint64_t rss_synth_kib = 0, rss_receive_kib = 0, rss_gc_kib = 0;
};

inline uint64_t PeakRssKiB() {
  struct rusage ru;
  ::getrusage(RUSAGE_SELF, &ru);
  return static_cast<uint64_t>(ru.ru_maxrss);
}

inline uint64_t ScaleMix(uint64_t x) {
  x += 0x9e3779b97f4a7c15;
  x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9;
  x = (x ^ (x >> 27)) * 0x94d049bb133111eb;
  return x ^ (x >> 31);
}

// Entry i of the synthetic base: every 8th a zero chunk, the others one of
// `distinct` random-looking ids (recomputed, never kept).
inline ChunkHash BaseEntry(uint64_t i, uint64_t distinct) {
  if (i % 8 == 7) return transport::kZeroEntry;
  std::array<uint8_t, ChunkHash::kSize> b;
  const uint64_t id = i % distinct;
  for (size_t w = 0; w < 4; ++w) {
    const uint64_t v = ScaleMix(id * 4 + w);
    std::memcpy(&b[w * 8], &v, 8);
  }
  return ChunkHash(b);
}

// The incremental stream's changes: chunk k * stride gets new bytes,
// chunk k * stride + 1 a reference to them; chunks [zero_first, +8) zero.
struct ScaleEdits {
  uint64_t entries;
  uint64_t stride() const { return entries / kScaleNewChunks; }
  uint64_t zero_first() const { return stride() / 2; }
  static std::string Bytes(uint64_t k) {
    std::string data(kScaleChunkBytes, '\0');
    for (size_t j = 0; j < data.size(); j += 8) {
      const uint64_t v = ScaleMix(k * 1000003 + j);
      std::memcpy(&data[j], &v, 8);
    }
    return data;
  }
  // The new version's entry i, or nullopt where the base's stays.
  std::optional<ChunkHash> At(uint64_t i,
                              const std::vector<ChunkHash>& new_ids) const {
    if (i >= zero_first() && i < zero_first() + 8) return transport::kZeroEntry;
    if (i % stride() <= 1 && i / stride() < kScaleNewChunks) {
      return new_ids[i / stride()];
    }
    return std::nullopt;
  }
};

// Writes the base version h/v@base of `entries` entries; returns its root.
inline absl::StatusOr<ChunkHash> SynthesiseBase(Vault& vault, uint64_t entries,
                                                uint64_t distinct) {
  IndexMetadata meta;
  meta.host = "h";
  meta.volume = "v";
  meta.version_id = "base";
  meta.volume_size_bytes = entries * kScaleChunkBytes;
  meta.chunk_size_bytes = kScaleChunkBytes;
  meta.created_unix_ms = 1700000000000;
  auto w = vault.CreateIndex(meta);
  if (!w.ok()) return w.status();
  std::vector<ChunkHash> block;
  for (uint64_t i = 0; i < entries;) {
    block.clear();
    for (; i < entries && block.size() < kIndexBlockEntries; ++i) {
      block.push_back(BaseEntry(i, distinct));
    }
    if (auto s = (*w)->Append(block); !s.ok()) return s;
  }
  auto root = (*w)->Finish();
  if (!root.ok()) return root.status();
  if (auto s = (*w)->Publish({}); !s.ok()) return s;
  return *root;
}

// The root hash of the new version, streamed like the base.
inline ChunkHash NewRoot(uint64_t entries, uint64_t distinct,
                         const ScaleEdits& edits,
                         const std::vector<ChunkHash>& new_ids) {
  transport::RootHasher root(entries * kScaleChunkBytes, kScaleChunkBytes);
  std::vector<ChunkHash> block;
  for (uint64_t i = 0; i < entries;) {
    block.clear();
    for (; i < entries && block.size() < kIndexBlockEntries; ++i) {
      block.push_back(edits.At(i, new_ids).value_or(BaseEntry(i, distinct)));
    }
    root.Add(block);
  }
  return root.Finish();
}

// Receives h/v@next against h/v@base (root `base_root`).
inline absl::Status ReceiveIncremental(Vault& vault, uint64_t entries,
                                       uint64_t distinct,
                                       const ChunkHash& base_root) {
  const ScaleEdits edits{entries};
  std::vector<ChunkHash> ids;
  for (uint64_t k = 0; k < kScaleNewChunks; ++k) {
    const std::string data = ScaleEdits::Bytes(k);
    ids.push_back(transport::EntryOf(
        {reinterpret_cast<const uint8_t*>(data.data()), data.size()}));
  }
  stream::Header h;
  h.set_format_version(transport::kStreamFormatVersion);
  h.set_source_host("h");
  h.set_volume_id("v");
  h.set_new_version_id("next");
  h.set_base_version_id("base");
  h.set_base_root_hash(base_root.ToBytes());
  h.set_volume_size_bytes(entries * kScaleChunkBytes);
  h.set_chunk_size_bytes(kScaleChunkBytes);
  h.set_hash_algorithm(stream::HASH_SHA256);
  h.set_created_unix_ms(1700000100000);
  transport::SealHeader(h);
  auto session = ReceiveSession::Open(vault, h);
  if (!session.ok()) return session.status();
  stream::Trailer t;
  for (uint64_t k = 0; k < kScaleNewChunks; ++k) {
    const uint64_t at = k * edits.stride();
    if (k == 1) {
      stream::Record z;
      z.mutable_zero_run()->set_first_chunk_index(edits.zero_first());
      z.mutable_zero_run()->set_chunk_count(8);
      if (auto s = (*session)->Apply(z); !s.ok()) return s;
      t.set_zero_chunks(8);
    }
    const std::string data = ScaleEdits::Bytes(k);
    stream::Record c;
    c.mutable_chunk()->set_chunk_index(at);
    c.mutable_chunk()->set_hash(ids[k].ToBytes());
    c.mutable_chunk()->set_compression(stream::COMPRESSION_NONE);
    c.mutable_chunk()->set_raw_size_bytes(kScaleChunkBytes);
    c.mutable_chunk()->set_payload(data);
    c.mutable_chunk()->set_payload_xxh3(XXH3_64bits(data.data(), data.size()));
    if (auto s = (*session)->Apply(c); !s.ok()) return s;
    stream::Record r;
    r.mutable_chunk_ref()->set_chunk_index(at + 1);
    r.mutable_chunk_ref()->set_hash(ids[k].ToBytes());
    if (auto s = (*session)->Apply(r); !s.ok()) return s;
  }
  t.set_chunk_records(kScaleNewChunks);
  t.set_chunk_ref_records(kScaleNewChunks);
  t.set_payload_bytes(kScaleNewChunks * kScaleChunkBytes);
  t.set_raw_bytes(kScaleNewChunks * kScaleChunkBytes);
  t.set_root_hash(NewRoot(entries, distinct, edits, ids).ToBytes());
  stream::Record tr;
  *tr.mutable_trailer() = t;
  return (*session)->Apply(tr);
}

inline double SecondsSince(std::chrono::steady_clock::time_point t) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t)
      .count();
}

// The whole measurement in the vault directory `dir` (created); without
// `receive` GC marks the base alone. `entries` must be at least
// 16 * kScaleNewChunks.
inline absl::StatusOr<ScaleResult> RunIndexScale(const std::string& dir,
                                                 uint64_t entries,
                                                 uint64_t distinct, bool gc,
                                                 bool receive = true) {
  auto local = OpenLocalVault(dir, true);
  if (!local.ok()) return local.status();
  Vault& vault = *local->vault;
  ScaleResult r;
  auto t = std::chrono::steady_clock::now();
  auto root = SynthesiseBase(vault, entries, distinct);
  if (!root.ok()) return root.status();
  r.synth_s = SecondsSince(t);
  r.rss_synth_kib = PeakRssKiB();
  if (receive) {
    t = std::chrono::steady_clock::now();
    if (auto s = ReceiveIncremental(vault, entries, distinct, *root); !s.ok()) {
      return s;
    }
    r.receive_s = SecondsSince(t);
    r.rss_receive_kib = PeakRssKiB();
  }
  if (gc && !receive) {
    // GC marks only tenants that hold chunks: give the host one.
    const std::string data = ScaleEdits::Bytes(0);
    const ChunkHash id = transport::EntryOf(
        {reinterpret_cast<const uint8_t*>(data.data()), data.size()});
    if (auto s = vault.StoreChunks(
            "h", {{id, Vault::EncodeChunk(stream::COMPRESSION_NONE,
                                          kScaleChunkBytes, data)}});
        !s.ok()) {
      return s;
    }
  }
  if (gc) {
    t = std::chrono::steady_clock::now();
    auto g = CollectGarbage(vault, {.dry_run = true});
    if (!g.ok()) return g.status();
    if (g->indexes != (receive ? 2u : 1u)) {
      return absl::InternalError("gc marked " + std::to_string(g->indexes) +
                                 " indexes, expected " + (receive ? "2" : "1"));
    }
    r.gc_s = SecondsSince(t);
    r.rss_gc_kib = PeakRssKiB();
  }
  return r;
}

}  // namespace cbtd::receiver::testing

#endif  // CBTD_TESTS_RECEIVER_INDEX_SCALE_H_
