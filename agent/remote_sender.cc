#include "agent/remote_sender.h"

#include <chrono>
#include <ctime>
#include <thread>

#include "absl/strings/str_cat.h"
#include "common/block_reader.h"
#include "common/fs.h"
#include "common/host_name.h"
#include "transport/stream_producer.h"
#include "transport/tls_identity.h"

namespace cbtd::agent {
namespace {

std::string NewVersionId() {
  const auto now = std::chrono::system_clock::now();
  const std::time_t secs = std::chrono::system_clock::to_time_t(now);
  const auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(
                      now.time_since_epoch())
                      .count() %
                  1000;
  std::tm tm;
  gmtime_r(&secs, &tm);
  char buf[40];
  std::strftime(buf, sizeof(buf), "%Y%m%dT%H%M%S", &tm);
  char out[48];
  std::snprintf(out, sizeof(out), "%s.%03dZ", buf, static_cast<int>(ms));
  return out;
}

// Passes records on, failing with CANCELLED once the run is cancelled.
class CancellableSink : public transport::RecordSink {
 public:
  CancellableSink(transport::RecordSink& inner, const RunControl& control)
      : inner_(inner), control_(control) {}
  absl::Status Put(const stream::Record& record) override {
    if (control_.cancelled()) {
      return absl::CancelledError("cancelled while sending");
    }
    return inner_.Put(record);
  }
  absl::Status Finish() override {
    if (control_.cancelled()) {
      return absl::CancelledError("cancelled before the commit");
    }
    return inner_.Finish();
  }

 private:
  transport::RecordSink& inner_;
  const RunControl& control_;
};

}  // namespace

absl::StatusOr<ReceiverEndpoint> ResolveReceiver(const ReceiverConfig& r) {
  if (r.address.empty()) {
    return absl::FailedPreconditionError(
        "no [receiver] address in the config; backups have nowhere to go");
  }
  ReceiverEndpoint e;
  e.options.target = r.address;
  if (r.address.starts_with("unix:")) {
    e.options.insecure = true;
    e.identity = common::ShortHostName();
    e.options.insecure_identity = e.identity;
    return e;
  }
  for (auto [key, file, pem] :
       {std::tuple{"ca_file", &r.ca_file, &e.options.ca_pem},
        std::tuple{"cert_file", &r.cert_file, &e.options.cert_pem},
        std::tuple{"key_file", &r.key_file, &e.options.key_pem}}) {
    if (file->empty()) {
      return absl::FailedPreconditionError(absl::StrCat(
          "[receiver] ", key, " is needed for a TLS receiver at ", r.address));
    }
    absl::StatusOr<std::string> bytes = common::ReadFile(*file);
    if (!bytes.ok()) {
      return absl::FailedPreconditionError(absl::StrCat(
          "[receiver] ", key, ": ", std::string(bytes.status().message())));
    }
    *pem = *std::move(bytes);
  }
  absl::StatusOr<std::string> cn =
      transport::CertificateCommonName(e.options.cert_pem);
  if (!cn.ok()) return cn.status();
  e.identity = *cn;
  return e;
}

absl::StatusOr<SendResult> RemoteSender::SendAndCommit(
    const SendRequest& request, RunControl& control) {
  if (!endpoint_.ok()) return endpoint_.status();
  absl::StatusOr<std::optional<transport::TenantKey>> key = keys_.ForBackup();
  if (!key.ok()) return key.status();
  const VolumeConfig& volume = *request.volume;
  const ChangedSet& changes = *request.changes;
  transport::ClientOptions co = endpoint_->options;
  co.bwlimit_bytes_per_sec = request.bandwidth_limit_bytes_per_sec;
  // Every byte the run will read: for a full the whole volume less what
  // is known unallocated (ChangeTracker), which is sent without a read.
  const uint64_t total = changes.extents.TotalBytes();
  co.on_progress = [&control, total](const transport::SendProgress& p) {
    control.SetBytes(p.bytes_read, total);
  };
  absl::StatusOr<std::unique_ptr<transport::RemoteClient>> client =
      transport::RemoteClient::Create(co);
  if (!client.ok()) return client.status();

  // The base is streamed alongside the chunks, once per attempt, so the
  // sender's memory does not grow with the volume (stream_producer.h).
  const bool incremental = !changes.full && !request.base_version.empty();
  auto open_base =
      [&]() -> absl::StatusOr<std::unique_ptr<transport::IndexEntrySource>> {
    if (!incremental) return nullptr;
    auto idx = (*client)->OpenIndex(endpoint_->identity, volume.name,
                                    request.base_version);
    if (absl::IsNotFound(idx.status())) {
      return absl::NotFoundError(absl::StrCat(
          "the receiver no longer holds base version ", request.base_version,
          " of ", volume.name, " (", std::string(idx.status().message()), ")"));
    }
    if (!idx.ok()) return idx.status();
    if (absl::Status st = CheckChainKey(volume.name, (*idx)->metadata(), *key,
                                        keys_.config());
        !st.ok()) {
      return st;
    }
    return idx;
  };
  absl::StatusOr<std::unique_ptr<transport::IndexEntrySource>> base =
      open_base();
  if (!base.ok()) return base.status();
  absl::StatusOr<std::unique_ptr<common::BlockReader>> device =
      common::OpenBlockReader(request.snapshot.device_path);
  if (!device.ok()) return device.status();

  transport::ProducerOptions opts;
  opts.host = endpoint_->identity;
  opts.volume = volume.name;
  opts.chunk_size_bytes = static_cast<uint32_t>(volume.chunk_bytes);
  opts.full = changes.full;
  opts.allow_resize = true;  // a grown LV sends its new tail
  opts.key = *std::move(key);
  opts.group = request.group;
  opts.group_version_id = request.group_version_id;
  opts.created_unix_ms = request.created_unix_ms;
  cbt::ExtentSet everything;
  everything.Add(0, (*device)->SizeBytes());
  const cbt::ExtentSet& changed = changes.full ? everything : changes.extents;

  auto delay = std::chrono::seconds(1);
  for (int attempt = 0;; ++attempt) {
    if (attempt > 0) {
      base = open_base();
      if (!base.ok()) return base.status();
    }
    opts.version_id = NewVersionId();
    std::unique_ptr<transport::RemoteSink> sink = (*client)->NewSink();
    CancellableSink guarded(*sink, control);
    absl::StatusOr<transport::ProduceResult> produced =
        transport::ProduceStream(**device, changed, changes.zeroed, base->get(),
                                 opts, guarded);
    if (produced.ok() && sink->committed().has_value()) {
      // Read: every chunk taken off the snapshot (for the hash method the
      // whole volume), not only the chunks that differed and were sent.
      return SendResult{sink->committed()->version_id,
                        sink->committed()->root_hash.ToHex(),
                        produced->bytes_read, sink->progress().bytes_sent};
    }
    absl::Status s = produced.ok()
                         ? absl::InternalError("the receiver did not commit")
                         : produced.status();
    if (control.cancelled()) {
      return absl::CancelledError("cancelled while sending");
    }
    // A lost session (receiver restarted) is worth a new attempt: chunks
    // already stored are skipped by the dedup handshake.
    if (!absl::IsUnavailable(s) || attempt >= max_restarts_) return s;
    std::this_thread::sleep_for(delay);
    delay = std::min(delay * 2, std::chrono::seconds(30));
  }
}

absl::Status RemoteSender::CommitGroup(const GroupPoint& point) {
  if (!endpoint_.ok()) return endpoint_.status();
  transport::GroupCommit commit;
  commit.group = point.group;
  commit.group_version_id = point.group_version_id;
  commit.created_unix_ms = point.created_unix_ms;
  for (const GroupPoint::Member& m : point.members) {
    absl::StatusOr<transport::ChunkHash> root =
        transport::ChunkHash::FromHex(m.root_hash);
    if (!root.ok()) return root.status();
    commit.members.push_back({m.volume, m.version_id, *root});
  }
  absl::StatusOr<std::unique_ptr<transport::RemoteClient>> client =
      transport::RemoteClient::Create(endpoint_->options);
  if (!client.ok()) return client.status();
  return (*client)->CommitGroup(commit);
}

}  // namespace cbtd::agent
