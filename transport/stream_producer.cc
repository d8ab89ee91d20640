#include "transport/stream_producer.h"

#include <xxhash.h>
#include <zstd.h>

#include <algorithm>
#include <chrono>
#include <condition_variable>
#include <cstdlib>
#include <deque>
#include <mutex>
#include <thread>
#include <unordered_map>
#include <unordered_set>
#include <vector>

#include "absl/strings/str_cat.h"
#include "transport/stream_codec.h"

namespace cbtd::transport {
namespace {

struct Job {
  uint64_t index = 0;
  bool zero_only = false;  // wholly discarded: zeros without a read
};

struct Result {
  absl::Status status;
  ChunkHash entry;
  stream::Compression compression = stream::COMPRESSION_NONE;
  std::string payload;  // empty for a zero chunk
  uint32_t raw_size = 0;
  bool read = false;
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
// compresses them into its payload. Chunks whose hash the base holds (at
// this index or anywhere) travel as nothing or as a ChunkRef, so they are
// not compressed: on an incremental or a hash-method run that is most of
// the chunks read.
void HashAndCompress(
    std::span<const uint8_t> data, ZSTD_CCtx* cctx, std::string& zbuf,
    int level,
    const std::unordered_set<ChunkHash, ChunkHashStdHash>& base_hashes,
    Result& r) {
  r.entry = EntryOf(data);
  if (IsZeroEntry(r.entry) || base_hashes.contains(r.entry)) return;
  if (level <= 0) {  // compression off
    r.payload.assign(reinterpret_cast<const char*>(data.data()), data.size());
    return;
  }
  const size_t z = ZSTD_compressCCtx(cctx, zbuf.data(), zbuf.size(),
                                     data.data(), data.size(), level);
  // Compress only when it pays: 1/32 saved is worth the CPU of
  // decompressing it at restore.
  if (!ZSTD_isError(z) && z < data.size() - data.size() / 32) {
    r.compression = stream::COMPRESSION_ZSTD;
    r.payload.assign(zbuf.data(), z);
  } else {
    r.payload.assign(reinterpret_cast<const char*>(data.data()), data.size());
  }
}

}  // namespace

absl::StatusOr<ProduceResult> ProduceStream(BlockDevice& source,
                                            const cbt::ExtentSet& changed,
                                            const cbt::ExtentSet& zeroed,
                                            const VersionIndex* base,
                                            const ProducerOptions& options,
                                            RecordSink& sink) {
  const uint64_t size = source.SizeBytes();
  const uint32_t chunk =
      base ? base->chunk_size_bytes : options.chunk_size_bytes;
  if (size == 0) return absl::InvalidArgumentError("source volume is empty");
  if (chunk < 4096 || chunk % 4096 != 0 || chunk > kMaxChunkBytes) {
    return absl::InvalidArgumentError(
        absl::StrCat("chunk size ", chunk, " must be a multiple of 4096 up to ",
                     kMaxChunkBytes));
  }
  const uint64_t n = ChunkCount(size, chunk);
  uint64_t must_cover_from = n;
  if (base && base->volume_size_bytes != size) {
    if (!options.allow_resize) {
      return absl::InvalidArgumentError(absl::StrCat(
          "source is ", size, " bytes but base ", base->version_id, " is ",
          base->volume_size_bytes,
          " bytes; pass --allow-resize if the volume was resized"));
    }
    must_cover_from = std::min(base->volume_size_bytes, size) / chunk;
  }

  // Plan the chunks to visit, ascending.
  std::vector<Job> jobs;
  if (!base || options.full) {
    jobs.reserve(n);
    for (uint64_t i = 0; i < n; ++i) jobs.push_back({i, false});
  } else {
    std::vector<uint64_t> idx = changed.ChunkIndices(chunk);
    std::vector<uint64_t> z = zeroed.ChunkIndices(chunk);
    idx.insert(idx.end(), z.begin(), z.end());
    for (uint64_t i = must_cover_from; i < n; ++i) idx.push_back(i);
    std::sort(idx.begin(), idx.end());
    idx.erase(std::unique(idx.begin(), idx.end()), idx.end());
    for (uint64_t i : idx) {
      if (i >= n) break;
      const cbt::Extent e{i * chunk, ChunkLength(size, chunk, i)};
      jobs.push_back({i, zeroed.Contains(e) && !changed.Intersects(e)});
    }
  }

  std::vector<ChunkHash> entries;
  std::unordered_set<ChunkHash, ChunkHashStdHash> base_hashes;
  if (base) {
    entries = base->entries;
    entries.resize(n, kZeroEntry);
    for (const ChunkHash& h : base->entries) {
      if (!IsZeroEntry(h)) base_hashes.insert(h);
    }
  } else {
    entries.assign(n, kZeroEntry);
  }

  stream::Record rec;
  stream::Header* h = rec.mutable_header();
  h->set_format_version(kStreamFormatVersion);
  h->set_source_host(options.host);
  h->set_volume_id(options.volume);
  h->set_volume_size_bytes(size);
  h->set_chunk_size_bytes(chunk);
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
  SealHeader(*h);
  rec.set_required(true);
  if (auto s = sink.Put(rec); !s.ok()) return s;

  const size_t window = std::max<size_t>(1, options.window_chunks);
  Window win(jobs.size(), window);
  const size_t align = std::max<size_t>(1, source.Alignment());
  const size_t buf_bytes = (chunk + align - 1) / align * align;

  auto read_len = [&](uint32_t raw) {
    return std::min(buf_bytes, (raw + align - 1) / align * align);
  };
  auto alloc = [&] {
    return std::unique_ptr<uint8_t, AlignedFree>(static_cast<uint8_t*>(
        std::aligned_alloc(std::max<size_t>(align, 64), buf_bytes)));
  };
  const int nthreads = std::max(1, options.threads);
  std::vector<std::thread> threads;
  std::unique_ptr<AsyncReader> aio = source.NewAsyncReader(window);
  // Declared here so they outlive the threads that use them.
  ReadQueue read_queue;
  std::vector<std::unique_ptr<uint8_t, AlignedFree>> buffers;
  std::vector<uint8_t*> free_bufs;
  std::mutex free_mu;
  std::condition_variable free_cv;
  auto put_free = [&](uint8_t* b) {
    std::lock_guard l(free_mu);
    free_bufs.push_back(b);
    free_cv.notify_one();
  };

  if (!aio) {
    // No overlapped reads: each worker reads, hashes and compresses; the
    // window still bounds how far ahead of the emitter they run.
    auto worker = [&] {
      auto buf = alloc();
      ZSTD_CCtx* cctx = ZSTD_createCCtx();
      std::string zbuf(ZSTD_compressBound(chunk), '\0');
      size_t pos;
      while (win.Take(pos)) {
        const Job& job = jobs[pos];
        Result r;
        r.raw_size = ChunkLength(size, chunk, job.index);
        if (!job.zero_only) {
          r.read = true;
          r.status = source.ReadAt(job.index * chunk,
                                   {buf.get(), read_len(r.raw_size)});
          if (r.status.ok()) {
            HashAndCompress({buf.get(), r.raw_size}, cctx, zbuf,
                            options.zstd_level, base_hashes, r);
          }
        }
        win.Done(pos, std::move(r));
      }
      ZSTD_freeCCtx(cctx);
    };
    for (int t = 0; t < nthreads; ++t) threads.emplace_back(worker);
  } else {
    // libaio: one reader thread keeps up to `window` reads in flight; the
    // workers only hash and compress. Buffers: one per window slot, which
    // is enough because a position holds its buffer only until hashed.
    for (size_t i = 0; i < window; ++i) {
      buffers.push_back(alloc());
      free_bufs.push_back(buffers.back().get());
    }
    threads.emplace_back([&] {
      std::unordered_map<size_t, uint8_t*> in_flight;
      absl::Status fatal;
      auto reap = [&](size_t min) {
        auto done = aio->Reap(min);
        if (!done.ok()) {
          fatal = done.status();
          return;
        }
        for (const auto& c : *done) {
          uint8_t* b = in_flight[c.tag];
          in_flight.erase(c.tag);
          if (!c.status.ok()) {
            put_free(b);
            b = nullptr;
          }
          read_queue.Push({c.tag, b, c.status});
        }
      };
      while (fatal.ok()) {
        size_t pos;
        const Window::Try t = win.TryTake(pos);
        if (t == Window::Try::kDone) break;
        if (t == Window::Try::kFull) {
          // Every taken position is in flight or queued: reaping (or, with
          // nothing in flight, waiting for the emitter) makes progress.
          if (!in_flight.empty()) {
            reap(1);
            continue;
          }
          if (!win.Take(pos)) break;
        }
        const Job& job = jobs[pos];
        if (job.zero_only) {
          read_queue.Push({pos, nullptr, absl::OkStatus()});
          continue;
        }
        uint8_t* b = nullptr;
        while (b == nullptr && fatal.ok()) {
          {
            std::unique_lock l(free_mu);
            if (in_flight.empty()) {
              free_cv.wait(l, [&] { return !free_bufs.empty(); });
            }
            if (!free_bufs.empty()) {
              b = free_bufs.back();
              free_bufs.pop_back();
              break;
            }
          }
          reap(1);
        }
        if (b == nullptr) break;
        const uint32_t raw = ChunkLength(size, chunk, job.index);
        absl::Status s =
            aio->Submit(pos, job.index * chunk, {b, read_len(raw)});
        if (!s.ok()) {
          put_free(b);
          read_queue.Push({pos, nullptr, s});
          continue;
        }
        in_flight[pos] = b;
        reap(0);
      }
      while (fatal.ok() && !in_flight.empty()) reap(1);
      // A failed io_getevents: fail the reads it left without an answer.
      for (const auto& [pos, b] : in_flight)
        read_queue.Push({pos, nullptr, fatal});
      read_queue.Close();
    });
    auto hasher = [&] {
      ZSTD_CCtx* cctx = ZSTD_createCCtx();
      std::string zbuf(ZSTD_compressBound(chunk), '\0');
      ReadDone d;
      while (read_queue.Pop(d)) {
        const Job& job = jobs[d.pos];
        Result r;
        r.raw_size = ChunkLength(size, chunk, job.index);
        r.read = !job.zero_only;
        r.status = d.status;
        if (d.buf != nullptr) {
          HashAndCompress({d.buf, r.raw_size}, cctx, zbuf, options.zstd_level,
                          base_hashes, r);
          put_free(d.buf);
        }
        win.Done(d.pos, std::move(r));
      }
      ZSTD_freeCCtx(cctx);
    };
    for (int t = 0; t < nthreads; ++t) threads.emplace_back(hasher);
  }

  ProduceResult result;
  stream::Trailer& tr = result.trailer;
  uint64_t zero_first = 0, zero_count = 0;
  auto flush_zeros = [&]() -> absl::Status {
    if (zero_count == 0) return absl::OkStatus();
    stream::Record z;
    z.mutable_zero_run()->set_first_chunk_index(zero_first);
    z.mutable_zero_run()->set_chunk_count(zero_count);
    z.set_required(true);
    tr.set_zero_chunks(tr.zero_chunks() + zero_count);
    zero_count = 0;
    return sink.Put(z);
  };
  absl::Status status;
  for (size_t pos = 0; pos < jobs.size() && status.ok(); ++pos) {
    Result r = win.Wait(pos);
    const uint64_t i = jobs[pos].index;
    if (!r.status.ok()) {
      status = r.status;
      break;
    }
    if (r.read) ++result.chunks_read;
    const bool must = i >= must_cover_from;
    if (base && !must && r.entry == entries[i]) continue;  // unchanged
    entries[i] = r.entry;
    if (IsZeroEntry(r.entry)) {
      if (zero_count > 0 && zero_first + zero_count == i) {
        ++zero_count;
      } else {
        status = flush_zeros();
        zero_first = i;
        zero_count = 1;
      }
      continue;
    }
    status = flush_zeros();
    if (!status.ok()) break;
    stream::Record out;
    out.set_required(true);
    if (base_hashes.contains(r.entry)) {
      out.mutable_chunk_ref()->set_chunk_index(i);
      out.mutable_chunk_ref()->set_hash(r.entry.ToBytes());
      tr.set_chunk_ref_records(tr.chunk_ref_records() + 1);
    } else {
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
    }
    status = sink.Put(out);
  }
  if (status.ok()) status = flush_zeros();
  win.Stop();
  for (std::thread& t : threads) t.join();
  if (!status.ok()) return status;

  result.root_hash = ComputeRootHash(size, chunk, entries);
  tr.set_root_hash(result.root_hash.ToBytes());
  stream::Record end;
  *end.mutable_trailer() = tr;
  end.set_required(true);
  if (auto s = sink.Put(end); !s.ok()) return s;
  if (auto s = sink.Finish(); !s.ok()) return s;
  return result;
}

}  // namespace cbtd::transport
