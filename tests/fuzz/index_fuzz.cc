// libFuzzer: the version index parser (transport/stream_index.h). A parsed
// index encodes again into an object that parses to the same index.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string_view>

#include "transport/stream_index.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace cbtd::transport;
  auto idx = DecodeIndex(
      std::string_view(reinterpret_cast<const char*>(data), size), "fuzz");
  if (!idx.ok()) return 0;
  auto again = DecodeIndex(EncodeIndex(*idx), "fuzz re-encoded");
  if (!again.ok() || again->entries != idx->entries ||
      again->root_hash != idx->root_hash) {
    std::abort();
  }
  return 0;
}
