// cbtctl era-stack: create, assemble, remove and list the dm-era stacks
// cbtd tracks (cbt/era_stack.h).
#include <sys/stat.h>
#include <unistd.h>

#include <iostream>
#include <map>
#include <string>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "cbt/device_mapper.h"
#include "cbt/era_stack.h"
#include "cbtctl/commands.h"
#include "common/cli.h"
#include "common/units.h"

namespace cbtd::cbtctl {
namespace {

constexpr char kEraStackUsage[] =
    "Usage: cbtctl era-stack create NAME --origin DEV --metadata DEV\n"
    "                         [--block-sectors N] [--force]\n"
    "       cbtctl era-stack assemble NAME | --all [--wait-seconds N]\n"
    "       cbtctl era-stack remove NAME [--forget]\n"
    "       cbtctl era-stack list\n"
    "  every form takes [--registry DIR] (default /etc/cbtd/era-stacks)\n"
    "create formats fresh metadata under a new generation and records the\n"
    "stack (--force: again over a recorded one; its tracking is lost).\n"
    "assemble loads recorded stacks over their metadata, at boot before the\n"
    "origin is used (cbtd-era-stacks.service runs `assemble --all`).\n"
    "remove unloads the stack (the origin is then written untracked: the\n"
    "next run compares hashes); --forget also drops its record.\n";

struct EraStackArgs {
  std::string action, name;
  std::map<std::string, std::string> opts;
  bool force = false, all = false, forget = false;
};

bool ParseEraStackArgs(std::span<char*> args, EraStackArgs* out) {
  if (args.size() < 2) return false;
  out->action = args[1];
  for (size_t i = 2; i < args.size(); ++i) {
    const std::string a = args[i];
    if (a == "--force") {
      out->force = true;
    } else if (a == "--all") {
      out->all = true;
    } else if (a == "--forget") {
      out->forget = true;
    } else if (a.rfind("--", 0) == 0 && i + 1 < args.size()) {
      out->opts[a.substr(2)] = args[++i];
    } else if (a.rfind("--", 0) != 0 && out->name.empty()) {
      out->name = a;
    } else {
      return false;
    }
  }
  const auto& act = out->action;
  if (act == "list") return out->name.empty();
  if (act == "assemble") return out->all != !out->name.empty();
  return (act == "create" || act == "remove") && !out->name.empty();
}

int EraStackFail(const std::string& action, const absl::Status& st) {
  std::cerr << "cbtctl era-stack " << action << ": " << st.message() << "\n";
  return common::kExitFailure;
}

bool WaitForPath(const std::string& path, int seconds) {
  struct stat st;
  for (int i = 0; i < seconds * 10; ++i) {
    if (::stat(path.c_str(), &st) == 0) return true;
    ::usleep(100 * 1000);
  }
  return ::stat(path.c_str(), &st) == 0;
}

int AssembleAll(cbt::DeviceMapper& dm, const cbt::EraStackRegistry& reg,
                int wait_seconds) {
  absl::StatusOr<std::vector<cbt::EraStackSpec>> specs = reg.List();
  if (!specs.ok()) return EraStackFail("assemble", specs.status());
  int failed = 0;
  for (const cbt::EraStackSpec& spec : *specs) {
    // Origins on LVs appear when lvm2 activates them; wait a little.
    for (const std::string& dev : {spec.origin_path, spec.metadata_path}) {
      if (!WaitForPath(dev, wait_seconds)) {
        std::cerr << "cbtctl era-stack assemble: " << spec.name << ": " << dev
                  << " did not appear within " << wait_seconds << " s\n";
      }
    }
    absl::Status st = cbt::AssembleEraStack(dm, spec);
    if (absl::IsAlreadyExists(st)) {
      std::cout << spec.name << ": already assembled\n";
    } else if (!st.ok()) {
      std::cerr << "cbtctl era-stack assemble: " << spec.name << ": "
                << st.message() << "\n";
      ++failed;
    } else {
      std::cout << spec.name << ": assembled (generation " << spec.generation
                << ")\n";
    }
  }
  return failed == 0 ? common::kExitOk : common::kExitFailure;
}

}  // namespace

int RunEraStackCommand(std::span<char*> args) {
  EraStackArgs a;
  if (!ParseEraStackArgs(args, &a)) {
    std::cerr << kEraStackUsage;
    return common::kExitUsage;
  }
  const cbt::EraStackRegistry reg(a.opts.contains("registry")
                                      ? a.opts["registry"]
                                      : cbt::kDefaultEraRegistryDir);
  std::unique_ptr<cbt::DeviceMapper> dm = cbt::NewLinuxDeviceMapper();
  if (a.action == "list") {
    absl::StatusOr<std::vector<cbt::EraStackSpec>> specs = reg.List();
    if (!specs.ok()) return EraStackFail(a.action, specs.status());
    for (const cbt::EraStackSpec& s : *specs) {
      absl::StatusOr<std::string> live = cbt::LiveEraGeneration(*dm, s.name);
      const char* state = !live.ok() ? "not assembled"
                          : *live == s.generation
                              ? "assembled"
                              : "LIVE UNDER ANOTHER GENERATION";
      std::cout << s.name << " origin " << s.origin_path << " metadata "
                << s.metadata_path << " block_sectors " << s.block_sectors
                << " generation " << s.generation << ": " << state << "\n";
    }
    return common::kExitOk;
  }
  if (a.action == "remove") {
    absl::Status st = cbt::RemoveEraStack(*dm, a.name);
    if (st.ok() && a.forget) st = reg.Forget(a.name);
    return st.ok() ? common::kExitOk : EraStackFail(a.action, st);
  }
  if (a.action == "assemble" && a.all) {
    int wait = 0;
    if (a.opts.contains("wait-seconds") &&
        !absl::SimpleAtoi(a.opts["wait-seconds"], &wait)) {
      std::cerr << kEraStackUsage;
      return common::kExitUsage;
    }
    return AssembleAll(*dm, reg, wait);
  }
  if (a.action == "assemble") {
    absl::StatusOr<std::optional<cbt::EraStackSpec>> spec = reg.Find(a.name);
    if (!spec.ok()) return EraStackFail(a.action, spec.status());
    if (!spec->has_value()) {
      return EraStackFail(
          a.action, absl::NotFoundError(absl::StrCat(
                        a.name, " is not a recorded era stack (in ", reg.dir(),
                        "); create it with `cbtctl era-stack create`")));
    }
    absl::Status st = cbt::AssembleEraStack(*dm, **spec);
    if (absl::IsAlreadyExists(st)) {
      std::cout << a.name << ": already assembled\n";
      return common::kExitOk;
    }
    return st.ok() ? common::kExitOk : EraStackFail(a.action, st);
  }
  cbt::EraStackSpec spec;
  spec.name = a.name;
  spec.origin_path = a.opts["origin"];
  spec.metadata_path = a.opts["metadata"];
  if (a.opts.contains("block-sectors") &&
      !common::ParseDecimalUint64(a.opts["block-sectors"],
                                  &spec.block_sectors)) {
    std::cerr << "cbtctl era-stack: bad --block-sectors\n";
    return common::kExitUsage;
  }
  absl::StatusOr<cbt::EraStackSpec> made =
      cbt::CreateEraStack(*dm, reg, spec, a.force);
  if (!made.ok()) return EraStackFail(a.action, made.status());
  std::cout << made->name << ": created over " << made->origin_path
            << " (generation " << made->generation << ")\n";
  return common::kExitOk;
}

}  // namespace cbtd::cbtctl
