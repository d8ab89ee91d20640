#include "nbd/exports.h"

#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <thread>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/time/clock.h"
#include "common/exec.h"
#include "common/fs.h"
#include "nlohmann/json.hpp"

namespace cbtd::nbd {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;

constexpr char kRecordFile[] = "export.json";
constexpr char kPidFile[] = "nbdkit.pid";
constexpr char kLogFile[] = "nbdkit.log";
// The plugin's outcome: "serving", or its error (kPluginErrorTag...).
constexpr char kStatusFile[] = "status";
// The plugin's startup errors: "cbtd export failed: CODE: message".
constexpr char kPluginErrorTag[] = "cbtd export failed: ";

// A small file's contents, "" if it cannot be read (not there yet, or
// gone with its process).
std::string ReadSmallFile(const std::string& path) {
  return common::ReadFile(path).value_or("");
}

bool ValidName(const std::string& name) {
  if (name.empty() || name.size() > 100 || name[0] == '.') return false;
  for (char c : name) {
    if (!absl::ascii_isalnum(static_cast<unsigned char>(c)) && c != '-' &&
        c != '_' && c != '.' && c != '@') {
      return false;
    }
  }
  return true;
}

// The nbdkit serving export `dir`, if `pid` is it (a pid may be reused, and
// a zombie no longer serves). Reaps it if it is our exited child.
bool Serving(int pid, const std::string& dir) {
  if (pid <= 0) return false;
  ::waitpid(pid, nullptr, WNOHANG);
  const std::string cmdline =
      ReadSmallFile(absl::StrCat("/proc/", pid, "/cmdline"));
  return absl::StrContains(cmdline, dir + "/" + kPidFile);
}

int PidOf(const std::string& dir) {
  int pid = 0;
  std::string text = ReadSmallFile(dir + "/" + kPidFile);
  while (!text.empty() && (text.back() == '\n' || text.back() == ' ')) {
    text.pop_back();
  }
  return absl::SimpleAtoi(text, &pid) ? pid : 0;
}

json ToJson(const ExportRecord& r, const std::string& socket) {
  return json{{"name", r.name},
              {"volume", r.volume},
              {"version", r.version},
              {"host", r.host},
              {"uri", r.uri},
              {"socket", socket},
              {"writable", r.writable},
              {"pid", r.pid},
              {"owner_uid", r.owner_uid},
              {"created_unix", r.created_unix},
              {"expires_unix", r.expires_unix}};
}

absl::StatusOr<ExportRecord> ReadRecord(const std::string& dir,
                                        std::string* socket) {
  const std::string text = ReadSmallFile(dir + "/" + kRecordFile);
  json j = json::parse(text, nullptr, /*allow_exceptions=*/false);
  if (!j.is_object()) {
    return absl::DataLossError(absl::StrCat(
        "export record ", dir, "/", kRecordFile, " is missing or damaged"));
  }
  ExportRecord r;
  r.name = j.value("name", "");
  r.volume = j.value("volume", "");
  r.version = j.value("version", "");
  r.host = j.value("host", "");
  r.uri = j.value("uri", "");
  r.writable = j.value("writable", false);
  r.pid = j.value("pid", 0);
  r.owner_uid = j.value("owner_uid", 0u);
  r.created_unix = j.value("created_unix", int64_t{0});
  r.expires_unix = j.value("expires_unix", int64_t{0});
  r.dir = dir;
  if (socket != nullptr) *socket = j.value("socket", "");
  return r;
}

absl::Status WriteRecord(const ExportRecord& r, const std::string& socket) {
  const std::string tmp = r.dir + "/" + kRecordFile + ".tmp";
  {
    std::ofstream out(tmp, std::ios::binary | std::ios::trunc);
    out << ToJson(r, socket).dump(2) << "\n";
    if (!out.flush()) {
      return absl::InternalError(absl::StrCat("cannot write ", tmp));
    }
  }
  std::error_code ec;
  fs::rename(tmp, r.dir + "/" + kRecordFile, ec);
  if (ec) return common::ErrnoStatus(ec.value(), "rename " + tmp);
  return absl::OkStatus();
}

absl::StatusCode CodeNamed(const std::string& name) {
  for (int c = 1; c <= 16; ++c) {
    const auto code = static_cast<absl::StatusCode>(c);
    if (absl::StatusCodeToString(code) == name) return code;
  }
  return absl::StatusCode::kUnknown;
}

// nbdkit exited before serving: its log says why. The plugin's own error
// keeps its status code; anything else is nbdkit's (bad address, port in
// use, plugin not loadable).
absl::Status StartFailure(const std::string& dir, int wait_status) {
  const std::string log = ReadSmallFile(dir + "/" + kStatusFile) +
                          ReadSmallFile(dir + "/" + kLogFile);
  const std::vector<std::string> lines = absl::StrSplit(log, '\n');
  for (const std::string& line : lines) {
    const size_t at = line.find(kPluginErrorTag);
    if (at == std::string::npos) continue;
    const std::string rest = line.substr(at + sizeof(kPluginErrorTag) - 1);
    const size_t colon = rest.find(": ");
    if (colon == std::string::npos) continue;
    const absl::StatusCode code = CodeNamed(rest.substr(0, colon));
    return absl::Status(
        code == absl::StatusCode::kUnknown ? absl::StatusCode::kInternal : code,
        std::string(rest.substr(colon + 2)));
  }
  std::string tail = log.size() > 600 ? log.substr(log.size() - 600) : log;
  while (!tail.empty() && tail.back() == '\n') tail.pop_back();
  return absl::InternalError(absl::StrCat(
      "nbdkit exited before serving (",
      WIFEXITED(wait_status) ? absl::StrCat("exit ", WEXITSTATUS(wait_status))
                             : absl::StrCat("signal ", WTERMSIG(wait_status)),
      "): ", tail.empty() ? "no message" : tail));
}

absl::StatusOr<std::pair<std::string, std::string>> SplitAddress(
    const std::string& address) {
  const size_t colon = address.rfind(':');
  if (colon == std::string::npos || colon == 0 || colon + 1 == address.size()) {
    return absl::InvalidArgumentError(
        absl::StrCat("TCP address '", address,
                     "' is not ADDRESS:PORT (e.g. 127.0.0.1:10809)"));
  }
  std::string host = address.substr(0, colon);
  if (host.size() > 2 && host.front() == '[' && host.back() == ']') {
    host = host.substr(1, host.size() - 2);
  }
  return std::make_pair(host, address.substr(colon + 1));
}

// Creates `dir` for a new export, clearing one left by an ended export.
absl::Status MakeExportDir(const std::string& run_dir, const std::string& name,
                           const std::string& dir) {
  std::error_code ec;
  fs::create_directories(run_dir, ec);
  if (ec) return common::ErrnoStatus(ec.value(), "create " + run_dir);
  if (::mkdir(dir.c_str(), 0700) == 0) return absl::OkStatus();
  if (errno != EEXIST) return common::ErrnoStatus(errno, "create " + dir);
  if (Serving(PidOf(dir), dir)) {
    return absl::AlreadyExistsError(
        absl::StrCat("export '", name,
                     "' is already serving ('cbtctl exports'); stop it "
                     "with 'cbtctl export --stop ",
                     name, "' or choose another --name"));
  }
  fs::remove_all(dir, ec);
  if (::mkdir(dir.c_str(), 0700) != 0) {
    return common::ErrnoStatus(errno, "create " + dir);
  }
  return absl::OkStatus();
}

std::vector<std::string> NbdkitArgv(
    const ExportPaths& paths, const ExportSpec& spec, const std::string& dir,
    const std::string& socket, const std::pair<std::string, std::string>& tcp) {
  // nbdkit forks into the background itself (its --foreground ties it to
  // the parent's life); its messages go to syslog from then on.
  std::vector<std::string> argv = {paths.nbdkit, "--pidfile",
                                   dir + "/" + kPidFile};
  if (socket.empty()) {
    argv.insert(argv.end(), {"--ipaddr", tcp.first, "--port", tcp.second});
  } else {
    argv.insert(argv.end(), {"--unix", socket});
  }
  // Writes go to nbdkit's copy-on-write overlay in the export directory
  // (TMPDIR); the plugin itself has no write path at all.
  if (spec.writable) {
    argv.push_back("--filter=cow");
  } else {
    argv.push_back("--readonly");
  }
  argv.push_back(paths.plugin);
  argv.push_back("config=" + spec.config_path);
  argv.push_back(absl::StrCat("status=", dir, "/", kStatusFile));
  argv.push_back("volume=" + spec.volume);
  argv.push_back("version=" + spec.version);
  if (!spec.host.empty()) argv.push_back("host=" + spec.host);
  argv.push_back(absl::StrCat("cache=", spec.cache_mib));
  argv.push_back(absl::StrCat("timeout=", spec.read_timeout.count()));
  if (spec.lifetime.count() > 0) {
    argv.push_back(absl::StrCat("lifetime=", spec.lifetime.count()));
  }
  return argv;
}

// Waits for the plugin to say it serves (its status file), and returns the
// pid of the nbdkit that serves. `spawned` forks that nbdkit off and exits
// 0; either may fail first: nbdkit's messages before it forks are in the
// log, the plugin's in the status file.
absl::StatusOr<int> AwaitServing(const ExportPaths& paths,
                                 const std::string& dir, int spawned) {
  const auto give_up = std::chrono::steady_clock::now() + paths.start_timeout;
  bool forked = false;
  for (;;) {
    int status = 0;
    if (!forked && ::waitpid(spawned, &status, WNOHANG) == spawned) {
      if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
        return StartFailure(dir, status);
      }
      forked = true;
    }
    const int daemon = PidOf(dir);
    const std::string outcome = ReadSmallFile(dir + "/" + kStatusFile);
    if (outcome == "serving\n" && Serving(daemon, dir)) return daemon;
    if (!outcome.empty() && outcome != "serving\n") {
      return StartFailure(dir, 1 << 8);
    }
    if (forked && daemon != 0 && !Serving(daemon, dir)) {
      return StartFailure(dir, 1 << 8);  // the daemon exited
    }
    if (std::chrono::steady_clock::now() > give_up) {
      ::kill(forked ? daemon : spawned, SIGKILL);
      return absl::DeadlineExceededError(absl::StrCat(
          "nbdkit did not start serving within ", paths.start_timeout.count(),
          " s (the receiver may be slow or unreachable); its log: ", dir, "/",
          kLogFile));
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
}

}  // namespace

std::string DefaultPluginPath() {
  std::error_code ec;
  const auto exe = fs::read_symlink("/proc/self/exe", ec);
  if (!ec) {
    const auto beside = exe.parent_path() / "nbdkit-cbtd-plugin.so";
    if (fs::exists(beside, ec)) return beside.string();
  }
  return CBTD_NBDKIT_PLUGIN;
}

uint32_t CallerUid() {
  uint32_t uid = 0;
  const char* sudo = std::getenv("SUDO_UID");
  if (sudo != nullptr && absl::SimpleAtoi(sudo, &uid)) return uid;
  return ::getuid();
}

absl::StatusOr<ExportRecord> StartExport(const ExportPaths& paths,
                                         const ExportSpec& spec) {
  if (spec.volume.empty() || spec.version.empty()) {
    return absl::InvalidArgumentError("an export needs a volume and a version");
  }
  if (!spec.unix_socket.empty() && !spec.tcp_address.empty()) {
    return absl::InvalidArgumentError(
        "give a unix socket or a TCP address, not both");
  }
  std::string name = spec.name;
  if (name.empty()) {
    name = absl::StrCat(spec.volume, "-", spec.version);
    for (char& c : name) {
      if (!ValidName(std::string(1, c))) c = '_';
    }
  }
  if (!ValidName(name)) {
    return absl::InvalidArgumentError(absl::StrCat(
        "export name '", name,
        "' must be 1-100 letters, digits, '-', '_', '.' or '@', not starting "
        "with '.'"));
  }
  std::pair<std::string, std::string> tcp;
  if (!spec.tcp_address.empty()) {
    auto split = SplitAddress(spec.tcp_address);
    if (!split.ok()) return split.status();
    tcp = *split;
  }
  const std::string dir = absl::StrCat(paths.run_dir, "/", name);
  if (auto s = MakeExportDir(paths.run_dir, name, dir); !s.ok()) return s;
  std::string socket = spec.unix_socket;
  if (socket.empty() && spec.tcp_address.empty()) socket = dir + "/nbd.sock";

  auto pid = common::SpawnDetached(NbdkitArgv(paths, spec, dir, socket, tcp),
                                   {"TMPDIR=" + dir}, dir + "/" + kLogFile);
  absl::StatusOr<int> serving =
      pid.ok() ? AwaitServing(paths, dir, *pid) : pid.status();
  if (!serving.ok()) {
    std::error_code ec;
    fs::remove_all(dir, ec);
    return serving.status();
  }
  ExportRecord r;
  r.name = name;
  r.volume = spec.volume;
  r.version = spec.version;
  r.host = spec.host;
  r.uri = socket.empty() ? absl::StrCat("nbd://", spec.tcp_address)
                         : absl::StrCat("nbd+unix:///?socket=", socket);
  r.writable = spec.writable;
  r.pid = *serving;
  r.owner_uid = spec.owner_uid.value_or(CallerUid());
  r.created_unix = absl::ToUnixSeconds(absl::Now());
  r.expires_unix =
      spec.lifetime.count() > 0 ? r.created_unix + spec.lifetime.count() : 0;
  r.dir = dir;
  if (auto s = WriteRecord(r, socket); !s.ok()) {
    (void)StopExport(paths.run_dir, name);
    return s;
  }
  return r;
}

absl::StatusOr<std::vector<ExportRecord>> ListExports(
    const std::string& run_dir) {
  std::vector<ExportRecord> out;
  std::error_code ec;
  if (!fs::exists(run_dir, ec)) return out;
  std::vector<std::string> dirs;
  for (const auto& e : fs::directory_iterator(run_dir, ec)) {
    if (e.is_directory()) dirs.push_back(e.path().string());
  }
  if (ec) return common::ErrnoStatus(ec.value(), "list " + run_dir);
  std::sort(dirs.begin(), dirs.end());
  for (const std::string& dir : dirs) {
    if (!fs::exists(dir + "/" + kRecordFile)) continue;  // still starting
    auto r = ReadRecord(dir, nullptr);
    if (r.ok() && Serving(r->pid, dir)) {
      out.push_back(*std::move(r));
    } else {
      fs::remove_all(dir, ec);  // ended: lifetime over, killed, rebooted
    }
  }
  return out;
}

absl::Status StopExport(const std::string& run_dir, const std::string& name) {
  if (!ValidName(name)) {
    return absl::InvalidArgumentError(
        absl::StrCat("'", name, "' is not an export name"));
  }
  const std::string dir = absl::StrCat(run_dir, "/", name);
  std::error_code ec;
  if (!fs::exists(dir, ec)) {
    return absl::NotFoundError(absl::StrCat("no export named '", name,
                                            "' ('cbtctl exports' lists them)"));
  }
  std::string socket;
  auto r = ReadRecord(dir, &socket);
  const int pid = r.ok() ? r->pid : PidOf(dir);
  if (Serving(pid, dir)) {
    ::kill(pid, SIGTERM);
    const auto hard =
        std::chrono::steady_clock::now() + std::chrono::seconds(10);
    while (Serving(pid, dir)) {
      if (std::chrono::steady_clock::now() > hard) ::kill(pid, SIGKILL);
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
  }
  // nbdkit removes its socket when it ends cleanly, not when killed.
  if (!socket.empty() && !absl::StartsWith(socket, dir + "/")) {
    fs::remove(socket, ec);
  }
  fs::remove_all(dir, ec);
  if (ec) return common::ErrnoStatus(ec.value(), "remove " + dir);
  return absl::OkStatus();
}

}  // namespace cbtd::nbd
