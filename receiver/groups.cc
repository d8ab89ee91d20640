#include "receiver/groups.h"

#include <algorithm>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "nlohmann/json.hpp"

namespace cbtd::receiver {
namespace {

constexpr char kMagicLine[] = "cbtd-group 1";
constexpr char kSuffix[] = ".grp";
constexpr size_t kSuffixSize = sizeof(kSuffix) - 1;

std::string GroupsPrefix(const std::string& host) {
  return absl::StrCat("groups/", host);
}

std::string Sha256Hex(const std::string& bytes) {
  return transport::ChunkHash::Sha256(
             {reinterpret_cast<const uint8_t*>(bytes.data()), bytes.size()})
      .ToHex();
}

absl::Status ValidateCommitNames(const std::string& host,
                                 const GroupCommit& c) {
  if (auto s = ValidateName("host", host); !s.ok()) return s;
  if (auto s = ValidateName("group", c.group); !s.ok()) return s;
  if (auto s = ValidateName("group version id", c.group_version_id); !s.ok()) {
    return s;
  }
  if (c.members.empty()) {
    return absl::InvalidArgumentError(absl::StrCat(
        "group version ", c.group, "@", c.group_version_id, " has no members"));
  }
  std::set<std::string> seen;
  for (const transport::GroupMemberVersion& m : c.members) {
    if (auto s = ValidateName("volume", m.volume_id); !s.ok()) return s;
    if (auto s = ValidateName("version id", m.version_id); !s.ok()) return s;
    if (!seen.insert(m.volume_id).second) {
      return absl::InvalidArgumentError(
          absl::StrCat("group version ", c.group, "@", c.group_version_id,
                       " names volume '", m.volume_id, "' twice"));
    }
  }
  return absl::OkStatus();
}

// The member's version exists, was sent for this group version, and has
// the root hash the sender computed.
absl::Status CheckMember(Vault& vault, const std::string& host,
                         const GroupCommit& c,
                         const transport::GroupMemberVersion& m) {
  const VolumeName vol{std::string(host), m.volume_id};
  auto meta = vault.ListedIndexMetadata(vol, m.version_id);
  if (!meta.ok()) return meta.status();
  const std::string name =
      absl::StrCat(host, "/", m.volume_id, "@", m.version_id);
  if (meta->group != c.group || meta->group_version_id != c.group_version_id) {
    return absl::FailedPreconditionError(absl::StrCat(
        "version ", name, " was not sent as a member of group version ",
        c.group, "@", c.group_version_id,
        "; the group version was not "
        "committed"));
  }
  if (meta->root_hash != m.root_hash) {
    return absl::FailedPreconditionError(
        absl::StrCat("version ", name, " has root hash ",
                     meta->root_hash.ToHex(), ", not the ", m.root_hash.ToHex(),
                     " its group version names; the group version was not "
                     "committed"));
  }
  return absl::OkStatus();
}

}  // namespace

std::string GroupKey(const std::string& host, const std::string& group,
                     const std::string& group_version) {
  return absl::StrCat(GroupsPrefix(host), "/", group, "/", group_version,
                      kSuffix);
}

std::string EncodeGroupRecord(const GroupRecord& record) {
  nlohmann::json members = nlohmann::json::array();
  for (const transport::GroupMemberVersion& m : record.commit.members) {
    members.push_back({{"volume", m.volume_id},
                       {"version", m.version_id},
                       {"root_hash", m.root_hash.ToHex()}});
  }
  const nlohmann::json j = {
      {"host", record.host},
      {"group", record.commit.group},
      {"group_version", record.commit.group_version_id},
      {"created_unix_ms", record.commit.created_unix_ms},
      {"members", members},
  };
  const std::string json = j.dump();
  return absl::StrCat(kMagicLine, "\n", json, "\n", Sha256Hex(json), "\n");
}

absl::StatusOr<GroupRecord> ParseGroupRecord(const std::string& bytes,
                                             const std::string& what) {
  const auto damaged = [&](const std::string& why) {
    return absl::DataLossError(absl::StrCat(
        "group record ", what, " is damaged (", why,
        "); restore it from a backup of the vault or remove it to drop the "
        "group version"));
  };
  const std::vector<std::string> lines = absl::StrSplit(bytes, '\n');
  if (lines.size() != 4 || lines[0] != kMagicLine || !lines[3].empty()) {
    return damaged("not a cbtd group record");
  }
  if (Sha256Hex(lines[1]) != lines[2]) return damaged("checksum mismatch");
  GroupRecord r;
  try {
    const nlohmann::json j = nlohmann::json::parse(lines[1]);
    r.host = j.at("host").get<std::string>();
    r.commit.group = j.at("group").get<std::string>();
    r.commit.group_version_id = j.at("group_version").get<std::string>();
    r.commit.created_unix_ms = j.at("created_unix_ms").get<int64_t>();
    for (const nlohmann::json& m : j.at("members")) {
      auto root =
          transport::ChunkHash::FromHex(m.at("root_hash").get<std::string>());
      if (!root.ok()) return damaged(std::string(root.status().message()));
      r.commit.members.push_back({m.at("volume").get<std::string>(),
                                  m.at("version").get<std::string>(), *root});
    }
  } catch (const nlohmann::json::exception& e) {
    return damaged(e.what());
  }
  if (!ValidateCommitNames(r.host, r.commit).ok()) {
    return damaged("invalid names");
  }
  return r;
}

absl::Status CommitGroup(Vault& vault, const std::string& host,
                         const GroupCommit& commit) {
  if (auto s = ValidateCommitNames(host, commit); !s.ok()) return s;
  for (const transport::GroupMemberVersion& m : commit.members) {
    if (auto s = CheckMember(vault, host, commit, m); !s.ok()) return s;
  }
  const GroupRecord record{std::string(host), commit};
  const std::string key = GroupKey(host, commit.group, commit.group_version_id);
  absl::Status published =
      vault.store().Publish(key, EncodeGroupRecord(record));
  if (!absl::IsAlreadyExists(published)) return published;
  // A retried commit (its answer was lost) finds its own record.
  auto existing = vault.store().Get(key);
  if (!existing.ok()) return existing.status();
  auto parsed = ParseGroupRecord(*existing, key);
  if (parsed.ok() && parsed->host == host && parsed->commit == commit) {
    return absl::OkStatus();
  }
  return absl::AlreadyExistsError(
      absl::StrCat("group version ", commit.group, "@", commit.group_version_id,
                   " of ", host, " is committed already, with other members"));
}

absl::StatusOr<std::vector<GroupRecord>> ListGroups(Vault& vault,
                                                    const std::string& host) {
  if (auto s = ValidateName("host", host); !s.ok()) return s;
  auto keys = vault.store().List(GroupsPrefix(host));
  if (!keys.ok()) return keys.status();
  std::vector<GroupRecord> out;
  for (const std::string& key : *keys) {
    if (!key.ends_with(kSuffix)) continue;
    auto bytes = vault.store().Get(key);
    if (absl::IsNotFound(bytes.status())) continue;  // removed meanwhile
    if (!bytes.ok()) return bytes.status();
    auto record = ParseGroupRecord(*bytes, key);
    if (!record.ok()) return record.status();
    if (record->host != host ||
        key != GroupKey(host, record->commit.group,
                        record->commit.group_version_id)) {
      return absl::DataLossError(absl::StrCat(
          "group record ", key, " names another group version (", record->host,
          "/", record->commit.group, "@", record->commit.group_version_id,
          "); restore it from a backup of the vault"));
    }
    out.push_back(*std::move(record));
  }
  std::sort(out.begin(), out.end(), [](const auto& a, const auto& b) {
    return std::tie(a.commit.group_version_id, a.commit.group) <
           std::tie(b.commit.group_version_id, b.commit.group);
  });
  return out;
}

absl::StatusOr<CommittedGroups> CommittedGroups::Load(Vault& vault,
                                                      const std::string& host) {
  if (auto s = ValidateName("host", host); !s.ok()) return s;
  const std::string prefix = GroupsPrefix(host) + "/";
  auto keys = vault.store().List(GroupsPrefix(host));
  if (!keys.ok()) return keys.status();
  CommittedGroups out;
  for (const std::string& key : *keys) {
    if (!key.starts_with(prefix) || !key.ends_with(kSuffix)) continue;
    const std::string rest =
        key.substr(prefix.size(), key.size() - prefix.size() - kSuffixSize);
    const std::vector<std::string> parts = absl::StrSplit(rest, '/');
    if (parts.size() == 2) out.committed_.emplace(parts[0], parts[1]);
  }
  return out;
}

absl::Status DeleteGroup(Vault& vault, const std::string& host,
                         const std::string& group,
                         const std::string& group_version) {
  if (auto s = ValidateName("host", host); !s.ok()) return s;
  if (auto s = ValidateName("group", group); !s.ok()) return s;
  if (auto s = ValidateName("group version id", group_version); !s.ok()) {
    return s;
  }
  return vault.store().Delete(GroupKey(host, group, group_version));
}

}  // namespace cbtd::receiver
