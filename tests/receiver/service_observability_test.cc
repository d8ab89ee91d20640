// The pieces serve reports with: audit lines that parse back into their
// fields whatever a name or an error holds, and ServiceMetrics' exposition
// (what is a backend error, what the counters add up to). The service end
// to end (sd_notify, a real receive, scheduled GC and verify) is
// serve_service_test.py.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <map>
#include <string>

#include "absl/strings/match.h"
#include "absl/strings/str_split.h"
#include "receiver/audit.h"
#include "receiver/service_metrics.h"

namespace cbtd::receiver {
namespace {

using ::testing::HasSubstr;

// Splits an audit line back into its fields, undoing the quoting.
std::map<std::string, std::string> Parse(const std::string& line) {
  std::map<std::string, std::string> out;
  size_t i = line.find(' ') + 1;  // after "AUDIT"
  while (i < line.size()) {
    const size_t eq = line.find('=', i);
    std::string key = line.substr(i, eq - i);
    std::string value;
    i = eq + 1;
    if (line[i] == '"') {
      for (++i; line[i] != '"'; ++i) {
        if (line[i] == '\\') {
          ++i;
          value += line[i] == 'n' ? '\n' : line[i];
        } else {
          value += line[i];
        }
      }
      i += 2;  // the quote and the space
    } else {
      const size_t end = std::min(line.find(' ', i), line.size());
      value = line.substr(i, end - i);
      i = end + 1;
    }
    out[key] = value;
  }
  return out;
}

TEST(AuditLineTest, PlainValuesInOrder) {
  EXPECT_EQ(
      FormatAuditLine("commit",
                      {{"host", "web1"}, {"volume", "root"}, {"version", "v7"}},
                      "ok", {{"bytes", "4096"}}),
      "AUDIT event=commit host=web1 volume=root version=v7 outcome=ok "
      "bytes=4096");
}

TEST(AuditLineTest, AnErrorMessageCannotForgeFields) {
  // An error message is partly the sender's input (names): it must stay
  // one field, whatever it holds.
  const std::string evil = "x outcome=ok host=\"admin\\\" \nnext=1";
  const std::string line =
      FormatAuditLine("session-start", {{"host", "h"}}, "refused",
                      {{"error", evil}, {"empty", ""}});
  EXPECT_EQ(line.find('\n'), std::string::npos);
  auto f = Parse(line);
  EXPECT_EQ(f["outcome"], "refused");
  EXPECT_EQ(f["host"], "h");
  EXPECT_EQ(f["error"], evil);
  EXPECT_EQ(f["empty"], "");
  EXPECT_EQ(f.size(), 5u);  // event host outcome error empty
}

double Value(const std::string& text, const std::string& sample) {
  for (absl::string_view line : absl::StrSplit(text, '\n')) {
    if (absl::StartsWith(line, sample + " ")) {
      return std::stod(std::string(line.substr(sample.size() + 1)));
    }
  }
  ADD_FAILURE() << "no sample " << sample << " in\n" << text;
  return -1;
}

TEST(ServiceMetricsTest, CountersAddUp) {
  ServiceMetrics m;
  m.AddReceived(1000);
  m.AddReceived(24);
  m.AddCommitted(900, 65536);
  m.SessionEnded(true);
  m.SessionEnded(false);
  m.SessionRefused();
  m.Finished(Operation::kCommit, absl::OkStatus(), absl::Milliseconds(250));
  m.Finished(Operation::kGc, absl::DataLossError("pack damaged"),
             absl::Seconds(2));
  m.GcReclaimed(123);
  const std::string t = m.Render(3, absl::FromUnixSeconds(1700000000));
  EXPECT_EQ(Value(t, "cbt_receiver_received_bytes_total"), 1024);
  EXPECT_EQ(Value(t, "cbt_receiver_stored_bytes_total"), 900);
  EXPECT_EQ(Value(t, "cbt_receiver_deduped_bytes_total"), 65536);
  EXPECT_EQ(Value(t, "cbt_receiver_sessions_open"), 3);
  EXPECT_EQ(Value(t, "cbt_receiver_sessions_total{outcome=\"committed\"}"), 1);
  EXPECT_EQ(Value(t, "cbt_receiver_sessions_total{outcome=\"failed\"}"), 1);
  EXPECT_EQ(Value(t, "cbt_receiver_sessions_total{outcome=\"refused\"}"), 1);
  EXPECT_EQ(Value(t,
                  "cbt_receiver_operations_total{operation=\"gc\","
                  "outcome=\"error\"}"),
            1);
  EXPECT_EQ(Value(t,
                  "cbt_receiver_operation_seconds_total{operation="
                  "\"commit\"}"),
            0.25);
  EXPECT_EQ(Value(t, "cbt_receiver_backend_errors_total"), 1);
  EXPECT_EQ(Value(t, "cbt_receiver_gc_last_reclaimed_bytes"), 123);
  EXPECT_EQ(Value(t, "cbt_receiver_metrics_timestamp_seconds"), 1700000000);
  EXPECT_THAT(t, HasSubstr("# TYPE cbt_receiver_received_bytes_total "
                           "counter\n"));
}

TEST(ServiceMetricsTest, RefusalsAreNotBackendErrors) {
  // A sender's mistake must not page whoever watches the store.
  for (const absl::Status& s :
       {absl::AlreadyExistsError("h/d@v1 already exists"),
        absl::InvalidArgumentError("bad chunk"),
        absl::FailedPreconditionError("unknown base"),
        absl::NotFoundError("no such version"),
        absl::PermissionDeniedError("not yours")}) {
    EXPECT_FALSE(ServiceMetrics::IsBackendError(s)) << s;
  }
  for (const absl::Status& s :
       {absl::DataLossError("damaged"), absl::InternalError("io"),
        absl::ResourceExhaustedError("disk full"),
        absl::UnavailableError("store down")}) {
    EXPECT_TRUE(ServiceMetrics::IsBackendError(s)) << s;
  }
}

}  // namespace
}  // namespace cbtd::receiver
