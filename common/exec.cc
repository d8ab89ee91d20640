#include "common/exec.h"

#include <fcntl.h>
#include <poll.h>
#include <pwd.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/strip.h"
#include "common/fs.h"
#include "common/unique_fd.h"

extern char** environ;

namespace cbtd::common {
namespace {

// The two ends of a pipe(2); each is closed on reset() or destruction.
struct Pipe {
  UniqueFd reader;
  UniqueFd writer;
  bool Open() {
    int fds[2];
    if (::pipe2(fds, O_CLOEXEC) != 0) return false;
    reader.reset(fds[0]);
    writer.reset(fds[1]);
    return true;
  }
};

std::vector<std::string> InheritedEnvironment() {
  std::vector<std::string> env;
  for (char** e = environ; *e != nullptr; ++e) env.emplace_back(*e);
  return env;
}

// Pointers into `strings`, null-terminated, as exec wants them.
std::vector<char*> CArray(std::vector<std::string>& strings) {
  std::vector<char*> out;
  for (std::string& s : strings) out.push_back(s.data());
  out.push_back(nullptr);
  return out;
}

// The child starts with no signal blocked and every handler at default.
void DefaultSignals(posix_spawnattr_t& attr) {
  sigset_t none, all;
  sigemptyset(&none);
  sigfillset(&all);
  posix_spawnattr_setsigmask(&attr, &none);
  posix_spawnattr_setsigdefault(&attr, &all);
}

std::vector<std::string> CleanEnvironment() {
  const passwd* pw = ::getpwuid(::geteuid());
  return {kCleanPath, "LANG=C.UTF-8",
          absl::StrCat("HOME=", pw != nullptr ? pw->pw_dir : "/")};
}

}  // namespace

std::string CommandLine(const std::vector<std::string>& argv) {
  return absl::StrJoin(argv, " ");
}

absl::StatusOr<int> SpawnDetached(const std::vector<std::string>& argv,
                                  const std::vector<std::string>& env,
                                  const std::string& log_path) {
  if (argv.empty()) return absl::InvalidArgumentError("empty command line");
  UniqueFd null_fd(::open("/dev/null", O_RDONLY | O_CLOEXEC));
  if (!null_fd.valid()) return ErrnoStatus(errno, "open /dev/null");
  UniqueFd log(::open(log_path.c_str(),
                      O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600));
  if (!log.valid()) return ErrnoStatus(errno, absl::StrCat("open ", log_path));
  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_adddup2(&actions, null_fd.get(), 0);
  posix_spawn_file_actions_adddup2(&actions, log.get(), 1);
  posix_spawn_file_actions_adddup2(&actions, log.get(), 2);
  posix_spawnattr_t attr;
  posix_spawnattr_init(&attr);
  DefaultSignals(attr);
  // Its own session: no terminal's hangup or Ctrl-C reaches it.
  posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETSID | POSIX_SPAWN_SETSIGMASK |
                                      POSIX_SPAWN_SETSIGDEF);
  std::vector<std::string> env_strings = InheritedEnvironment();
  for (const std::string& e : env) env_strings.push_back(e);
  std::vector<char*> envp = CArray(env_strings);
  std::vector<std::string> args = argv;
  std::vector<char*> cargv = CArray(args);
  pid_t pid;
  const int rc = ::posix_spawnp(&pid, cargv[0], &actions, &attr, cargv.data(),
                                envp.data());
  posix_spawn_file_actions_destroy(&actions);
  posix_spawnattr_destroy(&attr);
  if (rc != 0) return ErrnoStatus(rc, absl::StrCat("run ", argv[0]));
  return static_cast<int>(pid);
}

absl::StatusOr<CommandResult> RunCommand(const std::vector<std::string>& argv,
                                         const CommandOptions& options) {
  if (argv.empty()) return absl::InvalidArgumentError("empty command line");
  Pipe in, out, err;
  if (!in.Open() || !out.Open() || !err.Open()) {
    return ErrnoStatus(errno, "pipe");
  }
  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_adddup2(&actions, in.reader.get(), 0);
  posix_spawn_file_actions_adddup2(&actions, out.writer.get(), 1);
  posix_spawn_file_actions_adddup2(&actions, err.writer.get(), 2);
  posix_spawnattr_t attr;
  posix_spawnattr_init(&attr);
  // Own process group, so a timeout kills the whole tree; default signals.
  posix_spawnattr_setpgroup(&attr, 0);
  DefaultSignals(attr);
  posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETPGROUP |
                                      POSIX_SPAWN_SETSIGMASK |
                                      POSIX_SPAWN_SETSIGDEF);

  std::vector<std::string> env_strings =
      options.clean_env ? CleanEnvironment() : InheritedEnvironment();
  for (const std::string& e : options.env) env_strings.push_back(e);
  if (options.clean_env) posix_spawn_file_actions_addchdir_np(&actions, "/");
  std::vector<char*> envp = CArray(env_strings);
  std::vector<std::string> args = argv;
  std::vector<char*> cargv = CArray(args);

  pid_t pid;
  const int rc = ::posix_spawnp(&pid, cargv[0], &actions, &attr, cargv.data(),
                                envp.data());
  posix_spawn_file_actions_destroy(&actions);
  posix_spawnattr_destroy(&attr);
  if (rc != 0) return ErrnoStatus(rc, absl::StrCat("run ", argv[0]));
  in.reader.reset();
  out.writer.reset();
  err.writer.reset();

  CommandResult result;
  size_t stdin_written = 0;
  if (options.stdin_data.empty()) in.writer.reset();
  const auto deadline =
      options.timeout ? std::chrono::steady_clock::now() + *options.timeout
                      : std::chrono::steady_clock::time_point::max();
  while (out.reader.valid() || err.reader.valid()) {
    pollfd pfds[3];
    int n = 0;
    if (out.reader.valid()) pfds[n++] = {out.reader.get(), POLLIN, 0};
    if (err.reader.valid()) pfds[n++] = {err.reader.get(), POLLIN, 0};
    if (in.writer.valid()) pfds[n++] = {in.writer.get(), POLLOUT, 0};
    int wait_ms = -1;
    if (options.timeout) {
      const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
          deadline - std::chrono::steady_clock::now());
      wait_ms = static_cast<int>(std::max<int64_t>(0, left.count()));
    }
    const int ready = ::poll(pfds, n, wait_ms);
    if (ready < 0 && errno == EINTR) continue;
    if (ready == 0) {
      result.timed_out = true;
      ::kill(-pid, SIGKILL);
      break;
    }
    for (int i = 0; i < n; ++i) {
      if (pfds[i].revents == 0) continue;
      if (pfds[i].fd == in.writer.get()) {
        const ssize_t w =
            ::write(in.writer.get(), options.stdin_data.data() + stdin_written,
                    options.stdin_data.size() - stdin_written);
        if (w > 0) stdin_written += static_cast<size_t>(w);
        if (w < 0 || stdin_written == options.stdin_data.size()) {
          in.writer.reset();
        }
        continue;
      }
      char buf[65536];
      const ssize_t r = ::read(pfds[i].fd, buf, sizeof(buf));
      std::string& sink =
          pfds[i].fd == out.reader.get() ? result.out : result.err;
      if (r > 0) {
        sink.append(buf, static_cast<size_t>(r));
      } else if (r == 0 || errno != EINTR) {
        if (pfds[i].fd == out.reader.get()) {
          out.reader.reset();
        } else {
          err.reader.reset();
        }
      }
    }
  }
  in.writer.reset();
  int status = 0;
  while (::waitpid(pid, &status, 0) < 0) {
    if (errno != EINTR) return ErrnoStatus(errno, "waitpid");
  }
  if (WIFEXITED(status)) {
    result.exit_code = WEXITSTATUS(status);
  } else if (WIFSIGNALED(status)) {
    result.exit_code = 128 + WTERMSIG(status);
  }
  return result;
}

absl::StatusOr<std::string> RunCommandOk(const std::vector<std::string>& argv,
                                         const CommandOptions& options) {
  absl::StatusOr<CommandResult> r = RunCommand(argv, options);
  if (!r.ok()) return r.status();
  if (r->timed_out) {
    return absl::DeadlineExceededError(
        absl::StrCat("'", CommandLine(argv), "' timed out after ",
                     options.timeout->count(), " ms"));
  }
  if (r->exit_code != 0) {
    std::string tail(absl::StripTrailingAsciiWhitespace(r->err));
    if (tail.size() > 2000) tail = "..." + tail.substr(tail.size() - 2000);
    return absl::FailedPreconditionError(
        absl::StrCat("'", CommandLine(argv), "' exited with ", r->exit_code,
                     tail.empty() ? "" : ": ", tail));
  }
  return std::move(r->out);
}

}  // namespace cbtd::common
