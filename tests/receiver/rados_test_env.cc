#include "tests/receiver/rados_test_env.h"

#include <gtest/gtest.h>

#include <atomic>

#include "tests/common/ceph_environment.h"

namespace cbtd::receiver::testing {
namespace {

::testing::Environment* const kCephEnvironment =
    ::testing::AddGlobalTestEnvironment(new test::CephEnvironment);

}  // namespace

test::CephCluster& TestCluster() { return test::CephEnvironment::cluster(); }

RadosStoreOptions TestRadosOptions(const std::string& ns,
                                   const std::string& client_id) {
  RadosStoreOptions options;
  options.conf_path = TestCluster().conf_path();
  options.client_id = client_id;
  options.pool = test::CephCluster::kPool;
  options.ns = ns;
  options.op_timeout_seconds = 30;
  return options;
}

std::string FreshTestNamespace() {
  static std::atomic<int> counter{0};
  std::string name = "vault";
  if (const auto* info =
          ::testing::UnitTest::GetInstance()->current_test_info()) {
    name = std::string(info->test_suite_name()) + "." + info->name();
  }
  for (char& c : name) {
    if (c == '/') c = '_';
  }
  return name + "-" + std::to_string(counter++);
}

}  // namespace cbtd::receiver::testing
