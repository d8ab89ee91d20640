// Measures what the per-host reference rule (receiver/host_scope.h,
// docs/vault.md "Whose chunks a stream may name") costs a receive: a host
// holds VERSIONS versions of one volume of CHUNKS chunks, each version
// rewriting 1% of the previous one's chunks. A session whose dedup
// handshake asks about a chunk it has not sent loads the host's scope
// once: this prints the time, the index bytes read and the memory added.
//
// Usage: host_scope_cost [CHUNKS] [VERSIONS] [SEED]
#include <unistd.h>

#include <array>
#include <chrono>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <random>

#include "absl/strings/str_cat.h"
#include "receiver/host_scope.h"
#include "receiver/local_object_store.h"
#include "transport/stream_index.h"

using namespace cbtd;

namespace {

// Resident set size in bytes (/proc/self/statm).
uint64_t RssBytes() {
  std::ifstream in("/proc/self/statm");
  uint64_t size = 0, resident = 0;
  in >> size >> resident;
  return resident * static_cast<uint64_t>(::sysconf(_SC_PAGESIZE));
}

transport::ChunkHash RandomHash(std::mt19937_64& rng) {
  std::array<uint8_t, transport::ChunkHash::kSize> b;
  for (size_t i = 0; i < b.size(); i += 8) {
    const uint64_t w = rng();
    std::memcpy(&b[i], &w, 8);
  }
  return transport::ChunkHash(b);
}

}  // namespace

int main(int argc, char** argv) {
  const uint64_t chunks = argc > 1 ? std::stoull(argv[1]) : 262144;
  const int versions = argc > 2 ? std::stoi(argv[2]) : 30;
  const uint64_t seed = argc > 3 ? std::stoull(argv[3]) : 1;
  constexpr uint32_t kChunk = 256 << 10;
  std::mt19937_64 rng(seed);

  const std::string dir = (std::filesystem::temp_directory_path() /
                           absl::StrCat("cbtd-scope-cost-", ::getpid()))
                              .string();
  auto store = receiver::LocalObjectStore::Open(dir, true);
  if (!store.ok()) {
    std::cerr << store.status() << "\n";
    return 1;
  }
  receiver::Vault vault(**store);

  transport::VersionIndex idx;
  idx.host = "host1";
  idx.volume = "vol1";
  idx.volume_size_bytes = chunks * kChunk;
  idx.chunk_size_bytes = kChunk;
  idx.entries.resize(chunks);
  for (auto& e : idx.entries) e = RandomHash(rng);
  uint64_t index_bytes = 0;
  for (int v = 1; v <= versions; ++v) {
    if (v > 1) {
      for (uint64_t k = 0; k < chunks / 100; ++k) {
        idx.entries[rng() % chunks] = RandomHash(rng);
      }
    }
    idx.version_id = absl::StrCat("v", v);
    idx.created_unix_ms = 1700000000000 + v;
    idx.root_hash = transport::ComputeRootHash(
        idx.volume_size_bytes, idx.chunk_size_bytes, idx.entries);
    index_bytes += transport::EncodeIndex(idx).size();
    if (auto s = vault.PublishIndex(idx); !s.ok()) {
      std::cerr << s << "\n";
      return 1;
    }
  }

  const uint64_t rss_before = RssBytes();
  const auto start = std::chrono::steady_clock::now();
  receiver::HostScope scope(vault, "host1");
  auto in = scope.Contains(RandomHash(rng));  // not in it: loads everything
  const double secs =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - start)
          .count();
  const uint64_t rss_after = RssBytes();
  if (!in.ok()) {
    std::cerr << in.status() << "\n";
    return 1;
  }
  const double tib = static_cast<double>(chunks) * kChunk / (1ull << 40);
  std::cout << "| " << chunks << " chunks (" << tib * 1024 << " GiB) | "
            << versions << " | " << index_bytes / (1 << 20) << " MiB | "
            << scope.size() << " | " << secs << " s | "
            << scope.memory_bytes() / (1 << 20) << " MiB (RSS +"
            << (rss_after - rss_before) / (1 << 20) << " MiB) |\n";
  std::filesystem::remove_all(dir);
  return 0;
}
