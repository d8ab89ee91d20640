// SessionTable: the receiver's backup sessions and their rules, without
// gRPC. The service (grpc_server.cc) authenticates the caller, translates
// proto <-> these calls and runs Reap() on a timer; unit tests drive the
// table directly with a fake backend and clock. docs/transport.md has the
// protocol.
//
// Rules:
//  * One uncommitted session per host/volume. An Open of a volume that
//    has one: with the same open_token and header (an Open retried after
//    its answer was lost) it returns that session; any other Open TAKES
//    THE VOLUME OVER at once: the old session's stream is cancelled and
//    its backend session aborted (its records never become a version),
//    and whoever still uses the old id is told "taken over"
//    (FAILED_PRECONDITION, not retryable) rather than sent round a resume
//    loop. Only the identity that opened a session may take it over (and
//    the service lets a host open only its own volumes): a killed sender
//    (or a crashed cbtd) never locks its volume, and no other host can
//    abort it.
//  * A session is usable only by the identity that opened it; to anyone
//    else it does not exist (NOT_FOUND, as for an unknown id).
//  * At most limits.max_sessions uncommitted sessions (RESOURCE_EXHAUSTED).
//  * One stream (Upload) per session: attaching a second cancels the first
//    and waits for it to detach.
//  * Records are checked for kind, order and bounds before the backend
//    sees them; a refused record or trailer aborts the session at once.
//  * Reap(): a stream idle for limits.idle_timeout is cancelled (the
//    session stays resumable); a session with no stream for
//    limits.resume_ttl is aborted; a committed session's answer and a
//    taken-over session's id are forgotten after limits.resume_ttl.
//
//   Open ──> open ──Attach──> streaming ──Detach──> open (resumable)
//             │                  │ Trailer ok ──> committed (answer kept
//             │                  │                 resume_ttl for resumes)
//             └──────────────────┴─ record refused, ttl, takeover ──> gone
//
// Thread-safety: every method may be called from any thread at once.
#ifndef CBTD_TRANSPORT_SESSION_TABLE_H_
#define CBTD_TRANSPORT_SESSION_TABLE_H_

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "transport/receive_backend.h"

namespace cbtd::transport {

struct SessionLimits {
  int max_sessions = 64;  // uncommitted, all hosts
  std::chrono::milliseconds idle_timeout{std::chrono::seconds(60)};
  std::chrono::milliseconds resume_ttl{std::chrono::minutes(10)};
};

// What a sender learns about its session.
struct SessionView {
  std::string id;
  uint64_t next_chunk_index = 0;  // records ending at or before it are in
  uint64_t records_applied = 0;
  std::optional<CommitResult> committed;
};

// The stream attached to a session (an Upload call), as the table sees it.
class StreamHandle {
 public:
  virtual ~StreamHandle() = default;
  // Ends the stream from the server side; must not block.
  virtual void Cancel() = 0;
};

class SessionTable {
 private:
  struct Session;

 public:
  using Clock = std::chrono::steady_clock;

  // `backend` must outlive the table. `now` is the clock (tests fake it).
  SessionTable(ReceiveBackend& backend, SessionLimits limits,
               std::function<Clock::time_point()> now = &Clock::now);
  ~SessionTable();  // AbortAll()
  SessionTable(const SessionTable&) = delete;
  SessionTable& operator=(const SessionTable&) = delete;

  // A new session for header.source_host/volume_id (the caller has checked
  // that `owner` may write it), the same one for a repeated `open_token`,
  // or a takeover (above). Errors: the backend's refusal (base, version
  // exists, ...), RESOURCE_EXHAUSTED, FAILED_PRECONDITION when a later
  // Open took the volume over while this one was opening.
  absl::StatusOr<SessionView> Open(const std::string& owner,
                                   const stream::Header& header,
                                   const std::string& open_token);
  // Where an interrupted sender continues. INVALID_ARGUMENT if `header`
  // is not the session's, NOT_FOUND if the session is gone (expired,
  // aborted, receiver restarted), FAILED_PRECONDITION if taken over.
  absl::StatusOr<SessionView> Resume(const std::string& owner,
                                     const std::string& session_id,
                                     const stream::Header& header);
  // The dedup handshake of an open session (the backend's answer).
  absl::StatusOr<std::vector<bool>> HaveChunks(
      const std::string& owner, const std::string& session_id,
      std::span<const ChunkHash> hashes);

  // One attached stream. Destroying it detaches the stream (the session
  // stays, resumable). Used by one thread.
  class Upload {
   public:
    ~Upload();
    Upload(const Upload&) = delete;
    Upload& operator=(const Upload&) = delete;
    // Applies a Chunk / ChunkRef / ZeroRun (the view then acknowledges it)
    // or the Trailer (the view carries the commit). A refused record
    // aborts the session; the error says why.
    absl::StatusOr<SessionView> Apply(const stream::Record& record);

   private:
    friend class SessionTable;
    Upload(SessionTable* table, std::shared_ptr<Session> session,
           StreamHandle* stream)
        : table_(table), session_(std::move(session)), stream_(stream) {}
    SessionTable* const table_;
    const std::shared_ptr<Session> session_;
    StreamHandle* const stream_;
  };
  absl::StatusOr<std::unique_ptr<Upload>> Attach(const std::string& owner,
                                                 const std::string& session_id,
                                                 StreamHandle* stream);

  // Cancels idle streams, aborts sessions left without a stream too long,
  // forgets old commits and takeovers. Call every fraction of a second.
  void Reap();
  // Shutdown: CancelStreams() first (so Upload calls return), AbortAll()
  // once no call is running.
  void CancelStreams();
  void AbortAll();
  // Uncommitted sessions (streaming or awaiting resume).
  int open_sessions() const;

 private:
  absl::StatusOr<std::shared_ptr<Session>> Find(const std::string& owner,
                                                const std::string& id);
  void TakeOver(const std::shared_ptr<Session>& old);
  // Under session.mu: aborts the backend session and, if `cancel_stream`,
  // the attached stream (not when that stream is the caller).
  void KillLocked(Session& s, bool cancel_stream);
  // A refused record: the session goes at once.
  void Refuse(Session& s, std::unique_lock<std::mutex>& sl);
  void ReleaseKeyLocked(const Session& s);  // under mu_
  void Detach(Session& s, StreamHandle* stream);
  SessionView ViewLocked(const Session& s) const;

  ReceiveBackend& backend_;
  const SessionLimits limits_;
  const std::function<Clock::time_point()> now_;

  // Lock order: mu_ before Session::mu.
  mutable std::mutex mu_;
  std::map<std::string, std::shared_ptr<Session>> sessions_;  // by id
  std::map<std::string, std::string> by_key_;  // "host/volume" -> id
  struct TakenOver {
    std::string owner;
    Clock::time_point at;
  };
  std::map<std::string, TakenOver> taken_over_;  // by id
  std::condition_variable_any detached_cv_;
};

}  // namespace cbtd::transport

#endif  // CBTD_TRANSPORT_SESSION_TABLE_H_
