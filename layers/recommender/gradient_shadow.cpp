#include "layers/recommender/gradient_shadow.hpp"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <limits>

#include "autograd/var.hpp"
#include "core/core.hpp"
#include "layers/recommender/lisa_model.hpp"
#include "layers/recommender/sasrec.hpp"

namespace attnlab::rec {

// ---- agreement --------------------------------------------------------------------------------
//   cos = <a, e> / (|a| |e|),   rel = |a - e| / |e|   (sums in double)
Agreement agreement(const std::string& name,
                    const std::vector<Tensor>& approx,
                    const std::vector<Tensor>& exact) {
  ATTNLAB_CHECK(approx.size() == exact.size(),
                ValueError,
                "agreement '",
                name,
                "': ",
                approx.size(),
                " approximate tensors against ",
                exact.size(),
                " exact ones");
  double ae = 0, aa = 0, ee = 0, dd = 0;
  for (std::size_t t = 0; t < approx.size(); ++t) {
    ATTNLAB_CHECK(approx[t].shape() == exact[t].shape(),
                  ShapeError,
                  "agreement '",
                  name,
                  "': tensor ",
                  t,
                  " is ",
                  approx[t].shape(),
                  " approximately and ",
                  exact[t].shape(),
                  " exactly");
    const std::vector<double> a = approx[t].to_vector<double>(), e = exact[t].to_vector<double>();
    for (std::size_t i = 0; i < a.size(); ++i) {
      ae += a[i] * e[i];
      aa += a[i] * a[i];
      ee += e[i] * e[i];
      dd += (a[i] - e[i]) * (a[i] - e[i]);
    }
  }
  Agreement g;
  g.name = name;
  g.approx_norm = std::sqrt(aa);
  g.exact_norm = std::sqrt(ee);
  const double inf = std::numeric_limits<double>::infinity();
  g.cosine = aa == 0 && ee == 0   ? 1.0
             : aa == 0 || ee == 0 ? 0.0
                                  : ae / (g.approx_norm * g.exact_norm);
  g.relative_error = ee > 0 ? std::sqrt(dd) / g.exact_norm : dd == 0 ? 0.0 : inf;
  return g;
}

namespace {

// ---- SASRec: the kernels swapped ----------------------------------------------------------------

// Passes attend() to the kernel it wraps and keeps the output's value; with a probe, also runs
// the probe on the same inputs without tape and keeps its output (the approximation on the exact
// model's inputs).
class RecordingKernel : public nn::AttentionKernel {
 public:
  RecordingKernel(std::shared_ptr<nn::AttentionKernel> inner,
                  Tensor* output,
                  std::shared_ptr<nn::AttentionKernel> probe = nullptr,
                  Tensor* probe_output = nullptr)
      : AttentionKernel("RecordingKernel"),
        output_(output),
        probe_(std::move(probe)),
        probe_output_(probe_output) {
    register_module("inner", inner_, std::move(inner));
  }
  Var attend(const Var& q, const Var& k, const Var& v, const nn::AttentionMask& mask) override {
    Var y = nn::call(*inner_, &nn::AttentionKernel::attend, q, k, v, mask);
    *output_ = y.value();
    if (probe_) {
      ag::NoGradGuard no_tape;
      *probe_output_ = probe_->attend(q.detach(), k.detach(), v.detach(), mask).value();
    }
    return y;
  }

 private:
  Child<nn::AttentionKernel> inner_;
  Tensor* output_;
  std::shared_ptr<nn::AttentionKernel> probe_;  // not a child: its state stays where it is
  Tensor* probe_output_;
};

// The state as captured, with the names under `path` moved below `path`.inner (where a wrapped
// kernel's buffers and generators are while the RecordingKernel holds it).
ForwardState below_wrapper(ForwardState s, const std::vector<std::string>& paths) {
  auto rename = [&](std::string& name) {
    for (const std::string& p : paths) {
      if (name.compare(0, p.size() + 1, p + ".") == 0) {
        name = p + ".inner" + name.substr(p.size());
        return;
      }
    }
  };
  for (auto& [name, t] : s.buffers) rename(name);
  for (auto& g : s.generators) rename(g.name);
  return s;
}

class SASRecCounterpart : public ExactCounterpart {
 public:
  SASRecCounterpart(SASRec& model, const std::string& exact) : model_(model) {
    const SASRecConfig& c = model.config();
    const nn::AttentionKind& kind = nn::attention_kind(exact);
    const nn::AttentionKind* approx = nn::find_attention_kind(c.attention);
    // Attention-weight dropout only when the approximation drops weights too: otherwise the
    // exact model would be noisier than the approximate one.
    const bool dropout = approx != nullptr && approx->capabilities.dropout;
    for (int64_t b = 0; b < c.blocks; ++b) {
      paths_.push_back(SASRec::kernel_path(b));
      nn::KernelContext kc = model.kernel_context(b);
      if (!dropout)
        kc.dropout = 0.0;
      exact_.push_back(kind.make_default(kc));
    }
  }

  std::vector<std::string> attention_layers() const override {
    std::vector<std::string> layers;
    for (const std::string& p : paths_) layers.push_back(p.substr(0, p.size() - 7));  // ".kernel"
    return layers;
  }

  void run(bool exact,
           const SequenceRecommender::StepState& before,
           const std::function<void()>& fn,
           AttentionOutputs& recorded) override {
    recorded.outputs.assign(paths_.size(), Tensor());
    recorded.approx_on_exact_inputs.assign(exact ? paths_.size() : 0, Tensor());
    std::vector<std::shared_ptr<nn::AttentionKernel>> originals;
    for (const std::string& p : paths_)
      originals.push_back(std::dynamic_pointer_cast<nn::AttentionKernel>(model_.module_at(p)));
    model_.restore_step_state(before);
    try {
      for (std::size_t b = 0; b < paths_.size(); ++b) {
        model_.replace_module(
            paths_[b],
            exact ? std::make_shared<RecordingKernel>(exact_[b],
                                                      &recorded.outputs[b],
                                                      originals[b],
                                                      &recorded.approx_on_exact_inputs[b])
                  : std::make_shared<RecordingKernel>(originals[b], &recorded.outputs[b]));
      }
      // An exact kernel of the same kind as the approximation finds its own state here too.
      restore_forward_state(model_, below_wrapper(before.forward, paths_));
      fn();
    } catch (...) {
      put_back(originals);
      throw;
    }
    put_back(originals);
  }

 private:
  void put_back(const std::vector<std::shared_ptr<nn::AttentionKernel>>& originals) {
    for (std::size_t b = 0; b < paths_.size(); ++b) model_.replace_module(paths_[b], originals[b]);
  }
  SASRec& model_;
  std::vector<std::string> paths_;
  std::vector<std::shared_ptr<nn::AttentionKernel>> exact_;
};

// ---- LISA: its exact attention mode
// --------------------------------------------------------------
class LISACounterpart : public ExactCounterpart {
 public:
  explicit LISACounterpart(LISA& model) : model_(model) {}
  std::vector<std::string> attention_layers() const override { return {"attention"}; }
  // Causal (the recommender's), a left pad attends to no real item in either mode and outputs
  // zeros; bidirectional, pad rows differ (docs/derivations/lisa_histograms.md, section 8).
  void run(bool exact,
           const SequenceRecommender::StepState& before,
           const std::function<void()>& fn,
           AttentionOutputs& recorded) override {
    model_.restore_step_state(before);
    model_.set_attention_mode(exact ? LisaAttentionMode::ExactUnquantized
                                    : LisaAttentionMode::Histogram);
    try {
      fn();
    } catch (...) {
      model_.set_attention_mode(LisaAttentionMode::Histogram);
      throw;
    }
    model_.set_attention_mode(LisaAttentionMode::Histogram);
    recorded.outputs = {model_.last_attention_output().value()};
  }

 private:
  LISA& model_;
};

// ---- grouping ---------------------------------------------------------------------------------

// "blocks.0.attn.q.weight" -> module "blocks.0.attn.q", layer "blocks.0"; "final_norm.weight" ->
// "final_norm" twice (a layer is the first part, with the index of a list).
std::string module_of(const std::string& parameter) {
  const auto dot = parameter.rfind('.');
  return dot == std::string::npos ? parameter : parameter.substr(0, dot);
}
std::string layer_of(const std::string& parameter) {
  const auto first = parameter.find('.');
  if (first == std::string::npos)
    return parameter;
  const auto second = parameter.find('.', first + 1);
  const std::string next = parameter.substr(first + 1, second - first - 1);
  const bool index = !next.empty() && next.find_first_not_of("0123456789") == std::string::npos;
  return index && second != std::string::npos ? parameter.substr(0, second)
                                              : parameter.substr(0, first);
}

// Agreements of the parameters grouped by `group_of`, in first-seen order.
std::vector<Agreement> grouped(const std::vector<std::string>& names,
                               const std::vector<Tensor>& approx,
                               const std::vector<Tensor>& exact,
                               std::string (*group_of)(const std::string&)) {
  std::vector<std::string> groups;
  for (const std::string& n : names) {
    if (std::find(groups.begin(), groups.end(), group_of(n)) == groups.end())
      groups.push_back(group_of(n));
  }
  std::vector<Agreement> out;
  for (const std::string& g : groups) {
    std::vector<Tensor> a, e;
    for (std::size_t i = 0; i < names.size(); ++i) {
      if (group_of(names[i]) != g)
        continue;
      a.push_back(approx[i]);
      e.push_back(exact[i]);
    }
    out.push_back(agreement(g, a, e));
  }
  return out;
}

// A parameter that received no gradient counts as zeros.
Tensor gradient_or_zeros(const Var& p) {
  return p.has_grad() ? p.grad() : zeros(p.shape(), p.dtype());
}

}  // namespace

std::unique_ptr<ExactCounterpart> make_exact_counterpart(SequenceRecommender& model,
                                                         const ShadowOptions& options) {
  if (auto* sasrec = dynamic_cast<SASRec*>(&model))
    return std::make_unique<SASRecCounterpart>(*sasrec, options.exact);
  if (auto* lisa = dynamic_cast<LISA*>(&model))
    return std::make_unique<LISACounterpart>(*lisa);
  throw ValueError("GradientShadow: the model " + model.describe() +
                   " has no exact counterpart (SASRec and LISA have one; pass your own "
                   "ExactCounterpart for another model)");
}

// ---- the shadow -------------------------------------------------------------------------------

GradientShadow::GradientShadow(SequenceRecommender& model, const ShadowOptions& options)
    : GradientShadow(model, options, make_exact_counterpart(model, options)) {}

GradientShadow::GradientShadow(SequenceRecommender& model,
                               const ShadowOptions& options,
                               std::unique_ptr<ExactCounterpart> counterpart)
    : model_(model), options_(options), counterpart_(std::move(counterpart)) {
  ATTNLAB_CHECK(options.every >= 1,
                ValueError,
                "GradientShadow: every must be >= 1 (steps between shadow steps), got ",
                options.every);
  ATTNLAB_CHECK(counterpart_ != nullptr, ValueError, "GradientShadow: no counterpart given");
}

TrainCallbacks GradientShadow::install(TrainCallbacks callbacks) {
  auto previous = callbacks.before_update;
  callbacks.before_update = [this, previous](SequenceRecommender& model, const TrainStep& step) {
    if (previous)
      previous(model, step);
    observe(model, step);
  };
  return callbacks;
}

// set the step's gradients aside -> replay the approximation without tape (its attention
// outputs) -> the exact model's loss and gradients -> put everything back -> compare.
void GradientShadow::observe(SequenceRecommender& model, const TrainStep& step) {
  if (step.step % options_.every != 0)
    return;
  ATTNLAB_CHECK(step.before != nullptr && step.data != nullptr,
                ValueError,
                "GradientShadow: the step has no captured state or no batch (the trainer's "
                "before_update sets both)");
  ATTNLAB_CHECK(&model == &model_,
                ValueError,
                "GradientShadow: observing another model than the one it was built for");
  const auto t0 = std::chrono::steady_clock::now();
  const std::vector<Var> params = model.parameters();
  std::vector<Tensor> approx_grads, exact_grads;
  for (const Var& p : params) approx_grads.push_back(p.grad());
  const std::shared_ptr<const SequenceRecommender::StepState> after = model.capture_step_state();

  // The step's gradients and state go back whatever happens (an exception in either pass too).
  auto put_back = [&] {
    for (std::size_t i = 0; i < params.size(); ++i) params[i].set_grad(approx_grads[i]);
    model.restore_step_state(*after);
  };
  AttentionOutputs approx_outputs, exact_outputs;
  double exact_loss = 0;
  const nn::FreezeTracesGuard keep_the_steps_traces;  // what the user inspects after the step
  try {
    {
      ag::NoGradGuard no_tape;
      counterpart_->run(
          false,
          *step.before,
          [&] { recommendation_loss(model, *step.data, step.loss_kind); },
          approx_outputs);
    }
    model.zero_grad();
    counterpart_->run(
        true,
        *step.before,
        [&] {
          Var loss = recommendation_loss(model, *step.data, step.loss_kind);
          exact_loss = loss.item();
          loss.backward();
        },
        exact_outputs);
    for (const Var& p : params) exact_grads.push_back(gradient_or_zeros(p));
  } catch (...) {
    put_back();
    throw;
  }
  put_back();

  for (std::size_t i = 0; i < params.size(); ++i) {
    if (!approx_grads[i].defined())
      approx_grads[i] = zeros(params[i].shape(), params[i].dtype());
  }
  records_.push_back(
      compare(step, exact_loss, approx_grads, exact_grads, approx_outputs, exact_outputs));
  records_.back().seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  if (on_record)
    on_record(records_.back());
}

ShadowRecord GradientShadow::compare(const TrainStep& step,
                                     double exact_loss,
                                     const std::vector<Tensor>& approx_grads,
                                     const std::vector<Tensor>& exact_grads,
                                     const AttentionOutputs& approx,
                                     const AttentionOutputs& exact) const {
  ShadowRecord r;
  r.step = step.step;
  r.epoch = step.epoch;
  r.batch = step.batch;
  r.loss = step.loss;
  r.exact_loss = exact_loss;
  r.loss_relative_error = std::fabs(step.loss - exact_loss) / std::fabs(exact_loss);
  std::vector<std::string> names;
  for (const auto& [name, p] : model_.named_parameters()) names.push_back(name);
  r.all = agreement("all", approx_grads, exact_grads);
  r.layers = grouped(names, approx_grads, exact_grads, layer_of);
  r.modules = grouped(names, approx_grads, exact_grads, module_of);
  for (std::size_t i = 0; i < names.size(); ++i)
    r.parameters.push_back(agreement(names[i], {approx_grads[i]}, {exact_grads[i]}));
  const std::vector<std::string> layers = counterpart_->attention_layers();
  for (std::size_t l = 0; l < layers.size(); ++l) {
    ATTNLAB_CHECK(approx.outputs.at(l).defined() && exact.outputs.at(l).defined(),
                  ValueError,
                  "GradientShadow: attention layer '",
                  layers[l],
                  "' recorded no output (is it called in forward?)");
    r.attention.push_back(agreement(layers[l], {approx.outputs[l]}, {exact.outputs[l]}));
    const Tensor& local =
        exact.approx_on_exact_inputs.empty() ? approx.outputs[l] : exact.approx_on_exact_inputs[l];
    r.attention_local.push_back(agreement(layers[l], {local}, {exact.outputs[l]}));
  }
  return r;
}

}  // namespace attnlab::rec
