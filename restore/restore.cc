#include "restore/restore.h"

#include <atomic>
#include <filesystem>
#include <mutex>
#include <nlohmann/json.hpp>
#include <optional>
#include <thread>
#include <unordered_map>
#include <vector>

#include "absl/strings/str_cat.h"
#include "common/fs.h"
#include "transport/chunk_cipher.h"
#include "transport/sealed_chunk.h"

namespace cbtd::restore {
namespace {

using transport::IndexMetadata;

// Names the volume in messages, as the index spells it.
struct VolumeName {
  std::string host, volume;
};

struct TargetState {
  std::string host, volume, version, root_hash, state;
};

absl::StatusOr<TargetState> ReadState(const std::string& path) {
  auto text = common::ReadFile(path);
  if (!text.ok()) return text.status();
  try {
    auto j = nlohmann::json::parse(*text);
    return TargetState{j.at("host"), j.at("volume"), j.at("version"),
                       j.at("root_hash"), j.at("state")};
  } catch (const nlohmann::json::exception& e) {
    return absl::DataLossError(
        absl::StrCat("target state file ", path, " is damaged: ", e.what()));
  }
}

absl::Status WriteState(const std::string& path, const IndexMetadata& idx,
                        std::string_view state) {
  nlohmann::json j = {{"host", idx.host},
                      {"volume", idx.volume},
                      {"version", idx.version_id},
                      {"root_hash", idx.root_hash.ToHex()},
                      {"state", std::string(state)}};
  return common::AtomicWriteFile(path, j.dump(2) + "\n");
}

// Runs fn(i) for every i in `work` on `threads` threads; first error wins.
template <typename Fn>
absl::Status ParallelFor(const std::vector<uint64_t>& work, int threads,
                         Fn fn) {
  std::atomic<size_t> next{0};
  std::mutex mu;
  absl::Status first;
  std::atomic<bool> failed{false};
  auto run = [&] {
    for (size_t k; !failed && (k = next++) < work.size();) {
      absl::Status s = fn(work[k]);
      if (!s.ok()) {
        std::lock_guard l(mu);
        if (first.ok()) first = s;
        failed = true;
      }
    }
  };
  std::vector<std::thread> ts;
  for (int t = 1; t < std::max(1, threads); ++t) ts.emplace_back(run);
  run();
  for (auto& t : ts) t.join();
  return first;
}

// Chunks of the volume a restore handles at a time: it holds this many of
// the version's entries (and of what the target holds) and their plan, a
// few MiB whatever the volume size (2 MiB of entries each, 4 GiB of volume
// at 64 KiB chunks).
constexpr uint64_t kWindowEntries = 2 * transport::kIndexBatchEntries;

// Bytes compared and written so far, reported through options.progress.
class Progress {
 public:
  explicit Progress(const RestoreOptions& options) : fn_(options.progress) {}

  void AddTotal(uint64_t bytes) { total_ += bytes; }
  // Counts `bytes` as done; CANCELLED when the caller asks to stop.
  absl::Status Add(uint64_t bytes) {
    const uint64_t done = done_ += bytes;
    if (fn_ && !fn_(done, total_.load())) {
      return absl::CancelledError(
          "the restore was cancelled: the target holds part of the version "
          "and part of what it held before; restore it again before use");
    }
    return absl::OkStatus();
  }

 private:
  const std::function<bool(uint64_t, uint64_t)>& fn_;
  std::atomic<uint64_t> done_{0};
  std::atomic<uint64_t> total_{0};
};

// What the steps of one restore share.
struct RestoreJob {
  VersionSource& source;
  std::string_view version;
  const IndexMetadata& idx;
  // The index names its volume; for a remote source asked for "own host"
  // this is the only place the host is spelled out.
  VolumeName vol;
  RestoreTarget& target;
  const RestoreOptions& options;
  Progress& progress;
};

std::string Describe(const RestoreJob& job, std::string_view version) {
  return absl::StrCat("the index of ", job.vol.host, "/", job.vol.volume, "@",
                      std::string(version));
}

uint64_t ChunkBytes(const IndexMetadata& idx, uint64_t i) {
  return transport::ChunkLength(idx.volume_size_bytes, idx.chunk_size_bytes, i);
}

// One window of the volume: chunks [first, first + entries.size()).
struct Window {
  uint64_t first = 0;
  std::vector<ChunkHash> entries;  // the version's
  std::vector<ChunkHash> held;     // the target's; empty: none known
  const ChunkHash& entry(uint64_t i) const { return entries[i - first]; }
};

// The indexes a pass reads: the version's and, for an incremental restore,
// the one the target holds.
struct OpenedIndexes {
  std::unique_ptr<transport::IndexEntrySource> version;
  std::unique_ptr<transport::IndexEntrySource> from;  // null: none
};

// Reads the indexes in step, a window at a time, calls fn(window) on each,
// and then checks both whole (count and root hash: CheckedEntries).
template <typename Fn>
absl::Status ForEachWindow(const RestoreJob& job, OpenedIndexes indexes,
                           Fn fn) {
  transport::CheckedEntries version(*indexes.version,
                                    Describe(job, job.version));
  std::optional<transport::CheckedEntries> from;
  if (indexes.from) {
    from.emplace(*indexes.from, Describe(job, job.options.from_version));
  }
  Window w;
  for (uint64_t first = 0; first < version.count(); first += w.entries.size()) {
    const uint64_t n = std::min(kWindowEntries, version.count() - first);
    w.first = first;
    if (auto s = version.Read(n, w.entries); !s.ok()) return s;
    w.held.clear();
    if (from) {
      if (auto s = from->Read(n, w.held); !s.ok()) return s;
    }
    if (auto s = fn(w); !s.ok()) return s;
  }
  if (auto s = version.Finish(); !s.ok()) return s;
  return from ? from->Finish() : absl::OkStatus();
}

// The indexes opened again for the next pass, checked to be the ones the
// restore planned with (their entries are then checked against these roots).
absl::StatusOr<OpenedIndexes> ReopenIndexes(const RestoreJob& job,
                                            const ChunkHash& from_root) {
  OpenedIndexes out;
  auto version = job.source.OpenIndex(job.version);
  if (!version.ok()) return version.status();
  out.version = *std::move(version);
  bool same = out.version->metadata().root_hash == job.idx.root_hash;
  if (!job.options.from_version.empty()) {
    auto from = job.source.OpenIndex(job.options.from_version);
    if (!from.ok()) return from.status();
    out.from = *std::move(from);
    same = same && out.from->metadata().root_hash == from_root;
  }
  if (!same) {
    return absl::DataLossError(absl::StrCat(
        Describe(job, job.version),
        " (or of the version the target holds) changed while restoring"));
  }
  return out;
}

// Distinct chunks fetched in one ReadChunks call, and the chunk indexes
// each one is written to.
struct Batch {
  std::vector<ChunkHash> hashes;
  std::vector<std::vector<uint64_t>> chunks;  // parallel to `hashes`
};

// Groups the chunk indexes to write (ascending, inside `w`) into batches
// of at most `max_chunks` distinct hashes and kRestoreBatchBytes.
std::vector<Batch> MakeBatches(const RestoreJob& job, const Window& w,
                               const std::vector<uint64_t>& writes) {
  const size_t limit = std::max<size_t>(
      1,
      std::min<uint64_t>(job.source.max_batch_chunks(),
                         kRestoreBatchBytes /
                             std::max<uint32_t>(1, job.idx.chunk_size_bytes)));
  std::vector<Batch> out;
  std::unordered_map<ChunkHash, size_t, transport::ChunkHashStdHash> slot;
  for (uint64_t i : writes) {
    const ChunkHash& h = w.entry(i);
    if (auto it = slot.find(h); it != slot.end()) {
      out.back().chunks[it->second].push_back(i);
      continue;
    }
    if (out.empty() || out.back().hashes.size() >= limit) {
      out.emplace_back();
      slot.clear();
    }
    slot[h] = out.back().hashes.size();
    out.back().hashes.push_back(h);
    out.back().chunks.push_back({i});
  }
  return out;
}

// The entry chunk `i` of the target would have in the version's index
// (its keyed id for an encrypted version).
absl::StatusOr<ChunkHash> TargetEntry(const RestoreJob& job, uint64_t i) {
  std::vector<uint8_t> buf(ChunkBytes(job.idx, i));
  if (auto r = job.target.ReadAt(i * job.idx.chunk_size_bytes, buf); !r.ok()) {
    return r;
  }
  ChunkHash entry = transport::EntryOf(buf);
  if (job.idx.encrypted() && !transport::IsZeroEntry(entry)) {
    auto cipher = transport::ChunkCipher::Create(*job.options.key);
    if (!cipher.ok()) return cipher.status();
    auto id = cipher->KeyedChunkId(buf);
    if (!id.ok()) return id.status();
    entry = *id;
  }
  return entry;
}

// The chunks of `w`, as positions in the volume.
std::vector<uint64_t> AllChunks(const Window& w) {
  std::vector<uint64_t> all(w.entries.size());
  for (uint64_t k = 0; k < all.size(); ++k) all[k] = w.first + k;
  return all;
}

// For a rollback: the entries of what the target holds now in `w`, read
// and hashed chunk by chunk.
absl::Status CompareTarget(const RestoreJob& job, Window& w) {
  w.held.assign(w.entries.size(), ChunkHash());
  return ParallelFor(AllChunks(w), job.options.threads, [&](uint64_t i) {
    absl::StatusOr<ChunkHash> e = TargetEntry(job, i);
    if (!e.ok()) return e.status();
    w.held[i - w.first] = *e;
    return job.progress.Add(ChunkBytes(job.idx, i));
  });
}

// For an incremental restore (options.from_version set): opens the index
// of the version the target holds, once its state file proves it holds it
// and the two versions share their geometry (nothing is written before).
// For a rollback, checks the target's size. Null otherwise.
absl::StatusOr<std::unique_ptr<transport::IndexEntrySource>> CheckTargetHolds(
    const RestoreJob& job) {
  const RestoreOptions& options = job.options;
  const VolumeName& vol = job.vol;
  if (options.compare_target) {
    if (!options.from_version.empty()) {
      return absl::InvalidArgumentError(
          "a rollback compares the target itself and takes no base version");
    }
    if (job.target.SizeBytes() < job.idx.volume_size_bytes) {
      return absl::FailedPreconditionError(
          absl::StrCat("the target holds ", job.target.SizeBytes(),
                       " bytes, the version ", job.idx.volume_size_bytes,
                       "; a rollback needs the volume at its size"));
    }
    return nullptr;
  }
  if (options.from_version.empty()) return nullptr;
  if (options.state_path.empty()) {
    return absl::InvalidArgumentError(
        "an incremental restore needs the target's state file (--state)");
  }
  auto opened = job.source.OpenIndex(options.from_version);
  if (!opened.ok()) return opened.status();
  const IndexMetadata& from = (*opened)->metadata();
  auto st = ReadState(options.state_path);
  if (!st.ok()) {
    return absl::FailedPreconditionError(absl::StrCat(
        "cannot tell which version the target holds: ",
        std::string(st.status().message()), "; do a full restore instead"));
  }
  if (st->state != "complete" || st->host != vol.host ||
      st->volume != vol.volume || st->version != options.from_version ||
      st->root_hash != from.root_hash.ToHex()) {
    return absl::FailedPreconditionError(absl::StrCat(
        "target state file ", options.state_path, " says it holds ", st->host,
        "/", st->volume, "@", st->version, " (root ", st->root_hash, ", ",
        st->state,
        ") but the incremental restore "
        "starts from ",
        vol.host, "/", vol.volume, "@", options.from_version, " (root ",
        from.root_hash.ToHex(), "); do a full restore instead"));
  }
  if (from.chunk_size_bytes != job.idx.chunk_size_bytes ||
      from.volume_size_bytes != job.idx.volume_size_bytes) {
    return absl::FailedPreconditionError(absl::StrCat(
        "versions ", options.from_version, " and ", std::string(job.version),
        " differ in chunk or volume size; do a full restore instead"));
  }
  return opened;
}

// Which chunks of a window a restore writes, zeroes and skips.
struct WritePlan {
  std::vector<uint64_t> writes;  // fetched and written; ascending
  std::vector<uint64_t> zeros;   // zeroed; ascending
  uint64_t skipped = 0;
  uint64_t write_bytes = 0;  // of `writes`
};

WritePlan PlanWrites(const RestoreJob& job, const Window& w) {
  WritePlan plan;
  const bool fresh_target = job.target.fresh();
  for (uint64_t k = 0; k < w.entries.size(); ++k) {
    const uint64_t i = w.first + k;
    const ChunkHash& e = w.entries[k];
    if (!w.held.empty() && w.held[k] == e) {
      ++plan.skipped;
    } else if (transport::IsZeroEntry(e)) {
      if (fresh_target && w.held.empty()) {
        ++plan.skipped;  // a new file is all holes already
      } else {
        plan.zeros.push_back(i);
      }
    } else {
      plan.writes.push_back(i);
      plan.write_bytes += ChunkBytes(job.idx, i);
    }
  }
  return plan;
}

// A batch's fetch error, naming the chunks it covers.
absl::Status BatchError(const RestoreJob& job, const Batch& batch,
                        const absl::Status& error) {
  uint64_t first = batch.chunks.front().front(), last = first;
  for (const auto& at : batch.chunks) {
    first = std::min(first, at.front());
    last = std::max(last, at.back());
  }
  // A chunk missing from the vault is damage, not an unknown name.
  return absl::Status(
      absl::IsNotFound(error) ? absl::StatusCode::kDataLoss : error.code(),
      absl::StrCat(first == last ? absl::StrCat("chunk ", first)
                                 : absl::StrCat("chunks ", first, "..", last),
                   " of ", job.vol.host, "/", job.vol.volume, "@",
                   std::string(job.version), ": ", error.message()));
}

// An encrypted version's sealed chunks, opened and checked in place.
absl::Status OpenSealed(const RestoreJob& job, const Batch& batch,
                        std::vector<std::string>& data) {
  return OpenSealedChunks(*job.options.key, batch.hashes,
                          job.idx.chunk_size_bytes, data);
}

// A batch's fetch error, naming the one chunk that fails if reading the
// batch's chunks one at a time finds it (the error path only), else the
// batch's range.
absl::Status PinpointError(const RestoreJob& job, const Batch& batch,
                           const absl::Status& error) {
  for (size_t k = 0; batch.hashes.size() > 1 && k < batch.hashes.size(); ++k) {
    const Batch one{{batch.hashes[k]}, {batch.chunks[k]}};
    auto data = job.source.ReadChunks(job.version, one.hashes);
    if (data.ok() && job.idx.encrypted()) {
      if (absl::Status s = OpenSealed(job, one, *data); !s.ok()) data = s;
    }
    if (!data.ok()) return BatchError(job, one, data.status());
  }
  return BatchError(job, batch, error);
}

// Fetches one batch and writes each chunk wherever the version has it;
// adds the bytes written to `bytes`.
absl::Status WriteBatch(const RestoreJob& job, const Batch& batch,
                        std::atomic<uint64_t>& bytes) {
  auto data = job.source.ReadChunks(job.version, batch.hashes);
  if (data.ok() && data->size() != batch.hashes.size()) {
    data = absl::DataLossError(absl::StrCat("asked for ", batch.hashes.size(),
                                            " chunks, got ", data->size()));
  }
  if (data.ok() && job.idx.encrypted()) {
    if (absl::Status s = OpenSealed(job, batch, *data); !s.ok()) data = s;
  }
  if (!data.ok()) return PinpointError(job, batch, data.status());
  const uint32_t chunk = job.idx.chunk_size_bytes;
  for (size_t k = 0; k < batch.hashes.size(); ++k) {
    const std::string& d = (*data)[k];
    for (uint64_t i : batch.chunks[k]) {
      bytes += d.size();
      if (auto w = job.target.WriteAt(
              i * chunk,
              {reinterpret_cast<const uint8_t*>(d.data()), d.size()});
          !w.ok()) {
        return w;
      }
      if (auto p = job.progress.Add(d.size()); !p.ok()) return p;
    }
  }
  return absl::OkStatus();
}

// Writes the chunks `writes` names, in batches on options.threads threads;
// adds the bytes written to `bytes`.
absl::Status WriteChunks(const RestoreJob& job, const Window& w,
                         const std::vector<uint64_t>& writes,
                         std::atomic<uint64_t>& bytes) {
  const std::vector<Batch> batches = MakeBatches(job, w, writes);
  std::vector<uint64_t> batch_ids(batches.size());
  for (uint64_t b = 0; b < batches.size(); ++b) batch_ids[b] = b;
  return ParallelFor(batch_ids, job.options.threads, [&](uint64_t b) {
    return WriteBatch(job, batches[b], bytes);
  });
}

absl::Status WriteZeros(const RestoreJob& job,
                        const std::vector<uint64_t>& zeros) {
  for (uint64_t i : zeros) {
    if (auto z = job.target.Zero(i * job.idx.chunk_size_bytes,
                                 ChunkBytes(job.idx, i));
        !z.ok()) {
      return z;
    }
  }
  return absl::OkStatus();
}

// Re-reads the chunks `check` names from the target and compares them
// with the version's entries.
absl::Status VerifyTarget(const RestoreJob& job, const Window& w,
                          const std::vector<uint64_t>& check) {
  return ParallelFor(check, job.options.threads, [&](uint64_t i) {
    absl::StatusOr<ChunkHash> entry = TargetEntry(job, i);
    if (!entry.ok()) return entry.status();
    if (*entry != w.entry(i)) {
      return absl::DataLossError(absl::StrCat(
          "verify after restore: chunk ", i, " of the target does not match ",
          job.vol.host, "/", job.vol.volume, "@", std::string(job.version)));
    }
    return absl::OkStatus();
  });
}

// A full restore checks every chunk; an incremental one what it wrote.
std::vector<uint64_t> ChunksToVerify(const Window& w, const WritePlan& plan) {
  if (w.held.empty()) return AllChunks(w);
  std::vector<uint64_t> check = plan.writes;
  check.insert(check.end(), plan.zeros.begin(), plan.zeros.end());
  return check;
}

// The first pass: reads both indexes whole and checks them before anything
// is written, and counts the bytes the restore will compare and write (the
// progress total). A rollback's writes are known only as it compares.
absl::Status Survey(const RestoreJob& job, OpenedIndexes indexes) {
  if (job.options.compare_target) {
    job.progress.AddTotal(job.idx.volume_size_bytes);
  }
  return ForEachWindow(job, std::move(indexes), [&](const Window& w) {
    if (!job.options.compare_target) {
      job.progress.AddTotal(PlanWrites(job, w).write_bytes);
    }
    return absl::OkStatus();
  });
}

// The second pass: restores one window (compares, writes, zeroes and
// verifies its chunks).
absl::Status RestoreWindow(const RestoreJob& job, Window& w,
                           std::atomic<uint64_t>& bytes, RestoreStats& stats) {
  if (job.options.compare_target) {
    if (auto s = CompareTarget(job, w); !s.ok()) return s;
  }
  const WritePlan plan = PlanWrites(job, w);
  if (job.options.compare_target) job.progress.AddTotal(plan.write_bytes);
  if (auto s = WriteChunks(job, w, plan.writes, bytes); !s.ok()) return s;
  if (auto s = WriteZeros(job, plan.zeros); !s.ok()) return s;
  stats.chunks_skipped += plan.skipped;
  stats.chunks_written += plan.writes.size();
  stats.chunks_zeroed += plan.zeros.size();
  if (job.options.verify) {
    // Before the target's final Sync: reading back sees the same bytes.
    const std::vector<uint64_t> check = ChunksToVerify(w, plan);
    if (auto s = VerifyTarget(job, w, check); !s.ok()) return s;
    stats.chunks_verified += check.size();
  }
  return absl::OkStatus();
}

// RestoreFromSource but for cleaning up after a failure. Two passes over
// the index (Survey, then the restore), a window at a time: the memory
// does not grow with the volume, and a damaged index is found before
// anything is written.
absl::StatusOr<RestoreStats> RestoreSteps(VersionSource& source,
                                          std::string_view version,
                                          RestoreTarget& target,
                                          const RestoreOptions& options) {
  OpenedIndexes first;
  auto opened = source.OpenIndex(version);
  if (!opened.ok()) return opened.status();
  first.version = *std::move(opened);
  const IndexMetadata idx = first.version->metadata();
  if (auto s = CheckRestoreKey(idx, options.key); !s.ok()) return s;
  Progress progress(options);
  const RestoreJob job{
      source, version, idx,     VolumeName{idx.host, idx.volume},
      target, options, progress};
  auto from = CheckTargetHolds(job);
  if (!from.ok()) return from.status();
  first.from = *std::move(from);
  const ChunkHash from_root =
      first.from ? first.from->metadata().root_hash : ChunkHash();
  if (auto s = Survey(job, std::move(first)); !s.ok()) return s;

  if (auto s = target.Resize(idx.volume_size_bytes); !s.ok()) return s;
  if (!options.state_path.empty()) {
    if (auto s = WriteState(options.state_path, idx, "incomplete"); !s.ok()) {
      return s;
    }
  }
  auto again = ReopenIndexes(job, from_root);
  if (!again.ok()) return again.status();
  RestoreStats stats;
  std::atomic<uint64_t> bytes{0};
  absl::Status s = ForEachWindow(job, *std::move(again), [&](Window& w) {
    return RestoreWindow(job, w, bytes, stats);
  });
  if (!s.ok()) return s;
  stats.chunks =
      transport::ChunkCount(idx.volume_size_bytes, idx.chunk_size_bytes);
  stats.bytes_written = bytes.load();
  if (auto sy = target.Sync(); !sy.ok()) return sy;
  if (!options.state_path.empty()) {
    if (auto w = WriteState(options.state_path, idx, "complete"); !w.ok()) {
      return w;
    }
  }
  return stats;
}

}  // namespace

absl::Status CheckRestoreKey(const transport::IndexMetadata& idx,
                             const std::optional<transport::TenantKey>& key) {
  if (!idx.encrypted()) return absl::OkStatus();
  const std::string name =
      absl::StrCat(idx.host, "/", idx.volume, "@", idx.version_id);
  if (!key) {
    return absl::FailedPreconditionError(
        absl::StrCat("version ", name, " is encrypted with key ",
                     idx.key_fingerprint, ": give --key-file"));
  }
  if (key->fingerprint() != idx.key_fingerprint) {
    return absl::FailedPreconditionError(absl::StrCat(
        "version ", name, " is encrypted with key ", idx.key_fingerprint,
        ", but the key given is ", key->fingerprint(),
        ": give the key file of the key this host's backups were made with "
        "(cbtctl key import to recreate it from its recovery text)"));
  }
  return absl::OkStatus();
}

absl::Status OpenSealedChunks(const transport::TenantKey& key,
                              std::span<const ChunkHash> hashes,
                              uint32_t max_raw_bytes,
                              std::vector<std::string>& data) {
  auto cipher = transport::ChunkCipher::Create(key);
  if (!cipher.ok()) return cipher.status();
  for (size_t k = 0; k < hashes.size(); ++k) {
    auto plain =
        transport::OpenChunkPayload(*cipher, hashes[k], data[k], max_raw_bytes,
                                    absl::StrCat("chunk ", hashes[k].ToHex()));
    if (!plain.ok()) return plain.status();
    data[k] = *std::move(plain);
  }
  return absl::OkStatus();
}

absl::StatusOr<RestoreStats> RestoreFromSource(VersionSource& source,
                                               std::string_view version,
                                               RestoreTarget& target,
                                               const RestoreOptions& options) {
  // A state file this restore creates goes again if the restore fails: no
  // state file says "unknown" as safely as an "incomplete" one.
  const bool had_state = !options.state_path.empty() &&
                         std::filesystem::exists(options.state_path);
  absl::StatusOr<RestoreStats> stats =
      RestoreSteps(source, version, target, options);
  if (!stats.ok()) {
    if (!options.state_path.empty() && !had_state) {
      std::error_code ec;
      std::filesystem::remove(options.state_path, ec);
    }
    return stats;
  }
  target.Keep();
  return stats;
}

}  // namespace cbtd::restore
