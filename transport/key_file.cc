#include "transport/key_file.h"

#include <fcntl.h>
#include <openssl/crypto.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <map>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/time/time.h"
#include "common/fs.h"
#include "common/unique_fd.h"

namespace cbtd::transport {
namespace {

constexpr char kMagic[] = "cbtd-key-v1";
// A key file is ~200 bytes; anything much larger is not one.
constexpr size_t kMaxKeyFileBytes = 4096;

std::string DirName(const std::string& path) {
  const size_t slash = path.rfind('/');
  if (slash == std::string::npos) return ".";
  if (slash == 0) return "/";
  return path.substr(0, slash);
}

// mkdir -p with mode 0700 for the directories that are missing.
absl::Status MakeParents(const std::string& dir) {
  for (size_t pos = 1; pos <= dir.size(); ++pos) {
    if (pos != dir.size() && dir[pos] != '/') continue;
    const std::string prefix = dir.substr(0, pos);
    if (::mkdir(prefix.c_str(), 0700) != 0 && errno != EEXIST) {
      return common::ErrnoStatus(errno, absl::StrCat("mkdir ", prefix));
    }
  }
  return absl::OkStatus();
}

absl::Status WriteAll(int fd, std::string_view data, const std::string& what) {
  while (!data.empty()) {
    const ssize_t n = ::write(fd, data.data(), data.size());
    if (n < 0) {
      if (errno == EINTR) continue;
      return common::ErrnoStatus(errno, absl::StrCat("write ", what));
    }
    data.remove_prefix(static_cast<size_t>(n));
  }
  return absl::OkStatus();
}

std::string Hex(std::span<const uint8_t> bytes) {
  static constexpr char kHex[] = "0123456789abcdef";
  std::string out;
  out.reserve(bytes.size() * 2);
  for (uint8_t b : bytes) {
    out += kHex[b >> 4];
    out += kHex[b & 15];
  }
  return out;
}

int HexValue(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

std::string Contents(const TenantKey& key, int64_t created_unix) {
  return absl::StrCat(
      kMagic,
      "\n# cbtd tenant key. Keep it secret; keep a copy offline (cbtctl key "
      "export).\n# Without it no backup made under it can be restored.\n",
      "fingerprint ", key.fingerprint(), "\n", "created ",
      absl::FormatTime("%Y-%m-%dT%H:%M:%SZ",
                       absl::FromUnixSeconds(created_unix),
                       absl::UTCTimeZone()),
      "\n", "key ", Hex(key.secret()), "\n");
}

absl::Status Damaged(const std::string& path, const std::string& what) {
  return absl::DataLossError(absl::StrCat(
      "key file ", path, " is damaged: ", what,
      "; move it away and restore the key from its recovery text with "
      "`cbtctl key import --key-file ",
      path, "`"));
}

absl::StatusOr<KeyFile> Parse(const std::string& path,
                              const std::string& text) {
  std::vector<std::string_view> lines;
  for (std::string_view rest = text; !rest.empty();) {
    const size_t nl = rest.find('\n');
    lines.push_back(rest.substr(0, nl));
    rest.remove_prefix(nl == std::string_view::npos ? rest.size() : nl + 1);
  }
  if (lines.empty() || lines[0] != kMagic) {
    return absl::DataLossError(
        absl::StrCat(path, " is not a cbtd key file (its first line is not '",
                     kMagic, "')"));
  }
  std::map<std::string_view, std::string_view> fields;
  for (size_t i = 1; i < lines.size(); ++i) {
    const std::string_view line = lines[i];
    if (line.empty() || line[0] == '#') continue;
    const size_t space = line.find(' ');
    const std::string_view name = line.substr(0, space);
    if (space == std::string_view::npos ||
        (name != "fingerprint" && name != "created" && name != "key")) {
      return Damaged(path, absl::StrCat("line ", i + 1, " is not understood"));
    }
    if (!fields.emplace(name, line.substr(space + 1)).second) {
      return Damaged(path, absl::StrCat("line ", i + 1, " repeats '",
                                        std::string(name), "'"));
    }
  }
  for (std::string_view name : {"fingerprint", "created", "key"}) {
    if (!fields.contains(name)) {
      return Damaged(
          path, absl::StrCat("the '", std::string(name), "' line is missing"));
    }
  }
  const std::string_view hex = fields["key"];
  if (hex.size() != 2 * TenantKey::kSize) {
    return Damaged(path,
                   absl::StrCat("the key has ", hex.size(), " hex digits, not ",
                                2 * TenantKey::kSize));
  }
  TenantKey::Bytes secret{};
  for (size_t i = 0; i < secret.size(); ++i) {
    const int hi = HexValue(hex[2 * i]), lo = HexValue(hex[2 * i + 1]);
    if (hi < 0 || lo < 0) {
      OPENSSL_cleanse(secret.data(), secret.size());
      return Damaged(path, "the key line has a character that is not hex");
    }
    secret[i] = static_cast<uint8_t>(hi << 4 | lo);
  }
  absl::StatusOr<TenantKey> key = TenantKey::FromSecret(secret);
  OPENSSL_cleanse(secret.data(), secret.size());
  if (!key.ok()) return key.status();
  if (key->fingerprint() != fields["fingerprint"]) {
    return Damaged(path, absl::StrCat("its fingerprint line (",
                                      std::string(fields["fingerprint"]),
                                      ") does not match its key (",
                                      key->fingerprint(), ")"));
  }
  absl::Time created;
  std::string err;
  if (!absl::ParseTime(absl::RFC3339_full, std::string(fields["created"]),
                       &created, &err)) {
    return Damaged(path, absl::StrCat("its created line: ", err));
  }
  return KeyFile{path, *std::move(key), absl::ToUnixSeconds(created)};
}

}  // namespace

absl::Status CreateKeyFile(const std::string& path, const TenantKey& key,
                           int64_t created_unix) {
  const std::string dir = DirName(path);
  if (absl::Status st = MakeParents(dir); !st.ok()) return st;
  std::string tmp = path + ".tmp.XXXXXX";
  common::UniqueFd fd(::mkostemp(tmp.data(), O_CLOEXEC));  // mode 0600
  if (!fd) {
    return common::ErrnoStatus(errno,
                               absl::StrCat("create temporary file ", tmp));
  }
  std::string contents = Contents(key, created_unix);
  absl::Status st = WriteAll(fd.get(), contents, tmp);
  OPENSSL_cleanse(contents.data(), contents.size());
  if (st.ok() && ::fchmod(fd.get(), 0600) != 0) {
    st = common::ErrnoStatus(errno, absl::StrCat("chmod ", tmp));
  }
  if (st.ok() && ::fsync(fd.get()) != 0) {
    st = common::ErrnoStatus(errno, absl::StrCat("fsync ", tmp));
  }
  if (st.ok()) st = fd.Close(tmp);
  // link(2), unlike rename(2), fails instead of replacing `path`.
  if (st.ok() && ::link(tmp.c_str(), path.c_str()) != 0) {
    st = errno == EEXIST
             ? absl::AlreadyExistsError(absl::StrCat(
                   "key file ", path,
                   " already exists; refusing to replace it (backups may "
                   "depend on it). Choose another --key-file, or move it "
                   "away first if you are sure it is not needed"))
             : common::ErrnoStatus(errno,
                                   absl::StrCat("link ", tmp, " to ", path));
  }
  ::unlink(tmp.c_str());
  if (!st.ok()) return st;
  return common::FsyncDirectory(dir);
}

absl::StatusOr<KeyFile> LoadKeyFile(const std::string& path) {
  common::UniqueFd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NOCTTY));
  if (!fd) {
    if (errno == ENOENT) {
      return absl::NotFoundError(absl::StrCat(
          "key file ", path,
          " not found: create a key with `cbtctl key create` or restore "
          "yours with `cbtctl key import`"));
    }
    return common::ErrnoStatus(errno, absl::StrCat("open key file ", path));
  }
  struct stat st;
  if (::fstat(fd.get(), &st) != 0) {
    return common::ErrnoStatus(errno, absl::StrCat("stat key file ", path));
  }
  if (!S_ISREG(st.st_mode)) {
    return absl::FailedPreconditionError(
        absl::StrCat("key file ", path, " is not a regular file"));
  }
  if ((st.st_mode & 077) != 0) {
    return absl::FailedPreconditionError(absl::StrFormat(
        "key file %s can be read or written by group or others (mode %04o); "
        "run `chmod 600 %s` and check who may have copied it",
        path, st.st_mode & 07777, path));
  }
  std::string text(kMaxKeyFileBytes + 1, '\0');
  size_t got = 0;
  while (got < text.size()) {
    const ssize_t n = ::read(fd.get(), text.data() + got, text.size() - got);
    if (n < 0) {
      if (errno == EINTR) continue;
      OPENSSL_cleanse(text.data(), text.size());
      return common::ErrnoStatus(errno, absl::StrCat("read key file ", path));
    }
    if (n == 0) break;
    got += static_cast<size_t>(n);
  }
  if (got > kMaxKeyFileBytes) {
    return absl::DataLossError(absl::StrCat(path,
                                            " is not a cbtd key file (larger "
                                            "than ",
                                            kMaxKeyFileBytes, " bytes)"));
  }
  text.resize(got);
  absl::StatusOr<KeyFile> result = Parse(path, text);
  OPENSSL_cleanse(text.data(), text.size());
  return result;
}

}  // namespace cbtd::transport
