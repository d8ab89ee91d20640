// Keeps the COW (thick) snapshots a backup run reads from overflowing.
//
// A thick snapshot stores the origin's old blocks as they are overwritten;
// when its COW store fills, the kernel drops it (every read then fails
// with EIO) and the run is lost. While a run holds such snapshots, a
// CowGuard polls each one's fill from its device-mapper status (an ioctl,
// no lvm2 process) and, past `extend_at_percent`, grows it with lvextend by
// half its size (at least one extent), up to its limit and to what the VG
// has free. A snapshot that could not be kept from overflowing is named by
// Overflow(), with the setting to change, so the run's error says why.
//
//   CowGuard(..)  --every interval-->  CheckNow()  --fuller than the mark-->
//       ExtendLv (bounded by limit_bytes and the VG's free space)
//   ~CowGuard: stops the poller and waits for it.
//
// Thread-safety: CheckNow, Overflow and notes may be called from any
// thread; the poller calls CheckNow from its own.
#ifndef CBTD_SNAPSHOT_COW_GUARD_H_
#define CBTD_SNAPSHOT_COW_GUARD_H_

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <mutex>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "snapshot/device_mapper.h"
#include "snapshot/lvm.h"

namespace cbtd::snapshot {

struct GuardedSnapshot {
  std::string volume;  // the configured volume, for messages
  std::string vg;
  std::string name;          // the snapshot LV
  uint64_t limit_bytes = 0;  // the largest COW size it may be given
  // The setting that sets the limit, named in messages.
  std::string limit_setting = "cow_max_size";
};

struct CowGuardOptions {
  double extend_at_percent = 60.0;
  std::chrono::milliseconds interval{2000};
  // Told each note as it is made (from the poller's thread); may be empty.
  std::function<void(const std::string&)> on_note;
};

class CowGuard {
 public:
  // Starts polling `snapshots` (none: no thread). `lvm` and `dm` must
  // outlive the guard.
  CowGuard(Lvm& lvm, DeviceMapper& dm, std::vector<GuardedSnapshot> snapshots,
           CowGuardOptions options);
  ~CowGuard();
  CowGuard(const CowGuard&) = delete;
  CowGuard& operator=(const CowGuard&) = delete;

  // One pass over every snapshot: extends those past the mark.
  void CheckNow();

  // If `volume`'s snapshot has overflowed (checked now), why and what to
  // change; empty otherwise.
  std::string Overflow(const std::string& volume);

  // One line per extension made and per extension refused, in order.
  std::vector<std::string> notes();

 private:
  // Grows `s` (fill `percent`, COW size `size_bytes`) if it may.
  void Extend(const GuardedSnapshot& s, double percent, uint64_t size_bytes);
  void Note(const std::string& line);
  void Poll();

  Lvm& lvm_;
  DeviceMapper& dm_;
  const std::vector<GuardedSnapshot> snapshots_;
  const CowGuardOptions options_;

  std::mutex mu_;
  std::condition_variable wake_;
  bool stop_ = false;               // guarded by mu_
  std::vector<std::string> notes_;  // guarded by mu_
  std::set<std::string> refused_;   // told "cannot extend"; check_mu_
  std::mutex check_mu_;             // one CheckNow at a time
  std::thread poller_;
};

}  // namespace cbtd::snapshot

#endif  // CBTD_SNAPSHOT_COW_GUARD_H_
