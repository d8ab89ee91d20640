// The receiver's session rules without gRPC: open, resume, takeover,
// quota, expiry, framing, with a fake backend and a fake clock.
#include "transport/session_table.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <map>

#include "transport/stream_index.h"

namespace cbtd::transport {
namespace {

using ::testing::HasSubstr;
using Clock = SessionTable::Clock;

constexpr uint32_t kChunk = 4096;

// What the fake backend saw of one session.
struct Seen {
  int records = 0;
  bool aborted = false;
  bool committed = false;
};

class FakeBackend : public ReceiveBackend {
 public:
  class Upload : public UploadSession {
   public:
    explicit Upload(Seen* seen) : seen_(seen) {}
    absl::StatusOr<std::vector<bool>> HaveChunks(
        std::span<const ChunkHash> hashes) override {
      return std::vector<bool>(hashes.size(), false);
    }
    absl::Status Apply(const stream::Record&) override {
      ++seen_->records;
      return absl::OkStatus();
    }
    absl::StatusOr<CommitResult> Commit(const stream::Trailer& t) override {
      if (t.chunk_records() != static_cast<uint64_t>(seen_->records)) {
        return absl::InvalidArgumentError("records were lost");
      }
      seen_->committed = true;
      return CommitResult{"v", ChunkHash()};
    }
    void Abort() override { seen_->aborted = true; }

   private:
    Seen* seen_;
  };

  absl::StatusOr<std::unique_ptr<UploadSession>> OpenSession(
      const stream::Header& h) override {
    if (h.new_version_id() == "taken") {
      return absl::AlreadyExistsError("version taken already exists");
    }
    seen.push_back(std::make_unique<Seen>());
    return std::make_unique<Upload>(seen.back().get());
  }
  absl::StatusOr<std::vector<VersionSummary>> ListVersions(
      const std::string&, const std::string&) override {
    return std::vector<VersionSummary>{};
  }
  absl::StatusOr<VersionIndex> GetIndex(const std::string&, const std::string&,
                                        const std::string&) override {
    return absl::NotFoundError("none");
  }
  absl::StatusOr<std::unique_ptr<ChunkSource>> OpenChunks(
      const std::string&, const std::string&, const std::string&) override {
    return absl::NotFoundError("none");
  }
  absl::StatusOr<PruneOutcome> Prune(const std::string&, const std::string&,
                                     const PruneRule&, bool,
                                     const PruneScope&) override {
    return absl::NotFoundError("none");
  }
  absl::Status CommitGroup(const std::string&, const GroupCommit&) override {
    return absl::NotFoundError("none");
  }
  absl::StatusOr<int64_t> HoldVersion(const std::string&, const std::string&,
                                      const std::string&, uint32_t) override {
    return absl::NotFoundError("none");
  }

  std::vector<std::unique_ptr<Seen>> seen;  // one per opened session
};

class FakeStream : public StreamHandle {
 public:
  void Cancel() override { ++cancels; }
  int cancels = 0;
};

stream::Header Header(const std::string& host, const std::string& volume,
                      const std::string& version) {
  stream::Header h;
  h.set_source_host(host);
  h.set_volume_id(volume);
  h.set_new_version_id(version);
  h.set_volume_size_bytes(10 * kChunk);
  h.set_chunk_size_bytes(kChunk);
  return h;
}

stream::Record Chunk(uint64_t index) {
  stream::Record r;
  r.mutable_chunk()->set_chunk_index(index);
  return r;
}

stream::Record Trailer(uint64_t chunks) {
  stream::Record r;
  r.mutable_trailer()->set_chunk_records(chunks);
  return r;
}

class SessionTableTest : public ::testing::Test {
 protected:
  SessionTableTest() { Make({}); }
  void Make(SessionLimits limits) {
    table_.reset();
    table_ = std::make_unique<SessionTable>(backend_, limits,
                                            [this] { return now_; });
  }
  FakeBackend backend_;
  Clock::time_point now_ = Clock::now();
  std::unique_ptr<SessionTable> table_;
};

TEST_F(SessionTableTest, OpenAttachApplyCommit) {
  auto s = table_->Open("h", Header("h", "vol", "v1"), "t1");
  ASSERT_TRUE(s.ok()) << s.status();
  EXPECT_EQ(table_->open_sessions(), 1);
  FakeStream stream;
  auto up = table_->Attach("h", s->id, &stream);
  ASSERT_TRUE(up.ok()) << up.status();
  auto ack = (*up)->Apply(Chunk(0));
  ASSERT_TRUE(ack.ok()) << ack.status();
  EXPECT_EQ(ack->next_chunk_index, 1u);
  EXPECT_EQ(ack->records_applied, 1u);
  auto done = (*up)->Apply(Trailer(1));
  ASSERT_TRUE(done.ok()) << done.status();
  ASSERT_TRUE(done->committed.has_value());
  EXPECT_TRUE(backend_.seen[0]->committed);
  EXPECT_EQ(table_->open_sessions(), 0);
  // A late resume (the Committed answer was lost) learns the commit.
  up->reset();
  auto late = table_->Resume("h", s->id, Header("h", "vol", "v1"));
  ASSERT_TRUE(late.ok()) << late.status();
  EXPECT_TRUE(late->committed.has_value());
}

TEST_F(SessionTableTest, RepeatedOpenTokenGetsTheSameSession) {
  auto a = table_->Open("h", Header("h", "vol", "v1"), "t1");
  auto b = table_->Open("h", Header("h", "vol", "v1"), "t1");
  ASSERT_TRUE(a.ok() && b.ok());
  EXPECT_EQ(a->id, b->id);
  EXPECT_EQ(backend_.seen.size(), 1u);
  EXPECT_FALSE(backend_.seen[0]->aborted);
}

// Fault 5 of issue 13, at the level of the rules: a new run of the same
// host takes the volume over at once; the old session is aborted (its
// records never commit) and its id answers "taken over".
TEST_F(SessionTableTest, SameHostTakesOverAnAbandonedSessionAtOnce) {
  auto old = table_->Open("h", Header("h", "vol", "old"), "run1");
  ASSERT_TRUE(old.ok());
  FakeStream old_stream;
  {
    auto up = table_->Attach("h", old->id, &old_stream);
    ASSERT_TRUE(up.ok());
    ASSERT_TRUE((*up)->Apply(Chunk(0)).ok());
  }  // the sender dies: the stream ends, the session waits for a resume

  auto fresh = table_->Open("h", Header("h", "vol", "new"), "run2");
  ASSERT_TRUE(fresh.ok()) << "the volume of a dead sender is locked: "
                          << fresh.status();
  EXPECT_NE(fresh->id, old->id);
  EXPECT_TRUE(backend_.seen[0]->aborted);
  EXPECT_FALSE(backend_.seen[0]->committed);
  EXPECT_EQ(table_->open_sessions(), 1);

  for (const absl::Status& st :
       {table_->Resume("h", old->id, Header("h", "vol", "old")).status(),
        table_->HaveChunks("h", old->id, {}).status(),
        table_->Attach("h", old->id, &old_stream).status()}) {
    EXPECT_EQ(st.code(), absl::StatusCode::kFailedPrecondition) << st;
    EXPECT_THAT(std::string(st.message()), HasSubstr("taken over"));
  }
  // The id is forgotten after the resume ttl, like any ended session.
  now_ += std::chrono::minutes(11);
  table_->Reap();
  EXPECT_EQ(
      table_->Resume("h", old->id, Header("h", "vol", "old")).status().code(),
      absl::StatusCode::kNotFound);
}

TEST_F(SessionTableTest, TakeoverCancelsAStreamStillAttached) {
  auto old = table_->Open("h", Header("h", "vol", "old"), "run1");
  ASSERT_TRUE(old.ok());
  FakeStream old_stream;
  auto up = table_->Attach("h", old->id, &old_stream);
  ASSERT_TRUE(up.ok());
  ASSERT_TRUE((*up)->Apply(Chunk(0)).ok());

  ASSERT_TRUE(table_->Open("h", Header("h", "vol", "new"), "run2").ok());
  EXPECT_GE(old_stream.cancels, 1);
  // The old stream's next record is refused: nothing more of it is
  // applied, and it cannot commit.
  auto next = (*up)->Apply(Chunk(1));
  EXPECT_EQ(next.status().code(), absl::StatusCode::kFailedPrecondition);
  auto commit = (*up)->Apply(Trailer(1));
  EXPECT_FALSE(commit.ok());
  EXPECT_EQ(backend_.seen[0]->records, 1);
  EXPECT_FALSE(backend_.seen[0]->committed);
}

TEST_F(SessionTableTest, AnotherIdentityCannotUseOrSeeASession) {
  auto s = table_->Open("h", Header("h", "vol", "v1"), "t");
  ASSERT_TRUE(s.ok());
  FakeStream stream;
  EXPECT_EQ(table_->Attach("other", s->id, &stream).status().code(),
            absl::StatusCode::kNotFound);
  EXPECT_EQ(table_->HaveChunks("other", s->id, {}).status().code(),
            absl::StatusCode::kNotFound);
  EXPECT_EQ(
      table_->Resume("other", s->id, Header("h", "vol", "v1")).status().code(),
      absl::StatusCode::kNotFound);
  EXPECT_FALSE(backend_.seen[0]->aborted);
}

TEST_F(SessionTableTest, ResumeNeedsTheSameHeader) {
  auto s = table_->Open("h", Header("h", "vol", "v1"), "t");
  ASSERT_TRUE(s.ok());
  EXPECT_EQ(
      table_->Resume("h", s->id, Header("h", "vol", "v2")).status().code(),
      absl::StatusCode::kInvalidArgument);
}

TEST_F(SessionTableTest, QuotaCountsUncommittedSessions) {
  Make({.max_sessions = 2});
  ASSERT_TRUE(table_->Open("a", Header("a", "v", "1"), "t").ok());
  ASSERT_TRUE(table_->Open("b", Header("b", "v", "1"), "t").ok());
  auto third = table_->Open("c", Header("c", "v", "1"), "t");
  EXPECT_EQ(third.status().code(), absl::StatusCode::kResourceExhausted);
  // A takeover replaces a session: it is not one more.
  EXPECT_TRUE(table_->Open("a", Header("a", "v", "2"), "t2").ok());
}

TEST_F(SessionTableTest, BackendRefusalFreesTheVolume) {
  auto s = table_->Open("h", Header("h", "vol", "taken"), "t");
  EXPECT_EQ(s.status().code(), absl::StatusCode::kAlreadyExists);
  EXPECT_EQ(table_->open_sessions(), 0);
  EXPECT_TRUE(table_->Open("h", Header("h", "vol", "v1"), "t").ok());
}

TEST_F(SessionTableTest, RefusedRecordAbortsTheSession) {
  auto s = table_->Open("h", Header("h", "vol", "v1"), "t");
  ASSERT_TRUE(s.ok());
  FakeStream stream;
  auto up = table_->Attach("h", s->id, &stream);
  ASSERT_TRUE(up.ok());
  ASSERT_TRUE((*up)->Apply(Chunk(3)).ok());
  auto back = (*up)->Apply(Chunk(2));
  EXPECT_EQ(back.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(back.status().message()), HasSubstr("out-of-order"));
  EXPECT_TRUE(backend_.seen[0]->aborted);
  EXPECT_EQ(table_->open_sessions(), 0);
  auto past = table_->Open("h", Header("h", "vol", "v1"), "t2");
  ASSERT_TRUE(past.ok());
  auto up2 = table_->Attach("h", past->id, &stream);
  ASSERT_TRUE(up2.ok());
  EXPECT_THAT(std::string((*up2)->Apply(Chunk(10)).status().message()),
              HasSubstr("past the end"));
}

TEST_F(SessionTableTest, IdleStreamIsCancelledUnresumedSessionExpires) {
  Make({.idle_timeout = std::chrono::seconds(60),
        .resume_ttl = std::chrono::seconds(600)});
  auto s = table_->Open("h", Header("h", "vol", "v1"), "t");
  ASSERT_TRUE(s.ok());
  FakeStream stream;
  {
    auto up = table_->Attach("h", s->id, &stream);
    ASSERT_TRUE(up.ok());
    now_ += std::chrono::seconds(61);
    table_->Reap();
    EXPECT_EQ(stream.cancels, 1);
    EXPECT_EQ(table_->open_sessions(), 1);  // still resumable
  }
  now_ += std::chrono::seconds(599);
  table_->Reap();
  EXPECT_EQ(table_->open_sessions(), 1);
  now_ += std::chrono::seconds(2);
  table_->Reap();
  EXPECT_EQ(table_->open_sessions(), 0);
  EXPECT_TRUE(backend_.seen[0]->aborted);
  EXPECT_EQ(
      table_->Resume("h", s->id, Header("h", "vol", "v1")).status().code(),
      absl::StatusCode::kNotFound);
}

TEST_F(SessionTableTest, AbortAllAbortsUncommittedSessions) {
  ASSERT_TRUE(table_->Open("h", Header("h", "a", "v1"), "t").ok());
  ASSERT_TRUE(table_->Open("h", Header("h", "b", "v1"), "t").ok());
  table_->AbortAll();
  EXPECT_TRUE(backend_.seen[0]->aborted && backend_.seen[1]->aborted);
  EXPECT_EQ(table_->open_sessions(), 0);
}

}  // namespace
}  // namespace cbtd::transport
