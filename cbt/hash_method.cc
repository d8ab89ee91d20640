#include "cbt/hash_method.h"

#include <openssl/sha.h>

#include <algorithm>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"

namespace cbtd::cbt {

absl::StatusOr<HashResult> ComputeHash(common::BlockReader& device,
                                       uint64_t chunk_bytes,
                                       const PreviousChunkHashes* previous) {
  if (chunk_bytes == 0 || chunk_bytes > (64u << 20)) {
    return absl::InvalidArgumentError(absl::StrCat(
        "hash chunk size ", chunk_bytes, " is not in (0, 64 MiB]"));
  }
  if (previous != nullptr && previous->chunk_bytes() != chunk_bytes) {
    return absl::InvalidArgumentError(
        absl::StrCat("previous chunk hashes use ", previous->chunk_bytes(),
                     "-byte chunks, this run ", chunk_bytes,
                     "; compare with a manifest of the same chunk size"));
  }
  const uint64_t size = device.SizeBytes();
  HashResult r;
  r.set.method = Method::kHash;
  r.set.generation = previous ? "hash" : "hash:full";
  r.set.volume_size_bytes = size;
  r.set.granularity_bytes = chunk_bytes;
  std::vector<uint8_t> buf(chunk_bytes);
  for (uint64_t off = 0, i = 0; off < size; off += chunk_bytes, ++i) {
    const uint64_t len = std::min(chunk_bytes, size - off);
    absl::Status st = device.ReadAt(off, std::span<uint8_t>(buf.data(), len));
    if (!st.ok()) return st;
    ChunkDigest d;
    SHA256(buf.data(), len, d.data());
    r.digests.push_back(d);
    const std::optional<ChunkDigest> prev =
        previous ? previous->Get(i) : std::nullopt;
    if (prev.has_value() && *prev == d) continue;
    const bool zero = std::all_of(buf.begin(), buf.begin() + len,
                                  [](uint8_t c) { return c == 0; });
    (zero ? r.set.zeroed : r.set.changed).Add(off, len);
  }
  return r;
}

}  // namespace cbtd::cbt
