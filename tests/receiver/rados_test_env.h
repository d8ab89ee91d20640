// The Ceph cluster of a test binary that runs the vault suite on RADOS
// (tests/receiver/CMakeLists.txt, the *_rados_test binaries): started once
// before the first test by test::CephEnvironment, which rados_test_env.cc
// registers, and stopped after the last. Each vault lives in a namespace of its
// own of the pool "vault", so every test starts from an empty vault.
#ifndef CBTD_TESTS_RECEIVER_RADOS_TEST_ENV_H_
#define CBTD_TESTS_RECEIVER_RADOS_TEST_ENV_H_

#include <string>

#include "receiver/rados_object_store.h"
#include "tests/common/ceph_cluster.h"

namespace cbtd::receiver::testing {

// The running cluster.
test::CephCluster& TestCluster();

// Options for user `client_id` ("cbtd": read/write on the pool) on the
// test cluster's pool, in namespace `ns`.
RadosStoreOptions TestRadosOptions(const std::string& ns,
                                   const std::string& client_id = "cbtd");

// A namespace no earlier call of this process returned, named after the
// running test (for a human looking at the pool).
std::string FreshTestNamespace();

}  // namespace cbtd::receiver::testing

#endif  // CBTD_TESTS_RECEIVER_RADOS_TEST_ENV_H_
