// Runs where operators look (issue 16): every run's queueing and end as one
// structured journal entry, so that
//   journalctl -u cbtd MESSAGE_ID=4abba5e389a14ff0b9e5820ffd15dd73
//   journalctl -u cbtd CBTD_VOLUME=data CBTD_RESULT=failed
// find them. This file builds the fields (pure, unit-tested); daemon.cc
// sends them with sd_journal_sendv, or writes MESSAGE to stderr when there
// is no journal.
//
// Fields: MESSAGE, MESSAGE_ID (kRunQueuedId / kRunEndedId), PRIORITY (6
// queued or succeeded, 4 succeeded with a note, cancelled or interrupted,
// 3 failed), CBTD_RUN_ID, CBTD_VOLUME, CBTD_GROUP, CBTD_TRIGGER, and at the
// end CBTD_RESULT, CBTD_STEP, CBTD_METHOD, CBTD_FALLBACK_REASON,
// CBTD_BYTES_READ, CBTD_BYTES_SENT, CBTD_VOLUME_BYTES, CBTD_BASE_VERSION,
// CBTD_VERSION, CBTD_ERROR, CBTD_DURATION_SEC (empty ones are left out).
#ifndef CBTD_AGENT_RUN_JOURNAL_H_
#define CBTD_AGENT_RUN_JOURNAL_H_

#include <string>
#include <vector>

#include "agent/state_store.h"

namespace cbtd::agent {

inline constexpr char kRunQueuedId[] = "2fa3e2c4edad4f29b7f54381cc62e013";
inline constexpr char kRunEndedId[] = "4abba5e389a14ff0b9e5820ffd15dd73";

struct JournalEntry {
  int priority = 6;                 // syslog priority
  std::vector<std::string> fields;  // "KEY=value", MESSAGE first
};

// The entry for `run` as stored: queued while it is running, ended after.
JournalEntry RunJournalEntry(const RunRecord& run);

}  // namespace cbtd::agent

#endif  // CBTD_AGENT_RUN_JOURNAL_H_
