#include "experiments/support/cli.hpp"

#include <algorithm>
#include <fstream>
#include <iostream>
#include <map>
#include <new>
#include <sstream>

#include "core/error.hpp"
#include "core/parallel.hpp"
#include "experiments/support/table.hpp"

namespace attnlab::cli {
namespace {

// Boost 1.74 fills an error's "%value%"-style placeholders by replacing each until none is left,
// so a value that contains a placeholder ("--epochs %value%", or such a line in a --config file)
// makes what() loop forever. Found by fuzz_config. The placeholders are filled here from a copy
// whose '%' signs are masked, then unmasked: the same message, in one pass.
class SafeMessage : public po::error_with_option_name {
 public:
  explicit SafeMessage(const po::error_with_option_name& e) : po::error_with_option_name(e) {}
  std::string text() {
    for (auto& [name, value] : m_substitutions)
      std::replace(value.begin(), value.end(), '%', '\x01');
    std::string message = what();
    std::replace(message.begin(), message.end(), '\x01', '%');
    return message;
  }
};

}  // namespace

Parser::Parser(std::string command, std::string usage, Program program)
    : command_(std::move(command)), usage_(std::move(usage)), program_(program) {}

std::string Parser::usage_line() const {
  const std::string program =
      program_ == Program::Subcommand ? program_name() + " " + command_ : command_;
  return "usage: " + program + " " + usage_;
}

void Parser::positional(const std::string& name, int max_count) {
  positional_.add(name.c_str(), max_count);
}

namespace {

// Two options of one name make every use of the flag "ambiguous" (program_options' words) and
// show twice in --help. It happens when an attention or model kind declares an option named like a
// flag of the command or a common one (--dim, --seed, ...), or a program declares a common flag
// again: a program-construction error, reported once with both descriptions (a kind's ends with
// "[...; <its kinds>]").
void refuse_duplicate_flags(const po::options_description& options, const std::string& command) {
  std::map<std::string, std::string> seen;  // long name -> description
  for (const auto& option : options.options()) {
    const std::string name = option->long_name();
    const auto [it, inserted] = seen.emplace(name, option->description());
    if (!inserted) {
      throw ValueError("--" + name + " is declared twice for '" + command + "': '" + it->second +
                       "' and '" + option->description() +
                       "' (an option, a kind's included, must not take the name of another flag)");
    }
  }
}

constexpr const char* kRefusableCommon[] = {"seed", "threads", "dtype", "out"};

}  // namespace

void Parser::unused_common(const std::string& name, const std::string& why) {
  ATTNLAB_CHECK(std::find(std::begin(kRefusableCommon), std::end(kRefusableCommon), name) !=
                    std::end(kRefusableCommon),
                ValueError,
                "Parser::unused_common: --",
                name,
                " is not a common flag a command may refuse (seed, threads, dtype, out)");
  unused_common_.emplace_back(name, why);
}

bool Parser::is_unused_common(const std::string& name) const {
  for (const auto& [flag, why] : unused_common_)
    if (flag == name)
      return true;
  return false;
}

void Parser::add_common_options(po::options_description& to, std::string& dtype, int64_t& seed) {
  to.add_options()("help,h", "print this help and exit")(
      "config",
      po::value<std::string>(&common_.config),
      "read options from FILE (program_options syntax: `name = value` lines; the command line "
      "wins)")("seed", po::value<int64_t>(&seed)->default_value(0), "random seed")(
      "threads",
      po::value<int>(&common_.threads)->default_value(0),
      "kernel threads (0: every core this process may run on)")(
      "dtype", po::value<std::string>(&dtype)->default_value("float32"), "float32 or float64")(
      "out",
      po::value<std::string>(&common_.out),
      "directory for CSV / JSON-lines results and plots");
}

// A common flag the command has no use for, typed on the command line: refused. From a --config
// file (one shared by several commands) it is ignored instead.
void Parser::refuse_unused_common_given() const {
  for (const auto& [flag, why] : unused_common_) {
    if (given(flag))
      throw UsageError("--" + flag + ": not used by " + command_ + " (" + why + ")");
  }
}

void Parser::check_common(int64_t seed, const std::string& dtype) {
  if (is_unused_common("out"))
    common_.out.clear();  // a --config file's value: no directory to make
  if (seed < 0)
    throw UsageError("--seed: must be >= 0, got " + std::to_string(seed));
  common_.seed = static_cast<uint64_t>(seed);
  if (dtype == "float32" || dtype == "f32") {
    common_.dtype = kFloat32;
  } else if (dtype == "float64" || dtype == "f64") {
    common_.dtype = kFloat64;
  } else {
    throw UsageError("--dtype: expected float32 or float64, got '" + dtype + "'");
  }
  if (common_.threads < 0) {
    throw UsageError("--threads: must be >= 0, got " + std::to_string(common_.threads));
  }
  if (common_.threads > 0)
    set_num_threads(common_.threads);
  const int cores = available_cores();
  if (common_.threads > cores) {  // allowed (the results are the same), but the workers spin
    std::cerr << "note: --threads " << common_.threads << " is more than the " << cores
              << (cores == 1 ? " core" : " cores")
              << " this process may run on: the kernels' workers will share cores (slower, same "
                 "results)\n";
  }
  if (!common_.out.empty()) {
    try {
      make_directories(common_.out);
    } catch (const Error& e) {
      throw UsageError(std::string("--out: ") + e.what());
    }
  }
}

bool Parser::parse(int argc, char** argv) {
  po::options_description all_common;
  std::string dtype_text;
  int64_t seed = 0;
  add_common_options(all_common, dtype_text, seed);
  // The common flags this command uses are shown; the others are parsed (so that giving one is
  // a clear error, not "unrecognised option") but hidden.
  po::options_description common("Common options"), hidden, parsed;
  for (const auto& option : all_common.options())
    (is_unused_common(option->long_name()) ? hidden : common).add(option);
  po::options_description all;
  all.add(own_).add(common);
  if (validate_only_enabled_)
    hidden.add_options()("validate-only", "check the flags and values, then exit");
  parsed.add(all).add(hidden);
  refuse_duplicate_flags(parsed, command_);
  try {
    po::store(po::command_line_parser(argc, argv).options(parsed).positional(positional_).run(),
              vm_);
    if (vm_.count("help")) {
      std::cout << usage_line() << "\n\n" << all << "\n";
      return false;
    }
    refuse_unused_common_given();
    if (vm_.count("config")) {
      const std::string path = vm_["config"].as<std::string>();
      std::ifstream in(path);
      if (!in)
        throw UsageError("--config: cannot open '" + path + "'");
      po::store(po::parse_config_file(in, parsed), vm_);
    }
    po::notify(vm_);
  } catch (const po::error_with_option_name& e) {
    throw UsageError(SafeMessage(e).text());
  } catch (const po::error& e) {
    throw UsageError(e.what());
  }
  check_common(seed, dtype_text);
  return true;
}

std::vector<std::string> split_list(const std::string& text, const std::string& flag) {
  std::vector<std::string> items;
  std::stringstream ss(text);
  std::string item;
  while (std::getline(ss, item, ',')) {
    if (item.empty())
      throw UsageError(flag + ": empty item in list '" + text + "'");
    items.push_back(item);
  }
  if (items.empty())
    throw UsageError(flag + ": empty list");
  return items;
}

std::optional<int64_t> parse_integer(const std::string& text) {
  std::size_t used = 0;
  int64_t v = 0;
  try {
    v = std::stoll(text, &used);
  } catch (const std::exception&) {  // not a number, or out of range
    return std::nullopt;
  }
  if (used != text.size())
    return std::nullopt;
  return v;
}

std::vector<int64_t> parse_int_list(const std::string& text, const std::string& flag) {
  std::vector<int64_t> values;
  for (const std::string& item : split_list(text, flag)) {
    const std::optional<int64_t> v = parse_integer(item);
    if (!v)
      throw UsageError(flag + ": '" + item + "' is not an integer");
    values.push_back(*v);
  }
  return values;
}

std::vector<Subcommand>& registry() {
  static std::vector<Subcommand> commands;
  return commands;
}

const Subcommand* find_subcommand(const std::string& name) {
  for (const auto& c : registry())
    if (c.name == name)
      return &c;
  return nullptr;
}

Register::Register(std::string name, std::string summary, Handler run, Validates validates) {
  registry().push_back({std::move(name), std::move(summary), std::move(run), validates});
}

namespace {
std::string& program_name_storage() {
  static std::string name = "attnlab";
  return name;
}
}  // namespace

const std::string& program_name() {
  return program_name_storage();
}

void set_program_name(std::string name) {
  program_name_storage() = std::move(name);
}

int run_guarded(const std::string& command, const std::function<int()>& handler, Program program) {
  const std::string prefix = (program == Program::Subcommand ? program_name() + " " : "") + command;
  try {
    return handler();
  } catch (const UsageError& e) {
    std::cerr << prefix << ": error: " << e.what() << "\n";
    return 2;
  } catch (const Error& e) {
    std::cerr << prefix << ": error: " << e.what() << "\n";
    return 1;
  } catch (const std::bad_alloc&) {
    std::cerr << prefix
              << ": error: out of memory: a tensor allocation failed (are sizes such as --dim, "
                 "--maxlen, --batch or --lengths what you meant?)\n";
    return 1;
  } catch (const std::exception& e) {
    std::cerr << prefix << ": error: " << e.what() << "\n";
    return 1;
  }
}

}  // namespace attnlab::cli
