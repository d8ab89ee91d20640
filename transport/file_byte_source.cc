#include "transport/file_byte_source.h"

#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <deque>
#include <vector>

#include "absl/strings/str_cat.h"

namespace cbtd::transport {
namespace {

struct FreeDeleter {
  void operator()(uint8_t* p) const { std::free(p); }
};

class BlockSource : public ByteSource {
 public:
  BlockSource(std::unique_ptr<common::BlockReader> reader,
              FileSourceOptions options)
      : reader_(std::move(reader)),
        options_(options),
        size_(reader_->SizeBytes()),
        align_(std::max<size_t>(1, reader_->Alignment())) {
    options_.depth = std::max<size_t>(1, options_.depth);
    options_.block_bytes =
        std::max(align_, options_.block_bytes / align_ * align_);
    aio_ = reader_->NewAsyncReader(options_.depth);
  }

  ~BlockSource() override {
    aio_.reset();  // waits for the reads still in flight into blocks_
  }

  absl::StatusOr<size_t> Read(std::span<uint8_t> buf) override {
    if (buf.empty()) return 0;
    while (pos_ == len_) {
      if (!first_error_.ok()) return first_error_;
      if (auto s = SubmitAhead(); !s.ok()) return Failed(s);
      if (pending_.empty()) return 0;  // end of input
      if (auto s = AwaitOldest(); !s.ok()) return Failed(s);
    }
    const size_t n = std::min(buf.size(), len_ - pos_);
    std::memcpy(buf.data(), current_->data() + pos_, n);
    pos_ += n;
    return n;
  }

 private:
  struct Block {
    std::unique_ptr<uint8_t, FreeDeleter> mem;
    uint64_t offset = 0;
    size_t length = 0;  // bytes of the file it holds
    bool done = false;
    absl::Status status;
    uint8_t* data() const { return mem.get(); }
  };

  absl::Status Failed(absl::Status s) {
    first_error_ = s;
    return s;
  }

  // Starts reads until `depth` are pending or the file is all asked for.
  absl::Status SubmitAhead() {
    while (pending_.size() < options_.depth && next_ < size_) {
      Block* b = FreeBlock();
      if (b == nullptr) {
        return absl::ResourceExhaustedError(absl::StrCat(
            "out of memory for read buffers of ", reader_->name()));
      }
      b->offset = next_;
      b->length = static_cast<size_t>(
          std::min<uint64_t>(options_.block_bytes, size_ - next_));
      b->done = false;
      // Aligned length: the reader may run on up to its alignment.
      const size_t io = (b->length + align_ - 1) / align_ * align_;
      const std::span<uint8_t> target(b->data(), io);
      if (aio_ != nullptr) {
        if (auto s = aio_->Submit(b - blocks_.data(), b->offset, target);
            !s.ok()) {
          return s;
        }
      } else {
        b->status = reader_->ReadAt(b->offset, target);
        b->done = true;
      }
      pending_.push_back(b);
      next_ += b->length;
    }
    return absl::OkStatus();
  }

  // A block not pending and not being consumed, allocated on first use.
  Block* FreeBlock() {
    if (blocks_.empty()) blocks_.resize(options_.depth + 1);
    for (Block& b : blocks_) {
      const bool busy =
          &b == current_ ||
          std::find(pending_.begin(), pending_.end(), &b) != pending_.end();
      if (busy) continue;
      if (b.mem == nullptr) {
        void* mem = nullptr;
        if (::posix_memalign(&mem, std::max<size_t>(align_, 64),
                             options_.block_bytes) != 0) {
          return nullptr;
        }
        b.mem.reset(static_cast<uint8_t*>(mem));
      }
      return &b;
    }
    return nullptr;
  }

  // Waits for the oldest pending read and makes it the current block.
  absl::Status AwaitOldest() {
    Block* oldest = pending_.front();
    while (!oldest->done) {
      auto reaped = aio_->Reap(1);
      if (!reaped.ok()) return reaped.status();
      for (const common::AsyncReader::Completion& c : *reaped) {
        blocks_[c.tag].done = true;
        blocks_[c.tag].status = c.status;
      }
    }
    pending_.pop_front();
    if (!oldest->status.ok()) return oldest->status;
    current_ = oldest;
    pos_ = 0;
    len_ = oldest->length;
    return absl::OkStatus();
  }

  std::unique_ptr<common::BlockReader> reader_;
  FileSourceOptions options_;
  const uint64_t size_;
  const size_t align_;
  std::unique_ptr<common::AsyncReader> aio_;  // null: synchronous reads
  std::vector<Block> blocks_;   // depth + 1: the reads and the current one
  std::deque<Block*> pending_;  // submitted, in file order
  Block* current_ = nullptr;    // being consumed: [pos_, len_)
  size_t pos_ = 0;
  size_t len_ = 0;
  uint64_t next_ = 0;  // next offset to submit
  absl::Status first_error_;
};

}  // namespace

std::unique_ptr<ByteSource> BlockReaderByteSource(
    std::unique_ptr<common::BlockReader> reader, FileSourceOptions options) {
  return std::make_unique<BlockSource>(std::move(reader), options);
}

absl::StatusOr<std::unique_ptr<ByteSource>> FileByteSource(
    const std::string& path, FileSourceOptions options) {
  auto reader = common::OpenBlockReader(path);
  if (!reader.ok()) return reader.status();
  return BlockReaderByteSource(*std::move(reader), options);
}

}  // namespace cbtd::transport
