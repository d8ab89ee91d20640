#include "receiver/rados_object_store.h"

#include <sys/time.h>

#include <algorithm>
#include <cerrno>
#include <charconv>
#include <chrono>
#include <condition_variable>
#include <cstring>
#include <map>
#include <mutex>
#include <random>
#include <thread>
#include <utility>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "common/fs.h"
#include "receiver/rados_status.h"

namespace cbtd::receiver {
namespace {

using librados::bufferlist;

// Temporaries and locks live under names no key can have (a component
// starting with '.'), so neither is ever listed, read or replaced as an
// object.
constexpr char kTempPrefix[] = ".tmp/";
constexpr char kLockPrefix[] = ".locks/";
// The cls_lock name on a lock object; the cookie tells holders apart.
constexpr char kLockName[] = "cbtd";
constexpr char kMtimeXattr[] = "cbtd.mtime";

// librados' defaults (Ceph 16), for a cluster config that does not say.
constexpr uint64_t kDefaultMaxWriteBytes = 90ull << 20;
constexpr uint64_t kDefaultMaxObjectBytes = 128ull << 20;

int64_t NowUnixMs() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

std::string RandomSuffix() {
  thread_local std::mt19937_64 rng(std::random_device{}());
  static constexpr char kHex[] = "0123456789abcdef";
  std::string s(16, '0');
  for (char& c : s) c = kHex[rng() % 16];
  return s;
}

// Copies the parts into one bufferlist. A copy, not static buffers over the
// caller's memory: an op that timed out may still be queued in the
// messenger after the call returns.
bufferlist Gather(std::span<const std::string_view> parts) {
  size_t total = 0;
  for (std::string_view p : parts) total += p.size();
  bufferlist bl;
  if (total == 0) return bl;
  ceph::bufferptr ptr = ceph::buffer::create(total);
  size_t at = 0;
  for (std::string_view p : parts) {
    std::copy(p.begin(), p.end(), ptr.c_str() + at);
    at += p.size();
  }
  bl.append(std::move(ptr));
  return bl;
}

uint64_t ConfBytes(librados::Rados& cluster, const char* option,
                   uint64_t fallback, uint64_t unit) {
  std::string value;
  uint64_t n = 0;
  if (cluster.conf_get(option, value) != 0) return fallback;
  auto [end, ec] =
      std::from_chars(value.data(), value.data() + value.size(), n);
  if (ec != std::errc() || n == 0) return fallback;
  return n * unit;
}

}  // namespace

// A reader reads through to the object on each ReadAt (RADOS has no open
// handle that outlives a delete).
class RadosObjectReader : public ObjectReader {
 public:
  RadosObjectReader(RadosObjectStore& store, std::string key, uint64_t size)
      : store_(store), key_(std::move(key)), size_(size) {}
  uint64_t size_bytes() const override { return size_; }
  absl::StatusOr<std::string> ReadAt(uint64_t offset,
                                     uint32_t length) override {
    return store_.GetRange(key_, offset, length);
  }

 private:
  RadosObjectStore& store_;
  const std::string key_;
  const uint64_t size_;
};

// Appends to a temporary object; Publish copies it under the key on the
// OSD (copy_from: the client never holds the object) in one op with an
// exclusive create, then removes it. Removed if never published.
class RadosObjectWriter : public ObjectWriter {
 public:
  RadosObjectWriter(RadosObjectStore& store, std::string key)
      : store_(store),
        key_(std::move(key)),
        tmp_(absl::StrCat(kTempPrefix, key_, ".", RandomSuffix())) {
    // An IoCtx of its own: its last version is this writer's last append
    // (the store's is shared by every thread).
    ioctx_.dup(store_.ioctx_);
  }
  ~RadosObjectWriter() override {
    if (!tmp_.empty()) ioctx_.remove(tmp_);  // best effort
  }
  RadosObjectWriter(const RadosObjectWriter&) = delete;
  RadosObjectWriter& operator=(const RadosObjectWriter&) = delete;

  absl::Status Append(std::string_view data) override {
    if (failed_ || tmp_.empty()) return Spent();
    if (auto s = store_.CheckSize(key_, size_ + data.size()); !s.ok()) {
      failed_ = true;
      return s;
    }
    if (data.empty()) return absl::OkStatus();
    bufferlist bl = Gather({&data, 1});
    if (int rc = ioctx_.append(tmp_, bl, data.size()); rc < 0) {
      failed_ = true;
      return RadosStatus(rc, absl::StrCat("append to ", store_.Name(tmp_)));
    }
    tmp_version_ = ioctx_.get_last_version();
    size_ += data.size();
    return absl::OkStatus();
  }

  uint64_t size_bytes() const override { return size_; }

  absl::StatusOr<std::string> ReadBack(uint64_t offset,
                                       uint32_t length) override {
    if (failed_ || tmp_.empty()) return Spent();
    if (offset > size_ || length > size_ - offset) {
      return absl::InvalidArgumentError(
          absl::StrCat("read back ", length, " bytes at ", offset, " of ",
                       store_.Name(tmp_), ", which holds ", size_));
    }
    bufferlist bl;
    const int rc = ioctx_.read(tmp_, bl, length, offset);
    if (rc < 0) {
      return RadosStatus(rc, absl::StrCat("read back ", store_.Name(tmp_)));
    }
    if (bl.length() != length) {
      return absl::DataLossError(
          absl::StrCat(store_.Name(tmp_), " holds less than the ", size_,
                       " bytes appended: was it removed by RemoveTempFiles?"));
    }
    return bl.to_str();
  }

  absl::Status Publish() override {
    if (failed_ || tmp_.empty()) return Spent();
    absl::Status published;
    if (size_ == 0) {
      // Nothing appended: no temporary object was made.
      published = store_.PublishBuffer(key_, bufferlist());
    } else {
      // One op: exclusive create (-EEXIST: nothing written) and a copy
      // that lands whole or not at all. The version pins the copy to what
      // this writer appended: a temporary removed or changed meanwhile
      // fails it.
      librados::ObjectWriteOperation op;
      op.create(/*exclusive=*/true);
      op.copy_from(tmp_, ioctx_, tmp_version_, 0);
      if (int rc = ioctx_.operate(key_, &op); rc < 0) {
        published = RadosStatus(
            rc, absl::StrCat("publish ", store_.Name(key_), " from ", tmp_));
      }
    }
    ioctx_.remove(tmp_);  // RemoveTempFiles retries a failure
    tmp_.clear();
    return published;
  }

 private:
  absl::Status Spent() const {
    return absl::FailedPreconditionError(absl::StrCat(
        "writer of ", store_.Name(key_), " already failed or published"));
  }

  RadosObjectStore& store_;
  librados::IoCtx ioctx_;
  const std::string key_;
  std::string tmp_;  // empty once published
  uint64_t tmp_version_ = 0;
  uint64_t size_ = 0;
  bool failed_ = false;
};

namespace {

// A cls_lock held on a lock object, renewed by a thread until destroyed;
// then unlocked.
//
//   Lock() --acquired--> held --every duration/3: renew--> held
//                         |
//                     ~StoreLock: stop the thread, unlock
class RadosStoreLock : public StoreLock {
 public:
  RadosStoreLock(librados::IoCtx& ioctx, std::string oid, std::string cookie,
                 LockMode mode, int duration_seconds)
      : ioctx_(ioctx),
        oid_(std::move(oid)),
        cookie_(std::move(cookie)),
        mode_(mode),
        duration_seconds_(duration_seconds),
        renewer_([this] { RenewUntilStopped(); }) {}
  ~RadosStoreLock() override {
    {
      std::lock_guard l(mu_);
      stop_ = true;
    }
    cv_.notify_all();
    renewer_.join();
    // -ENOENT: DeleteLock removed the object, and the lock with it.
    ioctx_.unlock(oid_, kLockName, cookie_);
  }
  RadosStoreLock(const RadosStoreLock&) = delete;
  RadosStoreLock& operator=(const RadosStoreLock&) = delete;

  // Takes (flags 0) or renews (LIBRADOS_LOCK_FLAG_MUST_RENEW) the lock; a
  // negative code on failure, -EBUSY when someone else holds it.
  static int Acquire(librados::IoCtx& ioctx, const std::string& oid,
                     const std::string& cookie, LockMode mode,
                     int duration_seconds, uint8_t flags) {
    timeval duration{duration_seconds, 0};
    if (mode == LockMode::kExclusive) {
      return ioctx.lock_exclusive(oid, kLockName, cookie, "cbtd", &duration,
                                  flags);
    }
    return ioctx.lock_shared(oid, kLockName, cookie, /*tag=*/"", "cbtd",
                             &duration, flags);
  }

 private:
  void RenewUntilStopped() {
    const auto period = std::chrono::milliseconds(duration_seconds_ * 1000 / 3);
    std::unique_lock l(mu_);
    while (!cv_.wait_for(l, period, [this] { return stop_; })) {
      // A failed renewal is retried next period; the lock lasts a whole
      // duration from the last one that worked. MUST_RENEW, not RENEW:
      // a lock that lapsed, or whose object DeleteLock removed, is not
      // taken again behind the back of whoever holds or deleted it.
      Acquire(ioctx_, oid_, cookie_, mode_, duration_seconds_,
              LIBRADOS_LOCK_FLAG_MUST_RENEW);
    }
  }

  librados::IoCtx& ioctx_;
  const std::string oid_;
  const std::string cookie_;
  const LockMode mode_;
  const int duration_seconds_;
  std::mutex mu_;
  std::condition_variable cv_;
  bool stop_ = false;    // guarded by mu_
  std::thread renewer_;  // last: started once the rest is set
};

}  // namespace

RadosObjectStore::RadosObjectStore(const RadosStoreOptions& options,
                                   std::unique_ptr<librados::Rados> cluster,
                                   librados::IoCtx ioctx,
                                   uint64_t max_object_bytes)
    : options_(options),
      where_(options.ns.empty() ? options.pool
                                : absl::StrCat(options.pool, "/", options.ns)),
      cluster_(std::move(cluster)),
      ioctx_(std::move(ioctx)),
      max_object_bytes_(max_object_bytes) {}

RadosObjectStore::~RadosObjectStore() {
  ioctx_.close();
  cluster_->shutdown();
}

absl::StatusOr<std::unique_ptr<RadosObjectStore>> RadosObjectStore::Open(
    const RadosStoreOptions& options) {
  if (options.pool.empty()) {
    return absl::InvalidArgumentError("no RADOS pool given for the vault");
  }
  const std::string user = absl::StrCat("client.", options.client_id);
  const std::string conf =
      options.conf_path.empty() ? "the default ceph.conf" : options.conf_path;
  auto cluster = std::make_unique<librados::Rados>();
  if (int rc = cluster->init(options.client_id.c_str()); rc < 0) {
    return common::ErrnoStatus(-rc, absl::StrCat("librados init as ", user));
  }
  // Whatever happens below, the client (and its threads) goes.
  struct Shutdown {
    librados::Rados* c;
    ~Shutdown() {
      if (c != nullptr) c->shutdown();
    }
  } shutdown{cluster.get()};
  const int read_rc = cluster->conf_read_file(
      options.conf_path.empty() ? nullptr : options.conf_path.c_str());
  if (read_rc < 0) {
    return common::ErrnoStatus(
        -read_rc, absl::StrCat("read Ceph config ", conf,
                               " (it names the monitors and the keyring)"));
  }
  // librados waits forever for a dead OSD or monitor unless told not to.
  const std::string timeout = std::to_string(options.op_timeout_seconds);
  for (const char* option : {"rados_osd_op_timeout", "rados_mon_op_timeout",
                             "client_mount_timeout"}) {
    if (int rc = cluster->conf_set(option, timeout.c_str()); rc < 0) {
      return common::ErrnoStatus(-rc, absl::StrCat("set Ceph option ", option));
    }
  }
  if (int rc = cluster->connect(); rc < 0) {
    const std::string what =
        absl::StrCat("connect to the Ceph cluster of ", conf, " as ", user);
    if (rc == -ETIMEDOUT) {
      return absl::UnavailableError(absl::StrCat(
          what, ": no monitor answered within ", options.op_timeout_seconds,
          " s (is the cluster up, and `mon host` in the config right?)"));
    }
    if (rc == -EACCES || rc == -EPERM || rc == -ENOENT || rc == -EINVAL) {
      return absl::PermissionDeniedError(
          absl::StrCat(what, ": authentication failed (", std::strerror(-rc),
                       "); check that the keyring has ", user,
                       "'s key and the cluster "
                       "knows that user"));
    }
    return common::ErrnoStatus(-rc, what);
  }
  librados::IoCtx ioctx;
  if (int rc = cluster->ioctx_create(options.pool.c_str(), ioctx); rc < 0) {
    if (rc == -ENOENT) {
      return absl::NotFoundError(absl::StrCat(
          "RADOS pool '", options.pool, "' does not exist in the cluster of ",
          conf, " (create it: ceph osd pool create ", options.pool, ")"));
    }
    return RadosStatus(
        rc, absl::StrCat("open RADOS pool '", options.pool, "' as ", user));
  }
  ioctx.set_namespace(options.ns);
  const uint64_t max_bytes = std::min(
      ConfBytes(*cluster, "osd_max_write_size", kDefaultMaxWriteBytes,
                1u << 20),
      ConfBytes(*cluster, "osd_max_object_size", kDefaultMaxObjectBytes, 1));
  shutdown.c = nullptr;
  return std::unique_ptr<RadosObjectStore>(new RadosObjectStore(
      options, std::move(cluster), std::move(ioctx), max_bytes));
}

std::string RadosObjectStore::Name(const std::string& oid) const {
  return absl::StrCat("object '", oid, "' in RADOS pool ", where_);
}

absl::Status RadosObjectStore::CheckSize(const std::string& key,
                                         uint64_t size) const {
  if (size <= max_object_bytes_) return absl::OkStatus();
  return absl::InvalidArgumentError(absl::StrCat(
      Name(key), ": ", size, " bytes is more than the ", max_object_bytes_,
      " a RADOS object written in one op may hold (osd_max_write_size)"));
}

absl::Status RadosObjectStore::Put(const std::string& key,
                                   std::string_view data) {
  return PutUnsynced(key, {&data, 1});
}

absl::Status RadosObjectStore::PutUnsynced(
    const std::string& key, std::span<const std::string_view> parts) {
  if (auto s = ValidateKey(key); !s.ok()) return s;
  size_t total = 0;
  for (std::string_view p : parts) total += p.size();
  if (auto s = CheckSize(key, total); !s.ok()) return s;
  bufferlist bl = Gather(parts);
  // write_full replaces the object in one op: never a mix of old and new.
  if (int rc = ioctx_.write_full(key, bl); rc < 0) {
    return RadosStatus(rc, absl::StrCat("write ", Name(key)));
  }
  return absl::OkStatus();
}

absl::Status RadosObjectStore::SyncAll() { return absl::OkStatus(); }

absl::Status RadosObjectStore::PublishBuffer(const std::string& key,
                                             const bufferlist& bl) {
  if (auto s = CheckSize(key, bl.length()); !s.ok()) return s;
  librados::ObjectWriteOperation op;
  op.create(/*exclusive=*/true);
  op.write_full(bl);
  if (int rc = ioctx_.operate(key, &op); rc < 0) {
    return RadosStatus(rc, absl::StrCat("publish ", Name(key)));
  }
  return absl::OkStatus();
}

absl::Status RadosObjectStore::Publish(const std::string& key,
                                       std::string_view data) {
  if (auto s = ValidateKey(key); !s.ok()) return s;
  if (auto s = CheckSize(key, data.size()); !s.ok()) return s;
  return PublishBuffer(key, Gather({&data, 1}));
}

absl::StatusOr<std::unique_ptr<ObjectWriter>> RadosObjectStore::OpenWriter(
    const std::string& key) {
  if (auto s = ValidateKey(key); !s.ok()) return s;
  return std::make_unique<RadosObjectWriter>(*this, key);
}

absl::StatusOr<std::string> RadosObjectStore::Get(const std::string& key) {
  if (auto s = ValidateKey(key); !s.ok()) return s;
  // Length 0 reads the whole object, in the same op that finds its size.
  bufferlist bl;
  if (int rc = ioctx_.read(key, bl, 0, 0); rc < 0) {
    return RadosStatus(rc, absl::StrCat("read ", Name(key)));
  }
  return bl.to_str();
}

absl::StatusOr<std::unique_ptr<ObjectReader>> RadosObjectStore::OpenReader(
    const std::string& key) {
  if (auto s = ValidateKey(key); !s.ok()) return s;
  uint64_t size = 0;
  time_t mtime = 0;
  if (int rc = ioctx_.stat(key, &size, &mtime); rc < 0) {
    return RadosStatus(rc, absl::StrCat("stat ", Name(key)));
  }
  return std::make_unique<RadosObjectReader>(*this, key, size);
}

absl::StatusOr<std::string> RadosObjectStore::GetRange(const std::string& key,
                                                       uint64_t offset,
                                                       uint32_t length) {
  if (auto s = ValidateKey(key); !s.ok()) return s;
  bufferlist bl;
  if (length > 0) {
    if (int rc = ioctx_.read(key, bl, length, offset); rc < 0) {
      return RadosStatus(rc, absl::StrCat("read ", length, " bytes at ", offset,
                                          " of ", Name(key)));
    }
  } else if (absl::StatusOr<bool> there = Exists(key); !there.ok() || !*there) {
    // A zero-length read succeeds on a missing object; NOT_FOUND as for
    // any other length.
    if (!there.ok()) return there.status();
    return absl::NotFoundError(
        absl::StrCat("read ", Name(key), ": no such object"));
  }
  if (bl.length() < length) {
    return absl::DataLossError(absl::StrCat(
        Name(key), " ends at byte ", offset + bl.length(), ", before ",
        offset + length, ": the object is truncated"));
  }
  return bl.to_str();
}

absl::StatusOr<bool> RadosObjectStore::Exists(const std::string& key) {
  if (auto s = ValidateKey(key); !s.ok()) return s;
  uint64_t size = 0;
  time_t mtime = 0;
  const int rc = ioctx_.stat(key, &size, &mtime);
  if (rc == 0) return true;
  if (rc == -ENOENT) return false;
  return RadosStatus(rc, absl::StrCat("stat ", Name(key)));
}

absl::Status RadosObjectStore::Touch(const std::string& key) {
  if (auto s = ValidateKey(key); !s.ok()) return s;
  librados::ObjectWriteOperation op;
  op.assert_exists();  // Touch must not create
  bufferlist now;
  now.append(std::to_string(NowUnixMs()));
  op.setxattr(kMtimeXattr, now);
  if (int rc = ioctx_.operate(key, &op); rc < 0) {
    return RadosStatus(rc, absl::StrCat("touch ", Name(key)));
  }
  return absl::OkStatus();
}

absl::StatusOr<int64_t> RadosObjectStore::ModifiedUnixMs(
    const std::string& key) {
  if (auto s = ValidateKey(key); !s.ok()) return s;
  librados::ObjectReadOperation op;
  uint64_t size = 0;
  timespec mtime{};
  std::map<std::string, bufferlist> attrs;
  int stat_rc = 0, attrs_rc = 0;
  op.stat2(&size, &mtime, &stat_rc);
  op.getxattrs(&attrs, &attrs_rc);
  if (int rc = ioctx_.operate(key, &op, nullptr); rc < 0) {
    return RadosStatus(rc, absl::StrCat("stat ", Name(key)));
  }
  int64_t ms =
      static_cast<int64_t>(mtime.tv_sec) * 1000 + mtime.tv_nsec / 1000000;
  if (auto it = attrs.find(kMtimeXattr); it != attrs.end()) {
    const std::string touched = it->second.to_str();
    int64_t t = 0;
    auto [end, ec] =
        std::from_chars(touched.data(), touched.data() + touched.size(), t);
    if (ec == std::errc()) ms = std::max(ms, t);
  }
  return ms;
}

absl::StatusOr<std::vector<std::string>> RadosObjectStore::List(
    const std::string& prefix) {
  if (!prefix.empty()) {
    if (auto s = ValidateKey(prefix); !s.ok()) return s;
  }
  const std::string want = prefix.empty() ? "" : prefix + "/";
  std::vector<std::string> keys;
  try {
    // The listing is in hash order, across every object of the namespace.
    for (auto it = ioctx_.nobjects_begin(); it != ioctx_.nobjects_end(); ++it) {
      const std::string& oid = it->get_oid();
      // Temporaries and locks start with '.', which no key does.
      if (oid.empty() || oid[0] == '.' || !absl::StartsWith(oid, want)) {
        continue;
      }
      keys.push_back(oid);
    }
  } catch (const std::system_error& e) {
    // librados' listing reports errors (a timeout) by throwing.
    return RadosStatus(-e.code().value(), absl::StrCat("list ", where_));
  }
  std::sort(keys.begin(), keys.end());
  return keys;
}

absl::StatusOr<uint64_t> RadosObjectStore::RemoveTempFiles(
    const std::string& prefix, int64_t older_than_unix_ms) {
  if (auto s = ValidateKey(prefix); !s.ok()) return s;
  const std::string want = absl::StrCat(kTempPrefix, prefix, "/");
  std::vector<std::string> temps;
  try {
    for (auto it = ioctx_.nobjects_begin(); it != ioctx_.nobjects_end(); ++it) {
      if (absl::StartsWith(it->get_oid(), want)) temps.push_back(it->get_oid());
    }
  } catch (const std::system_error& e) {
    return RadosStatus(-e.code().value(), absl::StrCat("list ", where_));
  }
  uint64_t removed = 0;
  for (const std::string& oid : temps) {
    uint64_t size = 0;
    timespec mtime{};
    if (ioctx_.stat2(oid, &size, &mtime) != 0) continue;  // gone meanwhile
    const int64_t ms =
        static_cast<int64_t>(mtime.tv_sec) * 1000 + mtime.tv_nsec / 1000000;
    if (ms > older_than_unix_ms) continue;
    if (ioctx_.remove(oid) == 0) ++removed;
  }
  return removed;
}

// An acknowledged remove is durable on every replica.
absl::Status RadosObjectStore::Delete(const std::string& key) {
  if (auto s = ValidateKey(key); !s.ok()) return s;
  const int rc = ioctx_.remove(key);
  if (rc == 0 || rc == -ENOENT) return absl::OkStatus();
  return RadosStatus(rc, absl::StrCat("delete ", Name(key)));
}

absl::StatusOr<std::unique_ptr<StoreLock>> RadosObjectStore::Lock(
    const std::string& name, LockMode mode, bool wait) {
  if (auto s = ValidateKey(name); !s.ok()) return s;
  const std::string oid = absl::StrCat(kLockPrefix, name);
  const std::string cookie = RandomSuffix();
  auto backoff = std::chrono::milliseconds(10);
  while (true) {
    const int rc = RadosStoreLock::Acquire(ioctx_, oid, cookie, mode,
                                           options_.lock_duration_seconds, 0);
    if (rc == 0) {
      return std::make_unique<RadosStoreLock>(ioctx_, oid, cookie, mode,
                                              options_.lock_duration_seconds);
    }
    if (rc != -EBUSY) {
      return RadosStatus(rc, absl::StrCat("lock ", Name(oid)));
    }
    if (!wait) {
      return absl::UnavailableError(absl::StrCat(
          "vault lock '", name, "' (", Name(oid), ") is held by another ",
          mode == LockMode::kShared ? "user exclusively" : "user"));
    }
    std::this_thread::sleep_for(backoff);
    backoff = std::min(backoff * 2, std::chrono::milliseconds(1000));
  }
}

absl::Status RadosObjectStore::DeleteLock(const std::string& name) {
  if (auto s = ValidateKey(name); !s.ok()) return s;
  const std::string oid = absl::StrCat(kLockPrefix, name);
  const int rc = ioctx_.remove(oid);
  if (rc == 0 || rc == -ENOENT) return absl::OkStatus();
  return RadosStatus(rc, absl::StrCat("delete lock ", Name(oid)));
}

}  // namespace cbtd::receiver
