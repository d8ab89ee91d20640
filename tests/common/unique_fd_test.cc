#include "common/unique_fd.h"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <unistd.h>

#include <cerrno>
#include <utility>

namespace cbtd::common {
namespace {

int OpenDevNull() { return ::open("/dev/null", O_RDONLY | O_CLOEXEC); }

bool IsOpen(int fd) { return ::fcntl(fd, F_GETFD) != -1 || errno != EBADF; }

// A descriptor number that is not open (nothing else opens in between).
int ClosedNumber() {
  UniqueFd fd(OpenDevNull());
  return fd.get();
}

TEST(UniqueFdTest, ClosesOnDestruction) {
  int n;
  {
    UniqueFd fd(OpenDevNull());
    ASSERT_TRUE(fd.valid());
    n = fd.get();
    EXPECT_TRUE(IsOpen(n));
  }
  EXPECT_FALSE(IsOpen(n));
}

TEST(UniqueFdTest, ResetClosesTheOldAndTakesTheNew) {
  UniqueFd fd(OpenDevNull());
  const int first = fd.get();
  const int second = OpenDevNull();
  fd.reset(second);
  EXPECT_FALSE(IsOpen(first));
  EXPECT_EQ(fd.get(), second);
  EXPECT_TRUE(IsOpen(second));
  fd.reset();
  EXPECT_FALSE(fd.valid());
  EXPECT_EQ(fd.get(), -1);
  EXPECT_FALSE(IsOpen(second));
}

TEST(UniqueFdTest, NegativeHoldsNothing) {
  UniqueFd fd(-5);
  EXPECT_FALSE(fd);
  EXPECT_EQ(fd.get(), -1);
  EXPECT_TRUE(fd.Close("nothing").ok());
}

TEST(UniqueFdTest, MoveTransfersOwnership) {
  UniqueFd a(OpenDevNull());
  const int n = a.get();
  UniqueFd b(std::move(a));
  EXPECT_FALSE(a.valid());  // NOLINT(bugprone-use-after-move): the point
  EXPECT_EQ(b.get(), n);

  UniqueFd c(OpenDevNull());
  const int old = c.get();
  c = std::move(b);  // closes c's own descriptor first
  EXPECT_FALSE(IsOpen(old));
  EXPECT_EQ(c.get(), n);
  EXPECT_FALSE(b.valid());  // NOLINT(bugprone-use-after-move)
  EXPECT_TRUE(IsOpen(n));

  UniqueFd& self = c;
  c = std::move(self);
  EXPECT_EQ(c.get(), n);
  EXPECT_TRUE(IsOpen(n));
}

TEST(UniqueFdTest, ReleaseGivesUpOwnership) {
  int n;
  {
    UniqueFd fd(OpenDevNull());
    n = fd.release();
    EXPECT_FALSE(fd.valid());
  }
  EXPECT_TRUE(IsOpen(n));
  UniqueFd again(n);  // closes it
}

TEST(UniqueFdTest, CloseSucceedsAndEmpties) {
  UniqueFd fd(OpenDevNull());
  const int n = fd.get();
  EXPECT_TRUE(fd.Close("/dev/null").ok());
  EXPECT_FALSE(fd.valid());
  EXPECT_FALSE(IsOpen(n));
}

TEST(UniqueFdTest, CloseReportsTheError) {
  UniqueFd stale(ClosedNumber());
  ASSERT_TRUE(stale.valid());
  absl::Status st = stale.Close("the output file");
  EXPECT_FALSE(st.ok());
  EXPECT_NE(st.message().find("close the output file"), std::string::npos)
      << st;
  EXPECT_FALSE(stale.valid()) << "gone whatever close returned";
}

}  // namespace
}  // namespace cbtd::common
