#include "receiver/local_vault.h"

#include <filesystem>

#include "absl/strings/str_cat.h"
#include "receiver/local_object_store.h"
#include "receiver/sqlite_chunk_index.h"

namespace cbtd::receiver {
namespace {

// Whether the store holds any object of a format-1 vault.
absl::StatusOr<bool> HoldsFormat1(ObjectStore& store) {
  for (const char* prefix : {"chunks", "hosts"}) {
    auto keys = store.List(prefix);
    if (!keys.ok()) return keys.status();
    if (!keys->empty()) return true;
  }
  return false;
}

// Reads DIR/format: 2, or 0 if there is none.
absl::StatusOr<int> ReadFormat(ObjectStore& store, const std::string& dir) {
  auto line = store.Get(kFormatKey);
  if (absl::IsNotFound(line.status())) return 0;
  if (!line.ok()) return line.status();
  if (*line != kFormat2Line) {
    return absl::FailedPreconditionError(absl::StrCat(
        dir, "/", kFormatKey, " says '", line->substr(0, 40),
        "': not a vault format this cbt-receiver reads (it reads "
        "'cbtd-vault 2' and vaults of the first format); use the release "
        "that wrote it"));
  }
  return 2;
}

}  // namespace

std::string LocalChunkIndexPath(const std::string& dir) {
  return dir + "/index/chunks.sqlite";
}

// Creates a format-2 vault in the empty store: the index first, then the
// format line (published, so two receivers creating one vault at once
// agree), so a vault that says format 2 always has its index.
static absl::Status CreateFormat2(OpenedVault& out, const std::string& dir) {
  std::error_code ec;
  std::filesystem::create_directories(dir + "/index", ec);
  if (ec) {
    return absl::InternalError(
        absl::StrCat("mkdir ", dir, "/index: ", ec.message()));
  }
  auto index = SqliteChunkIndex::Open(LocalChunkIndexPath(dir), true);
  if (!index.ok()) return index.status();
  out.index = *std::move(index);
  absl::Status s = out.store->Publish(kFormatKey, kFormat2Line);
  if (!s.ok() && !absl::IsAlreadyExists(s)) return s;
  return ReadFormat(*out.store, dir).status();
}

// Opens the index of an existing format-2 vault.
static absl::Status OpenIndex(OpenedVault& out, const std::string& dir) {
  auto index = SqliteChunkIndex::Open(LocalChunkIndexPath(dir), false);
  if (absl::IsNotFound(index.status())) {
    return absl::DataLossError(absl::StrCat(
        "vault ", dir, " has lost its chunk index (", LocalChunkIndexPath(dir),
        " is missing): restore that file from a copy of the "
        "vault; nothing was changed"));
  }
  if (!index.ok()) return index.status();
  out.index = *std::move(index);
  return absl::OkStatus();
}

absl::StatusOr<OpenedVault> OpenLocalVault(const std::string& dir,
                                           bool create) {
  OpenedVault out;
  auto store = LocalObjectStore::Open(dir, create);
  if (!store.ok()) return store.status();
  out.store = *std::move(store);
  auto format = ReadFormat(*out.store, dir);
  if (!format.ok()) return format.status();
  absl::Status opened;
  if (*format == 2) {
    opened = OpenIndex(out, dir);
  } else {
    auto old = HoldsFormat1(*out.store);
    if (!old.ok()) return old.status();
    if (*old) {
      out.vault = std::make_unique<Vault>(*out.store, nullptr);
      return out;
    }
    if (!create) {
      return absl::NotFoundError(
          absl::StrCat(dir,
                       " is not a cbtd vault (it is empty); create one with "
                       "`cbt-receiver receive --create` or `serve --create`"));
    }
    opened = CreateFormat2(out, dir);
  }
  if (!opened.ok()) return opened;
  out.vault = std::make_unique<Vault>(*out.store, out.index.get());
  return out;
}

}  // namespace cbtd::receiver
