#include "receiver/cli/commands.h"

int main(int argc, char** argv) {
  return cbtd::receiver::cli::ReceiverMain(argc, argv);
}
