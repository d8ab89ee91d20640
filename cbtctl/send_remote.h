// `cbtctl send SOURCE --to HOST:PORT`: the remote half of cbtctl send. The
// stream is computed by the same producer as the file/pipe path and handed
// to transport::RemoteSink (dedup handshake, resume, --bwlimit, progress).
// Kept apart from cbtctl_send.cc, which calls these two hooks.
#ifndef CBTD_CBTCTL_SEND_REMOTE_H_
#define CBTD_CBTCTL_SEND_REMOTE_H_

#include <boost/program_options.hpp>

#include "cbt/extent_set.h"
#include "common/block_reader.h"
#include "transport/stream_index.h"
#include "transport/stream_producer.h"

namespace cbtd::cbtctl {

// --to, --tls-cert, --tls-key, --ca, --server-name, --insecure,
// --base-version, --bwlimit, --retries, --no-progress.
void AddRemoteSendOptions(boost::program_options::options_description& desc);

// Sends to the receiver named by --to. `base` is the metadata of the
// --base-index file given locally (or null), whose entries are streamed
// from the file on each attempt; --base-version streams the base index
// from the receiver instead. When --host is not given, the host is the CN of
// --tls-cert. Restarts the whole run (with backoff, up to --retries) when
// the receiver lost the session; already stored chunks are not re-sent.
// Returns the exit code.
int RunRemoteSend(const boost::program_options::variables_map& vm,
                  common::BlockReader& source, const cbt::ExtentSet& changed,
                  const cbt::ExtentSet& zeroed,
                  const transport::IndexMetadata* base,
                  transport::ProducerOptions opts);

}  // namespace cbtd::cbtctl

#endif  // CBTD_CBTCTL_SEND_REMOTE_H_
