// Gradients of an approximation, watched while a model trains (`attnlab train --shadow`).
//
// At every `every`-th training step, between the step's backward and its update, on the same
// batch, with the same parameters, the same negatives and the same random draws (the buffers and
// generators captured before the step's forward are put back), the loss and the gradients are
// computed a second time with exact attention in place of the approximation:
//   SASRec with any kind: each block's kernel replaced by the exact kind (softmax-fused), built as
//     the model built its own (head width, seed); with attention-weight dropout only when the
//     approximate kind has it too (FAVOR+ and cosFormer have none, so the shadow has none);
//   LISA: the same model in its exact attention mode, attending over the unquantized vectors
//     (docs/derivations/lisa_histograms.md, "The exact counterpart").
// Both run end to end (layer 2 of the exact model sees layer 1's exact output), and are compared:
//   gradients   per parameter, per module (its parameters together) and per layer ("blocks.0",
//               "item_embedding", ...) and all together: cos = <a, e> / (|a| |e|) and the
//               relative error |a - e| / |e| of approximate a against exact e;
//   attention   per attention layer, its output, end to end (the approximate model's against
//               the exact model's), and local (the approximation run on the exact model's inputs
//               to that layer against the exact output: the approximation's own error there);
//   loss        |L_a - L_e| / |L_e|.
// Afterwards the approximation, the gradients, the buffers and the generators are put back bit for
// bit: the trained model is identical to one trained without the shadow (a test checks it). Both
// passes run under nn::FreezeTracesGuard, so the kernels' inspection traces (last_trace()) still
// hold the training step's intermediates and their gradients.
// Cost per shadow step: one tape-free forward of the approximation (for its attention outputs)
// and one forward and backward of the exact model: about 1.3 steps every `every` steps for
// SASRec; LISA's exact mode is O(L^2) where its histograms are O(L), so more there.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "layers/recommender/seqrec_trainer.hpp"

namespace attnlab::rec {

struct ShadowOptions {
  std::string exact = "softmax-fused";  // the exact attention kind (SASRec models)
  int64_t every = 50;                   // steps between shadow steps (step % every == 0)
};

// How an approximate quantity `a` agrees with its exact counterpart `e`.
struct Agreement {
  std::string name;
  double cosine = 1;          // <a, e> / (|a| |e|); 1 when both are zero, 0 when one is
  double relative_error = 0;  // |a - e| / |e|; 0 when both are zero, inf when only e is
  double approx_norm = 0, exact_norm = 0;
};
// Of a and e as one vector each (the tensors of a and of e concatenated, in order; equal shapes).
Agreement agreement(const std::string& name,
                    const std::vector<Tensor>& approx,
                    const std::vector<Tensor>& exact);

struct ShadowRecord {
  int64_t step = 0, epoch = 0, batch = 0;
  double loss = 0, exact_loss = 0, loss_relative_error = 0;
  double seconds = 0;              // the shadow step's own time (replays, comparison), wall clock
  Agreement all;                   // every gradient as one vector
  std::vector<Agreement> layers;   // "blocks.0", "item_embedding", ... (first-seen order)
  std::vector<Agreement> modules;  // "blocks.0.attn.q", ... (a module's parameters together)
  std::vector<Agreement> parameters;       // named_parameters() order
  std::vector<Agreement> attention;        // per attention layer's output, end to end
  std::vector<Agreement> attention_local;  // the same layer on the exact model's inputs
};

// The attention outputs of one pass, one per attention layer (values, no tape).
struct AttentionOutputs {
  std::vector<Tensor> outputs;
  // Exact pass only: the approximation run on the same inputs as the exact layer (empty when the
  // inputs of the attention do not depend on it, as in LISA's one layer: there the approximate
  // pass's outputs are already on the same inputs).
  std::vector<Tensor> approx_on_exact_inputs;
};

// What stands in for the approximation during a shadow step. run() puts `before` back into the
// model (SequenceRecommender::restore_step_state: the same draws as the step), then calls `fn` (a
// forward, and for the exact model also a backward) with the model computing approximate or exact
// attention, recording every attention layer's output; it leaves the model holding its
// approximation again, even on an exception.
class ExactCounterpart {
 public:
  virtual ~ExactCounterpart() = default;
  virtual std::vector<std::string> attention_layers() const = 0;
  virtual void run(bool exact,
                   const SequenceRecommender::StepState& before,
                   const std::function<void()>& fn,
                   AttentionOutputs& recorded) = 0;
};
// SASRec: the kernels swapped for the exact kind; LISA: its exact attention mode. ValueError
// naming the model for any other model, or for an exact kind that is unknown.
std::unique_ptr<ExactCounterpart> make_exact_counterpart(SequenceRecommender& model,
                                                         const ShadowOptions& options);

class GradientShadow {
 public:
  // ValueError when every < 1 or the model has no counterpart.
  GradientShadow(SequenceRecommender& model, const ShadowOptions& options);
  // A user's own counterpart (their model, their notion of exact).
  GradientShadow(SequenceRecommender& model,
                 const ShadowOptions& options,
                 std::unique_ptr<ExactCounterpart> counterpart);

  // TrainCallbacks::before_update: a shadow step when step.step % every == 0.
  void observe(SequenceRecommender& model, const TrainStep& step);
  // The callbacks with before_update set (to this shadow; it must outlive the training).
  TrainCallbacks install(TrainCallbacks callbacks);

  std::function<void(const ShadowRecord&)> on_record;  // after every shadow step
  const std::vector<ShadowRecord>& records() const { return records_; }

 private:
  ShadowRecord compare(const TrainStep& step,
                       double exact_loss,
                       const std::vector<Tensor>& approx_grads,
                       const std::vector<Tensor>& exact_grads,
                       const AttentionOutputs& approx,
                       const AttentionOutputs& exact) const;
  SequenceRecommender& model_;
  ShadowOptions options_;
  std::unique_ptr<ExactCounterpart> counterpart_;
  std::vector<ShadowRecord> records_;
};

}  // namespace attnlab::rec
