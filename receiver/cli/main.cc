#include <malloc.h>

#include "receiver/cli/commands.h"

int main(int argc, char** argv) {
  // Chunk batches, stream records and pack buffers of a few MiB are
  // allocated and freed over and over: served from the heap and kept (up
  // to 64 MiB free), not mapped and unmapped each time, since the page
  // faults cost more than the copies (docs/performance.md).
  mallopt(M_MMAP_THRESHOLD, 32 << 20);
  mallopt(M_TRIM_THRESHOLD, 64 << 20);
  return cbtd::receiver::cli::ReceiverMain(argc, argv);
}
