#include "receiver/restore.h"

#include <atomic>
#include <filesystem>
#include <mutex>
#include <nlohmann/json.hpp>
#include <thread>
#include <unordered_map>
#include <vector>

#include "absl/strings/str_cat.h"
#include "common/fs.h"

namespace cbtd::receiver {
namespace {

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

}  // namespace

absl::StatusOr<VersionIndex> VaultVersionSource::ReadIndex(
    std::string_view version) {
  return vault_.ReadIndex(volume_, version);
}

absl::StatusOr<std::vector<std::string>> VaultVersionSource::ReadChunks(
    std::string_view /*version*/, std::span<const ChunkHash> hashes) {
  std::vector<std::string> out;
  out.reserve(hashes.size());
  for (const ChunkHash& h : hashes) {
    auto data = vault_.ReadChunk(h);  // checks checksum and content hash
    if (!data.ok()) return data.status();
    out.push_back(std::move(*data));
  }
  return out;
}

absl::StatusOr<RestoreStats> RestoreVersion(Vault& vault, const VolumeName& vol,
                                            std::string_view version,
                                            RestoreTarget& target,
                                            const RestoreOptions& options) {
  VaultVersionSource source(vault, vol);
  return RestoreFromSource(source, version, target, options);
}

namespace {

absl::StatusOr<RestoreStats> RestoreInner(VersionSource& source,
                                          std::string_view version,
                                          RestoreTarget& target,
                                          const RestoreOptions& options);

}  // namespace

absl::StatusOr<RestoreStats> RestoreFromSource(VersionSource& source,
                                               std::string_view version,
                                               RestoreTarget& target,
                                               const RestoreOptions& options) {
  // A state file this restore creates goes again if the restore fails: no
  // state file says "unknown" as safely as an "incomplete" one.
  const bool had_state = !options.state_path.empty() &&
                         std::filesystem::exists(options.state_path);
  auto stats = RestoreInner(source, version, target, options);
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

namespace {

absl::StatusOr<RestoreStats> RestoreInner(VersionSource& source,
                                          std::string_view version,
                                          RestoreTarget& target,
                                          const RestoreOptions& options) {
  auto idx = source.ReadIndex(version);
  if (!idx.ok()) return idx.status();
  const uint64_t n = idx->entries.size();
  const uint32_t chunk = idx->chunk_size_bytes;
  // The index names its volume; for a remote source asked for "own host"
  // this is the only place the host is spelled out.
  const VolumeName vol{idx->host, idx->volume};
  RestoreStats stats;
  stats.chunks = n;

  std::vector<ChunkHash> from_entries;
  if (!options.from_version.empty()) {
    if (options.state_path.empty()) {
      return absl::InvalidArgumentError(
          "an incremental restore needs the target's state file (--state)");
    }
    auto from = source.ReadIndex(options.from_version);
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
    if (from->chunk_size_bytes != chunk ||
        from->volume_size_bytes != idx->volume_size_bytes) {
      return absl::FailedPreconditionError(absl::StrCat(
          "versions ", options.from_version, " and ", std::string(version),
          " differ in chunk or volume size; do a full restore instead"));
    }
    from_entries = std::move(from->entries);
  }

  if (auto s = target.Resize(idx->volume_size_bytes); !s.ok()) return s;
  if (!options.state_path.empty()) {
    if (auto s = WriteState(options.state_path, *idx, "incomplete"); !s.ok()) {
      return s;
    }
  }

  std::vector<uint64_t> writes, zeros;
  for (uint64_t i = 0; i < n; ++i) {
    const ChunkHash& e = idx->entries[i];
    if (!from_entries.empty() && from_entries[i] == e) {
      ++stats.chunks_skipped;
    } else if (transport::IsZeroEntry(e)) {
      if (target.fresh() && from_entries.empty()) {
        ++stats.chunks_skipped;  // a new file is all holes already
      } else {
        zeros.push_back(i);
      }
    } else {
      writes.push_back(i);
    }
  }
  const std::vector<Batch> batches =
      MakeBatches(*idx, writes, source.max_batch_chunks());
  std::vector<uint64_t> batch_ids(batches.size());
  for (uint64_t b = 0; b < batches.size(); ++b) batch_ids[b] = b;
  std::atomic<uint64_t> bytes{0};
  absl::Status s = ParallelFor(batch_ids, options.threads, [&](uint64_t b) {
    const Batch& batch = batches[b];
    auto data = source.ReadChunks(version, batch.hashes);
    if (data.ok() && data->size() != batch.hashes.size()) {
      data = absl::DataLossError(absl::StrCat("asked for ", batch.hashes.size(),
                                              " chunks, got ", data->size()));
    }
    if (!data.ok()) {
      uint64_t first = batch.chunks.front().front(), last = first;
      for (const auto& at : batch.chunks) {
        first = std::min(first, at.front());
        last = std::max(last, at.back());
      }
      // A chunk missing from the vault is damage, not an unknown name.
      return absl::Status(
          absl::IsNotFound(data.status()) ? absl::StatusCode::kDataLoss
                                          : data.status().code(),
          absl::StrCat(first == last
                           ? absl::StrCat("chunk ", first)
                           : absl::StrCat("chunks ", first, "..", last),
                       " of ", vol.host, "/", vol.volume, "@",
                       std::string(version), ": ", data.status().message()));
    }
    for (size_t k = 0; k < batch.hashes.size(); ++k) {
      const std::string& d = (*data)[k];
      for (uint64_t i : batch.chunks[k]) {
        bytes += d.size();
        if (auto w = target.WriteAt(
                i * chunk,
                {reinterpret_cast<const uint8_t*>(d.data()), d.size()});
            !w.ok()) {
          return w;
        }
      }
    }
    return absl::OkStatus();
  });
  if (!s.ok()) return s;
  for (uint64_t i : zeros) {
    if (auto z = target.Zero(i * chunk, transport::ChunkLength(
                                            idx->volume_size_bytes, chunk, i));
        !z.ok()) {
      return z;
    }
  }
  stats.chunks_written = writes.size();
  stats.chunks_zeroed = zeros.size();
  stats.bytes_written = bytes;
  if (auto sy = target.Sync(); !sy.ok()) return sy;

  if (options.verify) {
    std::vector<uint64_t> check;
    if (from_entries.empty()) {
      for (uint64_t i = 0; i < n; ++i) check.push_back(i);
    } else {
      check = writes;
      check.insert(check.end(), zeros.begin(), zeros.end());
    }
    s = ParallelFor(check, options.threads, [&](uint64_t i) {
      std::vector<uint8_t> buf(
          transport::ChunkLength(idx->volume_size_bytes, chunk, i));
      if (auto r = target.ReadAt(i * chunk, buf); !r.ok()) return r;
      if (transport::EntryOf(buf) != idx->entries[i]) {
        return absl::DataLossError(absl::StrCat(
            "verify after restore: chunk ", i, " of the target does not match ",
            vol.host, "/", vol.volume, "@", std::string(version)));
      }
      return absl::OkStatus();
    });
    if (!s.ok()) return s;
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
}  // namespace cbtd::receiver
