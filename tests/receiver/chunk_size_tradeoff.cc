// Measures the chunk-size trade-off recorded in docs/vault.md: for each
// chunk size, the vault bytes one incremental costs after 1% of a volume
// changed in random 64 KiB writes, against the index size per TiB.
//
// Usage: chunk_size_tradeoff [VOLUME_MIB] [SEED]   (prints a Markdown table)
#include <filesystem>
#include <iostream>
#include <random>

#include "absl/strings/str_cat.h"
#include "receiver/local_vault.h"
#include "receiver/receive_session.h"
#include "transport/stream_producer.h"

using namespace cbtd;

namespace {

// Half incompressible, half text-like: closer to a real filesystem than
// either extreme.
std::string MakeVolume(size_t size, std::mt19937_64& rng) {
  std::string v(size, '\0');
  for (size_t i = 0; i < size; i += 4096) {
    const bool text = (rng() % 2) == 0;
    for (size_t j = i; j < i + 4096 && j < size; j += 8) {
      uint64_t w = rng();
      if (text) w &= 0x3f3f3f3f3f3f3f3full;  // low-entropy bytes
      std::memcpy(&v[j], &w, std::min<size_t>(8, size - j));
    }
  }
  return v;
}

absl::StatusOr<receiver::ReceiveResult> Send(
    receiver::Vault& vault, const std::string& vol,
    const transport::VersionIndex* base, const cbt::ExtentSet& changed,
    uint32_t chunk, const std::string& id) {
  common::MemoryBlockReader dev(vol);
  transport::VectorRecordSink sink;
  transport::ProducerOptions o;
  o.host = "h";
  o.volume = "v";
  o.version_id = id;
  o.chunk_size_bytes = chunk;
  auto p = transport::ProduceStream(dev, changed, {}, base, o, sink);
  if (!p.ok()) return p.status();
  transport::StreamReader reader(
      transport::StringByteSource(transport::FrameRecords(sink.records)));
  return receiver::ReceiveStream(vault, reader);
}

}  // namespace

int main(int argc, char** argv) {
  const size_t mib = argc > 1 ? std::stoul(argv[1]) : 64;
  const uint64_t seed = argc > 2 ? std::stoull(argv[2]) : 1;
  const size_t size = mib << 20;
  std::mt19937_64 rng(seed);
  const std::string v1 = MakeVolume(size, rng);
  // 1% of the volume in random 4 KiB-aligned 64 KiB writes.
  std::string v2 = v1;
  cbt::ExtentSet changed;
  const size_t writes = size / 100 / 65536;
  for (size_t k = 0; k < writes; ++k) {
    const uint64_t off = (rng() % ((size - 65536) / 4096)) * 4096;
    std::string fresh = MakeVolume(65536, rng);
    v2.replace(off, 65536, fresh);
    changed.Add(off, 65536);
  }
  std::cout << "volume " << mib << " MiB, " << writes
            << " random 64 KiB writes (1%), seed " << seed << "\n\n"
            << "| chunk | chunks sent | vault bytes for the incremental | "
               "x changed bytes | index per TiB |\n"
            << "|---|---|---|---|---|\n";
  for (uint32_t chunk = 64 << 10; chunk <= (4u << 20); chunk *= 2) {
    const std::string dir =
        absl::StrCat("/dev/shm/cbtd-tradeoff-", ::getpid(), "-", chunk);
    auto opened = receiver::OpenLocalVault(dir, true);
    if (!opened.ok()) {
      std::cerr << opened.status() << "\n";
      return 1;
    }
    receiver::Vault& vault = *opened->vault;
    auto full = Send(vault, v1, nullptr, {}, chunk, "v1");
    if (!full.ok()) {
      std::cerr << full.status() << "\n";
      return 1;
    }
    auto base = vault.ReadIndex({"h", "v"}, "v1");
    if (!base.ok()) {
      std::cerr << base.status() << "\n";
      return 1;
    }
    auto inc = Send(vault, v2, &*base, changed, chunk, "v2");
    if (!inc.ok()) {
      std::cerr << inc.status() << "\n";
      return 1;
    }
    const double per_tib_mib = (1ull << 40) / chunk * 32.0 / (1 << 20);
    std::cout << "| " << (chunk >> 10) << " KiB | "
              << inc->index.stats.chunk_records << " | "
              << inc->index.stats.stored_bytes << " | "
              << static_cast<double>(inc->index.stats.stored_bytes) /
                     static_cast<double>(changed.TotalBytes())
              << " | " << per_tib_mib << " MiB |\n";
    std::filesystem::remove_all(dir);
  }
  return 0;
}
