// attnlab: one program, one subcommand per study. Each subcommand lives in its own file in this
// folder and registers itself with cli::Register; the dispatcher is a library function
// (cli_main.hpp), so that a user's CLI (attnlab_add_cli) is the same program with more kinds.
#include "experiments/commands/main/cli_main.hpp"

int main(int argc, char** argv) {
  return attnlab::cli::run_main(argc, argv);
}
