#include "transport/session_table.h"

#include <atomic>
#include <random>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "transport/record_span.h"
#include "transport/stream_index.h"

namespace cbtd::transport {
namespace {

std::string NewSessionId() {
  std::random_device rd;
  return absl::StrFormat("%08x%08x%08x%08x", rd(), rd(), rd(), rd());
}

std::string KeyOf(const stream::Header& h) {
  return absl::StrCat(h.source_host(), "/", h.volume_id());
}

bool SameHeader(const stream::Header& a, const stream::Header& b) {
  return a.SerializeAsString() == b.SerializeAsString();
}

absl::Status TakenOverError(const std::string& id) {
  return absl::FailedPreconditionError(absl::StrCat(
      "session ", id,
      " was taken over by a newer backup of the same volume from this host "
      "and aborted; this run stops, the newer one carries on"));
}

}  // namespace

// One session: an uncommitted version being received, possibly detached
// from any stream while the sender reconnects.
struct SessionTable::Session {
  enum class End { kNone, kAborted, kTakenOver };

  std::string id;
  std::string owner;  // identity that opened it
  std::string key;    // "host/volume"
  std::string open_token;
  stream::Header header;
  uint64_t chunk_count = 0;

  // Guards the fields below and serializes calls into `backend`.
  std::mutex mu;
  // Null while the backend opens it, and once it has ended.
  std::unique_ptr<UploadSession> backend;
  uint64_t next_chunk_index = 0;
  uint64_t records_applied = 0;
  std::optional<CommitResult> committed;
  // Mirrors `committed` / `end` for counting without taking `mu`.
  std::atomic<bool> is_open{true};
  End end = End::kNone;
  StreamHandle* stream = nullptr;  // attached Upload, if any
  Clock::time_point last_activity;
};

SessionTable::SessionTable(ReceiveBackend& backend, SessionLimits limits,
                           std::function<Clock::time_point()> now)
    : backend_(backend), limits_(limits), now_(std::move(now)) {}

SessionTable::~SessionTable() { AbortAll(); }

SessionView SessionTable::ViewLocked(const Session& s) const {
  return SessionView{s.id, s.next_chunk_index, s.records_applied, s.committed};
}

absl::StatusOr<SessionView> SessionTable::Open(const std::string& owner,
                                               const stream::Header& header,
                                               const std::string& open_token) {
  const std::string key = KeyOf(header);
  std::shared_ptr<Session> s;
  for (;;) {
    std::shared_ptr<Session> old;
    {
      std::lock_guard l(mu_);
      if (auto it = by_key_.find(key);
          it != by_key_.end() && sessions_.contains(it->second)) {
        old = sessions_.at(it->second);
        if (!open_token.empty() && old->owner == owner &&
            old->open_token == open_token && SameHeader(old->header, header)) {
          // The same Open again (its answer was lost): the same session.
          std::lock_guard sl(old->mu);
          if (old->end == Session::End::kNone) {
            old->last_activity = now_();
            return ViewLocked(*old);
          }
        }
        // Only the session's own identity may take it over (the service
        // lets a host open only its own volumes, so this is defence in
        // depth).
        if (old->owner != owner) {
          return absl::FailedPreconditionError(
              absl::StrCat("volume '", header.volume_id(), "' of host '",
                           header.source_host(),
                           "' has an open session of another "
                           "identity"));
        }
      } else {
        int open = 0;
        for (const auto& [id, other] : sessions_) open += other->is_open;
        if (open >= limits_.max_sessions) {
          return absl::ResourceExhaustedError(absl::StrCat(
              "receiver holds its maximum of ", limits_.max_sessions,
              " open sessions; retry later"));
        }
        s = std::make_shared<Session>();
        s->id = NewSessionId();
        s->owner = owner;
        s->key = key;
        s->open_token = open_token;
        s->header = header;
        s->chunk_count =
            ChunkCount(header.volume_size_bytes(), header.chunk_size_bytes());
        s->last_activity = now_();
        // Reserved before the (slow) backend open, so a concurrent Open of
        // the volume takes this one over instead of racing it.
        sessions_[s->id] = s;
        by_key_[key] = s->id;
      }
    }
    if (s) break;
    TakeOver(old);
  }

  auto opened = backend_.OpenSession(header);
  std::unique_lock sl(s->mu);
  if (!opened.ok() || s->end != Session::End::kNone) {
    const bool taken = s->end == Session::End::kTakenOver;
    if (opened.ok()) (*opened)->Abort();
    s->end = Session::End::kAborted;
    s->is_open = false;
    sl.unlock();
    std::lock_guard l(mu_);
    if (auto it = sessions_.find(s->id);
        it != sessions_.end() && it->second == s) {
      sessions_.erase(it);
    }
    ReleaseKeyLocked(*s);
    if (!opened.ok()) return opened.status();
    return taken ? TakenOverError(s->id)
                 : absl::AbortedError("session aborted");
  }
  s->backend = *std::move(opened);
  s->last_activity = now_();
  return ViewLocked(*s);
}

void SessionTable::TakeOver(const std::shared_ptr<Session>& old) {
  bool committed, took = false;
  {
    // Waits for a record being applied; after this the old session can
    // neither apply nor commit anything.
    std::lock_guard sl(old->mu);
    committed = old->committed.has_value();
    if (!committed && old->end == Session::End::kNone) {
      KillLocked(*old, /*cancel_stream=*/true);
      old->end = Session::End::kTakenOver;
      took = true;
    }
  }
  std::lock_guard l(mu_);
  ReleaseKeyLocked(*old);
  // A committed session keeps its answer for late resumes.
  if (committed) return;
  if (auto it = sessions_.find(old->id);
      it != sessions_.end() && it->second == old) {
    sessions_.erase(it);
  }
  if (took) taken_over_[old->id] = {old->owner, now_()};
}

absl::StatusOr<std::shared_ptr<SessionTable::Session>> SessionTable::Find(
    const std::string& owner, const std::string& id) {
  std::lock_guard l(mu_);
  if (auto it = sessions_.find(id);
      it != sessions_.end() && it->second->owner == owner) {
    return it->second;
  }
  if (auto it = taken_over_.find(id);
      it != taken_over_.end() && it->second.owner == owner) {
    return TakenOverError(id);
  }
  // Same answer for "missing" and "someone else's": do not reveal ids.
  return absl::NotFoundError(absl::StrCat(
      "no open session '", id,
      "' (expired, aborted, or the receiver restarted); start the backup "
      "again"));
}

absl::StatusOr<SessionView> SessionTable::Resume(const std::string& owner,
                                                 const std::string& session_id,
                                                 const stream::Header& header) {
  auto s = Find(owner, session_id);
  if (!s.ok()) return s.status();
  std::lock_guard sl((*s)->mu);
  if (!SameHeader((*s)->header, header)) {
    return absl::InvalidArgumentError(
        "resume: header differs from the one the session was opened with");
  }
  if ((*s)->end == Session::End::kTakenOver) return TakenOverError(session_id);
  if ((*s)->end == Session::End::kAborted) {
    return absl::NotFoundError(
        absl::StrCat("session ", session_id, " was aborted; start again"));
  }
  (*s)->last_activity = now_();
  return ViewLocked(**s);
}

absl::StatusOr<std::vector<bool>> SessionTable::HaveChunks(
    const std::string& owner, const std::string& session_id,
    std::span<const ChunkHash> hashes) {
  auto s = Find(owner, session_id);
  if (!s.ok()) return s.status();
  std::lock_guard sl((*s)->mu);
  if ((*s)->end == Session::End::kTakenOver) return TakenOverError(session_id);
  if ((*s)->end != Session::End::kNone || (*s)->committed) {
    return absl::FailedPreconditionError("session is no longer open");
  }
  if (!(*s)->backend) {
    return absl::UnavailableError("session is still opening; retry");
  }
  auto have = (*s)->backend->HaveChunks(hashes);
  // After the call: the first one may load the host's scope for a while,
  // which is activity, not idleness.
  (*s)->last_activity = now_();
  return have;
}

absl::StatusOr<std::unique_ptr<SessionTable::Upload>> SessionTable::Attach(
    const std::string& owner, const std::string& session_id,
    StreamHandle* stream) {
  auto found = Find(owner, session_id);
  if (!found.ok()) return found.status();
  std::shared_ptr<Session> s = *std::move(found);
  std::unique_lock sl(s->mu);
  // One stream per session: a resuming sender takes over from a stream
  // the server has not yet noticed is dead.
  if (s->stream != nullptr) {
    s->stream->Cancel();
    if (!detached_cv_.wait_for(sl, std::chrono::seconds(10),
                               [&] { return s->stream == nullptr; })) {
      return absl::AbortedError(
          "another stream is still attached to this session");
    }
  }
  if (s->end == Session::End::kTakenOver) return TakenOverError(session_id);
  if (s->end == Session::End::kAborted) {
    return absl::NotFoundError("session was aborted");
  }
  if (!s->backend && !s->committed) {
    return absl::UnavailableError("session is still opening; retry");
  }
  s->stream = stream;
  s->last_activity = now_();
  return std::unique_ptr<Upload>(new Upload(this, std::move(s), stream));
}

SessionTable::Upload::~Upload() { table_->Detach(*session_, stream_); }

void SessionTable::Detach(Session& s, StreamHandle* stream) {
  {
    std::lock_guard sl(s.mu);
    if (s.stream == stream) s.stream = nullptr;
    s.last_activity = now_();
  }
  detached_cv_.notify_all();
}

namespace {

// Kind, order and bounds, before the backend sees the record (which checks
// everything again: the layers do not have to trust each other).
absl::Status CheckFraming(uint64_t next_chunk_index, uint64_t chunk_count,
                          const stream::Record& r) {
  if (r.has_header()) {
    return absl::InvalidArgumentError(
        "a Header inside Upload: the header is sent with OpenSession");
  }
  auto span = SpanOf(r);
  if (!span) {
    if (r.body_case() == stream::Record::BODY_NOT_SET && !r.required()) {
      return absl::InvalidArgumentError("empty record");
    }
    return absl::InvalidArgumentError("record kind not understood");
  }
  if (span->end <= span->first) {
    return absl::InvalidArgumentError("empty zero run");
  }
  if (span->first < next_chunk_index) {
    return absl::InvalidArgumentError(absl::StrCat(
        "out-of-order record: chunk ", span->first,
        " comes after chunks up to ", next_chunk_index, " were applied"));
  }
  if (span->end > chunk_count) {
    return absl::InvalidArgumentError(absl::StrCat(
        "record covers chunks [", span->first, ", ", span->end,
        ") past the end of the volume (", chunk_count, " chunks)"));
  }
  return absl::OkStatus();
}

}  // namespace

absl::StatusOr<SessionView> SessionTable::Upload::Apply(
    const stream::Record& r) {
  Session& s = *session_;
  std::unique_lock sl(s.mu);
  s.last_activity = table_->now_();
  if (s.end == Session::End::kTakenOver) return TakenOverError(s.id);
  if (s.end == Session::End::kAborted) {
    return absl::AbortedError("session was aborted");
  }
  if (s.committed) {
    return absl::FailedPreconditionError("session already committed");
  }
  if (r.has_trailer()) {
    auto done = s.backend->Commit(r.trailer());
    if (!done.ok()) {
      table_->Refuse(s, sl);
      return done.status();
    }
    s.committed = *done;
    s.is_open = false;
    s.backend.reset();
    SessionView view = table_->ViewLocked(s);
    sl.unlock();
    std::lock_guard l(table_->mu_);
    table_->ReleaseKeyLocked(s);
    return view;
  }
  absl::Status st = CheckFraming(s.next_chunk_index, s.chunk_count, r);
  if (st.ok()) st = s.backend->Apply(r);
  if (!st.ok()) {
    table_->Refuse(s, sl);
    return st;
  }
  s.next_chunk_index = SpanOf(r)->end;
  ++s.records_applied;
  return table_->ViewLocked(s);
}

void SessionTable::KillLocked(Session& s, bool cancel_stream) {
  if (s.backend) s.backend->Abort();
  s.backend.reset();
  if (cancel_stream && s.stream != nullptr) s.stream->Cancel();
  s.end = Session::End::kAborted;
  s.is_open = false;
}

void SessionTable::Refuse(Session& s, std::unique_lock<std::mutex>& sl) {
  // The refused stream is the caller: it ends with the refusal itself.
  KillLocked(s, /*cancel_stream=*/false);
  sl.unlock();
  std::lock_guard l(mu_);
  if (auto it = sessions_.find(s.id);
      it != sessions_.end() && it->second.get() == &s) {
    sessions_.erase(it);
  }
  ReleaseKeyLocked(s);
}

void SessionTable::ReleaseKeyLocked(const Session& s) {
  if (auto it = by_key_.find(s.key); it != by_key_.end() && it->second == s.id)
    by_key_.erase(it);
}

void SessionTable::Reap() {
  const auto now = now_();
  std::lock_guard l(mu_);
  for (auto it = sessions_.begin(); it != sessions_.end();) {
    Session& s = *it->second;
    // A session busy in the vault is not idle; never wait for it while
    // holding the table.
    std::unique_lock sl(s.mu, std::try_to_lock);
    if (!sl.owns_lock()) {
      ++it;
      continue;
    }
    const auto idle = now - s.last_activity;
    if (s.stream != nullptr) {
      if (idle > limits_.idle_timeout) s.stream->Cancel();
      ++it;
    } else if (idle > limits_.resume_ttl) {
      KillLocked(s, /*cancel_stream=*/true);
      ReleaseKeyLocked(s);
      it = sessions_.erase(it);
    } else {
      ++it;
    }
  }
  for (auto it = taken_over_.begin(); it != taken_over_.end();) {
    if (now - it->second.at > limits_.resume_ttl) {
      it = taken_over_.erase(it);
    } else {
      ++it;
    }
  }
}

void SessionTable::CancelStreams() {
  std::lock_guard l(mu_);
  for (auto& [id, s] : sessions_) {
    std::lock_guard sl(s->mu);
    if (s->stream != nullptr) s->stream->Cancel();
  }
}

void SessionTable::AbortAll() {
  std::lock_guard l(mu_);
  for (auto& [id, s] : sessions_) {
    std::lock_guard sl(s->mu);
    if (!s->committed) KillLocked(*s, /*cancel_stream=*/true);
  }
  sessions_.clear();
  by_key_.clear();
  taken_over_.clear();
}

int SessionTable::open_sessions() const {
  std::lock_guard l(mu_);
  int n = 0;
  for (const auto& [id, s] : sessions_) n += s->is_open;
  return n;
}

}  // namespace cbtd::transport
