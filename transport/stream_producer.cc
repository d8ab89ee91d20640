#include "transport/stream_producer.h"

#include <xxhash.h>
#include <zstd.h>

#include <algorithm>
#include <chrono>
#include <condition_variable>
#include <cstdlib>
#include <deque>
#include <mutex>
#include <optional>
#include <thread>
#include <unordered_map>
#include <vector>

#include "absl/strings/str_cat.h"
#include "transport/base_entries.h"
#include "transport/chunk_jobs.h"
#include "transport/names.h"
#include "transport/sealed_chunk.h"
#include "transport/stream_codec.h"

namespace cbtd::transport {
namespace {

using common::AsyncReader;

struct Result {
  absl::Status status;
  ChunkHash entry;
  stream::Compression compression = stream::COMPRESSION_NONE;
  std::string payload;  // empty for a zero chunk
  uint32_t raw_size = 0;
};

struct AlignedFree {
  void operator()(uint8_t* p) const { std::free(p); }
};

// The ordered window: workers fill slots out of order, the emitter drains
// them in order. A worker may start job j only while j < emitted + window,
// which is what bounds memory.
class Window {
 public:
  Window(size_t jobs, size_t window)
      : slots_(window), ready_(window), jobs_(jobs) {}

  // Next job position for a worker, or false when there is none / stopped.
  bool Take(size_t& pos) {
    std::unique_lock l(mu_);
    space_.wait(l, [&] {
      return stop_ || next_ >= jobs_ || next_ < emitted_ + slots_.size();
    });
    if (stop_ || next_ >= jobs_) return false;
    pos = next_++;
    return true;
  }
  enum class Try { kGot, kFull, kDone };
  // Non-blocking Take for the libaio reader, which must keep reaping while
  // the window is full.
  Try TryTake(size_t& pos) {
    std::lock_guard l(mu_);
    if (stop_ || next_ >= jobs_) return Try::kDone;
    if (next_ >= emitted_ + slots_.size()) return Try::kFull;
    pos = next_++;
    return Try::kGot;
  }
  void Done(size_t pos, Result r) {
    std::lock_guard l(mu_);
    slots_[pos % slots_.size()] = std::move(r);
    ready_[pos % slots_.size()] = true;
    done_.notify_all();
  }
  Result Wait(size_t pos) {
    std::unique_lock l(mu_);
    done_.wait(l, [&] { return ready_[pos % slots_.size()]; });
    ready_[pos % slots_.size()] = false;
    Result r = std::move(slots_[pos % slots_.size()]);
    ++emitted_;
    space_.notify_all();
    return r;
  }
  void Stop() {
    std::lock_guard l(mu_);
    stop_ = true;
    space_.notify_all();
  }

 private:
  std::mutex mu_;
  std::condition_variable space_, done_;
  std::vector<Result> slots_;
  std::vector<bool> ready_;
  size_t jobs_;
  size_t next_ = 0;
  size_t emitted_ = 0;
  bool stop_ = false;
};

// Chunks read by the libaio reader, waiting for a hash worker.
struct ReadDone {
  size_t pos = 0;
  uint8_t* buf = nullptr;  // nullptr: a zero-only job or a failed read
  absl::Status status;
};

class ReadQueue {
 public:
  void Push(ReadDone d) {
    std::lock_guard l(mu_);
    q_.push_back(std::move(d));
    cv_.notify_one();
  }
  void Close() {
    std::lock_guard l(mu_);
    closed_ = true;
    cv_.notify_all();
  }
  bool Pop(ReadDone& d) {
    std::unique_lock l(mu_);
    cv_.wait(l, [&] { return closed_ || !q_.empty(); });
    if (q_.empty()) return false;
    d = std::move(q_.front());
    q_.pop_front();
    return true;
  }

 private:
  std::mutex mu_;
  std::condition_variable cv_;
  std::deque<ReadDone> q_;
  bool closed_ = false;
};

// Hashes one chunk's bytes into `r` and, if the receiver may need them,
// compresses (and with a cipher, seals) them into its payload. A chunk
// equal to the base's at its index (`base_here`, when known) travels as
// nothing, so it is not compressed: on a hash-method run that is most of
// the chunks read.
// With a cipher the entry is the keyed chunk id and the payload
// SealChunkPayload(id, inner compression, body) (transport/sealed_chunk.h).
void HashAndCompress(std::span<const uint8_t> data, ZSTD_CCtx* cctx,
                     std::string& zbuf, int level, ChunkCipher* cipher,
                     const std::optional<ChunkHash>& base_here, Result& r) {
  if (cipher == nullptr || IsAllZero(data)) {
    r.entry = EntryOf(data);
  } else {
    auto id = cipher->KeyedChunkId(data);
    if (!id.ok()) {
      r.status = id.status();
      return;
    }
    r.entry = *id;
  }
  if (IsZeroEntry(r.entry) || (base_here && *base_here == r.entry)) return;
  stream::Compression compression = stream::COMPRESSION_NONE;
  std::span<const uint8_t> body = data;
  if (level > 0) {  // else compression off
    const size_t z = ZSTD_compressCCtx(cctx, zbuf.data(), zbuf.size(),
                                       data.data(), data.size(), level);
    // Compress only when it pays: 1/32 saved is worth the CPU of
    // decompressing it at restore.
    if (!ZSTD_isError(z) && z < data.size() - data.size() / 32) {
      compression = stream::COMPRESSION_ZSTD;
      body = {reinterpret_cast<const uint8_t*>(zbuf.data()), z};
    }
  }
  if (cipher == nullptr) {
    r.compression = compression;
    r.payload.assign(reinterpret_cast<const char*>(body.data()), body.size());
    return;
  }
  auto sealed = SealChunkPayload(*cipher, r.entry, compression, body);
  if (!sealed.ok()) {
    r.status = sealed.status();
    return;
  }
  r.compression = stream::COMPRESSION_SEALED;
  r.payload = *std::move(sealed);
}

// Owns one thread's zstd context, output buffer and, for an encrypted
// stream, cipher (a ChunkCipher is not thread-safe).
class ChunkHasher {
 public:
  ChunkHasher(uint32_t chunk_bytes, const std::optional<TenantKey>& key)
      : cctx_(ZSTD_createCCtx()), zbuf_(ZSTD_compressBound(chunk_bytes), '\0') {
    if (key) {
      auto c = ChunkCipher::Create(*key);
      if (c.ok()) {
        cipher_.emplace(*std::move(c));
      } else {
        cipher_status_ = c.status();
      }
    }
  }
  ~ChunkHasher() { ZSTD_freeCCtx(cctx_); }
  ChunkHasher(const ChunkHasher&) = delete;
  ChunkHasher& operator=(const ChunkHasher&) = delete;

  void Hash(std::span<const uint8_t> data, int level,
            const std::optional<ChunkHash>& base_here, Result& r) {
    if (!cipher_status_.ok()) {
      r.status = cipher_status_;
      return;
    }
    HashAndCompress(data, cctx_, zbuf_, level, cipher_ ? &*cipher_ : nullptr,
                    base_here, r);
  }

 private:
  ZSTD_CCtx* cctx_;
  std::string zbuf_;
  std::optional<ChunkCipher> cipher_;
  absl::Status cipher_status_;
};

using Buffer = std::unique_ptr<uint8_t, AlignedFree>;

// Read buffers shared by the libaio reader (takes) and the hash workers
// (give back). Thread-safe.
class BufferPool {
 public:
  BufferPool(size_t count, size_t bytes, size_t align) {
    for (size_t i = 0; i < count; ++i) {
      buffers_.emplace_back(
          static_cast<uint8_t*>(std::aligned_alloc(align, bytes)));
      free_.push_back(buffers_.back().get());
    }
  }
  void Put(uint8_t* b) {
    std::lock_guard l(mu_);
    free_.push_back(b);
    cv_.notify_one();
  }
  // A free buffer; with none free, waits for one if `wait`, else nullptr.
  uint8_t* Take(bool wait) {
    std::unique_lock l(mu_);
    if (wait) cv_.wait(l, [&] { return !free_.empty(); });
    if (free_.empty()) return nullptr;
    uint8_t* b = free_.back();
    free_.pop_back();
    return b;
  }

 private:
  std::mutex mu_;
  std::condition_variable cv_;
  std::vector<Buffer> buffers_;
  std::vector<uint8_t*> free_;
};

// What the stream covers, computed before anything is read.
struct Plan {
  uint64_t size = 0;    // source bytes
  uint32_t chunk = 0;   // chunk bytes
  uint64_t chunks = 0;  // chunk count of the new version
  bool has_base = false;
  // Chunks from here on are sent even when equal to the base's (resize).
  uint64_t must_cover_from = 0;
  ChunkJobs jobs;  // ascending chunk index
};

// Validates size and chunk size against the base; sets must_cover_from.
absl::Status CheckGeometry(const IndexMetadata* base,
                           const ProducerOptions& options, Plan& p) {
  if (p.size == 0) return absl::InvalidArgumentError("source volume is empty");
  if (p.chunk < 4096 || p.chunk % 4096 != 0 || p.chunk > kMaxChunkBytes) {
    return absl::InvalidArgumentError(
        absl::StrCat("chunk size ", p.chunk,
                     " must be a multiple of 4096 up to ", kMaxChunkBytes));
  }
  p.chunks = ChunkCount(p.size, p.chunk);
  p.must_cover_from = p.chunks;
  if (base && base->volume_size_bytes != p.size) {
    if (!options.allow_resize) {
      return absl::InvalidArgumentError(absl::StrCat(
          "source is ", p.size, " bytes but base ", base->version_id, " is ",
          base->volume_size_bytes,
          " bytes; pass --allow-resize if the volume was resized"));
    }
    p.must_cover_from = std::min(base->volume_size_bytes, p.size) / p.chunk;
  }
  return absl::OkStatus();
}

// The base's entries are ids under the base's key (or SHA-256): only a
// stream under the same key can compare with them and reference them.
absl::Status CheckBaseKey(const IndexMetadata* base,
                          const ProducerOptions& options) {
  if (base == nullptr) return absl::OkStatus();
  const std::string mine = options.key ? options.key->fingerprint() : "";
  if (base->key_fingerprint == mine) return absl::OkStatus();
  const auto name = [](const std::string& fp) {
    return fp.empty() ? std::string("no key (plaintext)")
                      : absl::StrCat("key ", fp);
  };
  return absl::FailedPreconditionError(absl::StrCat(
      "base version ", base->version_id, " was written with ",
      name(base->key_fingerprint), " but this stream uses ", name(mine),
      ": use the key this host's backups were made with (cbtctl key show; "
      "cbtctl key import to restore it), or send a full stream to a new "
      "host/tenant"));
}

absl::StatusOr<Plan> PlanStream(common::BlockReader& source,
                                const cbt::ExtentSet& changed,
                                const cbt::ExtentSet& zeroed,
                                const IndexMetadata* base,
                                const ProducerOptions& options) {
  Plan p;
  p.size = source.SizeBytes();
  p.chunk = base ? base->chunk_size_bytes : options.chunk_size_bytes;
  p.has_base = base != nullptr;
  if (auto s = CheckGeometry(base, options, p); !s.ok()) return s;
  if (auto s = CheckBaseKey(base, options); !s.ok()) return s;
  if (!base || options.full) {
    p.jobs = ChunkJobs::Full(p.size, p.chunk, zeroed);
  } else {
    p.jobs = ChunkJobs::Incremental(p.size, p.chunk, changed, zeroed,
                                    p.must_cover_from);
  }
  return p;
}

stream::Record HeaderRecord(const Plan& p, const IndexMetadata* base,
                            const ProducerOptions& options) {
  stream::Record rec;
  stream::Header* h = rec.mutable_header();
  h->set_format_version(kStreamFormatVersion);
  h->set_source_host(options.host);
  h->set_volume_id(options.volume);
  h->set_volume_size_bytes(p.size);
  h->set_chunk_size_bytes(p.chunk);
  if (base) {
    h->set_base_version_id(base->version_id);
    h->set_base_root_hash(base->root_hash.ToBytes());
  }
  h->set_new_version_id(options.version_id);
  h->set_hash_algorithm(stream::HASH_SHA256);
  h->set_created_unix_ms(
      options.created_unix_ms != 0
          ? options.created_unix_ms
          : std::chrono::duration_cast<std::chrono::milliseconds>(
                std::chrono::system_clock::now().time_since_epoch())
                .count());
  h->set_allow_resize(options.allow_resize);
  h->set_group(options.group);
  h->set_group_version_id(options.group_version_id);
  if (options.key) {
    h->set_encryption(stream::ENCRYPTION_AES256GCM_V1);
    h->set_key_fingerprint(options.key->fingerprint());
  }
  SealHeader(*h);
  rec.set_required(true);
  return rec;
}

// Reads, hashes and compresses the planned chunks on worker threads and
// hands the results back in job order (Wait). Without overlapped reads each
// worker reads with ReadAt; with libaio one reader thread keeps up to
// `window` reads in flight and the workers only hash and compress.
//
// Lifecycle: constructed → Start → Wait(0), Wait(1), ... → Stop (also on
// destruction; joins every thread). `source` and `plan` must outlive it.
class ReadPipeline {
 public:
  ReadPipeline(common::BlockReader& source, const Plan& plan,
               const BaseEntries& base, const ProducerOptions& options)
      : source_(source),
        plan_(plan),
        base_(base),
        options_(options),
        window_(WindowChunks(options.window_chunks, plan.chunk)),
        align_(std::max<size_t>(1, source.Alignment())),
        buf_bytes_((plan.chunk + align_ - 1) / align_ * align_),
        win_(plan.jobs.reads(), window_),
        aio_(source.NewAsyncReader(window_)) {}
  ~ReadPipeline() { Stop(); }
  ReadPipeline(const ReadPipeline&) = delete;
  ReadPipeline& operator=(const ReadPipeline&) = delete;

  void Start();
  // The result of job `pos`; call with pos = 0, 1, ... in order.
  Result Wait(size_t pos) { return win_.Wait(pos); }
  void Stop();

 private:
  size_t ReadLength(uint32_t raw) const {
    return std::min(buf_bytes_, (raw + align_ - 1) / align_ * align_);
  }
  uint32_t RawLength(uint64_t index) const {
    return ChunkLength(plan_.size, plan_.chunk, index);
  }
  void ReadAndHashLoop();
  void HashLoop();
  // The libaio reader thread and its steps; in_flight_ and fatal_ belong
  // to that thread.
  void AioReadLoop();
  void Reap(size_t min);
  uint8_t* TakeBuffer();

  common::BlockReader& source_;
  const Plan& plan_;
  const BaseEntries& base_;
  const ProducerOptions& options_;
  const size_t window_;
  const size_t align_;
  const size_t buf_bytes_;
  Window win_;
  std::unique_ptr<AsyncReader> aio_;
  ReadQueue read_queue_;
  std::optional<BufferPool> pool_;
  std::unordered_map<size_t, uint8_t*> in_flight_;
  absl::Status fatal_;
  std::vector<std::thread> threads_;
};

void ReadPipeline::Start() {
  const int nthreads = std::max(1, options_.threads);
  if (!aio_) {
    for (int t = 0; t < nthreads; ++t) {
      threads_.emplace_back([this] { ReadAndHashLoop(); });
    }
    return;
  }
  // One buffer per window slot is enough: a position holds its buffer only
  // until hashed.
  pool_.emplace(window_, buf_bytes_, std::max<size_t>(align_, 64));
  threads_.emplace_back([this] { AioReadLoop(); });
  for (int t = 0; t < nthreads; ++t) {
    threads_.emplace_back([this] { HashLoop(); });
  }
}

void ReadPipeline::Stop() {
  win_.Stop();
  for (std::thread& t : threads_) {
    if (t.joinable()) t.join();
  }
}

// No overlapped reads: each worker reads, hashes and compresses; the window
// still bounds how far ahead of the emitter they run.
void ReadPipeline::ReadAndHashLoop() {
  Buffer buf(static_cast<uint8_t*>(
      std::aligned_alloc(std::max<size_t>(align_, 64), buf_bytes_)));
  ChunkHasher hasher(plan_.chunk, options_.key);
  size_t pos;
  while (win_.Take(pos)) {
    const uint64_t index = plan_.jobs.ReadIndex(pos);
    Result r;
    r.raw_size = RawLength(index);
    r.status = source_.ReadAt(index * plan_.chunk,
                              {buf.get(), ReadLength(r.raw_size)});
    if (r.status.ok()) {
      hasher.Hash({buf.get(), r.raw_size}, options_.zstd_level,
                  base_.Peek(index), r);
    }
    win_.Done(pos, std::move(r));
  }
}

void ReadPipeline::HashLoop() {
  ChunkHasher hasher(plan_.chunk, options_.key);
  ReadDone d;
  while (read_queue_.Pop(d)) {
    const uint64_t index = plan_.jobs.ReadIndex(d.pos);
    Result r;
    r.raw_size = RawLength(index);
    r.status = d.status;
    if (d.buf != nullptr) {
      hasher.Hash({d.buf, r.raw_size}, options_.zstd_level, base_.Peek(index),
                  r);
      pool_->Put(d.buf);
    }
    win_.Done(d.pos, std::move(r));
  }
}

void ReadPipeline::AioReadLoop() {
  while (fatal_.ok()) {
    size_t pos;
    const Window::Try t = win_.TryTake(pos);
    if (t == Window::Try::kDone) break;
    if (t == Window::Try::kFull) {
      // Every taken position is in flight or queued: reaping (or, with
      // nothing in flight, waiting for the emitter) makes progress.
      if (!in_flight_.empty()) {
        Reap(1);
        continue;
      }
      if (!win_.Take(pos)) break;
    }
    const uint64_t index = plan_.jobs.ReadIndex(pos);
    uint8_t* b = TakeBuffer();
    if (b == nullptr) break;
    absl::Status s = aio_->Submit(pos, index * plan_.chunk,
                                  {b, ReadLength(RawLength(index))});
    if (!s.ok()) {
      pool_->Put(b);
      read_queue_.Push({pos, nullptr, s});
      continue;
    }
    in_flight_[pos] = b;
    Reap(0);
  }
  while (fatal_.ok() && !in_flight_.empty()) Reap(1);
  // A failed io_getevents: fail the reads it left without an answer.
  for (const auto& [pos, b] : in_flight_)
    read_queue_.Push({pos, nullptr, fatal_});
  read_queue_.Close();
}

// Queues the reads that completed (at least `min`, waiting for them); a
// failed read gives its buffer back at once.
void ReadPipeline::Reap(size_t min) {
  auto done = aio_->Reap(min);
  if (!done.ok()) {
    fatal_ = done.status();
    return;
  }
  for (const auto& c : *done) {
    uint8_t* b = in_flight_[c.tag];
    in_flight_.erase(c.tag);
    if (!c.status.ok()) {
      pool_->Put(b);
      b = nullptr;
    }
    read_queue_.Push({c.tag, b, c.status});
  }
}

// A free buffer, reaping completed reads until one is free; nullptr after
// a failed reap.
uint8_t* ReadPipeline::TakeBuffer() {
  while (fatal_.ok()) {
    // With nothing in flight only a hash worker can free one: wait.
    if (uint8_t* b = pool_->Take(in_flight_.empty())) return b;
    Reap(1);
  }
  return nullptr;
}

// Turns results, in chunk order, into records: runs of zeros and changed
// chunks; counts them in the trailer. Walks the base alongside: the new
// index is the base's entries with the results in place, hashed in order
// into the new root hash without being held.
class RecordEmitter {
 public:
  RecordEmitter(RecordSink& sink, const Plan& plan, BaseEntries& base,
                ProduceResult& result)
      : sink_(sink),
        plan_(plan),
        base_(base),
        result_(result),
        root_(plan.size, plan.chunk) {}

  absl::Status Emit(uint64_t index, Result r);
  // `count` chunks from `first` known to be zeros without a read.
  absl::Status EmitZeros(uint64_t first, uint64_t count);
  // After the last chunk: emits the pending zero run, hashes the rest of
  // the base, checks the base (BaseEntries::Finish) and sets the root.
  absl::Status Finish();

 private:
  absl::Status AddZero(uint64_t index);
  absl::Status FlushZeros();
  stream::Record ChunkRecord(uint64_t index, Result r);

  RecordSink& sink_;
  const Plan& plan_;
  BaseEntries& base_;
  ProduceResult& result_;
  RootHasher root_;  // of the new version
  uint64_t zero_first_ = 0;
  uint64_t zero_count_ = 0;
};

absl::Status RecordEmitter::Emit(uint64_t i, Result r) {
  ++result_.chunks_read;
  result_.bytes_read += ChunkLength(plan_.size, plan_.chunk, i);
  // The chunks between the last job and this one keep the base's entries.
  if (absl::Status s = base_.TakeUpTo(i, root_); !s.ok()) return s;
  absl::StatusOr<ChunkHash> was = base_.Take();
  if (!was.ok()) return was.status();
  root_.Add({&r.entry, 1});
  const bool must = i >= plan_.must_cover_from;
  if (plan_.has_base && !must && r.entry == *was) {
    return absl::OkStatus();  // unchanged
  }
  if (IsZeroEntry(r.entry)) return AddZero(i);
  if (absl::Status s = FlushZeros(); !s.ok()) return s;
  return sink_.Put(ChunkRecord(i, std::move(r)));
}

absl::Status RecordEmitter::EmitZeros(uint64_t first, uint64_t count) {
  if (absl::Status s = base_.TakeUpTo(first, root_); !s.ok()) return s;
  root_.AddZeros(count);
  const uint64_t end = first + count;
  for (uint64_t i = first; i < end;) {
    absl::StatusOr<std::span<const ChunkHash>> was = base_.TakeSome(end);
    if (!was.ok()) return was.status();
    for (const ChunkHash& h : *was) {
      // Unchanged if the base has zeros here too.
      const bool unchanged =
          plan_.has_base && i < plan_.must_cover_from && IsZeroEntry(h);
      if (!unchanged) {
        if (absl::Status s = AddZero(i); !s.ok()) return s;
      }
      ++i;
    }
  }
  return absl::OkStatus();
}

absl::Status RecordEmitter::AddZero(uint64_t i) {
  if (zero_count_ > 0 && zero_first_ + zero_count_ == i) {
    ++zero_count_;
    return absl::OkStatus();
  }
  absl::Status s = FlushZeros();
  zero_first_ = i;
  zero_count_ = 1;
  return s;
}

absl::Status RecordEmitter::FlushZeros() {
  if (zero_count_ == 0) return absl::OkStatus();
  stream::Trailer& tr = result_.trailer;
  stream::Record z;
  z.mutable_zero_run()->set_first_chunk_index(zero_first_);
  z.mutable_zero_run()->set_chunk_count(zero_count_);
  z.set_required(true);
  tr.set_zero_chunks(tr.zero_chunks() + zero_count_);
  zero_count_ = 0;
  return sink_.Put(z);
}

absl::Status RecordEmitter::Finish() {
  if (absl::Status s = FlushZeros(); !s.ok()) return s;
  if (absl::Status s = base_.TakeUpTo(plan_.chunks, root_); !s.ok()) return s;
  if (absl::Status s = base_.Finish(); !s.ok()) return s;
  result_.root_hash = root_.Finish();
  result_.trailer.set_root_hash(result_.root_hash.ToBytes());
  return absl::OkStatus();
}

// A chunk that differs from the base's at its index travels whole, even
// when the base holds its content elsewhere: the receiver stores it once,
// and over gRPC the dedup handshake (grpc_client.h) sends such a chunk as a
// reference to whatever the tenant stores.
stream::Record RecordEmitter::ChunkRecord(uint64_t i, Result r) {
  stream::Trailer& tr = result_.trailer;
  stream::Record out;
  out.set_required(true);
  stream::Chunk* c = out.mutable_chunk();
  c->set_chunk_index(i);
  c->set_hash(r.entry.ToBytes());
  c->set_compression(r.compression);
  c->set_payload_xxh3(XXH3_64bits(r.payload.data(), r.payload.size()));
  c->set_raw_size_bytes(r.raw_size);
  c->set_payload(std::move(r.payload));
  tr.set_chunk_records(tr.chunk_records() + 1);
  tr.set_payload_bytes(tr.payload_bytes() + c->payload().size());
  tr.set_raw_bytes(tr.raw_bytes() + r.raw_size);
  return out;
}

// Emits every planned chunk's records, in order; stops at the first read,
// base or sink error.
absl::Status EmitInOrder(ReadPipeline& reads, RecordEmitter& emitter,
                         BaseEntries& base, const Plan& plan) {
  uint64_t pos = 0;  // of the chunks read
  for (const ChunkJobs::Run& run : plan.jobs.runs()) {
    if (run.zero_only) {
      if (absl::Status s = emitter.EmitZeros(run.first_index, run.count);
          !s.ok()) {
        return s;
      }
      continue;
    }
    for (uint64_t k = 0; k < run.count; ++k, ++pos) {
      // Ahead of the workers, so they can skip compressing unchanged chunks.
      if (absl::Status s = base.Fill(); !s.ok()) return s;
      Result r = reads.Wait(pos);
      if (!r.status.ok()) return r.status;
      if (absl::Status s = emitter.Emit(run.first_index + k, std::move(r));
          !s.ok()) {
        return s;
      }
    }
  }
  return emitter.Finish();
}

}  // namespace

size_t WindowChunks(size_t requested, uint64_t chunk_size_bytes) {
  if (requested > 0) return requested;
  const uint64_t by_bytes =
      kWindowBytes / std::max<uint64_t>(1, chunk_size_bytes);
  return static_cast<size_t>(std::clamp<uint64_t>(by_bytes, 16, 256));
}

absl::StatusOr<ProduceResult> ProduceStream(common::BlockReader& source,
                                            const cbt::ExtentSet& changed,
                                            const cbt::ExtentSet& zeroed,
                                            IndexEntrySource* base,
                                            const ProducerOptions& options,
                                            RecordSink& sink) {
  // Refused here, before a byte is read, not only by the receiver.
  for (auto [what, name] : {std::pair{"host", &options.host},
                            {"volume", &options.volume},
                            {"version id", &options.version_id}}) {
    if (auto s = ValidateName(what, *name); !s.ok()) return s;
  }
  const IndexMetadata* meta = base ? &base->metadata() : nullptr;
  absl::StatusOr<Plan> plan =
      PlanStream(source, changed, zeroed, meta, options);
  if (!plan.ok()) return plan.status();
  if (auto s = sink.Put(HeaderRecord(*plan, meta, options)); !s.ok()) return s;

  ProduceResult result;
  {
    BaseEntries base_entries(base, plan->must_cover_from);
    ReadPipeline reads(source, *plan, base_entries, options);
    RecordEmitter emitter(sink, *plan, base_entries, result);
    reads.Start();
    absl::Status status = EmitInOrder(reads, emitter, base_entries, *plan);
    reads.Stop();
    if (!status.ok()) return status;
  }

  stream::Record end;
  *end.mutable_trailer() = result.trailer;
  end.set_required(true);
  if (auto s = sink.Put(end); !s.ok()) return s;
  if (auto s = sink.Finish(); !s.ok()) return s;
  return result;
}

absl::StatusOr<ProduceResult> ProduceStream(common::BlockReader& source,
                                            const cbt::ExtentSet& changed,
                                            const cbt::ExtentSet& zeroed,
                                            const VersionIndex* base,
                                            const ProducerOptions& options,
                                            RecordSink& sink) {
  std::unique_ptr<IndexEntrySource> entries = base ? SourceOf(*base) : nullptr;
  return ProduceStream(source, changed, zeroed, entries.get(), options, sink);
}

}  // namespace cbtd::transport
