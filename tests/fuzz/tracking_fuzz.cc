// libFuzzer: the parsers of what the kernel's tools report about changed
// blocks: thin_delta XML, era_invalidate XML, the dm-snapshot COW table.
// The first byte picks the parser.
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "cbt/cow_store.h"
#include "cbt/era_xml.h"
#include "cbt/thin_delta_xml.h"
#include "common/block_reader.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size == 0) return 0;
  const std::string_view rest(reinterpret_cast<const char*>(data) + 1,
                              size - 1);
  switch (data[0] % 3) {
    case 0:
      (void)cbtd::cbt::ParseThinDeltaXml(rest);
      break;
    case 1:
      (void)cbtd::cbt::ParseEraInvalidateXml(rest, 128);
      break;
    case 2: {
      const std::string bytes(rest);
      cbtd::common::MemoryBlockReader cow(bytes);
      (void)cbtd::cbt::ReadCowTable(cow, uint64_t{1} << 30);
      break;
    }
  }
  return 0;
}
