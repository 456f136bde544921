// `attnlab bench attention`: time and peak tensor memory of attention kernels against sequence
// length, forward alone and forward + backward, for 1 and all threads.
//
// Memory is the peak of live tensor bytes above the level before the call (attnlab's allocator
// counts every tensor): it includes the output, the gradients of q, k and v, everything saved for
// backward and all scratch tensors, but not q, k, v themselves.
#include <cmath>
#include <iostream>

#include "autograd/autograd.hpp"
#include "core/core.hpp"
#include "experiments/support/bench.hpp"
#include "experiments/support/cli.hpp"
#include "experiments/support/table.hpp"
#include "layers/attention_factory.hpp"

namespace attnlab {
namespace {

// Useful FLOPs of exact attention (FlashAttention's accounting): forward 4 L^2 d, backward
// 10 L^2 d (recomputing S counts as overhead), halved by a causal mask.
double attention_flops(int64_t bh, int64_t l, int64_t d, bool causal, bool backward) {
  const double per = (backward ? 14.0 : 4.0) * static_cast<double>(l) * l * d * bh;
  return causal ? per / 2 : per;
}

int run_attention_bench(int argc, char** argv) {
  cli::Parser parser("bench attention", "[--kind a,b] [--lengths 256,...] [options]");
  std::string kinds_default;
  for (const auto& k : nn::attention_kinds()) {
    if (k.name.rfind("softmax", 0) == 0)
      kinds_default += (kinds_default.empty() ? "" : ",") + k.name;
  }
  parser.options().add_options()("kind",
                                 cli::po::value<std::string>()->default_value(kinds_default),
                                 "attention kinds (comma-separated; see --list)")(
      "list", "list the attention kinds and exit")(
      "lengths",
      cli::po::value<std::string>()->default_value("256,512,1024,2048,4096,8192,16384"),
      "sequence lengths")(
      "head-dim", cli::po::value<int64_t>()->default_value(64), "head dimension")(
      "heads", cli::po::value<int64_t>()->default_value(1), "heads")(
      "batch", cli::po::value<int64_t>()->default_value(1), "batch size")(
      "thread-counts",
      cli::po::value<std::string>()->default_value(""),
      "thread counts to run (default: 1 and all)")(
      "mask", cli::po::value<std::string>()->default_value("causal"), "causal or none")(
      "max-reference-length",
      cli::po::value<int64_t>()->default_value(16384),
      "skip O(L^2) reference kinds above this length")(
      "budget", cli::po::value<double>()->default_value(0.5), "seconds per measurement (at least)")(
      "quick", "tiny sizes for the test suite");
  if (!parser.parse(argc, argv))
    return 0;
  if (parser.has("list")) {
    for (const auto& k : nn::attention_kinds()) std::cout << k.name << "  " << k.summary << "\n";
    return 0;
  }
  const bool quick = parser.has("quick");
  const std::vector<std::string> kinds = cli::split_list(parser.get<std::string>("kind"), "--kind");
  for (const std::string& k : kinds) {
    bool known = false;
    for (const auto& info : nn::attention_kinds()) known = known || info.name == k;
    if (!known)
      throw cli::UsageError("--kind: unknown attention kind '" + k + "' (see --list)");
  }
  const std::vector<int64_t> lengths =
      cli::parse_int_list(quick ? "32,64" : parser.get<std::string>("lengths"), "--lengths");
  const int64_t d = parser.get<int64_t>("head-dim"), heads = parser.get<int64_t>("heads");
  const int64_t batch = parser.get<int64_t>("batch");
  const std::string mask_name = parser.get<std::string>("mask");
  if (mask_name != "causal" && mask_name != "none") {
    throw cli::UsageError("--mask: expected causal or none, got '" + mask_name + "'");
  }
  for (int64_t v : lengths) {
    if (v <= 0)
      throw cli::UsageError("--lengths: lengths must be positive");
  }
  if (d <= 0 || heads <= 0 || batch <= 0) {
    throw cli::UsageError("--head-dim, --heads and --batch must be positive");
  }
  const int all = num_threads();
  std::vector<int64_t> thread_counts =
      parser.get<std::string>("thread-counts").empty()
          ? (all > 1 ? std::vector<int64_t>{1, all} : std::vector<int64_t>{1})
          : cli::parse_int_list(parser.get<std::string>("thread-counts"), "--thread-counts");
  const double budget = quick ? 0.01 : parser.get<double>("budget");
  const DType dt = parser.common().dtype;
  nn::AttentionMask mask;
  mask.causal = mask_name == "causal";

  std::cout << bench::machine_summary() << "\n";
  std::vector<double> peak(all + 1, 0.0);
  for (int64_t t : thread_counts) {
    if (t < 1)
      throw cli::UsageError("--thread-counts: counts must be >= 1");
    if (t <= all)
      peak[t] = bench::fma_peak_gflops(static_cast<int>(t));
  }
  std::cout << "batch " << batch << ", heads " << heads << ", head_dim " << d << ", mask "
            << mask_name << ", " << dtype_name(dt) << "\n\n";

  cli::Table table({"kind",
                    "mask",
                    "L",
                    "threads",
                    "fwd ms",
                    "fwd+bwd ms",
                    "peak MiB",
                    "fwd+bwd GFLOP/s",
                    "% of peak"});
  for (int64_t threads : thread_counts) {
    set_num_threads(static_cast<int>(threads));
    for (const std::string& kind : kinds) {
      nn::KernelConfig cfg;
      cfg.seed = parser.common().seed;
      cfg.head_dim = d;
      auto kernel = nn::make_attention_kernel(kind, cfg);
      kernel->to(dt);
      for (int64_t l : lengths) {
        if (kind.find("reference") != std::string::npos &&
            l > parser.get<int64_t>("max-reference-length")) {
          continue;
        }
        const Shape s{batch, heads, l, d};
        Tensor q = randn(s, RngKey{parser.common().seed, 1}, dt);
        Tensor k = randn(s, RngKey{parser.common().seed, 2}, dt);
        Tensor v = randn(s, RngKey{parser.common().seed, 3}, dt);
        Tensor g = randn(s, RngKey{parser.common().seed, 4}, dt);
        const bench::Timing fwd = bench::measure(
            [&] {
              ag::NoGradGuard no_grad;
              ag::Var out = kernel->attend(ag::constant(q), ag::constant(k), ag::constant(v), mask);
            },
            budget,
            1);
        auto fwd_bwd = [&] {
          ag::Var vq = ag::param(q), vk = ag::param(k), vv = ag::param(v);
          kernel->attend(vq, vk, vv, mask).backward(g);
        };
        const bench::Timing both = bench::measure(fwd_bwd, budget, 1);
        const int64_t bytes = bench::peak_tensor_bytes(fwd_bwd);
        const double flops = attention_flops(batch * heads, l, d, mask.causal, true);
        const double gflops = flops / both.best / 1e9;
        const double pk = peak[threads] * (dt == kFloat64 ? 0.5 : 1.0);
        const bool exact = kind.rfind("softmax", 0) == 0;
        table.add_row({kind,
                       mask_name,
                       l,
                       threads,
                       cli::Cell(fwd.best * 1e3, 2),
                       cli::Cell(both.best * 1e3, 2),
                       cli::Cell(bytes / 1048576.0, 1),
                       exact ? cli::Cell(gflops, 1) : cli::Cell("-"),
                       exact && pk > 0 ? cli::Cell(100 * gflops / pk, 1) : cli::Cell("-")});
        std::cerr << "." << std::flush;
      }
    }
  }
  std::cerr << "\n";
  set_num_threads(all);
  table.print(std::cout);
  std::cout << "\npeak MiB: live tensor bytes above the inputs during forward + backward.\n"
               "GFLOP/s counts 4 L^2 d (forward) + 10 L^2 d (backward) per head, halved when "
               "causal.\n";
  if (!parser.common().out.empty())
    table.write(parser.common().out, "attention");
  return 0;
}

const bench::RegisterMode attention_mode("attention",
                                         "attention kernels: time and memory against length",
                                         run_attention_bench);

}  // namespace
}  // namespace attnlab
