#include "cbtctl/daemon.h"

#include <gtest/gtest.h>

#include "common/cli.h"

namespace cbtd::cbtctl {
namespace {

TEST(CbtctlFormatTest, HumanBytes) {
  EXPECT_EQ(HumanBytes(0), "0 B");
  EXPECT_EQ(HumanBytes(1023), "1023 B");
  EXPECT_EQ(HumanBytes(1536), "1.5 KiB");
  EXPECT_EQ(HumanBytes(5ULL << 30), "5.0 GiB");
}

TEST(CbtctlFormatTest, ProgressLineFitsAndShowsTheFraction) {
  control::Run run;
  run.set_id(7);
  run.set_volume("db");
  run.set_step("send");
  run.set_progress_done_bytes(1 << 20);
  run.set_progress_total_bytes(4 << 20);
  const std::string line = RenderProgressLine(run, 79);
  EXPECT_LE(line.size(), 79u);
  EXPECT_NE(line.find("run 7 db send ["), std::string::npos) << line;
  EXPECT_NE(line.find("] 25% 1.0 MiB / 4.0 MiB"), std::string::npos) << line;
  // A quarter of the bar is filled.
  const size_t open = line.find('[');
  const size_t close = line.find(']');
  const std::string bar = line.substr(open + 1, close - open - 1);
  EXPECT_EQ(std::count(bar.begin(), bar.end(), '#') * 4,
            static_cast<long>(bar.size()));
  // Narrow terminals drop the bar, never overflow.
  EXPECT_LE(RenderProgressLine(run, 30).size(), 30u);
  // Unknown total: just the step.
  run.set_progress_total_bytes(0);
  EXPECT_EQ(RenderProgressLine(run, 79), "run 7 db send");
}

TEST(CbtctlFormatTest, ProgressLineShowsRateAndEta) {
  control::Run run;
  run.set_id(9);
  run.set_volume("db");
  run.set_step("restore");
  run.set_started_unix(1000);
  run.set_progress_done_bytes(40 << 20);
  run.set_progress_total_bytes(100 << 20);
  const std::string line =
      RenderProgressLine(run, 100, absl::FromUnixSeconds(1010));
  EXPECT_NE(line.find("40% 40.0 MiB / 100.0 MiB 4.0 MiB/s ETA 15s"),
            std::string::npos)
      << line;
  run.set_progress_done_bytes(1 << 20);
  EXPECT_NE(RenderProgressLine(run, 100, absl::FromUnixSeconds(1010))
                .find("ETA 16m30s"),
            std::string::npos);
}

TEST(CbtctlFormatTest, ExitCodesFollowTheStatus) {
  EXPECT_EQ(ExitCodeFor(absl::OkStatus()), common::kExitOk);
  EXPECT_EQ(ExitCodeFor(absl::NotFoundError("")), common::kExitRefused);
  EXPECT_EQ(ExitCodeFor(absl::FailedPreconditionError("")),
            common::kExitRefused);
  EXPECT_EQ(ExitCodeFor(absl::UnavailableError("")), common::kExitUnavailable);
  EXPECT_EQ(ExitCodeFor(absl::InvalidArgumentError("")), common::kExitUsage);
  EXPECT_EQ(ExitCodeFor(absl::InternalError("")), common::kExitFailure);
}

TEST(CbtctlFormatTest, UnknownVersionIsNotFoundForVaultCommands) {
  EXPECT_EQ(VaultExitCodeFor(absl::NotFoundError("no version v9")),
            common::kExitNotFound);
  EXPECT_EQ(VaultExitCodeFor(absl::DataLossError("")), common::kExitFailure);
  EXPECT_EQ(VaultExitCodeFor(absl::UnavailableError("")),
            common::kExitUnavailable);
}

}  // namespace
}  // namespace cbtd::cbtctl
