// The whole `attnlab` command line as a function, in the library attnlab::commands: every
// registered subcommand (attnlab's own and those of the sources linked beside it) behind one
// dispatcher. The `attnlab` executable's main() is one call to it, and so is the main() of an
// executable made by attnlab_add_cli(my_attnlab my_kinds.cpp) in a user's project
// (docs/extending.md).
#pragma once

namespace attnlab::cli {

// `<program> <command> [options]`: runs the command, or prints the commands for --help / no
// arguments. The program name in usage lines and errors is argv[0]'s file name. Returns the exit
// status: 0, 1 (the command failed), 2 (bad usage).
int run_main(int argc, char** argv);

}  // namespace attnlab::cli
