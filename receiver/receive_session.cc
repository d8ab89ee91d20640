#include "receiver/receive_session.h"

#include <xxhash.h>

#include <algorithm>
#include <chrono>
#include <deque>
#include <future>
#include <iterator>

#include "absl/strings/str_cat.h"
#include "receiver/receive_registration.h"
#include "transport/sealed_chunk.h"

namespace cbtd::receiver {
namespace {

std::string Describe(const stream::Header& h, std::string_view version) {
  return absl::StrCat(h.source_host(), "/", h.volume_id(), "@",
                      std::string(version));
}

absl::StatusOr<ChunkHash> HashField(const std::string& raw, uint64_t index) {
  auto h = ChunkHash::FromBytes(raw);
  if (!h.ok()) {
    return absl::InvalidArgumentError(
        absl::StrCat("chunk ", index, ": ", std::string(h.status().message())));
  }
  return *h;
}

absl::Status ValidateHeader(const stream::Header& h) {
  if (h.format_version() != transport::kStreamFormatVersion) {
    return absl::FailedPreconditionError(
        absl::StrCat("stream format version ", h.format_version(),
                     " is not supported; this cbt-receiver reads version ",
                     transport::kStreamFormatVersion,
                     " (whose header carries a checksum over its encryption): "
                     "send the stream again with a cbtctl of the same "
                     "release"));
  }
  if (auto s = transport::CheckHeaderChecksum(h); !s.ok()) return s;
  switch (h.encryption()) {
    case stream::ENCRYPTION_NONE:
      if (!h.key_fingerprint().empty()) {
        return absl::InvalidArgumentError(
            "stream header: a key fingerprint without encryption");
      }
      break;
    case stream::ENCRYPTION_AES256GCM_V1:
      if (!transport::IsKeyFingerprint(h.key_fingerprint())) {
        return absl::InvalidArgumentError(absl::StrCat(
            "stream header: key fingerprint '", h.key_fingerprint(),
            "' is not 16 lowercase hex digits"));
      }
      break;
    default:
      return absl::InvalidArgumentError(absl::StrCat(
          "stream header: unknown encryption ",
          static_cast<int>(h.encryption()), "; upgrade cbt-receiver"));
  }
  if (h.hash_algorithm() != stream::HASH_SHA256) {
    return absl::InvalidArgumentError(
        "stream header: hash_algorithm must be HASH_SHA256");
  }
  if (auto s = ValidateName("source host", h.source_host()); !s.ok()) return s;
  if (auto s = ValidateName("volume id", h.volume_id()); !s.ok()) return s;
  if (auto s = ValidateName("new version id", h.new_version_id()); !s.ok()) {
    return s;
  }
  if (!h.group().empty() || !h.group_version_id().empty()) {
    if (auto s = ValidateName("group", h.group()); !s.ok()) return s;
    if (auto s = ValidateName("group version id", h.group_version_id());
        !s.ok()) {
      return s;
    }
  }
  if (!h.base_version_id().empty()) {
    if (auto s = ValidateName("base version id", h.base_version_id());
        !s.ok()) {
      return s;
    }
  } else if (!h.base_root_hash().empty()) {
    return absl::InvalidArgumentError(
        "stream header: a base root hash without a base version id");
  }
  if (h.volume_size_bytes() == 0) {
    return absl::InvalidArgumentError("stream header: volume size is 0");
  }
  if (h.chunk_size_bytes() < 4096 ||
      h.chunk_size_bytes() > transport::kMaxChunkBytes ||
      h.chunk_size_bytes() % 4096 != 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("stream header: chunk size ", h.chunk_size_bytes(),
                     " must be a multiple of 4096 between 4096 and ",
                     transport::kMaxChunkBytes));
  }
  return absl::OkStatus();
}

std::string KeyName(const std::string& fingerprint) {
  return fingerprint.empty() ? std::string("no key (plaintext)")
                             : absl::StrCat("key ", fingerprint);
}

// A tenant is bound to one key, or to none: its chunk ids are keyed ids of
// that key (or SHA-256), and dedup, references and restores only work
// within one. The binding is tenants/<t>/key-fingerprint once an encrypted
// stream arrived; a tenant without it that holds versions is plaintext.
// Returns the fingerprint the tenant is bound to ("" for plaintext or
// unbound) and whether it is unbound; FAILED_PRECONDITION when the stream
// does not match.
absl::StatusOr<bool> CheckTenantKey(Vault& vault, const std::string& tenant,
                                    const stream::Header& h) {
  auto bound = vault.TenantKeyFingerprint(tenant);
  if (!bound.ok()) return bound.status();
  const std::string& mine = h.key_fingerprint();
  std::string tenant_key = *bound;
  bool unbound = false;
  // Plaintext or new: plaintext if any host of the tenant has versions.
  auto hosts = vault.HostsOfTenant(tenant);
  if (!hosts.ok()) return hosts.status();
  if (bound->empty()) {
    unbound = true;
    for (const std::string& host : *hosts) {
      auto versions = vault.ListHostVersions(host);
      if (!versions.ok()) return versions.status();
      unbound = unbound && versions->empty();
    }
    if (unbound) return true;
  }
  if (tenant_key == mine) return false;
  const bool shared = hosts->size() > 1 || tenant != h.source_host();
  std::string remedy =
      tenant_key.empty()
          ? "send without a key file, or under a new host name"
          : absl::StrCat(
                "use the key this host's backups were made with "
                "(fingerprint ",
                tenant_key,
                "): cbtctl key import --key-file FILE < recovery "
                "text, then send with --key-file FILE");
  if (shared && !tenant_key.empty()) {
    remedy = absl::StrCat(
        "the hosts of one tenant share one key: export it on a host of "
        "tenant '",
        tenant, "' (cbtctl key export) and import it on ", h.source_host(),
        " (cbtctl key import --key-file FILE < recovery text), then send "
        "with --key-file FILE");
  } else if (shared) {
    remedy = absl::StrCat(
        "the hosts of one tenant share one key, and tenant '", tenant,
        "' has versions without one: send without a key file, or assign "
        "this host to another tenant");
  }
  return absl::FailedPreconditionError(absl::StrCat(
      "tenant '", tenant, "' is bound to ", KeyName(tenant_key),
      " but this stream of ", Describe(h, h.new_version_id()), " has ",
      KeyName(mine), ": ", remedy, "; nothing was stored"));
}

// Opens the stream's base index and checks its metadata against the
// header: it exists, has the root hash the sender based the stream on,
// the same key, chunk size, and volume size unless resizing is allowed.
// The metadata is not verified yet: the session checks the whole base
// (IndexReader::Finish) before it publishes anything built from it.
absl::StatusOr<std::unique_ptr<IndexReader>> OpenBase(
    Vault& vault, const VolumeName& vol, const stream::Header& header) {
  auto base = vault.OpenIndex(vol, header.base_version_id());
  if (!base.ok()) {
    if (absl::IsNotFound(base.status())) {
      auto versions = vault.ListVersions(vol);
      std::string held =
          versions.ok() && !versions->empty()
              ? absl::StrCat("the newest it holds is ", versions->back())
              : "it holds no version of this volume";
      return absl::FailedPreconditionError(absl::StrCat(
          "stream's base version ", Describe(header, header.base_version_id()),
          " does not exist in the vault (", held,
          "); send a full stream or one based on a version the vault "
          "holds"));
    }
    return base.status();
  }
  const IndexMetadata& b = (*base)->metadata();
  if (b.root_hash.ToBytes() != header.base_root_hash()) {
    std::string stream_root =
        header.base_root_hash().size() == ChunkHash::kSize
            ? ChunkHash::FromBytes(header.base_root_hash())->ToHex()
            : absl::StrCat("<", header.base_root_hash().size(), " bytes>");
    return absl::FailedPreconditionError(absl::StrCat(
        "stream's base ", Describe(header, header.base_version_id()),
        " has root hash ", stream_root, " but the vault's has ",
        b.root_hash.ToHex(),
        ": the sender's base is not the vault's; send a full stream"));
  }
  if (b.key_fingerprint != header.key_fingerprint()) {
    return absl::FailedPreconditionError(absl::StrCat(
        "stream's base ", Describe(header, header.base_version_id()),
        " was stored with ", KeyName(b.key_fingerprint), " but the stream has ",
        KeyName(header.key_fingerprint()),
        "; send with the base's key, or a full stream"));
  }
  if (b.chunk_size_bytes != header.chunk_size_bytes()) {
    return absl::FailedPreconditionError(
        absl::StrCat("stream chunk size ", header.chunk_size_bytes(),
                     " differs from ", b.chunk_size_bytes, " of base ",
                     Describe(header, header.base_version_id()),
                     "; a new chunk size needs a full stream"));
  }
  if (b.volume_size_bytes != header.volume_size_bytes() &&
      !header.allow_resize()) {
    return absl::FailedPreconditionError(absl::StrCat(
        "stream volume size ", header.volume_size_bytes(),
        " bytes differs from ", b.volume_size_bytes, " bytes of base ",
        Describe(header, header.base_version_id()),
        "; resend with allow_resize if the volume was resized"));
  }
  return base;
}

}  // namespace

absl::StatusOr<std::unique_ptr<ReceiveSession>> ReceiveSession::Open(
    Vault& vault, const stream::Header& header) {
  if (auto s = ValidateHeader(header); !s.ok()) return s;
  if (vault.format() != 2) {
    return absl::FailedPreconditionError(
        "this vault has the first format (one file per chunk, shared by "
        "every host): it is read-only; receive into a new vault, or copy "
        "it into one with `cbt-receiver migrate --vault OLD --to NEW`");
  }
  const VolumeName vol{header.source_host(), header.volume_id()};
  // Shared GC lock first, so the base and its chunks cannot be swept
  // between the checks below and the commit.
  auto lock = vault.store().Lock(kGcLockName, LockMode::kShared, true);
  if (!lock.ok()) return lock.status();

  auto exists =
      vault.store().Exists(Vault::IndexKey(vol, header.new_version_id()));
  if (!exists.ok()) return exists.status();
  if (*exists) {
    return absl::AlreadyExistsError(absl::StrCat(
        "version ", Describe(header, header.new_version_id()),
        " already exists in the vault; the stream must carry a new version "
        "id"));
  }

  auto tenant = vault.TenantOf(header.source_host());
  if (!tenant.ok()) return tenant.status();
  auto unbound = CheckTenantKey(vault, *tenant, header);
  if (!unbound.ok()) return unbound.status();

  // Before the base is opened: from here the base cannot be deleted.
  auto registration = ReceiveRegistration::Begin(
      vault, *tenant, vol, header.new_version_id(), header.base_version_id());
  if (!registration.ok()) return registration.status();

  auto session = std::unique_ptr<ReceiveSession>(
      new ReceiveSession(vault, header, *std::move(lock), *tenant));
  session->registration_ = *std::move(registration);
  const uint64_t n = transport::ChunkCount(header.volume_size_bytes(),
                                           header.chunk_size_bytes());
  session->chunk_count_ = n;
  session->must_cover_from_ = n;
  // A full has no base: every chunk the stream does not carry is zero, so
  // a full stream need not list zero chunks.
  if (!header.base_version_id().empty()) {
    auto base = OpenBase(vault, vol, header);
    if (!base.ok()) return base.status();
    session->base_ = *std::move(base);
    const IndexMetadata& b = session->base_->metadata();
    session->base_count_ = session->base_->chunk_count();
    if (b.volume_size_bytes != header.volume_size_bytes()) {
      // Chunks from the shorter size's last whole chunk on are not known
      // from the base: the stream must carry every one of them.
      session->must_cover_from_ =
          std::min(b.volume_size_bytes, header.volume_size_bytes()) /
          header.chunk_size_bytes();
    }
  }
  IndexMetadata& meta = session->meta_;
  meta.host = header.source_host();
  meta.volume = header.volume_id();
  meta.key_fingerprint = header.key_fingerprint();
  meta.version_id = header.new_version_id();
  meta.base_version_id = header.base_version_id();
  meta.group = header.group();
  meta.group_version_id = header.group_version_id();
  meta.volume_size_bytes = header.volume_size_bytes();
  meta.chunk_size_bytes = header.chunk_size_bytes();
  meta.created_unix_ms =
      header.created_unix_ms() != 0
          ? header.created_unix_ms()
          : std::chrono::duration_cast<std::chrono::milliseconds>(
                std::chrono::system_clock::now().time_since_epoch())
                .count();
  // The new index is written as the records arrive, staged unpublished.
  auto writer = vault.CreateIndex(meta);
  if (!writer.ok()) return writer.status();
  session->writer_ = *std::move(writer);
  // The first encrypted stream of a tenant binds it to its key, just
  // before its first write (EnsureKeyBound): a stream refused before it
  // stores anything leaves the vault as it was.
  session->bind_key_ = *unbound && !header.key_fingerprint().empty();
  return session;
}

ReceiveSession::ReceiveSession(Vault& vault, const stream::Header& header,
                               std::unique_ptr<StoreLock> lock,
                               std::string tenant)
    : vault_(vault),
      header_(header),
      gc_lock_(std::move(lock)),
      tenant_(std::move(tenant)) {}

// Nothing to undo on abort: stored chunks are valid, content-addressed and
// reused by a retry; GC removes them if no version ever references them.
// So the staged ones are stored too (best effort, still under the GC lock):
// a sender that starts again does not send them a second time.
ReceiveSession::~ReceiveSession() {
  if (FlushStaged().ok()) IndexWritten().IgnoreError();
}

// One lookup for the whole batch (FindMany). The ids the tenant lacks are
// remembered (up to kMaxAnsweredMissing): their bytes come next, and
// ApplyChunk stores them without asking the index again. If another
// receiver stored one meanwhile, the second copy is dead weight GC takes.
absl::StatusOr<std::vector<bool>> ReceiveSession::HaveChunks(
    std::span<const ChunkHash> hashes) {
  std::vector<bool> out(hashes.size(), true);
  std::vector<ChunkHash> ask;
  std::vector<size_t> at;
  for (size_t i = 0; i < hashes.size(); ++i) {
    if (transport::IsZeroEntry(hashes[i]) || pending_.contains(hashes[i])) {
      continue;
    }
    ask.push_back(hashes[i]);
    at.push_back(i);
  }
  if (ask.empty()) return out;
  auto found = vault_.chunk_index()->FindMany(tenant_, ask);
  if (!found.ok()) return found.status();
  for (size_t j = 0; j < ask.size(); ++j) {
    auto has = HoldsFound(ask[j], (*found)[j]);
    if (!has.ok()) return has.status();
    out[at[j]] = *has;
    if (!*has && answered_missing_.size() < kMaxAnsweredMissing) {
      answered_missing_.insert(ask[j]);
    }
  }
  return out;
}

absl::StatusOr<bool> ReceiveSession::Holds(const ChunkHash& hash) {
  if (pending_.contains(hash)) return true;  // stored before the commit
  auto found = vault_.chunk_index()->Find(tenant_, hash);
  if (!found.ok()) return found.status();
  return HoldsFound(hash, *found);
}

// A chunk found in a pack this session pinned stays there (GC neither
// forgets nor repacks a pinned pack), so only the first chunk found in
// each pack costs a write: the pin.
absl::StatusOr<bool> ReceiveSession::HoldsFound(
    const ChunkHash& hash, const std::optional<ChunkLocation>& found) {
  if (!found.has_value()) return false;
  if (pinned_packs_.contains(found->pack)) return true;
  auto session = registration_->Id();
  if (!session.ok()) return session.status();
  auto pinned = vault_.chunk_index()->FindAndPin(*session, tenant_, hash);
  if (!pinned.ok()) return pinned.status();
  if (!pinned->has_value()) return false;  // a GC removed it meanwhile
  pinned_packs_.insert((*pinned)->pack);
  return true;
}

absl::Status ReceiveSession::EnsureKeyBound() {
  if (!bind_key_) return absl::OkStatus();
  // Publish-if-absent: of two first streams with different keys one binds
  // and the other is refused here, before it stores anything.
  if (auto s = vault_.BindTenantKey(tenant_, header_.key_fingerprint());
      !s.ok()) {
    return s;
  }
  bind_key_ = false;
  return absl::OkStatus();
}

// The pack is written by a helper thread while the next records arrive:
// at most kMaxPacksInFlight writes at a time, so memory stays within that
// many packs and one more being staged.
absl::Status ReceiveSession::FlushStaged() {
  if (staged_.empty()) return absl::OkStatus();
  if (absl::Status s = EnsureKeyBound(); !s.ok()) return s;
  // Registered before its first pack object exists: GC removes unindexed
  // packs only while no session of the tenant is open.
  if (auto session = registration_->Id(); !session.ok()) {
    return session.status();
  }
  if (absl::Status s = AwaitInflight(kMaxPacksInFlight - 1); !s.ok()) {
    return s;
  }
  auto records = std::make_shared<StagedRecords>(std::move(staged_));
  staged_.clear();
  inflight_.push_back(Inflight{
      .records = records,
      .bytes = staged_bytes_,
      .result = std::async(std::launch::async,
                           [&vault = vault_, tenant = tenant_, records] {
                             return vault.WritePack(tenant, *records);
                           })});
  staged_bytes_ = 0;
  return absl::OkStatus();
}

absl::Status ReceiveSession::AwaitInflight(size_t keep) {
  while (inflight_.size() > keep) {
    Inflight& oldest = inflight_.front();
    auto pack = oldest.result.get();
    if (!pack.ok()) {
      // Staged again: a retried Apply or the commit tries again.
      StagedRecords& records = *oldest.records;
      const size_t count = records.size();
      staged_.insert(staged_.begin(), std::make_move_iterator(records.begin()),
                     std::make_move_iterator(records.end()));
      staged_bytes_ += oldest.bytes;
      inflight_.pop_front();
      // The later writes finish (and count as written) before returning.
      absl::Status later = AwaitInflight(0);
      return absl::Status(
          pack.status().code(),
          absl::StrCat("storing ", count,
                       " new chunks: ", pack.status().message(),
                       later.ok() ? "" : absl::StrCat("; ", later.message())));
    }
    inflight_.pop_front();
    written_bytes_ += pack->info.size_bytes;
    written_.push_back(*std::move(pack));
    if (written_bytes_ >= vault_.sync_batch_bytes()) {
      if (absl::Status s = StartIndexing(); !s.ok()) return s;
    }
  }
  return absl::OkStatus();
}

absl::Status ReceiveSession::StartIndexing() {
  if (absl::Status s = AwaitIndexing(); !s.ok()) return s;
  auto session = registration_->Id();
  if (!session.ok()) return session.status();
  auto packs = std::make_shared<const std::vector<Vault::WrittenPack>>(
      std::move(written_));
  written_.clear();
  indexing_.emplace(Indexing{
      .packs = packs,
      .bytes = written_bytes_,
      .result =
          std::async(std::launch::async,
                     [&vault = vault_, tenant = tenant_, packs, id = *session] {
                       return vault.IndexPacks(tenant, *packs, id);
                     })});
  written_bytes_ = 0;
  return absl::OkStatus();
}

absl::Status ReceiveSession::AwaitIndexing() {
  if (!indexing_.has_value()) return absl::OkStatus();
  const absl::Status s = indexing_->result.get();
  const auto owned = indexing_->packs;  // outlives indexing_
  const std::vector<Vault::WrittenPack>& packs = *owned;
  const size_t bytes = indexing_->bytes;
  indexing_.reset();
  if (!s.ok()) {
    written_.insert(written_.begin(), packs.begin(), packs.end());
    written_bytes_ += bytes;
    return absl::Status(s.code(),
                        absl::StrCat("making ", packs.size(),
                                     " new packs durable: ", s.message()));
  }
  for (const Vault::WrittenPack& p : packs) {
    for (const PackEntry& e : p.entries) pending_.erase(e.id);
  }
  return absl::OkStatus();
}

absl::Status ReceiveSession::IndexWritten() {
  if (absl::Status s = AwaitInflight(0); !s.ok()) return s;
  if (absl::Status s = AwaitIndexing(); !s.ok()) return s;
  if (written_.empty()) return absl::OkStatus();
  // Kept on failure: a retried Apply or the commit tries again.
  auto session = registration_->Id();
  absl::Status s = session.status();
  if (s.ok()) s = vault_.IndexPacks(tenant_, written_, *session);
  if (!s.ok()) {
    return absl::Status(s.code(),
                        absl::StrCat("making ", written_.size(),
                                     " new packs durable: ", s.message()));
  }
  for (const Vault::WrittenPack& p : written_) {
    for (const PackEntry& e : p.entries) pending_.erase(e.id);
  }
  written_.clear();
  written_bytes_ = 0;
  return absl::OkStatus();
}

absl::Status ReceiveSession::Apply(const stream::Record& record) {
  if (state_ == State::kFailed) {
    return absl::FailedPreconditionError(
        "receive session already failed; start a new one");
  }
  if (state_ == State::kCommitted) {
    return absl::InvalidArgumentError(absl::StrCat(
        "stream continues after its trailer (version ",
        Describe(header_, header_.new_version_id()), " is already committed)"));
  }
  absl::Status s = ApplyInner(record);
  // A commit that reported an error after its index appeared stays
  // committed: the outcome reported must be the one on disk.
  if (!s.ok() && state_ != State::kCommitted) state_ = State::kFailed;
  return s;
}

absl::Status ReceiveSession::ApplyInner(const stream::Record& record) {
  switch (record.body_case()) {
    case stream::Record::kHeader:
      return absl::InvalidArgumentError("stream holds a second header");
    case stream::Record::kChunk:
      return ApplyChunk(record.chunk());
    case stream::Record::kChunkRef:
      return ApplyChunkRef(record.chunk_ref());
    case stream::Record::kZeroRun: {
      const stream::ZeroRun& z = record.zero_run();
      if (z.chunk_count() == 0) {
        return absl::InvalidArgumentError(absl::StrCat(
            "zero run at chunk ", z.first_chunk_index(), " is empty"));
      }
      if (auto s =
              CheckIndex(z.first_chunk_index(), z.chunk_count(), "zero run");
          !s.ok()) {
        return s;
      }
      if (auto s = ReplaceRange(z.first_chunk_index(), z.chunk_count());
          !s.ok()) {
        return s;
      }
      if (auto s = writer_->AppendZeros(z.chunk_count()); !s.ok()) return s;
      counted_.zero_chunks += z.chunk_count();
      return absl::OkStatus();
    }
    case stream::Record::kTrailer:
      return ApplyTrailer(record.trailer());
    case stream::Record::BODY_NOT_SET:
      return absl::OkStatus();  // unknown optional record (reader skips it)
  }
  return absl::OkStatus();
}

absl::Status ReceiveSession::CheckIndex(uint64_t first, uint64_t count,
                                        std::string_view what) {
  if (first >= chunk_count_ || count > chunk_count_ - first) {
    return absl::InvalidArgumentError(
        absl::StrCat(std::string(what), " at chunk index ", first, " (", count,
                     " chunks) is past the end of the volume (", chunk_count_,
                     " chunks of ", header_.chunk_size_bytes(), " bytes)"));
  }
  if (first < next_index_) {
    return absl::InvalidArgumentError(absl::StrCat(
        std::string(what), " at chunk index ", first,
        " is a duplicate or out of order: records must be strictly "
        "ascending and the previous one ended before chunk ",
        next_index_));
  }
  const uint64_t end = first + count;
  if (end > must_cover_from_) {
    covered_past_must_ += end - std::max(first, must_cover_from_);
  }
  next_index_ = end;
  return absl::OkStatus();
}

absl::Status ReceiveSession::ApplyChunk(const stream::Chunk& c) {
  const uint64_t i = c.chunk_index();
  // Check everything before storing anything.
  if (i >= chunk_count_) return CheckIndex(i, 1, "chunk");
  const uint32_t expected_size = transport::ChunkLength(
      header_.volume_size_bytes(), header_.chunk_size_bytes(), i);
  if (c.raw_size_bytes() != expected_size) {
    return absl::InvalidArgumentError(
        absl::StrCat("chunk ", i, ": raw size ", c.raw_size_bytes(),
                     " bytes, expected ", expected_size));
  }
  if (XXH3_64bits(c.payload().data(), c.payload().size()) != c.payload_xxh3()) {
    return absl::InvalidArgumentError(
        absl::StrCat("chunk ", i,
                     ": payload checksum (XXH3) mismatch; the stream was "
                     "damaged in transit"));
  }
  auto hash = HashField(c.hash(), i);
  if (!hash.ok()) return hash.status();
  auto entry = CheckChunkContent(c, *hash);
  if (!entry.ok()) return entry.status();
  if (auto s = CheckIndex(i, 1, "chunk"); !s.ok()) return s;

  if (!transport::IsZeroEntry(*entry)) {
    // Asked about in the handshake and not held then: no second lookup.
    absl::StatusOr<bool> has = false;
    if (answered_missing_.erase(*entry) == 0) has = Holds(*entry);
    if (!has.ok()) return has.status();
    if (!*has) {
      if (staged_.size() >= kPackMaxChunks ||
          staged_bytes_ >= vault_.pack_target_bytes()) {
        if (absl::Status s = FlushStaged(); !s.ok()) return s;
      }
      std::string obj =
          Vault::EncodeChunk(c.compression(), c.raw_size_bytes(), c.payload());
      ++meta_.stats.new_objects;
      meta_.stats.stored_bytes += obj.size();
      staged_bytes_ += obj.size();
      pending_.insert(*entry);
      staged_.emplace_back(*entry, std::move(obj));
    }
  }
  if (auto s = PutEntry(i, *entry); !s.ok()) return s;
  ++counted_.chunk_records;
  counted_.payload_bytes += c.payload().size();
  counted_.raw_bytes += c.raw_size_bytes();
  return absl::OkStatus();
}

absl::StatusOr<ChunkHash> ReceiveSession::CheckChunkContent(
    const stream::Chunk& c, const ChunkHash& hash) {
  const uint64_t i = c.chunk_index();
  if (header_.encryption() == stream::ENCRYPTION_NONE) {
    auto raw = DecodePayload(c.compression(), c.raw_size_bytes(), c.payload(),
                             hash, absl::StrCat("chunk ", i),
                             absl::StatusCode::kInvalidArgument);
    if (!raw.ok()) return raw.status();
    return transport::EntryOf(
        {reinterpret_cast<const uint8_t*>(raw->data()), raw->size()});
  }
  // Encrypted: without the key the content cannot be checked (a host can
  // only damage its own tenant, docs/vault.md). What can be checked is.
  if (c.compression() != stream::COMPRESSION_SEALED) {
    return absl::InvalidArgumentError(absl::StrCat(
        "chunk ", i, " of an encrypted stream is not sealed (compression ",
        static_cast<int>(c.compression()), ")"));
  }
  if (transport::IsZeroEntry(hash)) {
    return absl::InvalidArgumentError(
        absl::StrCat("chunk ", i,
                     " is sealed under the zero id; zero chunks travel as "
                     "zero runs"));
  }
  const size_t max = transport::MaxSealedPayloadBytes(c.raw_size_bytes());
  if (c.payload().size() < transport::kMinSealedPayloadBytes ||
      c.payload().size() > max) {
    return absl::InvalidArgumentError(absl::StrCat(
        "chunk ", i, ": sealed payload is ", c.payload().size(),
        " bytes, a chunk of ", c.raw_size_bytes(), " bytes seals to ",
        transport::kMinSealedPayloadBytes, " to ", max));
  }
  const std::string sealed_by = transport::SealedKeyFingerprint(c.payload());
  if (sealed_by != header_.key_fingerprint()) {
    return absl::InvalidArgumentError(absl::StrCat(
        "chunk ", i, " is sealed under key ", sealed_by,
        ", not under the stream's key ", header_.key_fingerprint()));
  }
  return hash;
}

absl::Status ReceiveSession::ApplyChunkRef(const stream::ChunkRef& c) {
  const uint64_t i = c.chunk_index();
  if (i >= chunk_count_) return CheckIndex(i, 1, "chunk ref");
  auto hash = HashField(c.hash(), i);
  if (!hash.ok()) return hash.status();
  if (!transport::IsZeroEntry(*hash)) {
    auto has = Holds(*hash);
    if (!has.ok()) return has.status();
    if (!*has) {
      // Only the tenant's own chunks are looked at: the answer is the same
      // whether or not another tenant stores this one.
      return absl::FailedPreconditionError(absl::StrCat(
          "chunk ref at index ", i, " names chunk ", hash->ToHex(),
          ", which tenant '", tenant_,
          "' does not hold and this stream has not carried: a hash alone "
          "does not prove possession, the sender must send its bytes"));
    }
  }
  if (auto s = CheckIndex(i, 1, "chunk ref"); !s.ok()) return s;
  if (auto s = PutEntry(i, *hash); !s.ok()) return s;
  ++counted_.chunk_ref_records;
  return absl::OkStatus();
}

absl::Status ReceiveSession::ApplyTrailer(const stream::Trailer& t) {
  if (t.chunk_records() != counted_.chunk_records ||
      t.chunk_ref_records() != counted_.chunk_ref_records ||
      t.zero_chunks() != counted_.zero_chunks ||
      t.payload_bytes() != counted_.payload_bytes ||
      t.raw_bytes() != counted_.raw_bytes) {
    return absl::InvalidArgumentError(absl::StrCat(
        "stream trailer counts (", t.chunk_records(), " chunks, ",
        t.chunk_ref_records(), " refs, ", t.zero_chunks(), " zero, ",
        t.payload_bytes(), " payload bytes) differ from what arrived (",
        counted_.chunk_records, ", ", counted_.chunk_ref_records, ", ",
        counted_.zero_chunks, ", ", counted_.payload_bytes,
        "): records were lost"));
  }
  const uint64_t must = chunk_count_ - std::min(chunk_count_, must_cover_from_);
  if (covered_past_must_ != must) {
    return absl::InvalidArgumentError(absl::StrCat(
        "resized stream carries ", covered_past_must_, " of the ", must,
        " chunks from chunk ", must_cover_from_,
        " on, which the base cannot supply; the sender must send them all"));
  }
  // The base's entries the stream did not replace, then the whole base
  // checked: nothing built from a damaged base is published.
  if (auto s = CarryBaseTo(chunk_count_); !s.ok()) return s;
  if (base_ != nullptr) {
    if (absl::Status s = base_->Finish(); !s.ok()) return BaseFailed(s);
  }
  auto root = writer_->Finish();
  if (!root.ok()) return root.status();
  meta_.root_hash = *root;
  if (t.root_hash() != meta_.root_hash.ToBytes()) {
    std::string sent = t.root_hash().size() == ChunkHash::kSize
                           ? ChunkHash::FromBytes(t.root_hash())->ToHex()
                           : absl::StrCat("<", t.root_hash().size(), " bytes>");
    return absl::InvalidArgumentError(absl::StrCat(
        "root hash mismatch for ", Describe(header_, header_.new_version_id()),
        ": the sender computed ", sent, ", the base plus the stream give ",
        meta_.root_hash.ToHex()));
  }
  const uint64_t new_objects = meta_.stats.new_objects;
  const uint64_t stored_bytes = meta_.stats.stored_bytes;
  meta_.stats = counted_;
  meta_.stats.new_objects = new_objects;
  meta_.stats.stored_bytes = stored_bytes;
  // Every chunk the index names is durable before the index appears.
  if (auto s = FlushStaged(); !s.ok()) return s;
  if (auto s = IndexWritten(); !s.ok()) return s;
  if (auto s = EnsureKeyBound(); !s.ok()) return s;
  return Publish();
}

absl::Status ReceiveSession::Publish() {
  // Registered before the version appears, so a GC running now marks it
  // (receiver/receive_registration.h).
  if (auto session = registration_->Id(); !session.ok()) {
    return session.status();
  }
  absl::Status published = writer_->Publish(meta_.stats);
  writer_.reset();
  if (absl::IsAlreadyExists(published)) {
    return absl::AlreadyExistsError(
        absl::StrCat("version ", Describe(header_, header_.new_version_id()),
                     " already exists"));
  }
  if (!published.ok()) {
    // E.g. the directory sync after the link failed: the index may be
    // there all the same, and then the version exists.
    auto there = vault_.store().Exists(
        Vault::IndexKey({meta_.host, meta_.volume}, meta_.version_id));
    if (!there.ok() || !*there) return published;
    state_ = State::kCommitted;
    registration_.reset();
    gc_lock_.reset();
    return absl::Status(
        published.code(),
        absl::StrCat(published.message(),
                     " (the index was written, so the version exists; run "
                     "`cbt-receiver verify` on it)"));
  }
  state_ = State::kCommitted;
  registration_.reset();  // ends the session: the version now holds its own
  gc_lock_.reset();
  return absl::OkStatus();
}

absl::Status ReceiveSession::BaseFailed(const absl::Status& s) const {
  return absl::Status(
      s.code(), absl::StrCat("reading the stream's base ",
                             Describe(header_, header_.base_version_id()), ": ",
                             s.message(),
                             absl::IsDataLoss(s)
                                 ? "; nothing was published: send a full stream"
                                 : ""));
}

// The base and the writer advance together: before a record for chunks
// [first, first + count), the chunks before it come from the base (zeros
// past its end, or for a full), and the base entries it replaces are read
// past (they still count for the base's checksum).
absl::Status ReceiveSession::ReplaceRange(uint64_t first, uint64_t count) {
  if (auto s = CarryBaseTo(first); !s.ok()) return s;
  if (base_ == nullptr) return absl::OkStatus();
  const uint64_t end = std::min(first + count, base_count_);
  if (base_->position() >= end) return absl::OkStatus();
  if (absl::Status s = base_->Skip(end - base_->position()); !s.ok()) {
    return BaseFailed(s);
  }
  return absl::OkStatus();
}

absl::Status ReceiveSession::CarryBaseTo(uint64_t end) {
  while (writer_->position() < end) {
    const uint64_t pos = writer_->position();
    if (base_ == nullptr || pos >= base_count_) {
      return writer_->AppendZeros(end - pos);
    }
    auto got = base_->Next(
        static_cast<size_t>(std::min<uint64_t>(end, base_count_) - pos));
    if (!got.ok()) return BaseFailed(got.status());
    if (got->empty()) {
      return absl::InternalError(
          absl::StrCat("base index ended at chunk ", pos, " of ", base_count_));
    }
    if (absl::Status s = writer_->Append(*got); !s.ok()) return s;
  }
  return absl::OkStatus();
}

absl::Status ReceiveSession::PutEntry(uint64_t index, const ChunkHash& entry) {
  if (auto s = ReplaceRange(index, 1); !s.ok()) return s;
  return writer_->Append({&entry, 1});
}

namespace {

// The header, and the session it opens.
absl::StatusOr<std::unique_ptr<ReceiveSession>> OpenFromStream(
    Vault& vault, transport::StreamReader& reader) {
  auto first = reader.Next();
  if (!first.ok()) return first.status();
  if (!first->has_value() || !(*first)->has_header()) {
    return absl::InvalidArgumentError(
        "stream does not start with a header (empty or not a cbtd stream)");
  }
  return ReceiveSession::Open(vault, (*first)->header());
}

// A record read ahead, with the stream offset just past it.
struct ReadRecord {
  stream::Record record;
  uint64_t end = 0;
};

// Up to kAheadRecords records (or kAheadBytes of payload), through the
// trailer at most. Nothing may follow the trailer, and that is checked
// before the trailer commits: a damaged file, or two streams run
// together, must not commit and then fail.
constexpr size_t kAheadRecords = 256;
constexpr size_t kAheadBytes = 8u << 20;

absl::Status ReadAhead(transport::StreamReader& reader,
                       std::deque<ReadRecord>& ahead, bool& done) {
  size_t bytes = 0;
  while (!done && ahead.size() < kAheadRecords && bytes < kAheadBytes) {
    auto rec = reader.Next();
    if (!rec.ok()) return rec.status();
    if (!rec->has_value()) {
      done = true;
      break;
    }
    if ((*rec)->has_trailer()) {
      const uint64_t end = reader.offset();
      auto at_end = reader.AtEnd();
      if (!at_end.ok()) return at_end.status();
      if (!*at_end) {
        return absl::InvalidArgumentError(absl::StrCat(
            "the stream has more bytes after its trailer (from byte ", end,
            "): the file is damaged or holds more than one stream"));
      }
      done = true;
    }
    if ((*rec)->has_chunk()) bytes += (*rec)->chunk().payload().size();
    ahead.push_back({*std::move(*rec), reader.offset()});
  }
  return absl::OkStatus();
}

// Asks the index about the chunks read ahead in one batch (HaveChunks),
// so that applying them needs no lookup each: a vault on RADOS answers a
// batch in one round trip. Best effort: an error here comes back from
// Apply.
void Prefetch(ReceiveSession& session, const std::deque<ReadRecord>& ahead) {
  std::vector<ChunkHash> hashes;
  for (const ReadRecord& r : ahead) {
    if (!r.record.has_chunk()) continue;
    auto hash = ChunkHash::FromBytes(r.record.chunk().hash());
    if (hash.ok()) hashes.push_back(*hash);
  }
  if (!hashes.empty()) session.HaveChunks(hashes).IgnoreError();
}

// Every record after the header, through the trailer (the commit).
absl::Status ApplyRecords(ReceiveSession& session,
                          transport::StreamReader& reader) {
  std::deque<ReadRecord> ahead;
  bool done = false;
  for (;;) {
    if (ahead.empty()) {
      absl::Status read = ReadAhead(reader, ahead, done);
      // The records before a read error are applied first.
      if (!read.ok() && ahead.empty()) return read;
      if (ahead.empty()) break;
      Prefetch(session, ahead);
      if (!read.ok()) {
        for (ReadRecord& r : ahead) {
          if (auto s = session.Apply(r.record); !s.ok()) {
            return absl::Status(
                s.code(), absl::StrCat("at byte ", r.end, ": ", s.message()));
          }
        }
        return read;
      }
    }
    ReadRecord r = std::move(ahead.front());
    ahead.pop_front();
    if (auto s = session.Apply(r.record); !s.ok()) {
      return absl::Status(s.code(),
                          absl::StrCat("at byte ", r.end, ": ", s.message()));
    }
  }
  if (!session.committed()) {
    return absl::InvalidArgumentError(absl::StrCat(
        "stream truncated: it ends at byte ", reader.offset(),
        " without a trailer (retry the send: chunks already stored are "
        "reused)"));
  }
  return absl::OkStatus();
}

// `s` followed by what became of the version, from the session's state.
absl::Status WithOutcome(const absl::Status& s, const ReceiveSession* session) {
  const std::string outcome =
      session != nullptr && session->committed()
          ? absl::StrCat(
                "[version ",
                Describe(session->header(), session->header().new_version_id()),
                " was created]")
          : "[no version was created]";
  return absl::Status(s.code(), absl::StrCat(s.message(), " ", outcome));
}

}  // namespace

absl::StatusOr<ReceiveResult> ReceiveStream(Vault& vault,
                                            transport::StreamReader& reader) {
  auto session = OpenFromStream(vault, reader);
  if (!session.ok()) return WithOutcome(session.status(), nullptr);
  if (absl::Status s = ApplyRecords(**session, reader); !s.ok()) {
    return WithOutcome(s, session->get());
  }
  return ReceiveResult{(*session)->metadata()};
}

}  // namespace cbtd::receiver
