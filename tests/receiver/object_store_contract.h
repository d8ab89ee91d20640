// The ObjectStore contract (receiver/object_store.h) as value-parameterised
// tests, run against every backend: each test binary instantiates
// ObjectStoreContractTest with its backend's StoreFactory
// (object_store_test.cc: the local directory; rados_object_store_test.cc:
// a RADOS pool on a test cluster). What only one backend has (files on
// disk, flock, direct I/O, librados errors) is tested in that binary.
#ifndef CBTD_TESTS_RECEIVER_OBJECT_STORE_CONTRACT_H_
#define CBTD_TESTS_RECEIVER_OBJECT_STORE_CONTRACT_H_

#include <gtest/gtest.h>

#include <functional>
#include <memory>
#include <ostream>
#include <string>

#include "receiver/object_store.h"
#include "tests/common/temp_dir.h"

namespace cbtd::receiver::testing {

struct StoreFactory {
  std::string name;  // the backend, in test names
  // A new, empty store. `scratch` is a directory the test owns (removed
  // after it); `id` is unique to the test in this process.
  std::function<std::unique_ptr<ObjectStore>(const std::string& scratch,
                                             const std::string& id)>
      make;
};

class ObjectStoreContractTest : public ::testing::TestWithParam<StoreFactory> {
 protected:
  void SetUp() override {
    store_ = GetParam().make(tmp_.path(), std::to_string(next_id_++));
    ASSERT_NE(store_, nullptr);
  }
  // A second store on the same data, as another process would have (a
  // separate client of the same vault).
  std::unique_ptr<ObjectStore> OpenAgain() {
    return GetParam().make(tmp_.path(), std::to_string(next_id_ - 1));
  }

  static inline int next_id_ = 0;
  const test::TempDir tmp_{"cbtd-store-contract-"};
  std::unique_ptr<ObjectStore> store_;
};

// GoogleTest prints a failing test's parameter by its backend's name.
inline void PrintTo(const StoreFactory& factory, std::ostream* os) {
  *os << factory.name;
}

// For INSTANTIATE_TEST_SUITE_P's name generator.
inline std::string FactoryName(
    const ::testing::TestParamInfo<StoreFactory>& info) {
  return info.param.name;
}

}  // namespace cbtd::receiver::testing

#endif  // CBTD_TESTS_RECEIVER_OBJECT_STORE_CONTRACT_H_
