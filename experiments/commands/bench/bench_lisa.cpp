// `attnlab bench lisa`: LISA histogram attention (Wu et al., WWW 2021) against exact softmax
// attention, forward and forward + backward time and peak tensor memory against sequence length.
//
// LISA rows time the whole attention as a model runs it: the per-codebook projections and
// tables (lisa_project), the decayed histograms (lisa_histograms) and the histogram
// attention (fused or composed reference), with gradients to the codebooks, the projections and
// the (straight-through) selections. Exact rows run nn::softmax_attention on one head of width D
// with the same mask (causal by default) and the equivalent distance bias (decay), materialised
// (Reference, O(L^2) memory) or fused (FlashAttention-style, O(L d)). The paper's claim (up to 57x
// faster, 78x less memory than vanilla self-attention) is checked against the materialised
// reference at the longest lengths it fits, and the comparison table says where each kernel wins.
#include "experiments/commands/bench/bench_lisa.hpp"

#include <algorithm>
#include <cmath>
#include <functional>
#include <iostream>
#include <map>
#include <string>
#include <tuple>

#include "autograd/autograd.hpp"
#include "core/core.hpp"
#include "experiments/support/bench.hpp"
#include "experiments/support/cli.hpp"
#include "experiments/support/table.hpp"
#include "layers/attention/lisa/lisa_attention.hpp"
#include "layers/attention/softmax/softmax_attention.hpp"

namespace attnlab {
namespace {

struct Measured {
  double fwd = 0, both = 0;
  int64_t bytes = 0;
};

struct Codebook {
  int64_t b, w;
};

std::vector<Codebook> parse_configs(const std::string& text) {
  std::vector<Codebook> out;
  for (const std::string& item : cli::split_list(text, "--configs")) {
    const auto x = item.find('x');
    if (x == std::string::npos)
      throw cli::UsageError("--configs: expected BxW items such as 8x16, got '" + item + "'");
    try {
      out.push_back({std::stoll(item.substr(0, x)), std::stoll(item.substr(x + 1))});
    } catch (const std::exception&) {
      throw cli::UsageError("--configs: expected BxW items such as 8x16, got '" + item + "'");
    }
    if (out.back().b <= 0 || out.back().w <= 0)
      throw cli::UsageError("--configs: B and W must be positive in '" + item + "'");
  }
  return out;
}

// Inputs of one LISA measurement: codebooks, projections, one-hot selections and codes.
struct LisaInputs {
  Tensor c, wq, wk, wv, sel, codes, grad;
};

LisaInputs lisa_inputs(int64_t batch, int64_t l, Codebook cb, int64_t d, DType dt, uint64_t seed) {
  LisaInputs in;
  in.c = randn({cb.b, cb.w, d}, RngKey{seed, 11}, dt);
  const double s = 1.0 / std::sqrt(static_cast<double>(d));
  in.wq = randn({cb.b, d, d}, RngKey{seed, 12}, dt, 0, s);
  in.wk = randn({cb.b, d, d}, RngKey{seed, 13}, dt, 0, s);
  in.wv = randn({cb.b, d, d}, RngKey{seed, 14}, dt, 0, s);
  in.codes = randint({batch, l, cb.b}, 0, cb.w, RngKey{seed, 15});
  in.sel = one_hot(in.codes, cb.w, dt);
  in.grad = randn({batch, l, d}, RngKey{seed, 16}, dt);
  return in;
}

// The bytes a forward + backward must move through memory at least (hard queries): the
// selections o [N, L, B, W] read and the histograms h written (lisa_histograms), h read with the
// int64 codes [N, L, B] and the output y [N, L, D] written (attention forward); dy, h and the
// codes read and dh written (attention backward); dh read and do written (histograms backward).
// The [B, W, W] tables and [B, W, D] values stay in cache and are not counted.
struct Traffic {
  int64_t moved = 0;        // bytes read + written
  int64_t working_set = 0;  // distinct bytes: o, h, dh, do, y, dy and the codes
};

Traffic traffic_model(int64_t batch, int64_t l, Codebook cb, int64_t d, DType dt) {
  const int64_t item = static_cast<int64_t>(dtype_size(dt)), hist = batch * l * cb.b * cb.w,
                out = batch * l * d;
  const int64_t codes = batch * l * cb.b * 8;
  return {item * (7 * hist + 2 * out) + 2 * codes, item * (4 * hist + 2 * out) + codes};
}

ag::Var lisa_forward(const LisaInputs& in,
                     const std::vector<ag::Var>& p,
                     double decay,
                     bool causal,
                     nn::LisaImpl impl) {
  nn::LisaProjection proj = nn::lisa_project(p[0], p[1], p[2], p[3]);
  ag::Var h = nn::lisa_histograms(p[4], {}, decay, causal);
  return nn::lisa_histogram_attention(proj.tables, proj.values, h, in.codes, {}, 0.0, impl);
}

}  // namespace

bool is_bench_lisa_kind(const std::string& name) {
  return name == "lisa" || name == "lisa-fused" || name == "lisa-reference";
}

int run_bench_lisa(int argc, char** argv) {
  cli::Parser parser("bench lisa", "[--lengths 1024,...] [--configs 8x16,8x32,8x128] [options]");
  parser.options().add_options()(
      "lengths",
      cli::po::value<std::string>()->default_value("1024,2048,4096,8192,16384,32768,65536"),
      "sequence lengths")("configs",
                          cli::po::value<std::string>()->default_value("8x16,8x32,8x128"),
                          "codebooks x codewords (list)")(
      "kind",
      cli::po::value<std::string>()->default_value("lisa"),
      "LISA kinds: lisa (both), lisa-fused, lisa-reference; softmax-reference and softmax-fused "
      "are added for the comparison unless --no-exact")(
      "dim", cli::po::value<int64_t>()->default_value(64), "D (hidden size = head width)")(
      "head-dim", cli::po::value<int64_t>(), "alias of --dim (bench attention's name)")(
      "batch", cli::po::value<int64_t>()->default_value(1), "batch size")(
      "decay", cli::po::value<double>()->default_value(0.1), "histogram decay lambda")(
      "mask",
      cli::po::value<std::string>()->default_value("causal"),
      "causal (prefix histograms) or none (bidirectional: whole-sequence histograms)")(
      "thread-counts",
      cli::po::value<std::string>()->default_value(""),
      "thread counts to run (default: all)")(
      "max-reference-length",
      cli::po::value<int64_t>()->default_value(16384),
      "skip the O(L^2) softmax-reference and the composed lisa-reference above this length")(
      "max-exact-length",
      cli::po::value<int64_t>()->default_value(65536),
      "skip softmax-fused above this length (its time grows as L^2)")("no-exact", "LISA rows only")(
      "no-lisa-reference", "skip the composed LISA reference")("quick",
                                                               "tiny sizes for the test suite");
  bench::add_timing_options(parser);
  if (!parser.parse(argc, argv))
    return 0;
  const bool quick = parser.has("quick");
  const std::vector<int64_t> lengths =
      cli::parse_int_list(quick ? "64,128" : parser.get<std::string>("lengths"), "--lengths");
  const std::vector<Codebook> user_configs = parse_configs(parser.get<std::string>("configs"));
  const std::vector<Codebook> configs = quick ? parse_configs("2x4,2x8") : user_configs;
  const int64_t d = quick ? 8 : parser.get<int64_t>(parser.has("head-dim") ? "head-dim" : "dim");
  bool run_fused = false, run_ref = false;
  for (const std::string& k : cli::split_list(parser.get<std::string>("kind"), "--kind")) {
    if (k == "lisa" || k == "lisa-fused")
      run_fused = true;
    if (k == "lisa" || k == "lisa-reference")
      run_ref = true;
    if (!is_bench_lisa_kind(k) && k != "softmax-reference" && k != "softmax-fused")
      throw cli::UsageError(
          "--kind: expected lisa, lisa-fused, lisa-reference, softmax-reference "
          "or softmax-fused, got '" +
          k + "'");
  }
  const int64_t batch = parser.get<int64_t>("batch");
  const double decay = parser.get<double>("decay");
  for (int64_t v : lengths) {
    if (v <= 0)
      throw cli::UsageError("--lengths: lengths must be positive");
  }
  if (d <= 0 || batch <= 0)
    throw cli::UsageError("--dim and --batch must be positive");
  if (decay < 0)
    throw cli::UsageError("--decay must be >= 0");
  const std::string mask_name = parser.get<std::string>("mask");
  if (mask_name != "causal" && mask_name != "none")
    throw cli::UsageError("--mask: expected causal or none, got '" + mask_name + "'");
  const bool causal = mask_name == "causal";
  const int all = num_threads();
  const std::vector<int64_t> thread_counts =
      parser.get<std::string>("thread-counts").empty()
          ? std::vector<int64_t>{all}
          : cli::parse_int_list(parser.get<std::string>("thread-counts"), "--thread-counts");
  const bench::TimingPolicy timing = bench::timing_policy(parser, quick);
  const int64_t max_ref = parser.get<int64_t>("max-reference-length");
  const int64_t max_exact = parser.get<int64_t>("max-exact-length");
  const bool exact = !parser.has("no-exact");
  const bool lisa_ref = run_ref && !parser.has("no-lisa-reference");
  const DType dt = parser.common().dtype;
  const uint64_t seed = parser.common().seed;

  std::cout << bench::machine_summary() << "\n";
  std::cout << "batch " << batch << ", D " << d << ", " << (causal ? "causal" : "bidirectional")
            << ", decay " << decay << ", " << dtype_name(dt) << "\n\n";
  const std::string stat = std::string(" (") + timing.headline_name() + ")";
  cli::Table table({"kind",
                    "B x W",
                    "L",
                    "threads",
                    "fwd ms" + stat,
                    "fwd+bwd ms" + stat,
                    "peak MiB",
                    "fwd+bwd GB/s",
                    "% of bandwidth"});
  // The fused rows' traffic (traffic_model below) against the bandwidth the machine reaches for
  // the same working set (bench::stream_gbs), measured once per working set and thread count.
  std::map<std::pair<int64_t, int64_t>, double> bandwidth;
  // (kind, B x W, threads) -> L -> measurement
  std::map<std::tuple<std::string, std::string, int64_t>, std::map<int64_t, Measured>> results;
  auto record = [&](const std::string& kind,
                    const std::string& bw,
                    int64_t l,
                    int64_t threads,
                    const std::function<void()>& fwd,
                    const std::function<void()>& both,
                    const Traffic* traffic = nullptr) {
    const double f = timing.headline(timing.run(fwd, 1));
    const double fb = timing.headline(timing.run(both, 1));
    const int64_t bytes = bench::peak_tensor_bytes(both);
    results[{kind, bw, threads}][l] = {f, fb, bytes};
    cli::Cell rate("-"), share("-");
    if (traffic) {
      double& probe = bandwidth[{traffic->working_set, threads}];
      if (probe == 0)
        probe = bench::stream_gbs(traffic->working_set, static_cast<int>(threads), quick);
      const double gbs = static_cast<double>(traffic->moved) / fb / 1e9;
      rate = cli::Cell(gbs, 1);
      share = cli::Cell(100.0 * gbs / probe, 1);
    }
    table.add_row({kind,
                   bw,
                   l,
                   threads,
                   cli::Cell(f * 1e3, 2),
                   cli::Cell(fb * 1e3, 2),
                   cli::Cell(bytes / 1048576.0, 1),
                   rate,
                   share});
    std::cerr << "." << std::flush;
  };

  for (int64_t threads : thread_counts) {
    if (threads < 1)
      throw cli::UsageError("--thread-counts: counts must be >= 1");
    set_num_threads(static_cast<int>(threads));
    for (int64_t l : lengths) {
      for (const Codebook& cb : configs) {
        const std::string bw = std::to_string(cb.b) + "x" + std::to_string(cb.w);
        const LisaInputs in = lisa_inputs(batch, l, cb, d, dt, seed);
        for (nn::LisaImpl impl : {nn::LisaImpl::Fused, nn::LisaImpl::Reference}) {
          if (impl == nn::LisaImpl::Reference && (!lisa_ref || l > max_ref))
            continue;
          if (impl == nn::LisaImpl::Fused && !run_fused)
            continue;
          const std::string kind = impl == nn::LisaImpl::Fused ? "lisa-fused" : "lisa-reference";
          auto fwd = [&] {
            ag::NoGradGuard no_grad;
            lisa_forward(in,
                         {ag::constant(in.c),
                          ag::constant(in.wq),
                          ag::constant(in.wk),
                          ag::constant(in.wv),
                          ag::constant(in.sel)},
                         decay,
                         causal,
                         impl);
          };
          auto both = [&] {
            std::vector<ag::Var> p{ag::param(in.c),
                                   ag::param(in.wq),
                                   ag::param(in.wk),
                                   ag::param(in.wv),
                                   ag::param(in.sel)};
            lisa_forward(in, p, decay, causal, impl).backward(in.grad);
          };
          const Traffic traffic = traffic_model(batch, l, cb, d, dt);
          record(kind, bw, l, threads, fwd, both, impl == nn::LisaImpl::Fused ? &traffic : nullptr);
        }
      }
      if (!exact)
        continue;
      const Shape s{batch, 1, l, d};
      const Tensor q = randn(s, RngKey{seed, 1}, dt), k = randn(s, RngKey{seed, 2}, dt),
                   v = randn(s, RngKey{seed, 3}, dt), g = randn(s, RngKey{seed, 4}, dt);
      nn::AttentionMask mask;
      mask.causal = causal;
      mask.decay = decay;
      for (nn::SoftmaxImpl impl : {nn::SoftmaxImpl::Reference, nn::SoftmaxImpl::Fused}) {
        const bool ref = impl == nn::SoftmaxImpl::Reference;
        if ((ref && l > max_ref) || (!ref && l > max_exact))
          continue;
        auto fwd = [&] {
          ag::NoGradGuard no_grad;
          nn::softmax_attention(ag::constant(q), ag::constant(k), ag::constant(v), mask, impl);
        };
        auto both = [&] {
          ag::Var vq = ag::param(q), vk = ag::param(k), vv = ag::param(v);
          nn::softmax_attention(vq, vk, vv, mask, impl).backward(g);
        };
        record(ref ? "softmax-reference" : "softmax-fused", "-", l, threads, fwd, both);
      }
    }
  }
  std::cerr << "\n";
  set_num_threads(all);
  table.print(std::cout);
  std::cout << "\npeak MiB: live tensor bytes above the inputs during forward + backward.\n"
               "fwd+bwd GB/s (lisa-fused): the compulsory traffic of the O(L) tensors over the "
               "time: S x (7 N L B W + 2 N L D) + 16 N L B bytes, S the dtype's size (selections "
               "read, histograms "
               "written, read by the attention forward and backward; the histogram gradient "
               "written and read, the selection gradient written; output and its gradient; the "
               "int64 codes read twice); % of bandwidth: of y += a x over the same working set "
               "(4 N L B W + 2 N L D floats and the codes) on as many threads.\n";

  // LISA against each exact kernel at every length both were measured at.
  cli::Table cmp({"kind",
                  "B x W",
                  "L",
                  "threads",
                  "vs",
                  "exact fwd+bwd ms",
                  "lisa fwd+bwd ms",
                  "speedup",
                  "fwd speedup",
                  "memory ratio",
                  "winner (time)",
                  "winner (memory)"});
  for (const auto& [key, by_l] : results) {
    const auto& [kind, bw, threads] = key;
    if (!is_bench_lisa_kind(kind))
      continue;
    for (const std::string other : {"softmax-reference", "softmax-fused"}) {
      const auto it = results.find({other, "-", threads});
      if (it == results.end())
        continue;
      for (const auto& [l, r] : by_l) {
        const auto e = it->second.find(l);
        if (e == it->second.end())
          continue;
        const Measured& x = e->second;
        const double mem = static_cast<double>(x.bytes) / std::max<int64_t>(1, r.bytes);
        cmp.add_row({kind,
                     bw,
                     l,
                     threads,
                     other,
                     cli::Cell(x.both * 1e3, 2),
                     cli::Cell(r.both * 1e3, 2),
                     cli::Cell(x.both / r.both, 2),
                     cli::Cell(x.fwd / r.fwd, 2),
                     cli::Cell(mem, 2),
                     r.both < x.both ? kind : other,
                     mem > 1 ? kind : other});
      }
    }
  }
  if (cmp.rows() > 0) {
    std::cout << "\nLISA against exact attention: speedup = exact time / LISA time, "
                 "memory ratio = exact peak / LISA peak (> 1: LISA wins).\n";
    cmp.print(std::cout);
  }
  if (!parser.common().out.empty()) {
    table.write(parser.common().out, "lisa");
    if (cmp.rows() > 0)
      cmp.write(parser.common().out, "lisa_comparison");
  }
  return 0;
}

namespace {
const bench::RegisterMode lisa_mode("lisa",
                                    "LISA histogram attention against exact attention: time and "
                                    "memory against length",
                                    run_bench_lisa);
}  // namespace

}  // namespace attnlab
