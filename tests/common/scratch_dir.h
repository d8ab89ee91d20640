// A fresh directory for one test, removed with its contents afterwards.
#ifndef CBTD_TESTS_COMMON_SCRATCH_DIR_H_
#define CBTD_TESTS_COMMON_SCRATCH_DIR_H_

#include <gtest/gtest.h>
#include <stdlib.h>

#include <filesystem>
#include <string>

namespace cbtd::common {

class ScratchDir {
 public:
  // Under `parent`: /tmp by default, /dev/shm for a tmpfs.
  explicit ScratchDir(const std::string& parent = "/tmp") {
    std::string tmpl = parent + "/cbtd-test.XXXXXX";
    if (mkdtemp(tmpl.data()) != nullptr) path_ = tmpl;
    EXPECT_FALSE(path_.empty()) << "mkdtemp in " << parent;
  }
  ~ScratchDir() {
    std::error_code ec;
    if (!path_.empty()) std::filesystem::remove_all(path_, ec);
  }
  ScratchDir(const ScratchDir&) = delete;
  ScratchDir& operator=(const ScratchDir&) = delete;

  const std::string& path() const { return path_; }
  std::string operator/(const std::string& name) const {
    return path_ + "/" + name;
  }

 private:
  std::string path_;
};

}  // namespace cbtd::common

#endif  // CBTD_TESTS_COMMON_SCRATCH_DIR_H_
