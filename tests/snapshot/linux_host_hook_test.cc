// Issue 13, security: the real host runs an operator's hook with a clean
// environment, from "/", with the CBTD_* variables cbtd hands it, and kills
// it (with its children) at the timeout, naming the hook.
#include <cstdlib>
#include <string>

#include "gtest/gtest.h"
#include "snapshot/linux.h"

namespace cbtd::snapshot {
namespace {

TEST(LinuxHostHookTest, HookSeesOnlyACleanEnvironmentAndItsVariables) {
  auto host = NewLinuxHost();
  ASSERT_EQ(::setenv("CBTD_HOOK_TEST_SECRET", "leaked", 1), 0);
  absl::Status st = host->RunHook(
      "test -z \"$CBTD_HOOK_TEST_SECRET\" && [ \"$CBTD_GROUP\" = db ] && "
      "[ \"$(pwd)\" = / ] && command -v sh >/dev/null",
      {"CBTD_GROUP=db"}, std::chrono::seconds(10));
  ::unsetenv("CBTD_HOOK_TEST_SECRET");
  EXPECT_TRUE(st.ok()) << st;
}

TEST(LinuxHostHookTest, HookPastItsTimeoutIsKilledAndNamed) {
  auto host = NewLinuxHost();
  const auto start = std::chrono::steady_clock::now();
  absl::Status st =
      host->RunHook("sleep 30 & sleep 30", {}, std::chrono::milliseconds(300));
  EXPECT_LT(std::chrono::steady_clock::now() - start, std::chrono::seconds(10));
  EXPECT_FALSE(st.ok());
  EXPECT_NE(st.message().find("hook failed"), std::string::npos) << st;
  EXPECT_NE(st.message().find("timed out"), std::string::npos) << st;
  EXPECT_NE(st.message().find("sleep 30"), std::string::npos) << st;
}

TEST(LinuxHostHookTest, FailingHookReportsItsExitAndStderr) {
  auto host = NewLinuxHost();
  absl::Status st = host->RunHook("echo 'guest agent not running' >&2; exit 7",
                                  {}, std::chrono::seconds(10));
  EXPECT_FALSE(st.ok());
  EXPECT_NE(st.message().find("exited with 7"), std::string::npos) << st;
  EXPECT_NE(st.message().find("guest agent not running"), std::string::npos)
      << st;
}

}  // namespace
}  // namespace cbtd::snapshot
