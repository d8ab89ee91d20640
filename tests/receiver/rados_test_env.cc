#include "tests/receiver/rados_test_env.h"

#include <gtest/gtest.h>

#include <atomic>
#include <cstdio>
#include <cstdlib>
#include <memory>

namespace cbtd::receiver::testing {
namespace {

// One cluster for the whole binary (it takes ~5-7 s to start).
class CephEnvironment : public ::testing::Environment {
 public:
  void SetUp() override {
    cluster_ = test::CephCluster::Start();
    std::printf("ceph cluster started in %.1f s\n", cluster_->start_seconds());
  }
  void TearDown() override { cluster_.reset(); }
  static test::CephCluster* cluster() { return cluster_.get(); }

 private:
  static inline std::unique_ptr<test::CephCluster> cluster_;
};

::testing::Environment* const kCephEnvironment =
    ::testing::AddGlobalTestEnvironment(new CephEnvironment);

}  // namespace

test::CephCluster& TestCluster() {
  if (CephEnvironment::cluster() == nullptr) {
    std::fprintf(stderr, "the Ceph cluster did not start\n");
    std::abort();
  }
  return *CephEnvironment::cluster();
}

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
