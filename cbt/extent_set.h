// Byte ranges of a volume: the vocabulary every changed-block method speaks.
//
// An Extent is a half-open byte range [offset_bytes, offset_bytes +
// length_bytes). An ExtentSet holds disjoint, non-adjacent extents in
// ascending order: inserting merges with whatever it overlaps or touches, so
// two sets holding the same bytes compare equal whatever order they were
// built in.
//
// Thread-safety: none; an ExtentSet is a value. Copy it to share it.
#ifndef CBTD_CBT_EXTENT_SET_H_
#define CBTD_CBT_EXTENT_SET_H_

#include <cstdint>
#include <map>
#include <ostream>
#include <string>
#include <vector>

namespace cbtd::cbt {

struct Extent {
  uint64_t offset_bytes = 0;
  uint64_t length_bytes = 0;

  uint64_t end_bytes() const { return offset_bytes + length_bytes; }
  bool empty() const { return length_bytes == 0; }
  friend bool operator==(const Extent&, const Extent&) = default;
};

std::ostream& operator<<(std::ostream& os, const Extent& e);

class ExtentSet {
 public:
  ExtentSet() = default;
  ExtentSet(std::initializer_list<Extent> extents);

  // Adds [offset, offset + length); merges with overlapping or touching
  // extents. Empty extents are ignored.
  void Add(Extent e);
  void Add(uint64_t offset_bytes, uint64_t length_bytes) {
    Add(Extent{offset_bytes, length_bytes});
  }
  void Add(const ExtentSet& other);

  // Removes [offset, offset + length), splitting extents where needed.
  void Remove(Extent e);
  void Remove(const ExtentSet& other);

  // True when every byte of `e` is in the set (an empty extent is contained).
  bool Contains(Extent e) const;
  // True when any byte of `e` is in the set.
  bool Intersects(Extent e) const;

  ExtentSet Intersection(const ExtentSet& other) const;

  // Every extent widened to whole chunks of `chunk_bytes` (> 0), then
  // clipped to [0, limit_bytes). The result covers at least the bytes of
  // this set that lie below limit_bytes: rounding only ever grows a set.
  ExtentSet AlignedTo(uint64_t chunk_bytes, uint64_t limit_bytes) const;

  // Indices of the chunks of `chunk_bytes` that this set touches, ascending.
  std::vector<uint64_t> ChunkIndices(uint64_t chunk_bytes) const;

  uint64_t TotalBytes() const;
  size_t size() const { return ranges_.size(); }
  bool empty() const { return ranges_.empty(); }
  void clear() { ranges_.clear(); }
  std::vector<Extent> ToVector() const;

  friend bool operator==(const ExtentSet&, const ExtentSet&) = default;

 private:
  // begin -> end (exclusive); disjoint and non-adjacent.
  std::map<uint64_t, uint64_t> ranges_;
};

std::ostream& operator<<(std::ostream& os, const ExtentSet& s);

}  // namespace cbtd::cbt

#endif  // CBTD_CBT_EXTENT_SET_H_
