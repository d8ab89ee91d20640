// A ByteSource over a stream file (or block device) read front to back
// with direct, overlapped reads: a few large aligned reads in flight
// (libaio through common::BlockReader), so the disk streams while the
// receiver parses and stores, and no byte passes through the page cache.
// On this rig a buffered read's copy out of the page cache cost more CPU
// than everything else the receiver does with the bytes
// (docs/performance.md). Where direct I/O is refused (tmpfs) or libaio is
// unavailable it reads with pread, still correct.
//
// Thread-safety: one reader thread, like every ByteSource.
#ifndef CBTD_TRANSPORT_FILE_BYTE_SOURCE_H_
#define CBTD_TRANSPORT_FILE_BYTE_SOURCE_H_

#include <cstddef>
#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "common/block_reader.h"
#include "transport/stream_codec.h"

namespace cbtd::transport {

struct FileSourceOptions {
  size_t block_bytes = 4u << 20;  // bytes per read; a multiple of 4096
  size_t depth = 4;               // reads in flight
};

// Reads everything `reader` holds, in order. The size is the reader's at
// open: bytes appended later are not read.
std::unique_ptr<ByteSource> BlockReaderByteSource(
    std::unique_ptr<common::BlockReader> reader,
    FileSourceOptions options = {});

// Opens `path` (a regular file or block device) for BlockReaderByteSource.
// Errors name the path; a pipe or other special file is INVALID_ARGUMENT
// (read those with FdByteSource).
absl::StatusOr<std::unique_ptr<ByteSource>> FileByteSource(
    const std::string& path, FileSourceOptions options = {});

}  // namespace cbtd::transport

#endif  // CBTD_TRANSPORT_FILE_BYTE_SOURCE_H_
