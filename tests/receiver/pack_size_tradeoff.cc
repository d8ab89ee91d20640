// Measures the storage layer of the vault for docs/vault.md ("Pack size"):
// writing and reading back VOLUME_MIB of 64 KiB chunk records as the
// first format did (one file per chunk, stored 256 at a time) and as
// packs of 1, 4, 16 and 64 MiB, in a directory on the disk under test.
// Chunks are verified on read (checksum and SHA-256), as a restore does.
// The page cache is dropped before each read pass when run as root.
//
// Usage: pack_size_tradeoff DIR [VOLUME_MIB]   (prints a Markdown table)
#include <chrono>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <random>

#include "absl/strings/str_cat.h"
#include "receiver/local_object_store.h"
#include "receiver/local_vault.h"

using namespace cbtd;
using receiver::ChunkHash;

namespace {

constexpr size_t kChunk = 64 << 10;

double Seconds(std::chrono::steady_clock::time_point since) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - since)
      .count();
}

void DropCaches() {
  ::sync();
  std::ofstream("/proc/sys/vm/drop_caches") << "3\n";
}

// Distinct incompressible chunks as stored records, with their ids.
std::vector<std::pair<ChunkHash, std::string>> MakeRecords(size_t count) {
  std::mt19937_64 rng(7);
  std::vector<std::pair<ChunkHash, std::string>> out;
  std::string raw(kChunk, '\0');
  for (size_t i = 0; i < count; ++i) {
    for (size_t j = 0; j < kChunk; j += 8) {
      const uint64_t w = rng();
      std::memcpy(&raw[j], &w, 8);
    }
    const ChunkHash id = ChunkHash::Sha256(
        {reinterpret_cast<const uint8_t*>(raw.data()), raw.size()});
    out.emplace_back(id, receiver::Vault::EncodeChunk(stream::COMPRESSION_NONE,
                                                      kChunk, raw));
  }
  return out;
}

void Check(const absl::Status& s) {
  if (s.ok()) return;
  std::cerr << s << "\n";
  std::exit(1);
}

// Stores `records` in batches of `batch` chunks as a receive does (format
// 2: a pack per batch, one sync and index update per kSyncBatchBytes;
// format 1: one sync per batch), then reads them all back.
void Measure(receiver::Vault& vault, const std::string& label, size_t batch,
             const std::vector<std::pair<ChunkHash, std::string>>& records,
             const std::string& dir) {
  const double mib = records.size() * kChunk / 1048576.0;
  auto start = std::chrono::steady_clock::now();
  std::vector<receiver::Vault::WrittenPack> written;
  size_t written_bytes = 0;
  for (size_t i = 0; i < records.size(); i += batch) {
    std::vector<std::pair<ChunkHash, std::string>> part(
        records.begin() + i,
        records.begin() + std::min(records.size(), i + batch));
    if (vault.format() == 1) {
      Check(vault.StoreChunks("bench", part));
      continue;
    }
    auto pack = vault.WritePack("bench", part);
    Check(pack.status());
    written_bytes += pack->info.size_bytes;
    written.push_back(*std::move(pack));
    if (written_bytes >= receiver::kSyncBatchBytes) {
      Check(vault.IndexPacks("bench", written));
      written.clear();
      written_bytes = 0;
    }
  }
  Check(vault.IndexPacks("bench", written));
  const double write_s = Seconds(start);
  DropCaches();
  start = std::chrono::steady_clock::now();
  for (const auto& [id, rec] : records) {
    auto raw = vault.ReadChunk("bench", id);
    if (!raw.ok()) {
      std::cerr << raw.status() << "\n";
      std::exit(1);
    }
  }
  const double read_s = Seconds(start);
  size_t files = 0;
  for (auto& e : std::filesystem::recursive_directory_iterator(dir)) {
    files += e.is_regular_file();
  }
  std::cout << "| " << label << " | " << static_cast<int>(mib / write_s)
            << " | " << static_cast<int>(mib / read_s) << " | " << files
            << " |\n";
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 2) {
    std::cerr << "usage: pack_size_tradeoff DIR [VOLUME_MIB]\n";
    return 2;
  }
  const std::string base = argv[1];
  const size_t mib = argc > 2 ? std::stoul(argv[2]) : 1024;
  const auto records = MakeRecords(mib * 1048576 / kChunk);
  std::cout << mib << " MiB of 64 KiB incompressible chunks in " << base
            << "\n\n| storage | write MiB/s | read MiB/s (verified) | files |\n"
            << "|---|---|---|---|\n";
  {
    const std::string dir = base + "/format1";
    auto store = receiver::LocalObjectStore::Open(dir, true);
    if (!store.ok()) return 1;
    receiver::Vault vault(**store, nullptr);
    Measure(vault, "one file per chunk (format 1)", 256, records, dir);
    std::filesystem::remove_all(dir);
  }
  for (size_t pack_mib : {1, 4, 16, 64}) {
    const std::string dir = absl::StrCat(base, "/packs", pack_mib);
    auto opened = receiver::OpenLocalVault(dir, true);
    if (!opened.ok()) {
      std::cerr << opened.status() << "\n";
      return 1;
    }
    Measure(*opened->vault, absl::StrCat("packs of ", pack_mib, " MiB"),
            pack_mib * 1048576 / kChunk, records, dir);
    std::filesystem::remove_all(dir);
  }
  return 0;
}
