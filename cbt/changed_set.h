// The answer of every changed-block method: which bytes of a volume may
// differ between the base (last committed version) and the new snapshot.
//
// A ChangedSet is computed once and handed to a ChangedSetEmitter, so the
// stream, the JSON debug dump (`cbtctl changes --json`) and the tests all
// consume the same computation.
//
// Contract for consumers:
//  - `changed` holds bytes that may differ: read them from the new snapshot.
//  - `zeroed` holds bytes that read as zeros in the new snapshot (thin
//    discards); the receiver must store them as zeros. Disjoint from
//    `changed`.
//  - Bytes in neither set are identical in the base and the new snapshot.
//  - When `lost` is true tracking could not answer (reason in `lost_reason`)
//    and `changed` is the whole volume: a consumer that ignores the flag
//    still reads everything, never a silent partial.
//
// Thread-safety: values; an emitter is used from one thread.
#ifndef CBTD_CBT_CHANGED_SET_H_
#define CBTD_CBT_CHANGED_SET_H_

#include <cstdint>
#include <string>
#include <string_view>

#include "absl/status/statusor.h"
#include "cbt/extent_set.h"

namespace cbtd::cbt {

enum class Method { kThinDelta, kCowTable, kEra, kHash, kExternal };

std::string MethodName(Method m);  // "thin-delta", "cow-table", ...
// Accepts the names MethodName() returns; INVALID_ARGUMENT otherwise.
absl::StatusOr<Method> ParseMethod(std::string_view name);

struct ChangedSet {
  Method method = Method::kHash;
  // Identity of the tracking generation the set is relative to, e.g.
  // "thin:vg/pool:3->7" or "era:12"; opaque to consumers, shown in reports.
  std::string generation;
  uint64_t volume_size_bytes = 0;
  // Tracking unit: extents are multiples of it, except the volume's last
  // partial unit which is clipped to volume_size_bytes.
  uint64_t granularity_bytes = 0;
  ExtentSet changed;
  ExtentSet zeroed;
  bool lost = false;
  std::string lost_reason;

  // Tracking lost: the whole volume is `changed`.
  static ChangedSet Lost(Method method, uint64_t volume_size_bytes,
                         std::string reason);

  // changed ∪ zeroed: every byte that may differ.
  ExtentSet AllChanged() const;
};

// Receives a changed set in ascending offset order. Begin and End are
// called exactly once; Changed/Zeroed extents never overlap.
class ChangedSetEmitter {
 public:
  virtual ~ChangedSetEmitter() = default;
  virtual void Begin(const ChangedSet& header) = 0;
  virtual void Changed(const Extent& e) = 0;
  virtual void Zeroed(const Extent& e) = 0;
  virtual void End() = 0;
};

// Walks `set` into `emitter`, merging changed and zeroed extents by offset.
void Emit(const ChangedSet& set, ChangedSetEmitter& emitter);

// JSON debug dump: {"method", "generation", "volume_size_bytes",
// "granularity_bytes", "lost", "lost_reason", "changed_bytes",
// "zeroed_bytes", "extents": [{"offset":o,"length":l,"zero":bool}...]}.
std::string ChangedSetToJson(const ChangedSet& set);

}  // namespace cbtd::cbt

#endif  // CBTD_CBT_CHANGED_SET_H_
