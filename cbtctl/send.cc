// cbtctl send: writes the stream of one version of SOURCE (a snapshot device
// or an image file) to stdout or --output, for `| cbt-receiver receive`.
#include <fcntl.h>
#include <unistd.h>

#include <boost/program_options.hpp>
#include <chrono>
#include <ctime>
#include <iostream>

#include "absl/strings/str_cat.h"
#include "cbtctl/commands.h"
#include "cbtctl/send_remote.h"
#include "common/block_reader.h"
#include "common/cli.h"
#include "common/fs.h"
#include "common/host_name.h"
#include "common/unique_fd.h"
#include "transport/extent_list.h"
#include "transport/index_file.h"
#include "transport/key_file.h"
#include "transport/names.h"
#include "transport/stream_codec.h"
#include "transport/stream_producer.h"

namespace cbtd::cbtctl {
namespace {

namespace po = boost::program_options;

std::string DefaultVersionId() {
  const std::time_t now = std::time(nullptr);
  std::tm tm;
  gmtime_r(&now, &tm);
  char buf[32];
  std::strftime(buf, sizeof(buf), "%Y%m%dT%H%M%SZ", &tm);
  return buf;
}

absl::StatusOr<cbt::ExtentSet> LoadExtents(const po::variables_map& vm,
                                           const char* flag) {
  if (!vm.count(flag)) return cbt::ExtentSet();
  const std::string path = vm[flag].as<std::string>();
  auto text = common::ReadFile(path);
  if (!text.ok()) return text.status();
  return transport::ParseExtentList(*text, path);
}

// The holes of a sparse image file, which read as zeros: a full sends them
// as zero runs without reading them. Nothing for a block device.
absl::StatusOr<cbt::ExtentSet> HolesOf(const std::string& path,
                                       uint64_t size_bytes) {
  auto data = common::FileDataRanges(path);
  if (absl::IsInvalidArgument(data.status())) return cbt::ExtentSet();
  if (!data.ok()) return data.status();
  cbt::ExtentSet holes;
  holes.Add(0, size_bytes);
  for (const common::ByteRange& r : *data) holes.Remove({r.offset, r.length});
  return holes;
}

int Fail(const absl::Status& s) {
  std::cerr << "cbtctl send: " << s.message() << "\n";
  switch (s.code()) {
    case absl::StatusCode::kInvalidArgument:
    case absl::StatusCode::kFailedPrecondition:
      return common::kExitRefused;
    default:
      return common::kExitFailure;
  }
}

}  // namespace

int RunSendCommand(std::span<char*> args) {
  po::options_description desc("Options");
  desc.add_options()("source", po::value<std::string>(),
                     "snapshot device or image file to read")(
      "full",
      "send every chunk (with --base-index: read all, send what "
      "differs from the base); a sparse image file's holes are sent as "
      "zeros without being read")(
      "changes", po::value<std::string>(),
      "changed-extent file: lines 'OFFSET LENGTH' in bytes")(
      "discards", po::value<std::string>(),
      "discarded-extent file (same format): sent as zeros")(
      "base-index", po::value<std::string>(),
      "index of the base version (cbt-receiver versions --export-index)")(
      "host", po::value<std::string>(), "source host (default: hostname)")(
      "volume", po::value<std::string>(),
      "volume id (default: SOURCE's file name)")(
      "version-id", po::value<std::string>(),
      "new version id (default: UTC time YYYYMMDDTHHMMSSZ)")(
      "chunk-size",
      po::value<uint32_t>()->default_value(transport::kDefaultChunkBytes),
      "chunk size in bytes for a stream without base")(
      "allow-resize", "the volume size may differ from the base's")(
      "threads", po::value<int>()->default_value(2), "hash/compress threads")(
      "compression", po::value<std::string>()->default_value("zstd"),
      "zstd (chunks that shrink by 1/32 or more) or none")(
      "zstd-level", po::value<int>()->default_value(3), "zstd level, 1-19")(
      "window", po::value<size_t>()->default_value(0),
      "chunks in flight (0: 4 MiB of chunks, at least 16, at most 256)")(
      "output,o", po::value<std::string>(), "write here instead of stdout")(
      "key-file", po::value<std::string>(),
      "encrypt the chunks under this tenant key (cbtctl key create); "
      "without it this one-off send is NOT encrypted. A base index must "
      "have been written with the same key")("help,h", "show help");
  AddRemoteSendOptions(desc);
  po::positional_options_description pos;
  pos.add("source", 1);
  po::variables_map vm;
  const char* usage =
      "cbtctl send SOURCE [--full] [--changes FILE] [--discards FILE] "
      "[--base-index FILE] [--key-file FILE] > stream";
  if (std::optional<std::string> error =
          common::ParseOptions(args, desc, &pos, vm)) {
    std::cerr << "cbtctl send: " << *error << "\nUsage: " << usage << "\n";
    return common::kExitUsage;
  }
  if (vm.count("help")) {
    std::cout << "Usage: " << usage << "\n\n" << desc;
    return common::kExitOk;
  }
  if (!vm.count("source")) {
    std::cerr << "cbtctl send: SOURCE is required\nUsage: " << usage << "\n";
    return common::kExitUsage;
  }
  if (vm.count("base-index") && !vm.count("full") && !vm.count("changes") &&
      !vm.count("discards")) {
    std::cerr << "cbtctl send: with --base-index, give --changes (and/or "
                 "--discards) or --full (read everything)\n";
    return common::kExitUsage;
  }
  const std::string source_path = vm["source"].as<std::string>();
  auto source = common::OpenBlockReader(source_path);
  if (!source.ok()) return Fail(source.status());
  auto changed = LoadExtents(vm, "changes");
  if (!changed.ok()) return Fail(changed.status());
  auto zeroed = LoadExtents(vm, "discards");
  if (!zeroed.ok()) return Fail(zeroed.status());
  // The base index file, streamed (its metadata here; its entries as the
  // stream goes, checked at their end).
  std::unique_ptr<transport::IndexEntrySource> base_index;
  const transport::IndexMetadata* base = nullptr;
  if (vm.count("base-index")) {
    auto opened = transport::OpenIndexFile(vm["base-index"].as<std::string>());
    if (!opened.ok()) return Fail(opened.status());
    base_index = *std::move(opened);
    base = &base_index->metadata();
  }
  if (vm.count("full") || !base) {
    auto holes = HolesOf(source_path, (*source)->SizeBytes());
    if (!holes.ok()) return Fail(holes.status());
    zeroed->Add(*holes);
  }
  transport::ProducerOptions opts;
  opts.host = vm.count("host") ? vm["host"].as<std::string>()
                               : (base ? base->host : common::ShortHostName());
  opts.volume = vm.count("volume")
                    ? vm["volume"].as<std::string>()
                    : (base ? base->volume
                            : source_path.substr(source_path.rfind('/') + 1));
  opts.version_id = vm.count("version-id") ? vm["version-id"].as<std::string>()
                                           : DefaultVersionId();
  for (auto [flag, name] : {std::pair{"--host", &opts.host},
                            {"--volume", &opts.volume},
                            {"--version-id", &opts.version_id}}) {
    if (auto s = transport::ValidateName(flag, *name); !s.ok()) {
      std::cerr << "cbtctl send: " << s.message() << "\n";
      return common::kExitUsage;
    }
  }
  opts.chunk_size_bytes = vm["chunk-size"].as<uint32_t>();
  opts.full = vm.count("full") > 0;
  opts.allow_resize = vm.count("allow-resize") > 0;
  opts.threads = vm["threads"].as<int>();
  opts.window_chunks = vm["window"].as<size_t>();
  const std::string compression = vm["compression"].as<std::string>();
  opts.zstd_level = vm["zstd-level"].as<int>();
  if ((compression != "zstd" && compression != "none") || opts.zstd_level < 1 ||
      opts.zstd_level > 19) {
    std::cerr << "cbtctl send: --compression is zstd or none, --zstd-level "
                 "1 to 19\n";
    return common::kExitUsage;
  }
  if (compression == "none") opts.zstd_level = 0;
  if (vm.count("key-file")) {
    auto key = transport::LoadKeyFile(vm["key-file"].as<std::string>());
    if (!key.ok()) return Fail(key.status());
    opts.key = key->key;
  }

  if (vm.count("to")) {
    return RunRemoteSend(vm, **source, *changed, *zeroed, base, opts);
  }
  common::UniqueFd output;  // empty: stdout
  std::string out_name = "stdout";
  if (vm.count("output")) {
    out_name = vm["output"].as<std::string>();
    output.reset(::open(out_name.c_str(),
                        O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0640));
    if (!output) return Fail(common::ErrnoStatus(errno, "open " + out_name));
  } else if (::isatty(1)) {
    std::cerr << "cbtctl send: stdout is a terminal; redirect the stream to "
                 "a file or pipe it into cbt-receiver receive\n";
    return common::kExitUsage;
  }
  auto sink = transport::FdRecordSink(output ? output.get() : 1, out_name);
  auto result = transport::ProduceStream(**source, *changed, *zeroed,
                                         base_index.get(), opts, *sink);
  if (!result.ok()) return Fail(result.status());
  // The stream's last bytes may fail only here (NFS, a full FUSE target).
  if (absl::Status st = output.Close(out_name); !st.ok()) return Fail(st);
  const auto& t = result->trailer;
  std::cerr << "sent " << opts.host << "/" << opts.volume << "@"
            << opts.version_id << (base ? " based on " + base->version_id : "")
            << ": " << result->chunks_read << " chunks read, "
            << t.chunk_records() << " sent, " << t.chunk_ref_records()
            << " by reference, " << t.zero_chunks() << " zero; "
            << t.payload_bytes() << " payload bytes; root "
            << result->root_hash.ToHex() << "; "
            << (opts.key ? "encrypted with key " + opts.key->fingerprint()
                         : std::string("not encrypted"))
            << "\n";
  return common::kExitOk;
}

}  // namespace cbtd::cbtctl
