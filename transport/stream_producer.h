// ProduceStream: computes the stream of one new version and hands its
// records, in order, to a RecordSink (the offline file, the gRPC client, a
// test's vector). See docs/vault.md for the format.
//
// What is sent, on the chunk grid of the base (or options.chunk_size_bytes
// for a full):
//  * a full (no base, or options.full): every chunk, `changed` ignored;
//    a chunk wholly inside `zeroed` (bytes that read as zeros: a thin
//    volume's unmapped blocks, a sparse file's holes) is a zero run
//    without being read, so a full reads only what is allocated;
//  * an incremental: every chunk `changed` touches, plus every chunk
//    `zeroed` touches (discarded ranges; a chunk wholly inside `zeroed` and
//    untouched by `changed` becomes zeros without being read), plus, if the
//    volume was resized (options.allow_resize), every chunk past the
//    shorter size's last whole chunk.
// For each chunk read: all zero -> ZeroRun; same hash as the base at that
// index -> nothing; otherwise a Chunk, zstd-compressed when that saves at
// least 1/32 (a chunk the base holds elsewhere too: the receiver stores it
// once, and the gRPC sink's dedup handshake sends it as a ChunkRef).
// With options.key the stream is encrypted (format 3,
// ENCRYPTION_AES256GCM_V1): every entry is the chunk's keyed id and every
// Chunk payload is sealed (transport/sealed_chunk.h, COMPRESSION_SEALED),
// all-zero chunks are still zero runs, and the root hash is computed the
// same way over the keyed ids. The base must have been written with the
// same key (FAILED_PRECONDITION naming both fingerprints otherwise).
// `changed` must over-report rather than under-report: a byte it misses is
// a byte the new version gets wrong.
//
// Pipeline: `threads` workers read, hash and compress chunks; at most
// `window_chunks` chunks are in flight, so memory stays bounded at about
// 2 * window_chunks * chunk_size_bytes plus kBaseWindowEntries of the base
// (4 MiB) whatever the volume size. Records
// are emitted by the calling thread in ascending chunk order.
//
// Thread-safety: one call per sink; `source` must allow concurrent ReadAt.
#ifndef CBTD_TRANSPORT_STREAM_PRODUCER_H_
#define CBTD_TRANSPORT_STREAM_PRODUCER_H_

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>

#include "absl/status/statusor.h"
#include "cbt/extent_set.h"
#include "common/block_reader.h"
#include "transport/index_source.h"
#include "transport/record_sink.h"
#include "transport/stream_index.h"
#include "transport/tenant_key.h"

namespace cbtd::transport {

// Default chunk size; docs/vault.md records the measurement behind it.
inline constexpr uint32_t kDefaultChunkBytes = 256u << 10;

struct ProducerOptions {
  std::string host;
  std::string volume;
  std::string version_id;
  uint32_t chunk_size_bytes = kDefaultChunkBytes;  // ignored with a base
  bool full = false;
  bool allow_resize = false;
  int threads = 2;
  size_t window_chunks = 0;     // 0: WindowChunks' default for the chunk size
  int zstd_level = 3;           // 0: no compression (payloads travel raw)
  int64_t created_unix_ms = 0;  // 0: now
  // Encrypt under this tenant key; none: plaintext. Each worker thread
  // makes its own ChunkCipher from it.
  std::optional<TenantKey> key;
  // A member of a group's consistency point (stream.proto Header); both
  // empty for a volume on its own.
  std::string group;
  std::string group_version_id;
};

// Chunks in flight: `requested`, or when it is 0 about kWindowBytes of
// them, at least 16 and at most 256. On the bench rig 4 MiB of 64 KiB
// chunks read a full image 37% faster than 16 of them (docs/performance.md).
inline constexpr uint64_t kWindowBytes = 4u << 20;
size_t WindowChunks(size_t requested, uint64_t chunk_size_bytes);

struct ProduceResult {
  stream::Trailer trailer;
  ChunkHash root_hash;
  uint64_t chunks_read = 0;
  uint64_t bytes_read = 0;  // of those chunks: what came off the source
};

// `base` is the index of the version the receiver holds (nullptr: a full
// stream), read once in order alongside the chunks: memory stays bounded
// (chunk_jobs.h, base_entries.h) whatever the volume size. Errors:
// INVALID_ARGUMENT for options that contradict the base (size change
// without allow_resize, names), read errors naming the device, DATA_LOSS
// for a base whose entries do not hash to its root (checked before the
// trailer, so nothing is committed), and whatever the sink or the base's
// source returns. Calls sink.Finish() on success.
absl::StatusOr<ProduceResult> ProduceStream(common::BlockReader& source,
                                            const cbt::ExtentSet& changed,
                                            const cbt::ExtentSet& zeroed,
                                            IndexEntrySource* base,
                                            const ProducerOptions& options,
                                            RecordSink& sink);
// The same with a base in memory (small volumes, tools, tests).
absl::StatusOr<ProduceResult> ProduceStream(common::BlockReader& source,
                                            const cbt::ExtentSet& changed,
                                            const cbt::ExtentSet& zeroed,
                                            const VersionIndex* base,
                                            const ProducerOptions& options,
                                            RecordSink& sink);
// A full stream (no base).
inline absl::StatusOr<ProduceResult> ProduceStream(
    common::BlockReader& source, const cbt::ExtentSet& changed,
    const cbt::ExtentSet& zeroed, std::nullptr_t,
    const ProducerOptions& options, RecordSink& sink) {
  return ProduceStream(source, changed, zeroed,
                       static_cast<IndexEntrySource*>(nullptr), options, sink);
}

}  // namespace cbtd::transport

#endif  // CBTD_TRANSPORT_STREAM_PRODUCER_H_
