// libFuzzer target: `--config FILE` parsing. The bytes become a config file and cli::Parser
// reads it exactly as `attnlab <command> --config FILE` does (options of every kind a subcommand
// declares: integers, doubles, strings, switches, defaults and required-less values). A
// cli::UsageError or attnlab::Error is the normal outcome for a bad file.
//
// Inputs that mention "out" are skipped: `out = DIR` makes the parser create DIR, and a fuzzer
// must not create directories wherever its mutations point. The thread count is reset after
// each input (`threads = N` sets the global pool size).
#include <unistd.h>

#include <cstdio>
#include <fstream>
#include <string>
#include <vector>

#include "core/parallel.hpp"
#include "experiments/support/cli.hpp"
#include "tests/fuzz/fuzz_common.hpp"

namespace {

std::string config_path() {
  static const std::string path = "/tmp/attnlab_fuzz_config_" + std::to_string(::getpid()) + ".cfg";
  return path;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, std::size_t size) {
  namespace cli = attnlab::cli;
  const std::string text = attnlab::fuzz::as_string(data, size);
  if (text.find("out") != std::string::npos)
    return 0;
  {
    std::ofstream f(config_path(), std::ios::binary | std::ios::trunc);
    f << text;
  }
  cli::Parser p("fuzz", "[options]");
  p.options().add_options()("epochs", cli::po::value<int64_t>()->default_value(3), "int64")(
      "lr", cli::po::value<double>()->default_value(1e-3), "double")(
      "attention", cli::po::value<std::string>()->default_value("softmax"), "string")(
      "heads", cli::po::value<int>(), "int, no default")(
      "sizes", cli::po::value<std::string>(), "list")("full-ranking", "switch")(
      "resume", cli::po::bool_switch(), "bool switch");
  std::string config_arg = config_path();
  std::vector<char*> argv = {
      const_cast<char*>("attnlab-fuzz"), const_cast<char*>("--config"), config_arg.data(), nullptr};
  try {
    if (p.parse(3, argv.data())) {
      (void)p.get<int64_t>("epochs");
      (void)p.get<double>("lr");
      (void)p.common();
      if (p.has("sizes"))
        (void)cli::parse_int_list(p.get<std::string>("sizes"), "--sizes");
    }
  } catch (const cli::UsageError&) {
  } catch (const attnlab::Error&) {
  }
  attnlab::set_num_threads(1);
  return 0;
}
