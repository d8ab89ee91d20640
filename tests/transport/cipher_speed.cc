// cipher_speed: throughput of the vault format 2 primitives on one core,
// for comparison with `openssl speed -evp aes-256-gcm` and sha256sum.
//
// usage: cipher_speed [CHUNK_BYTES [SECONDS]]   (default 65536, 1)
// Prints one line per operation: MB/s (10^6 bytes) and microseconds per
// chunk. Not a test: numbers depend on the machine.
#include <chrono>
#include <cstdlib>
#include <functional>
#include <iomanip>
#include <iostream>
#include <string>

#include "transport/chunk_cipher.h"
#include "transport/chunk_hash.h"
#include "transport/tenant_key.h"

namespace cbtd::transport {
namespace {

using Clock = std::chrono::steady_clock;

// Runs `op` until `seconds` have passed; prints its rate. Returns false if
// `op` failed.
bool Measure(const std::string& name, size_t chunk_bytes, double seconds,
             const std::function<bool()>& op) {
  for (int i = 0; i < 10; ++i) {
    if (!op()) return false;  // warm up
  }
  uint64_t calls = 0;
  const Clock::time_point start = Clock::now();
  double elapsed = 0;
  do {
    for (int i = 0; i < 16; ++i) {
      if (!op()) return false;
    }
    calls += 16;
    elapsed = std::chrono::duration<double>(Clock::now() - start).count();
  } while (elapsed < seconds);
  const double mb_per_s =
      static_cast<double>(calls * chunk_bytes) / elapsed / 1e6;
  std::cout << std::left << std::setw(34) << name << std::right << std::fixed
            << std::setprecision(0) << std::setw(8) << mb_per_s << " MB/s"
            << std::setprecision(2) << std::setw(10)
            << elapsed * 1e6 / static_cast<double>(calls) << " us/chunk\n";
  return true;
}

int Run(int argc, char** argv) {
  const size_t chunk_bytes =
      argc > 1 ? std::strtoull(argv[1], nullptr, 10) : 65536;
  const double seconds = argc > 2 ? std::strtod(argv[2], nullptr) : 1.0;
  absl::StatusOr<TenantKey> key = TenantKey::Generate();
  if (!key.ok()) {
    std::cerr << "cipher_speed: " << key.status() << "\n";
    return 1;
  }
  absl::StatusOr<ChunkCipher> cipher = ChunkCipher::Create(*key);
  if (!cipher.ok()) {
    std::cerr << "cipher_speed: " << cipher.status() << "\n";
    return 1;
  }
  std::string chunk(chunk_bytes, '\0');
  for (size_t i = 0; i < chunk.size(); ++i) {
    chunk[i] = static_cast<char>(i * 131 + (i >> 9));
  }
  const std::span<const uint8_t> data = AsBytes(chunk);
  const ChunkHash id = *cipher->KeyedChunkId(data);
  const std::string sealed = *cipher->SealChunk(id, data);

  std::cout << "chunk " << chunk_bytes << " bytes, " << seconds
            << " s per line, one thread\n";
  bool ok = true;
  ok &= Measure("ChunkHash::Sha256 (format 1 id)", chunk_bytes, seconds,
                [&] { return ChunkHash::Sha256(data) != ChunkHash(); });
  ok &= Measure("KeyedChunkId", chunk_bytes, seconds,
                [&] { return cipher->KeyedChunkId(data).ok(); });
  ok &= Measure("SealChunk", chunk_bytes, seconds,
                [&] { return cipher->SealChunk(id, data).ok(); });
  ok &= Measure("OpenChunk", chunk_bytes, seconds,
                [&] { return cipher->OpenChunk(id, AsBytes(sealed)).ok(); });
  ok &= Measure("KeyedChunkId+SealChunk", chunk_bytes, seconds, [&] {
    absl::StatusOr<ChunkHash> i = cipher->KeyedChunkId(data);
    return i.ok() && cipher->SealChunk(*i, data).ok();
  });
  ok &= Measure("SealChunk, one-off (new contexts)", chunk_bytes, seconds,
                [&] { return SealChunk(*key, id, data).ok(); });
  if (!ok) {
    std::cerr << "cipher_speed: an operation failed\n";
    return 1;
  }
  return 0;
}

}  // namespace
}  // namespace cbtd::transport

int main(int argc, char** argv) { return cbtd::transport::Run(argc, argv); }
