// CephCluster: a throwaway single-node Ceph cluster (one mon, one OSD,
// pool "vault") for tests that need a real RADOS, started and stopped by
// tests/ceph/ceph-cluster.sh in a fresh temporary directory, on ports of
// its own (parallel runs do not collide). Header-only.
//
// Start it once per test binary or suite (it takes ~5-7 s), e.g. from
// SetUpTestSuite, and destroy it in TearDownTestSuite:
//
//   static void SetUpTestSuite() { cluster_ = test::CephCluster::Start(); }
//   static void TearDownTestSuite() { cluster_.reset(); }
//
// Clients use conf_path() (which names the keyring) as "admin" (every cap)
// or "cbtd" (read/write on the pool "vault" only).
//
// Needs ceph-mon, ceph-osd and the rados CLI (scripts/setup.sh);
// CBTD_CEPH_CLUSTER_SCRIPT is the script's path, defined by CMake.
#ifndef CBTD_TESTS_COMMON_CEPH_CLUSTER_H_
#define CBTD_TESTS_COMMON_CEPH_CLUSTER_H_

#include <signal.h>
#include <sys/types.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <fstream>
#include <memory>
#include <sstream>
#include <stdexcept>
#include <string>
#include <vector>

#include "tests/common/temp_dir.h"

namespace cbtd::test {

class CephCluster {
 public:
  static constexpr char kPool[] = "vault";

  // Starts a cluster with `store` ("memstore": data in the OSD's memory;
  // "bluestore": a sparse file). Throws std::runtime_error with the end of
  // the script's output if it does not come up.
  static std::unique_ptr<CephCluster> Start(
      const std::string& store = "memstore") {
    auto cluster = std::unique_ptr<CephCluster>(new CephCluster);
    const auto start = std::chrono::steady_clock::now();
    const std::string log = cluster->dir_.path() + "/start.log";
    // The script's watchdog stops the cluster if this process dies
    // without running the destructor (a CTest timeout, SIGKILL).
    const int rc = std::system(
        ("CBTD_CEPH_OWNER_PID=" + std::to_string(::getpid()) + " " + Script() +
         " start " + cluster->path() + " " + store + " >" + log + " 2>&1")
            .c_str());
    cluster->start_seconds_ =
        std::chrono::duration<double>(std::chrono::steady_clock::now() - start)
            .count();
    if (rc != 0) {
      std::ifstream in(log);
      std::stringstream text;
      text << in.rdbuf();
      throw std::runtime_error("starting a Ceph cluster in " + cluster->path() +
                               " failed:\n" + text.str());
    }
    return cluster;
  }

  // Stops the daemons (OSD before mon) and removes the directory.
  ~CephCluster() {
    if (std::system(
            (Script() + " stop " + path() + " >/dev/null 2>&1").c_str()) != 0) {
      // Nothing to do: the script already SIGKILLed what did not stop.
    }
  }
  CephCluster(const CephCluster&) = delete;
  CephCluster& operator=(const CephCluster&) = delete;

  // ceph.conf for clients; it names the keyring.
  std::string conf_path() const { return path() + "/ceph.conf"; }
  std::string keyring_path() const { return path() + "/keyring"; }
  double start_seconds() const { return start_seconds_; }

  // Pauses (SIGSTOP) or resumes (SIGCONT) the OSD: a client's ops to a
  // paused OSD get no answer, as from a dead one, and the cluster is whole
  // again once it resumes.
  void PauseOsd(bool pause) const {
    const std::vector<pid_t> pids = Pids();
    if (pids.size() < 2) throw std::runtime_error("no OSD in " + path());
    ::kill(pids[1], pause ? SIGSTOP : SIGCONT);
    // kill(2) returns before every thread of the OSD has stopped: wait
    // until /proc says it has, or an op sent at once may still be served.
    const std::string want = pause ? "T (stopped)" : "";
    for (int i = 0; pause && i < 200; ++i) {
      std::ifstream status("/proc/" + std::to_string(pids[1]) + "/status");
      std::string line;
      while (std::getline(status, line) && line.rfind("State:", 0) != 0) {
      }
      if (line.find(want) != std::string::npos) return;
      ::usleep(10000);
    }
    if (pause) throw std::runtime_error("the OSD did not stop");
  }

  // SIGKILLs the OSD (a crash: what it acknowledged is on disk), and
  // starts it again on the same data (bluestore only), returning once it
  // serves I/O. Throw std::runtime_error if the script fails.
  void KillOsd() const { Run("kill-osd"); }
  void StartOsd() const { Run("start-osd"); }

 private:
  CephCluster() : dir_("cbtd-ceph-") {}
  void Run(const std::string& command) const {
    if (std::system((Script() + " " + command + " " + path() + " >>" +
                     dir_.path() + "/osd.log 2>&1")
                        .c_str()) != 0) {
      throw std::runtime_error("ceph-cluster.sh " + command + " failed; see " +
                               dir_.path() + "/osd.log");
    }
  }
  static std::string Script() { return CBTD_CEPH_CLUSTER_SCRIPT; }
  std::string path() const { return dir_.path() + "/cluster"; }
  // The daemons' PIDs in start order: mon, OSD.
  std::vector<pid_t> Pids() const {
    std::ifstream in(path() + "/pids");
    std::vector<pid_t> pids;
    for (pid_t p; in >> p;) pids.push_back(p);
    return pids;
  }

  const TempDir dir_;  // removed after the destructor's stop
  double start_seconds_ = 0;
};

}  // namespace cbtd::test

#endif  // CBTD_TESTS_COMMON_CEPH_CLUSTER_H_
