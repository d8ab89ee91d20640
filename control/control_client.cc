#include "control/control_client.h"

#include <grpcpp/grpcpp.h>

#include "absl/strings/str_cat.h"
#include "control/proto/control.grpc.pb.h"
#include "transport/grpc_status.h"

namespace cbtd::control {

class ControlClient::Stub {
 public:
  explicit Stub(const std::string& socket_path)
      : stub(control::Control::NewStub(grpc::CreateChannel(
            "unix:" + socket_path, grpc::InsecureChannelCredentials()))) {}
  std::unique_ptr<control::Control::Stub> stub;
};

namespace {

// Every call gets a deadline: a wedged daemon must not hang a script.
// ConsistencyPoint may wait for a job slot, hooks and a freeze.
constexpr auto kCallTimeout = std::chrono::seconds(30);
constexpr auto kPointTimeout = std::chrono::minutes(10);

void SetDeadline(grpc::ClientContext& ctx, std::chrono::seconds timeout) {
  ctx.set_deadline(std::chrono::system_clock::now() + timeout);
}

// transport::FromGrpc, plus a hint naming `socket` when cbtd cannot be
// reached at all.
absl::Status FromGrpc(const grpc::Status& s, const std::string& socket) {
  if (s.ok()) return absl::OkStatus();
  const std::string msg = s.error_message();
  // cbtd itself may answer UNAVAILABLE (e.g. while shutting down); only a
  // failure to reach it at all gets the "is it running" hint.
  const bool no_connection =
      (s.error_code() == grpc::StatusCode::UNAVAILABLE &&
       (msg.find("connect") != std::string::npos ||
        msg.find("No such file") != std::string::npos)) ||
      (s.error_code() == grpc::StatusCode::DEADLINE_EXCEEDED &&
       msg == "Deadline Exceeded");
  if (no_connection) {
    // gRPC reports EACCES on connect as UNAVAILABLE with the errno text.
    if (msg.find("ermission denied") != std::string::npos) {
      return absl::PermissionDeniedError(
          absl::StrCat("cannot use ", socket,
                       ": permission denied; the control socket is "
                       "root-only, run cbtctl as root (e.g. with sudo)"));
    }
    return absl::UnavailableError(absl::StrCat(
        "cbtd does not answer on ", socket, " (", msg,
        "); is it running? 'systemctl status cbtd' shows; --socket "
        "chooses another socket"));
  }
  return transport::FromGrpc(s);
}

}  // namespace

ControlClient::ControlClient(const std::string& socket_path)
    : socket_path_(socket_path), stub_(std::make_unique<Stub>(socket_path)) {}

ControlClient::~ControlClient() = default;

absl::StatusOr<control::GetStatusResponse> ControlClient::GetStatus() {
  grpc::ClientContext ctx;
  SetDeadline(ctx, kCallTimeout);
  control::GetStatusResponse out;
  absl::Status s =
      FromGrpc(stub_->stub->GetStatus(&ctx, control::GetStatusRequest(), &out),
               socket_path_);
  if (!s.ok()) return s;
  return out;
}

absl::StatusOr<control::BackupNowResponse> ControlClient::BackupNow(
    const control::BackupNowRequest& request) {
  grpc::ClientContext ctx;
  SetDeadline(ctx, kCallTimeout);
  control::BackupNowResponse out;
  absl::Status s =
      FromGrpc(stub_->stub->BackupNow(&ctx, request, &out), socket_path_);
  if (!s.ok()) return s;
  return out;
}

absl::StatusOr<control::ConsistencyPointResponse>
ControlClient::ConsistencyPoint(
    const control::ConsistencyPointRequest& request) {
  grpc::ClientContext ctx;
  SetDeadline(ctx, kPointTimeout);
  control::ConsistencyPointResponse out;
  absl::Status s = FromGrpc(stub_->stub->ConsistencyPoint(&ctx, request, &out),
                            socket_path_);
  if (!s.ok()) return s;
  return out;
}

absl::StatusOr<control::ListVolumesResponse> ControlClient::ListVolumes() {
  grpc::ClientContext ctx;
  SetDeadline(ctx, kCallTimeout);
  control::ListVolumesResponse out;
  absl::Status s = FromGrpc(
      stub_->stub->ListVolumes(&ctx, control::ListVolumesRequest(), &out),
      socket_path_);
  if (!s.ok()) return s;
  return out;
}

absl::StatusOr<control::ListRunsResponse> ControlClient::ListRuns(
    const control::ListRunsRequest& request) {
  grpc::ClientContext ctx;
  SetDeadline(ctx, kCallTimeout);
  control::ListRunsResponse out;
  absl::Status s =
      FromGrpc(stub_->stub->ListRuns(&ctx, request, &out), socket_path_);
  if (!s.ok()) return s;
  return out;
}

absl::Status ControlClient::Cancel(int64_t run_id) {
  grpc::ClientContext ctx;
  SetDeadline(ctx, kCallTimeout);
  control::CancelRequest request;
  request.set_run_id(run_id);
  control::CancelResponse out;
  return FromGrpc(stub_->stub->Cancel(&ctx, request, &out), socket_path_);
}

absl::StatusOr<control::ListVersionsResponse> ControlClient::ListVersions(
    const std::string& volume) {
  grpc::ClientContext ctx;
  SetDeadline(ctx, kCallTimeout);
  control::ListVersionsRequest request;
  request.set_volume(volume);
  control::ListVersionsResponse out;
  absl::Status s =
      FromGrpc(stub_->stub->ListVersions(&ctx, request, &out), socket_path_);
  if (!s.ok()) return s;
  return out;
}

absl::StatusOr<control::RestoreResponse> ControlClient::Restore(
    const control::RestoreRequest& request) {
  grpc::ClientContext ctx;
  control::RestoreResponse out;
  absl::Status s =
      FromGrpc(stub_->stub->Restore(&ctx, request, &out), socket_path_);
  if (!s.ok()) return s;
  return out;
}

absl::StatusOr<control::VerifyResponse> ControlClient::Verify(
    const control::VerifyRequest& request) {
  grpc::ClientContext ctx;
  control::VerifyResponse out;
  absl::Status s =
      FromGrpc(stub_->stub->Verify(&ctx, request, &out), socket_path_);
  if (!s.ok()) return s;
  return out;
}

absl::StatusOr<control::ExportInfo> ControlClient::Export(
    const control::ExportRequest& request) {
  grpc::ClientContext ctx;
  // nbdkit may take up to a minute to reach the receiver and start.
  SetDeadline(ctx, std::chrono::seconds(90));
  control::ExportInfo out;
  absl::Status s =
      FromGrpc(stub_->stub->Export(&ctx, request, &out), socket_path_);
  if (!s.ok()) return s;
  return out;
}

absl::StatusOr<control::ListExportsResponse> ControlClient::ListExports() {
  grpc::ClientContext ctx;
  SetDeadline(ctx, kCallTimeout);
  control::ListExportsResponse out;
  absl::Status s = FromGrpc(
      stub_->stub->ListExports(&ctx, control::ListExportsRequest(), &out),
      socket_path_);
  if (!s.ok()) return s;
  return out;
}

absl::Status ControlClient::StopExport(const std::string& name) {
  grpc::ClientContext ctx;
  SetDeadline(ctx, kCallTimeout);
  control::StopExportRequest request;
  request.set_name(name);
  control::StopExportResponse out;
  return FromGrpc(stub_->stub->StopExport(&ctx, request, &out), socket_path_);
}

}  // namespace cbtd::control
