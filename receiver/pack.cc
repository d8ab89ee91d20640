#include "receiver/pack.h"

#include <xxhash.h>

#include <cstring>
#include <random>

#include "absl/strings/str_cat.h"
#include "common/byte_order.h"

namespace cbtd::receiver {
namespace {

using common::GetLe;
using common::PutLe;

constexpr char kPackMagic[8] = {'C', 'B', 'T', 'D', 'P', 'A', 'C', 'K'};
constexpr char kPackEndMagic[8] = {'C', 'B', 'T', 'D', 'P', 'E', 'N', 'D'};
constexpr uint32_t kPackFormat = 2;

}  // namespace

PackBuilder::PackBuilder() {
  bytes_.assign(kPackMagic, sizeof(kPackMagic));
  PutLe(bytes_, kPackFormat, 4);
  PutLe(bytes_, 0, 4);
}

PackEntry PackBuilder::Add(const ChunkHash& id, std::string_view record) {
  PackEntry e{id, bytes_.size(), static_cast<uint32_t>(record.size())};
  bytes_.append(record);
  entries_.push_back(e);
  return e;
}

std::string PackBuilder::Seal() {
  const size_t footer_start = bytes_.size();
  for (const PackEntry& e : entries_) {
    bytes_.append(reinterpret_cast<const char*>(e.id.bytes().data()),
                  ChunkHash::kSize);
    PutLe(bytes_, e.offset_bytes, 8);
    PutLe(bytes_, e.length_bytes, 4);
  }
  PutLe(bytes_, entries_.size(), 4);
  PutLe(bytes_,
        XXH3_64bits(bytes_.data() + footer_start, bytes_.size() - footer_start),
        8);
  bytes_.append(kPackEndMagic, sizeof(kPackEndMagic));
  std::string out = std::move(bytes_);
  *this = PackBuilder();
  return out;
}

absl::StatusOr<std::vector<PackEntry>> ParsePack(std::string_view pack,
                                                 std::string_view what) {
  auto damaged = [&](std::string_view why) {
    return absl::DataLossError(absl::StrCat("pack ", std::string(what),
                                            " is damaged: ", std::string(why)));
  };
  if (pack.size() < kPackHeaderBytes + kPackTrailerBytes ||
      std::memcmp(pack.data(), kPackMagic, sizeof(kPackMagic)) != 0 ||
      GetLe(pack.data() + 8, 4) != kPackFormat ||
      GetLe(pack.data() + 12, 4) != 0) {
    return damaged("not a format-2 pack (bad header)");
  }
  const char* trailer = pack.data() + pack.size() - kPackTrailerBytes;
  if (std::memcmp(trailer + 12, kPackEndMagic, sizeof(kPackEndMagic)) != 0) {
    return damaged("no end marker (truncated?)");
  }
  const uint64_t n = GetLe(trailer, 4);
  const uint64_t records_end = pack.size() - kPackTrailerBytes;
  if (n * kPackEntryBytes > records_end - kPackHeaderBytes) {
    return damaged(absl::StrCat("footer of ", n, " entries does not fit"));
  }
  const size_t footer_start = records_end - n * kPackEntryBytes;
  if (XXH3_64bits(pack.data() + footer_start, n * kPackEntryBytes + 4) !=
      GetLe(trailer + 4, 8)) {
    return damaged("footer checksum mismatch");
  }
  std::vector<PackEntry> out;
  out.reserve(n);
  uint64_t next = kPackHeaderBytes;
  for (uint64_t i = 0; i < n; ++i) {
    const char* p = pack.data() + footer_start + i * kPackEntryBytes;
    std::array<uint8_t, ChunkHash::kSize> id;
    std::memcpy(id.data(), p, id.size());
    PackEntry e{ChunkHash(id), GetLe(p + 32, 8),
                static_cast<uint32_t>(GetLe(p + 40, 4))};
    if (e.offset_bytes < next || e.length_bytes > footer_start ||
        e.offset_bytes > footer_start - e.length_bytes) {
      return damaged(absl::StrCat("entry ", i, " (offset ", e.offset_bytes,
                                  ", length ", e.length_bytes,
                                  ") is outside the record area"));
    }
    next = e.offset_bytes + e.length_bytes;
    out.push_back(e);
  }
  return out;
}

std::string NewPackName() {
  std::random_device rd;  // getrandom(2) on Linux
  std::string out;
  for (int i = 0; i < 4; ++i) {
    absl::StrAppend(&out, absl::Hex(rd(), absl::kZeroPad8));
  }
  return out;
}

}  // namespace cbtd::receiver
