// cbt-receiver's command table. Each subcommand lives in its own
// receiver/cli_<name>.cc and is listed in receiver_cli.cc.
#ifndef CBTD_RECEIVER_CLI_COMMANDS_H_
#define CBTD_RECEIVER_CLI_COMMANDS_H_

namespace cbtd::receiver::cli {

// Entry point of the cbt-receiver program.
int ReceiverMain(int argc, char** argv);

}  // namespace cbtd::receiver::cli

#endif  // CBTD_RECEIVER_CLI_COMMANDS_H_
