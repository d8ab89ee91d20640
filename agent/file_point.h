// Consistency points for volumes with no snapshot engine below them (issue
// 16): an image file is captured by a reflink copy next to it
// ("DIR/.NAME.cbtd-TIMESTAMP", FICLONE: constant time, blocks shared,
// removed when the point goes away), if its filesystem makes them (XFS
// with reflink, btrfs); with `snapshot = none` a plain block device or an
// image file is read live. A live block device is held open with O_EXCL
// for the point's life: nothing can mount it or stack a device on it
// while it is read, and one that is mounted or held already is refused.
// These volumes are tracked by hash (or an external list), so a run never
// keeps the copy as a base; Keep() (the hypervisor's "consistency point
// only") leaves it to the caller, and the next start removes it.
//
// Every file and device operation goes through snapshot::Host.
//
// Thread-safety: the functions are reentrant; a point is used by one run
// and must not outlive the Host it was taken with.
#ifndef CBTD_AGENT_FILE_POINT_H_
#define CBTD_AGENT_FILE_POINT_H_

#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "agent/backup_ports.h"
#include "snapshot/host.h"
#include "snapshot/volume.h"

namespace cbtd::agent {

// True for the volume kinds this file handles.
bool IsFileOrRawVolume(const snapshot::VolumeInfo& info);

// The point of a single-volume request for `info` (kBlockDevice or
// kImageFile): the reflink copy, or the live hold. FAILED_PRECONDITION,
// naming the volume and the setting, for a group (these volumes share no
// instant with others, and groups' hooks are not run for them), a block
// device without `snapshot = none`, an image file whose filesystem makes
// no reflinks without it, or a live block device that is in use.
absl::StatusOr<std::unique_ptr<ConsistencyPoint>> TakeFileOrRawPoint(
    snapshot::Host& host, const ConsistencyRequest& request,
    const snapshot::VolumeInfo& info, absl::Time now);

// Removes the reflink copies of `image` a killed cbtd left behind; one
// line per removed file.
std::vector<std::string> RemoveStaleClones(snapshot::Host& host,
                                           const std::string& image);

}  // namespace cbtd::agent

#endif  // CBTD_AGENT_FILE_POINT_H_
