// libFuzzer: the pack parser (receiver/pack.h) and the chunk record
// decoder over every range a parsed footer names.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string_view>

#include "receiver/pack.h"
#include "receiver/vault.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace cbtd::receiver;
  const std::string_view pack(reinterpret_cast<const char*>(data), size);
  auto entries = ParsePack(pack, "fuzz");
  if (!entries.ok()) {
    // The same bytes as one chunk record.
    (void)DecodeStoredRecord(pack, cbtd::transport::ChunkHash(), "fuzz record");
    return 0;
  }
  for (const PackEntry& e : *entries) {
    // Within the pack: ParsePack checked every range.
    if (e.offset_bytes + e.length_bytes > pack.size()) std::abort();
    (void)DecodeStoredRecord(pack.substr(e.offset_bytes, e.length_bytes), e.id,
                             "fuzz entry");
  }
  return 0;
}
