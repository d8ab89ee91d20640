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
#include <optional>
#include <random>
#include <thread>
#include <utility>
#include <vector>

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
// Parts of striped objects: ".parts/<key>@<generation>.<index>". No key
// starts with '.' or holds '@', so a part never collides with a key or
// with another key's part.
constexpr char kPartPrefix[] = ".parts/";
// The cls_lock name on a lock object; the cookie tells holders apart.
constexpr char kLockName[] = "cbtd";
constexpr char kMtimeXattr[] = "cbtd.mtime";
// On the head of a striped object: "1 <size> <part bytes> <parts> <gen>".
// An object without it is a plain one, its bytes its own.
constexpr char kStripeXattr[] = "cbtd.stripe";

// librados' defaults (Ceph 16), for a cluster config that does not say.
constexpr uint64_t kDefaultMaxWriteBytes = 90ull << 20;
constexpr uint64_t kDefaultMaxObjectBytes = 128ull << 20;
// The largest part of a striped object (a plain object is at most this).
constexpr uint64_t kMaxPartBytes = 64ull << 20;
// Parts are read and written in ops of at most this (a part needs no
// atomic write: no head names it yet). Ops of a whole 64 MiB part ran at a
// fifth of the speed on a test cluster, and copy a whole part at once.
constexpr uint64_t kPartIoBytes = 8ull << 20;

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

// Copies bytes [offset, offset + length) of the concatenated `parts`.
bufferlist GatherRange(std::span<const std::string_view> parts, uint64_t offset,
                       uint64_t length) {
  bufferlist bl;
  if (length == 0) return bl;
  ceph::bufferptr ptr = ceph::buffer::create(length);
  uint64_t at = 0;  // offset of `p` in the whole
  uint64_t done = 0;
  for (std::string_view p : parts) {
    if (done == length) break;
    const uint64_t end = at + p.size();
    if (end > offset + done) {
      const uint64_t from = offset + done - at;
      const uint64_t n = std::min<uint64_t>(p.size() - from, length - done);
      std::copy_n(p.data() + from, n, ptr.c_str() + done);
      done += n;
    }
    at = end;
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

std::string StripeLayout::Encode() const {
  return absl::StrCat("1 ", size_bytes, " ", part_bytes, " ", part_count, " ",
                      gen);
}

std::optional<StripeLayout> StripeLayout::Parse(std::string_view text) {
  // abseil's string_view is not std's here: split by hand.
  std::vector<std::string_view> f;
  for (size_t at = 0; at <= text.size();) {
    size_t end = text.find(' ', at);
    if (end == std::string_view::npos) end = text.size();
    f.push_back(text.substr(at, end - at));
    at = end + 1;
  }
  auto number = [](std::string_view s, uint64_t& n) {
    auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), n);
    return ec == std::errc() && end == s.data() + s.size() && !s.empty();
  };
  StripeLayout l;
  if (f.size() != 5 || f[0] != "1" || !number(f[1], l.size_bytes) ||
      !number(f[2], l.part_bytes) || !number(f[3], l.part_count) ||
      f[4].empty() || l.part_bytes == 0 ||
      l.part_count != (l.size_bytes + l.part_bytes - 1) / l.part_bytes) {
    return std::nullopt;
  }
  l.gen = std::string(f[4]);
  return l;
}

uint64_t StripeLayout::PartSize(uint64_t index) const {
  return std::min(part_bytes, size_bytes - index * part_bytes);
}

namespace {

std::string PartOid(const std::string& key, const std::string& gen,
                    uint64_t index) {
  return absl::StrCat(kPartPrefix, key, "@", gen, ".", index);
}

}  // namespace

// A reader of a plain object reads through to it on each ReadAt (RADOS
// has no open handle that outlives a delete); of a striped one, reads the
// parts of the layout it opened.
class RadosObjectReader : public ObjectReader {
 public:
  RadosObjectReader(RadosObjectStore& store, std::string key, uint64_t size,
                    std::optional<StripeLayout> stripe)
      : store_(store),
        key_(std::move(key)),
        size_(size),
        stripe_(std::move(stripe)) {}
  uint64_t size_bytes() const override { return size_; }
  absl::StatusOr<std::string> ReadAt(uint64_t offset,
                                     uint32_t length) override {
    if (!stripe_) return store_.GetRange(key_, offset, length);
    std::string out;
    if (auto s = store_.ReadStriped(key_, *stripe_, offset, length, out);
        !s.ok()) {
      return s;
    }
    return out;
  }

 private:
  RadosObjectStore& store_;
  const std::string key_;
  const uint64_t size_;
  const std::optional<StripeLayout> stripe_;
};

// Appends to the parts of a would-be striped object,
// ".parts/<key>@<gen>.<i>", each at most part_bytes(): never more than one
// Append's bytes in memory. Publish of one part copies it under the key on
// the OSD (copy_from: the client never holds the object) in one op with an
// exclusive create, then removes it; of more, checks that every part is
// whole and creates the head exclusively, the parts staying where they
// are. Parts are removed if never published.
//
//   open --Append--> appending --Publish--> spent (published or not)
//                       |  any error: failed (only destruction left)
//   destroyed unpublished: parts removed (best effort; RemoveTempFiles)
class RadosObjectWriter : public ObjectWriter {
 public:
  RadosObjectWriter(RadosObjectStore& store, std::string key)
      : store_(store),
        key_(std::move(key)),
        gen_(RandomSuffix()),
        part_bytes_(store_.part_bytes()) {
    // An IoCtx of its own: its last version is this writer's last append
    // (the store's is shared by every thread).
    ioctx_.dup(store_.ioctx_);
  }
  ~RadosObjectWriter() override {
    if (!spent_) RemoveParts();  // best effort
  }
  RadosObjectWriter(const RadosObjectWriter&) = delete;
  RadosObjectWriter& operator=(const RadosObjectWriter&) = delete;

  absl::Status Append(std::string_view data) override {
    if (failed_ || spent_) return Spent();
    while (!data.empty()) {
      const uint64_t index = size_ / part_bytes_;
      const uint64_t n = std::min<uint64_t>(
          {part_bytes_ - size_ % part_bytes_, data.size(), kPartIoBytes});
      const std::string_view piece = data.substr(0, n);
      bufferlist bl = Gather({&piece, 1});
      const std::string oid = Part(index);
      // Counted before the op: one that failed (timed out) may still have
      // made the part.
      parts_ = std::max(parts_, index + 1);
      if (int rc = ioctx_.append(oid, bl, n); rc < 0) {
        failed_ = true;
        return RadosStatus(rc, absl::StrCat("append to ", store_.Name(oid)));
      }
      last_version_ = ioctx_.get_last_version();
      size_ += n;
      data.remove_prefix(n);
    }
    return absl::OkStatus();
  }

  uint64_t size_bytes() const override { return size_; }

  absl::StatusOr<std::string> ReadBack(uint64_t offset,
                                       uint32_t length) override {
    if (failed_ || spent_) return Spent();
    if (offset > size_ || length > size_ - offset) {
      return absl::InvalidArgumentError(absl::StrCat(
          "read back ", length, " bytes at ", offset, " of the writer of ",
          store_.Name(key_), ", which holds ", size_));
    }
    std::string out(length, '\0');
    uint64_t done = 0;
    while (done < length) {
      const uint64_t at = offset + done;
      const std::string oid = Part(at / part_bytes_);
      const uint64_t in_part = at % part_bytes_;
      const uint64_t n = std::min<uint64_t>(
          {part_bytes_ - in_part, length - done, kPartIoBytes});
      bufferlist bl;
      const int rc = ioctx_.read(oid, bl, n, in_part);
      if (rc < 0 && rc != -ENOENT) {
        return RadosStatus(rc, absl::StrCat("read back ", store_.Name(oid)));
      }
      if (rc == -ENOENT || bl.length() != n) {
        return absl::DataLossError(absl::StrCat(
            store_.Name(oid), " holds less than the ", size_,
            " bytes appended: was it removed by RemoveTempFiles?"));
      }
      bl.begin().copy(n, out.data() + done);
      done += n;
    }
    return out;
  }

  absl::Status Publish() override {
    if (failed_ || spent_) return Spent();
    spent_ = true;
    if (size_ == 0) {
      // Nothing appended: no part was made.
      return store_.PublishBuffer(key_, bufferlist());
    }
    if (size_ <= part_bytes_) {
      // One op: exclusive create (-EEXIST: nothing written) and a copy
      // that lands whole or not at all. The version pins the copy to what
      // this writer appended: a part removed or changed meanwhile fails it.
      absl::Status published;
      librados::ObjectWriteOperation op;
      op.create(/*exclusive=*/true);
      op.copy_from(Part(0), ioctx_, last_version_, 0);
      if (int rc = ioctx_.operate(key_, &op); rc < 0) {
        published = RadosStatus(
            rc, absl::StrCat("publish ", store_.Name(key_), " from ", Part(0)));
      }
      RemoveParts();  // RemoveTempFiles retries a failure
      return published;
    }
    const StripeLayout layout{size_, part_bytes_,
                              (size_ + part_bytes_ - 1) / part_bytes_, gen_};
    // Every part whole before the head names them (RemoveTempFiles may
    // have taken them from a writer that ran when it said none did).
    for (uint64_t i = 0; i < layout.part_count; ++i) {
      uint64_t size = 0;
      timespec mtime{};
      const int rc = ioctx_.stat2(Part(i), &size, &mtime);
      if (rc < 0 && rc != -ENOENT) {
        RemoveParts();
        return RadosStatus(rc, absl::StrCat("stat ", store_.Name(Part(i))));
      }
      if (rc == -ENOENT || size != layout.PartSize(i)) {
        RemoveParts();
        return absl::DataLossError(absl::StrCat(
            "publish ", store_.Name(key_), ": its part ", store_.Name(Part(i)),
            " is missing or short: was it removed by RemoveTempFiles?"));
      }
    }
    absl::Status published = store_.WriteHead(key_, layout, /*exclusive=*/true);
    if (!published.ok()) RemoveParts();
    return published;
  }

 private:
  absl::Status Spent() const {
    return absl::FailedPreconditionError(absl::StrCat(
        "writer of ", store_.Name(key_), " already failed or published"));
  }
  std::string Part(uint64_t index) const { return PartOid(key_, gen_, index); }
  void RemoveParts() {
    for (uint64_t i = 0; i < parts_; ++i) ioctx_.remove(Part(i));
  }

  RadosObjectStore& store_;
  librados::IoCtx ioctx_;
  const std::string key_;
  const std::string gen_;
  const uint64_t part_bytes_;
  uint64_t last_version_ = 0;  // of the last append
  uint64_t size_ = 0;
  uint64_t parts_ = 0;  // parts an append may have made
  bool failed_ = false;
  bool spent_ = false;  // Publish was called
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
                                   librados::IoCtx ioctx, uint64_t part_bytes)
    : options_(options),
      where_(options.ns.empty() ? options.pool
                                : absl::StrCat(options.pool, "/", options.ns)),
      cluster_(std::move(cluster)),
      ioctx_(std::move(ioctx)),
      part_bytes_(part_bytes) {}

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
  // A part is written in one op and is one RADOS object.
  uint64_t part_bytes = std::min(
      {kMaxPartBytes,
       ConfBytes(*cluster, "osd_max_write_size", kDefaultMaxWriteBytes,
                 1u << 20),
       ConfBytes(*cluster, "osd_max_object_size", kDefaultMaxObjectBytes, 1)});
  if (options.max_part_bytes != 0) {
    part_bytes = std::min(part_bytes, options.max_part_bytes);
  }
  shutdown.c = nullptr;
  return std::unique_ptr<RadosObjectStore>(new RadosObjectStore(
      options, std::move(cluster), std::move(ioctx), part_bytes));
}

std::string RadosObjectStore::Name(const std::string& oid) const {
  return absl::StrCat("object '", oid, "' in RADOS pool ", where_);
}

absl::StatusOr<RadosObjectStore::Head> RadosObjectStore::ReadHead(
    const std::string& key, uint64_t offset, uint64_t length, bool read_data,
    bufferlist* data) {
  librados::ObjectReadOperation op;
  std::map<std::string, bufferlist> attrs;
  uint64_t size = 0;
  timespec mtime{};
  int read_rc = 0, attrs_rc = 0, stat_rc = 0;
  // A read of length 0 reads to the end of the object.
  if (read_data) op.read(offset, length, data, &read_rc);
  op.getxattrs(&attrs, &attrs_rc);
  op.stat2(&size, &mtime, &stat_rc);
  const int rc = ioctx_.operate(key, &op, nullptr);
  if (rc == -ENOENT) return Head{};
  if (rc < 0) return RadosStatus(rc, absl::StrCat("read ", Name(key)));
  Head head{true, size, std::nullopt};
  if (auto it = attrs.find(kStripeXattr); it != attrs.end()) {
    head.stripe = StripeLayout::Parse(it->second.to_str());
    if (!head.stripe) {
      return absl::DataLossError(
          absl::StrCat(Name(key), ": unreadable stripe header '",
                       it->second.to_str(), "' (xattr ", kStripeXattr, ")"));
    }
  }
  return head;
}

absl::Status RadosObjectStore::ReadStriped(const std::string& key,
                                           const StripeLayout& layout,
                                           uint64_t offset, uint64_t length,
                                           std::string& out) {
  if (offset > layout.size_bytes || length > layout.size_bytes - offset) {
    return absl::DataLossError(absl::StrCat(
        Name(key), " ends at byte ", layout.size_bytes, ", before ",
        offset + length, ": the object is truncated"));
  }
  out.resize(length);
  uint64_t done = 0;
  while (done < length) {
    const uint64_t at = offset + done;
    const uint64_t index = at / layout.part_bytes;
    const uint64_t in_part = at % layout.part_bytes;
    const uint64_t n = std::min<uint64_t>(
        {layout.PartSize(index) - in_part, length - done, kPartIoBytes});
    const std::string oid = PartOid(key, layout.gen, index);
    bufferlist bl;
    const int rc = ioctx_.read(oid, bl, n, in_part);
    if (rc < 0 && rc != -ENOENT) {
      return RadosStatus(rc, absl::StrCat("read ", Name(oid), ", part ", index,
                                          " of ", Name(key)));
    }
    if (rc == -ENOENT || bl.length() != n) {
      return PartMissing(key, layout, index, rc == -ENOENT);
    }
    bl.begin().copy(n, out.data() + done);
    done += n;
  }
  return absl::OkStatus();
}

absl::Status RadosObjectStore::PartMissing(const std::string& key,
                                           const StripeLayout& layout,
                                           uint64_t index, bool missing) {
  // The head gone or naming other parts: the object was deleted or
  // replaced while being read (a reader's NOT_FOUND, see the header).
  absl::StatusOr<Head> now = ReadHead(key, 0, 0, false, nullptr);
  if (!now.ok() && !absl::IsDataLoss(now.status())) return now.status();
  if (now.ok() &&
      (!now->exists || !now->stripe || now->stripe->gen != layout.gen)) {
    return absl::NotFoundError(
        absl::StrCat("read ", Name(key),
                     ": the object was deleted or replaced while being read"));
  }
  return absl::DataLossError(absl::StrCat(
      Name(key), ": its part ", index, " of ", layout.part_count, " (",
      Name(PartOid(key, layout.gen, index)), ") is ",
      missing ? "missing" : "shorter than the stripe header says"));
}

absl::Status RadosObjectStore::WriteParts(
    const std::string& key, const StripeLayout& layout,
    std::span<const std::string_view> data) {
  for (uint64_t i = 0; i < layout.part_count; ++i) {
    const std::string oid = PartOid(key, layout.gen, i);
    for (uint64_t at = 0; at < layout.PartSize(i); at += kPartIoBytes) {
      // One op's copy of the caller's bytes at a time: bounded memory.
      const uint64_t n = std::min(kPartIoBytes, layout.PartSize(i) - at);
      bufferlist bl = GatherRange(data, i * layout.part_bytes + at, n);
      // write_full first: a part left by an earlier try is replaced.
      const int rc =
          at == 0 ? ioctx_.write_full(oid, bl) : ioctx_.write(oid, bl, n, at);
      if (rc < 0) {
        RemoveParts(key, layout);
        return RadosStatus(rc, absl::StrCat("write ", Name(oid), ", part ", i,
                                            " of ", Name(key)));
      }
    }
  }
  return absl::OkStatus();
}

void RadosObjectStore::RemoveParts(const std::string& key,
                                   const StripeLayout& layout) {
  for (uint64_t i = 0; i < layout.part_count; ++i) {
    ioctx_.remove(PartOid(key, layout.gen, i));  // RemoveTempFiles retries
  }
}

absl::Status RadosObjectStore::WriteHead(const std::string& key,
                                         const StripeLayout& layout,
                                         bool exclusive) {
  bufferlist header;
  header.append(layout.Encode());
  // One op: the head appears (or changes) whole, naming parts already
  // written.
  librados::ObjectWriteOperation op;
  if (exclusive) {
    op.create(/*exclusive=*/true);
  } else {
    op.write_full(bufferlist());
  }
  op.setxattr(kStripeXattr, header);
  if (int rc = ioctx_.operate(key, &op); rc < 0) {
    return RadosStatus(rc, absl::StrCat("publish ", Name(key)));
  }
  return absl::OkStatus();
}

StripeLayout RadosObjectStore::NewLayout(uint64_t size_bytes) const {
  return StripeLayout{size_bytes, part_bytes_,
                      (size_bytes + part_bytes_ - 1) / part_bytes_,
                      RandomSuffix()};
}

absl::Status RadosObjectStore::Put(const std::string& key,
                                   std::string_view data) {
  return PutUnsynced(key, {&data, 1});
}

absl::Status RadosObjectStore::PutUnsynced(
    const std::string& key, std::span<const std::string_view> parts) {
  if (auto s = ValidateKey(key); !s.ok()) return s;
  uint64_t total = 0;
  for (std::string_view p : parts) total += p.size();
  if (total <= part_bytes_) {
    // write_full replaces an object whole, never a mix of old and new. One
    // op for a new object (the common case: packs, chunks, summaries) and
    // two for one that is there but not a striped head; a striped head is
    // replaced below.
    bufferlist bl = Gather(parts);
    librados::ObjectWriteOperation create;
    create.create(/*exclusive=*/true);
    create.write_full(bl);
    int rc = ioctx_.operate(key, &create);
    if (rc == -EEXIST) {
      // An absent xattr compares equal to "" (-ECANCELED: a striped head;
      // -ENOENT: deleted meanwhile).
      librados::ObjectWriteOperation replace;
      replace.cmpxattr(kStripeXattr, LIBRADOS_CMPXATTR_OP_EQ, bufferlist());
      replace.write_full(bl);
      rc = ioctx_.operate(key, &replace);
    }
    if (rc == 0) return absl::OkStatus();
    if (rc != -ECANCELED && rc != -ENOENT) {
      return RadosStatus(rc, absl::StrCat("write ", Name(key)));
    }
  }
  // The parts of the object replaced, removed once the head no longer
  // names them.
  absl::StatusOr<Head> old = ReadHead(key, 0, 0, false, nullptr);
  if (!old.ok() && !absl::IsDataLoss(old.status())) return old.status();
  if (total > part_bytes_) {
    const StripeLayout layout = NewLayout(total);
    if (auto s = WriteParts(key, layout, parts); !s.ok()) return s;
    if (auto s = WriteHead(key, layout, /*exclusive=*/false); !s.ok()) {
      RemoveParts(key, layout);
      return s;
    }
  } else {
    // The bytes and the stripe header's removal in one op (FAILOK: the
    // header may be gone meanwhile), so the bytes are never read as a
    // head.
    bufferlist bl = Gather(parts);
    librados::ObjectWriteOperation op;
    op.write_full(bl);
    op.rmxattr(kStripeXattr);
    op.set_op_flags2(LIBRADOS_OP_FLAG_FAILOK);
    if (int rc = ioctx_.operate(key, &op); rc < 0) {
      return RadosStatus(rc, absl::StrCat("write ", Name(key)));
    }
  }
  if (old.ok() && old->stripe) RemoveParts(key, *old->stripe);
  return absl::OkStatus();
}

absl::Status RadosObjectStore::SyncAll() { return absl::OkStatus(); }

absl::Status RadosObjectStore::PublishBuffer(const std::string& key,
                                             const bufferlist& bl) {
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
  if (data.size() <= part_bytes_) return PublishBuffer(key, Gather({&data, 1}));
  // Not worth writing parts under a key that is taken (the head's
  // exclusive create below is what decides a race).
  absl::StatusOr<bool> there = Exists(key);
  if (!there.ok()) return there.status();
  if (*there) {
    return absl::AlreadyExistsError(
        absl::StrCat("publish ", Name(key), ": the object already exists"));
  }
  const StripeLayout layout = NewLayout(data.size());
  if (auto s = WriteParts(key, layout, {&data, 1}); !s.ok()) return s;
  absl::Status published = WriteHead(key, layout, /*exclusive=*/true);
  if (!published.ok()) RemoveParts(key, layout);
  return published;
}

absl::StatusOr<std::unique_ptr<ObjectWriter>> RadosObjectStore::OpenWriter(
    const std::string& key) {
  if (auto s = ValidateKey(key); !s.ok()) return s;
  return std::make_unique<RadosObjectWriter>(*this, key);
}

absl::StatusOr<std::string> RadosObjectStore::Get(const std::string& key) {
  if (auto s = ValidateKey(key); !s.ok()) return s;
  // Length 0 reads the whole object, in the same op that finds its size
  // and whether it is a striped object's head.
  bufferlist bl;
  absl::StatusOr<Head> head = ReadHead(key, 0, 0, true, &bl);
  if (!head.ok()) return head.status();
  if (!head->exists) {
    return absl::NotFoundError(
        absl::StrCat("read ", Name(key), ": no such object"));
  }
  if (!head->stripe) return bl.to_str();
  std::string out;
  if (auto s =
          ReadStriped(key, *head->stripe, 0, head->stripe->size_bytes, out);
      !s.ok()) {
    return s;
  }
  return out;
}

absl::StatusOr<std::unique_ptr<ObjectReader>> RadosObjectStore::OpenReader(
    const std::string& key) {
  if (auto s = ValidateKey(key); !s.ok()) return s;
  absl::StatusOr<Head> head = ReadHead(key, 0, 0, false, nullptr);
  if (!head.ok()) return head.status();
  if (!head->exists) {
    return absl::NotFoundError(
        absl::StrCat("stat ", Name(key), ": no such object"));
  }
  const uint64_t size =
      head->stripe ? head->stripe->size_bytes : head->own_bytes;
  return std::make_unique<RadosObjectReader>(*this, key, size,
                                             std::move(head->stripe));
}

absl::StatusOr<std::string> RadosObjectStore::GetRange(const std::string& key,
                                                       uint64_t offset,
                                                       uint32_t length) {
  if (auto s = ValidateKey(key); !s.ok()) return s;
  std::string out;
  if (auto s = GetRangeInto(key, offset, length, out); !s.ok()) return s;
  return out;
}

absl::Status RadosObjectStore::GetRangeInto(const std::string& key,
                                            uint64_t offset, uint32_t length,
                                            std::string& out) {
  if (auto s = ValidateKey(key); !s.ok()) return s;
  // One op for a plain object: the range and the xattrs that say whether
  // the object is a striped one's head (whose own bytes are none). A
  // zero-length read would read to the end: no read then.
  bufferlist bl;
  absl::StatusOr<Head> head = ReadHead(key, offset, length, length > 0, &bl);
  if (!head.ok()) return head.status();
  if (!head->exists) {
    return absl::NotFoundError(absl::StrCat("read ", length, " bytes at ",
                                            offset, " of ", Name(key),
                                            ": no such object"));
  }
  if (head->stripe) return ReadStriped(key, *head->stripe, offset, length, out);
  if (bl.length() < length) {
    return absl::DataLossError(absl::StrCat(
        Name(key), " ends at byte ", offset + bl.length(), ", before ",
        offset + length, ": the object is truncated"));
  }
  out.resize(length);
  if (length > 0) bl.begin().copy(length, out.data());
  return absl::OkStatus();
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
  const std::string temp_want = absl::StrCat(kTempPrefix, prefix, "/");
  const std::string part_want = absl::StrCat(kPartPrefix, prefix, "/");
  std::vector<std::string> temps;
  try {
    for (auto it = ioctx_.nobjects_begin(); it != ioctx_.nobjects_end(); ++it) {
      const std::string& oid = it->get_oid();
      if (absl::StartsWith(oid, temp_want) ||
          absl::StartsWith(oid, part_want)) {
        temps.push_back(oid);
      }
    }
  } catch (const std::system_error& e) {
    return RadosStatus(-e.code().value(), absl::StrCat("list ", where_));
  }
  // A part is left over unless its key's head names its generation: a
  // writer that never published, a Put or Delete cut short, a replaced
  // object's parts not yet removed. The generation each head names, by
  // key ("" for none).
  std::map<std::string, std::string> live;
  uint64_t removed = 0;
  for (const std::string& oid : temps) {
    if (absl::StartsWith(oid, kPartPrefix)) {
      // ".parts/<key>@<gen>.<index>"
      const size_t at = oid.rfind('@');
      const size_t dot = oid.rfind('.');
      if (at == std::string::npos || dot == std::string::npos || dot < at) {
        continue;  // not one of ours
      }
      const std::string key =
          oid.substr(sizeof(kPartPrefix) - 1, at - (sizeof(kPartPrefix) - 1));
      const std::string gen = oid.substr(at + 1, dot - at - 1);
      auto it = live.find(key);
      if (it == live.end()) {
        absl::StatusOr<Head> head = ReadHead(key, 0, 0, false, nullptr);
        if (!head.ok() && !absl::IsDataLoss(head.status())) {
          return head.status();
        }
        it = live.emplace(key,
                          head.ok() && head->stripe ? head->stripe->gen : "")
                 .first;
      }
      if (it->second == gen) continue;
    }
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

// An acknowledged remove is durable on every replica. The head goes
// first: the object is gone at once, and parts left by a crash after it
// are headless, for RemoveTempFiles.
absl::Status RadosObjectStore::Delete(const std::string& key) {
  if (auto s = ValidateKey(key); !s.ok()) return s;
  absl::StatusOr<Head> head = ReadHead(key, 0, 0, false, nullptr);
  if (!head.ok() && !absl::IsDataLoss(head.status())) return head.status();
  if (head.ok() && !head->exists) return absl::OkStatus();
  const int rc = ioctx_.remove(key);
  if (rc != 0 && rc != -ENOENT) {
    return RadosStatus(rc, absl::StrCat("delete ", Name(key)));
  }
  if (head.ok() && head->stripe) RemoveParts(key, *head->stripe);
  return absl::OkStatus();
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
