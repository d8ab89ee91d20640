#include "receiver/migrate.h"

#include <unordered_set>

#include "absl/strings/str_cat.h"
#include "receiver/index_stream.h"
#include "receiver/receive_session.h"

namespace cbtd::receiver {
namespace {

std::string Describe(const VolumeName& v, std::string_view id) {
  return absl::StrCat(v.host, "/", v.volume, "@", std::string(id));
}

// Copies the chunks of one version that the tenant does not hold yet, in
// packs of about kPackTargetBytes.
class ChunkCopier {
 public:
  ChunkCopier(Vault& from, Vault& to, std::string tenant, MigrateResult& r)
      : from_(from), to_(to), tenant_(std::move(tenant)), result_(r) {}

  absl::Status Copy(const ChunkHash& h) {
    if (transport::IsZeroEntry(h) || staged_set_.contains(h)) {
      return absl::OkStatus();
    }
    auto has = to_.HasChunk(tenant_, h);
    if (!has.ok()) return has.status();
    if (*has) return absl::OkStatus();
    const std::string key = Vault::ChunkKey(h);
    auto record = from_.store().Get(key);
    if (!record.ok()) {
      return absl::Status(record.status().code(),
                          absl::StrCat("reading the source vault's chunk ", key,
                                       ": ", record.status().message()));
    }
    // Never carry damage into the new vault under a good name.
    auto checked =
        DecodeChunkRecord(*record, h, absl::StrCat("chunk object ", key));
    if (!checked.ok()) return checked.status();
    staged_bytes_ += record->size();
    staged_set_.insert(h);
    staged_.emplace_back(h, *std::move(record));
    if (staged_bytes_ >= to_.pack_target_bytes() ||
        staged_.size() >= kPackMaxChunks) {
      return Flush();
    }
    return absl::OkStatus();
  }

  absl::Status Flush() {
    if (staged_.empty()) return absl::OkStatus();
    if (auto s = to_.StoreChunks(tenant_, staged_); !s.ok()) return s;
    result_.chunks_copied += staged_.size();
    result_.bytes_copied += staged_bytes_;
    ++result_.packs_written;
    staged_.clear();
    staged_set_.clear();
    staged_bytes_ = 0;
    return absl::OkStatus();
  }

 private:
  Vault& from_;
  Vault& to_;
  const std::string tenant_;
  MigrateResult& result_;
  std::vector<std::pair<ChunkHash, std::string>> staged_;
  std::unordered_set<ChunkHash, transport::ChunkHashStdHash> staged_set_;
  size_t staged_bytes_ = 0;
};

// True if the target already holds the version (with the same root hash).
absl::StatusOr<bool> AlreadyThere(Vault& to, const IndexMetadata& idx) {
  const VolumeName v{idx.host, idx.volume};
  auto there = to.ReadIndexMetadata(v, idx.version_id);
  if (absl::IsNotFound(there.status())) return false;
  if (!there.ok()) return there.status();
  if (there->root_hash != idx.root_hash) {
    return absl::FailedPreconditionError(absl::StrCat(
        "the target already holds ", Describe(v, idx.version_id),
        " with root hash ", there->root_hash.ToHex(), ", the source's is ",
        idx.root_hash.ToHex(), ": migrate into an empty vault"));
  }
  return true;
}

// Copies the chunks of the version `reader` streams and writes its index
// into `to` as it goes (in bounded memory); publishes it once the source
// index checked whole and the copy has the same root hash. Chunks copied
// before a damaged source index is found are unreferenced: GC takes them.
absl::Status CopyVersion(IndexReader& reader, Vault& to, ChunkCopier& copier) {
  const IndexMetadata& meta = reader.metadata();
  auto writer = to.CreateIndex(meta);
  if (!writer.ok()) return writer.status();
  for (;;) {
    auto entries = reader.Next();
    if (!entries.ok()) return entries.status();
    if (entries->empty()) break;
    for (const ChunkHash& h : *entries) {
      if (auto s = copier.Copy(h); !s.ok()) return s;
    }
    if (auto s = (*writer)->Append(*entries); !s.ok()) return s;
  }
  if (auto s = reader.Finish(); !s.ok()) return s;  // checksum, root hash
  if (auto s = copier.Flush(); !s.ok()) return s;
  auto root = (*writer)->Finish();
  if (!root.ok()) return root.status();
  if (*root != meta.root_hash) {
    return absl::DataLossError(absl::StrCat(
        "the copy of ", Describe({meta.host, meta.volume}, meta.version_id),
        " has root hash ", root->ToHex(), ", not ", meta.root_hash.ToHex()));
  }
  return (*writer)->Publish(meta.stats);
}

absl::Status MigrateVersion(Vault& from, Vault& to, const VolumeName& v,
                            const std::string& id, MigrateResult& result) {
  auto reader = from.OpenIndex(v, id);  // checked as it is read
  if (!reader.ok()) return reader.status();
  const IndexMetadata meta = (*reader)->metadata();
  auto there = AlreadyThere(to, meta);
  if (!there.ok()) return there.status();
  if (*there) {
    if (auto s = (*reader)->Finish(); !s.ok()) return s;
    ++result.versions_already_there;
    return absl::OkStatus();
  }
  auto tenant = to.TenantOf(v.host);
  if (!tenant.ok()) return tenant.status();
  ChunkCopier copier(from, to, *tenant, result);
  if (auto s = CopyVersion(**reader, to, copier); !s.ok()) return s;
  // Read back whole, checksum and root hash.
  auto copied = to.ReadIndexMetadata(v, id);
  if (!copied.ok()) return copied.status();
  if (copied->root_hash != meta.root_hash) {
    return absl::DataLossError(absl::StrCat(
        "the copy of ", Describe(v, id), " has root hash ",
        copied->root_hash.ToHex(), ", not ", meta.root_hash.ToHex()));
  }
  auto prot = from.IsProtected(v, id);
  if (!prot.ok()) return prot.status();
  if (*prot) {
    if (auto s = to.SetProtected(v, id, true); !s.ok()) return s;
  }
  ++result.versions_copied;
  return absl::OkStatus();
}

}  // namespace

absl::StatusOr<MigrateResult> MigrateVault(Vault& from, Vault& to) {
  if (from.format() != 1 || to.format() != 2) {
    return absl::FailedPreconditionError(absl::StrCat(
        "migrate copies a vault of the first format into a format-2 vault; "
        "the source has format ",
        from.format(), " and the target format ", to.format()));
  }
  // No GC on either side meanwhile: the source's chunks stay, and the
  // target's new packs are not swept before their index names them.
  auto lock = from.store().Lock(kGcLockName, LockMode::kShared, true);
  if (!lock.ok()) return lock.status();
  auto to_lock = to.store().Lock(kGcLockName, LockMode::kShared, true);
  if (!to_lock.ok()) return to_lock.status();
  // GC of the target runs alongside receives, not alongside a migrate,
  // whose packs nothing pins.
  auto to_gc = to.store().Lock(kGcRunLockName, LockMode::kExclusive, true);
  if (!to_gc.ok()) return to_gc.status();
  MigrateResult result;
  auto volumes = from.ListVolumes();
  if (!volumes.ok()) return volumes.status();
  for (const VolumeName& v : *volumes) {
    auto ids = from.ListVersions(v);
    if (!ids.ok()) return ids.status();
    for (const std::string& id : *ids) {
      if (auto s = MigrateVersion(from, to, v, id, result); !s.ok()) {
        return absl::Status(
            s.code(),
            absl::StrCat("migrating ", Describe(v, id), ": ", s.message()));
      }
    }
  }
  return result;
}

}  // namespace cbtd::receiver
