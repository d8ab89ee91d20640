// A scripted cbt::DeviceMapper. Each call is written as the dmsetup command
// that would do the same ("dmsetup message vg-pool-tpool 0
// reserve_metadata_snap"), recorded in a call list it may share with a
// FakeRunner (so one list shows the order of dm operations and tools), and
// answered by prefix like FakeRunner:
//   Table / Status   "dmsetup table|status NAME": the text dmsetup would
//                    print ("0 409600 thin-pool 3 ..."), one target a line
//   Message          "dmsetup message NAME SECTOR TEXT": the reply
//   Uuid             "dmsetup info -c --noheadings -o uuid NAME": the UUID;
//                    NOT_FOUND means there is no device NAME
//   Create / Remove  "dmsetup create NAME --uuid UUID --table TABLE",
//                    "dmsetup remove NAME": only the status counts
#ifndef CBTD_TESTS_CBT_FAKE_DEVICE_MAPPER_H_
#define CBTD_TESTS_CBT_FAKE_DEVICE_MAPPER_H_

#include <optional>
#include <string>
#include <vector>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "cbt/device_mapper.h"
#include "tests/cbt/fake_runner.h"

namespace cbtd::cbt {

class FakeDeviceMapper : public DeviceMapper {
 public:
  // Records into `calls`, which must outlive the fake.
  explicit FakeDeviceMapper(std::vector<std::string>& calls) : calls_(calls) {}

  void On(const std::string& prefix, absl::StatusOr<std::string> answer) {
    script_.On(prefix, std::move(answer));
  }

  absl::StatusOr<DmTable> Table(const std::string& name) override {
    return Parse(Ask(absl::StrCat("dmsetup table ", name)));
  }
  absl::StatusOr<DmTable> Status(const std::string& name) override {
    return Parse(Ask(absl::StrCat("dmsetup status ", name)));
  }
  absl::StatusOr<std::string> Message(const std::string& name, uint64_t sector,
                                      const std::string& text) override {
    return Ask(absl::StrCat("dmsetup message ", name, " ", sector, " ", text));
  }
  absl::Status Create(const std::string& name, const std::string& uuid,
                      const DmTable& table) override {
    return Ask(absl::StrCat("dmsetup create ", name, " --uuid ", uuid,
                            " --table ", common::FormatDmTable(table)))
        .status();
  }
  absl::Status Remove(const std::string& name) override {
    return Ask(absl::StrCat("dmsetup remove ", name)).status();
  }
  absl::StatusOr<std::optional<std::string>> Uuid(
      const std::string& name) override {
    absl::StatusOr<std::string> uuid =
        Ask(absl::StrCat("dmsetup info -c --noheadings -o uuid ", name));
    if (absl::IsNotFound(uuid.status())) return std::optional<std::string>();
    if (!uuid.ok()) return uuid.status();
    return std::optional<std::string>(*uuid);
  }

 private:
  absl::StatusOr<std::string> Ask(const std::string& line) {
    return script_.Answer(line, calls_);
  }

  // "start length type params..." lines; a malformed line is a test bug.
  static absl::StatusOr<DmTable> Parse(absl::StatusOr<std::string> text) {
    if (!text.ok()) return text.status();
    DmTable table;
    for (absl::string_view line : absl::StrSplit(*text, '\n')) {
      std::vector<std::string> f =
          absl::StrSplit(line, absl::MaxSplits(' ', 3), absl::SkipEmpty());
      if (f.empty()) continue;
      DmTarget t;
      if (f.size() < 3 || !absl::SimpleAtoi(f[0], &t.start_sector) ||
          !absl::SimpleAtoi(f[1], &t.length_sectors)) {
        return absl::InternalError(
            absl::StrCat("fake: bad scripted target '", line, "'"));
      }
      t.type = f[2];
      if (f.size() == 4) t.params = f[3];
      table.push_back(std::move(t));
    }
    return table;
  }

  std::vector<std::string>& calls_;
  ScriptedAnswers script_;
};

}  // namespace cbtd::cbt

#endif  // CBTD_TESTS_CBT_FAKE_DEVICE_MAPPER_H_
