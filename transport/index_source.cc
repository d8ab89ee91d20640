#include "transport/index_source.h"

#include <algorithm>
#include <optional>
#include <utility>

#include "absl/strings/str_cat.h"

namespace cbtd::transport {
namespace {

class MemorySource final : public IndexEntrySource {
 public:
  explicit MemorySource(const VersionIndex& index) : index_(index) {}
  explicit MemorySource(VersionIndex&& index)
      : owned_(std::move(index)), index_(*owned_) {}

  const IndexMetadata& metadata() const override { return index_; }

  absl::StatusOr<std::span<const ChunkHash>> Next(size_t max) override {
    const size_t n = std::min(max, index_.entries.size() - next_);
    std::span<const ChunkHash> out(index_.entries.data() + next_, n);
    next_ += n;
    return out;
  }

 private:
  std::optional<VersionIndex> owned_;
  const VersionIndex& index_;
  size_t next_ = 0;
};

}  // namespace

CheckedEntries::CheckedEntries(IndexEntrySource& source, std::string what)
    : source_(source),
      what_(std::move(what)),
      root_(source.metadata().volume_size_bytes,
            source.metadata().chunk_size_bytes) {
  const IndexMetadata& m = source_.metadata();
  if (m.chunk_size_bytes > 0) {
    count_ = ChunkCount(m.volume_size_bytes, m.chunk_size_bytes);
  }
}

absl::Status CheckedEntries::Damaged(std::string_view what) const {
  return absl::DataLossError(
      absl::StrCat(what_, " is damaged: it ", std::string(what)));
}

absl::StatusOr<bool> CheckedEntries::Load(uint64_t max,
                                          std::vector<ChunkHash>* out) {
  if (metadata().chunk_size_bytes == 0) {
    return Damaged("gives a chunk size of 0");
  }
  auto got = source_.Next(
      std::max<uint64_t>(1, std::min<uint64_t>(max, kIndexBatchEntries)));
  if (!got.ok()) return got.status();
  if (got->empty()) return false;
  if (got->size() > count_ - read_) {
    return Damaged(absl::StrCat("holds more than its ", count_, " entries"));
  }
  root_.Add(*got);
  read_ += got->size();
  if (out != nullptr) out->insert(out->end(), got->begin(), got->end());
  return true;
}

absl::Status CheckedEntries::Read(uint64_t n, std::vector<ChunkHash>& out) {
  out.clear();
  while (out.size() < n) {
    absl::StatusOr<bool> more = Load(n - out.size(), &out);
    if (!more.ok()) return more.status();
    if (!*more) {
      return Damaged(
          absl::StrCat("ends after ", read_, " of its ", count_, " entries"));
    }
  }
  return absl::OkStatus();
}

absl::Status CheckedEntries::Finish() {
  for (;;) {
    absl::StatusOr<bool> more = Load(kIndexBatchEntries, nullptr);
    if (!more.ok()) return more.status();
    if (!*more) break;
  }
  if (read_ != count_) {
    return Damaged(
        absl::StrCat("ends after ", read_, " of its ", count_, " entries"));
  }
  if (root_.Finish() != metadata().root_hash) {
    return Damaged("does not match its root hash");
  }
  return absl::OkStatus();
}

std::unique_ptr<IndexEntrySource> SourceOf(const VersionIndex& index) {
  return std::make_unique<MemorySource>(index);
}

std::unique_ptr<IndexEntrySource> SourceOf(VersionIndex&& index) {
  return std::make_unique<MemorySource>(std::move(index));
}

}  // namespace cbtd::transport
