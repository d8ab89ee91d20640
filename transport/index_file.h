// An index file (cbt-receiver versions --export-index) read as an
// IndexEntrySource: the head and metadata at open, the entries 1 MiB at a
// time, the trailing checksum at the end. The offline `cbtctl send
// --base-index FILE` reads its base this way, so its memory does not grow
// with the volume (an index is 8 GiB at 16 TiB).
#ifndef CBTD_TRANSPORT_INDEX_FILE_H_
#define CBTD_TRANSPORT_INDEX_FILE_H_

#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "transport/index_source.h"

namespace cbtd::transport {

// Opens `path`. Errors name the file: NOT_FOUND / the open's errno;
// DATA_LOSS for a bad magic or metadata, or a size that does not match
// the metadata's entry count; FAILED_PRECONDITION for a format this build
// does not read. The source's Next ends in DATA_LOSS instead of its end if
// the trailing checksum does not match. The root hash is the reader's to
// check (index_source.h).
absl::StatusOr<std::unique_ptr<IndexEntrySource>> OpenIndexFile(
    const std::string& path);

}  // namespace cbtd::transport

#endif  // CBTD_TRANSPORT_INDEX_FILE_H_
