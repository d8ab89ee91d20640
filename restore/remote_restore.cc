#include "restore/remote_restore.h"

#include <algorithm>
#include <map>
#include <mutex>
#include <unordered_map>

#include "absl/strings/str_cat.h"
#include "transport/stream_index.h"

namespace cbtd::restore {
namespace {

std::string Describe(const std::string& host, const std::string& volume,
                     std::string_view version) {
  return absl::StrCat(host.empty() ? "(own host)" : host, "/", volume, "@",
                      std::string(version));
}

// GetIndex, re-checked: the client is an interface, and a restore must not
// rest on what an implementation may or may not have verified.
absl::StatusOr<VersionIndex> FetchIndex(transport::RemoteClient& client,
                                        const std::string& host,
                                        const std::string& volume,
                                        std::string_view version) {
  auto idx = client.GetIndex(host, volume, std::string(version));
  if (!idx.ok()) return idx.status();
  if (idx->chunk_size_bytes == 0 ||
      idx->entries.size() != transport::ChunkCount(idx->volume_size_bytes,
                                                   idx->chunk_size_bytes) ||
      transport::ComputeRootHash(idx->volume_size_bytes, idx->chunk_size_bytes,
                                 idx->entries) != idx->root_hash) {
    return absl::DataLossError(
        absl::StrCat("index of ", Describe(host, volume, version),
                     " from the receiver does not match its root hash"));
  }
  return idx;
}

// GetChunks, each chunk checked against its hash; a chunk of an encrypted
// version is returned sealed, unchecked (the caller opens it with the key).
absl::StatusOr<std::vector<std::string>> FetchChunks(
    transport::RemoteClient& client, const std::string& host,
    const std::string& volume, std::string_view version,
    std::span<const ChunkHash> hashes, bool encrypted) {
  auto data = client.GetChunks(host, volume, std::string(version),
                               {hashes.begin(), hashes.end()});
  if (!data.ok()) return data.status();
  if (data->size() != hashes.size()) {
    return absl::DataLossError(absl::StrCat("asked the receiver for ",
                                            hashes.size(), " chunks, got ",
                                            data->size()));
  }
  for (size_t k = 0; k < hashes.size() && !encrypted; ++k) {
    const std::string& d = (*data)[k];
    if (ChunkHash::Sha256({reinterpret_cast<const uint8_t*>(d.data()),
                           d.size()}) != hashes[k]) {
      return absl::DataLossError(absl::StrCat("chunk ", hashes[k].ToHex(),
                                              " arrived with other content"));
    }
  }
  return data;
}

class RemoteVersionSource : public VersionSource {
 public:
  RemoteVersionSource(transport::RemoteClient& client, std::string host,
                      std::string volume)
      : client_(client), host_(std::move(host)), volume_(std::move(volume)) {}

  absl::StatusOr<VersionIndex> ReadIndex(std::string_view version) override {
    auto idx = FetchIndex(client_, host_, volume_, version);
    if (idx.ok()) {
      std::lock_guard l(mu_);
      encrypted_[std::string(version)] = idx->encrypted();
    }
    return idx;
  }
  absl::StatusOr<std::unique_ptr<transport::IndexEntrySource>> OpenIndex(
      std::string_view version) override {
    auto source = client_.OpenIndex(host_, volume_, std::string(version));
    if (source.ok()) {
      std::lock_guard l(mu_);
      encrypted_[std::string(version)] = (*source)->metadata().encrypted();
    }
    return source;
  }
  absl::StatusOr<std::vector<std::string>> ReadChunks(
      std::string_view version, std::span<const ChunkHash> hashes) override {
    bool encrypted = false;
    {
      std::lock_guard l(mu_);
      auto it = encrypted_.find(version);
      if (it == encrypted_.end()) {
        return absl::FailedPreconditionError(
            absl::StrCat("internal: chunks of ", std::string(version),
                         " asked for before its index"));
      }
      encrypted = it->second;
    }
    return FetchChunks(client_, host_, volume_, version, hashes, encrypted);
  }
  // Every call is a round trip: ask for as much as the service allows.
  size_t max_batch_chunks() const override { return kMaxRemoteBatchChunks; }

 private:
  transport::RemoteClient& client_;
  const std::string host_;
  const std::string volume_;
  std::mutex mu_;
  // Per version read: whether its chunks arrive sealed. Guarded by mu_.
  std::map<std::string, bool, std::less<>> encrypted_;
};

bool IsDamage(const absl::Status& s) {
  return absl::IsDataLoss(s) || absl::IsNotFound(s);
}

// Chunks whose entries a remote verify holds at a time (2 MiB of them).
constexpr uint64_t kVerifyWindowEntries = 2 * transport::kIndexBatchEntries;

// VerifyRemoteVersion's fetching and bookkeeping, a window of the index at
// a time: each distinct chunk of a window is fetched once, however many of
// its positions use it.
class RemoteVerifier {
 public:
  RemoteVerifier(transport::RemoteClient& client, const std::string& host,
                 const std::string& volume, const std::string& version,
                 const transport::IndexMetadata& meta,
                 const std::optional<transport::TenantKey>& key)
      : client_(client),
        host_(host),
        volume_(volume),
        version_(version),
        chunk_size_(meta.chunk_size_bytes),
        encrypted_(meta.encrypted()),
        key_(key) {
    report_.content_checked = !encrypted_ || key_.has_value();
    report_.host = meta.host;
    report_.volume = meta.volume;
    report_.version = meta.version_id;
    report_.root_hash = meta.root_hash;
  }

  // Checks the chunks of positions [first, first + entries.size()).
  absl::Status CheckWindow(uint64_t first, std::span<const ChunkHash> entries) {
    std::vector<ChunkHash> distinct;
    positions_.clear();
    for (uint64_t k = 0; k < entries.size(); ++k) {
      const ChunkHash& h = entries[k];
      if (transport::IsZeroEntry(h)) continue;
      auto& p = positions_[h];
      if (p.empty()) distinct.push_back(h);
      p.push_back(first + k);
    }
    const size_t batch = std::max<size_t>(
        1, std::min<uint64_t>(
               kMaxRemoteBatchChunks,
               kRestoreBatchBytes / std::max<uint32_t>(1, chunk_size_)));
    std::map<uint64_t, DamagedChunk> damaged;  // by chunk index
    for (size_t start = 0; start < distinct.size(); start += batch) {
      const std::span<const ChunkHash> hashes(
          distinct.data() + start, std::min(batch, distinct.size() - start));
      if (auto s = CheckBatch(hashes, damaged); !s.ok()) return s;
    }
    for (auto& [i, d] : damaged) report_.damaged.push_back(std::move(d));
    return absl::OkStatus();
  }

  RemoteVerifyReport TakeReport(uint64_t chunks) {
    report_.chunks = chunks;
    return std::move(report_);
  }

 private:
  // Fetches and, for an encrypted version with the key, opens and checks.
  absl::StatusOr<std::vector<std::string>> Fetch(
      std::span<const ChunkHash> hashes) {
    auto data =
        FetchChunks(client_, host_, volume_, version_, hashes, encrypted_);
    if (!data.ok() || !encrypted_ || !key_) return data;
    if (auto s = OpenSealedChunks(*key_, hashes, chunk_size_, *data); !s.ok()) {
      return s;
    }
    return data;
  }

  void Count(const std::vector<std::string>& data) {
    report_.chunks_checked += data.size();
    for (const std::string& d : data) report_.bytes_checked += d.size();
  }

  absl::Status CheckBatch(std::span<const ChunkHash> hashes,
                          std::map<uint64_t, DamagedChunk>& damaged) {
    auto data = Fetch(hashes);
    if (data.ok()) {
      Count(*data);
      return absl::OkStatus();
    }
    if (!IsDamage(data.status())) return data.status();
    // A GetChunks stream stops at the first bad chunk: ask for this batch's
    // chunks one by one to name every bad one.
    for (const ChunkHash& h : hashes) {
      auto one = Fetch({&h, 1});
      if (one.ok()) {
        Count(*one);
      } else if (IsDamage(one.status())) {
        ++report_.chunks_checked;
        for (uint64_t i : positions_[h]) {
          damaged[i] = {i, h, absl::IsNotFound(one.status()),
                        std::string(one.status().message())};
        }
      } else {
        return one.status();
      }
    }
    return absl::OkStatus();
  }

  transport::RemoteClient& client_;
  const std::string& host_;
  const std::string& volume_;
  const std::string& version_;
  const uint32_t chunk_size_;
  const bool encrypted_;
  const std::optional<transport::TenantKey>& key_;
  RemoteVerifyReport report_;
  // The positions in the current window of each distinct chunk.
  std::unordered_map<ChunkHash, std::vector<uint64_t>,
                     transport::ChunkHashStdHash>
      positions_;
};

}  // namespace

std::unique_ptr<VersionSource> NewRemoteVersionSource(
    transport::RemoteClient& client, const std::string& host,
    const std::string& volume_id) {
  return std::make_unique<RemoteVersionSource>(client, host, volume_id);
}

absl::StatusOr<RestoreStats> RestoreRemoteVersion(
    transport::RemoteClient& client, const std::string& host,
    const std::string& volume_id, const std::string& version,
    RestoreTarget& target, const RestoreOptions& options) {
  RemoteVersionSource source(client, host, volume_id);
  return RestoreFromSource(source, version, target, options);
}

absl::StatusOr<RemoteVerifyReport> VerifyRemoteVersion(
    transport::RemoteClient& client, const std::string& host,
    const std::string& volume_id, const std::string& version,
    const std::optional<transport::TenantKey>& key) {
  auto source = client.OpenIndex(host, volume_id, version);
  if (!source.ok()) return source.status();
  const transport::IndexMetadata& meta = (*source)->metadata();
  // Without the key an encrypted version's chunks can only be fetched (the
  // receiver checked its stored checksums); with the wrong key, nothing.
  if (meta.encrypted() && key) {
    if (auto s = CheckRestoreKey(meta, key); !s.ok()) return s;
  }
  RemoteVerifier verifier(client, host, volume_id, version, meta, key);
  transport::CheckedEntries entries(
      **source,
      absl::StrCat("the index of ", Describe(host, volume_id, version),
                   " from the receiver"));
  std::vector<ChunkHash> window;
  for (uint64_t first = 0; first < entries.count(); first += window.size()) {
    const uint64_t n = std::min(kVerifyWindowEntries, entries.count() - first);
    if (auto s = entries.Read(n, window); !s.ok()) return s;
    if (auto s = verifier.CheckWindow(first, window); !s.ok()) return s;
  }
  if (auto s = entries.Finish(); !s.ok()) return s;
  return verifier.TakeReport(entries.count());
}

}  // namespace cbtd::restore
