// The conventions every `attnlab` subcommand shares: registration, the common flags
// (--help, --config FILE, --seed, --threads, --dtype, --out DIR; a command refuses those it has
// no use for, Parser::unused_common) on Boost.Program_options, and one-line errors with a non-zero
// exit for bad flags or values.
#pragma once

#include <boost/program_options.hpp>
#include <cstdint>
#include <functional>
#include <optional>
#include <stdexcept>
#include <string>
#include <vector>

#include "core/dtype.hpp"

namespace attnlab::cli {

namespace po = boost::program_options;

// A bad flag or value: main() prints "attnlab <command>: error: <what>" and exits with 2.
class UsageError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

// The common options, filled by Parser::parse.
struct Common {
  uint64_t seed = 0;
  int threads = 0;  // 0: every core this process may run on (available_cores())
  DType dtype = kFloat32;
  std::string out;  // output directory; empty: no files
  std::string config;
};

// Whose arguments a Parser reads: those of an `attnlab <command>` subcommand, or those of a
// standalone executable (an installed user's experiment), whose --help names the executable.
enum class Program { Subcommand, Standalone };

// Parses a subcommand's arguments: its own options plus the common ones.
class Parser {
 public:
  // `command`: the subcommand's name, or a standalone program's executable name.
  Parser(std::string command, std::string usage, Program program = Program::Subcommand);
  // The first line of --help: "usage: attnlab train [options]", or "usage: my_study [options]"
  // for a standalone program.
  std::string usage_line() const;
  // The subcommand's own options: parser.options().add_options()("steps", po::value<int>(), "...")
  po::options_description& options() { return own_; }
  // Positional arguments (name, max count; -1 for unlimited).
  void positional(const std::string& name, int max_count);
  // Returns false when --help was given (help already printed). Throws UsageError on bad input.
  // Precedence: command line, then the --config file, then defaults. Creates the --out directory.
  bool parse(int argc, char** argv);
  const po::variables_map& vm() const { return vm_; }
  const Common& common() const { return common_; }
  template <class T>
  T get(const std::string& name) const {
    return vm_[name].as<T>();
  }
  bool has(const std::string& name) const { return vm_.count(name) > 0; }
  // Set on the command line or in the --config file (not just its default).
  bool given(const std::string& name) const {
    return vm_.count(name) > 0 && !vm_[name].defaulted();
  }
  // Accepts the hidden --validate-only flag (not in --help): the command checks its flags and
  // values, then stops with exit 0 before doing any work when validate_only() is true. `attnlab
  // sweep` checks every configuration of a grid this way before running or emitting any. Call
  // before parse(); the command must be registered with Validates::Yes.
  void enable_validate_only() { validate_only_enabled_ = true; }
  bool validate_only() const { return vm_.count("validate-only") > 0; }
  // A common flag (seed, threads, dtype, out) the command has no use for (`kinds --out`: it only
  // lists): left out of --help, and a one-line UsageError "--out: not used by kinds (<why>)" when
  // typed, rather than silently ignored; a --config file's value (a file several commands share)
  // is ignored. Call before parse().
  void unused_common(const std::string& name, const std::string& why);

 private:
  std::string command_, usage_;
  Program program_;
  po::options_description own_{"Options"};
  po::positional_options_description positional_;
  po::variables_map vm_;
  Common common_;
  bool validate_only_enabled_ = false;
  std::vector<std::pair<std::string, std::string>> unused_common_;  // (flag, why)

  bool is_unused_common(const std::string& name) const;
  void add_common_options(po::options_description& to, std::string& dtype, int64_t& seed);
  void refuse_unused_common_given() const;
  void check_common(int64_t seed, const std::string& dtype);
};

// The integer that is the whole of `text` ("12", "-3"), or nothing ("", "12x", "abc", overflow).
std::optional<int64_t> parse_integer(const std::string& text);
// Splits "a,b,c" into {"a", "b", "c"} (for list-valued flags); empty items are a UsageError.
std::vector<std::string> split_list(const std::string& text, const std::string& flag);
std::vector<int64_t> parse_int_list(const std::string& text, const std::string& flag);

// Registration: each subcommand file defines a handler and registers it at static-init time.
using Handler = std::function<int(int argc, char** argv)>;
// Whether the command accepts --validate-only (Parser::enable_validate_only).
enum class Validates { No, Yes };
struct Subcommand {
  std::string name;
  std::string summary;
  Handler run;
  Validates validates = Validates::No;
};
std::vector<Subcommand>& registry();
// The registered command of that name, or nullptr.
const Subcommand* find_subcommand(const std::string& name);
struct Register {
  Register(std::string name, std::string summary, Handler run, Validates validates = Validates::No);
};

// The name subcommands' usage lines and errors start with ("attnlab train: error: ..."): "attnlab",
// or the executable's own name in a CLI built with attnlab_add_cli (run_main sets it from
// argv[0]), so that `my_attnlab train --help` says "usage: my_attnlab train ...".
const std::string& program_name();
void set_program_name(std::string name);

// Runs `handler`, turning UsageError / attnlab::Error into a one-line message and an exit code
// (2 for usage, 1 for other failures). Used by main() and by standalone experiment executables,
// whose messages start "my_study: error: " rather than "attnlab my_study: error: ".
int run_guarded(const std::string& command,
                const std::function<int()>& handler,
                Program program = Program::Subcommand);

}  // namespace attnlab::cli
