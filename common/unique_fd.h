// UniqueFd: the one owner of a file descriptor in cbtd. Move-only; the
// destructor and reset() close it and ignore the result, which is right for
// descriptors that were only read from, or whose writes were already made
// durable with fsync. A writer that must see close's error (the last
// chance NFS and some FUSE file systems have to report a failed write)
// calls Close() instead.
//
// Thread-safety: like an int; one owner at a time.
#ifndef CBTD_COMMON_UNIQUE_FD_H_
#define CBTD_COMMON_UNIQUE_FD_H_

#include <string_view>

#include "absl/status/status.h"

namespace cbtd::common {

class UniqueFd {
 public:
  UniqueFd() = default;
  // Takes ownership of `fd`; a negative value (a failed open) holds nothing.
  explicit UniqueFd(int fd) : fd_(fd < 0 ? -1 : fd) {}
  ~UniqueFd() { reset(); }

  UniqueFd(UniqueFd&& other) noexcept : fd_(other.release()) {}
  UniqueFd& operator=(UniqueFd&& other) noexcept {
    if (this != &other) reset(other.release());
    return *this;
  }
  UniqueFd(const UniqueFd&) = delete;
  UniqueFd& operator=(const UniqueFd&) = delete;

  // The descriptor, or -1.
  int get() const { return fd_; }
  bool valid() const { return fd_ >= 0; }
  explicit operator bool() const { return valid(); }

  // Gives up ownership without closing; returns the descriptor (or -1).
  int release() {
    const int fd = fd_;
    fd_ = -1;
    return fd;
  }

  // Closes the current descriptor (ignoring close's result) and takes `fd`.
  void reset(int fd = -1);

  // Closes the descriptor and reports close(2)'s error as
  // "close <what>: <strerror>" (see ErrnoStatus). The descriptor is gone
  // afterwards whatever the result (Linux never re-closes). OK when empty.
  absl::Status Close(std::string_view what);

 private:
  int fd_ = -1;
};

}  // namespace cbtd::common

#endif  // CBTD_COMMON_UNIQUE_FD_H_
