#include "agent/remote_vault.h"

#include "absl/strings/str_cat.h"
#include "restore/remote_restore.h"
#include "restore/restore.h"

namespace cbtd::agent {

absl::StatusOr<std::unique_ptr<transport::RemoteClient>> RemoteVault::Client() {
  if (!endpoint_.ok()) return endpoint_.status();
  return transport::RemoteClient::Create(endpoint_->options);
}

absl::StatusOr<std::vector<VersionView>> RemoteVault::ListVersions(
    const std::string& volume) {
  auto client = Client();
  if (!client.ok()) return client.status();
  auto versions = (*client)->ListVersions(endpoint_->identity, volume);
  if (!versions.ok()) return versions.status();
  std::vector<VersionView> out;
  for (const transport::VersionSummary& v : *versions) {
    out.push_back(VersionView{
        v.volume_id, v.version_id, v.base_version_id, v.created_unix_ms,
        v.volume_size_bytes, v.root_hash.ToHex(), v.group, v.group_version_id});
  }
  return out;
}

absl::StatusOr<RestoreOutcome> RemoteVault::Restore(
    const RestoreRequest& request) {
  auto client = Client();
  if (!client.ok()) return client.status();
  // The key first: a key file that can't be read fails before the target
  // is created.
  auto key = keys_.ForRestore();
  if (!key.ok()) return key.status();
  auto target = restore::OpenRestoreTarget(request.target_path);
  if (!target.ok()) return target.status();
  restore::RestoreOptions options;
  options.from_version = request.from_version;
  options.state_path = request.state_path;
  options.verify = request.verify;
  options.compare_target = request.in_place;
  options.progress = request.progress;
  const bool have_key = key->has_value();
  options.key = *std::move(key);
  auto stats = restore::RestoreRemoteVersion(**client, endpoint_->identity,
                                             request.volume, request.version,
                                             **target, options);
  if (!have_key && absl::IsFailedPrecondition(stats.status())) {
    return absl::FailedPreconditionError(absl::StrCat(
        std::string(stats.status().message()), " (cbtd's key file ",
        keys_.config().key_file,
        " does not exist: cbtctl key import the key's recovery text)"));
  }
  if (!stats.ok()) return stats.status();
  return RestoreOutcome{stats->chunks_written, stats->chunks_zeroed,
                        stats->chunks_skipped, stats->bytes_written,
                        stats->chunks_verified};
}

absl::StatusOr<VerifyOutcome> RemoteVault::Verify(const std::string& volume,
                                                  const std::string& version) {
  auto client = Client();
  if (!client.ok()) return client.status();
  auto key = keys_.ForRestore();
  if (!key.ok()) return key.status();
  auto report = restore::VerifyRemoteVersion(**client, endpoint_->identity,
                                             volume, version, *key);
  if (!report.ok()) return report.status();
  VerifyOutcome out;
  out.chunks_checked = report->chunks_checked;
  for (const restore::DamagedChunk& d : report->damaged) {
    out.problems.push_back(
        absl::StrCat("chunk ", d.chunk_index, " (", d.hash.ToHex(), ") ",
                     d.missing ? "missing" : "damaged", ": ", d.reason));
  }
  return out;
}

namespace {

transport::PruneRule RuleOf(const RetentionPolicy& policy) {
  transport::PruneRule rule;
  rule.keep_last = policy.keep_last;
  rule.keep_hourly = policy.keep_hourly;
  rule.keep_daily = policy.keep_daily;
  rule.keep_weekly = policy.keep_weekly;
  rule.keep_monthly = policy.keep_monthly;
  return rule;
}

}  // namespace

absl::Status RemoteVault::Apply(const std::string& volume,
                                const RetentionPolicy& policy) {
  auto client = Client();
  if (!client.ok()) return client.status();
  absl::Status s = (*client)
                       ->Prune(volume, RuleOf(policy), /*dry_run=*/false,
                               transport::PruneScope{"", /*alone=*/true})
                       .status();
  // Nothing of the volume's own yet (all its versions are a group's).
  return absl::IsNotFound(s) ? absl::OkStatus() : s;
}

absl::Status RemoteVault::ApplyGroup(const std::string& group,
                                     const RetentionPolicy& policy) {
  auto client = Client();
  if (!client.ok()) return client.status();
  return (*client)
      ->Prune("", RuleOf(policy), /*dry_run=*/false,
              transport::PruneScope{group, false})
      .status();
}

}  // namespace cbtd::agent
