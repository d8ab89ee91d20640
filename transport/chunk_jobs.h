// ChunkJobs: the chunks a stream covers, in ascending order, kept as runs so
// that memory follows the number of extents, not the number of chunks (a
// full of a 16 TiB volume at 64 KiB chunks is 256 M chunks, one run). The
// chunks to read are numbered apart (ReadIndex): the read pipeline sees
// only those, and the emitter turns zero_only runs into zeros in bulk.
//
// Thread-safety: immutable after construction; concurrent reads are safe.
#ifndef CBTD_TRANSPORT_CHUNK_JOBS_H_
#define CBTD_TRANSPORT_CHUNK_JOBS_H_

#include <cstdint>
#include <vector>

#include "cbt/extent_set.h"

namespace cbtd::transport {

class ChunkJobs {
 public:
  // Consecutive chunks alike, ascending, disjoint.
  struct Run {
    uint64_t first_index = 0;
    uint64_t count = 0;
    bool zero_only = false;  // wholly inside `zeroed`: zeros without a read
  };

  // A full of a volume of `size_bytes`: every chunk; those wholly inside
  // `zeroed` (unallocated, reads as zeros) are zero_only.
  static ChunkJobs Full(uint64_t size_bytes, uint32_t chunk_bytes,
                        const cbt::ExtentSet& zeroed);
  // An incremental: the chunks `changed` or `zeroed` touch and every chunk
  // from `must_cover_from` on (a resize); a chunk wholly inside `zeroed`
  // and untouched by `changed` is zero_only. Chunks past the volume's end
  // are left out.
  static ChunkJobs Incremental(uint64_t size_bytes, uint32_t chunk_bytes,
                               const cbt::ExtentSet& changed,
                               const cbt::ExtentSet& zeroed,
                               uint64_t must_cover_from);

  // Every run, ascending: what the emitter walks.
  const std::vector<Run>& runs() const { return runs_; }
  // The chunks to read (those not zero_only), and the chunk index of the
  // pos-th of them (pos < reads()), in ascending order.
  uint64_t reads() const { return reads_; }
  uint64_t ReadIndex(uint64_t pos) const;

 private:
  struct ReadRun {
    uint64_t first_pos = 0;
    uint64_t first_index = 0;
  };
  // `touched` and `zero_only` are sets of chunk indices (ExtentSets in
  // chunk units); zero_only within touched.
  static ChunkJobs FromRanges(const cbt::ExtentSet& touched,
                              const cbt::ExtentSet& zero_only);
  void Append(uint64_t first_index, uint64_t count, bool zero_only);

  std::vector<Run> runs_;
  std::vector<ReadRun> read_runs_;
  uint64_t reads_ = 0;
};

}  // namespace cbtd::transport

#endif  // CBTD_TRANSPORT_CHUNK_JOBS_H_
