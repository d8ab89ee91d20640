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
  header_.assign(kPackMagic, sizeof(kPackMagic));
  PutLe(header_, kPackFormat, 4);
  PutLe(header_, 0, 4);
  offset_ = header_.size();
}

PackEntry PackBuilder::Add(const ChunkHash& id, std::string_view record) {
  PackEntry e{id, offset_, static_cast<uint32_t>(record.size())};
  records_.push_back(record);
  offset_ += record.size();
  entries_.push_back(e);
  return e;
}

std::vector<std::string_view> PackBuilder::Seal() {
  footer_.clear();
  footer_.reserve(entries_.size() * kPackEntryBytes + kPackTrailerBytes);
  for (const PackEntry& e : entries_) {
    footer_.append(reinterpret_cast<const char*>(e.id.bytes().data()),
                   ChunkHash::kSize);
    PutLe(footer_, e.offset_bytes, 8);
    PutLe(footer_, e.length_bytes, 4);
  }
  PutLe(footer_, entries_.size(), 4);
  PutLe(footer_, XXH3_64bits(footer_.data(), footer_.size()), 8);
  footer_.append(kPackEndMagic, sizeof(kPackEndMagic));
  std::vector<std::string_view> out;
  out.reserve(records_.size() + 2);
  out.push_back(header_);
  out.insert(out.end(), records_.begin(), records_.end());
  out.push_back(footer_);
  return out;
}

std::string JoinParts(std::span<const std::string_view> parts) {
  std::string out;
  for (std::string_view p : parts) out.append(p);
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
