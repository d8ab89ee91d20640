#include "common/exec.h"

#include <gtest/gtest.h>

#include <chrono>
#include <cstdlib>
#include <string>

namespace cbtd::common {
namespace {

TEST(ExecTest, CapturesOutputAndExitCode) {
  auto r = RunCommand({"sh", "-c", "echo out; echo err >&2; exit 3"});
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(r->exit_code, 3);
  EXPECT_EQ(r->out, "out\n");
  EXPECT_EQ(r->err, "err\n");
}

TEST(ExecTest, FeedsStdinAndPassesEnv) {
  CommandOptions opts;
  opts.stdin_data = "hello";
  opts.env = {"CBTD_EXEC_TEST=42"};
  auto r = RunCommand({"sh", "-c", "cat; echo $CBTD_EXEC_TEST"}, opts);
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(r->out, "hello42\n");
}

// Issue 13: hooks run with a clean environment, from "/".
TEST(ExecTest, CleanEnvHidesTheCallersEnvironmentAndWorkingDirectory) {
  ASSERT_EQ(::setenv("CBTD_EXEC_SECRET", "leaked", 1), 0);
  ASSERT_EQ(::setenv("LD_PRELOAD", "/nonexistent.so", 1), 0);
  CommandOptions opts;
  opts.clean_env = true;
  opts.env = {"CBTD_PHASE=pre"};
  auto r = RunCommand({"/bin/sh", "-c", "env | sort; pwd"}, opts);
  ::unsetenv("CBTD_EXEC_SECRET");
  ::unsetenv("LD_PRELOAD");
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(r->out.find("CBTD_EXEC_SECRET"), std::string::npos) << r->out;
  EXPECT_EQ(r->out.find("LD_PRELOAD"), std::string::npos) << r->out;
  EXPECT_NE(r->out.find("CBTD_PHASE=pre\n"), std::string::npos) << r->out;
  EXPECT_NE(r->out.find(std::string(kCleanPath) + "\n"), std::string::npos)
      << r->out;
  EXPECT_NE(r->out.find("HOME="), std::string::npos) << r->out;
  EXPECT_TRUE(r->out.ends_with("\n/\n")) << r->out;
  // Without clean_env the environment is inherited (the default for lvm2
  // and the other tools cbtd runs).
  ASSERT_EQ(::setenv("CBTD_EXEC_SECRET", "inherited", 1), 0);
  r = RunCommand({"/bin/sh", "-c", "echo $CBTD_EXEC_SECRET"});
  ::unsetenv("CBTD_EXEC_SECRET");
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(r->out, "inherited\n");
}

TEST(ExecTest, TimeoutKillsTheProcessTree) {
  CommandOptions opts;
  opts.timeout = std::chrono::milliseconds(200);
  const auto start = std::chrono::steady_clock::now();
  auto r = RunCommand({"sh", "-c", "sleep 30 & sleep 30"}, opts);
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_TRUE(r->timed_out);
  EXPECT_LT(std::chrono::steady_clock::now() - start, std::chrono::seconds(10));
}

TEST(ExecTest, RunCommandOkNamesTheCommandAndItsError) {
  auto r = RunCommandOk(
      {"sh", "-c", "echo 'Volume group \"vg0\" not found' >&2; exit 5"});
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.status().message().find("exited with 5"), std::string::npos);
  EXPECT_NE(r.status().message().find("vg0"), std::string::npos);
  auto missing = RunCommand({"/nonexistent/program"});
  EXPECT_FALSE(missing.ok());
}

}  // namespace
}  // namespace cbtd::common
