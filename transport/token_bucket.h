// TokenBucket: the sender's --bwlimit. Acquire(n) blocks until n bytes may
// be sent at `rate_bytes_per_sec` on average, allowing bursts of up to one
// second's worth (or n, if a single request is larger).
//
// Thread-safety: none; one sender thread owns it.
#ifndef CBTD_TRANSPORT_TOKEN_BUCKET_H_
#define CBTD_TRANSPORT_TOKEN_BUCKET_H_

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <thread>

namespace cbtd::transport {

class TokenBucket {
 public:
  using Clock = std::chrono::steady_clock;

  // rate 0 = unlimited.
  explicit TokenBucket(uint64_t rate_bytes_per_sec)
      : rate_(static_cast<double>(rate_bytes_per_sec)),
        tokens_(rate_),
        last_(Clock::now()) {}

  void Acquire(uint64_t bytes) {
    if (rate_ <= 0) return;
    Refill();
    tokens_ -= static_cast<double>(bytes);
    if (tokens_ < 0) {
      // Sleep off the debt; the bucket then starts empty.
      std::this_thread::sleep_for(
          std::chrono::duration<double>(-tokens_ / rate_));
      Refill();
    }
  }

 private:
  void Refill() {
    const auto now = Clock::now();
    const double elapsed = std::chrono::duration<double>(now - last_).count();
    last_ = now;
    tokens_ = std::min(rate_, tokens_ + elapsed * rate_);
  }

  double rate_;
  double tokens_;
  Clock::time_point last_;
};

}  // namespace cbtd::transport

#endif  // CBTD_TRANSPORT_TOKEN_BUCKET_H_
