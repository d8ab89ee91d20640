// One throwaway Ceph cluster for a whole test binary (a cluster per suite
// would cost ~5-10 s each): started before the first test, stopped after
// the last. Register it once per binary:
//
//   ::testing::Environment* const kCeph =
//       ::testing::AddGlobalTestEnvironment(new test::CephEnvironment);
//
// and reach it with test::CephEnvironment::cluster().
#ifndef CBTD_TESTS_COMMON_CEPH_ENVIRONMENT_H_
#define CBTD_TESTS_COMMON_CEPH_ENVIRONMENT_H_

#include <gtest/gtest.h>

#include <cstdio>
#include <memory>

#include "tests/common/ceph_cluster.h"

namespace cbtd::test {

class CephEnvironment : public ::testing::Environment {
 public:
  void SetUp() override {
    cluster_ = CephCluster::Start();
    std::printf("ceph cluster started in %.1f s\n", cluster_->start_seconds());
  }
  void TearDown() override { cluster_.reset(); }
  static CephCluster& cluster() { return *cluster_; }

 private:
  static inline std::unique_ptr<CephCluster> cluster_;
};

}  // namespace cbtd::test

#endif  // CBTD_TESTS_COMMON_CEPH_ENVIRONMENT_H_
