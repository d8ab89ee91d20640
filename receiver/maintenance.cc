#include "receiver/maintenance.h"

#include <algorithm>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "receiver/verify.h"

namespace cbtd::receiver {
namespace {

std::string At(absl::Time t) {
  return absl::FormatTime("%H:%M:%SZ", t, absl::UTCTimeZone());
}

std::string Ms(absl::Duration d) {
  return absl::StrCat(absl::ToInt64Milliseconds(d));
}

}  // namespace

MaintenanceScheduler::MaintenanceScheduler(Vault& vault,
                                           MaintenanceOptions options,
                                           ServiceMetrics& metrics,
                                           AuditSink audit)
    : vault_(vault),
      options_(std::move(options)),
      metrics_(metrics),
      audit_(std::move(audit)) {}

MaintenanceScheduler::~MaintenanceScheduler() { Stop(); }

void MaintenanceScheduler::Start() {
  if (options_.gc_every <= absl::ZeroDuration() &&
      options_.verify_every <= absl::ZeroDuration()) {
    return;
  }
  thread_ = std::thread([this] { Loop(); });
}

void MaintenanceScheduler::RequestStop() {
  {
    std::lock_guard lock(mu_);
    stop_ = true;
  }
  wake_.notify_all();
}

bool MaintenanceScheduler::busy() const {
  std::lock_guard lock(mu_);
  return busy_;
}

void MaintenanceScheduler::Stop() {
  RequestStop();
  if (thread_.joinable()) thread_.join();
}

bool MaintenanceScheduler::Begin() {
  std::lock_guard lock(mu_);
  if (stop_) return false;
  busy_ = true;
  return true;
}

void MaintenanceScheduler::End() {
  std::lock_guard lock(mu_);
  busy_ = false;
}

std::string MaintenanceScheduler::last_status() const {
  std::lock_guard lock(mu_);
  if (gc_status_.empty() || verify_status_.empty()) {
    return gc_status_ + verify_status_;
  }
  return absl::StrCat(gc_status_, ", ", verify_status_);
}

void MaintenanceScheduler::Loop() {
  const absl::Time start = absl::Now();
  const bool gc = options_.gc_every > absl::ZeroDuration();
  const bool verify = options_.verify_every > absl::ZeroDuration();
  absl::Time next_gc = gc ? start + options_.gc_every : absl::InfiniteFuture();
  absl::Time next_verify =
      verify ? start + options_.verify_every : absl::InfiniteFuture();
  for (;;) {
    const absl::Time due = std::min(next_gc, next_verify);
    {
      std::unique_lock lock(mu_);
      wake_.wait_for(lock,
                     absl::ToChronoMilliseconds(
                         std::max(due - absl::Now(), absl::ZeroDuration())),
                     [this] { return stop_; });
      if (stop_) return;
    }
    const absl::Time now = absl::Now();
    // The next run is one interval after this one ends, so a run longer
    // than its interval never queues another behind it.
    if (now >= next_gc) {
      if (!Begin()) return;
      RunGc();
      End();
      next_gc = absl::Now() + options_.gc_every;
    }
    if (now >= next_verify) {
      if (!Begin()) return;
      RunVerify();
      End();
      next_verify = absl::Now() + options_.verify_every;
    }
  }
}

void MaintenanceScheduler::RunGc() {
  GcOptions o = options_.gc;
  o.wait = false;
  const absl::Time start = absl::Now();
  absl::StatusOr<GcResult> r = CollectGarbage(vault_, o);
  const absl::Time end = absl::Now();
  const AuditFields what = {{"trigger", "schedule"}};
  std::string outcome;
  if (absl::IsUnavailable(r.status())) {
    // Another GC (the CLI's), or on a format-1 vault a receive: not a
    // failure, the next interval tries again.
    outcome = "skipped";
    audit_(FormatAuditLine("gc", what, outcome,
                           {{"duration_ms", Ms(end - start)},
                            {"reason", std::string(r.status().message())}}),
           true);
  } else {
    metrics_.Finished(Operation::kGc, r.status(), end - start);
    if (r.ok()) {
      outcome = "ok";
      metrics_.GcReclaimed(r->bytes_reclaimed);
      const bool packs = vault_.format() != 1;
      audit_(
          FormatAuditLine(
              "gc", what, outcome,
              {{"duration_ms", Ms(end - start)},
               {"indexes", absl::StrCat(r->indexes)},
               {"referenced_chunks", absl::StrCat(r->referenced)},
               {packs ? "packs_deleted" : "chunks_deleted",
                absl::StrCat(packs ? r->packs_deleted + r->orphan_packs_removed
                                   : r->chunks_deleted)},
               {"packs_repacked", absl::StrCat(r->packs_repacked)},
               {"bytes_reclaimed", absl::StrCat(r->bytes_reclaimed)}}),
          true);
    } else {
      outcome = "error";
      audit_(FormatAuditLine("gc", what, outcome,
                             {{"duration_ms", Ms(end - start)},
                              {"error", std::string(r.status().message())},
                              {"action",
                               "nothing was deleted past the failure; see the "
                               "error, then `cbt-receiver gc` by hand"}}),
             false);
    }
  }
  std::lock_guard lock(mu_);
  gc_status_ = absl::StrCat("gc ", outcome, " at ", At(end));
}

void MaintenanceScheduler::RunVerify() {
  VerifyScope scope;
  scope.threads = std::max(1, options_.verify_threads);
  const absl::Time start = absl::Now();
  absl::StatusOr<VerifyReport> r = VerifyVault(vault_, scope);
  const absl::Time end = absl::Now();
  const AuditFields what = {{"trigger", "schedule"}};
  std::string outcome;
  if (!r.ok()) {
    outcome = "error";
    metrics_.Finished(Operation::kVerify, r.status(), end - start);
    audit_(FormatAuditLine("verify", what, outcome,
                           {{"duration_ms", Ms(end - start)},
                            {"error", std::string(r.status().message())}}),
           false);
  } else {
    metrics_.VerifyDamaged(r->damaged.size());
    AuditFields details = {
        {"duration_ms", Ms(end - start)},
        {"versions", absl::StrCat(r->versions_checked)},
        {"chunks", absl::StrCat(r->chunks_checked)},
        {"checksum_only_chunks", absl::StrCat(r->chunks_checksum_only)}};
    if (r->ok()) {
      outcome = "ok";
      metrics_.Finished(Operation::kVerify, absl::OkStatus(), end - start);
    } else {
      outcome = "damaged";
      metrics_.Finished(Operation::kVerify,
                        absl::DataLossError(absl::StrCat(
                            r->damaged.size(), " damaged version(s)")),
                        end - start);
      std::string names;
      for (const DamagedVersion& d : r->damaged) {
        absl::StrAppend(&names, names.empty() ? "" : ",", d.volume.host, "/",
                        d.volume.volume, "@", d.version);
      }
      details.push_back({"damaged", absl::StrCat(r->damaged.size())});
      details.push_back({"damaged_versions", names});
      details.push_back({"first_problem", r->damaged.front().reason});
      details.push_back(
          {"action",
           "run `cbt-receiver verify` on the vault: it names every "
           "damaged or missing chunk (docs/operations.md)"});
    }
    audit_(FormatAuditLine("verify", what, outcome, details), r->ok());
  }
  std::lock_guard lock(mu_);
  verify_status_ = absl::StrCat("verify ", outcome, " at ", At(end));
}

}  // namespace cbtd::receiver
