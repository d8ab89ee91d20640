#include "transport/index_source.h"

#include <algorithm>
#include <optional>
#include <utility>

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

std::unique_ptr<IndexEntrySource> SourceOf(const VersionIndex& index) {
  return std::make_unique<MemorySource>(index);
}

std::unique_ptr<IndexEntrySource> SourceOf(VersionIndex&& index) {
  return std::make_unique<MemorySource>(std::move(index));
}

}  // namespace cbtd::transport
