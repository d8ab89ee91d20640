// The chunk-index range a stream record covers: what the sender and the
// receiver's service use to order records, bound them and resume.
#ifndef CBTD_TRANSPORT_RECORD_SPAN_H_
#define CBTD_TRANSPORT_RECORD_SPAN_H_

#include <cstdint>
#include <optional>

#include "transport/proto/stream.pb.h"

namespace cbtd::transport {

// Half-open [first, end) in chunk indexes.
struct ChunkSpan {
  uint64_t first = 0;
  uint64_t end = 0;
};

// The span of a Chunk, ChunkRef or ZeroRun record; nullopt for any other
// record (Header, Trailer, unknown) and for a ZeroRun whose end overflows.
inline std::optional<ChunkSpan> SpanOf(const stream::Record& r) {
  switch (r.body_case()) {
    case stream::Record::kChunk:
      return ChunkSpan{r.chunk().chunk_index(), r.chunk().chunk_index() + 1};
    case stream::Record::kChunkRef:
      return ChunkSpan{r.chunk_ref().chunk_index(),
                       r.chunk_ref().chunk_index() + 1};
    case stream::Record::kZeroRun: {
      uint64_t first = r.zero_run().first_chunk_index();
      uint64_t end = first + r.zero_run().chunk_count();
      if (end < first) return std::nullopt;
      return ChunkSpan{first, end};
    }
    default:
      return std::nullopt;
  }
}

}  // namespace cbtd::transport

#endif  // CBTD_TRANSPORT_RECORD_SPAN_H_
