// cbtctl's side of the control API: one call per RPC, errors as
// absl::Status. The gRPC stub stays in the .cc so cbtctl's command files
// compile without gRPC headers.
//
// Errors: UNAVAILABLE when cbtd is not running or the socket is missing,
// PERMISSION_DENIED when the caller may not use the socket (not root);
// otherwise whatever cbtd answered. Messages say what to do.
//
// Thread-safety: calls may be made from several threads.
#ifndef CBTD_CONTROL_CONTROL_CLIENT_H_
#define CBTD_CONTROL_CONTROL_CLIENT_H_

#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "control/proto/control.pb.h"

namespace cbtd::control {

inline constexpr char kDefaultSocketPath[] = "/run/cbtd/cbtd.sock";

class ControlClient {
 public:
  // Does not connect yet; the first call does.
  explicit ControlClient(const std::string& socket_path);
  ~ControlClient();
  ControlClient(const ControlClient&) = delete;
  ControlClient& operator=(const ControlClient&) = delete;

  absl::StatusOr<control::GetStatusResponse> GetStatus();
  absl::StatusOr<control::BackupNowResponse> BackupNow(
      const control::BackupNowRequest& request);
  absl::StatusOr<control::ConsistencyPointResponse> ConsistencyPoint(
      const control::ConsistencyPointRequest& request);
  absl::StatusOr<control::ListVolumesResponse> ListVolumes();
  absl::StatusOr<control::ListRunsResponse> ListRuns(
      const control::ListRunsRequest& request);
  absl::Status Cancel(int64_t run_id);
  absl::StatusOr<control::ListVersionsResponse> ListVersions(
      const std::string& volume);
  // No deadline: a restore takes as long as the volume needs.
  absl::StatusOr<control::RestoreResponse> Restore(
      const control::RestoreRequest& request);
  absl::StatusOr<control::VerifyResponse> Verify(
      const control::VerifyRequest& request);
  // Returns once the export serves (nbdkit fetched the version's index).
  absl::StatusOr<control::ExportInfo> Export(
      const control::ExportRequest& request);
  absl::StatusOr<control::ListExportsResponse> ListExports();
  absl::Status StopExport(const std::string& name);

 private:
  class Stub;
  std::string socket_path_;
  std::unique_ptr<Stub> stub_;
};

}  // namespace cbtd::control

#endif  // CBTD_CONTROL_CONTROL_CLIENT_H_
