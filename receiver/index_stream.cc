#include "receiver/index_stream.h"

#include <algorithm>
#include <cstring>

#include "absl/strings/str_cat.h"

namespace cbtd::receiver {
namespace {

absl::Status Damaged(const std::string& key, std::string_view why) {
  return absl::DataLossError(absl::StrCat("index ", key,
                                          " is damaged: ", std::string(why),
                                          "; run `cbt-receiver verify`"));
}

}  // namespace

// ---- IndexReader

absl::StatusOr<std::unique_ptr<IndexReader>> IndexReader::Open(
    ObjectStore& store, std::string key) {
  auto object = store.OpenReader(key);
  if (!object.ok()) return object.status();
  std::unique_ptr<IndexReader> r(
      new IndexReader(*std::move(object), std::move(key)));
  if (absl::Status s = r->ReadHead(); !s.ok()) return s;
  return r;
}

absl::Status IndexReader::ReadHead() {
  const uint64_t size = object_->size_bytes();
  if (size < transport::kIndexPrefixBytes + ChunkHash::kSize) {
    return Damaged(key_, "not a cbtd index (bad magic or too short)");
  }
  auto prefix = object_->ReadAt(0, transport::kIndexPrefixBytes);
  if (!prefix.ok()) return prefix.status();
  auto json_len = transport::ParseIndexPrefix(*prefix, key_);
  if (!json_len.ok()) return json_len.status();
  if (*json_len > size - transport::kIndexPrefixBytes - ChunkHash::kSize) {
    return Damaged(key_, "metadata length");
  }
  auto json = object_->ReadAt(transport::kIndexPrefixBytes, *json_len);
  if (!json.ok()) return json.status();
  auto meta = transport::ParseIndexMetadata(*json, key_);
  if (!meta.ok()) return meta.status();
  meta_ = *std::move(meta);
  count_ =
      transport::ChunkCount(meta_.volume_size_bytes, meta_.chunk_size_bytes);
  entries_offset_ = transport::kIndexPrefixBytes + *json_len;
  // Compared by division: a hostile volume size must not overflow.
  const uint64_t entry_bytes = size - entries_offset_ - ChunkHash::kSize;
  if (entry_bytes % ChunkHash::kSize != 0 ||
      entry_bytes / ChunkHash::kSize != count_) {
    return Damaged(key_, absl::StrCat("expected ", count_, " entries"));
  }
  sum_.Update(prefix->data(), prefix->size());
  sum_.Update(json->data(), json->size());
  root_ = std::make_unique<transport::RootHasher>(meta_.volume_size_bytes,
                                                  meta_.chunk_size_bytes);
  return absl::OkStatus();
}

absl::Status IndexReader::Fail(absl::Status s) {
  failed_ = s;
  return s;
}

// Reads the next block from the store into block_, feeding both hashes.
absl::Status IndexReader::FillBlock() {
  const uint64_t n = std::min<uint64_t>(kIndexBlockEntries, count_ - fetched_);
  auto raw = object_->ReadAt(entries_offset_ + fetched_ * ChunkHash::kSize,
                             static_cast<uint32_t>(n * ChunkHash::kSize));
  if (!raw.ok()) return raw.status();
  sum_.Update(raw->data(), raw->size());
  block_.resize(n);
  std::memcpy(static_cast<void*>(block_.data()), raw->data(), raw->size());
  root_->Add(block_);
  fetched_ += n;
  block_next_ = 0;
  return absl::OkStatus();
}

absl::StatusOr<std::span<const ChunkHash>> IndexReader::Next(size_t max) {
  if (!failed_.ok()) return failed_;
  if (position_ == count_) return std::span<const ChunkHash>();
  if (block_next_ == block_.size()) {
    if (absl::Status s = FillBlock(); !s.ok()) return Fail(s);
  }
  const size_t n = std::min(max, block_.size() - block_next_);
  std::span<const ChunkHash> out(block_.data() + block_next_, n);
  block_next_ += n;
  position_ += n;
  return out;
}

absl::Status IndexReader::Skip(uint64_t count) {
  while (count > 0) {
    auto got = Next(
        static_cast<size_t>(std::min<uint64_t>(count, kIndexBlockEntries)));
    if (!got.ok()) return got.status();
    if (got->empty()) break;
    count -= got->size();
  }
  return absl::OkStatus();
}

absl::Status IndexReader::Finish() {
  if (absl::Status s = Skip(count_ - position_); !s.ok()) return s;
  const uint64_t end = entries_offset_ + count_ * ChunkHash::kSize;
  auto trailer = object_->ReadAt(end, ChunkHash::kSize);
  if (!trailer.ok()) return Fail(trailer.status());
  const auto sum = sum_.Finish();
  if (std::memcmp(sum.data(), trailer->data(), sum.size()) != 0) {
    return Fail(Damaged(key_, "checksum mismatch"));
  }
  if (root_->Finish() != meta_.root_hash) {
    return Fail(Damaged(key_, "root hash does not match its entries"));
  }
  // Spent: the hashes are finished.
  failed_ = absl::FailedPreconditionError(
      absl::StrCat("index reader of ", key_, " already finished"));
  return absl::OkStatus();
}

// ---- IndexWriter

absl::StatusOr<std::unique_ptr<IndexWriter>> IndexWriter::Create(
    ObjectStore& store, std::string key, IndexMetadata meta) {
  if (meta.chunk_size_bytes == 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("index ", key, ": chunk size 0"));
  }
  auto staging = store.OpenWriter(key);
  if (!staging.ok()) return staging.status();
  const uint64_t count =
      transport::ChunkCount(meta.volume_size_bytes, meta.chunk_size_bytes);
  return std::unique_ptr<IndexWriter>(new IndexWriter(
      store, std::move(key), std::move(meta), count, *std::move(staging)));
}

IndexWriter::IndexWriter(ObjectStore& store, std::string key,
                         IndexMetadata meta, uint64_t count,
                         std::unique_ptr<ObjectWriter> staging)
    : store_(store),
      key_(std::move(key)),
      meta_(std::move(meta)),
      count_(count),
      staging_(std::move(staging)),
      root_(meta_.volume_size_bytes, meta_.chunk_size_bytes) {
  buffer_.reserve(kIndexBlockEntries * ChunkHash::kSize);
}

absl::Status IndexWriter::Flush() {
  if (buffer_.empty()) return absl::OkStatus();
  if (absl::Status s = staging_->Append(buffer_); !s.ok()) return s;
  buffer_.clear();
  return absl::OkStatus();
}

absl::Status IndexWriter::Append(std::span<const ChunkHash> entries) {
  if (finished_ || entries.size() > count_ - position_) {
    return absl::FailedPreconditionError(absl::StrCat(
        "index ", key_, ": ", entries.size(), " entries past ", position_,
        finished_ ? " after the end" : absl::StrCat(" of ", count_)));
  }
  root_.Add(entries);
  position_ += entries.size();
  for (const ChunkHash& e : entries) {
    buffer_.append(reinterpret_cast<const char*>(e.bytes().data()),
                   ChunkHash::kSize);
    if (buffer_.size() >= kIndexBlockEntries * ChunkHash::kSize) {
      if (absl::Status s = Flush(); !s.ok()) return s;
    }
  }
  return absl::OkStatus();
}

absl::Status IndexWriter::AppendZeros(uint64_t count) {
  static const std::vector<ChunkHash> kZeros(kIndexBlockEntries);
  while (count > 0) {
    const size_t n =
        static_cast<size_t>(std::min<uint64_t>(count, kZeros.size()));
    if (absl::Status s = Append({kZeros.data(), n}); !s.ok()) return s;
    count -= n;
  }
  return absl::OkStatus();
}

absl::StatusOr<ChunkHash> IndexWriter::Finish() {
  if (finished_ || position_ != count_) {
    return absl::FailedPreconditionError(
        absl::StrCat("index ", key_, ": finished with ", position_, " of ",
                     count_, " entries"));
  }
  finished_ = true;
  if (absl::Status s = Flush(); !s.ok()) return s;
  meta_.root_hash = root_.Finish();
  return meta_.root_hash;
}

absl::Status IndexWriter::Publish(const transport::IndexStats& stats) {
  if (!finished_ || !staging_) {
    return absl::FailedPreconditionError(
        absl::StrCat("index ", key_, ": publish before finish, or twice"));
  }
  meta_.stats = stats;
  auto out = store_.OpenWriter(key_);
  if (!out.ok()) return out.status();
  transport::Sha256Stream sum;
  auto put = [&](std::string_view bytes) {
    sum.Update(bytes.data(), bytes.size());
    return (*out)->Append(bytes);
  };
  if (absl::Status s = put(transport::EncodeIndexHead(meta_, count_));
      !s.ok()) {
    return s;
  }
  const uint64_t total = staging_->size_bytes();
  for (uint64_t off = 0; off < total;) {
    const auto n = static_cast<uint32_t>(
        std::min<uint64_t>(total - off, kIndexBlockEntries * ChunkHash::kSize));
    auto block = staging_->ReadBack(off, n);
    if (!block.ok()) return block.status();
    if (absl::Status s = put(*block); !s.ok()) return s;
    off += n;
  }
  const auto digest = sum.Finish();
  if (absl::Status s = (*out)->Append(std::string_view(
          reinterpret_cast<const char*>(digest.data()), digest.size()));
      !s.ok()) {
    return s;
  }
  staging_.reset();  // discarded: the staged copy is no longer needed
  const uint64_t index_bytes = (*out)->size_bytes();
  if (absl::Status s = (*out)->Publish(); !s.ok()) return s;
  if (!summary_key_.empty()) {
    // Best effort: a listing without it reads the index through instead.
    (void)WriteIndexSummary(store_, summary_key_,
                            transport::EncodeIndexHead(meta_, count_),
                            index_bytes);
  }
  return absl::OkStatus();
}

namespace {

constexpr std::string_view kSummaryMagic = "CBTDSUM1";

void PutLe64(std::string& out, uint64_t v) {
  for (int i = 0; i < 8; ++i) out.push_back(static_cast<char>(v >> (8 * i)));
}
uint64_t GetLe64(const char* p) {
  uint64_t v = 0;
  for (int i = 7; i >= 0; --i) v = (v << 8) | static_cast<uint8_t>(p[i]);
  return v;
}
std::string Sha256Of(std::string_view data) {
  transport::Sha256Stream sum;
  sum.Update(data.data(), data.size());
  const auto d = sum.Finish();
  return std::string(reinterpret_cast<const char*>(d.data()), d.size());
}

}  // namespace

absl::Status WriteIndexSummary(ObjectStore& store,
                               const std::string& summary_key,
                               std::string_view head, uint64_t index_bytes) {
  std::string out(kSummaryMagic);
  PutLe64(out, index_bytes);
  out.append(head);
  out += Sha256Of(out);
  return store.Put(summary_key, out);
}

std::optional<IndexMetadata> ReadIndexSummary(ObjectStore& store,
                                              const std::string& summary_key,
                                              const std::string& index_key) {
  auto data = store.Get(summary_key);
  constexpr size_t kFixed = kSummaryMagic.size() + 8;
  if (!data.ok() ||
      data->size() < kFixed + transport::kIndexPrefixBytes + ChunkHash::kSize ||
      !data->starts_with(kSummaryMagic)) {
    return std::nullopt;
  }
  const std::string_view body(data->data(), data->size() - ChunkHash::kSize);
  if (Sha256Of(body) != std::string_view(*data).substr(body.size())) {
    return std::nullopt;
  }
  const uint64_t index_bytes = GetLe64(data->data() + kSummaryMagic.size());
  const std::string_view head = body.substr(kFixed);
  auto json_len = transport::ParseIndexPrefix(head, summary_key);
  if (!json_len.ok() ||
      head.size() != transport::kIndexPrefixBytes + *json_len) {
    return std::nullopt;
  }
  auto meta = transport::ParseIndexMetadata(
      head.substr(transport::kIndexPrefixBytes), summary_key);
  if (!meta.ok() || index_bytes != head.size() + (transport::ChunkCount(
                                                      meta->volume_size_bytes,
                                                      meta->chunk_size_bytes) +
                                                  1) *
                                                     ChunkHash::kSize) {
    return std::nullopt;
  }
  // The index object as it is now: the same size, the same head.
  auto object = store.OpenReader(index_key);
  if (!object.ok() || (*object)->size_bytes() != index_bytes) {
    return std::nullopt;
  }
  auto stored_head = (*object)->ReadAt(0, static_cast<uint32_t>(head.size()));
  if (!stored_head.ok() || *stored_head != head) return std::nullopt;
  return *std::move(meta);
}

void SummarizeCheckedIndex(ObjectStore& store, const std::string& summary_key,
                           const std::string& index_key,
                           const IndexMetadata& checked) {
  auto object = store.OpenReader(index_key);
  if (!object.ok()) return;
  auto prefix = (*object)->ReadAt(0, transport::kIndexPrefixBytes);
  if (!prefix.ok()) return;
  auto json_len = transport::ParseIndexPrefix(*prefix, index_key);
  if (!json_len.ok()) return;
  auto head = (*object)->ReadAt(
      0, static_cast<uint32_t>(transport::kIndexPrefixBytes + *json_len));
  if (!head.ok()) return;
  auto meta = transport::ParseIndexMetadata(
      std::string_view(*head).substr(transport::kIndexPrefixBytes), index_key);
  // The root hash names the entries: the same root, the same index.
  if (!meta.ok() || meta->root_hash != checked.root_hash ||
      meta->version_id != checked.version_id ||
      meta->created_unix_ms != checked.created_unix_ms) {
    return;
  }
  (void)WriteIndexSummary(store, summary_key, *head, (*object)->size_bytes());
}

namespace {

class ReaderSource final : public transport::IndexEntrySource {
 public:
  explicit ReaderSource(std::unique_ptr<IndexReader> reader)
      : reader_(std::move(reader)) {}
  const IndexMetadata& metadata() const override { return reader_->metadata(); }
  absl::StatusOr<std::span<const ChunkHash>> Next(size_t max) override {
    absl::StatusOr<std::span<const ChunkHash>> got = reader_->Next(max);
    if (!got.ok() || !got->empty()) return got;
    if (absl::Status s = reader_->Finish(); !s.ok()) return s;
    return got;
  }

 private:
  std::unique_ptr<IndexReader> reader_;
};

}  // namespace

std::unique_ptr<transport::IndexEntrySource> AsEntrySource(
    std::unique_ptr<IndexReader> reader) {
  return std::make_unique<ReaderSource>(std::move(reader));
}

}  // namespace cbtd::receiver
