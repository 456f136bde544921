// The registry of attention kinds: every kind describes itself (name, family, summary, paper,
// capabilities, options, factory, gradcheck cases, cost model), and every command (train, sweep,
// bench, gradcheck, approx, demo, kinds) reads it. A family registers its kinds from its own file
// with a static registrar, so a new kind is one new .cpp file:
//
//   namespace attnlab::nn {
//   namespace {
//   struct ReluLinearOptions { double epsilon = 1e-6; };   // the family's one options struct
//   AttentionKind relu_linear() {
//     KindCapabilities caps;
//     caps.causal = caps.bidirectional = caps.key_padding = true;
//     return AttentionKind::with_options<ReluLinearOptions>(
//         "relu-linear", "relu-linear", "causal ReLU linear attention",
//         "Katharopoulos et al. 2020", caps,
//         OptionBinder<ReluLinearOptions>().bind("epsilon", &ReluLinearOptions::epsilon,
//                                                "added to the normaliser"),
//         [](const ReluLinearOptions& o, const KernelContext& ctx) {
//           return std::make_shared<ReluLinearKernel>(o.epsilon);
//         });
//   }
//   const RegisterAttentionKind relu_linear_kinds{{relu_linear()}};
//   }  // namespace
//   }  // namespace attnlab::nn
//
// It is then `train --attention relu-linear --epsilon 1e-5`, `bench attention --kind
// relu-linear`, `gradcheck --filter kind/relu-linear` (kernel_gradcheck_cases unless the kind
// sets its own) and a row of `attnlab kinds`. The layers library is linked whole-archive
// (cmake/attnlab_helpers.cmake), so a built-in registrar is never dropped by the linker; a user's
// registrar file is compiled into their executable directly.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "core/option_binder.hpp"
#include "layers/attention/attention_kernel.hpp"
#include "layers/nn/gradcheck_case.hpp"

namespace attnlab::nn {

// What a kind supports (AttentionMask fields, dropout on weights, random state).
struct KindCapabilities {
  bool causal = false;
  bool bidirectional = false;
  bool key_padding = false;
  bool distance_decay = false;   // AttentionMask::decay
  bool dropout = false;          // attention-weight dropout (KernelContext::dropout)
  bool random_features = false;  // random projections (the feature count matters)
  // How cost grows with the length L, for studies that sweep it (`bench attention`, `bench
  // model`): a kind that declares neither is taken to be linear in L and never skipped.
  bool quadratic_time = false;    // O(L^2) time: bench attention skips it above --max-exact-length
  bool quadratic_memory = false;  // the L x L weights: both skip it above --max-reference-length
};
// "causal, bidirectional, key-padding, ..." (the supported ones, comma-separated).
std::string describe(const KindCapabilities& c);

// What the model around a kernel decides (the same for every kind).
struct KernelContext {
  int64_t head_dim = 64;  // d, for kinds whose state depends on it (random features)
  uint64_t seed = 0;      // random state (dropout masks, random features)
  double dropout = 0.0;   // attention-weight dropout, for kinds that have weights
};

// The problem a cost is asked for: batch * heads independent attentions of Lq queries over Lk
// keys, head width d (queries, keys) and dv (values).
struct AttentionShape {
  int64_t batch_heads = 1;
  int64_t lq = 0, lk = 0;
  int64_t d = 64, dv = 64;
  bool causal = false;
  int64_t element_bytes = 4;  // float32
};
// Useful FLOPs (recomputations count as overhead) and the bytes that must cross memory at least
// (inputs read and outputs written once).
struct AttentionCost {
  double forward_flops = 0, backward_flops = 0;
  double forward_bytes = 0, backward_bytes = 0;
  double total_flops() const { return forward_flops + backward_flops; }
};

using KernelFactory = std::function<std::shared_ptr<AttentionKernel>(const KernelContext&)>;

struct AttentionKind {
  std::string name;       // the vocabulary of every command: "favor", "softmax-fused", ...
  std::string family;     // "softmax", "favor", ... (one file registers a family)
  std::string summary;    // one line
  std::string reference;  // the paper
  KindCapabilities capabilities;
  OptionSet options;  // the family's options struct, with this kind's defaults
  // Builds a kernel from the options (an OptionValues of this kind's struct) and the context.
  std::function<std::shared_ptr<AttentionKernel>(const OptionValues&, const KernelContext&)> make;
  // Float64 gradient checks of the kind (may be empty).
  std::function<std::vector<GradcheckCase>()> gradcheck_cases;
  // FLOPs and bytes for a problem shape under given options (for GFLOP/s in `bench attention`).
  std::function<AttentionCost(const AttentionShape&, const OptionValues&)> cost;

  // The kernel with this kind's default options.
  std::shared_ptr<AttentionKernel> make_default(const KernelContext& context) const;
  // A factory with the options bound (what SASRecConfig::kernel takes).
  KernelFactory factory(OptionValues options) const;
  // Typed construction: `make` receives the family's struct T.
  template <class T>
  static AttentionKind with_options(
      std::string name,
      std::string family,
      std::string summary,
      std::string reference,
      KindCapabilities capabilities,
      OptionSet options,
      std::function<std::shared_ptr<AttentionKernel>(const T&, const KernelContext&)> make) {
    AttentionKind k;
    k.name = std::move(name);
    k.family = std::move(family);
    k.summary = std::move(summary);
    k.reference = std::move(reference);
    k.capabilities = capabilities;
    k.options = std::move(options);
    k.make = [make](const OptionValues& o, const KernelContext& c) {
      return make(o.as<T>(), c);
    };
    return k;
  }
};

// Every registered kind, ordered by family then registration order (independent of link order).
const std::vector<AttentionKind>& attention_kinds();
// The kind of that name, or nullptr.
const AttentionKind* find_attention_kind(const std::string& name);
// The kind of that name; ValueError "attention kind 'x' is unknown (known: a, b, ...)".
const AttentionKind& attention_kind(const std::string& name);
// "a, b, c": every registered name.
std::string attention_kind_names();

// The gradient checks of a kind: kind.gradcheck_cases() when it brings its own, else
// kernel_gradcheck_cases(kind).
std::vector<GradcheckCase> gradcheck_cases(const AttentionKind& kind);
// The checks every kind gets: its kernel (default options; 4 random features for the kinds that
// declare --features) on float64 q, k [2, 2, 5, 3] and v [2, 2, 5, 2], once per mask it supports:
// causal, bidirectional, each with key padding when supported, and a distance decay when
// supported. Names: "kind/<name>/causal_padded", ...
std::vector<GradcheckCase> kernel_gradcheck_cases(const AttentionKind& kind);

// Registers kinds at static-initialisation time. It never throws (an exception before main()
// aborts the program): a kind without a name or factory, or with a name already registered, is
// left out, and from then on attention_kinds() and every lookup throw that ValueError
// ("RegisterAttentionKind: kind 'favor' is registered twice (families mine and favor)"), which
// the CLI prints as its one-line error.
struct RegisterAttentionKind {
  explicit RegisterAttentionKind(std::vector<AttentionKind> kinds);
};

// Builds the kernel `name` with its defaults, options set from (name, text) pairs first;
// ValueError for an unknown kind, an option it does not declare, or a bad value.
std::shared_ptr<AttentionKernel> make_attention_kernel(
    const std::string& name,
    const KernelContext& context = {},
    const std::vector<std::pair<std::string, std::string>>& options = {});

}  // namespace attnlab::nn
