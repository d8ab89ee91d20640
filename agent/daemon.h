// cbtd's service loop, kept out of main() so main stays a page: open the
// state, reconcile, serve the control socket, tell systemd, then tick the
// scheduler, the watchdog and the metrics until SIGTERM.
//
//   starting ──READY=1──► serving ──SIGHUP──► reload config (bad config:
//                           │  ▲               keep the old one, log why)
//                           │  └──────────────┘
//                           └──SIGTERM/SIGINT──► STOPPING=1: refuse new runs,
//                                 cancel running ones (they keep their base),
//                                 wait, close the socket, exit 0
#ifndef CBTD_AGENT_DAEMON_H_
#define CBTD_AGENT_DAEMON_H_

#include <string>

#include "agent/backup_ports.h"
#include "agent/config.h"

namespace cbtd::agent {

// Runs until SIGTERM/SIGINT; returns the process exit code. SIGTERM, SIGINT
// and SIGHUP must be blocked in every thread before the call (main does it
// first thing), so only this loop receives them.
int RunDaemon(Config config, BackupPorts ports);

// --check-config: parse + check the host; prints every problem with its
// line. Returns kExitOk or kExitUsage.
int CheckConfigCommand(const std::string& path);

}  // namespace cbtd::agent

#endif  // CBTD_AGENT_DAEMON_H_
