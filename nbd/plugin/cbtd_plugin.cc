// nbdkit-cbtd-plugin.so: serves one stored version of a volume, read-only,
// through nbdkit, reading its chunks on demand from the receiver named in
// cbtd.conf (mutual TLS, this host's identity) and opening them with the
// host's tenant key: the receiver never sees plaintext.
//
//   nbdkit --foreground --readonly nbdkit-cbtd-plugin.so
//       config=/etc/cbtd/cbtd.conf volume=VOL version=ID
//       [host=HOST] [cache=MiB] [readahead=CHUNKS] [timeout=S] [lifetime=S]
//
// Writes are never this plugin's: a writable export stacks nbdkit's cow
// filter on it, which keeps them in a local overlay (nbd/exports.h).
// A receiver that cannot be reached within `timeout` seconds fails the
// read with EIO; the next read tries again, so the export recovers when
// the receiver returns. After `lifetime` seconds nbdkit shuts down.
// While it serves, the export holds its version at the receiver (a lease
// of kHoldSeconds, renewed every quarter of it, released at the end), so
// retention does not prune it from under a reader; a version of another
// host (host=, admin) cannot be held and is served without one.
// Startup errors are logged as "cbtd export failed: CODE: message", which
// StartExport hands to the operator with their status code.
//
// nbdkit plugins are a set of C callbacks over process-wide state: the
// globals below are that state, set up once in after_fork (gRPC's threads
// must be started after nbdkit forks, when it does).
#define NBDKIT_API_VERSION 2
#include <nbdkit-plugin.h>

#include <cerrno>
#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <fstream>
#include <memory>
#include <mutex>
#include <string>
#include <thread>

#include "absl/status/status.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "agent/config.h"
#include "agent/key_source.h"
#include "agent/remote_sender.h"
#include "nbd/version_image.h"
#include "restore/remote_restore.h"

#define THREAD_MODEL NBDKIT_THREAD_MODEL_PARALLEL

namespace {

using cbtd::nbd::VersionImage;

struct Settings {
  std::string config = "/etc/cbtd/cbtd.conf";
  std::string volume;
  std::string version;
  std::string host;
  uint64_t cache_mib = 64;
  uint32_t readahead_chunks = 32;
  int64_t timeout_seconds = 10;
  int64_t lifetime_seconds = 0;
  // Written once with the outcome of the start, "serving" or the error
  // (nbd/exports.h waits for it: once nbdkit is in the background its
  // messages go to syslog).
  std::string status;
};

constexpr uint32_t kHoldSeconds = 600;

Settings settings;
std::unique_ptr<cbtd::transport::RemoteClient> client;
std::unique_ptr<cbtd::restore::VersionSource> source;
std::unique_ptr<VersionImage> image;

// The hold's renewal: a thread that wakes every kHoldSeconds / 4 until
// `stopping`.
struct Hold {
  bool held = false;
  std::mutex mu;
  std::condition_variable wake;
  bool stopping = false;
  std::thread renewer;
} hold;

// Writes the status file (temp + rename: the reader sees all or nothing).
void WriteStatus(const std::string& line) {
  if (settings.status.empty()) return;
  const std::string tmp = settings.status + ".tmp";
  {
    std::ofstream out(tmp, std::ios::trunc);
    out << line << "\n";
  }
  std::rename(tmp.c_str(), settings.status.c_str());
}

int Fail(const absl::Status& s) {
  const std::string line =
      absl::StrCat("cbtd export failed: ", absl::StatusCodeToString(s.code()),
                   ": ", s.message());
  nbdkit_error("%s", line.c_str());
  WriteStatus(line);
  return -1;
}

template <typename T>
int ParseNumber(const char* key, const char* value, T& out) {
  if (!absl::SimpleAtoi(value, &out)) {
    nbdkit_error("cbtd: %s=%s is not a number", key, value);
    return -1;
  }
  return 0;
}

int Config(const char* key, const char* value) {
  const std::string k = key;
  if (k == "config") {
    settings.config = value;
  } else if (k == "volume") {
    settings.volume = value;
  } else if (k == "version") {
    settings.version = value;
  } else if (k == "host") {
    settings.host = value;
  } else if (k == "cache") {
    return ParseNumber(key, value, settings.cache_mib);
  } else if (k == "readahead") {
    return ParseNumber(key, value, settings.readahead_chunks);
  } else if (k == "timeout") {
    return ParseNumber(key, value, settings.timeout_seconds);
  } else if (k == "status") {
    settings.status = value;
  } else if (k == "lifetime") {
    return ParseNumber(key, value, settings.lifetime_seconds);
  } else {
    nbdkit_error("cbtd: unknown parameter '%s'", key);
    return -1;
  }
  return 0;
}

int ConfigComplete() {
  if (settings.volume.empty() || settings.version.empty()) {
    nbdkit_error("cbtd: volume= and version= are required");
    return -1;
  }
  return 0;
}

// Connects to the receiver, reads and checks the version's index and the
// key: every error an operator can fix shows before nbdkit serves.
absl::Status OpenImage() {
  auto config = cbtd::agent::LoadConfig(settings.config);
  if (!config.ok()) return config.status();
  auto endpoint = cbtd::agent::ResolveReceiver(config->receiver);
  if (!endpoint.ok()) return endpoint.status();
  endpoint->options.retry_budget =
      std::chrono::seconds(settings.timeout_seconds);
  endpoint->options.wait_for_ready = true;
  cbtd::agent::KeySource keys(config->encryption, [](const std::string&) {});
  auto key = keys.ForRestore();
  if (!key.ok()) return key.status();
  auto c = cbtd::transport::RemoteClient::Create(endpoint->options);
  if (!c.ok()) return c.status();
  client = *std::move(c);
  source = cbtd::restore::NewRemoteVersionSource(
      *client, settings.host.empty() ? endpoint->identity : settings.host,
      settings.volume);
  cbtd::nbd::ImageOptions options;
  options.key = *std::move(key);
  options.cache_bytes = settings.cache_mib << 20;
  options.readahead_chunks = settings.readahead_chunks;
  auto opened = VersionImage::Open(*source, settings.version, options);
  if (!opened.ok()) {
    if (absl::IsFailedPrecondition(opened.status()) && !options.key) {
      return absl::FailedPreconditionError(absl::StrCat(
          opened.status().message(), " (the key file ",
          config->encryption.key_file,
          " does not exist: 'cbtctl key import' the key's recovery text)"));
    }
    return opened.status();
  }
  image = *std::move(opened);
  return absl::OkStatus();
}

void RenewHold() {
  std::unique_lock l(hold.mu);
  while (!hold.wake.wait_for(l, std::chrono::seconds(kHoldSeconds / 4),
                             [] { return hold.stopping; })) {
    l.unlock();
    auto until =
        client->HoldVersion(settings.volume, settings.version, kHoldSeconds);
    if (!until.ok()) {
      nbdkit_error(
          "cbtd: renewing the hold on %s@%s at the receiver: %s "
          "(tried again in %u s)",
          settings.volume.c_str(), settings.version.c_str(),
          std::string(until.status().message()).c_str(), kHoldSeconds / 4);
    }
    l.lock();
  }
}

// Holds the version against pruning while the export serves. Only the
// host's own versions can be held.
absl::Status StartHold() {
  if (!settings.host.empty()) return absl::OkStatus();
  auto until =
      client->HoldVersion(settings.volume, settings.version, kHoldSeconds);
  if (absl::IsUnimplemented(until.status())) {
    // A receiver older than holds: served, but not protected from pruning.
    nbdkit_error(
        "cbtd: the receiver cannot hold %s@%s (it predates "
        "HoldVersion): a prune may remove it while exported",
        settings.volume.c_str(), settings.version.c_str());
    return absl::OkStatus();
  }
  if (!until.ok()) {
    return absl::Status(
        until.status().code(),
        absl::StrCat(
            "holding ", settings.volume, "@", settings.version,
            " against pruning at the receiver: ", until.status().message()));
  }
  hold.held = true;
  hold.renewer = std::thread(RenewHold);
  return absl::OkStatus();
}

int AfterFork() {
  if (absl::Status s = OpenImage(); !s.ok()) return Fail(s);
  if (absl::Status s = StartHold(); !s.ok()) return Fail(s);
  WriteStatus("serving");
  if (settings.lifetime_seconds > 0) {
    std::thread([] {
      std::this_thread::sleep_for(
          std::chrono::seconds(settings.lifetime_seconds));
      nbdkit_debug("cbtd: the export's lifetime is over");
      nbdkit_shutdown();
    }).detach();
  }
  return 0;
}

void Cleanup() {
  if (hold.held) {
    {
      std::lock_guard l(hold.mu);
      hold.stopping = true;
    }
    hold.wake.notify_all();
    hold.renewer.join();
    (void)client->HoldVersion(settings.volume, settings.version, 0);
  }
  image.reset();
  source.reset();
  client.reset();
}

void* Open(int /*readonly*/) { return image.get(); }

int64_t GetSize(void* /*handle*/) {
  return static_cast<int64_t>(image->size_bytes());
}

int CanMultiConn(void* /*handle*/) { return 1; }  // read-only, consistent
int CanExtents(void* /*handle*/) { return 1; }
int CanWrite(void* /*handle*/) { return 0; }

int Pread(void* /*handle*/, void* buf, uint32_t count, uint64_t offset,
          uint32_t /*flags*/) {
  absl::Status s =
      image->Read(offset, {static_cast<uint8_t*>(buf), size_t{count}});
  if (s.ok()) return 0;
  nbdkit_error("cbtd: %s", std::string(s.message()).c_str());
  nbdkit_set_error(EIO);
  return -1;
}

int Extents(void* /*handle*/, uint32_t count, uint64_t offset,
            uint32_t /*flags*/, struct nbdkit_extents* extents) {
  for (const cbtd::nbd::ImageExtent& e : image->Extents(offset, count)) {
    const uint32_t type =
        e.zero ? (NBDKIT_EXTENT_HOLE | NBDKIT_EXTENT_ZERO) : 0;
    if (nbdkit_add_extent(extents, e.offset_bytes, e.length_bytes, type) ==
        -1) {
      return -1;
    }
  }
  return 0;
}

struct nbdkit_plugin MakePlugin() {
  struct nbdkit_plugin p = {};
  p.name = "cbtd";
  p.longname = "cbtd: a stored version of a volume, from the receiver";
  p.version = CBTD_VERSION;
  p.config = Config;
  p.config_complete = ConfigComplete;
  p.config_help =
      "config=PATH    cbtd.conf (receiver, TLS identity, key file)\n"
      "volume=NAME    the volume (required)\n"
      "version=ID     the version (required)\n"
      "host=HOST      another host's version (needs an admin identity)\n"
      "cache=MiB      chunk cache (default 64)\n"
      "readahead=N    chunks fetched ahead of a sequential reader (32)\n"
      "timeout=S      give a read EIO after S s without the receiver (10)\n"
      "lifetime=S     shut down after S seconds (default: never)\n"
      "status=PATH    write \"serving\" or the start's error to PATH";
  p.after_fork = AfterFork;
  p.cleanup = Cleanup;
  p.open = Open;
  p.get_size = GetSize;
  p.can_write = CanWrite;
  p.can_multi_conn = CanMultiConn;
  p.can_extents = CanExtents;
  p.extents = Extents;
  p.pread = Pread;
  return p;
}

struct nbdkit_plugin plugin = MakePlugin();

}  // namespace

NBDKIT_REGISTER_PLUGIN(plugin)
