#include "receiver/tenants.h"

#include <algorithm>
#include <map>
#include <set>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"

namespace cbtd::receiver {
namespace {

absl::StatusOr<std::vector<PackInfo>> PacksOf(Vault& vault,
                                              std::string_view tenant) {
  if (vault.chunk_index() == nullptr) return std::vector<PackInfo>{};
  return vault.chunk_index()->ListPacks(tenant);
}

absl::StatusOr<size_t> VersionCount(Vault& vault, std::string_view host) {
  auto versions = vault.ListHostVersions(host);
  if (!versions.ok()) return versions.status();
  return versions->size();
}

// Hosts assigned to `tenant`, other than `except`.
absl::StatusOr<std::vector<std::string>> AssignedMembers(
    Vault& vault, std::string_view tenant, std::string_view except) {
  auto all = vault.TenantAssignments();
  if (!all.ok()) return all.status();
  std::vector<std::string> out;
  for (const auto& [host, t] : *all) {
    if (t == tenant && host != except) out.push_back(host);
  }
  return out;
}

// `host` (unassigned) moves from its own tenant to `tenant`: refused if
// anything already names its own tenant's chunks, or may soon.
absl::Status CheckHostMayMove(Vault& vault, const std::string& host,
                              const std::string& tenant) {
  auto versions = vault.ListHostVersions(host);
  if (!versions.ok()) return versions.status();
  if (!versions->empty()) {
    const auto& [vol, id] = versions->front();
    return absl::FailedPreconditionError(absl::StrCat(
        "host '", host, "' already has ", versions->size(),
        " versions (the first ", vol.host, "/", vol.volume, "@", id,
        ") whose chunks are stored under its own tenant '", host,
        "': moving it to tenant '", tenant,
        "' would lose the chunks they name. Assign hosts before their first "
        "backup; to back this machine up in tenant '",
        tenant, "', send it under a new host name assigned to it"));
  }
  // If other hosts are assigned to the tenant of this host's name, its
  // packs are theirs: this host, unassigned, could not have stored any.
  auto members = AssignedMembers(vault, host, host);
  if (!members.ok()) return members.status();
  if (!members->empty()) return absl::OkStatus();
  auto packs = PacksOf(vault, host);
  if (!packs.ok()) return packs.status();
  if (!packs->empty()) {
    return absl::FailedPreconditionError(absl::StrCat(
        "host '", host, "' already stored chunks under its own tenant '", host,
        "' (", packs->size(),
        " packs, from a backup that did not finish): moving it to tenant '",
        tenant,
        "' would strand them, and a resumed backup would name them. Remove "
        "them with `cbt-receiver gc --grace-seconds 0` (no version "
        "references them), then assign again"));
  }
  return absl::OkStatus();
}

// What `host` would share by joining `tenant`: refused unless
// join_existing when the tenant holds packs or versions of other hosts.
// Returns the hosts to pin (see AssignTenant).
absl::StatusOr<std::vector<std::string>> CheckJoin(
    Vault& vault, const std::string& host, const std::string& tenant,
    const AssignOptions& options) {
  auto hosts = vault.HostsOfTenant(tenant);
  if (!hosts.ok()) return hosts.status();
  std::vector<std::string> others;
  for (const std::string& h : *hosts) {
    if (h != host) others.push_back(h);
  }
  // The host's own tenant, grouping nobody else: nothing to join.
  if (tenant == host && others.empty()) return std::vector<std::string>{};
  auto packs = PacksOf(vault, tenant);
  if (!packs.ok()) return packs.status();
  std::vector<std::string> with_versions;
  for (const std::string& h : others) {
    auto n = VersionCount(vault, h);
    if (!n.ok()) return n.status();
    if (*n > 0) with_versions.push_back(h);
  }
  const bool holds = !packs->empty() || !with_versions.empty();
  if (holds && !options.join_existing) {
    return absl::FailedPreconditionError(absl::StrCat(
        "tenant '", tenant, "' already holds ", packs->size(),
        " packs of chunks",
        with_versions.empty()
            ? std::string()
            : absl::StrCat(" and versions of hosts ",
                           absl::StrJoin(with_versions, ", ")),
        ": a host that joins a tenant can read every chunk of it by "
        "reference and learns which chunks it holds. If '",
        host,
        "' and the tenant's hosts trust each other, repeat with "
        "--join-existing; otherwise assign '",
        host, "' to a new tenant"));
  }
  // The unassigned host of the tenant's name keeps it, by an assignment:
  // once other hosts are assigned to the name it would be refused as
  // ungrouped (Vault::TenantOf).
  std::vector<std::string> pin;
  if (tenant != host && holds) {
    auto own = vault.AssignedTenant(tenant);
    if (!own.ok()) return own.status();
    auto members = AssignedMembers(vault, tenant, tenant);
    if (!members.ok()) return members.status();
    auto n = VersionCount(vault, tenant);
    if (!n.ok()) return n.status();
    if (!own->has_value() && (*n > 0 || members->empty())) {
      pin.push_back(tenant);
    }
  }
  return pin;
}

}  // namespace

absl::StatusOr<AssignResult> AssignTenant(Vault& vault,
                                          std::string_view host_in,
                                          std::string_view tenant_in,
                                          const AssignOptions& options) {
  if (auto s = ValidateName("host", host_in); !s.ok()) return s;
  if (auto s = ValidateName("tenant", tenant_in); !s.ok()) return s;
  const std::string host(host_in);
  const std::string tenant(tenant_in);
  if (vault.format() != 2) {
    return absl::FailedPreconditionError(
        "this vault has the first format (read-only, one chunk store for "
        "every host): migrate it (cbt-receiver migrate) and assign tenants "
        "in the new vault before its first receive");
  }
  // Exclusive: no receive has fixed its tenant (or is storing chunks under
  // it) while the assignment changes, and no GC groups versions by tenant.
  auto lock =
      vault.store().Lock(kGcLockName, LockMode::kExclusive, options.wait);
  if (!lock.ok()) {
    if (absl::IsUnavailable(lock.status())) {
      return absl::UnavailableError(absl::StrCat(
          "a receive is running on this vault; assign when it is done, "
          "or pass --wait (",
          lock.status().message(), ")"));
    }
    return lock.status();
  }
  AssignResult result;
  auto assigned = vault.AssignedTenant(host);
  if (!assigned.ok()) return assigned.status();
  if (assigned->has_value() && **assigned != tenant) {
    return absl::FailedPreconditionError(absl::StrCat(
        "host '", host, "' is already assigned to tenant '", **assigned,
        "': a host's tenant never changes, because its versions name chunks "
        "stored under it. To back this machine up in tenant '",
        tenant, "', send it under a new host name assigned to it"));
  }
  if (!assigned->has_value()) {
    if (tenant != host) {
      if (auto s = CheckHostMayMove(vault, host, tenant); !s.ok()) return s;
    }
    auto pin = CheckJoin(vault, host, tenant, options);
    if (!pin.ok()) return pin.status();
    for (const std::string& p : *pin) {
      if (auto s = vault.PublishTenantAssignment(p, p); !s.ok()) return s;
    }
    if (auto s = vault.PublishTenantAssignment(host, tenant); !s.ok()) {
      return s;
    }
    result.pinned = *std::move(pin);
  } else {
    result.already = true;
  }
  auto key = vault.TenantKeyFingerprint(tenant);
  if (!key.ok()) return key.status();
  result.key_fingerprint = *key;
  return result;
}

absl::StatusOr<std::vector<TenantSummary>> ListTenants(Vault& vault) {
  auto assignments = vault.TenantAssignments();
  if (!assignments.ok()) return assignments.status();
  auto volumes = vault.ListVolumes();
  if (!volumes.ok()) return volumes.status();
  std::map<std::string, TenantSummary> out;
  for (const auto& [host, tenant] : *assignments) {
    out[tenant].hosts.push_back({host, true});
  }
  std::set<std::string> unassigned;
  for (const VolumeName& v : *volumes) {
    if (!assignments->contains(v.host)) unassigned.insert(v.host);
  }
  for (const std::string& host : unassigned) {
    out[host].hosts.push_back({host, false});
  }
  if (vault.chunk_index() != nullptr) {
    auto tenants = vault.chunk_index()->ListTenants();
    if (!tenants.ok()) return tenants.status();
    for (const std::string& t : *tenants) out[t];
  }
  std::vector<TenantSummary> list;
  for (auto& [name, summary] : out) {
    summary.tenant = name;
    std::sort(summary.hosts.begin(), summary.hosts.end(),
              [](const TenantHost& a, const TenantHost& b) {
                return a.host < b.host;
              });
    auto key = vault.TenantKeyFingerprint(name);
    if (!key.ok()) return key.status();
    summary.key_fingerprint = *key;
    auto packs = PacksOf(vault, name);
    if (!packs.ok()) return packs.status();
    summary.packs = packs->size();
    for (const PackInfo& p : *packs) summary.pack_bytes += p.size_bytes;
    list.push_back(std::move(summary));
  }
  return list;
}

}  // namespace cbtd::receiver
