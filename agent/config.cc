#include "agent/config.h"

#include <algorithm>
#include <boost/program_options.hpp>
#include <cctype>
#include <map>
#include <set>
#include <sstream>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "common/fs.h"
#include "common/units.h"
#include "transport/names.h"

namespace cbtd::agent {
namespace {

namespace po = boost::program_options;

struct RawEntry {
  std::string key;  // "volume.db.path"
  std::string value;
  int line = 0;
};

// Boost's INI parser drops line numbers and rejects a bad line without
// saying which, so this pre-pass mirrors its rules (comments from '#',
// "[section]", "key = value") to find each entry's line, and reports syntax
// errors itself before Boost sees the text.
std::vector<RawEntry> LocateEntries(const std::string& text,
                                    std::vector<ConfigProblem>& problems) {
  std::vector<RawEntry> entries;
  std::istringstream in(text);
  std::string raw;
  std::string section;
  int line = 0;
  while (std::getline(in, raw)) {
    ++line;
    std::string_view s = raw;
    if (size_t hash = s.find('#'); hash != std::string_view::npos) {
      s = s.substr(0, hash);
    }
    s = common::TrimSpace(s);
    if (s.empty()) continue;
    if (s.front() == '[') {
      if (s.back() != ']' || s.size() < 3) {
        problems.push_back({line, "a section header must be [name]"});
        continue;
      }
      section = std::string(common::TrimSpace(s.substr(1, s.size() - 2)));
      continue;
    }
    const size_t eq = s.find('=');
    if (eq == std::string_view::npos) {
      problems.push_back({line, absl::StrCat("expected 'key = value', got '",
                                             std::string(s), "'")});
      continue;
    }
    std::string key(common::TrimSpace(s.substr(0, eq)));
    if (key.empty()) {
      problems.push_back({line, "a key is missing before '='"});
      continue;
    }
    entries.push_back(
        RawEntry{.key = section.empty() ? key : absl::StrCat(section, ".", key),
                 .value = std::string(common::TrimSpace(s.substr(eq + 1))),
                 .line = line});
  }
  return entries;
}

bool ValidName(std::string_view name) {
  if (name.empty()) return false;
  for (char c : name) {
    if (!std::isalnum(static_cast<unsigned char>(c)) && c != '_' && c != '-') {
      return false;
    }
  }
  return true;
}

std::optional<TrackingMethod> ParseMethod(std::string_view v) {
  if (v == "auto") return TrackingMethod::kAuto;
  if (v == "thin-delta") return TrackingMethod::kThinDelta;
  if (v == "cow-table") return TrackingMethod::kCowTable;
  if (v == "era") return TrackingMethod::kEra;
  if (v == "hash") return TrackingMethod::kHash;
  if (v == "external") return TrackingMethod::kExternal;
  return std::nullopt;
}

std::optional<bool> ParseYesNo(std::string_view v) {
  if (v == "yes" || v == "true" || v == "1") return true;
  if (v == "no" || v == "false" || v == "0") return false;
  return std::nullopt;
}

// Well-formed: "unix:/abs/path", "host:port", "[v6addr]:port".
// "20%" (1..100 % of the origin) or a size ("10G"); the error completes
// "cow_size ...".
absl::StatusOr<CowSizePolicy> ParseCowSize(const std::string& value) {
  if (value.ends_with("%")) {
    long long pct = 0;
    if (!common::ParseInt(std::string_view(value).substr(0, value.size() - 1),
                          pct) ||
        pct < 1 || pct > 100) {
      return absl::InvalidArgumentError("as a percentage must be 1% to 100%");
    }
    return CowSizePolicy{.percent_of_origin = static_cast<int>(pct),
                         .bytes = 0};
  }
  absl::StatusOr<uint64_t> b = common::ParseBytes(value);
  if (!b.ok() || *b == 0) {
    return absl::InvalidArgumentError(
        "must be a percentage (20%) or a size (10G)");
  }
  return CowSizePolicy{.percent_of_origin = 0, .bytes = *b};
}

bool WellFormedAddress(std::string_view a) {
  if (a.starts_with("unix:")) return a.size() > 6 && a[5] == '/';
  std::string_view host;
  std::string_view port;
  if (a.starts_with("[")) {
    const size_t close = a.find("]:");
    if (close == std::string_view::npos || close < 2) return false;
    host = a.substr(1, close - 1);
    port = a.substr(close + 2);
  } else {
    const size_t colon = a.rfind(':');
    if (colon == std::string_view::npos || colon == 0) return false;
    host = a.substr(0, colon);
    port = a.substr(colon + 1);
    if (host.find(':') != std::string_view::npos) return false;
  }
  for (char c : host) {
    if (std::isspace(static_cast<unsigned char>(c))) return false;
  }
  long long p = 0;
  return common::ParseInt(port, p) && p > 0 && p < 65536;
}

// Turns the flat entries into a Config, one problem per bad entry.
class Builder {
 public:
  Builder(Config& config, std::vector<ConfigProblem>& problems)
      : config_(config), problems_(problems) {}

  void Add(const RawEntry& e) {
    const std::vector<std::string> parts = absl::StrSplit(e.key, '.');
    const bool repeatable =
        parts.size() == 3 && parts[0] == "group" &&
        (parts[2] == "pre_hook" || parts[2] == "frozen_hook" ||
         parts[2] == "post_hook");
    if (!repeatable && !seen_.insert(e.key).second) {
      Problem(e, absl::StrCat("'", e.key, "' is set twice (first on line ",
                              config_.key_lines[e.key], ")"));
      return;
    }
    if (!config_.key_lines.contains(e.key)) config_.key_lines[e.key] = e.line;
    if (parts.size() == 2 && parts[0] == "agent") return AddAgent(e, parts[1]);
    if (parts.size() == 2 && parts[0] == "receiver") {
      return AddReceiver(e, parts[1]);
    }
    if (parts.size() == 3 && (parts[0] == "volume" || parts[0] == "group")) {
      if (!ValidName(parts[1])) {
        return Problem(e, absl::StrCat("'", parts[1],
                                       "' is not a valid name; use letters, "
                                       "digits, '_' and '-'"));
      }
      return parts[0] == "volume" ? AddVolume(e, parts[1], parts[2])
                                  : AddGroup(e, parts[1], parts[2]);
    }
    if (parts.size() == 1) {
      return Problem(e, absl::StrCat("'", e.key,
                                     "' is outside any section; put it under "
                                     "[agent], [receiver], [volume.NAME] or "
                                     "[group.NAME]"));
    }
    Problem(e, absl::StrCat("unknown key '", e.key, "'"));
  }

  // Checks that need the whole file: group members exist, etc.
  void Finish() {
    std::map<std::string, std::string> group_of;
    for (GroupConfig& g : config_.groups) {
      const int line =
          config_.LineOf(absl::StrCat("group.", g.name, ".members"));
      if (g.members.empty()) {
        problems_.push_back(
            {group_lines_[g.name],
             absl::StrCat("group '", g.name, "' has no 'members'")});
      }
      if (g.sequential && !g.frozen_hooks.empty()) {
        problems_.push_back(
            {config_.LineOf(absl::StrCat("group.", g.name, ".frozen_hook")),
             absl::StrCat("group '", g.name,
                          "' has a frozen_hook but sequential = yes: frozen "
                          "hooks run in the window a sequential group does "
                          "not have; make it a pre_hook or drop "
                          "'sequential'")});
      }
      std::set<std::string> seen;
      for (const std::string& m : g.members) {
        if (config_.FindVolume(m) == nullptr) {
          problems_.push_back(
              {line, absl::StrCat("group '", g.name, "' names volume '", m,
                                  "', which has no [volume.", m, "] section")});
        } else if (!seen.insert(m).second) {
          problems_.push_back({line, absl::StrCat("group '", g.name,
                                                  "' lists '", m, "' twice")});
        } else if (auto [it, fresh] = group_of.emplace(m, g.name); !fresh) {
          problems_.push_back(
              {line, absl::StrCat("volume '", m, "' is in groups '", it->second,
                                  "' and '", g.name,
                                  "'; a volume belongs to one group")});
        }
      }
    }
    for (const VolumeConfig& v : config_.volumes) {
      if (v.path.empty()) {
        problems_.push_back(
            {volume_lines_[v.name],
             absl::StrCat("volume '", v.name, "' has no 'path'")});
      }
      if (v.method != TrackingMethod::kExternal && !v.changes_file.empty()) {
        problems_.push_back(
            {volume_lines_[v.name],
             absl::StrCat("volume '", v.name,
                          "': changes_file is read only with method = "
                          "external")});
      }
    }
    for (const GroupConfig& g : config_.groups) {
      if (config_.FindVolume(g.name) != nullptr) {
        problems_.push_back(
            {group_lines_[g.name],
             absl::StrCat("'", g.name,
                          "' names both a volume and a group; cbtctl backup "
                          "NAME would be ambiguous")});
      }
    }
  }

 private:
  void Problem(const RawEntry& e, std::string message) {
    problems_.push_back({e.line, std::move(message)});
  }

  template <typename T>
  bool Number(const RawEntry& e, T& out, long long min, long long max) {
    long long v = 0;
    if (!common::ParseInt(e.value, v) || v < min || v > max) {
      Problem(e, absl::StrCat("'", e.key, "' must be a whole number from ", min,
                              " to ", max, ", got '", e.value, "'"));
      return false;
    }
    out = static_cast<T>(v);
    return true;
  }

  void Duration(const RawEntry& e, absl::Duration& out) {
    absl::StatusOr<absl::Duration> d = common::ParseDurationSpec(e.value);
    if (!d.ok()) return Problem(e, std::string(d.status().message()));
    out = *d;
  }

  void ScheduleValue(const RawEntry& e, std::optional<Schedule>& out) {
    absl::StatusOr<Schedule> s = Schedule::Parse(e.value);
    if (!s.ok()) return Problem(e, std::string(s.status().message()));
    out = *s;
  }

  void AddAgent(const RawEntry& e, const std::string& key) {
    if (key == "state_dir") {
      if (!e.value.starts_with("/")) {
        return Problem(e, "'state_dir' must be an absolute path");
      }
      config_.state_dir = e.value;
    } else if (key == "socket") {
      if (!e.value.starts_with("/")) {
        return Problem(e, "'socket' must be an absolute path");
      }
      config_.socket_path = e.value;
    } else if (key == "metrics_file") {
      if (!e.value.empty() && !e.value.starts_with("/")) {
        return Problem(e, "'metrics_file' must be an absolute path");
      }
      config_.metrics_file = e.value;
    } else if (key == "max_concurrent_runs") {
      Number(e, config_.max_concurrent_runs, 1, 64);
    } else if (key == "bandwidth_limit") {
      absl::StatusOr<uint64_t> b = common::ParseBytes(e.value);
      if (!b.ok()) return Problem(e, std::string(b.status().message()));
      config_.bandwidth_limit_bytes_per_sec = *b;
    } else if (key == "encryption") {
      if (e.value == "aes-256-gcm") {
        config_.encryption.enabled = true;
      } else if (e.value == "none") {
        config_.encryption.enabled = false;
      } else {
        return Problem(e, absl::StrCat("'encryption' must be aes-256-gcm or "
                                       "none, not '",
                                       e.value, "'"));
      }
    } else if (key == "key_file") {
      if (!e.value.starts_with("/")) {
        return Problem(e, "'key_file' must be an absolute path");
      }
      config_.encryption.key_file = e.value;
    } else {
      Problem(e, absl::StrCat("unknown key '", key, "' in [agent]"));
    }
  }

  void AddReceiver(const RawEntry& e, const std::string& key) {
    ReceiverConfig& r = config_.receiver;
    if (key == "address") {
      if (!WellFormedAddress(e.value)) {
        return Problem(e, absl::StrCat("receiver address '", e.value,
                                       "' is not host:port, [v6]:port or "
                                       "unix:/path"));
      }
      r.address = e.value;
    } else if (key == "ca_file" || key == "cert_file" || key == "key_file") {
      if (!e.value.starts_with("/")) {
        return Problem(e, absl::StrCat("'", key, "' must be an absolute path"));
      }
      (key == "ca_file"     ? r.ca_file
       : key == "cert_file" ? r.cert_file
                            : r.key_file) = e.value;
    } else {
      Problem(e, absl::StrCat("unknown key '", key, "' in [receiver]"));
    }
  }

  VolumeConfig& Volume(const std::string& name, int line) {
    for (VolumeConfig& v : config_.volumes) {
      if (v.name == name) return v;
    }
    volume_lines_[name] = line;
    // The name is the volume's id in the vault: a path component there.
    if (auto s = transport::ValidateName("volume name", name); !s.ok()) {
      problems_.push_back({line, std::string(s.message())});
    }
    config_.volumes.emplace_back();
    config_.volumes.back().name = name;
    return config_.volumes.back();
  }

  GroupConfig& Group(const std::string& name, int line) {
    for (GroupConfig& g : config_.groups) {
      if (g.name == name) return g;
    }
    group_lines_[name] = line;
    config_.groups.emplace_back();
    config_.groups.back().name = name;
    return config_.groups.back();
  }

  void AddVolume(const RawEntry& e, const std::string& name,
                 const std::string& key) {
    VolumeConfig& v = Volume(name, e.line);
    RetentionPolicy& r = v.retention;
    if (key == "path") {
      if (!e.value.starts_with("/")) {
        return Problem(e, "'path' must be an absolute device path");
      }
      v.path = e.value;
    } else if (key == "method") {
      std::optional<TrackingMethod> m = ParseMethod(e.value);
      if (!m) {
        return Problem(e, absl::StrCat("method '", e.value,
                                       "' is not one of auto, thin-delta, "
                                       "cow-table, era, hash, external"));
      }
      v.method = *m;
    } else if (key == "chunk_size") {
      absl::StatusOr<uint64_t> b = common::ParseBytes(e.value);
      if (!b.ok()) return Problem(e, std::string(b.status().message()));
      if (*b < 4096 || *b > (16u << 20) || (*b & (*b - 1)) != 0) {
        return Problem(e, absl::StrCat("chunk_size ", e.value,
                                       " must be a power of two from 4K to "
                                       "16M"));
      }
      v.chunk_bytes = *b;
    } else if (key == "changes_file") {
      if (!e.value.starts_with("/")) {
        return Problem(e, "'changes_file' must be an absolute path");
      }
      v.changes_file = e.value;
    } else if (key == "snapshot") {
      if (e.value != "auto" && e.value != "none") {
        return Problem(e, "'snapshot' must be auto or none");
      }
      v.live_read = e.value == "none";
    } else if (key == "cow_size" || key == "cow_max_size") {
      absl::StatusOr<CowSizePolicy> size = ParseCowSize(e.value);
      if (!size.ok()) {
        return Problem(e, absl::StrCat(key, " ", size.status().message()));
      }
      (key == "cow_size" ? v.cow_size : v.cow_max_size) = *size;
    } else if (key == "cow_device") {
      std::vector<std::string> devices =
          absl::StrSplit(e.value, absl::ByAnyChar(" ,\t"), absl::SkipEmpty());
      if (devices.size() != 2 || !devices[0].starts_with("/") ||
          !devices[1].starts_with("/") || devices[0] == devices[1]) {
        return Problem(e,
                       "'cow_device' must name two different absolute device "
                       "paths, used in turn (the base snapshot keeps one "
                       "while the next is taken on the other)");
      }
      v.cow_devices = std::move(devices);
    } else if (key == "schedule") {
      ScheduleValue(e, v.schedule);
    } else if (key == "randomized_delay") {
      Duration(e, v.randomized_delay);
    } else if (key == "keep_last") {
      Number(e, r.keep_last, 0, 100000);
    } else if (key == "keep_hourly") {
      Number(e, r.keep_hourly, 0, 100000);
    } else if (key == "keep_daily") {
      Number(e, r.keep_daily, 0, 100000);
    } else if (key == "keep_weekly") {
      Number(e, r.keep_weekly, 0, 100000);
    } else if (key == "keep_monthly") {
      Number(e, r.keep_monthly, 0, 100000);
    } else {
      Problem(e,
              absl::StrCat("unknown key '", key, "' in [volume.", name, "]"));
    }
  }

  void AddGroup(const RawEntry& e, const std::string& name,
                const std::string& key) {
    GroupConfig& g = Group(name, e.line);
    if (key == "members") {
      g.members =
          absl::StrSplit(e.value, absl::ByAnyChar(", \t"), absl::SkipEmpty());
    } else if (key == "freeze") {
      std::optional<bool> b = ParseYesNo(e.value);
      if (!b) return Problem(e, "'freeze' must be yes or no");
      g.freeze = *b;
    } else if (key == "freeze_timeout") {
      Duration(e, g.freeze_timeout);
    } else if (key == "hook_timeout") {
      Duration(e, g.hook_timeout);
    } else if (key == "pre_hook" || key == "frozen_hook" ||
               key == "post_hook") {
      if (e.value.empty()) return Problem(e, absl::StrCat("empty ", key));
      (key == "pre_hook"      ? g.pre_hooks
       : key == "frozen_hook" ? g.frozen_hooks
                              : g.post_hooks)
          .push_back(e.value);
    } else if (key == "sequential") {
      std::optional<bool> b = ParseYesNo(e.value);
      if (!b) return Problem(e, "'sequential' must be yes or no");
      g.sequential = *b;
    } else if (key == "parallel") {
      Number(e, g.parallel, 1, 16);
    } else if (key == "schedule") {
      ScheduleValue(e, g.schedule);
    } else if (key == "randomized_delay") {
      Duration(e, g.randomized_delay);
    } else {
      Problem(e, absl::StrCat("unknown key '", key, "' in [group.", name, "]"));
    }
  }

  Config& config_;
  std::vector<ConfigProblem>& problems_;
  std::set<std::string> seen_;
  std::map<std::string, int> volume_lines_;
  std::map<std::string, int> group_lines_;
};

std::string BaseName(const std::string& path) {
  const size_t slash = path.rfind('/');
  return slash == std::string::npos ? path : path.substr(slash + 1);
}

}  // namespace

std::string_view TrackingMethodName(TrackingMethod m) {
  switch (m) {
    case TrackingMethod::kAuto:
      return "auto";
    case TrackingMethod::kThinDelta:
      return "thin-delta";
    case TrackingMethod::kCowTable:
      return "cow-table";
    case TrackingMethod::kEra:
      return "era";
    case TrackingMethod::kHash:
      return "hash";
    case TrackingMethod::kExternal:
      return "external";
  }
  return "?";
}

const VolumeConfig* Config::FindVolume(std::string_view name) const {
  for (const VolumeConfig& v : volumes) {
    if (v.name == name) return &v;
  }
  return nullptr;
}

const GroupConfig* Config::FindGroup(std::string_view name) const {
  for (const GroupConfig& g : groups) {
    if (g.name == name) return &g;
  }
  return nullptr;
}

int Config::LineOf(const std::string& key) const {
  auto it = key_lines.find(key);
  return it == key_lines.end() ? 0 : it->second;
}

bool HasErrors(const std::vector<ConfigProblem>& problems) {
  for (const ConfigProblem& p : problems) {
    if (!p.warning) return true;
  }
  return false;
}

std::string FormatProblems(const std::string& file,
                           const std::vector<ConfigProblem>& problems) {
  std::string out;
  for (const ConfigProblem& p : problems) {
    if (!out.empty()) out += "\n";
    const std::string where =
        p.line > 0 ? absl::StrCat(file, ":", p.line, ": ") : file + ": ";
    out += absl::StrCat(where, p.warning ? "warning: " : "", p.message);
  }
  return out;
}

absl::StatusOr<Config> ParseConfig(const std::string& path,
                                   const std::string& text) {
  std::vector<ConfigProblem> problems;
  std::vector<RawEntry> entries = LocateEntries(text, problems);
  if (problems.empty()) {
    // Boost reads the values; the pre-pass only contributes line numbers.
    // Both walk the file in order, so the n-th option is the n-th entry.
    try {
      std::istringstream in(text);
      po::options_description none;
      const po::parsed_options parsed =
          po::parse_config_file(in, none, /*allow_unregistered=*/true);
      if (parsed.options.size() != entries.size()) {
        return absl::InternalError(absl::StrCat(
            path, ": the INI pre-pass found ", entries.size(),
            " entries but Boost.Program_options ", parsed.options.size()));
      }
      for (size_t i = 0; i < entries.size(); ++i) {
        const po::option& o = parsed.options[i];
        entries[i].key = o.string_key;
        entries[i].value = o.value.empty() ? "" : o.value.front();
      }
    } catch (const po::error& e) {
      problems.push_back({0, e.what()});
    }
  }
  Config config;
  config.path = path;
  if (problems.empty()) {
    Builder builder(config, problems);
    for (const RawEntry& e : entries) builder.Add(e);
    builder.Finish();
  }
  if (!problems.empty()) {
    return absl::InvalidArgumentError(FormatProblems(BaseName(path), problems));
  }
  return config;
}

absl::StatusOr<Config> LoadConfig(const std::string& path) {
  absl::StatusOr<std::string> text = common::ReadFile(path);
  if (!text.ok()) return text.status();
  return ParseConfig(path, *text);
}

std::string EncryptionSummary(const Config& config) {
  if (!config.encryption.enabled) {
    return "encryption: none -- backups are stored UNENCRYPTED: the "
           "receiver's operator can read them (set encryption = aes-256-gcm "
           "in [agent] to seal them on this host)";
  }
  return absl::StrCat("encryption: aes-256-gcm, key ",
                      config.encryption.key_file,
                      " (created at the first backup if missing; back it up "
                      "with cbtctl key export)");
}

namespace {

// Why a run would fall back from `method` to hash on a volume of `kind`;
// empty when it would not.
std::string MethodMismatch(TrackingMethod method, snapshot::VolumeKind kind) {
  const bool thin = kind == snapshot::VolumeKind::kThinLv;
  const bool cow = kind == snapshot::VolumeKind::kThickLv ||
                   kind == snapshot::VolumeKind::kOtherDm;
  if (method == TrackingMethod::kThinDelta && !thin) {
    return "method thin-delta needs a thin LV";
  }
  if (method == TrackingMethod::kCowTable && !cow) {
    return "method cow-table needs a thick LV or a dm volume";
  }
  if (method == TrackingMethod::kEra &&
      kind != snapshot::VolumeKind::kEraDevice) {
    return "method era needs a dm-era device (cbtctl era-stack create)";
  }
  return "";
}

// The problems a run of `v` would meet on this host: it cannot be
// snapshotted, or its method would fall back. Records its device in
// `devices` for the group check.
void CheckVolumeKind(
    const Config& config, const VolumeConfig& v, ConfigProbe& probe,
    std::map<std::string, std::pair<uint32_t, uint32_t>>& devices,
    std::vector<ConfigProblem>& problems) {
  const int line = config.LineOf(absl::StrCat("volume.", v.name, ".path"));
  absl::StatusOr<snapshot::VolumeInfo> info = probe.DescribeVolume(v.path);
  if (!info.ok()) {
    problems.push_back(
        {line, absl::StrCat("volume '", v.name,
                            "': ", std::string(info.status().message()))});
    return;
  }
  devices[v.name] = {info->major, info->minor};
  const bool file = info->kind == snapshot::VolumeKind::kImageFile;
  if (file || info->kind == snapshot::VolumeKind::kBlockDevice) {
    for (const GroupConfig& g : config.groups) {
      if (std::find(g.members.begin(), g.members.end(), v.name) ==
          g.members.end()) {
        continue;
      }
      problems.push_back(
          {config.LineOf(absl::StrCat("group.", g.name, ".members")),
           absl::StrCat("group '", g.name, "': volume '", v.name, "' is ",
                        file ? "an image file" : "a plain block device",
                        ", which cannot share an instant with other volumes; "
                        "back it up on its own")});
    }
    if (!file && !v.live_read) {
      problems.push_back({line, absl::StrCat("volume '", v.name, "': ",
                                             info->not_snapshottable_reason)});
    }
    return;
  }
  if (v.live_read) {
    problems.push_back(
        {config.LineOf(absl::StrCat("volume.", v.name, ".snapshot")),
         absl::StrCat("volume '", v.name,
                      "': snapshot = none is for plain "
                      "block devices and image files; ",
                      v.path, " is ",
                      std::string(snapshot::VolumeKindName(info->kind)),
                      " and is snapshotted")});
  }
  if (!info->not_snapshottable_reason.empty()) {
    problems.push_back(
        {line, absl::StrCat("volume '", v.name, "': cbtd cannot snapshot ",
                            v.path, ": ", info->not_snapshottable_reason)});
    return;
  }
  if (info->kind == snapshot::VolumeKind::kEraDevice) {
    // What is snapshotted is the LV below the era device.
    absl::StatusOr<snapshot::VolumeInfo> below =
        probe.DescribeVolume(info->era_origin_path);
    if (!below.ok() || (below->kind != snapshot::VolumeKind::kThinLv &&
                        below->kind != snapshot::VolumeKind::kThickLv)) {
      problems.push_back(
          {line,
           absl::StrCat("volume '", v.name, "': ", v.path,
                        " is a dm-era device over ", info->era_origin_path,
                        ", which is not a thin or thick LV; cbtd "
                        "snapshots the LV below an era device")});
    }
  }
  if (info->kind == snapshot::VolumeKind::kOtherDm && v.cow_devices.empty()) {
    problems.push_back(
        {line, absl::StrCat("volume '", v.name, "': ", v.path,
                            " is a device-mapper volume that lvm2 does not "
                            "manage; its snapshots need 'cow_device' (two "
                            "spare block devices, docs/operations.md)")});
  }
  if (const std::string why = MethodMismatch(v.method, info->kind);
      !why.empty()) {
    problems.push_back(
        {config.LineOf(absl::StrCat("volume.", v.name, ".method")),
         absl::StrCat("volume '", v.name, "': ", why, "; ", v.path, " is ",
                      std::string(snapshot::VolumeKindName(info->kind)),
                      ", so every run would compare hashes instead"),
         /*warning=*/true});
  }
}

// Two members of one group on one device (two names for it): a run
// refuses the group.
void CheckGroupDevices(
    const Config& config,
    const std::map<std::string, std::pair<uint32_t, uint32_t>>& devices,
    std::vector<ConfigProblem>& problems) {
  for (const GroupConfig& g : config.groups) {
    std::map<std::pair<uint32_t, uint32_t>, std::string> seen;
    for (const std::string& m : g.members) {
      auto it = devices.find(m);
      if (it == devices.end()) continue;
      auto [other, fresh] = seen.emplace(it->second, m);
      if (fresh) continue;
      problems.push_back(
          {config.LineOf(absl::StrCat("group.", g.name, ".members")),
           absl::StrCat("group '", g.name, "': volumes '", other->second,
                        "' and '", m, "' are the same device (",
                        it->second.first, ":", it->second.second, ")")});
    }
  }
}

}  // namespace

std::vector<ConfigProblem> CheckConfig(const Config& config,
                                       ConfigProbe& probe) {
  std::vector<ConfigProblem> problems;
  std::map<std::string, std::pair<uint32_t, uint32_t>> devices;
  for (const VolumeConfig& v : config.volumes) {
    if (absl::Status s = probe.CheckVolumePath(v.path); !s.ok()) {
      problems.push_back(
          {config.LineOf(absl::StrCat("volume.", v.name, ".path")),
           absl::StrCat("volume '", v.name, "': ", std::string(s.message()))});
    } else {
      CheckVolumeKind(config, v, probe, devices, problems);
    }
    for (const std::string& cow : v.cow_devices) {
      if (absl::Status s = probe.CheckVolumePath(cow); !s.ok()) {
        problems.push_back(
            {config.LineOf(absl::StrCat("volume.", v.name, ".cow_device")),
             absl::StrCat("volume '", v.name,
                          "' cow_device: ", std::string(s.message()))});
      }
    }
  }
  CheckGroupDevices(config, devices, problems);
  const ReceiverConfig& r = config.receiver;
  if (r.address.empty()) {
    problems.push_back(
        {0, "no [receiver] address; backups have nowhere to go"});
  }
  const bool tls = !r.address.starts_with("unix:");
  for (const auto& [key, file] :
       {std::pair<std::string, std::string>{"ca_file", r.ca_file},
        {"cert_file", r.cert_file},
        {"key_file", r.key_file}}) {
    const int line = config.LineOf(absl::StrCat("receiver.", key));
    if (file.empty()) {
      if (tls && !r.address.empty()) {
        problems.push_back(
            {0, absl::StrCat("[receiver] needs '", key,
                             "' for a TLS address (mutual TLS)")});
      }
      continue;
    }
    if (absl::Status s = probe.CheckReadable(file); !s.ok()) {
      problems.push_back({line, absl::StrCat("receiver ", key, ": ",
                                             std::string(s.message()))});
    }
  }
  if (!r.address.empty()) {
    if (absl::Status s = probe.CheckReachable(r.address); !s.ok()) {
      problems.push_back(
          {config.LineOf("receiver.address"),
           absl::StrCat("receiver ", r.address, ": ", std::string(s.message())),
           /*warning=*/true});
    }
  }
  return problems;
}

}  // namespace cbtd::agent
