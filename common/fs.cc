#include "common/fs.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

#include "absl/strings/str_cat.h"
#include "common/unique_fd.h"

namespace cbtd::common {
namespace {

std::string DirName(const std::string& path) {
  const size_t slash = path.rfind('/');
  if (slash == std::string::npos) return ".";
  if (slash == 0) return "/";
  return path.substr(0, slash);
}

}  // namespace

absl::Status ErrnoStatus(int err, std::string_view what) {
  std::string msg = absl::StrCat(std::string(what), ": ", std::strerror(err));
  switch (err) {
    case ENOENT:
      return absl::NotFoundError(msg);
    case ENOSPC:
    case EDQUOT:
      return absl::ResourceExhaustedError(msg);
    case EACCES:
    case EPERM:
      return absl::PermissionDeniedError(msg);
    case EAGAIN:
    case EINTR:
    case EBUSY:
      return absl::UnavailableError(msg);
    default:
      return absl::InternalError(msg);
  }
}

absl::Status FsyncDirectory(const std::string& dir) {
  UniqueFd fd(::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  if (!fd) return ErrnoStatus(errno, absl::StrCat("open ", dir));
  if (::fsync(fd.get()) != 0) {
    return ErrnoStatus(errno, absl::StrCat("fsync ", dir));
  }
  return absl::OkStatus();
}

absl::Status AtomicWriteFile(const std::string& path,
                             std::string_view contents) {
  std::string tmp = path + ".tmp.XXXXXX";
  UniqueFd fd(::mkstemp(tmp.data()));
  if (!fd) {
    return ErrnoStatus(errno, absl::StrCat("create temporary file ", tmp));
  }
  auto fail = [&](int err, std::string_view what) {
    ::unlink(tmp.c_str());
    return ErrnoStatus(err, absl::StrCat(std::string(what), " ", tmp));
  };
  const char* p = contents.data();
  size_t left = contents.size();
  while (left > 0) {
    const ssize_t n = ::write(fd.get(), p, left);
    if (n < 0) {
      if (errno == EINTR) continue;
      return fail(errno, "write");
    }
    p += n;
    left -= static_cast<size_t>(n);
  }
  if (::fchmod(fd.get(), 0644) != 0) return fail(errno, "chmod");
  if (::fsync(fd.get()) != 0) return fail(errno, "fsync");
  if (absl::Status st = fd.Close(tmp); !st.ok()) {
    ::unlink(tmp.c_str());
    return st;
  }
  if (::rename(tmp.c_str(), path.c_str()) != 0) {
    const int err = errno;
    ::unlink(tmp.c_str());
    return ErrnoStatus(err, absl::StrCat("rename ", tmp, " to ", path));
  }
  return FsyncDirectory(DirName(path));
}

absl::StatusOr<std::string> ReadFile(const std::string& path) {
  UniqueFd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
  if (!fd) return ErrnoStatus(errno, absl::StrCat("open ", path));
  std::string out;
  char buf[1 << 16];
  for (;;) {
    const ssize_t n = ::read(fd.get(), buf, sizeof(buf));
    if (n < 0) {
      if (errno == EINTR) continue;
      return ErrnoStatus(errno, absl::StrCat("read ", path));
    }
    if (n == 0) break;
    out.append(buf, static_cast<size_t>(n));
  }
  return out;
}

bool SameFileOrDevice(const std::string& a, const std::string& b) {
  struct stat sa {};
  struct stat sb {};
  if (::stat(a.c_str(), &sa) != 0 || ::stat(b.c_str(), &sb) != 0) {
    return false;
  }
  if (S_ISBLK(sa.st_mode) || S_ISBLK(sb.st_mode)) {
    return S_ISBLK(sa.st_mode) && S_ISBLK(sb.st_mode) &&
           sa.st_rdev == sb.st_rdev;
  }
  return sa.st_dev == sb.st_dev && sa.st_ino == sb.st_ino;
}

absl::StatusOr<std::vector<ByteRange>> FileDataRanges(const std::string& path) {
  UniqueFd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
  if (!fd) return ErrnoStatus(errno, absl::StrCat("open ", path));
  struct stat st {};
  if (::fstat(fd.get(), &st) != 0) {
    return ErrnoStatus(errno, absl::StrCat("stat ", path));
  }
  if (!S_ISREG(st.st_mode)) {
    return absl::InvalidArgumentError(
        absl::StrCat(path, " is not a regular file: it has no holes to skip"));
  }
  const auto size = static_cast<off_t>(st.st_size);
  std::vector<ByteRange> out;
  for (off_t at = 0; at < size;) {
    const off_t data = ::lseek(fd.get(), at, SEEK_DATA);
    if (data < 0 && errno == ENXIO) break;  // only a hole from here on
    if (data < 0) return ErrnoStatus(errno, absl::StrCat("SEEK_DATA ", path));
    const off_t hole = ::lseek(fd.get(), data, SEEK_HOLE);
    if (hole < 0) return ErrnoStatus(errno, absl::StrCat("SEEK_HOLE ", path));
    const off_t end = std::min(hole, size);
    if (end <= data) break;  // the file shrank meanwhile
    out.push_back(
        {static_cast<uint64_t>(data), static_cast<uint64_t>(end - data)});
    at = end;
  }
  return out;
}

}  // namespace cbtd::common
