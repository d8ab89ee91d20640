// Measures the SQLite chunk index (receiver/sqlite_chunk_index.h) at vault
// scale: inserts ENTRIES random chunk ids in packs of PACK_CHUNKS entries,
// then 1,000,000 random Finds (half hits, half misses), then a GC mark of
// every id and a Usage. Prints the rates, the database size and the peak
// RSS after each phase: the index lives on disk, so RSS must stay flat as
// ENTRIES grows.
//
// Usage: chunk_index_scale ENTRIES [PACK_CHUNKS]
// The database goes to $TMPDIR (default /tmp) and is removed at the end;
// point TMPDIR at the vault's filesystem, not a tmpfs.
#include <sys/resource.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <chrono>
#include <cstring>
#include <filesystem>
#include <iostream>
#include <random>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "receiver/sqlite_chunk_index.h"

using namespace cbtd;
using receiver::ChunkHash;

namespace {

constexpr uint32_t kChunkRecordBytes = 40000;  // a compressed 64 KiB chunk
constexpr uint64_t kFinds = 1'000'000;
constexpr size_t kMarkBatch = 65536;

uint64_t SplitMix64(uint64_t x) {
  x += 0x9e3779b97f4a7c15;
  x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9;
  x = (x ^ (x >> 27)) * 0x94d049bb133111eb;
  return x ^ (x >> 31);
}

// The i-th id: random-looking like a SHA-256, but recomputed instead of
// kept, so the tool's own memory does not grow with ENTRIES.
ChunkHash IdOf(uint64_t i) {
  std::array<uint8_t, ChunkHash::kSize> b;
  for (size_t w = 0; w < 4; ++w) {
    const uint64_t v = SplitMix64(i * 4 + w);
    std::memcpy(&b[w * 8], &v, 8);
  }
  return ChunkHash(b);
}

double Seconds(std::chrono::steady_clock::time_point since) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - since)
      .count();
}

uint64_t PeakRssKiB() {
  struct rusage ru;
  ::getrusage(RUSAGE_SELF, &ru);
  return static_cast<uint64_t>(ru.ru_maxrss);
}

uint64_t FileBytes(const std::string& path) {
  std::error_code ec;
  const uint64_t n = std::filesystem::file_size(path, ec);
  return ec ? 0 : n;
}

int Fail(const absl::Status& s) {
  std::cerr << s << "\n";
  return 1;
}

}  // namespace

int main(int argc, char** argv) {
  std::cout << std::unitbuf;  // progress lines show up as they come
  if (argc < 2) {
    std::cerr << "usage: chunk_index_scale ENTRIES [PACK_CHUNKS]\n";
    return 2;
  }
  const uint64_t entries = std::stoull(argv[1]);
  const uint64_t pack_chunks = argc > 2 ? std::stoull(argv[2]) : 256;
  const std::string dir = (std::filesystem::temp_directory_path() /
                           absl::StrCat("cbtd-index-scale-", ::getpid()))
                              .string();
  std::filesystem::create_directories(dir);
  const std::string path = dir + "/chunks.sqlite";
  auto opened = receiver::SqliteChunkIndex::Open(path, true);
  if (!opened.ok()) return Fail(opened.status());
  receiver::ChunkIndex& index = **opened;
  const std::string tenant = "tenant-1";
  std::cout << absl::StrFormat("%s: %d entries, packs of %d\n", path, entries,
                               pack_chunks);

  // Insert.
  auto start = std::chrono::steady_clock::now();
  auto step_start = start;
  uint64_t step_done = 0;
  std::vector<receiver::PackEntry> pack;
  uint64_t packs = 0;
  for (uint64_t i = 0; i < entries; i += pack_chunks) {
    pack.clear();
    for (uint64_t j = i; j < std::min(entries, i + pack_chunks); ++j) {
      pack.push_back({IdOf(j), (j - i) * kChunkRecordBytes, kChunkRecordBytes});
    }
    const receiver::PackInfo info{
        .pack = absl::StrFormat("pack-%010d", packs++),
        .size_bytes = pack.size() * kChunkRecordBytes,
        .chunk_count = pack.size(),
        .added_unix_ms = 0};
    if (absl::Status s =
            index.AddPack(tenant, info, pack, receiver::kNoSession);
        !s.ok()) {
      return Fail(s);
    }
    const uint64_t done = i + pack.size();
    if (done - step_done >= entries / 8 || done == entries) {
      std::cout << absl::StrFormat(
          "  inserted %d: %.0f inserts/s over the last %d, peak RSS %d KiB, "
          "db %d MiB\n",
          done, (done - step_done) / Seconds(step_start), done - step_done,
          PeakRssKiB(), (FileBytes(path) + FileBytes(path + "-wal")) >> 20);
      step_start = std::chrono::steady_clock::now();
      step_done = done;
    }
  }
  const double insert_s = Seconds(start);
  std::cout << absl::StrFormat(
      "insert: %d entries in %d packs, %.1f s, %.0f inserts/s, peak RSS %d "
      "KiB\n",
      entries, packs, insert_s, entries / insert_s, PeakRssKiB());

  // Find: half hits, half misses.
  std::mt19937_64 rng(1);
  uint64_t wrong = 0;
  start = std::chrono::steady_clock::now();
  for (uint64_t n = 0; n < kFinds; ++n) {
    const bool hit = n % 2 == 0;
    const uint64_t i = hit ? rng() % entries : entries + rng() % (1ull << 40);
    auto found = index.Find(tenant, IdOf(i));
    if (!found.ok()) return Fail(found.status());
    if (found->has_value() != hit) ++wrong;
  }
  const double find_s = Seconds(start);
  std::cout << absl::StrFormat(
      "find: %d finds (half misses), %.1f s, %.0f finds/s, %d wrong, peak "
      "RSS %d KiB\n",
      kFinds, find_s, kFinds / find_s, wrong, PeakRssKiB());

  // Mark every id (in id-generation order, random in key order, as a GC
  // walking version manifests would), then Usage.
  start = std::chrono::steady_clock::now();
  if (absl::Status s = index.BeginMark(tenant); !s.ok()) return Fail(s);
  std::vector<ChunkHash> batch;
  for (uint64_t i = 0; i < entries; i += kMarkBatch) {
    batch.clear();
    for (uint64_t j = i; j < std::min(entries, i + kMarkBatch); ++j) {
      batch.push_back(IdOf(j));
    }
    if (absl::Status s = index.MarkLive(tenant, batch); !s.ok()) {
      return Fail(s);
    }
  }
  const double mark_s = Seconds(start);
  start = std::chrono::steady_clock::now();
  auto usage = index.Usage(tenant);
  if (!usage.ok()) return Fail(usage.status());
  const double usage_s = Seconds(start);
  uint64_t live = 0;
  for (const receiver::PackUsage& u : *usage) live += u.live_chunks;
  if (live != entries || usage->size() != packs) ++wrong;
  std::cout << absl::StrFormat(
      "mark: %d ids in %.1f s (%.0f ids/s); usage: %d packs, %d live, %.1f "
      "s; peak RSS %d KiB\n",
      entries, mark_s, entries / mark_s, usage->size(), live, usage_s,
      PeakRssKiB());
  std::cout << absl::StrFormat(
      "database: %d MiB (+ wal %d MiB), %.1f bytes/entry\n",
      FileBytes(path) >> 20, FileBytes(path + "-wal") >> 20,
      static_cast<double>(FileBytes(path)) / entries);

  opened->reset();
  std::filesystem::remove_all(dir);
  return wrong == 0 ? 0 : 1;
}
