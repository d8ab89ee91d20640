#include "snapshot/device_mapper.h"

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"

namespace cbtd::snapshot {

std::string FormatDmTable(const DmTable& table) {
  return absl::StrJoin(table, "; ", [](std::string* out, const DmTarget& t) {
    absl::StrAppend(out, t.start_sector, " ", t.length_sectors, " ", t.type,
                    " ", t.params);
  });
}

uint64_t DmTableSectors(const DmTable& table) {
  uint64_t sectors = 0;
  for (const DmTarget& t : table) sectors += t.length_sectors;
  return sectors;
}

}  // namespace cbtd::snapshot
