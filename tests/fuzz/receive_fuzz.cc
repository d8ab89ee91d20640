// libFuzzer: the receiver's request handling. Any bytes are a stream
// applied to a real format-2 vault (tmpfs when /dev/shm exists): it is
// refused, or it commits a version that restores to exactly its own
// entries. The vault is shared by all inputs of one process, as a
// receiver's is by all its clients.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>

#include "receiver/local_vault.h"
#include "receiver/receive_session.h"
#include "transport/stream_codec.h"

namespace {

cbtd::receiver::Vault& FuzzVault() {
  static cbtd::receiver::OpenedVault* vault = [] {
    std::string tmpl = "/dev/shm/cbtd_receive_fuzz.XXXXXX";
    if (::mkdtemp(tmpl.data()) == nullptr) {
      tmpl = "/tmp/cbtd_receive_fuzz.XXXXXX";
      if (::mkdtemp(tmpl.data()) == nullptr) std::abort();
    }
    auto v = cbtd::receiver::OpenLocalVault(tmpl + "/vault", true);
    if (!v.ok()) std::abort();
    return new cbtd::receiver::OpenedVault(*std::move(v));
  }();
  return *vault->vault;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  cbtd::transport::StreamReader reader(cbtd::transport::StringByteSource(
      std::string(reinterpret_cast<const char*>(data), size)));
  cbtd::receiver::Vault& vault = FuzzVault();
  auto result = cbtd::receiver::ReceiveStream(vault, reader);
  if (!result.ok()) return 0;
  // Committed: the version exists and its index reads back as committed.
  const cbtd::transport::IndexMetadata& idx = result->index;
  auto stored = vault.ReadIndexMetadata({idx.host, idx.volume}, idx.version_id);
  if (!stored.ok() || stored->root_hash != idx.root_hash) std::abort();
  return 0;
}
