#include "cbtctl/key.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <sstream>
#include <string>
#include <vector>

#include "common/cli.h"
#include "tests/common/temp_dir.h"

namespace cbtd::cbtctl {
namespace {

using ::testing::HasSubstr;
using ::testing::MatchesRegex;
using ::testing::Not;

struct Result {
  int exit = -1;
  std::string out, err;
};

// Runs `cbtctl key ARGS...` with `stdin_text` on stdin.
Result Key(std::vector<std::string> args, const std::string& stdin_text = "") {
  args.insert(args.begin(), "key");
  std::vector<char*> argv;
  for (std::string& a : args) argv.push_back(a.data());
  std::istringstream in(stdin_text);
  std::ostringstream out, err;
  Result r;
  r.exit = RunKey(argv, in, out, err);
  r.out = out.str();
  r.err = err.str();
  return r;
}

std::string FingerprintIn(const std::string& text) {
  const size_t at = text.find("key ");
  return at == std::string::npos ? "" : text.substr(at + 4, 16);
}

TEST(CbtctlKeyTest, CreateShowExportImportOnAnotherHost) {
  test::TempDir dir;
  const std::string key_file = dir / "keys/default.key";
  Result created = Key({"create", "--key-file", key_file});
  ASSERT_EQ(created.exit, common::kExitOk) << created.err;
  const std::string fingerprint = FingerprintIn(created.out);
  EXPECT_THAT(fingerprint, MatchesRegex("[0-9a-f]{16}"));
  EXPECT_THAT(created.err, HasSubstr("cbtctl key export"));

  Result shown = Key({"show", "--key-file", key_file});
  ASSERT_EQ(shown.exit, common::kExitOk) << shown.err;
  EXPECT_THAT(shown.out, HasSubstr("fingerprint  " + fingerprint));
  EXPECT_THAT(shown.out, HasSubstr(key_file));

  Result exported = Key({"export", "--key-file", key_file});
  ASSERT_EQ(exported.exit, common::kExitOk) << exported.err;
  EXPECT_THAT(exported.out, MatchesRegex("cbtd1-[-0-9A-Z]+\n"));
  EXPECT_THAT(exported.err, HasSubstr("store it offline"));
  // show and export never print the key file's secret line.
  EXPECT_THAT(shown.out + exported.out, Not(HasSubstr("key ")));

  // "Another host": a fresh key file from the recovery text.
  const std::string restored = dir / "other/default.key";
  Result imported =
      Key({"import", "--key-file", restored}, "  " + exported.out + "\n");
  ASSERT_EQ(imported.exit, common::kExitOk) << imported.err;
  EXPECT_EQ(FingerprintIn(imported.out), fingerprint);
  Result json = Key({"show", "--key-file", restored, "--json"});
  ASSERT_EQ(json.exit, common::kExitOk);
  EXPECT_THAT(json.out, HasSubstr("\"fingerprint\": \"" + fingerprint + "\""));
}

TEST(CbtctlKeyTest, RefusesToReplaceAnExistingKey) {
  test::TempDir dir;
  const std::string key_file = dir / "default.key";
  ASSERT_EQ(Key({"create", "--key-file", key_file}).exit, common::kExitOk);
  const std::string text = Key({"export", "--key-file", key_file}).out;
  Result again = Key({"create", "--key-file", key_file});
  EXPECT_EQ(again.exit, common::kExitRefused);
  EXPECT_THAT(again.err, HasSubstr("already exists"));
  Result import = Key({"import", "--key-file", key_file}, text);
  EXPECT_EQ(import.exit, common::kExitRefused);
  EXPECT_EQ(Key({"export", "--key-file", key_file}).out, text);
}

TEST(CbtctlKeyTest, ExitCodesSayWhatIsWrong) {
  test::TempDir dir;
  const std::string key_file = dir / "default.key";
  Result missing = Key({"show", "--key-file", key_file});
  EXPECT_EQ(missing.exit, common::kExitNotFound);
  EXPECT_THAT(missing.err, HasSubstr(key_file));
  EXPECT_EQ(Key({"export", "--key-file", key_file}).exit,
            common::kExitNotFound);

  Result typo = Key({"import", "--key-file", key_file}, "cbtd1-AAAAA");
  EXPECT_EQ(typo.exit, common::kExitRefused);
  EXPECT_EQ(::access(key_file.c_str(), F_OK), -1) << "nothing was written";

  ASSERT_EQ(Key({"create", "--key-file", key_file}).exit, common::kExitOk);
  ASSERT_EQ(::chmod(key_file.c_str(), 0644), 0);
  Result open = Key({"show", "--key-file", key_file});
  EXPECT_EQ(open.exit, common::kExitRefused);
  EXPECT_THAT(open.err, HasSubstr("chmod 600"));

  const std::string damaged = dir / "damaged.key";
  ASSERT_EQ(Key({"create", "--key-file", damaged}).exit, common::kExitOk);
  ASSERT_EQ(::truncate(damaged.c_str(), 60), 0);
  EXPECT_EQ(Key({"show", "--key-file", damaged}).exit, common::kExitDamaged);

  EXPECT_EQ(Key({}).exit, common::kExitUsage);
  EXPECT_EQ(Key({"rotate"}).exit, common::kExitUsage);
  EXPECT_EQ(Key({"show", "--bogus"}).exit, common::kExitUsage);
}

}  // namespace
}  // namespace cbtd::cbtctl
