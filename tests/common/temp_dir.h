// TempDir: a fresh, empty directory for one test (or test suite), removed
// with everything in it when the TempDir is destroyed. Header-only, for the
// unit tests.
//
// Creation failure throws std::runtime_error naming the directory, which
// GoogleTest reports as a failure of the test constructing it.
#ifndef CBTD_TESTS_COMMON_TEMP_DIR_H_
#define CBTD_TESTS_COMMON_TEMP_DIR_H_

#include <stdlib.h>

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <stdexcept>
#include <string>
#include <string_view>
#include <system_error>

namespace cbtd::test {

class TempDir {
 public:
  // Creates <base>/<prefix>XXXXXX (mkdtemp). `base` defaults to
  // std::filesystem::temp_directory_path() ($TMPDIR or /tmp).
  explicit TempDir(std::string_view prefix = "cbtd-test-",
                   std::string base = "")
      : path_(Make(prefix, base.empty() ? DefaultBase() : base)) {}
  ~TempDir() {
    std::error_code ignored;
    std::filesystem::remove_all(path_, ignored);
  }
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;

  const std::string& path() const { return path_; }
  // The path of `name` inside the directory.
  std::string operator/(const std::string& name) const {
    return path_ + "/" + name;
  }

 private:
  static std::string DefaultBase() {
    return std::filesystem::temp_directory_path().string();
  }
  static std::string Make(std::string_view prefix, const std::string& base) {
    std::string tmpl = base + "/" + std::string(prefix) + "XXXXXX";
    if (::mkdtemp(tmpl.data()) == nullptr) {
      throw std::runtime_error("mkdtemp " + tmpl + ": " + std::strerror(errno));
    }
    return tmpl;
  }

  std::string path_;
};

}  // namespace cbtd::test

#endif  // CBTD_TESTS_COMMON_TEMP_DIR_H_
