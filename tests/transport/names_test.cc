// Issue 13, security: names with "../", "/", NUL or over-long are refused
// by the one rule (transport/names.h), at the sender before a byte is read,
// naming the argument, and printed without raw control bytes.
#include "transport/names.h"

#include <string>

#include "absl/strings/str_cat.h"
#include "common/block_reader.h"
#include "gtest/gtest.h"
#include "transport/record_sink.h"
#include "transport/stream_producer.h"

namespace cbtd::transport {
namespace {

TEST(NamesTest, PlainNamesPass) {
  for (const char* ok : {"db", "vg0-root", "host.example.com", "a_b", "V1",
                         "20261130T101500Z"}) {
    EXPECT_TRUE(ValidateName("volume", ok).ok()) << ok;
  }
  EXPECT_TRUE(ValidateName("volume", std::string(kMaxNameBytes, 'a')).ok());
}

TEST(NamesTest, PathsNulControlAndOverlongAreRefusedNamingTheArgument) {
  const std::string nul("a\0b", 3);
  for (const std::string& bad :
       {std::string(""), std::string(".."), std::string("../etc"),
        std::string("a/b"), std::string("/abs"), std::string(".hidden"), nul,
        std::string("tab\there"), std::string("a@b"), std::string("ü"),
        std::string(kMaxNameBytes + 1, 'a')}) {
    absl::Status s = ValidateName("--volume", bad);
    EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument) << bad;
    EXPECT_NE(s.message().find("invalid --volume '"), std::string::npos) << s;
  }
  // Unprintable bytes are escaped, never written raw to a terminal.
  absl::Status s = ValidateName("host", nul);
  EXPECT_EQ(s.message().find('\0'), std::string::npos);
  EXPECT_NE(s.message().find("a\\x00"), std::string::npos) << s;
  // A huge name is cut in the message.
  s = ValidateName("host", std::string(100000, 'x'));
  EXPECT_LT(s.message().size(), 400u) << s.message().size();
  EXPECT_NE(s.message().find("100000 bytes"), std::string::npos);
}

class CountingSink : public RecordSink {
 public:
  absl::Status Put(const stream::Record&) override {
    ++records;
    return absl::OkStatus();
  }
  absl::Status Finish() override { return absl::OkStatus(); }
  int records = 0;
};

TEST(NamesTest, ProducerRefusesBadNamesBeforeEmittingAnything) {
  const std::string data(64 * 1024, 'x');
  common::MemoryBlockReader dev(data);
  ProducerOptions po;
  po.host = "h";
  po.volume = "db";
  po.version_id = "v1";
  po.chunk_size_bytes = 64 * 1024;
  for (auto [field, what] : {std::pair{&po.host, "host"},
                             {&po.volume, "volume"},
                             {&po.version_id, "version id"}}) {
    const std::string keep = *field;
    *field = "../x";
    CountingSink sink;
    auto r = ProduceStream(dev, cbt::ExtentSet{{0, data.size()}}, {}, nullptr,
                           po, sink);
    *field = keep;
    EXPECT_EQ(r.status().code(), absl::StatusCode::kInvalidArgument) << what;
    EXPECT_NE(r.status().message().find(absl::StrCat("invalid ", what)),
              std::string::npos)
        << r.status();
    EXPECT_EQ(sink.records, 0) << what;
  }
}

}  // namespace
}  // namespace cbtd::transport
