// Exports: stored versions served as NBD exports by nbdkit processes
// running cbtd's plugin (nbd/plugin/), each with a record an operator can
// list and stop.
//
// An export lives in its own directory, `<run_dir>/<name>/`:
//   export.json   the record (below), written once the server is ready
//   nbdkit.pid    nbdkit's pid (its --pidfile: written when it listens)
//   nbdkit.log    nbdkit's and the plugin's messages
//   nbd.sock      the unix socket (unless it listens on TCP or elsewhere)
//   overlay       a writable export's writes (nbdkit's cow filter keeps
//                 its overlay file in this directory); never the vault
// Stopping an export ends its nbdkit and removes the directory, overlay
// included. An export whose nbdkit is gone (its lifetime ended, it was
// killed, the machine rebooted) is removed from the list at the next
// ListExports.
//
// Lifecycle of one export:
//   StartExport -> starting (nbdkit spawned, waiting for its pidfile)
//               -> serving (record written)   | failed: nbdkit's log in the
//                                             |   error, directory removed
//   serving -> StopExport / lifetime over / nbdkit dies -> gone
//
// Thread-safety: functions are reentrant; two StartExport calls with the
// same name race on the directory's creation and one gets ALREADY_EXISTS.
#ifndef CBTD_NBD_EXPORTS_H_
#define CBTD_NBD_EXPORTS_H_

#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"

namespace cbtd::nbd {

inline constexpr char kDefaultRunDir[] = "/run/cbtd/exports";

struct ExportSpec {
  std::string name;         // empty: "<volume>-<version>"
  std::string config_path;  // cbtd.conf: receiver, TLS identity, key file
  std::string volume;
  std::string version;
  std::string host;  // empty: this host (its identity); else needs admin
  // Where to listen: a unix socket path (empty with tcp_address empty:
  // <run_dir>/<name>/nbd.sock), or "ADDRESS:PORT".
  std::string unix_socket;
  std::string tcp_address;
  bool writable = false;
  std::chrono::seconds lifetime{0};  // 0: until stopped
  uint64_t cache_mib = 64;
  // A read that cannot reach the receiver for this long fails with EIO.
  std::chrono::seconds read_timeout{10};
  // Who asked for it (cbtd passes its client's); nullopt: this process's
  // caller (SUDO_UID under sudo, else the uid).
  std::optional<uint32_t> owner_uid;
};

struct ExportRecord {
  std::string name;
  std::string volume;
  std::string version;
  std::string host;
  std::string uri;  // "nbd+unix:///?socket=PATH" or "nbd://HOST:PORT"
  bool writable = false;
  int pid = 0;
  uint32_t owner_uid = 0;  // who started it (SUDO_UID when run by sudo)
  int64_t created_unix = 0;
  int64_t expires_unix = 0;  // 0: no lifetime
  std::string dir;           // the export's directory
};

// Where nbdkit and cbtd's plugin are, and where exports live.
struct ExportPaths {
  std::string run_dir = kDefaultRunDir;
  std::string nbdkit = "nbdkit";  // looked up in PATH
  std::string plugin;             // nbdkit-cbtd-plugin.so
  // How long nbdkit may take to fetch the index and listen.
  std::chrono::seconds start_timeout{60};
};

// nbdkit-cbtd-plugin.so beside the running program (a build tree), else
// where `cmake --install` put it.
std::string DefaultPluginPath();

// Who runs this process, for an export's owner: SUDO_UID under sudo, else
// the real uid.
uint32_t CallerUid();

// Starts nbdkit with cbtd's plugin for `spec` and returns once it serves.
// INVALID_ARGUMENT (bad name, both listen options), ALREADY_EXISTS (an
// export of that name is serving), FAILED_PRECONDITION/NOT_FOUND/...
// carrying the plugin's own error (no such version, wrong key, receiver
// unreachable) taken from nbdkit's log; nothing is left behind on failure.
absl::StatusOr<ExportRecord> StartExport(const ExportPaths& paths,
                                         const ExportSpec& spec);

// The exports serving now, by name; the records of ended ones are removed.
absl::StatusOr<std::vector<ExportRecord>> ListExports(
    const std::string& run_dir);

// Ends export `name` (SIGTERM, then SIGKILL after 10 s) and removes its
// directory, overlay included. NOT_FOUND if there is no such export.
absl::Status StopExport(const std::string& run_dir, const std::string& name);

}  // namespace cbtd::nbd

#endif  // CBTD_NBD_EXPORTS_H_
