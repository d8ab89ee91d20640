// The offline stream framing: every Record is written as a varint length
// followed by the serialized Record (protobuf's delimited format). Used by
// `cbtctl send > file` and `cbt-receiver receive < file`.
//
// Reader rules:
//  * end of input exactly at a record boundary is the end of the stream;
//    anywhere else it is INVALID_ARGUMENT "stream truncated ...";
//  * a length above kMaxRecordBytes is refused before allocating;
//  * a record whose body this build does not know is skipped, unless its
//    `required` flag is set, which refuses the stream.
//
// Thread-safety: none; one reader or writer per thread.
#ifndef CBTD_TRANSPORT_STREAM_CODEC_H_
#define CBTD_TRANSPORT_STREAM_CODEC_H_

#include <cstdint>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "transport/chunk_hash.h"
#include "transport/proto/stream.pb.h"
#include "transport/record_sink.h"

namespace cbtd::transport {

// Format version this build writes and reads (Header.format_version).
// 2: the header carries header_checksum. 3: the header says whether and
// under which key the chunks are sealed (encryption, key_fingerprint), and
// the checksum covers that. Formats 1 and 2 are refused.
inline constexpr uint32_t kStreamFormatVersion = 3;
// Largest record accepted: a 16 MiB chunk plus headroom.
inline constexpr uint64_t kMaxRecordBytes = 17u << 20;
// Largest chunk size a stream may use.
inline constexpr uint32_t kMaxChunkBytes = 16u << 20;

// Where the reader's bytes come from.
class ByteSource {
 public:
  virtual ~ByteSource() = default;
  // Reads up to buf.size() bytes; 0 only at end of input.
  virtual absl::StatusOr<size_t> Read(std::span<uint8_t> buf) = 0;
};

// Reads from a file descriptor it does not own (e.g. stdin); `name` is used
// in messages.
std::unique_ptr<ByteSource> FdByteSource(int fd, std::string name);
// Reads from a string (tests, in-memory streams).
std::unique_ptr<ByteSource> StringByteSource(std::string data);

class StreamReader {
 public:
  explicit StreamReader(std::unique_ptr<ByteSource> source)
      : source_(std::move(source)) {}
  // The next known record; std::nullopt at a clean end of stream.
  absl::StatusOr<std::optional<stream::Record>> Next();
  // True when the input ends here; false when any byte follows (that byte
  // is consumed). For "nothing may follow the trailer".
  absl::StatusOr<bool> AtEnd();
  // Bytes consumed so far (for messages: "at byte N").
  uint64_t offset() const { return offset_; }
  uint64_t skipped_records() const { return skipped_; }

 private:
  // Makes at least `n` bytes available at in_[in_pos_]: reads ahead from
  // the source (up to kReadAheadBytes or `n`, whichever is more), so most
  // records cost no system call and parse where they were read. False at
  // the end of input before any byte when `eof_ok`; error if the input
  // ends before `n` bytes.
  absl::StatusOr<bool> Fill(size_t n, bool eof_ok);
  // Consumes `n` available bytes.
  void Consume(size_t n) {
    in_pos_ += n;
    offset_ += n;
  }

  static constexpr size_t kReadAheadBytes = 1u << 20;
  std::unique_ptr<ByteSource> source_;
  uint64_t offset_ = 0;  // bytes consumed
  uint64_t skipped_ = 0;
  std::vector<uint8_t> in_;  // read ahead: in_[in_pos_, in_end_) unconsumed
  size_t in_pos_ = 0;
  size_t in_end_ = 0;
};

// The header checksum of format 3: SHA-256 over "cbtd-header-v3" 0x00, then
// every Header field but header_checksum in field order (1 to 11, then 13
// and 14), each as u64le (integers, enums, bools; created_unix_ms as its
// two's complement) or u32le length + bytes (strings, bytes).
// docs/vault.md has the layout.
ChunkHash HeaderChecksum(const stream::Header& h);
// Sets h.header_checksum; a writer calls it once every field is final.
void SealHeader(stream::Header& h);
// INVALID_ARGUMENT "header checksum ..." unless h.header_checksum matches
// and the header holds no field this build does not know (which the
// checksum could not cover).
absl::Status CheckHeaderChecksum(const stream::Header& h);

// Appends the framing of `record` to `out`.
void AppendFramed(const stream::Record& record, std::string& out);

// RecordSink writing the framing to a file descriptor it does not own.
// Buffers up to ~1 MiB; Finish() flushes and, for a regular file, fsyncs.
std::unique_ptr<RecordSink> FdRecordSink(int fd, std::string name);

// RecordSink collecting records in memory (tests, tools).
class VectorRecordSink : public RecordSink {
 public:
  absl::Status Put(const stream::Record& r) override {
    records.push_back(r);
    return absl::OkStatus();
  }
  absl::Status Finish() override {
    finished = true;
    return absl::OkStatus();
  }
  std::vector<stream::Record> records;
  bool finished = false;
};

// Frames a list of records into one string.
std::string FrameRecords(std::span<const stream::Record> records);

}  // namespace cbtd::transport

#endif  // CBTD_TRANSPORT_STREAM_CODEC_H_
