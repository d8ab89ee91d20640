#include "cbt/tracking_state.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>

namespace cbtd::cbt {
namespace {

TrackingState Sample(uint64_t thin_id) {
  TrackingState s;
  s.volume = "vg/data";
  s.method = Method::kThinDelta;
  s.generation = "thin:vg-pool-tpool:" + std::to_string(thin_id);
  s.base_snapshot_name = "data_cbtd_" + std::to_string(thin_id);
  s.base_snapshot_uuid = "abc";
  s.base_thin_id = thin_id;
  s.base_version_id = "v" + std::to_string(thin_id);
  s.base_root_hash = "00ff";
  return s;
}

class TempDir {
 public:
  TempDir() {
    std::string tmpl =
        std::filesystem::temp_directory_path() / "cbtstate.XXXXXX";
    path_ = ::mkdtemp(tmpl.data());
  }
  ~TempDir() { std::filesystem::remove_all(path_); }
  const std::string& path() const { return path_; }

 private:
  std::string path_;
};

// Wraps the real atomic I/O; a save can be made to lose its second half
// (as a crash on a store without the atomic protocol would) or vanish.
class FaultyIo : public StateFileIo {
 public:
  enum class Fault { kNone, kTornWrite, kDroppedWrite, kBitFlip };
  Fault fault = Fault::kNone;
  absl::Status Write(const std::string& path,
                     std::string_view contents) override {
    switch (fault) {
      case Fault::kNone:
        return real_->Write(path, contents);
      case Fault::kTornWrite:
        return real_->Write(path, contents.substr(0, contents.size() / 2));
      case Fault::kDroppedWrite:
        return absl::OkStatus();
      case Fault::kBitFlip: {
        std::string c(contents);
        c[c.find("\\\"base_thin_id\\\":") + 17] ^= 1;
        return real_->Write(path, c);
      }
    }
    return absl::OkStatus();
  }
  absl::StatusOr<std::string> Read(const std::string& path) override {
    return real_->Read(path);
  }

 private:
  std::unique_ptr<StateFileIo> real_ = NewAtomicStateFileIo();
};

TEST(TrackingStateTest, RoundTrip) {
  TempDir dir;
  TrackingStateStore store(dir.path(), NewAtomicStateFileIo());
  ASSERT_TRUE(store.Save(Sample(3)).ok());
  absl::StatusOr<LoadedState> l = store.Load("vg/data");
  ASSERT_TRUE(l.ok());
  ASSERT_TRUE(l->state.has_value()) << l->lost_reason;
  EXPECT_EQ(*l->state, Sample(3));
}

TEST(TrackingStateTest, MissingIsLostFirstRun) {
  TempDir dir;
  TrackingStateStore store(dir.path(), NewAtomicStateFileIo());
  absl::StatusOr<LoadedState> l = store.Load("vg/data");
  ASSERT_TRUE(l.ok());
  EXPECT_FALSE(l->state.has_value());
  EXPECT_NE(l->lost_reason.find("no tracking state"), std::string::npos);
}

TEST(TrackingStateTest, TornSaveIsReportedLostNeverValid) {
  TempDir dir;
  auto io = std::make_unique<FaultyIo>();
  FaultyIo* faulty = io.get();
  TrackingStateStore store(dir.path(), std::move(io));
  ASSERT_TRUE(store.Save(Sample(3)).ok());
  faulty->fault = FaultyIo::Fault::kTornWrite;
  ASSERT_TRUE(store.Save(Sample(4)).ok());
  absl::StatusOr<LoadedState> l = store.Load("vg/data");
  ASSERT_TRUE(l.ok());
  EXPECT_FALSE(l->state.has_value());
  EXPECT_NE(l->lost_reason.find("unreadable"), std::string::npos)
      << l->lost_reason;
}

TEST(TrackingStateTest, CorruptedRecordIsLost) {
  TempDir dir;
  auto io = std::make_unique<FaultyIo>();
  io->fault = FaultyIo::Fault::kBitFlip;
  TrackingStateStore store(dir.path(), std::move(io));
  ASSERT_TRUE(store.Save(Sample(3)).ok());
  absl::StatusOr<LoadedState> l = store.Load("vg/data");
  ASSERT_TRUE(l.ok());
  EXPECT_FALSE(l->state.has_value());
  EXPECT_NE(l->lost_reason.find("checksum"), std::string::npos)
      << l->lost_reason;
}

TEST(TrackingStateTest, DroppedSaveKeepsTheOldBase) {
  // A save that never reached the disk leaves the previous record, whose
  // base still covers everything since the last commit (the old snapshot
  // is kept until the new state is durable).
  TempDir dir;
  auto io = std::make_unique<FaultyIo>();
  FaultyIo* faulty = io.get();
  TrackingStateStore store(dir.path(), std::move(io));
  ASSERT_TRUE(store.Save(Sample(3)).ok());
  faulty->fault = FaultyIo::Fault::kDroppedWrite;
  ASSERT_TRUE(store.Save(Sample(4)).ok());
  absl::StatusOr<LoadedState> l = store.Load("vg/data");
  ASSERT_TRUE(l.ok());
  ASSERT_TRUE(l->state.has_value());
  EXPECT_EQ(l->state->base_thin_id, 3u);
}

TEST(TrackingStateTest, RecordOfAnotherVolumeIsLost) {
  TempDir dir;
  TrackingStateStore store(dir.path(), NewAtomicStateFileIo());
  ASSERT_TRUE(store.Save(Sample(3)).ok());
  std::filesystem::copy_file(store.PathFor("vg/data"),
                             store.PathFor("vg/other"));
  absl::StatusOr<LoadedState> l = store.Load("vg/other");
  ASSERT_TRUE(l.ok());
  EXPECT_FALSE(l->state.has_value());
}

TEST(TrackingStateTest, PathEscapesSlashes) {
  TrackingStateStore store("/d", NewAtomicStateFileIo());
  EXPECT_EQ(store.PathFor("vg/data-1"), "/d/vg_2fdata-1.json");
}

}  // namespace
}  // namespace cbtd::cbt
