// Little-endian integers in on-disk and on-wire formats (the vault's chunk
// objects, the version index, the dm-snapshot COW header), independent of
// the host's byte order.
#ifndef CBTD_COMMON_BYTE_ORDER_H_
#define CBTD_COMMON_BYTE_ORDER_H_

#include <cstdint>
#include <string>

namespace cbtd::common {

// Appends the low `bytes` bytes (1 to 8) of `v`, least significant first.
inline void PutLe(std::string& out, uint64_t v, int bytes) {
  for (int i = 0; i < bytes; ++i) {
    out.push_back(static_cast<char>(v >> (8 * i)));
  }
}

// Reads a `bytes`-byte (1 to 8) little-endian integer at `p`.
inline uint64_t GetLe(const void* p, int bytes) {
  const auto* u = static_cast<const unsigned char*>(p);
  uint64_t v = 0;
  for (int i = 0; i < bytes; ++i) v |= static_cast<uint64_t>(u[i]) << (8 * i);
  return v;
}

}  // namespace cbtd::common

#endif  // CBTD_COMMON_BYTE_ORDER_H_
