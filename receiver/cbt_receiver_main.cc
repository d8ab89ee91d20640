#include "receiver/receiver_cli.h"

int main(int argc, char** argv) {
  return cbtd::receiver::ReceiverMain(argc, argv);
}
