// cbt-receiver receive: applies one stream (stdin or --input) to the vault.
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <iostream>

#include "absl/strings/str_cat.h"
#include "common/cli.h"
#include "common/fs.h"
#include "common/unique_fd.h"
#include "receiver/cli/util.h"
#include "receiver/receive_session.h"
#include "transport/file_byte_source.h"

namespace cbtd::receiver::cli {
namespace {

// An error before the stream is read (the vault or the input cannot be
// opened, e.g. on a full disk) says what became of the version like every
// other receive error (ReceiveStream).
absl::Status NoVersion(const absl::Status& s) {
  return absl::Status(s.code(),
                      absl::StrCat(s.message(), " [no version was created]"));
}

// The stream's bytes: a stream file or block device with direct,
// overlapped reads (transport/file_byte_source.h); stdin, a pipe or a
// socket as they come, through `fd`, which must outlive the source.
// nullptr when stdin is a terminal.
absl::StatusOr<std::unique_ptr<transport::ByteSource>> OpenInput(
    const std::string& input, common::UniqueFd& fd) {
  if (input == "-") {
    if (::isatty(0)) return nullptr;
    return transport::FdByteSource(0, "stdin");
  }
  struct stat st {};
  if (::stat(input.c_str(), &st) != 0) {
    return common::ErrnoStatus(errno, "open " + input);
  }
  if (S_ISREG(st.st_mode) || S_ISBLK(st.st_mode)) {
    return transport::FileByteSource(input);
  }
  fd.reset(::open(input.c_str(), O_RDONLY | O_CLOEXEC));
  if (!fd) return common::ErrnoStatus(errno, "open " + input);
  return transport::FdByteSource(fd.get(), input);
}

}  // namespace

int RunReceive(std::span<char*> args) {
  po::options_description desc("Options");
  desc.add_options()("input,i", po::value<std::string>()->default_value("-"),
                     "stream file, or - for stdin")(
      "create",
      "create the vault (a directory, or one in the RADOS namespace) if there "
      "is none");
  po::variables_map vm;
  if (auto rc = ParseCommand(
          args, "receive --vault DIR [--input FILE] < stream", desc, vm)) {
    return *rc;
  }
  auto opened = OpenVault(vm, vm.count("create") > 0, /*writable=*/true);
  if (!opened.ok()) return Fail(vm, "receive", NoVersion(opened.status()));
  const std::string input = vm["input"].as<std::string>();
  common::UniqueFd pipe;  // a named pipe's descriptor, while it is read
  auto source = OpenInput(input, pipe);
  if (!source.ok()) return Fail(vm, "receive", NoVersion(source.status()));
  if (*source == nullptr) {
    std::cerr << "cbt-receiver receive: stdin is a terminal; pipe a stream "
                 "in (cbtctl send ... | cbt-receiver receive ...)\n";
    return common::kExitUsage;
  }
  transport::StreamReader reader(*std::move(source));
  auto result = ReceiveStream(*opened->vault, reader);
  // The error already says what became of the version (ReceiveStream).
  if (!result.ok()) return Fail(vm, "receive", result.status());
  const transport::IndexMetadata& idx = result->index;
  if (vm.count("json")) {
    PrintJson({{"ok", true},
               {"host", idx.host},
               {"volume", idx.volume},
               {"version", idx.version_id},
               {"base_version", idx.base_version_id},
               {"root_hash", idx.root_hash.ToHex()},
               {"chunk_records", idx.stats.chunk_records},
               {"chunk_ref_records", idx.stats.chunk_ref_records},
               {"zero_chunks", idx.stats.zero_chunks},
               {"payload_bytes", idx.stats.payload_bytes},
               {"new_objects", idx.stats.new_objects},
               {"stored_bytes", idx.stats.stored_bytes}});
  } else {
    std::cout << "committed " << idx.host << "/" << idx.volume << "@"
              << idx.version_id << " (root " << idx.root_hash.ToHex()
              << "): " << idx.stats.chunk_records << " chunks, "
              << idx.stats.chunk_ref_records << " refs, "
              << idx.stats.zero_chunks << " zero; " << idx.stats.new_objects
              << " new objects, " << idx.stats.stored_bytes
              << " bytes stored\n";
  }
  return common::kExitOk;
}

}  // namespace cbtd::receiver::cli
