#include "receiver/local_object_store.h"

#include <fcntl.h>
#include <limits.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <memory>
#include <mutex>
#include <tuple>

#include "absl/strings/str_cat.h"
#include "common/file_lock.h"
#include "common/fs.h"
#include "common/unique_fd.h"

namespace cbtd::receiver {
namespace {

using common::ErrnoStatus;

std::string DirOf(const std::string& path) {
  return path.substr(0, path.rfind('/'));
}

bool IsTempName(std::string_view name) {
  return name.find(".tmp.") != std::string_view::npos;
}

// mkdir -p for the directories of a key below root (root exists).
absl::Status MakeDirs(const std::string& root, const std::string& key) {
  size_t pos = 0;
  while ((pos = key.find('/', pos)) != std::string::npos) {
    const std::string dir = root + "/" + key.substr(0, pos);
    if (::mkdir(dir.c_str(), 0750) != 0 && errno != EEXIST) {
      return ErrnoStatus(errno, absl::StrCat("mkdir ", dir));
    }
    ++pos;
  }
  return absl::OkStatus();
}

// Writes every part, in order, with as few writev(2) calls as the kernel
// allows; false with errno set on failure.
bool WriteAll(int fd, std::span<const std::string_view> parts) {
  std::vector<iovec> iov;
  iov.reserve(parts.size());
  for (std::string_view p : parts) {
    if (!p.empty()) {
      iov.push_back({const_cast<char*>(p.data()), p.size()});
    }
  }
  size_t first = 0;
  while (first < iov.size()) {
    const int count =
        static_cast<int>(std::min<size_t>(IOV_MAX, iov.size() - first));
    ssize_t n = ::writev(fd, iov.data() + first, count);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return false;
    // Skip what was written; a part written in part is trimmed.
    while (n > 0) {
      iovec& v = iov[first];
      const size_t take = std::min<size_t>(v.iov_len, static_cast<size_t>(n));
      v.iov_base = static_cast<char*>(v.iov_base) + take;
      v.iov_len -= take;
      n -= static_cast<ssize_t>(take);
      if (v.iov_len == 0) ++first;
    }
  }
  return true;
}

// Objects at least this large (packs) are written with direct I/O.
constexpr size_t kDirectWriteMinBytes = 1u << 20;
constexpr size_t kDirectAlign = 4096;

// An aligned buffer for direct writes, taken from a small pool and given
// back on destruction: fresh pages for every pack cost more than the copy
// into them (page faults; writes run on short-lived helper threads).
class PooledBuffer {
 public:
  explicit PooledBuffer(size_t bytes) {
    Pool& pool = ThePool();
    std::lock_guard l(pool.mu);
    for (size_t i = 0; i < pool.free.size(); ++i) {
      if (pool.free[i].second >= bytes) {
        std::tie(data_, size_) = pool.free[i];
        pool.free.erase(pool.free.begin() + static_cast<ptrdiff_t>(i));
        return;
      }
    }
    void* mem = nullptr;
    if (::posix_memalign(&mem, kDirectAlign, bytes) == 0) {
      data_ = static_cast<char*>(mem);
      size_ = bytes;
    }
  }
  ~PooledBuffer() {
    if (data_ == nullptr) return;
    Pool& pool = ThePool();
    std::lock_guard l(pool.mu);
    if (pool.free.size() < kKept) {
      pool.free.emplace_back(data_, size_);
    } else {
      std::free(data_);
    }
  }
  PooledBuffer(const PooledBuffer&) = delete;
  PooledBuffer& operator=(const PooledBuffer&) = delete;
  char* data() const { return data_; }  // null if allocation failed

 private:
  static constexpr size_t kKept = 4;
  struct Pool {
    std::mutex mu;
    std::vector<std::pair<char*, size_t>> free;  // guarded by mu
  };
  // Never destroyed: a write finishing during exit still has its pool, and
  // the kept buffers stay reachable (not leaks) until the process ends.
  static Pool& ThePool() {
    static Pool* const pool = new Pool;
    return *pool;
  }
  char* data_ = nullptr;
  size_t size_ = 0;
};

enum class DirectWrite { kDone, kUnsupported, kFailed };

// Writes `parts` with direct I/O: gathered into one aligned buffer, the
// aligned prefix written with O_DIRECT (no copy into the page cache, which
// bounds buffered writes on machines with slow memory copies:
// docs/performance.md), the unaligned tail buffered. The bytes are durable
// only after a sync, as with buffered writes. kUnsupported, nothing
// written, when the filesystem refuses direct I/O (EINVAL: tmpfs, a block
// size above kDirectAlign); kFailed with errno set on any other error.
DirectWrite WriteDirect(int fd, std::span<const std::string_view> parts,
                        size_t total) {
  const size_t aligned = total / kDirectAlign * kDirectAlign;
  PooledBuffer buf(std::max(aligned, kDirectAlign));
  if (buf.data() == nullptr) {
    errno = ENOMEM;
    return DirectWrite::kFailed;
  }
  const int flags = ::fcntl(fd, F_GETFL);
  if (flags < 0) return DirectWrite::kFailed;
  if (::fcntl(fd, F_SETFL, flags | O_DIRECT) != 0) {
    return errno == EINVAL ? DirectWrite::kUnsupported : DirectWrite::kFailed;
  }
  std::vector<std::string_view> tail;
  size_t at = 0;
  for (std::string_view p : parts) {
    const size_t take = at < aligned ? std::min(p.size(), aligned - at) : 0;
    std::memcpy(buf.data() + at, p.data(), take);
    at += take;
    if (take < p.size()) tail.push_back(p.substr(take));
  }
  for (size_t done = 0; done < aligned;) {
    const ssize_t n = ::write(fd, buf.data() + done, aligned - done);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0 && errno == EINVAL && done == 0) {
      return ::fcntl(fd, F_SETFL, flags) == 0 ? DirectWrite::kUnsupported
                                              : DirectWrite::kFailed;
    }
    if (n < 0) return DirectWrite::kFailed;
    if (n == 0) {
      errno = EIO;
      return DirectWrite::kFailed;
    }
    done += static_cast<size_t>(n);
  }
  if (::fcntl(fd, F_SETFL, flags) != 0) return DirectWrite::kFailed;
  return WriteAll(fd, tail) ? DirectWrite::kDone : DirectWrite::kFailed;
}

// `length` bytes at `offset` of the open file `path`; DATA_LOSS if it
// ends first.
// Reads `length` bytes at `offset` of the open file `path` into `out`;
// DATA_LOSS if it ends first.
absl::Status PreadInto(int fd, const std::string& path, uint64_t offset,
                       uint32_t length, std::string& out) {
  out.resize(length);
  size_t done = 0;
  while (done < length) {
    const ssize_t n = ::pread(fd, out.data() + done, length - done,
                              static_cast<off_t>(offset + done));
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) {
      return ErrnoStatus(errno, absl::StrCat("read ", length, " bytes at ",
                                             offset, " of ", path));
    }
    if (n == 0) {
      return absl::DataLossError(
          absl::StrCat(path, " ends at byte ", offset + done, ", before ",
                       offset + length, ": the object is truncated"));
    }
    done += static_cast<size_t>(n);
  }
  return absl::OkStatus();
}

// Ranges at least this large (a run of a pack's records: restore, verify,
// GC) are read with direct I/O.
constexpr uint32_t kDirectReadMinBytes = 256u << 10;

enum class DirectRead { kDone, kUnsupported };

// Reads `length` bytes at `offset` of `path` into `out` with direct I/O:
// the range's aligned cover in one pread into a per-thread aligned buffer,
// then the range copied out. In this rig the copy out of the page cache a
// buffered read makes costs ten times the copy from the aligned buffer
// (docs/performance.md). kUnsupported, nothing read, where the file system
// refuses direct I/O (EINVAL); errors as PreadInto's.
absl::StatusOr<DirectRead> PreadDirectInto(const std::string& path,
                                           uint64_t offset, uint32_t length,
                                           std::string& out) {
  common::UniqueFd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_DIRECT));
  if (!fd && errno == EINVAL) return DirectRead::kUnsupported;
  if (!fd) return ErrnoStatus(errno, absl::StrCat("open ", path));
  const uint64_t lo = offset / kDirectAlign * kDirectAlign;
  const uint64_t hi =
      (offset + length + kDirectAlign - 1) / kDirectAlign * kDirectAlign;
  // Kept per thread and grown as needed: restore workers read many runs.
  thread_local std::unique_ptr<char, decltype(&std::free)> buf(nullptr,
                                                               &std::free);
  thread_local size_t capacity = 0;
  if (capacity < hi - lo) {
    void* mem = nullptr;
    if (::posix_memalign(&mem, kDirectAlign, hi - lo) != 0) {
      return absl::ResourceExhaustedError(
          absl::StrCat("out of memory for a ", hi - lo, "-byte read buffer"));
    }
    buf.reset(static_cast<char*>(mem));
    capacity = hi - lo;
  }
  size_t done = 0;
  while (lo + done < offset + length) {
    const ssize_t n = ::pread(fd.get(), buf.get() + done, hi - lo - done,
                              static_cast<off_t>(lo + done));
    if (n < 0 && errno == EINTR) continue;
    if (n < 0 && errno == EINVAL && done == 0) return DirectRead::kUnsupported;
    if (n < 0) {
      return ErrnoStatus(errno, absl::StrCat("read ", length, " bytes at ",
                                             offset, " of ", path));
    }
    if (n == 0) {
      return absl::DataLossError(absl::StrCat(path, " ends at byte ", lo + done,
                                              ", before ", offset + length,
                                              ": the object is truncated"));
    }
    // A short read ends at the end of the file; the next one says so.
    done += static_cast<size_t>(n);
  }
  out.assign(buf.get() + (offset - lo), length);
  return DirectRead::kDone;
}

absl::StatusOr<std::string> PreadExactly(int fd, const std::string& path,
                                         uint64_t offset, uint32_t length) {
  std::string out;
  if (auto s = PreadInto(fd, path, offset, length, out); !s.ok()) return s;
  return out;
}

class LocalObjectReader : public ObjectReader {
 public:
  LocalObjectReader(common::UniqueFd fd, std::string path, uint64_t size)
      : fd_(std::move(fd)), path_(std::move(path)), size_(size) {}
  uint64_t size_bytes() const override { return size_; }
  absl::StatusOr<std::string> ReadAt(uint64_t offset,
                                     uint32_t length) override {
    return PreadExactly(fd_.get(), path_, offset, length);
  }

 private:
  common::UniqueFd fd_;
  const std::string path_;
  const uint64_t size_;
};

// A temporary file next to the object's path, linked into place on
// Publish; unlinked if never published.
class LocalObjectWriter : public ObjectWriter {
 public:
  LocalObjectWriter(common::UniqueFd fd, std::string tmp, std::string path)
      : fd_(std::move(fd)), tmp_(std::move(tmp)), path_(std::move(path)) {}
  ~LocalObjectWriter() override {
    if (!tmp_.empty()) {
      fd_.reset();
      ::unlink(tmp_.c_str());
    }
  }
  LocalObjectWriter(const LocalObjectWriter&) = delete;
  LocalObjectWriter& operator=(const LocalObjectWriter&) = delete;

  absl::Status Append(std::string_view data) override {
    if (!fd_) return Spent();
    if (!WriteAll(fd_.get(), {&data, 1})) {
      const int err = errno;
      fd_.reset();
      return ErrnoStatus(err, absl::StrCat("write ", tmp_));
    }
    size_ += data.size();
    return absl::OkStatus();
  }

  uint64_t size_bytes() const override { return size_; }

  absl::StatusOr<std::string> ReadBack(uint64_t offset,
                                       uint32_t length) override {
    if (!fd_) return Spent();
    if (offset > size_ || length > size_ - offset) {
      return absl::InvalidArgumentError(
          absl::StrCat("read back ", length, " bytes at ", offset, " of ", tmp_,
                       ", which holds ", size_));
    }
    return PreadExactly(fd_.get(), tmp_, offset, length);
  }

  absl::Status Publish() override {
    if (!fd_) return Spent();
    if (::fchmod(fd_.get(), 0640) != 0 || ::fsync(fd_.get()) != 0) {
      const int err = errno;
      fd_.reset();
      return ErrnoStatus(err, absl::StrCat("fsync ", tmp_));
    }
    if (absl::Status st = fd_.Close(tmp_); !st.ok()) return st;
    // link(2) fails with EEXIST instead of replacing: publish never clobbers.
    const int rc = ::link(tmp_.c_str(), path_.c_str());
    const int err = errno;
    ::unlink(tmp_.c_str());
    tmp_.clear();
    if (rc != 0) {
      if (err == EEXIST) {
        return absl::AlreadyExistsError(
            absl::StrCat("object ", path_, " already exists"));
      }
      return ErrnoStatus(err, absl::StrCat("link to ", path_));
    }
    return common::FsyncDirectory(DirOf(path_));
  }

 private:
  absl::Status Spent() const {
    return absl::FailedPreconditionError(
        absl::StrCat("writer of ", path_, " already failed or published"));
  }

  common::UniqueFd fd_;
  std::string tmp_;  // empty once published
  std::string path_;
  uint64_t size_ = 0;
};

// A store lock is a lock file under locks/.
class LocalStoreLock : public StoreLock {
 public:
  explicit LocalStoreLock(common::FileLock lock) : lock_(std::move(lock)) {}

 private:
  common::FileLock lock_;
};

}  // namespace

absl::Status ValidateKey(std::string_view key) {
  bool ok = !key.empty();
  size_t start = 0;
  while (ok && start <= key.size()) {
    size_t end = key.find('/', start);
    if (end == std::string_view::npos) end = key.size();
    std::string_view comp = key.substr(start, end - start);
    ok = !comp.empty() && comp[0] != '.' &&
         std::all_of(comp.begin(), comp.end(), [](char c) {
           return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
                  (c >= '0' && c <= '9') || c == '.' || c == '_' || c == '-';
         });
    start = end + 1;
  }
  if (!ok) {
    return absl::InvalidArgumentError(absl::StrCat(
        "invalid object key '", std::string(key),
        "': components must be [A-Za-z0-9._-] and not start with '.'"));
  }
  return absl::OkStatus();
}

absl::StatusOr<std::unique_ptr<LocalObjectStore>> LocalObjectStore::Open(
    const std::string& root, bool create) {
  if (root.empty()) return absl::InvalidArgumentError("empty vault path");
  std::string r = root;
  while (r.size() > 1 && r.back() == '/') r.pop_back();
  struct stat st;
  if (::stat(r.c_str(), &st) != 0) {
    if (errno != ENOENT || !create) {
      return ErrnoStatus(errno, absl::StrCat("vault directory ", r,
                                             " (create it with `cbt-receiver "
                                             "receive --create`)"));
    }
    std::error_code ec;
    std::filesystem::create_directories(r, ec);
    if (ec) {
      return ErrnoStatus(ec.value(),
                         absl::StrCat("create vault directory ", r));
    }
  } else if (!S_ISDIR(st.st_mode)) {
    return absl::FailedPreconditionError(
        absl::StrCat("vault path ", r, " is not a directory"));
  }
  return std::unique_ptr<LocalObjectStore>(new LocalObjectStore(r));
}

absl::StatusOr<std::string> LocalObjectStore::WriteTemp(
    const std::string& path, std::span<const std::string_view> parts,
    bool fsync) {
  std::string tmp = path + ".tmp.XXXXXX";
  common::UniqueFd fd(::mkstemp(tmp.data()));
  if (!fd) return ErrnoStatus(errno, absl::StrCat("create ", tmp));
  auto fail = [&](std::string_view what) {
    const int err = errno;
    fd.reset();
    ::unlink(tmp.c_str());
    return ErrnoStatus(err, absl::StrCat(std::string(what), " ", tmp));
  };
  size_t total = 0;
  for (std::string_view p : parts) total += p.size();
  // Large unsynced objects (packs) bypass the page cache where the
  // filesystem allows it.
  DirectWrite direct = DirectWrite::kUnsupported;
  if (!fsync && total >= kDirectWriteMinBytes) {
    direct = WriteDirect(fd.get(), parts, total);
  }
  if (direct == DirectWrite::kFailed) return fail("write");
  if (direct == DirectWrite::kUnsupported && !WriteAll(fd.get(), parts)) {
    return fail("write");
  }
  if (::fchmod(fd.get(), 0640) != 0 || (fsync && ::fsync(fd.get()) != 0)) {
    return fail("fsync");
  }
  // A writer sees close's error too (NFS reports failed writes there).
  if (absl::Status st = fd.Close(tmp); !st.ok()) {
    ::unlink(tmp.c_str());
    return st;
  }
  return tmp;
}

absl::Status LocalObjectStore::Put(const std::string& key,
                                   std::string_view data) {
  if (auto s = ValidateKey(key); !s.ok()) return s;
  if (auto s = MakeDirs(root_, key); !s.ok()) return s;
  const std::string path = PathOf(key);
  auto tmp = WriteTemp(path, {&data, 1});
  if (!tmp.ok()) return tmp.status();
  if (::rename(tmp->c_str(), path.c_str()) != 0) {
    int err = errno;
    ::unlink(tmp->c_str());
    return ErrnoStatus(err, absl::StrCat("rename ", *tmp, " to ", path));
  }
  return common::FsyncDirectory(DirOf(path));
}

absl::Status LocalObjectStore::PutUnsynced(
    const std::string& key, std::span<const std::string_view> parts) {
  if (auto s = ValidateKey(key); !s.ok()) return s;
  if (auto s = MakeDirs(root_, key); !s.ok()) return s;
  const std::string path = PathOf(key);
  auto tmp = WriteTemp(path, parts, /*fsync=*/false);
  if (!tmp.ok()) return tmp.status();
  if (::rename(tmp->c_str(), path.c_str()) != 0) {
    const int err = errno;
    ::unlink(tmp->c_str());
    return ErrnoStatus(err, absl::StrCat("rename ", *tmp, " to ", path));
  }
  return absl::OkStatus();
}

absl::Status LocalObjectStore::SyncAll() {
  common::UniqueFd root_fd(
      ::open(root_.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  if (!root_fd) return ErrnoStatus(errno, absl::StrCat("open ", root_));
  if (::syncfs(root_fd.get()) != 0) {
    return ErrnoStatus(errno, absl::StrCat("syncfs ", root_));
  }
  return absl::OkStatus();
}

absl::Status LocalObjectStore::Publish(const std::string& key,
                                       std::string_view data) {
  if (auto s = ValidateKey(key); !s.ok()) return s;
  if (auto s = MakeDirs(root_, key); !s.ok()) return s;
  const std::string path = PathOf(key);
  auto tmp = WriteTemp(path, {&data, 1});
  if (!tmp.ok()) return tmp.status();
  // link(2) fails with EEXIST instead of replacing: publish never clobbers.
  const int rc = ::link(tmp->c_str(), path.c_str());
  const int err = errno;
  ::unlink(tmp->c_str());
  if (rc != 0) {
    if (err == EEXIST) {
      return absl::AlreadyExistsError(
          absl::StrCat("object ", path, " already exists"));
    }
    return ErrnoStatus(err, absl::StrCat("link ", *tmp, " to ", path));
  }
  return common::FsyncDirectory(DirOf(path));
}

absl::StatusOr<std::unique_ptr<ObjectWriter>> LocalObjectStore::OpenWriter(
    const std::string& key) {
  if (auto s = ValidateKey(key); !s.ok()) return s;
  if (auto s = MakeDirs(root_, key); !s.ok()) return s;
  std::string path = PathOf(key);
  std::string tmp = path + ".tmp.XXXXXX";
  common::UniqueFd fd(::mkostemp(tmp.data(), O_CLOEXEC));
  if (!fd) return ErrnoStatus(errno, absl::StrCat("create ", tmp));
  return std::make_unique<LocalObjectWriter>(std::move(fd), std::move(tmp),
                                             std::move(path));
}

absl::StatusOr<std::unique_ptr<ObjectReader>> LocalObjectStore::OpenReader(
    const std::string& key) {
  if (auto s = ValidateKey(key); !s.ok()) return s;
  std::string path = PathOf(key);
  common::UniqueFd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
  if (!fd) return ErrnoStatus(errno, absl::StrCat("open ", path));
  struct stat st;
  if (::fstat(fd.get(), &st) != 0) {
    return ErrnoStatus(errno, absl::StrCat("stat ", path));
  }
  return std::make_unique<LocalObjectReader>(std::move(fd), std::move(path),
                                             static_cast<uint64_t>(st.st_size));
}

absl::StatusOr<std::string> LocalObjectStore::Get(const std::string& key) {
  if (auto s = ValidateKey(key); !s.ok()) return s;
  return common::ReadFile(PathOf(key));
}

absl::StatusOr<std::string> LocalObjectStore::GetRange(const std::string& key,
                                                       uint64_t offset,
                                                       uint32_t length) {
  std::string out;
  if (auto s = GetRangeInto(key, offset, length, out); !s.ok()) return s;
  return out;
}

absl::Status LocalObjectStore::GetRangeInto(const std::string& key,
                                            uint64_t offset, uint32_t length,
                                            std::string& out) {
  if (auto s = ValidateKey(key); !s.ok()) return s;
  const std::string path = PathOf(key);
  if (length >= kDirectReadMinBytes) {
    auto direct = PreadDirectInto(path, offset, length, out);
    if (!direct.ok()) return direct.status();
    if (*direct == DirectRead::kDone) return absl::OkStatus();
  }
  common::UniqueFd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
  if (!fd) return ErrnoStatus(errno, absl::StrCat("open ", path));
  return PreadInto(fd.get(), path, offset, length, out);
}

absl::StatusOr<bool> LocalObjectStore::Exists(const std::string& key) {
  if (auto s = ValidateKey(key); !s.ok()) return s;
  struct stat st;
  if (::stat(PathOf(key).c_str(), &st) == 0) return true;
  if (errno == ENOENT) return false;
  return ErrnoStatus(errno, absl::StrCat("stat ", PathOf(key)));
}

absl::Status LocalObjectStore::Touch(const std::string& key) {
  if (auto s = ValidateKey(key); !s.ok()) return s;
  if (::utimensat(AT_FDCWD, PathOf(key).c_str(), nullptr, 0) != 0) {
    return ErrnoStatus(errno, absl::StrCat("touch ", PathOf(key)));
  }
  return absl::OkStatus();
}

absl::StatusOr<int64_t> LocalObjectStore::ModifiedUnixMs(
    const std::string& key) {
  if (auto s = ValidateKey(key); !s.ok()) return s;
  struct stat st;
  if (::stat(PathOf(key).c_str(), &st) != 0) {
    return ErrnoStatus(errno, absl::StrCat("stat ", PathOf(key)));
  }
  return static_cast<int64_t>(st.st_mtim.tv_sec) * 1000 +
         st.st_mtim.tv_nsec / 1000000;
}

absl::StatusOr<std::vector<std::string>> LocalObjectStore::List(
    const std::string& prefix) {
  std::vector<std::string> keys;
  std::string dir = root_;
  if (!prefix.empty()) {
    if (auto s = ValidateKey(prefix); !s.ok()) return s;
    dir = PathOf(prefix);
  }
  std::error_code ec;
  if (!std::filesystem::exists(dir, ec)) return keys;
  std::filesystem::recursive_directory_iterator it(dir, ec), end;
  for (; !ec && it != end; it.increment(ec)) {
    if (!it->is_regular_file()) continue;
    const std::string name = it->path().filename().string();
    if (IsTempName(name) || name[0] == '.') continue;
    std::string rel = it->path().string().substr(root_.size() + 1);
    if (rel.rfind("locks/", 0) == 0) continue;
    keys.push_back(std::move(rel));
  }
  if (ec) return ErrnoStatus(ec.value(), absl::StrCat("list ", dir));
  std::sort(keys.begin(), keys.end());
  return keys;
}

absl::StatusOr<uint64_t> LocalObjectStore::RemoveTempFiles(
    const std::string& prefix, int64_t older_than_unix_ms) {
  if (auto s = ValidateKey(prefix); !s.ok()) return s;
  const std::string dir = PathOf(prefix);
  uint64_t removed = 0;
  std::error_code ec;
  if (!std::filesystem::exists(dir, ec)) return removed;
  std::filesystem::recursive_directory_iterator it(dir, ec), end;
  for (; !ec && it != end; it.increment(ec)) {
    if (!it->is_regular_file() || !IsTempName(it->path().filename().string())) {
      continue;
    }
    struct stat st;
    if (::stat(it->path().c_str(), &st) != 0) continue;  // gone meanwhile
    const int64_t mtime_ms = static_cast<int64_t>(st.st_mtim.tv_sec) * 1000 +
                             st.st_mtim.tv_nsec / 1000000;
    if (mtime_ms > older_than_unix_ms) continue;
    if (::unlink(it->path().c_str()) == 0) ++removed;
  }
  if (ec) return ErrnoStatus(ec.value(), absl::StrCat("list ", dir));
  return removed;
}

namespace {
// Removes the file; true if it was there.
absl::StatusOr<bool> Unlink(const std::string& path) {
  if (::unlink(path.c_str()) == 0) return true;
  if (errno == ENOENT) return false;
  return ErrnoStatus(errno, absl::StrCat("delete ", path));
}

std::string LockKey(const std::string& name) {
  return "locks/" + name + ".lock";
}
}  // namespace

// Durable on return: a deletion reported (a pruned version, a lifted
// protection) must not come back after a power cut.
absl::Status LocalObjectStore::Delete(const std::string& key) {
  if (auto s = ValidateKey(key); !s.ok()) return s;
  const std::string path = PathOf(key);
  auto removed = Unlink(path);
  if (!removed.ok() || !*removed) return removed.status();
  return common::FsyncDirectory(DirOf(path));
}

// A lock file left behind by a power cut is harmless: no fsync.
absl::Status LocalObjectStore::DeleteLock(const std::string& name) {
  const std::string key = LockKey(name);
  if (auto s = ValidateKey(key); !s.ok()) return s;
  return Unlink(PathOf(key)).status();
}

absl::StatusOr<std::unique_ptr<StoreLock>> LocalObjectStore::Lock(
    const std::string& name, LockMode mode, bool wait) {
  const std::string key = LockKey(name);
  if (auto s = ValidateKey(key); !s.ok()) return s;
  if (auto s = MakeDirs(root_, key); !s.ok()) return s;
  const std::string path = PathOf(key);
  common::FileLock::Options options;
  options.mode = mode == LockMode::kShared ? common::FileLock::Mode::kShared
                                           : common::FileLock::Mode::kExclusive;
  options.wait = wait;
  options.create_mode = 0640;
  absl::StatusOr<common::FileLock> lock =
      common::FileLock::Acquire(path, options);
  if (absl::IsUnavailable(lock.status())) {
    return absl::UnavailableError(
        absl::StrCat("vault ", lock.status().message()));
  }
  if (!lock.ok()) return lock.status();
  return std::make_unique<LocalStoreLock>(*std::move(lock));
}

}  // namespace cbtd::receiver
