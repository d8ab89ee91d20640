// MetricsHttpServer: the receiver's metrics over HTTP for a Prometheus
// scrape (`cbt-receiver serve --metrics-listen ADDR`). Deliberately tiny:
// one thread, one connection at a time, GET /metrics only (anything else is
// 404 or 405), a request of at most 8 KiB read within 2 s, the connection
// closed after each reply. It serves nothing but the exposition text, so
// there is nothing to authenticate; bind it to loopback (the default host)
// unless a firewall decides who may scrape.
//
// Thread-safety: `render` is called on the server's thread.
#ifndef CBTD_RECEIVER_CLI_METRICS_HTTP_H_
#define CBTD_RECEIVER_CLI_METRICS_HTTP_H_

#include <functional>
#include <memory>
#include <string>
#include <thread>

#include "absl/status/statusor.h"
#include "common/unique_fd.h"

namespace cbtd::receiver::cli {

class MetricsHttpServer {
 public:
  // Binds `address`: "HOST:PORT", "[V6]:PORT", or a bare "PORT" (then
  // 127.0.0.1); port 0 picks one (port()). Errors: INVALID_ARGUMENT (a
  // malformed address), UNAVAILABLE (cannot bind: in use, not local).
  static absl::StatusOr<std::unique_ptr<MetricsHttpServer>> Start(
      const std::string& address, std::function<std::string()> render);
  ~MetricsHttpServer();  // stops the thread
  MetricsHttpServer(const MetricsHttpServer&) = delete;
  MetricsHttpServer& operator=(const MetricsHttpServer&) = delete;

  int port() const { return port_; }

 private:
  MetricsHttpServer(common::UniqueFd listen_fd, common::UniqueFd wake_read,
                    common::UniqueFd wake_write, int port,
                    std::function<std::string()> render);
  void Loop();
  void Serve(int fd);

  common::UniqueFd listen_fd_;
  common::UniqueFd wake_read_;  // readable when the server must stop
  common::UniqueFd wake_write_;
  int port_;
  std::function<std::string()> render_;
  std::thread thread_;
};

}  // namespace cbtd::receiver::cli

#endif  // CBTD_RECEIVER_CLI_METRICS_HTTP_H_
