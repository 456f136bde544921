// attnlab: one program, one subcommand per study. Each subcommand lives in its own file in this
// folder and registers itself with cli::Register.
#include <algorithm>
#include <iostream>
#include <string>

#include "experiments/support/cli.hpp"

int main(int argc, char** argv) {
  using attnlab::cli::registry;
  auto& commands = registry();
  std::sort(commands.begin(), commands.end(), [](const auto& a, const auto& b) {
    return a.name < b.name;
  });
  auto print_usage = [&](std::ostream& os) {
    os << "usage: attnlab <command> [options]   (attnlab <command> --help for its options)\n\n"
       << "commands:\n";
    for (const auto& c : commands)
      os << "  " << c.name << std::string(12 - std::min<size_t>(11, c.name.size()), ' ')
         << c.summary << "\n";
  };
  if (argc < 2) {
    print_usage(std::cerr);
    return 2;
  }
  std::string name = argv[1];
  if (name == "--list")  // the registry's kinds: attnlab kinds
    name = "kinds";
  if (name == "--help" || name == "-h" || name == "help") {
    print_usage(std::cout);
    return 0;
  }
  for (const auto& c : commands) {
    if (c.name == name) {
      return attnlab::cli::run_guarded(name, [&] { return c.run(argc - 1, argv + 1); });
    }
  }
  std::cerr << "attnlab: error: unknown command '" << name << "' (attnlab --help lists them)\n";
  return 2;
}
