// The interface of a sequential recommender, shared by SASRec (with any attention kind) and the
// LISA model, so that training and evaluation code works with both.
#pragma once

#include "layers/nn/module.hpp"

namespace attnlab::rec {

// The recommender is built from the layers (attnlab::nn): their names are used unqualified
// in it. Nothing in attnlab::nn may use attnlab::rec (cmake/attnlab_layers.cmake).
using namespace nn;

class SequenceRecommender : public Module {
 public:
  using Module::Module;
  // input_ids: [B, L] item ids, right-aligned with 0 as left padding (SASRec's layout).
  // Returns the hidden state at every position, [B, L, D].
  virtual Var hidden(const Tensor& input_ids) = 0;
  // The vectors candidate items are scored against (SASRec: the shared input embedding; LISA:
  // the variant's target representation), for int64 ids of any shape -> ids.shape + [D].
  virtual Var item_vectors(const Tensor& item_ids) = 0;
  virtual int64_t num_items() const = 0;
  // A term the model adds to the training loss, computed by the last hidden() call (LISA-Soft's
  // embedding regulariser); undefined: none.
  virtual Var auxiliary_loss() const { return Var(); }
  virtual int64_t max_length() const = 0;

  // For replaying a training step (GradientShadow): everything a training forward changes besides
  // the parameters, captured before and put back. The default is the buffers and the registered
  // generators (capture_forward_state); a model with more state extends StepState (LISA: its
  // quantizer's noise generator, temperature steps and codeword usage).
  struct StepState {
    virtual ~StepState() = default;
    ForwardState forward;
  };
  virtual std::shared_ptr<const StepState> capture_step_state() const;
  virtual void restore_step_state(const StepState& state);

  // Scores: dot products of hidden [..., D] with the vectors of item_ids [..., C] -> [..., C].
  Var scores(const Var& hidden, const Tensor& item_ids);

 protected:
  // The check every hidden() starts with: int64 ids [batch, length <= max_length()]; the
  // ShapeError names `model`.
  void check_input_ids(const Tensor& ids, const char* model) const;
};

}  // namespace attnlab::rec
