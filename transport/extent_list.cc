#include "transport/extent_list.h"

#include <charconv>

#include "absl/strings/str_cat.h"

namespace cbtd::transport {

absl::StatusOr<cbt::ExtentSet> ParseExtentList(std::string_view text,
                                               std::string_view what) {
  cbt::ExtentSet set;
  size_t line_no = 0;
  size_t pos = 0;
  while (pos < text.size()) {
    size_t end = text.find('\n', pos);
    if (end == std::string_view::npos) end = text.size();
    std::string_view line = text.substr(pos, end - pos);
    pos = end + 1;
    ++line_no;
    if (size_t hash = line.find('#'); hash != std::string_view::npos) {
      line = line.substr(0, hash);
    }
    uint64_t values[2];
    int got = 0;
    size_t i = 0;
    bool bad = false;
    while (i < line.size()) {
      if (line[i] == ' ' || line[i] == '\t' || line[i] == '\r') {
        ++i;
        continue;
      }
      if (got == 2) {
        bad = true;
        break;
      }
      int base = 10;
      if (line.substr(i, 2) == "0x" || line.substr(i, 2) == "0X") {
        base = 16;
        i += 2;
      }
      auto [ptr, ec] = std::from_chars(
          line.data() + i, line.data() + line.size(), values[got], base);
      if (ec != std::errc() || ptr == line.data() + i) {
        bad = true;
        break;
      }
      i = static_cast<size_t>(ptr - line.data());
      ++got;
    }
    if (got == 0 && !bad) continue;
    if (bad || got != 2 || values[0] + values[1] < values[0]) {
      return absl::InvalidArgumentError(
          absl::StrCat(std::string(what), " line ", line_no,
                       ": expected 'OFFSET LENGTH' in bytes, got '",
                       std::string(line), "'"));
    }
    set.Add(values[0], values[1]);
  }
  return set;
}

}  // namespace cbtd::transport
