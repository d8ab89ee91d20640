// Small tools over librados for code that keeps tables in omap (the RADOS
// chunk index): ops on many objects at once, paged reads in key order.
#ifndef CBTD_RECEIVER_RADOS_OMAP_H_
#define CBTD_RECEIVER_RADOS_OMAP_H_

#include <rados/librados.hpp>

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <set>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"

namespace cbtd::receiver::rados {

using librados::bufferlist;

bufferlist ToBl(std::string_view s);
std::string FromBl(const bufferlist& bl);

// A batch of ops on different objects, run concurrently (aio): the ops of
// a call that touches many objects cost one round trip, not one each.
template <typename Op>
struct Batch {
  std::vector<std::string> oids;
  std::vector<std::unique_ptr<Op>> ops;
  Op& Add(std::string oid) {
    oids.push_back(std::move(oid));
    ops.push_back(std::make_unique<Op>());
    return *ops.back();
  }
  size_t size() const { return oids.size(); }
};
using WriteBatch = Batch<librados::ObjectWriteOperation>;
using ReadBatch = Batch<librados::ObjectReadOperation>;

// Runs every op of the batch at once and waits for all; the return code of
// each, in order (0 or a negative errno).
std::vector<int> Run(librados::IoCtx& io, WriteBatch& batch);
std::vector<int> Run(librados::IoCtx& io, ReadBatch& batch);

// The values of `keys` in `oid`'s omap (keys it lacks are absent from the
// result; an absent object has none). Errors name `what`.
absl::StatusOr<std::map<std::string, bufferlist>> GetValues(
    librados::IoCtx& io, const std::string& oid,
    const std::set<std::string>& keys, const std::string& what);

// Reads `oid`'s omap in key order, a page at a time (an absent object is
// empty), so a caller never holds the whole of a large table.
class OmapPager {
 public:
  static constexpr uint64_t kPage = 1024;
  OmapPager(librados::IoCtx& io, std::string oid, std::string prefix,
            std::string what)
      : io_(io),
        oid_(std::move(oid)),
        prefix_(std::move(prefix)),
        what_(std::move(what)) {}
  // The next pair, false at the end.
  absl::StatusOr<bool> Next(std::string& key, bufferlist& value);

 private:
  librados::IoCtx& io_;
  const std::string oid_, prefix_, what_;
  std::map<std::string, bufferlist> page_;
  std::map<std::string, bufferlist>::iterator at_ = page_.end();
  std::string after_;
  bool more_ = true;
};

// Calls fn(key, value) for each pair of `oid`'s omap whose key starts with
// `prefix`, in key order, a page at a time; stops at fn's first error.
absl::Status ForEach(librados::IoCtx& io, const std::string& oid,
                     const std::string& prefix, const std::string& what,
                     const std::function<absl::Status(
                         const std::string& key, const bufferlist& value)>& fn);

}  // namespace cbtd::receiver::rados

#endif  // CBTD_RECEIVER_RADOS_OMAP_H_
