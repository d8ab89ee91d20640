#include "cbt/extent_set.h"

#include <algorithm>

namespace cbtd::cbt {

std::ostream& operator<<(std::ostream& os, const Extent& e) {
  return os << "[" << e.offset_bytes << "," << e.end_bytes() << ")";
}

ExtentSet::ExtentSet(std::initializer_list<Extent> extents) {
  for (const Extent& e : extents) Add(e);
}

void ExtentSet::Add(Extent e) {
  if (e.empty()) return;
  uint64_t begin = e.offset_bytes;
  uint64_t end = e.end_bytes();
  // First range that could touch [begin, end): the one starting at or before
  // begin, if it reaches begin.
  auto it = ranges_.upper_bound(begin);
  if (it != ranges_.begin()) {
    auto prev = std::prev(it);
    if (prev->second >= begin) it = prev;
  }
  while (it != ranges_.end() && it->first <= end) {
    begin = std::min(begin, it->first);
    end = std::max(end, it->second);
    it = ranges_.erase(it);
  }
  ranges_.emplace(begin, end);
}

void ExtentSet::Add(const ExtentSet& other) {
  for (const auto& [b, e] : other.ranges_) Add(Extent{b, e - b});
}

void ExtentSet::Remove(Extent e) {
  if (e.empty()) return;
  const uint64_t begin = e.offset_bytes;
  const uint64_t end = e.end_bytes();
  auto it = ranges_.upper_bound(begin);
  if (it != ranges_.begin()) {
    auto prev = std::prev(it);
    if (prev->second > begin) it = prev;
  }
  while (it != ranges_.end() && it->first < end) {
    const uint64_t rb = it->first;
    const uint64_t re = it->second;
    it = ranges_.erase(it);
    if (rb < begin) ranges_.emplace(rb, begin);
    if (re > end) ranges_.emplace(end, re);
  }
}

void ExtentSet::Remove(const ExtentSet& other) {
  for (const auto& [b, e] : other.ranges_) Remove(Extent{b, e - b});
}

bool ExtentSet::Contains(Extent e) const {
  if (e.empty()) return true;
  auto it = ranges_.upper_bound(e.offset_bytes);
  if (it == ranges_.begin()) return false;
  --it;
  return it->first <= e.offset_bytes && it->second >= e.end_bytes();
}

bool ExtentSet::Intersects(Extent e) const {
  if (e.empty()) return false;
  auto it = ranges_.upper_bound(e.offset_bytes);
  if (it != ranges_.begin() && std::prev(it)->second > e.offset_bytes) {
    return true;
  }
  return it != ranges_.end() && it->first < e.end_bytes();
}

ExtentSet ExtentSet::Intersection(const ExtentSet& other) const {
  ExtentSet out;
  auto a = ranges_.begin();
  auto b = other.ranges_.begin();
  while (a != ranges_.end() && b != other.ranges_.end()) {
    const uint64_t lo = std::max(a->first, b->first);
    const uint64_t hi = std::min(a->second, b->second);
    if (lo < hi) out.ranges_.emplace(lo, hi);
    if (a->second < b->second) {
      ++a;
    } else {
      ++b;
    }
  }
  return out;
}

ExtentSet ExtentSet::AlignedTo(uint64_t chunk_bytes,
                               uint64_t limit_bytes) const {
  ExtentSet out;
  for (const auto& [b, e] : ranges_) {
    if (b >= limit_bytes) break;
    const uint64_t lo = b / chunk_bytes * chunk_bytes;
    // Round the end up without overflowing near UINT64_MAX.
    const uint64_t clipped = std::min(e, limit_bytes);
    uint64_t hi = (clipped - 1) / chunk_bytes * chunk_bytes + chunk_bytes;
    hi = std::min(hi, limit_bytes);
    out.Add(Extent{lo, hi - lo});
  }
  return out;
}

std::vector<uint64_t> ExtentSet::ChunkIndices(uint64_t chunk_bytes) const {
  std::vector<uint64_t> out;
  for (const auto& [b, e] : ranges_) {
    uint64_t first = b / chunk_bytes;
    const uint64_t last = (e - 1) / chunk_bytes;
    if (!out.empty() && out.back() >= first) first = out.back() + 1;
    for (uint64_t i = first; i <= last; ++i) out.push_back(i);
  }
  return out;
}

uint64_t ExtentSet::TotalBytes() const {
  uint64_t total = 0;
  for (const auto& [b, e] : ranges_) total += e - b;
  return total;
}

std::vector<Extent> ExtentSet::ToVector() const {
  std::vector<Extent> out;
  out.reserve(ranges_.size());
  for (const auto& [b, e] : ranges_) out.push_back(Extent{b, e - b});
  return out;
}

std::ostream& operator<<(std::ostream& os, const ExtentSet& s) {
  os << "{";
  bool first = true;
  for (const Extent& e : s.ToVector()) {
    if (!first) os << " ";
    os << e;
    first = false;
  }
  return os << "}";
}

}  // namespace cbtd::cbt
