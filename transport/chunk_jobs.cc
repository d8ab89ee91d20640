#include "transport/chunk_jobs.h"

#include <algorithm>

#include "transport/stream_index.h"

namespace cbtd::transport {
namespace {

// The chunks (in chunk units) any byte of `bytes` below `size` touches.
cbt::ExtentSet Touched(const cbt::ExtentSet& bytes, uint64_t size,
                       uint32_t chunk) {
  cbt::ExtentSet out;
  for (const cbt::Extent& e : bytes.ToVector()) {
    const uint64_t end = std::min(e.end_bytes(), size);
    if (e.offset_bytes >= end) continue;
    const uint64_t first = e.offset_bytes / chunk;
    out.Add(first, (end + chunk - 1) / chunk - first);
  }
  return out;
}

// The chunks (in chunk units) wholly inside `bytes`; the short last chunk
// is inside when `bytes` reaches the volume's end.
cbt::ExtentSet WhollyInside(const cbt::ExtentSet& bytes, uint64_t size,
                            uint32_t chunk) {
  cbt::ExtentSet out;
  for (const cbt::Extent& e : bytes.ToVector()) {
    const uint64_t end = std::min(e.end_bytes(), size);
    const uint64_t first = (e.offset_bytes + chunk - 1) / chunk;
    const uint64_t last = end == size ? ChunkCount(size, chunk) : end / chunk;
    if (first < last) out.Add(first, last - first);
  }
  return out;
}

}  // namespace

ChunkJobs ChunkJobs::Full(uint64_t size_bytes, uint32_t chunk_bytes,
                          const cbt::ExtentSet& zeroed) {
  cbt::ExtentSet all;
  all.Add(0, ChunkCount(size_bytes, chunk_bytes));
  return FromRanges(all, WhollyInside(zeroed, size_bytes, chunk_bytes));
}

ChunkJobs ChunkJobs::Incremental(uint64_t size_bytes, uint32_t chunk_bytes,
                                 const cbt::ExtentSet& changed,
                                 const cbt::ExtentSet& zeroed,
                                 uint64_t must_cover_from) {
  const uint64_t chunks = ChunkCount(size_bytes, chunk_bytes);
  const cbt::ExtentSet changed_chunks =
      Touched(changed, size_bytes, chunk_bytes);
  cbt::ExtentSet touched = changed_chunks;
  touched.Add(Touched(zeroed, size_bytes, chunk_bytes));
  if (must_cover_from < chunks) {
    touched.Add(must_cover_from, chunks - must_cover_from);
  }
  cbt::ExtentSet zero_only = WhollyInside(zeroed, size_bytes, chunk_bytes);
  zero_only.Remove(changed_chunks);
  return FromRanges(touched, zero_only);
}

ChunkJobs ChunkJobs::FromRanges(const cbt::ExtentSet& touched,
                                const cbt::ExtentSet& zero_only) {
  ChunkJobs jobs;
  for (const cbt::Extent& t : touched.ToVector()) {
    uint64_t next = t.offset_bytes;
    for (const cbt::Extent& z : zero_only.Intersection({t}).ToVector()) {
      jobs.Append(next, z.offset_bytes - next, false);
      jobs.Append(z.offset_bytes, z.length_bytes, true);
      next = z.end_bytes();
    }
    jobs.Append(next, t.end_bytes() - next, false);
  }
  return jobs;
}

void ChunkJobs::Append(uint64_t first_index, uint64_t count, bool zero_only) {
  if (count == 0) return;
  runs_.push_back({first_index, count, zero_only});
  if (zero_only) return;
  read_runs_.push_back({reads_, first_index});
  reads_ += count;
}

uint64_t ChunkJobs::ReadIndex(uint64_t pos) const {
  // The last read run starting at or before pos; runs are disjoint and
  // ascending, so the chunks of one are consecutive.
  auto it = std::upper_bound(
      read_runs_.begin(), read_runs_.end(), pos,
      [](uint64_t p, const ReadRun& r) { return p < r.first_pos; });
  const ReadRun& r = *std::prev(it);
  return r.first_index + (pos - r.first_pos);
}

}  // namespace cbtd::transport
