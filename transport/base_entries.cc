#include "transport/base_entries.h"

#include <algorithm>
#include <array>

#include "absl/strings/str_cat.h"

namespace cbtd::transport {
namespace {

// Zero entries to hash in bulk.
constexpr size_t kZeroBlock = 1024;
const std::array<ChunkHash, kZeroBlock> kZeros{};

}  // namespace

BaseEntries::BaseEntries(IndexEntrySource* source, uint64_t peek_limit,
                         size_t capacity)
    : source_(source),
      peek_limit_(peek_limit),
      capacity_(std::max(capacity, kIndexBatchEntries)) {
  if (source_ == nullptr) {
    ended_ = true;
    return;
  }
  const IndexMetadata& m = source_->metadata();
  if (m.chunk_size_bytes > 0) {
    count_ = ChunkCount(m.volume_size_bytes, m.chunk_size_bytes);
    root_.emplace(m.volume_size_bytes, m.chunk_size_bytes);
  }
}

std::optional<ChunkHash> BaseEntries::Peek(uint64_t index) const {
  if (index >= peek_limit_) return std::nullopt;
  std::lock_guard l(mu_);
  if (index < next_ || index >= loaded_) return std::nullopt;
  return buf_[head_ + (index - next_)];
}

absl::Status BaseEntries::Damaged(std::string_view what) const {
  return absl::DataLossError(absl::StrCat(
      "the base index of version ", source_->metadata().version_id, " ",
      std::string(what),
      "; nothing was committed: try again, or send a full (--full) if the "
      "receiver's copy of the base is damaged (cbt-receiver verify)"));
}

absl::StatusOr<bool> BaseEntries::LoadBatch(size_t room) {
  if (ended_ || !root_) return false;
  auto got = source_->Next(std::min(room, kIndexBatchEntries));
  if (!got.ok()) {
    ended_ = true;
    return got.status();
  }
  if (got->empty()) {
    ended_ = true;
    return false;
  }
  if (got->size() > count_ - loaded_) {
    ended_ = true;
    return Damaged(absl::StrCat("holds more than its ", count_, " entries"));
  }
  root_->Add(*got);
  std::lock_guard l(mu_);
  if (head_ > 0 && buf_.size() + got->size() > capacity_) {
    buf_.erase(buf_.begin(), buf_.begin() + static_cast<ptrdiff_t>(head_));
    head_ = 0;
  }
  buf_.insert(buf_.end(), got->begin(), got->end());
  loaded_ += got->size();
  return true;
}

absl::Status BaseEntries::Fill() {
  for (;;) {
    const size_t held = buf_.size() - head_;
    if (held + kIndexBatchEntries > capacity_) return absl::OkStatus();
    absl::StatusOr<bool> more = LoadBatch(capacity_ - held);
    if (!more.ok()) return more.status();
    if (!*more) return absl::OkStatus();
  }
}

absl::StatusOr<bool> BaseEntries::Need() {
  while (next_ >= loaded_) {
    if (next_ >= count_) return false;
    absl::StatusOr<bool> more = LoadBatch(kIndexBatchEntries);
    if (!more.ok()) return more.status();
    if (!*more) {
      return Damaged(absl::StrCat("ended after ", loaded_, " of its ", count_,
                                  " entries"));
    }
  }
  return true;
}

absl::StatusOr<std::span<const ChunkHash>> BaseEntries::TakeSome(uint64_t end) {
  absl::StatusOr<bool> have = Need();
  if (!have.ok()) return have.status();
  if (!*have) {  // past the base's end
    const size_t n =
        static_cast<size_t>(std::min<uint64_t>(end - next_, kZeroBlock));
    next_ += n;
    return std::span<const ChunkHash>(kZeros.data(), n);
  }
  const size_t n = static_cast<size_t>(std::min(end, loaded_) - next_);
  // Peek never reads below next_, so the entries stay put until the next
  // call changes buf_.
  std::span<const ChunkHash> out(buf_.data() + head_, n);
  std::lock_guard l(mu_);
  head_ += n;
  next_ += n;
  return out;
}

absl::Status BaseEntries::TakeUpTo(uint64_t end, RootHasher& hasher) {
  while (next_ < end) {
    absl::StatusOr<std::span<const ChunkHash>> some = TakeSome(end);
    if (!some.ok()) return some.status();
    hasher.Add(*some);
  }
  return absl::OkStatus();
}

absl::StatusOr<ChunkHash> BaseEntries::Take() {
  absl::StatusOr<std::span<const ChunkHash>> one = TakeSome(next_ + 1);
  if (!one.ok()) return one.status();
  return (*one)[0];
}

absl::Status BaseEntries::Finish() {
  if (source_ == nullptr) return absl::OkStatus();
  while (!ended_) {
    absl::StatusOr<bool> more = LoadBatch(kIndexBatchEntries);
    if (!more.ok()) return more.status();
    std::lock_guard l(mu_);
    buf_.clear();
    head_ = 0;
    next_ = loaded_;
  }
  if (!root_) return Damaged("has a chunk size of 0");
  if (loaded_ != count_) {
    return Damaged(
        absl::StrCat("ended after ", loaded_, " of its ", count_, " entries"));
  }
  if (root_->Finish() != source_->metadata().root_hash) {
    return Damaged("does not hash to its root hash");
  }
  return absl::OkStatus();
}

}  // namespace cbtd::transport
