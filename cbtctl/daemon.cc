#include "cbtctl/daemon.h"

#include <google/protobuf/util/json_util.h>

#include <algorithm>
#include <iostream>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/time/time.h"
#include "common/cli.h"
#include "control/control_client.h"

namespace cbtd::cbtctl {

namespace po = boost::program_options;

std::optional<int> ParseDaemonCommand(
    std::span<char*> args, const std::string& usage,
    po::options_description& desc,
    const po::positional_options_description& positional, po::variables_map& vm,
    DaemonOptions& common) {
  desc.add_options()("socket",
                     po::value<std::string>(&common.socket_path)
                         ->default_value(control::kDefaultSocketPath),
                     "cbtd's control socket")(
      "json", po::bool_switch(&common.json), "print JSON for scripts")(
      "help,h", "show this help");
  if (std::optional<std::string> error =
          common::ParseOptions(args, desc, &positional, vm)) {
    std::cerr << "cbtctl " << args[0] << ": " << *error << "; run 'cbtctl "
              << args[0] << " --help'\n";
    return common::kExitUsage;
  }
  if (vm.count("help")) {
    std::cout << "Usage: cbtctl " << usage << "\n\n" << desc << "\n";
    return common::kExitOk;
  }
  return std::nullopt;
}

std::optional<int> ParseDaemonCommand(std::span<char*> args,
                                      const std::string& usage,
                                      DaemonOptions& common) {
  po::options_description desc("Options");
  po::positional_options_description positional;
  po::variables_map vm;
  return ParseDaemonCommand(args, usage, desc, positional, vm, common);
}

int ExitCodeFor(const absl::Status& status) {
  switch (status.code()) {
    case absl::StatusCode::kOk:
      return common::kExitOk;
    case absl::StatusCode::kInvalidArgument:
      return common::kExitUsage;
    case absl::StatusCode::kNotFound:
    case absl::StatusCode::kFailedPrecondition:
    case absl::StatusCode::kPermissionDenied:
    case absl::StatusCode::kAlreadyExists:
      return common::kExitRefused;
    case absl::StatusCode::kUnavailable:
      return common::kExitUnavailable;
    default:
      return common::kExitFailure;
  }
}

int VaultExitCodeFor(const absl::Status& status) {
  return absl::IsNotFound(status) ? common::kExitNotFound : ExitCodeFor(status);
}

int ReportVaultError(const absl::Status& status) {
  std::cerr << "cbtctl: " << status.message() << "\n";
  return VaultExitCodeFor(status);
}

int ReportError(const absl::Status& status) {
  std::cerr << "cbtctl: " << status.message() << "\n";
  return ExitCodeFor(status);
}

std::string HumanBytes(uint64_t bytes) {
  static constexpr const char* kUnits[] = {"B",   "KiB", "MiB",
                                           "GiB", "TiB", "PiB"};
  if (bytes < 1024) return absl::StrCat(bytes, " B");
  double v = static_cast<double>(bytes);
  int unit = 0;
  while (v >= 1024 && unit < 5) {
    v /= 1024;
    ++unit;
  }
  return absl::StrFormat("%.1f %s", v, kUnits[unit]);
}

std::string FormatUnix(int64_t unix_seconds) {
  if (unix_seconds == 0) return "-";
  return absl::FormatTime("%Y-%m-%d %H:%M:%SZ",
                          absl::FromUnixSeconds(unix_seconds),
                          absl::UTCTimeZone());
}

namespace {

// "17s", "3m05s", "2h04m".
std::string ShortDuration(int64_t seconds) {
  if (seconds < 60) return absl::StrCat(seconds, "s");
  if (seconds < 3600) {
    return absl::StrFormat("%dm%02ds", seconds / 60, seconds % 60);
  }
  return absl::StrFormat("%dh%02dm", seconds / 3600, seconds / 60 % 60);
}

// " 85.3 MiB/s ETA 17s": the rate since the run started, and the time the
// rest takes at it; empty while there is nothing to tell.
std::string RateAndEta(const control::Run& run, uint64_t done, uint64_t total,
                       absl::Time now) {
  if (run.started_unix() == 0 || done == 0) return "";
  const double seconds =
      absl::ToDoubleSeconds(now - absl::FromUnixSeconds(run.started_unix()));
  if (seconds < 1) return "";
  const double rate = static_cast<double>(done) / seconds;
  const auto eta =
      static_cast<int64_t>(static_cast<double>(total - done) / rate);
  return absl::StrCat(" ", HumanBytes(static_cast<uint64_t>(rate)), "/s ETA ",
                      ShortDuration(eta));
}

}  // namespace

std::string RenderProgressLine(const control::Run& run, int width,
                               absl::Time now) {
  std::string head =
      absl::StrCat("run ", run.id(), " ", run.volume(), " ", run.step());
  const uint64_t total = run.progress_total_bytes();
  if (total == 0) return head.substr(0, static_cast<size_t>(width));
  const uint64_t done = std::min(run.progress_done_bytes(), total);
  const int percent = static_cast<int>(done * 100 / total);
  const std::string tail =
      absl::StrCat(" ", percent, "% ", HumanBytes(done), " / ",
                   HumanBytes(total), RateAndEta(run, done, total, now));
  const int bar = std::clamp(
      width - static_cast<int>(head.size() + tail.size()) - 3, 0, 40);
  if (bar < 5) return (head + tail).substr(0, static_cast<size_t>(width));
  const int filled =
      static_cast<int>(done * static_cast<uint64_t>(bar) / total);
  return absl::StrCat(head, " [", std::string(filled, '#'),
                      std::string(bar - filled, '.'), "]", tail);
}

std::string RunRow(const control::Run& r) {
  std::string row = absl::StrFormat(
      "%-6d %-12s %-10s %-11s %-17s %-20s read %-10s sent %-10s", r.id(),
      r.volume(), r.group().empty() ? "-" : r.group(), r.result(), r.step(),
      FormatUnix(r.started_unix()), HumanBytes(r.bytes_read()),
      HumanBytes(r.bytes_sent()));
  if (!r.method().empty()) absl::StrAppend(&row, " ", r.method());
  if (!r.fallback_reason().empty()) {
    absl::StrAppend(&row, " (fallback: ", r.fallback_reason(), ")");
  }
  if (!r.error().empty()) absl::StrAppend(&row, "\n       error: ", r.error());
  return row;
}

std::string ToJson(const google::protobuf::Message& message) {
  std::string out;
  google::protobuf::util::JsonPrintOptions options;
  options.preserve_proto_field_names = true;
  options.always_print_primitive_fields = true;
  if (!google::protobuf::util::MessageToJsonString(message, &out, options)
           .ok()) {
    return "{}";
  }
  return out;
}

}  // namespace cbtd::cbtctl
