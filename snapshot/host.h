// The parts of the running system snapshot/ reads or changes that are not
// lvm2 or device-mapper: block device identity, mounts, filesystem freeze,
// hooks. The real implementation is linux_host.cc; tests use fakes/mocks.
//
// Thread-safety: implementations are safe to call from several threads
// (the consistency group's watchdog thaws from its own thread).
#ifndef CBTD_SNAPSHOT_HOST_H_
#define CBTD_SNAPSHOT_HOST_H_

#include <chrono>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"

namespace cbtd::snapshot {

struct BlockDeviceId {
  uint32_t major = 0;
  uint32_t minor = 0;
  uint64_t size_bytes = 0;
};

// A regular file's identity: the filesystem it is on and its inode.
struct ImageFileId {
  uint64_t device = 0;
  uint64_t inode = 0;
  uint64_t size_bytes = 0;
};

// Keeps a block device opened exclusively until destroyed.
class ExclusiveHold {
 public:
  virtual ~ExclusiveHold() = default;
};

class Host {
 public:
  virtual ~Host() = default;

  // stat + BLKGETSIZE64 of `path`. NOT_FOUND if it does not exist,
  // INVALID_ARGUMENT if it is not a block device.
  virtual absl::StatusOr<BlockDeviceId> StatBlockDevice(
      const std::string& path) = 0;

  // stat of a regular file (an image file volume). NOT_FOUND if it does
  // not exist, INVALID_ARGUMENT if it is not a regular file.
  virtual absl::StatusOr<ImageFileId> StatImageFile(const std::string& path) {
    return absl::InvalidArgumentError(path + " is not a block device");
  }

  // A reflink copy (FICLONE) of regular file `from` at new file `to`: a
  // point-in-time copy that shares the blocks, made in constant time.
  // UNIMPLEMENTED if the filesystem cannot share blocks (ext4; another
  // filesystem), ALREADY_EXISTS if `to` exists. Nothing is left at `to` on
  // error.
  virtual absl::Status CloneFile(const std::string& from,
                                 const std::string& to) {
    return absl::UnimplementedError("no reflinks on " + from + " -> " + to);
  }

  // Removes file `path` (an image file's reflink copy). OK if there is
  // none.
  virtual absl::Status RemoveFile(const std::string& path) {
    return absl::UnimplementedError("cannot remove " + path);
  }

  // The names in directory `dir` that start with `prefix`; none if `dir`
  // cannot be read.
  virtual std::vector<std::string> ListDirectory(const std::string& dir,
                                                 const std::string& prefix) {
    (void)dir, (void)prefix;
    return {};
  }

  // Opens block device `path` read-only and exclusively (O_EXCL) for the
  // hold's life: nothing can mount it or stack a device on it meanwhile.
  // FAILED_PRECONDITION, saying so, if it is in use already (mounted, or
  // held by a device-mapper or md device).
  virtual absl::StatusOr<std::unique_ptr<ExclusiveHold>> HoldExclusive(
      const std::string& path) {
    return absl::UnimplementedError("cannot hold " + path);
  }

  // Writes zeros over the first `bytes` (a multiple of 4096) of block
  // device `path`, durably (O_DIRECT, then fsync). Opens it exclusively:
  // FAILED_PRECONDITION if the device is in use (mounted, or held by a
  // device-mapper device), changing nothing.
  virtual absl::Status ZeroStart(const std::string& path, uint64_t bytes) = 0;

  // Mount points of filesystems mounted directly on major:minor (from
  // /proc/self/mountinfo), bind mounts collapsed to one.
  virtual absl::StatusOr<std::vector<std::string>> MountPoints(
      uint32_t major, uint32_t minor) = 0;

  // FIFREEZE / FITHAW on the filesystem mounted at `mount_point`.
  virtual absl::Status Freeze(const std::string& mount_point) = 0;
  virtual absl::Status Thaw(const std::string& mount_point) = 0;

  // Runs `command` with /bin/sh -c, `env` ("NAME=value") added, killed
  // after `timeout`. Error if it exits non-zero or times out; the message
  // names the command and its last stderr line.
  virtual absl::Status RunHook(const std::string& command,
                               const std::vector<std::string>& env,
                               std::chrono::milliseconds timeout) = 0;
};

}  // namespace cbtd::snapshot

#endif  // CBTD_SNAPSHOT_HOST_H_
