// A scripted CommandRunner: answers by the command line's prefix and
// records every call, so tests can check protocol order.
#ifndef CBTD_TESTS_CBT_FAKE_RUNNER_H_
#define CBTD_TESTS_CBT_FAKE_RUNNER_H_

#include <map>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/str_join.h"
#include "cbt/system.h"

namespace cbtd::cbt {

// Answers to command lines, by prefix: the fakes' shared script.
class ScriptedAnswers {
 public:
  // The longest registered prefix of a line answers.
  void On(const std::string& prefix, absl::StatusOr<std::string> answer) {
    answers_.insert_or_assign(prefix, std::move(answer));
  }
  // Appends `line` to `calls` and returns its answer; UNIMPLEMENTED naming
  // the line when nothing was scripted for it.
  absl::StatusOr<std::string> Answer(const std::string& line,
                                     std::vector<std::string>& calls) const {
    calls.push_back(line);
    const absl::StatusOr<std::string>* best = nullptr;
    size_t best_len = 0;
    for (const auto& [prefix, answer] : answers_) {
      if (line.rfind(prefix, 0) == 0 && prefix.size() >= best_len) {
        best = &answer;
        best_len = prefix.size();
      }
    }
    if (best == nullptr) return absl::UnimplementedError("unscripted: " + line);
    return *best;
  }

 private:
  std::map<std::string, absl::StatusOr<std::string>> answers_;
};

class FakeRunner : public CommandRunner {
 public:
  // The longest registered prefix of "argv joined by spaces" answers.
  void On(const std::string& prefix, absl::StatusOr<std::string> answer) {
    script_.On(prefix, std::move(answer));
  }
  absl::StatusOr<std::string> Run(
      const std::vector<std::string>& argv) override {
    return script_.Answer(absl::StrJoin(argv, " "), calls);
  }
  std::vector<std::string> calls;

 private:
  ScriptedAnswers script_;
};

}  // namespace cbtd::cbt

#endif  // CBTD_TESTS_CBT_FAKE_RUNNER_H_
