#include "agent/control_service.h"

#include <grpcpp/grpcpp.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>

#include "absl/strings/str_cat.h"
#include "common/fs.h"
#include "control/proto/control.grpc.pb.h"
#include "nbd/exports.h"
#include "nlohmann/json.hpp"
#include "transport/grpc_status.h"

namespace cbtd::agent {
namespace {

namespace pb = ::cbtd::control;
using ::cbtd::transport::ToGrpc;

int64_t Unix(absl::Time t) { return absl::ToUnixSeconds(t); }

void FillRun(const RunRecord& r, const std::optional<RunProgress>& progress,
             pb::Run* out) {
  out->set_id(r.id);
  out->set_volume(r.volume);
  out->set_group(r.group);
  out->set_full(r.full);
  out->set_trigger(r.trigger);
  out->set_started_unix(Unix(r.started_at));
  if (r.ended_at) out->set_ended_unix(Unix(*r.ended_at));
  out->set_result(std::string(RunResultName(r.result)));
  // Live progress only while running: a finished member of a job still
  // going has its recorded step.
  const bool live =
      progress && !progress->step.empty() && r.result == RunResult::kRunning;
  out->set_step(live ? progress->step : r.step);
  out->set_method(r.method);
  out->set_fallback_reason(r.fallback_reason);
  out->set_bytes_read(r.bytes_read);
  out->set_bytes_sent(r.bytes_sent);
  out->set_volume_bytes(r.volume_bytes);
  out->set_base_version(r.base_version);
  out->set_version_id(r.version_id);
  out->set_error(r.error);
  if (progress) {
    out->set_progress_done_bytes(progress->done_bytes);
    out->set_progress_total_bytes(progress->total_bytes);
  }
}

void FillExport(const nbd::ExportRecord& r, pb::ExportInfo* out) {
  out->set_name(r.name);
  out->set_volume(r.volume);
  out->set_version(r.version);
  out->set_host(r.host);
  out->set_uri(r.uri);
  out->set_writable(r.writable);
  out->set_pid(r.pid);
  out->set_owner_uid(r.owner_uid);
  out->set_created_unix(r.created_unix);
  out->set_expires_unix(r.expires_unix);
}

nbd::ExportSpec SpecOf(const pb::ExportRequest& in,
                       const std::string& config_path) {
  nbd::ExportSpec spec;
  spec.name = in.name();
  spec.config_path = config_path;
  spec.volume = in.volume();
  spec.version = in.version();
  spec.host = in.host();
  spec.unix_socket = in.unix_socket();
  spec.tcp_address = in.tcp_address();
  spec.writable = in.writable();
  spec.lifetime =
      std::chrono::seconds(std::max<int64_t>(0, in.lifetime_seconds()));
  if (in.cache_mib() != 0) spec.cache_mib = in.cache_mib();
  spec.owner_uid = in.owner_uid();
  return spec;
}

// The request's change lists as the JSON a changes_file holds, by volume
// (the tracker parses and checks them as hostile input either way).
absl::StatusOr<std::map<std::string, std::string>> ChangeListsJson(
    const google::protobuf::RepeatedPtrField<pb::ChangeList>& lists) {
  std::map<std::string, std::string> out;
  for (const pb::ChangeList& l : lists) {
    nlohmann::json extents = nlohmann::json::array();
    for (const pb::ByteRange& e : l.extents()) {
      extents.push_back({e.offset(), e.length()});
    }
    const nlohmann::json j{{"generation", l.generation()},
                           {"next_generation", l.next_generation()},
                           {"extents", std::move(extents)}};
    if (!out.emplace(l.volume(), j.dump()).second) {
      return absl::InvalidArgumentError(
          absl::StrCat("two change lists for volume '", l.volume(), "'"));
    }
  }
  return out;
}

}  // namespace

class ControlService final : public pb::Control::Service {
 public:
  explicit ControlService(Agent& agent) : agent_(agent) {}

  grpc::Status GetStatus(grpc::ServerContext*, const pb::GetStatusRequest*,
                         pb::GetStatusResponse* out) override {
    const AgentStatus s = agent_.Status();
    out->set_version(CBTD_VERSION);
    out->set_started_unix(Unix(s.started_at));
    out->set_config_path(s.config_path);
    out->set_receiver(s.receiver);
    out->set_running_jobs(s.running_jobs);
    out->set_queued_jobs(s.queued_jobs);
    out->set_volumes(s.volumes);
    out->set_groups(s.groups);
    return grpc::Status::OK;
  }

  grpc::Status BackupNow(grpc::ServerContext*, const pb::BackupNowRequest* in,
                         pb::BackupNowResponse* out) override {
    absl::StatusOr<std::map<std::string, std::string>> lists =
        ChangeListsJson(in->changes());
    if (!lists.ok()) return ToGrpc(lists.status());
    absl::StatusOr<std::vector<int64_t>> ids =
        agent_.BackupNow(in->target(), in->full(), "api", *lists);
    if (!ids.ok()) return ToGrpc(ids.status());
    for (int64_t id : *ids) out->add_run_ids(id);
    return grpc::Status::OK;
  }

  grpc::Status ConsistencyPoint(grpc::ServerContext*,
                                const pb::ConsistencyPointRequest* in,
                                pb::ConsistencyPointResponse* out) override {
    absl::StatusOr<std::map<std::string, std::string>> lists =
        ChangeListsJson(in->changes());
    if (!lists.ok()) return ToGrpc(lists.status());
    absl::StatusOr<ConsistencyPointResult> r = agent_.TakeConsistencyPoint(
        in->target(), in->backup(), in->full(), *lists);
    if (!r.ok()) return ToGrpc(r.status());
    for (const SnapshotRef& s : r->snapshots) {
      pb::Snapshot* snap = out->add_snapshots();
      snap->set_volume(s.volume);
      snap->set_name(s.snapshot_name);
      snap->set_device_path(s.device_path);
    }
    for (int64_t id : r->run_ids) out->add_run_ids(id);
    return grpc::Status::OK;
  }

  grpc::Status ListVolumes(grpc::ServerContext*, const pb::ListVolumesRequest*,
                           pb::ListVolumesResponse* out) override {
    for (const VolumeStatus& v : agent_.ListVolumes()) {
      pb::Volume* p = out->add_volumes();
      p->set_name(v.config.name);
      p->set_path(v.config.path);
      p->set_method(std::string(TrackingMethodName(v.config.method)));
      p->set_group(v.group);
      if (v.config.schedule) p->set_schedule(v.config.schedule->spec());
      p->set_busy(v.busy);
      if (v.tracking) {
        p->set_tracking_method(v.tracking->method);
        p->set_base_snapshot(v.tracking->base_snapshot);
        p->set_base_version(v.tracking->base_version);
        p->set_tracking_updated_unix(Unix(v.tracking->updated_at));
      }
      if (v.last_run) FillRun(*v.last_run, std::nullopt, p->mutable_last_run());
      if (v.next_run) p->set_next_run_unix(Unix(*v.next_run));
    }
    return grpc::Status::OK;
  }

  grpc::Status ListRuns(grpc::ServerContext*, const pb::ListRunsRequest* in,
                        pb::ListRunsResponse* out) override {
    absl::StatusOr<std::vector<RunView>> runs =
        agent_.ListRuns(in->volume(), in->limit(), in->active_only());
    if (!runs.ok()) return ToGrpc(runs.status());
    for (const RunView& r : *runs)
      FillRun(r.record, r.progress, out->add_runs());
    return grpc::Status::OK;
  }

  grpc::Status Cancel(grpc::ServerContext*, const pb::CancelRequest* in,
                      pb::CancelResponse*) override {
    return ToGrpc(agent_.Cancel(in->run_id()));
  }

  grpc::Status ListVersions(grpc::ServerContext*,
                            const pb::ListVersionsRequest* in,
                            pb::ListVersionsResponse* out) override {
    absl::StatusOr<std::vector<VersionView>> versions =
        agent_.ListVersions(in->volume());
    if (!versions.ok()) return ToGrpc(versions.status());
    for (const VersionView& v : *versions) {
      pb::VersionInfo* p = out->add_versions();
      p->set_volume(v.volume);
      p->set_version_id(v.version_id);
      p->set_base_version_id(v.base_version_id);
      p->set_created_unix(v.created_unix_ms / 1000);
      p->set_volume_bytes(v.volume_bytes);
      p->set_root_hash(v.root_hash);
      p->set_group(v.group);
      p->set_group_version_id(v.group_version_id);
    }
    return grpc::Status::OK;
  }

  grpc::Status Restore(grpc::ServerContext*, const pb::RestoreRequest* in,
                       pb::RestoreResponse* out) override {
    RestoreRequest r;
    r.volume = in->volume();
    r.version = in->version();
    r.target_path = in->target();
    r.from_version = in->from_version();
    r.state_path = in->state_file();
    r.verify = in->verify();
    r.in_place = in->in_place();
    absl::StatusOr<RestoreOutcome> done = agent_.Restore(r);
    if (!done.ok()) return ToGrpc(done.status());
    out->set_chunks_written(done->chunks_written);
    out->set_chunks_zeroed(done->chunks_zeroed);
    out->set_chunks_skipped(done->chunks_skipped);
    out->set_bytes_written(done->bytes_written);
    out->set_chunks_verified(done->chunks_verified);
    return grpc::Status::OK;
  }

  grpc::Status Verify(grpc::ServerContext*, const pb::VerifyRequest* in,
                      pb::VerifyResponse* out) override {
    absl::StatusOr<VerifyOutcome> done =
        agent_.Verify(in->volume(), in->version());
    if (!done.ok()) return ToGrpc(done.status());
    out->set_chunks_checked(done->chunks_checked);
    for (const std::string& p : done->problems) out->add_problems(p);
    return grpc::Status::OK;
  }

  // Exports read cbtd's own config, so they see the receiver and key it
  // uses; their records are in /run/cbtd/exports (nbd/exports.h), where
  // `cbtctl exports` finds them without cbtd too.
  grpc::Status Export(grpc::ServerContext*, const pb::ExportRequest* in,
                      pb::ExportInfo* out) override {
    nbd::ExportPaths paths;
    paths.plugin = nbd::DefaultPluginPath();
    auto r = nbd::StartExport(paths, SpecOf(*in, agent_.Status().config_path));
    if (!r.ok()) return ToGrpc(r.status());
    FillExport(*r, out);
    return grpc::Status::OK;
  }

  grpc::Status ListExports(grpc::ServerContext*, const pb::ListExportsRequest*,
                           pb::ListExportsResponse* out) override {
    auto list = nbd::ListExports(nbd::kDefaultRunDir);
    if (!list.ok()) return ToGrpc(list.status());
    for (const nbd::ExportRecord& r : *list) FillExport(r, out->add_exports());
    return grpc::Status::OK;
  }

  grpc::Status StopExport(grpc::ServerContext*, const pb::StopExportRequest* in,
                          pb::StopExportResponse*) override {
    return ToGrpc(nbd::StopExport(nbd::kDefaultRunDir, in->name()));
  }

 private:
  Agent& agent_;
};

absl::StatusOr<std::unique_ptr<ControlServer>> ControlServer::Start(
    const std::string& socket_path, Agent& agent) {
  // A socket file left by a killed cbtd would make bind fail; anything
  // else at that path is not ours to remove.
  struct stat st {};
  if (::lstat(socket_path.c_str(), &st) == 0) {
    if (!S_ISSOCK(st.st_mode)) {
      return absl::FailedPreconditionError(
          absl::StrCat(socket_path,
                       " exists and is not a socket; remove it or "
                       "set [agent] socket elsewhere"));
    }
    if (::unlink(socket_path.c_str()) != 0) {
      return common::ErrnoStatus(errno,
                                 absl::StrCat("unlink stale ", socket_path));
    }
  }
  std::unique_ptr<ControlServer> server(new ControlServer());
  server->socket_path_ = socket_path;
  server->service_ = std::make_unique<ControlService>(agent);
  grpc::ServerBuilder builder;
  int bound = 0;
  builder.AddListeningPort("unix:" + socket_path,
                           grpc::InsecureServerCredentials(), &bound);
  builder.RegisterService(server->service_.get());
  server->server_ = builder.BuildAndStart();
  if (server->server_ == nullptr || bound == 0) {
    return absl::UnavailableError(absl::StrCat(
        "cannot listen on ", socket_path,
        "; check that its directory exists (systemd-tmpfiles creates "
        "/run/cbtd) and that no other cbtd is running"));
  }
  if (::chmod(socket_path.c_str(), 0600) != 0) {
    const int err = errno;
    server->Stop();
    return common::ErrnoStatus(err, absl::StrCat("chmod 0600 ", socket_path));
  }
  return server;
}

ControlServer::~ControlServer() { Stop(); }

void ControlServer::Stop() {
  if (server_ == nullptr) return;
  server_->Shutdown(std::chrono::system_clock::now() + std::chrono::seconds(5));
  server_->Wait();
  server_.reset();
  ::unlink(socket_path_.c_str());
}

}  // namespace cbtd::agent
