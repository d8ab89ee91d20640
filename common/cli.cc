#include "common/cli.h"

#include <algorithm>
#include <iostream>
#include <string>

namespace cbtd::common {

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

}  // namespace cbtd::common
