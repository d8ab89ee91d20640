#include "transport/stream_codec.h"

#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include <google/protobuf/unknown_field_set.h>

#include "absl/strings/str_cat.h"
#include "common/fs.h"

namespace cbtd::transport {
namespace {

class FdSource : public ByteSource {
 public:
  FdSource(int fd, std::string name) : fd_(fd), name_(std::move(name)) {}
  absl::StatusOr<size_t> Read(std::span<uint8_t> buf) override {
    for (;;) {
      ssize_t n = ::read(fd_, buf.data(), buf.size());
      if (n >= 0) return static_cast<size_t>(n);
      if (errno != EINTR) {
        return common::ErrnoStatus(errno, absl::StrCat("read ", name_));
      }
    }
  }

 private:
  int fd_;
  std::string name_;
};

class StringSource : public ByteSource {
 public:
  explicit StringSource(std::string data) : data_(std::move(data)) {}
  absl::StatusOr<size_t> Read(std::span<uint8_t> buf) override {
    const size_t n = std::min(buf.size(), data_.size() - pos_);
    std::memcpy(buf.data(), data_.data() + pos_, n);
    pos_ += n;
    return n;
  }

 private:
  std::string data_;
  size_t pos_ = 0;
};

class FdSink : public RecordSink {
 public:
  FdSink(int fd, std::string name) : fd_(fd), name_(std::move(name)) {}
  absl::Status Put(const stream::Record& record) override {
    AppendFramed(record, buf_);
    if (buf_.size() >= (1u << 20)) return Flush();
    return absl::OkStatus();
  }
  absl::Status Finish() override {
    if (auto s = Flush(); !s.ok()) return s;
    struct stat st;
    if (::fstat(fd_, &st) == 0 && S_ISREG(st.st_mode) && ::fsync(fd_) != 0) {
      return common::ErrnoStatus(errno, absl::StrCat("fsync ", name_));
    }
    return absl::OkStatus();
  }

 private:
  absl::Status Flush() {
    size_t done = 0;
    while (done < buf_.size()) {
      ssize_t n = ::write(fd_, buf_.data() + done, buf_.size() - done);
      if (n < 0 && errno == EINTR) continue;
      if (n < 0)
        return common::ErrnoStatus(errno, absl::StrCat("write ", name_));
      done += static_cast<size_t>(n);
    }
    buf_.clear();
    return absl::OkStatus();
  }

  int fd_;
  std::string name_;
  std::string buf_;
};

}  // namespace

std::unique_ptr<ByteSource> FdByteSource(int fd, std::string name) {
  return std::make_unique<FdSource>(fd, std::move(name));
}

std::unique_ptr<ByteSource> StringByteSource(std::string data) {
  return std::make_unique<StringSource>(std::move(data));
}

std::unique_ptr<RecordSink> FdRecordSink(int fd, std::string name) {
  return std::make_unique<FdSink>(fd, std::move(name));
}

namespace {

void PutU64(std::string& out, uint64_t v) {
  for (int i = 0; i < 8; ++i) out.push_back(static_cast<char>(v >> (8 * i)));
}

void PutBytes(std::string& out, const std::string& b) {
  const uint64_t n = b.size();
  for (int i = 0; i < 4; ++i) out.push_back(static_cast<char>(n >> (8 * i)));
  out.append(b);
}

}  // namespace

ChunkHash HeaderChecksum(const stream::Header& h) {
  std::string c("cbtd-header-v3", 14);
  c.push_back('\0');
  PutU64(c, h.format_version());
  PutBytes(c, h.source_host());
  PutBytes(c, h.volume_id());
  PutU64(c, h.volume_size_bytes());
  PutU64(c, h.chunk_size_bytes());
  PutBytes(c, h.base_version_id());
  PutBytes(c, h.base_root_hash());
  PutBytes(c, h.new_version_id());
  PutU64(c, static_cast<uint64_t>(h.hash_algorithm()));
  PutU64(c, static_cast<uint64_t>(h.created_unix_ms()));
  PutU64(c, h.allow_resize() ? 1 : 0);
  PutU64(c, static_cast<uint64_t>(h.encryption()));
  PutBytes(c, h.key_fingerprint());
  // Appended only when set, so the checksum of a header without a group
  // is the one earlier releases computed.
  if (!h.group().empty() || !h.group_version_id().empty()) {
    PutBytes(c, h.group());
    PutBytes(c, h.group_version_id());
  }
  return ChunkHash::Sha256(
      {reinterpret_cast<const uint8_t*>(c.data()), c.size()});
}

void SealHeader(stream::Header& h) {
  h.set_header_checksum(HeaderChecksum(h).ToBytes());
}

absl::Status CheckHeaderChecksum(const stream::Header& h) {
  if (!h.GetReflection()->GetUnknownFields(h).empty()) {
    return absl::InvalidArgumentError(
        "stream header holds fields this cbt-receiver does not know, which "
        "its header checksum cannot cover; upgrade cbt-receiver");
  }
  if (h.header_checksum().empty()) {
    return absl::InvalidArgumentError(
        "stream header has no header checksum; nothing was stored");
  }
  if (h.header_checksum() != HeaderChecksum(h).ToBytes()) {
    return absl::InvalidArgumentError(absl::StrCat(
        "stream header checksum mismatch: the header of ", h.source_host(), "/",
        h.volume_id(), "@", h.new_version_id(),
        " was damaged (a changed name, version id, time or encryption would "
        "store the data elsewhere or as something else); nothing was "
        "stored"));
  }
  return absl::OkStatus();
}

void AppendFramed(const stream::Record& record, std::string& out) {
  uint64_t len = record.ByteSizeLong();
  while (len >= 0x80) {
    out.push_back(static_cast<char>((len & 0x7f) | 0x80));
    len >>= 7;
  }
  out.push_back(static_cast<char>(len));
  record.AppendToString(&out);
}

std::string FrameRecords(std::span<const stream::Record> records) {
  std::string out;
  for (const stream::Record& r : records) AppendFramed(r, out);
  return out;
}

absl::StatusOr<bool> StreamReader::Fill(size_t n, bool eof_ok) {
  if (in_end_ - in_pos_ >= n) return true;
  // Keep the unconsumed bytes at the front, with room for the rest.
  if (in_pos_ > 0) {
    std::memmove(in_.data(), in_.data() + in_pos_, in_end_ - in_pos_);
    in_end_ -= in_pos_;
    in_pos_ = 0;
  }
  // Grows by doubling up to kReadAheadBytes: a short stream (or a fuzz
  // input) does not pay for a 1 MiB buffer.
  const size_t want = std::max(
      n, std::min(kReadAheadBytes, std::max<size_t>(2 * in_.size(), 4096)));
  if (in_.size() < want) in_.resize(want);
  while (in_end_ < n) {
    auto got = source_->Read(std::span(in_).subspan(in_end_));
    if (!got.ok()) return got.status();
    if (*got == 0) {
      if (in_end_ == 0 && eof_ok) return false;
      return absl::InvalidArgumentError(absl::StrCat(
          "stream truncated at byte ", offset_ + in_end_,
          ": it ends inside a record (the sender stopped or the file is "
          "incomplete)"));
    }
    in_end_ += *got;
  }
  return true;
}

absl::StatusOr<bool> StreamReader::AtEnd() {
  auto got = Fill(1, /*eof_ok=*/true);
  if (!got.ok()) return got.status();
  if (*got) Consume(1);
  return !*got;
}

absl::StatusOr<std::optional<stream::Record>> StreamReader::Next() {
  for (;;) {
    const uint64_t record_start = offset_;
    uint64_t len = 0;
    for (int shift = 0;; shift += 7) {
      if (shift > 63) {
        return absl::InvalidArgumentError(absl::StrCat(
            "stream corrupt at byte ", record_start, ": bad record length"));
      }
      auto got = Fill(1, /*eof_ok=*/shift == 0);
      if (!got.ok()) return got.status();
      if (!*got) return std::nullopt;  // clean end at a record boundary
      const uint8_t b = in_[in_pos_];
      Consume(1);
      len |= static_cast<uint64_t>(b & 0x7f) << shift;
      if ((b & 0x80) == 0) break;
    }
    if (len > kMaxRecordBytes) {
      return absl::InvalidArgumentError(absl::StrCat(
          "stream corrupt at byte ", record_start, ": record length ", len,
          " exceeds the limit of ", kMaxRecordBytes, " bytes"));
    }
    if (auto got = Fill(len, false); !got.ok()) return got.status();
    stream::Record record;
    const bool parsed =
        record.ParseFromArray(in_.data() + in_pos_, static_cast<int>(len));
    Consume(len);
    if (!parsed) {
      return absl::InvalidArgumentError(
          absl::StrCat("stream corrupt at byte ", record_start,
                       ": record does not parse as a cbtd.stream.Record"));
    }
    if (record.body_case() != stream::Record::BODY_NOT_SET) return record;
    if (record.required()) {
      return absl::InvalidArgumentError(absl::StrCat(
          "stream at byte ", record_start,
          " holds a required record type this cbt-receiver does not know; "
          "upgrade cbt-receiver to read it"));
    }
    ++skipped_;  // unknown optional record: skip, as the format promises
  }
}

}  // namespace cbtd::transport
