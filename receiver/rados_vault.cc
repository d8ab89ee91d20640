#include "receiver/rados_vault.h"

#include <sys/time.h>
#include <rados/librados.hpp>

#include <cerrno>
#include <cstring>
#include <memory>
#include <random>

#include "absl/strings/str_cat.h"
#include "receiver/rados_chunk_index.h"

namespace cbtd::receiver {
namespace {

// "pool=P" or "pool=P namespace=N": the cap's scope.
std::string CapScope(const RadosStoreOptions& o) {
  return o.ns.empty() ? absl::StrCat("pool=", o.pool)
                      : absl::StrCat("pool=", o.pool, " namespace=", o.ns);
}

std::string Where(const RadosStoreOptions& o) {
  return o.ns.empty()
             ? absl::StrCat("RADOS pool ", o.pool)
             : absl::StrCat("RADOS pool ", o.pool, " namespace ", o.ns);
}

// The error for a Ceph user that lacks `what` (e.g. "write") on the pool:
// names the capability and the command that grants it.
absl::Status MissingCaps(const RadosStoreOptions& o, int rc,
                         const std::string& what, const std::string& osd_cap) {
  const std::string user = absl::StrCat("client.", o.client_id);
  return absl::PermissionDeniedError(absl::StrCat(
      user, " cannot ", what, " ", Where(o), " (",
      rc == -EACCES ? "EACCES" : "EPERM", "): give it `ceph auth caps ", user,
      " mon 'allow r' osd '", osd_cap, " ", CapScope(o), "'`"));
}

bool IsPermission(int rc) { return rc == -EPERM || rc == -EACCES; }

// Any other failure of the probe, as a status naming the object.
absl::Status ProbeStatus(int rc, const std::string& what,
                         const RadosStoreOptions& o) {
  const std::string msg =
      absl::StrCat(what, " in ", Where(o), ": ", std::strerror(-rc));
  if (rc == -ETIMEDOUT) {
    return absl::UnavailableError(
        absl::StrCat(msg, " (is the Ceph cluster up and its OSDs in?)"));
  }
  return absl::InternalError(msg);
}

std::string RandomHex() {
  std::mt19937_64 rng(std::random_device{}());
  static constexpr char kHex[] = "0123456789abcdef";
  std::string s(16, '0');
  for (char& c : s) c = kHex[rng() % 16];
  return s;
}

// Proves that the user may do what a writing receiver does: create and
// remove objects ('w') and take RADOS locks (a class call: 'x'), on a
// probe object no key can name. The probe is removed whatever happens.
absl::Status CheckWritable(librados::IoCtx& ioctx, const RadosStoreOptions& o) {
  const std::string probe = absl::StrCat(".probe/", RandomHex());
  librados::ObjectWriteOperation create;
  create.create(/*exclusive=*/true);
  if (int rc = ioctx.operate(probe, &create); rc < 0) {
    if (IsPermission(rc)) return MissingCaps(o, rc, "write", "allow rwx");
    return ProbeStatus(rc, absl::StrCat("create probe object ", probe), o);
  }
  timeval duration{30, 0};
  const int lock_rc =
      ioctx.lock_exclusive(probe, "cbtd-probe", "probe", "", &duration, 0);
  if (lock_rc == 0) ioctx.unlock(probe, "cbtd-probe", "probe");
  const int remove_rc = ioctx.remove(probe);
  if (IsPermission(lock_rc)) {
    return MissingCaps(o, lock_rc, "take RADOS locks (class calls) in",
                       "allow rwx");
  }
  if (lock_rc < 0) {
    return ProbeStatus(lock_rc, absl::StrCat("lock probe object ", probe), o);
  }
  if (IsPermission(remove_rc)) {
    return MissingCaps(o, remove_rc, "remove objects in", "allow rwx");
  }
  if (remove_rc < 0 && remove_rc != -ENOENT) {
    return ProbeStatus(remove_rc, absl::StrCat("remove probe object ", probe),
                       o);
  }
  return absl::OkStatus();
}

// The vault's format line: 2, or 0 if there is none.
absl::StatusOr<int> ReadFormat(ObjectStore& store, const RadosStoreOptions& o) {
  auto line = store.Get(kFormatKey);
  if (absl::IsNotFound(line.status())) return 0;
  if (absl::IsPermissionDenied(line.status())) {
    return MissingCaps(o, -EPERM, "read", "allow r");
  }
  if (!line.ok()) return line.status();
  if (*line != kFormat2Line) {
    return absl::FailedPreconditionError(
        absl::StrCat("object '", kFormatKey, "' in ", Where(o), " says '",
                     line->substr(0, 40),
                     "': not a vault format this cbt-receiver reads (it reads "
                     "'cbtd-vault 2'); use the release that wrote it"));
  }
  return 2;
}

}  // namespace

absl::StatusOr<OpenedVault> OpenRadosVault(const RadosStoreOptions& options,
                                           bool create, bool writable) {
  auto store = RadosObjectStore::Open(options);
  if (!store.ok()) return store.status();
  RadosObjectStore& rados = **store;
  OpenedVault out;
  out.store = *std::move(store);
  if (writable) {
    if (auto s = CheckWritable(rados.ioctx(), options); !s.ok()) return s;
  }
  auto format = ReadFormat(rados, options);
  if (!format.ok()) return format.status();
  if (*format == 0) {
    if (!create) {
      return absl::NotFoundError(absl::StrCat(
          Where(options),
          " holds no cbtd vault (no 'format' object); create one with "
          "`cbt-receiver receive --create` or `serve --create`"));
    }
    // The chunk index needs nothing created up front: its objects appear
    // with its first write. Whoever publishes first wins; the others read
    // the same line.
    absl::Status s = rados.Publish(kFormatKey, kFormat2Line);
    if (!s.ok() && !absl::IsAlreadyExists(s)) return s;
    format = ReadFormat(rados, options);
    if (!format.ok()) return format.status();
  }
  out.index = std::make_unique<RadosChunkIndex>(rados.ioctx(), rados.where());
  out.vault = std::make_unique<Vault>(*out.store, out.index.get());
  // A RADOS write is durable when acknowledged: batching packs for one
  // sync saves nothing, so each pack is indexed once written, and a
  // receive cut short (a receiver killed) leaves every pack it wrote
  // findable by the retry, through any receiver.
  out.vault->set_sync_batch_bytes(out.vault->pack_target_bytes());
  return out;
}

}  // namespace cbtd::receiver
