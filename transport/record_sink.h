// RecordSink: where a computed stream goes. The sender computes records once
// and hands them to a sink: the offline stream file, the gRPC client, or a
// test's vector. "Compute, then emit."
//
// Contract: Put() is called with a Header first, then chunk records in
// ascending chunk order, then one Trailer, then Finish(). A sink may block
// in Put() to apply back-pressure. Not thread-safe: one producer thread.
#ifndef CBTD_TRANSPORT_RECORD_SINK_H_
#define CBTD_TRANSPORT_RECORD_SINK_H_

#include "absl/status/status.h"
#include "transport/proto/stream.pb.h"

namespace cbtd::transport {

class RecordSink {
 public:
  virtual ~RecordSink() = default;
  virtual absl::Status Put(const stream::Record& record) = 0;
  // Flushes; after the Trailer. For a remote sink, returns once the
  // receiver has committed the version (or refused it).
  virtual absl::Status Finish() = 0;
};

}  // namespace cbtd::transport

#endif  // CBTD_TRANSPORT_RECORD_SINK_H_
