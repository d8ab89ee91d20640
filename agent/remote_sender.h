// RemoteSender: the Sender over transport/'s gRPC client. One backup reads
// the changed chunks from the snapshot device (transport::ProduceStream),
// streams them to the configured cbt-receiver (dedup handshake, resume
// after a cut, bandwidth limit) and returns once the version is published.
//
// The receiver address comes from [receiver]: "unix:/path" is plaintext
// (the identity is this host's short name); anything else is mutual TLS
// with ca_file / cert_file / key_file, the identity being the
// certificate's CN. Version ids are UTC times, e.g. 20261122T014500.123Z.
//
// Every run seals its chunks with KeySource::ForBackup()'s key (none:
// plaintext). A base made under another key, or plaintext while encryption
// is on (or the reverse), fails the run with FAILED_PRECONDITION from
// CheckChainKey, before anything is read or sent.
//
// Thread-safety: SendAndCommit may run concurrently (one client per call,
// so progress and bandwidth limits stay per run).
#ifndef CBTD_AGENT_REMOTE_SENDER_H_
#define CBTD_AGENT_REMOTE_SENDER_H_

#include <memory>
#include <string>

#include "agent/backup_ports.h"
#include "agent/key_source.h"
#include "transport/grpc_client.h"

namespace cbtd::agent {

// The client options for `receiver` (TLS material read from its files) and
// the identity backups are filed under. Errors name the file or setting.
struct ReceiverEndpoint {
  transport::ClientOptions options;
  std::string identity;
};
absl::StatusOr<ReceiverEndpoint> ResolveReceiver(
    const ReceiverConfig& receiver);

class RemoteSender : public Sender {
 public:
  // An endpoint that could not be resolved makes every send fail with its
  // error, so cbtd still starts and its runs say what is wrong.
  // `keys` must outlive this object.
  RemoteSender(absl::StatusOr<ReceiverEndpoint> endpoint, KeySource& keys)
      : endpoint_(std::move(endpoint)), keys_(keys) {}

  absl::StatusOr<SendResult> SendAndCommit(const SendRequest& request,
                                           RunControl& control) override;
  absl::Status CommitGroup(const GroupPoint& point) override;

  // Restarts of a run after the receiver lost its session.
  void set_max_restarts(int n) { max_restarts_ = n; }

 private:
  absl::StatusOr<ReceiverEndpoint> endpoint_;
  KeySource& keys_;
  int max_restarts_ = 3;
};

}  // namespace cbtd::agent

#endif  // CBTD_AGENT_REMOTE_SENDER_H_
