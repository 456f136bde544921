// Training sequential recommenders the SASRec way:
//   - an epoch walks a random permutation of the users with at least two training items, in
//     batches; a user's input is its training items but the last (right-aligned, last max_length),
//     the targets are the same shifted by one, and each target position gets one negative drawn
//     uniformly from the items the user never trained on (SASRec's sampler);
//   - loss bce: binary cross-entropy of the positive and the negative logits, averaged over the
//     real positions (SASRec's loss); ce: full softmax cross-entropy over all items;
//   - Adam (beta2 = 0.98 as in SASRec), evaluation on the validation split every eval_every epochs,
//     early stopping after `patience` evaluations without a better validation NDCG@10, and the
//     test metrics of the best validation model at the end (an evaluation where some user has a
//     NaN or infinite score is never the best; if none qualifies, the last model is tested);
//   - a NaN or infinite training loss stops training with a ValueError naming the epoch and the
//     batch, checked before the update: the checkpoint and its best model stay as they were at the
//     last evaluation, and no further epoch is reported;
//   - every random draw (permutations, negatives, dropout) is counter-based and keyed by epoch, so
//     a checkpoint (model, optimizer, generators, best model, bookkeeping) resumes bit-identically;
//   - the trainer prints and writes nothing but its checkpoints: it reports through callbacks
//     (TrainCallbacks), and the caller draws a progress bar or writes a log (the CLI's are in
//     experiments/support/train_report.hpp).
#pragma once

#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "core/enum_names.hpp"
#include "layers/recommender/recommender.hpp"
#include "layers/recommender/seqrec_data.hpp"
#include "layers/recommender/seqrec_eval.hpp"

namespace attnlab::rec {

enum class LossKind {
  BCE,  // binary cross-entropy, one sampled negative per position (SASRec's loss)
  CE,   // softmax cross-entropy over all items
};
const EnumNames<LossKind>& enum_names(LossKind);  // "bce", "ce"

struct TrainConfig {
  int64_t epochs = 200;
  int64_t batch_size = 128;
  double lr = 1e-3;
  double beta1 = 0.9, beta2 = 0.98;
  double weight_decay = 0.0;
  double clip_norm = 0.0;  // 0: no gradient clipping
  LossKind loss = LossKind::BCE;
  int64_t eval_every = 20;  // epochs between validations (the last epoch is always evaluated)
  int64_t patience = 0;     // evaluations without improvement before stopping (0: never stop)
  int64_t eval_negatives = 100;
  std::optional<int64_t> eval_max_users;  // validate and test only the first users (unset: all)
  bool full_ranking = false;              // also compute full-ranking metrics
  uint64_t seed = 0;                      // data order, negatives, evaluation negatives
  std::string checkpoint;  // path of the checkpoint written at each evaluation ("" = none)
  // Continue from `checkpoint`. Its training settings must be these (lr, betas, weight decay,
  // clipping, batch size, seed, loss, validation negatives and users, model_settings: a
  // ValueError names each difference); epochs, eval_every, patience and full_ranking may change.
  bool resume = false;
  // What the model was built with, as (name, value as text) pairs (`attnlab train`: the kind,
  // width, depth, dropout, ... and the kind's options), saved with each checkpoint so that a
  // resume under other model settings is refused. Empty: not checked.
  std::vector<std::pair<std::string, std::string>> model_settings;
};

// "Adam(lr=0.001, betas=(0.9, 0.98), weight_decay=0), clip_norm=0, batch 128, 200 epochs, loss
// bce, seed 0": what a run's log should say it trained with.
std::string describe(const TrainConfig& c);

struct EpochLog {
  int64_t epoch = 0;
  double loss = 0, seconds = 0, sequences_per_second = 0;
  bool evaluated = false;
  RankingMetrics valid;
};

struct TrainResult {
  std::vector<EpochLog> epochs;  // this run's epochs (after a resume: only the new ones)
  int64_t best_epoch = 0;  // 0: no evaluation qualified (none ran, or all had non-finite scores)
  RankingMetrics best_valid, test;  // test: of the best validation model
  double mean_epoch_seconds = 0;
  bool stopped_early = false;
};

// Where training is, after each batch: for progress bars.
struct BatchReport {
  int64_t epoch = 0, epochs = 0;    // 1-based epoch of config.epochs
  int64_t batch = 0, batches = 0;   // 1-based batch of this epoch's
  double mean_loss = 0;             // over the epoch's batches so far
  double sequences_per_second = 0;  // so far in this epoch
};

// One training batch, exposed for tests and custom loops: inputs/positives/negatives [B, L].
struct TrainBatch {
  Tensor input, positive, negative;
};

// A step between its backward and its update, as before_update sees it: the step's gradients are
// in the parameters' grad(), and the model's buffers and generators as they were before the
// step's forward let an observer replay the step with the same random draws (GradientShadow does).
struct TrainStep {
  int64_t epoch = 0, batch = 0;  // 1-based
  int64_t step = 0;              // 1-based over the run, (epoch - 1) * batches + batch
  double loss = 0;
  LossKind loss_kind = LossKind::BCE;
  const TrainBatch* data = nullptr;
  std::shared_ptr<const SequenceRecommender::StepState> before;
};

// How the trainer reports; every member may be empty. Called in this order:
//   on_start(resumed_epoch)      once, after a --resume restored the checkpoint (0 without);
//   before_update(model, step)   every batch, between its backward and its update (before any
//                                clipping); an observer must leave the model's parameters,
//                                gradients, buffers and generators as it found them;
//   on_batch(report)             after every batch's update;
//   on_evaluation(epoch_log)     after a validation (epoch_log.valid holds its metrics);
//   on_epoch(epoch_log)          every epoch, BEFORE its checkpoint is written: a log written
//                                here never lags the checkpoint it resumes from;
//   after_epoch(epoch_log)       every epoch, after its checkpoint (live tables, tests).
struct TrainCallbacks {
  std::function<void(int64_t resumed_epoch)> on_start;
  std::function<void(SequenceRecommender&, const TrainStep&)> before_update;
  std::function<void(const BatchReport&)> on_batch;
  std::function<void(const EpochLog&)> on_evaluation;
  std::function<void(const EpochLog&)> on_epoch;
  std::function<void(const EpochLog&)> after_epoch;
};

// Trains `model` on data.train and returns the log and the final test metrics.
TrainResult train_recommender(SequenceRecommender& model,
                              const SplitDataset& data,
                              const TrainConfig& config,
                              const TrainCallbacks& callbacks = {});
// The same with only an after_epoch callback.
TrainResult train_recommender(SequenceRecommender& model,
                              const SplitDataset& data,
                              const TrainConfig& config,
                              const std::function<void(const EpochLog&)>& after_epoch);

// The random key of the evaluation negatives after epoch `epoch` (-1: the final test), so that
// another model or a baseline can be evaluated on exactly the same candidates.
RngKey evaluation_key(uint64_t seed, int64_t epoch);

TrainBatch make_batch(const SplitDataset& data,
                      const std::vector<int64_t>& users,
                      int64_t maxlen,
                      RngKey negatives_key);

// The loss of one batch (see TrainConfig::loss).
Var recommendation_loss(SequenceRecommender& model, const TrainBatch& batch, LossKind loss);

// Items ranked by training frequency, as a SequenceRecommender (the sanity baseline every model
// must beat): its "hidden" state is 1 and an item's vector is its log count.
class PopularityRecommender : public SequenceRecommender {
 public:
  PopularityRecommender(const SplitDataset& data, int64_t max_length);
  Var hidden(const Tensor& input_ids) override;
  Var item_vectors(const Tensor& item_ids) override;
  int64_t num_items() const override { return num_items_; }
  int64_t max_length() const override { return max_length_; }

 private:
  Tensor log_counts_;  // [num_items + 1, 1]
  int64_t num_items_, max_length_;
};

}  // namespace attnlab::rec
