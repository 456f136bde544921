#include "experiments/commands/main/cli_main.hpp"

#include <algorithm>
#include <iostream>
#include <string>

#include "experiments/support/cli.hpp"

namespace attnlab::cli {
namespace {

// "/path/to/my_attnlab" -> "my_attnlab"; "attnlab" when argv[0] is missing.
std::string executable_name(int argc, char** argv) {
  if (argc < 1 || argv[0] == nullptr || argv[0][0] == '\0')
    return "attnlab";
  const std::string path = argv[0];
  return path.substr(path.find_last_of('/') + 1);
}

void print_usage(std::ostream& os, const std::vector<Subcommand>& commands) {
  os << "usage: " << program_name() << " <command> [options]   (" << program_name()
     << " <command> --help for its options)\n\ncommands:\n";
  for (const auto& c : commands)
    os << "  " << c.name << std::string(12 - std::min<size_t>(11, c.name.size()), ' ') << c.summary
       << "\n";
}

}  // namespace

int run_main(int argc, char** argv) {
  set_program_name(executable_name(argc, argv));
  auto& commands = registry();
  std::sort(commands.begin(), commands.end(), [](const auto& a, const auto& b) {
    return a.name < b.name;
  });
  if (argc < 2) {
    print_usage(std::cerr, commands);
    return 2;
  }
  std::string name = argv[1];
  if (name == "--list")  // the registry's kinds: `<program> kinds`
    name = "kinds";
  if (name == "--help" || name == "-h" || name == "help") {
    print_usage(std::cout, commands);
    return 0;
  }
  if (const Subcommand* c = find_subcommand(name))
    return run_guarded(name, [&] { return c->run(argc - 1, argv + 1); });
  std::cerr << program_name() << ": error: unknown command '" << name << "' (" << program_name()
            << " --help lists them)\n";
  return 2;
}

}  // namespace attnlab::cli
