// Measures the receiver's peak RSS against the size of a volume (issue
// 14, docs/vault.md "Memory"): a base index of ENTRIES entries of 64 KiB
// chunks (268435456 for 16 TiB) is synthesised as an index object in a
// new vault, an incremental stream of 16 new chunks, 16 references and a
// zero run is received against it, and GC marks both versions. Prints the
// time and the peak RSS after each phase.
//
// Usage: index_scale ENTRIES [DISTINCT_IDS [no-gc|gc-only]]
// The base's entries cycle over DISTINCT_IDS ids (default 65536; every
// 8th entry is a zero chunk) so GC's mark measures reading the indexes,
// not SQLite inserting millions of marks (chunk_index_scale measures
// that). The vault goes to $TMPDIR (default /tmp) and is removed at the
// end; it needs about 3 * 32 * ENTRIES bytes while the receive runs.
#include <cstdlib>
#include <filesystem>
#include <iostream>
#include <string>

#include "tests/common/temp_dir.h"
#include "tests/receiver/index_scale.h"

int main(int argc, char** argv) {
  using namespace cbtd::receiver::testing;
  if (argc < 2) {
    std::cerr << "usage: index_scale ENTRIES [DISTINCT_IDS [no-gc|gc-only]]\n";
    return 2;
  }
  const uint64_t entries = std::strtoull(argv[1], nullptr, 10);
  const uint64_t distinct =
      argc > 2 ? std::strtoull(argv[2], nullptr, 10) : 65536;
  const std::string mode = argc > 3 ? argv[3] : "";
  const bool gc = mode != "no-gc";
  const bool receive = mode != "gc-only";
  if (entries < 16 * kScaleNewChunks || distinct == 0) {
    std::cerr << "index_scale: ENTRIES must be at least "
              << 16 * kScaleNewChunks << " and DISTINCT_IDS positive\n";
    return 2;
  }
  cbtd::test::TempDir dir("cbtd-index-scale-");
  std::cout << "entries " << entries << " (volume "
            << (entries * kScaleChunkBytes >> 30) << " GiB), index object "
            << (entries * 32 >> 20) << " MiB, start RSS " << PeakRssKiB()
            << " KiB" << std::endl;
  auto r = RunIndexScale(dir.path() + "/vault", entries, distinct, gc, receive);
  if (!r.ok()) {
    std::cerr << "index_scale: " << r.status() << "\n";
    return 1;
  }
  std::cout << "synthesise base: " << r->synth_s << " s, peak RSS "
            << r->rss_synth_kib << " KiB" << std::endl;
  if (receive) {
    std::cout << "receive incremental: " << r->receive_s << " s, peak RSS "
              << r->rss_receive_kib << " KiB\n";
  }
  if (gc) {
    std::cout << "gc mark (dry run): " << r->gc_s << " s, peak RSS "
              << r->rss_gc_kib << " KiB\n";
  }
  return 0;
}
