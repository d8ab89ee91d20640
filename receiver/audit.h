// Audit lines: one structured line per thing done to the vault on someone's
// behalf or on a schedule (session start and end, commit, group commit,
// prune, GC, verify), for the journal:
//
//   AUDIT event=commit host=web1 volume=root version=v7 outcome=ok bytes=...
//
// Fields are key=value separated by one space, in the order given; a value
// that is empty or holds a space, a quote, '=' or a backslash is quoted
// ("...", with \" and \\ escaped; a newline becomes \n), so a line always
// parses back into the same fields. `event` and `outcome` are always there;
// outcome is ok, refused, error, aborted or damaged (verify).
#ifndef CBTD_RECEIVER_AUDIT_H_
#define CBTD_RECEIVER_AUDIT_H_

#include <functional>
#include <string>
#include <utility>
#include <vector>

namespace cbtd::receiver {

using AuditFields = std::vector<std::pair<std::string, std::string>>;

// "AUDIT event=<event> <what...> outcome=<outcome> <details...>" (no
// newline): who and what first, then how it went.
std::string FormatAuditLine(const std::string& event, const AuditFields& what,
                            const std::string& outcome,
                            const AuditFields& details = {});

// Where audit lines go. `ok` is false for an outcome other than ok (the
// sink may log it at a higher priority). Must be thread-safe: sessions end
// on gRPC threads, GC on the scheduler's.
using AuditSink = std::function<void(const std::string& line, bool ok)>;

}  // namespace cbtd::receiver

#endif  // CBTD_RECEIVER_AUDIT_H_
