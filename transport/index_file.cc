#include "transport/index_file.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cstring>
#include <vector>

#include "absl/strings/str_cat.h"
#include "common/fs.h"
#include "common/unique_fd.h"

namespace cbtd::transport {
namespace {

absl::Status Damaged(const std::string& path, std::string_view why) {
  return absl::DataLossError(
      absl::StrCat("index file ", path, " is damaged: ", std::string(why)));
}

class FileIndexSource final : public IndexEntrySource {
 public:
  FileIndexSource(std::string path, common::UniqueFd fd)
      : path_(std::move(path)), fd_(std::move(fd)) {}

  // Reads and checks the head; `size` is the file's.
  absl::Status Open(uint64_t size) {
    std::string prefix(kIndexPrefixBytes, '\0');
    if (auto s = ReadExactly(0, prefix.data(), prefix.size()); !s.ok()) {
      return s;
    }
    auto json_len = ParseIndexPrefix(prefix, path_);
    if (!json_len.ok()) return json_len.status();
    std::string json(*json_len, '\0');
    if (auto s = ReadExactly(prefix.size(), json.data(), json.size());
        !s.ok()) {
      return s;
    }
    auto meta = ParseIndexMetadata(json, path_);
    if (!meta.ok()) return meta.status();
    meta_ = *std::move(meta);
    count_ = ChunkCount(meta_.volume_size_bytes, meta_.chunk_size_bytes);
    offset_ = prefix.size() + json.size();
    if (size != offset_ + (count_ + 1) * ChunkHash::kSize) {
      return Damaged(path_, absl::StrCat("its size is ", size,
                                         " bytes; its metadata says ", count_,
                                         " entries"));
    }
    sum_.Update(prefix.data(), prefix.size());
    sum_.Update(json.data(), json.size());
    return absl::OkStatus();
  }

  const IndexMetadata& metadata() const override { return meta_; }

  absl::StatusOr<std::span<const ChunkHash>> Next(size_t max) override {
    if (!failed_.ok()) return failed_;
    const uint64_t n =
        std::min<uint64_t>({max, count_ - read_, kIndexBatchEntries});
    if (n == 0) {
      if (auto s = CheckSum(); !s.ok()) return failed_ = s;
      return std::span<const ChunkHash>();
    }
    raw_.resize(n * ChunkHash::kSize);
    if (auto s = ReadExactly(offset_, raw_.data(), raw_.size()); !s.ok()) {
      return failed_ = s;
    }
    sum_.Update(raw_.data(), raw_.size());
    offset_ += raw_.size();
    read_ += n;
    entries_.resize(n);
    for (uint64_t k = 0; k < n; ++k) {
      std::array<uint8_t, ChunkHash::kSize> b;
      std::memcpy(b.data(), raw_.data() + k * ChunkHash::kSize, b.size());
      entries_[k] = ChunkHash(b);
    }
    return std::span<const ChunkHash>(entries_);
  }

 private:
  absl::Status ReadExactly(uint64_t offset, char* out, size_t len) {
    for (size_t done = 0; done < len;) {
      const ssize_t got = ::pread(fd_.get(), out + done, len - done,
                                  static_cast<off_t>(offset + done));
      if (got < 0 && errno == EINTR) continue;
      if (got < 0) return common::ErrnoStatus(errno, "read " + path_);
      if (got == 0) return Damaged(path_, "it ends early");
      done += static_cast<size_t>(got);
    }
    return absl::OkStatus();
  }

  absl::Status CheckSum() {
    if (checked_) return absl::OkStatus();
    std::array<char, ChunkHash::kSize> stored;
    if (auto s = ReadExactly(offset_, stored.data(), stored.size()); !s.ok()) {
      return s;
    }
    const auto sum = sum_.Finish();
    if (std::memcmp(sum.data(), stored.data(), sum.size()) != 0) {
      return Damaged(path_, "checksum mismatch");
    }
    checked_ = true;
    return absl::OkStatus();
  }

  const std::string path_;
  common::UniqueFd fd_;
  IndexMetadata meta_;
  uint64_t count_ = 0;
  uint64_t read_ = 0;
  uint64_t offset_ = 0;  // of the next entry, then of the checksum
  Sha256Stream sum_;
  bool checked_ = false;
  absl::Status failed_;
  std::string raw_;
  std::vector<ChunkHash> entries_;
};

}  // namespace

absl::StatusOr<std::unique_ptr<IndexEntrySource>> OpenIndexFile(
    const std::string& path) {
  common::UniqueFd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
  if (!fd) return common::ErrnoStatus(errno, "open " + path);
  struct stat st;
  if (::fstat(fd.get(), &st) != 0) {
    return common::ErrnoStatus(errno, "stat " + path);
  }
  auto source = std::make_unique<FileIndexSource>(path, std::move(fd));
  if (auto s = source->Open(static_cast<uint64_t>(st.st_size)); !s.ok()) {
    return s;
  }
  return source;
}

}  // namespace cbtd::transport
