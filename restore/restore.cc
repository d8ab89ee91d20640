#include "restore/restore.h"

#include <atomic>
#include <filesystem>
#include <mutex>
#include <nlohmann/json.hpp>
#include <thread>
#include <unordered_map>
#include <vector>

#include "absl/strings/str_cat.h"
#include "common/fs.h"
#include "transport/chunk_cipher.h"
#include "transport/sealed_chunk.h"

namespace cbtd::restore {
namespace {

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

absl::Status WriteState(const std::string& path, const VersionIndex& idx,
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

// Distinct chunks fetched in one ReadChunks call, and the chunk indexes
// each one is written to.
struct Batch {
  std::vector<ChunkHash> hashes;
  std::vector<std::vector<uint64_t>> chunks;  // parallel to `hashes`
};

// Groups the chunk indexes to write (ascending) into batches of at most
// `max_chunks` distinct hashes and kRestoreBatchBytes.
std::vector<Batch> MakeBatches(const VersionIndex& idx,
                               const std::vector<uint64_t>& writes,
                               size_t max_chunks) {
  const size_t limit = std::max<size_t>(
      1, std::min<uint64_t>(
             max_chunks,
             kRestoreBatchBytes / std::max<uint32_t>(1, idx.chunk_size_bytes)));
  std::vector<Batch> out;
  std::unordered_map<ChunkHash, size_t, transport::ChunkHashStdHash> slot;
  for (uint64_t i : writes) {
    const ChunkHash& h = idx.entries[i];
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
  const VersionIndex& idx;
  // The index names its volume; for a remote source asked for "own host"
  // this is the only place the host is spelled out.
  VolumeName vol;
  RestoreTarget& target;
  const RestoreOptions& options;
  Progress& progress;
};

// The entry chunk `i` of the target would have in the version's index
// (its keyed id for an encrypted version).
absl::StatusOr<ChunkHash> TargetEntry(const RestoreJob& job, uint64_t i) {
  const uint32_t chunk = job.idx.chunk_size_bytes;
  std::vector<uint8_t> buf(
      transport::ChunkLength(job.idx.volume_size_bytes, chunk, i));
  if (auto r = job.target.ReadAt(i * chunk, buf); !r.ok()) return r;
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

// For a rollback: the entries of what the target holds now, read and
// hashed chunk by chunk.
absl::StatusOr<std::vector<ChunkHash>> CompareTarget(const RestoreJob& job) {
  const VersionIndex& idx = job.idx;
  if (!job.options.from_version.empty()) {
    return absl::InvalidArgumentError(
        "a rollback compares the target itself and takes no base version");
  }
  if (job.target.SizeBytes() < idx.volume_size_bytes) {
    return absl::FailedPreconditionError(absl::StrCat(
        "the target holds ", job.target.SizeBytes(), " bytes, the version ",
        idx.volume_size_bytes, "; a rollback needs the volume at its size"));
  }
  std::vector<uint64_t> all(idx.entries.size());
  for (uint64_t i = 0; i < all.size(); ++i) all[i] = i;
  std::vector<ChunkHash> held(all.size());
  job.progress.AddTotal(idx.volume_size_bytes);
  absl::Status s = ParallelFor(all, job.options.threads, [&](uint64_t i) {
    absl::StatusOr<ChunkHash> e = TargetEntry(job, i);
    if (!e.ok()) return e.status();
    held[i] = *e;
    return job.progress.Add(
        transport::ChunkLength(idx.volume_size_bytes, idx.chunk_size_bytes, i));
  });
  if (!s.ok()) return s;
  return held;
}

// For an incremental restore (options.from_version set): the entries of the
// version the target holds, once its state file proves it holds it and the
// two versions share their geometry. Empty for a full restore.
absl::StatusOr<std::vector<ChunkHash>> EntriesTargetHolds(
    const RestoreJob& job) {
  const RestoreOptions& options = job.options;
  const VolumeName& vol = job.vol;
  if (options.compare_target) return CompareTarget(job);
  if (options.from_version.empty()) return std::vector<ChunkHash>();
  if (options.state_path.empty()) {
    return absl::InvalidArgumentError(
        "an incremental restore needs the target's state file (--state)");
  }
  auto from = job.source.ReadIndex(options.from_version);
  if (!from.ok()) return from.status();
  auto st = ReadState(options.state_path);
  if (!st.ok()) {
    return absl::FailedPreconditionError(absl::StrCat(
        "cannot tell which version the target holds: ",
        std::string(st.status().message()), "; do a full restore instead"));
  }
  if (st->state != "complete" || st->host != vol.host ||
      st->volume != vol.volume || st->version != options.from_version ||
      st->root_hash != from->root_hash.ToHex()) {
    return absl::FailedPreconditionError(absl::StrCat(
        "target state file ", options.state_path, " says it holds ", st->host,
        "/", st->volume, "@", st->version, " (root ", st->root_hash, ", ",
        st->state,
        ") but the incremental restore "
        "starts from ",
        vol.host, "/", vol.volume, "@", options.from_version, " (root ",
        from->root_hash.ToHex(), "); do a full restore instead"));
  }
  if (from->chunk_size_bytes != job.idx.chunk_size_bytes ||
      from->volume_size_bytes != job.idx.volume_size_bytes) {
    return absl::FailedPreconditionError(absl::StrCat(
        "versions ", options.from_version, " and ", std::string(job.version),
        " differ in chunk or volume size; do a full restore instead"));
  }
  return std::move(from->entries);
}

// Which chunks a restore writes, zeroes and skips.
struct WritePlan {
  std::vector<uint64_t> writes;  // fetched and written; ascending
  std::vector<uint64_t> zeros;   // zeroed; ascending
  uint64_t skipped = 0;
};

// `held`: the entries the target already holds (empty: none).
WritePlan PlanWrites(const VersionIndex& idx,
                     const std::vector<ChunkHash>& held, bool fresh_target) {
  WritePlan plan;
  for (uint64_t i = 0; i < idx.entries.size(); ++i) {
    const ChunkHash& e = idx.entries[i];
    if (!held.empty() && held[i] == e) {
      ++plan.skipped;
    } else if (transport::IsZeroEntry(e)) {
      if (fresh_target && held.empty()) {
        ++plan.skipped;  // a new file is all holes already
      } else {
        plan.zeros.push_back(i);
      }
    } else {
      plan.writes.push_back(i);
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
// returns the bytes written.
absl::StatusOr<uint64_t> WriteChunks(const RestoreJob& job,
                                     const std::vector<uint64_t>& writes) {
  const std::vector<Batch> batches =
      MakeBatches(job.idx, writes, job.source.max_batch_chunks());
  std::vector<uint64_t> batch_ids(batches.size());
  for (uint64_t b = 0; b < batches.size(); ++b) batch_ids[b] = b;
  std::atomic<uint64_t> bytes{0};
  absl::Status s = ParallelFor(batch_ids, job.options.threads, [&](uint64_t b) {
    return WriteBatch(job, batches[b], bytes);
  });
  if (!s.ok()) return s;
  return bytes.load();
}

absl::Status WriteZeros(const RestoreJob& job,
                        const std::vector<uint64_t>& zeros) {
  const uint32_t chunk = job.idx.chunk_size_bytes;
  for (uint64_t i : zeros) {
    if (auto z = job.target.Zero(
            i * chunk,
            transport::ChunkLength(job.idx.volume_size_bytes, chunk, i));
        !z.ok()) {
      return z;
    }
  }
  return absl::OkStatus();
}

// Re-reads the chunks `check` names from the target and compares them
// with the version's entries.
absl::Status VerifyTarget(const RestoreJob& job,
                          const std::vector<uint64_t>& check) {
  return ParallelFor(check, job.options.threads, [&](uint64_t i) {
    absl::StatusOr<ChunkHash> entry = TargetEntry(job, i);
    if (!entry.ok()) return entry.status();
    if (*entry != job.idx.entries[i]) {
      return absl::DataLossError(absl::StrCat(
          "verify after restore: chunk ", i, " of the target does not match ",
          job.vol.host, "/", job.vol.volume, "@", std::string(job.version)));
    }
    return absl::OkStatus();
  });
}

// A full restore checks every chunk; an incremental one what it wrote.
std::vector<uint64_t> ChunksToVerify(const VersionIndex& idx, bool incremental,
                                     const WritePlan& plan) {
  std::vector<uint64_t> check;
  if (!incremental) {
    for (uint64_t i = 0; i < idx.entries.size(); ++i) check.push_back(i);
  } else {
    check = plan.writes;
    check.insert(check.end(), plan.zeros.begin(), plan.zeros.end());
  }
  return check;
}

// RestoreFromSource but for cleaning up after a failure.
absl::StatusOr<RestoreStats> RestoreSteps(VersionSource& source,
                                          std::string_view version,
                                          RestoreTarget& target,
                                          const RestoreOptions& options) {
  auto idx = source.ReadIndex(version);
  if (!idx.ok()) return idx.status();
  if (auto s = CheckRestoreKey(*idx, options.key); !s.ok()) return s;
  Progress progress(options);
  const RestoreJob job{
      source, version, *idx,    VolumeName{idx->host, idx->volume},
      target, options, progress};
  RestoreStats stats;
  stats.chunks = idx->entries.size();
  absl::StatusOr<std::vector<ChunkHash>> held = EntriesTargetHolds(job);
  if (!held.ok()) return held.status();

  if (auto s = target.Resize(idx->volume_size_bytes); !s.ok()) return s;
  if (!options.state_path.empty()) {
    if (auto s = WriteState(options.state_path, *idx, "incomplete"); !s.ok()) {
      return s;
    }
  }

  const WritePlan plan = PlanWrites(*idx, *held, target.fresh());
  stats.chunks_skipped = plan.skipped;
  for (uint64_t i : plan.writes) {
    progress.AddTotal(transport::ChunkLength(idx->volume_size_bytes,
                                             idx->chunk_size_bytes, i));
  }
  absl::StatusOr<uint64_t> bytes = WriteChunks(job, plan.writes);
  if (!bytes.ok()) return bytes.status();
  if (auto s = WriteZeros(job, plan.zeros); !s.ok()) return s;
  stats.chunks_written = plan.writes.size();
  stats.chunks_zeroed = plan.zeros.size();
  stats.bytes_written = *bytes;
  if (auto sy = target.Sync(); !sy.ok()) return sy;

  if (options.verify) {
    const std::vector<uint64_t> check =
        ChunksToVerify(*idx, !held->empty(), plan);
    if (auto s = VerifyTarget(job, check); !s.ok()) return s;
    stats.chunks_verified = check.size();
  }
  if (!options.state_path.empty()) {
    if (auto w = WriteState(options.state_path, *idx, "complete"); !w.ok()) {
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
