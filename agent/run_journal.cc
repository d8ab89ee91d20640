#include "agent/run_journal.h"

#include "absl/strings/str_cat.h"

namespace cbtd::agent {
namespace {

void Add(std::vector<std::string>& fields, const char* key,
         const std::string& value) {
  if (!value.empty()) fields.push_back(absl::StrCat(key, "=", value));
}

std::string Mib(uint64_t bytes) {
  return absl::StrCat(bytes / (1 << 20), ".", (bytes % (1 << 20)) * 10 >> 20,
                      " MiB");
}

std::string EndMessage(const RunRecord& run) {
  std::string m = absl::StrCat("run ", run.id, " of ", run.volume, " ",
                               std::string(RunResultName(run.result)));
  const bool rollback = run.trigger == kTriggerRollback;
  if (run.result == RunResult::kSucceeded &&
      (rollback || run.trigger == kTriggerRestore)) {
    absl::StrAppend(&m, ": ",
                    rollback ? "rolled back in place to " : "restored ",
                    run.version_id, ", wrote ", Mib(run.bytes_sent));
    return m;
  }
  if (run.result == RunResult::kSucceeded) {
    absl::StrAppend(&m, ": ", run.method.empty() ? "" : run.method + ", ",
                    "read ", Mib(run.bytes_read), ", sent ",
                    Mib(run.bytes_sent), ", version ", run.version_id);
    if (!run.fallback_reason.empty()) {
      absl::StrAppend(&m, " (fell back to hash: ", run.fallback_reason, ")");
    }
    if (!run.error.empty()) absl::StrAppend(&m, "; note: ", run.error);
    return m;
  }
  absl::StrAppend(&m, " at step ", run.step);
  if (!run.error.empty()) absl::StrAppend(&m, ": ", run.error);
  return m;
}

int EndPriority(const RunRecord& run) {
  switch (run.result) {
    case RunResult::kSucceeded:
      return run.error.empty() && run.fallback_reason.empty() ? 6 : 4;
    case RunResult::kFailed:
      return 3;
    default:
      return 4;
  }
}

}  // namespace

JournalEntry RunJournalEntry(const RunRecord& run) {
  JournalEntry e;
  const bool ended = run.result != RunResult::kRunning;
  const std::string by =
      run.group.empty() ? "" : absl::StrCat(" (group ", run.group, ")");
  e.fields.push_back(ended ? absl::StrCat("MESSAGE=", EndMessage(run))
                           : absl::StrCat("MESSAGE=run ", run.id, " of ",
                                          run.volume, by, " queued (",
                                          run.trigger, run.full ? ", full" : "",
                                          ")"));
  e.fields.push_back(
      absl::StrCat("MESSAGE_ID=", ended ? kRunEndedId : kRunQueuedId));
  e.priority = ended ? EndPriority(run) : 6;
  e.fields.push_back(absl::StrCat("PRIORITY=", e.priority));
  Add(e.fields, "CBTD_RUN_ID", absl::StrCat(run.id));
  Add(e.fields, "CBTD_VOLUME", run.volume);
  Add(e.fields, "CBTD_GROUP", run.group);
  Add(e.fields, "CBTD_TRIGGER", run.trigger);
  if (!ended) return e;
  Add(e.fields, "CBTD_RESULT", std::string(RunResultName(run.result)));
  Add(e.fields, "CBTD_STEP", run.step);
  Add(e.fields, "CBTD_METHOD", run.method);
  Add(e.fields, "CBTD_FALLBACK_REASON", run.fallback_reason);
  Add(e.fields, "CBTD_BYTES_READ", absl::StrCat(run.bytes_read));
  Add(e.fields, "CBTD_BYTES_SENT", absl::StrCat(run.bytes_sent));
  Add(e.fields, "CBTD_VOLUME_BYTES", absl::StrCat(run.volume_bytes));
  Add(e.fields, "CBTD_BASE_VERSION", run.base_version);
  Add(e.fields, "CBTD_VERSION", run.version_id);
  Add(e.fields, "CBTD_ERROR", run.error);
  if (run.ended_at.has_value()) {
    Add(e.fields, "CBTD_DURATION_SEC",
        absl::StrCat(absl::ToDoubleSeconds(*run.ended_at - run.started_at)));
  }
  return e;
}

}  // namespace cbtd::agent
