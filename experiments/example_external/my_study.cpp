// A user's own experiment, written against attnlab's public API with the same CLI conventions as
// the attnlab subcommands (--help, --config, --seed, --threads, --dtype, --out).
#include <iostream>

#include "core/core.hpp"
#include "experiments/support/cli.hpp"
#include "experiments/support/table.hpp"
#include "layers/attention/softmax/softmax_attention.hpp"

namespace {

int run_study(int argc, char** argv) {
  using namespace attnlab;
  cli::Parser p("my_study", "[--length L]", cli::Program::Standalone);
  p.options().add_options()(
      "length", cli::po::value<int64_t>()->default_value(64), "sequence length");
  if (!p.parse(argc, argv))
    return 0;
  const int64_t l = p.get<int64_t>("length");
  if (l <= 0)
    throw cli::UsageError("--length: must be positive");
  const Shape s{1, 1, l, 16};
  ag::Var q = ag::param(randn(s, RngKey{p.common().seed, 1}, p.common().dtype));
  ag::Var k = ag::param(randn(s, RngKey{p.common().seed, 2}, p.common().dtype));
  ag::Var v = ag::param(randn(s, RngKey{p.common().seed, 3}, p.common().dtype));
  nn::AttentionMask mask;
  mask.causal = true;
  ag::Var ref = nn::softmax_attention(q, k, v, mask, nn::SoftmaxImpl::Reference);
  ag::Var fused = nn::softmax_attention(q, k, v, mask, nn::SoftmaxImpl::Fused);
  cli::Table t({"length", "max |fused - reference|"});
  t.add_row({l, cli::Cell::sci(max_abs_diff(fused.value(), ref.value()))});
  t.print(std::cout);
  if (!p.common().out.empty())
    t.write(p.common().out, "my_study");
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  // Standalone: --help and the errors name this executable, not "attnlab my_study".
  return attnlab::cli::run_guarded(
      "my_study", [&] { return run_study(argc, argv); }, attnlab::cli::Program::Standalone);
}
