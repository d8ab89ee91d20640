#include "agent/metrics.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <stdlib.h>
#include <sys/stat.h>

#include <filesystem>

#include "absl/strings/str_split.h"
#include "common/fs.h"
#include "tests/common/temp_dir.h"

namespace cbtd::agent {
namespace {

using ::testing::HasSubstr;

std::vector<VolumeRunStats> TwoVolumes() {
  VolumeRunStats a;
  a.volume = "db";
  a.last_success = absl::FromUnixSeconds(1700000000);
  a.last_duration = absl::Milliseconds(1500);
  a.last_bytes_read = 4096;
  a.last_bytes_sent = 1024;
  a.failures = 2;
  a.fallbacks = 1;
  a.restores.last_success = absl::FromUnixSeconds(1700000050);
  a.restores.last_duration = absl::Milliseconds(250);
  a.restores.last_bytes_written = 65536;
  a.restores.succeeded = 3;
  a.restores.failures = 1;
  VolumeRunStats b;
  b.volume = "root";
  return {a, b};
}

TEST(MetricsTest, RendersEveryFamilyPerVolume) {
  const std::string text =
      RenderMetrics(TwoVolumes(), absl::FromUnixSeconds(1700000100));
  EXPECT_THAT(text, HasSubstr("# TYPE cbtd_last_success_timestamp_seconds "
                              "gauge\n"));
  EXPECT_THAT(text, HasSubstr("cbtd_last_success_timestamp_seconds{volume="
                              "\"db\"} 1700000000\n"));
  EXPECT_THAT(text, HasSubstr("cbtd_last_success_timestamp_seconds{volume="
                              "\"root\"} 0\n"));
  EXPECT_THAT(text,
              HasSubstr("cbtd_last_run_duration_seconds{volume=\"db\"} 1.5\n"));
  EXPECT_THAT(text,
              HasSubstr("cbtd_last_run_read_bytes{volume=\"db\"} 4096\n"));
  EXPECT_THAT(text,
              HasSubstr("cbtd_last_run_sent_bytes{volume=\"db\"} 1024\n"));
  EXPECT_THAT(text, HasSubstr("# TYPE cbtd_run_failures_total counter\n"
                              "cbtd_run_failures_total{volume=\"db\"} 2\n"));
  EXPECT_THAT(text, HasSubstr("cbtd_tracking_fallbacks_total{volume=\"db\"} "
                              "1\n"));
  EXPECT_THAT(text, HasSubstr("cbtd_last_restore_success_timestamp_seconds{"
                              "volume=\"db\"} 1700000050\n"));
  EXPECT_THAT(text, HasSubstr("cbtd_last_restore_success_timestamp_seconds{"
                              "volume=\"root\"} 0\n"));
  EXPECT_THAT(text, HasSubstr("cbtd_last_restore_duration_seconds{volume="
                              "\"db\"} 0.25\n"));
  EXPECT_THAT(text, HasSubstr("cbtd_last_restore_written_bytes{volume="
                              "\"db\"} 65536\n"));
  EXPECT_THAT(text, HasSubstr("# TYPE cbtd_restores_total counter\n"
                              "cbtd_restores_total{volume=\"db\"} 3\n"));
  EXPECT_THAT(text, HasSubstr("cbtd_restore_failures_total{volume=\"db\"} "
                              "1\n"));
  EXPECT_THAT(text, HasSubstr("cbtd_metrics_timestamp_seconds 1700000100\n"));
  // Every sample line is "name{labels} value" or "name value".
  const std::vector<std::string> lines = absl::StrSplit(text, '\n');
  for (const std::string& line : lines) {
    if (line.empty() || line[0] == '#') continue;
    EXPECT_EQ(std::count(line.begin(), line.end(), ' '), 1) << line;
  }
}

TEST(MetricsTest, FileIsWrittenWholeAndReadableByTheCollector) {
  const test::TempDir dir("cbtd-metrics-", "/tmp");
  const std::string path = dir.path() + "/cbtd.prom";
  ASSERT_TRUE(
      WriteMetricsFile(path, TwoVolumes(), absl::FromUnixSeconds(1)).ok());
  struct stat st {};
  ASSERT_EQ(stat(path.c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0644u);
  EXPECT_EQ(*common::ReadFile(path),
            RenderMetrics(TwoVolumes(), absl::FromUnixSeconds(1)));
}

}  // namespace
}  // namespace cbtd::agent
