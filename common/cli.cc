#include "common/cli.h"

#include <algorithm>
#include <boost/program_options.hpp>
#include <iostream>
#include <string>

namespace cbtd::common {

int ExitCodeForStatus(const absl::Status& status) {
  switch (status.code()) {
    case absl::StatusCode::kOk:
      return kExitOk;
    case absl::StatusCode::kInvalidArgument:
    case absl::StatusCode::kFailedPrecondition:
    case absl::StatusCode::kAlreadyExists:
    case absl::StatusCode::kOutOfRange:
    case absl::StatusCode::kPermissionDenied:
      return kExitRefused;
    case absl::StatusCode::kDataLoss:
      return kExitDamaged;
    case absl::StatusCode::kUnavailable:
      return kExitUnavailable;
    case absl::StatusCode::kNotFound:
      return kExitNotFound;
    default:
      return kExitFailure;
  }
}

void PrintProgramUsage(const Program& program, std::ostream& os) {
  os << "Usage: " << program.name << " COMMAND [OPTIONS]\n\n"
     << program.description << "\n\nCommands:\n";
  size_t width = 0;
  for (const Subcommand& c : program.commands) {
    width = std::max(width, c.name.size());
  }
  for (const Subcommand& c : program.commands) {
    os << "  " << c.name << std::string(width + 2 - c.name.size(), ' ')
       << c.summary << "\n";
  }
  os << "\nOptions:\n"
        "  -h, --help     show this help; COMMAND --help shows a command's\n"
        "  -V, --version  show the version\n";
}

int DispatchSubcommand(const Program& program, int argc, char** argv) {
  if (argc < 2) {
    PrintProgramUsage(program, std::cerr);
    return kExitUsage;
  }
  const std::string_view first = argv[1];
  if (first == "-h" || first == "--help" || first == "help") {
    PrintProgramUsage(program, std::cout);
    return kExitOk;
  }
  if (first == "-V" || first == "--version") {
    std::cout << program.name << " " << CBTD_VERSION << "\n";
    return kExitOk;
  }
  for (const Subcommand& c : program.commands) {
    if (c.name == first) return c.run(std::span<char*>(argv + 1, argc - 1));
  }
  std::cerr << program.name << ": unknown command '" << first << "'; run '"
            << program.name << " --help' for the list\n";
  return kExitUsage;
}

std::optional<std::string> ParseOptions(
    std::span<char*> args,
    const boost::program_options::options_description& desc,
    const boost::program_options::positional_options_description* positional,
    boost::program_options::variables_map& vm) {
  namespace po = boost::program_options;
  try {
    po::command_line_parser parser(static_cast<int>(args.size()), args.data());
    parser.options(desc);
    if (positional != nullptr) parser.positional(*positional);
    po::store(parser.run(), vm);
    if (!vm.count("help")) po::notify(vm);
  } catch (const po::error& e) {
    return std::string(e.what());
  }
  return std::nullopt;
}

}  // namespace cbtd::common
