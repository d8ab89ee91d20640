// bench-image: the seeded source images and workloads of bench/run.sh.
//
//   bench-image create --out PATH --size-bytes N --seed S
//       Writes a raw image of N bytes made of 1 MiB regions, each one of
//       incompressible (random), compressible (text-like, ~3-4x with zstd)
//       or zero, chosen from the seed (40% / 35% / 25%). Zero regions are
//       written as zeros (the file is dense) so every tool reads them from
//       the disk. Prints a JSON summary of the mix on stdout.
//
//   bench-image mutate --target PATH (--fraction F | --changed-bytes N)
//       --seed S [--write-bytes 65536] [--align-bytes 4096]
//       --extents-out FILE
//       Overwrites non-overlapping random writes of --write-bytes at
//       --align-bytes aligned offsets until the union covers the requested
//       bytes, fsyncs, and writes the exact changed-extent list to FILE:
//       one "offset_bytes length_bytes" line per merged extent, ascending.
//       PATH may be a file or a block device (e.g. the loop device that
//       holds the image). Prints a JSON summary on stdout.
//
// Same seed, same bytes: runs of the benchmark are comparable. The program
// is deliberately self-contained (no cbtd library): it is the ground truth
// the measured tools are compared against.
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <iostream>
#include <iterator>
#include <map>
#include <set>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "common/cli.h"
#include "common/unique_fd.h"

namespace cbtd::bench {
namespace {

constexpr uint64_t kRegionBytes = 1 << 20;

// splitmix64: seeds per region/write so any part can be regenerated alone.
uint64_t SplitMix(uint64_t x) {
  x += 0x9e3779b97f4a7c15ULL;
  x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ULL;
  x = (x ^ (x >> 27)) * 0x94d049bb133111ebULL;
  return x ^ (x >> 31);
}

// xoshiro256**: fast enough to fill gigabytes of incompressible data.
class Rng {
 public:
  explicit Rng(uint64_t seed) {
    for (uint64_t& s : s_) s = seed = SplitMix(seed);
  }
  uint64_t Next() {
    const uint64_t result = Rotl(s_[1] * 5, 7) * 9;
    const uint64_t t = s_[1] << 17;
    s_[2] ^= s_[0];
    s_[3] ^= s_[1];
    s_[1] ^= s_[2];
    s_[0] ^= s_[3];
    s_[2] ^= t;
    s_[3] = Rotl(s_[3], 45);
    return result;
  }

 private:
  static uint64_t Rotl(uint64_t x, int k) { return (x << k) | (x >> (64 - k)); }
  uint64_t s_[4];
};

enum class Kind { kRandom, kText, kZero };

const char* KindName(Kind k) {
  switch (k) {
    case Kind::kRandom:
      return "incompressible";
    case Kind::kText:
      return "compressible";
    case Kind::kZero:
      return "zero";
  }
  return "?";
}

Kind RegionKind(uint64_t seed, uint64_t region) {
  const uint64_t r = SplitMix(seed ^ SplitMix(region)) % 100;
  if (r < 40) return Kind::kRandom;
  if (r < 75) return Kind::kText;
  return Kind::kZero;
}

void FillRandom(Rng& rng, std::span<char> out) {
  size_t i = 0;
  for (; i + 8 <= out.size(); i += 8) {
    const uint64_t v = rng.Next();
    std::memcpy(out.data() + i, &v, 8);
  }
  for (; i < out.size(); ++i) out[i] = static_cast<char>(rng.Next());
}

// Log-like text from a small vocabulary: compresses about 3-4x with zstd,
// and never repeats exactly, so dedup tools cannot collapse it.
void FillText(Rng& rng, std::span<char> out) {
  static constexpr std::string_view kWords[] = {
      "the",     "volume", "block",   "snapshot", "backup",  "error",   "info",
      "kernel",  "device", "mapper",  "thin",     "pool",    "write",   "read",
      "extent",  "chunk",  "server",  "client",   "request", "timeout", "retry",
      "session", "commit", "index",   "user",     "admin",   "config",  "value",
      "table",   "record", "network", "latency"};
  size_t i = 0;
  while (i < out.size()) {
    uint64_t v = rng.Next();
    if ((v & 0xf) == 0) {  // a number now and then, like a log line
      char num[24];
      const int n = std::snprintf(num, sizeof(num), "%u ",
                                  static_cast<unsigned>((v >> 8) % 100000));
      for (int k = 0; k < n && i < out.size(); ++k) out[i++] = num[k];
      continue;
    }
    const std::string_view w = kWords[(v >> 4) % std::size(kWords)];
    for (char c : w) {
      if (i == out.size()) break;
      out[i++] = c;
    }
    if (i < out.size()) out[i++] = ((v >> 12) % 12 == 0) ? '\n' : ' ';
  }
}

void Fill(Kind kind, uint64_t seed, std::span<char> out) {
  Rng rng(seed);
  switch (kind) {
    case Kind::kRandom:
      FillRandom(rng, out);
      break;
    case Kind::kText:
      FillText(rng, out);
      break;
    case Kind::kZero:
      std::memset(out.data(), 0, out.size());
      break;
  }
}

bool WriteAll(int fd, const char* data, size_t size, uint64_t offset,
              const std::string& path) {
  while (size > 0) {
    const ssize_t n = ::pwrite(fd, data, size, static_cast<off_t>(offset));
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) {
      std::cerr << "bench-image: write " << path << " at " << offset << ": "
                << std::strerror(errno) << "\n";
      return false;
    }
    data += n;
    size -= static_cast<size_t>(n);
    offset += static_cast<uint64_t>(n);
  }
  return true;
}

// fsync, then close: a failure of either is reported (naming the path).
bool SyncAndClose(common::UniqueFd& fd, const std::string& path) {
  if (::fsync(fd.get()) != 0) {
    std::cerr << "bench-image: fsync " << path << ": " << std::strerror(errno)
              << "\n";
    return false;
  }
  if (absl::Status st = fd.Close(path); !st.ok()) {
    std::cerr << "bench-image: " << st.message() << "\n";
    return false;
  }
  return true;
}

// --key value options; returns false on an unknown or valueless option.
bool ParseOptions(std::span<char*> args,
                  std::map<std::string, std::string>& opts) {
  for (size_t i = 1; i < args.size(); ++i) {
    const std::string key = args[i];
    if (key.rfind("--", 0) != 0 || i + 1 >= args.size() ||
        !opts.contains(key.substr(2))) {
      std::cerr << "bench-image: bad option " << key << "\n";
      return false;
    }
    opts[key.substr(2)] = args[++i];
  }
  return true;
}

uint64_t ToU64(const std::string& s) {
  return std::stoull(s.empty() ? "0" : s);
}

int RunCreate(std::span<char*> args) {
  std::map<std::string, std::string> o{
      {"out", ""}, {"size-bytes", ""}, {"seed", "1"}};
  if (!ParseOptions(args, o) || o["out"].empty() || o["size-bytes"].empty()) {
    std::cerr
        << "usage: bench-image create --out PATH --size-bytes N --seed S\n";
    return common::kExitUsage;
  }
  const uint64_t size = ToU64(o["size-bytes"]);
  const uint64_t seed = ToU64(o["seed"]);
  common::UniqueFd fd(
      ::open(o["out"].c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644));
  if (!fd) {
    std::cerr << "bench-image: open " << o["out"] << ": "
              << std::strerror(errno) << "\n";
    return common::kExitFailure;
  }
  // Write 8 regions per call: large sequential writes.
  std::vector<char> buf(8 * kRegionBytes);
  uint64_t by_kind[3] = {0, 0, 0};
  for (uint64_t off = 0; off < size;) {
    const uint64_t len = std::min<uint64_t>(buf.size(), size - off);
    for (uint64_t r = 0; r * kRegionBytes < len; ++r) {
      const uint64_t region = off / kRegionBytes + r;
      const uint64_t rlen = std::min(kRegionBytes, len - r * kRegionBytes);
      const Kind kind = RegionKind(seed, region);
      Fill(kind, SplitMix(seed + region),
           std::span(buf.data() + r * kRegionBytes, rlen));
      by_kind[static_cast<int>(kind)] += rlen;
    }
    if (!WriteAll(fd.get(), buf.data(), len, off, o["out"]))
      return common::kExitFailure;
    off += len;
  }
  if (!SyncAndClose(fd, o["out"])) return common::kExitFailure;
  std::cout << "{\"size_bytes\": " << size << ", \"seed\": " << seed
            << ", \"region_bytes\": " << kRegionBytes << ", \"mix_bytes\": {";
  for (int k = 0; k < 3; ++k) {
    std::cout << (k ? ", " : "") << "\"" << KindName(static_cast<Kind>(k))
              << "\": " << by_kind[k];
  }
  std::cout << "}}\n";
  return common::kExitOk;
}

int RunMutate(std::span<char*> args) {
  std::map<std::string, std::string> o{
      {"target", ""},     {"fraction", ""},         {"changed-bytes", ""},
      {"seed", "1"},      {"write-bytes", "65536"}, {"align-bytes", "4096"},
      {"extents-out", ""}};
  if (!ParseOptions(args, o) || o["target"].empty() ||
      o["extents-out"].empty() ||
      o["fraction"].empty() == o["changed-bytes"].empty()) {
    std::cerr << "usage: bench-image mutate --target PATH (--fraction F | "
                 "--changed-bytes N) --seed S --extents-out FILE "
                 "[--write-bytes 65536] [--align-bytes 4096]\n";
    return common::kExitUsage;
  }
  common::UniqueFd fd(::open(o["target"].c_str(), O_WRONLY | O_CLOEXEC));
  if (!fd) {
    std::cerr << "bench-image: open " << o["target"] << ": "
              << std::strerror(errno) << "\n";
    return common::kExitFailure;
  }
  // lseek to the end works for block devices too.
  const off_t end = ::lseek(fd.get(), 0, SEEK_END);
  const uint64_t size = end > 0 ? static_cast<uint64_t>(end) : 0;
  const uint64_t write_bytes = ToU64(o["write-bytes"]);
  const uint64_t align = ToU64(o["align-bytes"]);
  const uint64_t seed = ToU64(o["seed"]);
  const uint64_t want =
      o["fraction"].empty()
          ? ToU64(o["changed-bytes"])
          : static_cast<uint64_t>(std::stod(o["fraction"]) * size);
  const uint64_t writes =
      std::max<uint64_t>(1, (want + write_bytes / 2) / write_bytes);
  if (write_bytes == 0 || align == 0 || size < write_bytes ||
      writes * write_bytes > size / 2) {
    std::cerr << "bench-image: cannot place " << writes << " writes of "
              << write_bytes << " bytes in " << size
              << " bytes (at most half the volume)\n";
    return common::kExitUsage;
  }
  // Non-overlapping random slots: rejection sampling against the neighbours.
  Rng rng(SplitMix(seed ^ 0x6d757461746531ULL));
  const uint64_t slots = (size - write_bytes) / align + 1;
  std::set<uint64_t> starts;
  while (starts.size() < writes) {
    const uint64_t s = (rng.Next() % slots) * align;
    auto next = starts.lower_bound(s);
    if (next != starts.end() && *next < s + write_bytes) continue;
    if (next != starts.begin() && *std::prev(next) + write_bytes > s) continue;
    starts.insert(s);
  }
  std::vector<char> buf(write_bytes);
  uint64_t i = 0;
  for (uint64_t s : starts) {  // ascending order of offsets, seeded content
    const uint64_t wseed = SplitMix(seed * 1000003 + i++);
    Fill((wseed & 1) ? Kind::kRandom : Kind::kText, wseed, buf);
    if (!WriteAll(fd.get(), buf.data(), buf.size(), s, o["target"]))
      return common::kExitFailure;
  }
  if (!SyncAndClose(fd, o["target"])) return common::kExitFailure;
  FILE* out = std::fopen(o["extents-out"].c_str(), "w");
  if (out == nullptr) {
    std::cerr << "bench-image: open " << o["extents-out"] << ": "
              << std::strerror(errno) << "\n";
    return common::kExitFailure;
  }
  uint64_t extents = 0;
  for (auto it = starts.begin(); it != starts.end();) {
    const uint64_t begin = *it;
    uint64_t stop = begin + write_bytes;
    for (++it; it != starts.end() && *it == stop; ++it) stop += write_bytes;
    std::fprintf(out, "%llu %llu\n", static_cast<unsigned long long>(begin),
                 static_cast<unsigned long long>(stop - begin));
    ++extents;
  }
  if (std::fclose(out) != 0) return common::kExitFailure;
  std::cout << "{\"size_bytes\": " << size << ", \"seed\": " << seed
            << ", \"writes\": " << writes
            << ", \"write_bytes\": " << write_bytes
            << ", \"align_bytes\": " << align
            << ", \"changed_bytes\": " << writes * write_bytes
            << ", \"extents\": " << extents << "}\n";
  return common::kExitOk;
}

}  // namespace
}  // namespace cbtd::bench

int main(int argc, char** argv) {
  static constexpr cbtd::common::Subcommand kCommands[] = {
      {"create", "write a seeded raw image with a stated content mix",
       cbtd::bench::RunCreate},
      {"mutate", "apply seeded random writes and write the changed-extent list",
       cbtd::bench::RunMutate},
  };
  const cbtd::common::Program program{
      "bench-image",
      "bench-image makes the seeded source images and workloads that\n"
      "bench/run.sh measures cbtd and its peers on.",
      kCommands};
  return cbtd::common::DispatchSubcommand(program, argc, argv);
}
