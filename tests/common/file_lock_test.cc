#include "common/file_lock.h"

#include <gtest/gtest.h>
#include <sys/stat.h>

#include <optional>

#include "tests/common/temp_dir.h"

namespace cbtd::common {
namespace {

FileLock::Options Try(FileLock::Mode mode) {
  FileLock::Options o;
  o.mode = mode;
  o.wait = false;
  return o;
}

TEST(FileLockTest, ExcludesASecondHolderUntilReleased) {
  test::TempDir dir;
  const std::string path = dir / "x.lock";
  std::optional<FileLock> first;
  {
    auto lock = FileLock::Acquire(path, {});
    ASSERT_TRUE(lock.ok()) << lock.status();
    first.emplace(*std::move(lock));
  }
  auto second = FileLock::Acquire(path, Try(FileLock::Mode::kExclusive));
  ASSERT_FALSE(second.ok());
  EXPECT_TRUE(absl::IsUnavailable(second.status())) << second.status();
  EXPECT_NE(second.status().message().find(path), std::string::npos);
  EXPECT_FALSE(FileLock::Acquire(path, Try(FileLock::Mode::kShared)).ok());

  // A moved lock is still held.
  FileLock moved = *std::move(first);
  first.reset();
  EXPECT_FALSE(FileLock::Acquire(path, Try(FileLock::Mode::kExclusive)).ok());

  { FileLock gone = std::move(moved); }
  EXPECT_TRUE(FileLock::Acquire(path, Try(FileLock::Mode::kExclusive)).ok());
}

TEST(FileLockTest, SharedHoldersCoexistAndExcludeAnExclusiveOne) {
  test::TempDir dir;
  const std::string path = dir / "gc.lock";
  auto a = FileLock::Acquire(path, Try(FileLock::Mode::kShared));
  auto b = FileLock::Acquire(path, Try(FileLock::Mode::kShared));
  ASSERT_TRUE(a.ok()) << a.status();
  ASSERT_TRUE(b.ok()) << b.status();
  auto x = FileLock::Acquire(path, Try(FileLock::Mode::kExclusive));
  EXPECT_TRUE(absl::IsUnavailable(x.status())) << x.status();
}

TEST(FileLockTest, CreatesTheFileWithItsModeNotTheDirectory) {
  test::TempDir dir;
  FileLock::Options o;
  o.create_mode = 0640;
  auto lock = FileLock::Acquire(dir / "v.lock", o);
  ASSERT_TRUE(lock.ok()) << lock.status();
  EXPECT_EQ(lock->path(), dir / "v.lock");
  struct stat st {};
  ASSERT_EQ(::stat((dir / "v.lock").c_str(), &st), 0);
  const mode_t mask = ::umask(0);
  ::umask(mask);
  EXPECT_EQ(st.st_mode & 0777, 0640u & ~mask);

  auto missing = FileLock::Acquire(dir / "no/such/dir.lock", {});
  ASSERT_FALSE(missing.ok());
  EXPECT_TRUE(absl::IsNotFound(missing.status())) << missing.status();
  EXPECT_NE(missing.status().message().find(dir / "no/such/dir.lock"),
            std::string::npos);
}

}  // namespace
}  // namespace cbtd::common
