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
  auto idx = FetchIndex(client, host, volume_id, version);
  if (!idx.ok()) return idx.status();
  const bool encrypted = idx->encrypted();
  // Without the key an encrypted version's chunks can only be fetched (the
  // receiver checked its stored checksums); with the wrong key, nothing.
  if (encrypted && key) {
    if (auto s = CheckRestoreKey(*idx, key); !s.ok()) return s;
  }
  // Fetches and, for an encrypted version with the key, opens and checks.
  auto fetch = [&](std::span<const ChunkHash> hashes)
      -> absl::StatusOr<std::vector<std::string>> {
    auto data =
        FetchChunks(client, host, volume_id, version, hashes, encrypted);
    if (!data.ok() || !encrypted || !key) return data;
    if (auto s = OpenSealedChunks(*key, hashes, idx->chunk_size_bytes, *data);
        !s.ok()) {
      return s;
    }
    return data;
  };
  RemoteVerifyReport report;
  report.content_checked = !encrypted || key.has_value();
  report.host = idx->host;
  report.volume = idx->volume;
  report.version = idx->version_id;
  report.root_hash = idx->root_hash;
  report.chunks = idx->entries.size();

  // Each distinct chunk is fetched once, however many positions use it.
  std::vector<ChunkHash> distinct;
  std::unordered_map<ChunkHash, std::vector<uint64_t>,
                     transport::ChunkHashStdHash>
      positions;
  for (uint64_t i = 0; i < idx->entries.size(); ++i) {
    const ChunkHash& h = idx->entries[i];
    if (transport::IsZeroEntry(h)) continue;
    auto& p = positions[h];
    if (p.empty()) distinct.push_back(h);
    p.push_back(i);
  }
  const size_t batch = std::max<size_t>(
      1, std::min<uint64_t>(kMaxRemoteBatchChunks,
                            kRestoreBatchBytes /
                                std::max<uint32_t>(1, idx->chunk_size_bytes)));
  std::map<uint64_t, DamagedChunk> damaged;  // by chunk index
  auto note = [&](const ChunkHash& h, const absl::Status& why) {
    for (uint64_t i : positions[h]) {
      damaged[i] = {i, h, absl::IsNotFound(why), std::string(why.message())};
    }
  };
  auto count = [&](const std::vector<std::string>& data) {
    report.chunks_checked += data.size();
    for (const std::string& d : data) report.bytes_checked += d.size();
  };
  for (size_t start = 0; start < distinct.size(); start += batch) {
    const std::span<const ChunkHash> hashes(
        distinct.data() + start, std::min(batch, distinct.size() - start));
    auto data = fetch(hashes);
    if (data.ok()) {
      count(*data);
      continue;
    }
    if (!IsDamage(data.status())) return data.status();
    // A GetChunks stream stops at the first bad chunk: ask for this batch's
    // chunks one by one to name every bad one.
    for (const ChunkHash& h : hashes) {
      auto one = fetch({&h, 1});
      if (one.ok()) {
        count(*one);
      } else if (IsDamage(one.status())) {
        ++report.chunks_checked;
        note(h, one.status());
      } else {
        return one.status();
      }
    }
  }
  for (auto& [i, d] : damaged) report.damaged.push_back(std::move(d));
  return report;
}

}  // namespace cbtd::restore
