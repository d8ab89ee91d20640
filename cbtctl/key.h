// cbtctl key: create, show, export and import the tenant key that seals
// this host's backups (transport/tenant_key.h, transport/key_file.h). Runs
// without the daemon, on the key file directly.
#ifndef CBTD_CBTCTL_KEY_H_
#define CBTD_CBTCTL_KEY_H_

#include <istream>
#include <ostream>
#include <span>

namespace cbtd::cbtctl {

// `cbtctl key ACTION [--key-file F] [--json]`; args[0] is "key". Reads the
// recovery text of `import` from `in`; writes results to `out` and
// messages to `err`. Returns an exit code from common/cli.h: 6 when the key
// file is missing, 3 when refused (a key already exists, wrong mode, bad
// recovery text), 4 when the key file is damaged, 2 on a usage error.
int RunKey(std::span<char*> args, std::istream& in, std::ostream& out,
           std::ostream& err);

}  // namespace cbtd::cbtctl

#endif  // CBTD_CBTCTL_KEY_H_
