#include "snapshot/device_mapper.h"

#include <vector>

#include "absl/strings/numbers.h"
#include "absl/strings/str_split.h"

namespace cbtd::snapshot {

uint64_t DmTableSectors(const DmTable& table) {
  uint64_t sectors = 0;
  for (const DmTarget& t : table) sectors += t.length_sectors;
  return sectors;
}

namespace {

// used/total sectors of a snapshot status; false if it has none.
bool UsedAndTotal(const std::string& status, uint64_t& used, uint64_t& total) {
  const std::vector<std::string> words = absl::StrSplit(status, ' ');
  const std::vector<std::string> parts = absl::StrSplit(words[0], '/');
  return parts.size() == 2 && absl::SimpleAtoi(parts[0], &used) &&
         absl::SimpleAtoi(parts[1], &total) && total != 0;
}

}  // namespace

std::optional<double> SnapshotFillPercent(const std::string& status) {
  uint64_t used = 0, total = 0;
  if (!UsedAndTotal(status, used, total)) return std::nullopt;
  return 100.0 * static_cast<double>(used) / static_cast<double>(total);
}

uint64_t SnapshotCowBytes(const std::string& status) {
  uint64_t used = 0, total = 0;
  return UsedAndTotal(status, used, total) ? total * 512 : 0;
}

}  // namespace cbtd::snapshot
