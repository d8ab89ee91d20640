// Tenants: which hosts share chunks (docs/vault.md, "Tenants").
//
// A host is its own tenant unless the operator assigns it to another with
// AssignTenant, which writes host-tenants/<host> once (publish-if-absent)
// and never changes or removes it: the host's versions name chunks by id
// only, and the assignment is what says in which tenant's packs they are.
// Hosts of one tenant deduplicate against each other, can reference and
// restore each other's chunks, learn which chunks the tenant holds, and
// share one key (or none).
//
// Thread-safety: AssignTenant holds the vault's GC lock exclusively, so
// it never runs during a receive (which fixes its tenant when it opens)
// or a GC; ListTenants only reads.
#ifndef CBTD_RECEIVER_TENANTS_H_
#define CBTD_RECEIVER_TENANTS_H_

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"
#include "receiver/vault.h"

namespace cbtd::receiver {

struct AssignOptions {
  // Allow joining a tenant that already holds chunks (packs) or versions:
  // the host then shares them (reads them by reference, learns they exist).
  bool join_existing = false;
  // Wait for running receives and GCs instead of refusing (UNAVAILABLE).
  bool wait = false;
};

struct AssignResult {
  bool already = false;  // the host was assigned to this tenant before
  // Hosts pinned to their own tenant because `tenant` was it: the host of
  // that name, whose versions must keep naming the tenant they were made in.
  std::vector<std::string> pinned;
  std::string key_fingerprint;  // the tenant's key, "" if none (yet)
};

// Assigns `host` to `tenant`. OK (already = true) if it is assigned to it.
// Refuses, with a message saying what to do and writing nothing:
//  * INVALID_ARGUMENT: an invalid host or tenant name (ValidateName);
//  * FAILED_PRECONDITION: a format-1 vault; the host is assigned to another
//    tenant; the host has versions, or chunks under its own tenant, and
//    `tenant` is another one (its versions name chunks there); `tenant`
//    already holds packs or versions and !join_existing;
//  * UNAVAILABLE: a receive or GC is running and !wait.
// When `tenant` is the tenant of an unassigned host of that name that
// holds versions or packs, that host is first assigned to it (pinned), so
// it stays in it rather than being refused as ungrouped (Vault::TenantOf).
absl::StatusOr<AssignResult> AssignTenant(Vault& vault, std::string_view host,
                                          std::string_view tenant,
                                          const AssignOptions& options);

struct TenantHost {
  std::string host;
  bool assigned = false;  // by host-tenants/<host>; else its own by name
};

struct TenantSummary {
  std::string tenant;
  std::vector<TenantHost> hosts;  // sorted
  std::string key_fingerprint;    // "" for plaintext or not yet bound
  uint64_t packs = 0;
  uint64_t pack_bytes = 0;
};

// Every tenant that has a host (assigned, or with versions) or packs,
// sorted by name. Errors: DATA_LOSS for a damaged assignment or key object.
absl::StatusOr<std::vector<TenantSummary>> ListTenants(Vault& vault);

}  // namespace cbtd::receiver

#endif  // CBTD_RECEIVER_TENANTS_H_
