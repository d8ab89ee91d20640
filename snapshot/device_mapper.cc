#include "snapshot/device_mapper.h"

namespace cbtd::snapshot {

uint64_t DmTableSectors(const DmTable& table) {
  uint64_t sectors = 0;
  for (const DmTarget& t : table) sectors += t.length_sectors;
  return sectors;
}

}  // namespace cbtd::snapshot
