#include "receiver/rados_omap.h"

#include <cerrno>

#include "receiver/rados_status.h"

namespace cbtd::receiver::rados {

bufferlist ToBl(std::string_view s) {
  bufferlist bl;
  bl.append(s.data(), s.size());
  return bl;
}

std::string FromBl(const bufferlist& bl) {
  std::string s;
  bl.begin().copy(bl.length(), s);
  return s;
}

namespace {

template <typename Submit>
std::vector<int> RunAll(size_t n, Submit submit) {
  std::vector<librados::AioCompletion*> done(n, nullptr);
  std::vector<int> rcs(n, 0);
  for (size_t i = 0; i < n; ++i) {
    done[i] = librados::Rados::aio_create_completion();
    rcs[i] = submit(i, done[i]);
  }
  for (size_t i = 0; i < n; ++i) {
    if (rcs[i] == 0) {
      done[i]->wait_for_complete();
      rcs[i] = done[i]->get_return_value();
    }
    done[i]->release();
  }
  return rcs;
}

}  // namespace

std::vector<int> Run(librados::IoCtx& io, WriteBatch& batch) {
  return RunAll(batch.size(), [&](size_t i, librados::AioCompletion* c) {
    return io.aio_operate(batch.oids[i], c, batch.ops[i].get());
  });
}

std::vector<int> Run(librados::IoCtx& io, ReadBatch& batch) {
  return RunAll(batch.size(), [&](size_t i, librados::AioCompletion* c) {
    return io.aio_operate(batch.oids[i], c, batch.ops[i].get(), nullptr);
  });
}

absl::StatusOr<std::map<std::string, bufferlist>> GetValues(
    librados::IoCtx& io, const std::string& oid,
    const std::set<std::string>& keys, const std::string& what) {
  std::map<std::string, bufferlist> out;
  if (keys.empty()) return out;
  librados::ObjectReadOperation op;
  int prval = 0;
  op.omap_get_vals_by_keys(keys, &out, &prval);
  const int rc = io.operate(oid, &op, nullptr);
  if (rc == -ENOENT) return std::map<std::string, bufferlist>();
  if (rc < 0) return RadosStatus(rc, what);
  if (prval < 0) return RadosStatus(prval, what);
  return out;
}

absl::StatusOr<bool> OmapPager::Next(std::string& key, bufferlist& value) {
  if (at_ == page_.end()) {
    if (!more_) return false;
    page_.clear();
    librados::ObjectReadOperation op;
    int prval = 0;
    op.omap_get_vals2(after_, prefix_, kPage, &page_, &more_, &prval);
    const int rc = io_.operate(oid_, &op, nullptr);
    if (rc == -ENOENT) {
      more_ = false;
      return false;
    }
    if (rc < 0) return RadosStatus(rc, what_);
    if (prval < 0) return RadosStatus(prval, what_);
    at_ = page_.begin();
    if (at_ == page_.end()) {
      more_ = false;
      return false;
    }
    after_ = page_.rbegin()->first;
  }
  key = at_->first;
  value = at_->second;
  ++at_;
  return true;
}

absl::Status ForEach(
    librados::IoCtx& io, const std::string& oid, const std::string& prefix,
    const std::string& what,
    const std::function<absl::Status(const std::string& key,
                                     const bufferlist& value)>& fn) {
  OmapPager pager(io, oid, prefix, what);
  std::string key;
  bufferlist value;
  while (true) {
    auto more = pager.Next(key, value);
    if (!more.ok()) return more.status();
    if (!*more) return absl::OkStatus();
    if (absl::Status s = fn(key, value); !s.ok()) return s;
  }
}

}  // namespace cbtd::receiver::rados
