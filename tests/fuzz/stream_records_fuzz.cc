// libFuzzer: the stream record decoder (transport/stream_codec.h) on any
// bytes. Every input either decodes into records or stops with an error;
// no crash, no sanitizer report, no unbounded allocation.
#include <cstddef>
#include <cstdint>
#include <string>

#include "transport/stream_codec.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  cbtd::transport::StreamReader reader(cbtd::transport::StringByteSource(
      std::string(reinterpret_cast<const char*>(data), size)));
  for (int i = 0; i < 1 << 16; ++i) {
    auto r = reader.Next();
    if (!r.ok() || !r->has_value()) break;
    if ((*r)->has_header())
      (void)cbtd::transport::CheckHeaderChecksum((*r)->header());
  }
  (void)reader.AtEnd();
  return 0;
}
