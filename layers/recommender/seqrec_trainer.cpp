#include "layers/recommender/seqrec_trainer.hpp"

#include <chrono>
#include <cmath>
#include <cstdio>
#include <sstream>
#include <unordered_set>

#include "autograd/engine.hpp"
#include "autograd/ops.hpp"
#include "core/core.hpp"
#include "core/option_binder.hpp"
#include "layers/nn/losses.hpp"
#include "layers/optim/checkpoint.hpp"
#include "layers/optim/optim.hpp"

namespace attnlab::rec {

std::string describe(const TrainConfig& c) {
  std::ostringstream os;
  os << "Adam(lr=" << c.lr << ", betas=(" << c.beta1 << ", " << c.beta2
     << "), weight_decay=" << c.weight_decay << "), clip_norm=" << c.clip_norm << ", batch "
     << c.batch_size << ", " << c.epochs << " epochs, loss " << enum_names(LossKind{}).name(c.loss)
     << ", seed " << c.seed;
  return os.str();
}

namespace {

// Counter-based keys: everything an epoch draws depends only on (seed, epoch), so a resumed run
// repeats it exactly without saving any generator state.
RngKey permutation_key(uint64_t seed, int64_t epoch) {
  return {seed * 0x9E3779B97F4A7C15ull + 11, static_cast<uint64_t>(epoch)};
}
RngKey negatives_key(uint64_t seed, int64_t epoch, int64_t batch) {
  return {seed * 0x9E3779B97F4A7C15ull + 12, (static_cast<uint64_t>(epoch) << 32) + batch};
}

std::vector<int64_t> shuffled(std::vector<int64_t> users, RngKey key) {
  for (int64_t i = static_cast<int64_t>(users.size()) - 1; i > 0; --i) {
    std::swap(users[i], users[uniform_int(key, static_cast<uint64_t>(i), 0, i + 1)]);
  }
  return users;
}

NamedTensors clone_state(const NamedTensors& s) {
  NamedTensors out;
  for (const auto& [n, t] : s) out.emplace_back(n, t.clone());
  return out;
}

// Where training stopped and what is left on disk, for the errors that stop it.
struct StopPoint {
  int64_t epoch, batch, batches;
  const TrainConfig& config;
  int64_t checkpoint_epoch;  // of the checkpoint on disk (0: none)
};

[[noreturn]] void stop_training(const std::string& what, const StopPoint& at) {
  const std::string& ckpt = at.config.checkpoint;
  const std::string kept = ckpt.empty() ? std::string("no checkpoint was requested")
                           : at.checkpoint_epoch > 0
                               ? "the checkpoint '" + ckpt + "' (epoch " +
                                     std::to_string(at.checkpoint_epoch) + ") is as it was"
                               : "no checkpoint was written";
  throw ValueError(::attnlab::detail::concat("train_recommender: ",
                                             what,
                                             "; stopped, ",
                                             kept,
                                             " (a lower learning rate or gradient clipping may "
                                             "help)"));
}

// A NaN or infinite loss would be backpropagated into the parameters, and every later checkpoint
// would hold them: checked before the update.
void check_loss_is_finite(double loss, const StopPoint& at) {
  if (std::isfinite(loss))
    return;
  const char* value = std::isnan(loss) ? "NaN" : loss > 0 ? "+inf" : "-inf";
  stop_training(::attnlab::detail::concat("the training loss is ",
                                          value,
                                          " at epoch ",
                                          at.epoch,
                                          ", batch ",
                                          at.batch,
                                          " of ",
                                          at.batches,
                                          " (before its update)"),
                at);
}

// A finite loss can still have a non-finite gradient (an overflow in backward), and its update
// non-finite parameters: checked after every update, so that no evaluation (which would keep the
// first one as the best model) or checkpoint sees them.
void check_parameters_are_finite(const optim::Optimizer& opt, const StopPoint& at) {
  const std::vector<ag::Var> params = opt.params();
  for (std::size_t i = 0; i < params.size(); ++i) {
    if (!has_nonfinite(params[i].value()))
      continue;
    stop_training(::attnlab::detail::concat("the update of epoch ",
                                            at.epoch,
                                            ", batch ",
                                            at.batch,
                                            " of ",
                                            at.batches,
                                            " made parameter '",
                                            opt.param_names()[i],
                                            "' NaN or infinite (from a finite loss)"),
                  at);
  }
}

}  // namespace

TrainBatch make_batch(const SplitDataset& data,
                      const std::vector<int64_t>& users,
                      int64_t maxlen,
                      RngKey key) {
  const int64_t b = static_cast<int64_t>(users.size()), v = data.num_items;
  TrainBatch batch{Tensor::empty({b, maxlen}, kInt64),
                   Tensor::empty({b, maxlen}, kInt64),
                   zeros({b, maxlen}, kInt64)};
  int64_t* in = batch.input.data<int64_t>();
  int64_t* pos = batch.positive.data<int64_t>();
  int64_t* neg = batch.negative.data<int64_t>();
  for (int64_t r = 0; r < b; ++r) {
    const auto& seq = data.train[users[r]];
    ATTNLAB_CHECK(seq.size() >= 2,
                  ValueError,
                  "make_batch: user ",
                  users[r],
                  " has fewer than two training items");
    const std::vector<int64_t> inputs(seq.begin(), seq.end() - 1),
        targets(seq.begin() + 1, seq.end());
    right_align(inputs, maxlen, in + r * maxlen);
    right_align(targets, maxlen, pos + r * maxlen);
    const std::unordered_set<int64_t> seen(seq.begin(), seq.end());
    ATTNLAB_CHECK(static_cast<int64_t>(seen.size()) < v,
                  ValueError,
                  "make_batch: user ",
                  users[r],
                  " has interacted with every item: no negative exists");
    uint64_t draw = static_cast<uint64_t>(users[r]) << 24;
    for (int64_t j = 0; j < maxlen; ++j) {
      if (pos[r * maxlen + j] == 0)
        continue;
      int64_t t;
      do {
        t = uniform_int(key, draw++, 1, v + 1);
      } while (seen.count(t));
      neg[r * maxlen + j] = t;
    }
  }
  return batch;
}

Var recommendation_loss(SequenceRecommender& model, const TrainBatch& batch, LossKind loss) {
  const int64_t b = batch.input.size(0), l = batch.input.size(1);
  Var h = model.hidden(batch.input);  // [B, L, D]
  if (loss == LossKind::BCE) {
    Tensor weight = gt(batch.positive.to(h.dtype()), 0.0).reshape({b, l, 1});
    Var pos = model.scores(h, batch.positive.reshape({b, l, 1}));
    Var neg = model.scores(h, batch.negative.reshape({b, l, 1}));
    Var total = bce_with_logits(pos, ones({b, l, 1}, h.dtype()), weight) +
                bce_with_logits(neg, zeros({b, l, 1}, h.dtype()), weight);
    const Var aux = model.auxiliary_loss();
    return aux.defined() ? total + aux : total;
  }
  if (loss == LossKind::CE) {
    const int64_t v = model.num_items(), d = h.shape()[2];
    Var all = model.item_vectors(arange(1.0, static_cast<double>(v + 1), 1.0, kInt64));  // [V, D]
    Var logits = ag::matmul(ag::reshape(h, Shape{b * l, d}), all, false, true);          // [B L, V]
    Tensor t = Tensor::empty({b * l}, kInt64);
    const int64_t* p = batch.positive.data<int64_t>();
    for (int64_t i = 0; i < b * l; ++i) t.data<int64_t>()[i] = p[i] > 0 ? p[i] - 1 : -100;
    Var total = softmax_cross_entropy(logits, t, -100);
    const Var aux = model.auxiliary_loss();
    return aux.defined() ? total + aux : total;
  }
  throw ValueError("recommendation_loss: unknown loss kind " +
                   std::to_string(static_cast<int>(loss)) +
                   " (known: " + enum_names(LossKind{}).known() + ")");
}

const EnumNames<LossKind>& enum_names(LossKind) {
  static const EnumNames<LossKind> names{
      {LossKind::BCE, "bce", "binary cross-entropy, one negative per position"},
      {LossKind::CE, "ce", "softmax cross-entropy over all items"}};
  return names;
}

namespace {

void check_config(const TrainConfig& c) {
  ATTNLAB_CHECK(c.epochs >= 0 && c.batch_size > 0 && c.eval_every > 0 && c.patience >= 0,
                ValueError,
                "train_recommender: epochs >= 0, batch_size > 0, eval_every > 0 and "
                "patience >= 0 are required");
  ATTNLAB_CHECK(enum_names(LossKind{}).name(c.loss) != std::string("?"),
                ValueError,
                "train_recommender: unknown loss kind ",
                static_cast<int>(c.loss),
                " (known: ",
                enum_names(LossKind{}).known(),
                ")");
  ATTNLAB_CHECK(!c.resume || !c.checkpoint.empty(),
                ValueError,
                "train_recommender: resume needs a checkpoint path");
  // Now, not at the first validation (--eval-every epochs of work later).
  if (!c.checkpoint.empty())
    check_writable_path(c.checkpoint, "train_recommender: checkpoint");
}

// The users that give a training example: an input item and a next item to predict.
std::vector<int64_t> eligible_users(const SplitDataset& data) {
  std::vector<int64_t> users;
  for (int64_t u = 0; u < static_cast<int64_t>(data.train.size()); ++u) {
    if (data.train[u].size() >= 2)
      users.push_back(u);
  }
  ATTNLAB_CHECK(!users.empty(), ValueError, "train_recommender: no user has two training items");
  return users;
}

// What the run carries from epoch to epoch; all but the timing is saved with each checkpoint.
struct RunState {
  TrainResult result;            // the epochs so far and the best validation
  int64_t start_epoch = 0;       // the checkpoint's epoch when resumed
  double best_ndcg = -1;         // -1: no validation qualified yet
  int64_t bad_evals = 0;         // validations since the best one
  NamedTensors best_state;       // the best model's parameters (empty: none yet)
  int64_t checkpoint_epoch = 0;  // the epoch of the checkpoint on disk (0: none)
  double total_seconds = 0;
};

// The settings a resumed run must share with the run that wrote its checkpoint: those that shape
// the trajectory (the optimizer, the batches, the random draws, the loss, the model's settings)
// and the validations that choose the best model. The epochs, the validation interval, the
// patience and the final full ranking may change (to extend a run). Saved as the checkpoint's
// "setting.*" scalars.
optim::NamedScalars training_settings(const TrainConfig& c) {
  return {{"setting.lr", c.lr},
          {"setting.beta1", c.beta1},
          {"setting.beta2", c.beta2},
          {"setting.weight_decay", c.weight_decay},
          {"setting.clip_norm", c.clip_norm},
          {"setting.batch_size", static_cast<double>(c.batch_size)},
          {"setting.loss", static_cast<double>(c.loss)},
          {"setting.seed_high", static_cast<double>(c.seed >> 32)},  // exact as doubles
          {"setting.seed_low", static_cast<double>(c.seed & 0xffffffffu)},
          {"setting.eval_negatives", static_cast<double>(c.eval_negatives)},
          {"setting.eval_max_users", static_cast<double>(c.eval_max_users.value_or(-1))}};
}

// A model setting as a number: its value when the text is one ("0.2", "256"), else a 32-bit
// FNV-1a hash of the text ("chi", "true"), exact in a double, under "setting.model_text.".
std::pair<std::string, double> model_setting(const std::string& name, const std::string& text) {
  const std::optional<double> value = parse_number(text);
  if (value && !std::isnan(*value))  // a NaN would never equal itself
    return {"setting.model." + name, *value};
  uint32_t hash = 2166136261u;
  for (unsigned char ch : text) hash = (hash ^ ch) * 16777619u;
  return {"setting.model_text." + name, static_cast<double>(hash)};
}

optim::NamedScalars resume_settings(const TrainConfig& c) {
  optim::NamedScalars settings = training_settings(c);
  for (const auto& [name, text] : c.model_settings) settings.push_back(model_setting(name, text));
  return settings;
}

// A resume under other settings would continue another run's trajectory under this run's name
// (and Adam would keep the checkpoint's learning rate whatever --lr says): refused, naming each
// difference. Checkpoints written before these settings were saved are not checked.
void check_resume_settings(const TrainConfig& c, const optim::NamedScalars& saved) {
  auto find = [&](const std::string& name) -> std::optional<double> {
    for (const auto& [saved_name, value] : saved) {
      if (saved_name == name)
        return value;
    }
    return std::nullopt;
  };
  std::string differences;
  auto differ = [&](const std::string& name, const auto& there, const auto& here) {
    differences += ::attnlab::detail::concat(
        differences.empty() ? "" : ", ", name, " ", there, " there, ", here, " here");
  };
  for (const auto& [name, value] : resume_settings(c)) {
    const std::optional<double> there = find(name);
    if (!there || *there == value || name.rfind("setting.seed_", 0) == 0)
      continue;
    if (name.rfind("setting.model_text.", 0) == 0)  // a hash: no value to show
      differences += (differences.empty() ? "model." : ", model.") + name.substr(19) + " differs";
    else
      differ(name.substr(8), *there, value);
  }
  const std::optional<double> high = find("setting.seed_high"), low = find("setting.seed_low");
  if (high && low) {
    const uint64_t seed = (static_cast<uint64_t>(*high) << 32) | static_cast<uint64_t>(*low);
    if (seed != c.seed)
      differ("seed", seed, c.seed);
  }
  ATTNLAB_CHECK(differences.empty(),
                ValueError,
                "train_recommender: cannot resume from '",
                c.checkpoint,
                "': it was trained with other settings (",
                differences,
                "); resume with the same settings, or start a new run without resume");
}

// The run's state (its best validation so far) and its settings.
optim::NamedScalars checkpoint_scalars(const TrainConfig& c, const RunState& s) {
  optim::NamedScalars scalars{{"best_epoch", static_cast<double>(s.result.best_epoch)},
                              {"best_ndcg10", s.best_ndcg},
                              {"best_hr10", s.result.best_valid.hr10},
                              {"best_tie_rate", s.result.best_valid.tie_rate},
                              {"bad_evals", static_cast<double>(s.bad_evals)}};
  for (const auto& setting : resume_settings(c)) scalars.push_back(setting);
  return scalars;
}

// --resume: the model and optimizer from the checkpoint, the best-model bookkeeping from its
// scalars, and the best model from its ".best.npz" companion.
void restore_from_checkpoint(const TrainConfig& c,
                             SequenceRecommender& model,
                             optim::Optimizer& opt,
                             RunState& s) {
  const NamedTensors entries = optim::read_checkpoint(c.checkpoint);
  check_resume_settings(c, optim::read_scalars(entries));  // before anything is restored
  optim::NamedScalars scalars;
  s.start_epoch = optim::load_checkpoint_entries(entries, c.checkpoint, model, opt, {}, &scalars);
  for (const auto& [name, value] : scalars) {
    if (name == "best_epoch")
      s.result.best_epoch = static_cast<int64_t>(value);
    if (name == "best_ndcg10")
      s.best_ndcg = value;
    if (name == "best_hr10")
      s.result.best_valid.hr10 = value;
    if (name == "best_tie_rate")
      s.result.best_valid.tie_rate = value;
    if (name == "bad_evals")
      s.bad_evals = static_cast<int64_t>(value);
  }
  s.result.best_valid.ndcg10 = std::max(0.0, s.best_ndcg);
  if (s.result.best_epoch > 0)
    s.best_state = load_npz(c.checkpoint + ".best.npz");
}

// Temporary files of a run killed (SIGKILL) in the middle of a save.
void remove_files_of_interrupted_saves(const TrainConfig& c) {
  if (!c.checkpoint.empty()) {
    remove_stale_temp_files(c.checkpoint);
    remove_stale_temp_files(c.checkpoint + ".best.npz");
  }
}

// One optimizer step on one batch; stops training before a non-finite loss reaches the
// parameters and after an update that made them non-finite. Returns the batch's loss.
double train_step(SequenceRecommender& model,
                  optim::Optimizer& opt,
                  const TrainBatch& batch,
                  const TrainConfig& c,
                  const StopPoint& at,
                  const TrainCallbacks& report) {
  TrainStep step;
  if (report.before_update)
    step.before = model.capture_step_state();
  opt.zero_grad();
  Var loss = recommendation_loss(model, batch, c.loss);
  const double loss_value = loss.item();
  check_loss_is_finite(loss_value, at);
  loss.backward();
  if (report.before_update) {
    step.epoch = at.epoch;
    step.batch = at.batch;
    step.step = (at.epoch - 1) * at.batches + at.batch;
    step.loss = loss_value;
    step.loss_kind = c.loss;
    step.data = &batch;
    report.before_update(model, step);
  }
  if (c.clip_norm > 0)
    optim::clip_grad_norm(opt.params(), c.clip_norm);
  opt.step();
  check_parameters_are_finite(opt, at);
  return loss_value;
}

// One pass over the users in a shuffled order, batch by batch: the epoch's mean loss and speed.
EpochLog run_epoch(SequenceRecommender& model,
                   optim::Optimizer& opt,
                   const SplitDataset& data,
                   const std::vector<int64_t>& users,
                   const TrainConfig& c,
                   int64_t epoch,
                   int64_t checkpoint_epoch,
                   const TrainCallbacks& report) {
  const int64_t maxlen = model.max_length();
  const int64_t batches = (static_cast<int64_t>(users.size()) + c.batch_size - 1) / c.batch_size;
  model.train();
  const auto t0 = std::chrono::steady_clock::now();
  const std::vector<int64_t> order = shuffled(users, permutation_key(c.seed, epoch));
  double loss_sum = 0;
  for (int64_t bi = 0; bi < batches; ++bi) {
    const auto first = order.begin() + bi * c.batch_size;
    const std::vector<int64_t> chunk(first,
                                     first + std::min<int64_t>(c.batch_size, order.end() - first));
    const TrainBatch batch = make_batch(data, chunk, maxlen, negatives_key(c.seed, epoch, bi));
    const StopPoint at{epoch, bi + 1, batches, c, checkpoint_epoch};
    loss_sum += train_step(model, opt, batch, c, at, report);
    if (report.on_batch) {
      const double sec =
          std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
      const auto done = std::min<int64_t>((bi + 1) * c.batch_size, users.size());
      report.on_batch({epoch,
                       c.epochs,
                       bi + 1,
                       batches,
                       loss_sum / static_cast<double>(bi + 1),
                       static_cast<double>(done) / sec});
    }
  }
  EpochLog e;
  e.epoch = epoch;
  e.loss = loss_sum / static_cast<double>(batches);
  e.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  e.sequences_per_second = static_cast<double>(users.size()) / e.seconds;
  return e;
}

// Every eval_every epochs and after the last: the validation metrics into `e`, and the model
// kept (in memory and, with a checkpoint path, on disk) when it is the best so far.
void maybe_evaluate(SequenceRecommender& model,
                    const SplitDataset& data,
                    const TrainConfig& c,
                    EpochLog& e,
                    RunState& s) {
  if (e.epoch % c.eval_every != 0 && e.epoch != c.epochs)
    return;
  EvalOptions eo;
  eo.negatives = c.eval_negatives;
  eo.max_users = c.eval_max_users;
  eo.key = evaluation_key(c.seed, e.epoch);
  e.valid = evaluate(model, data, eo);
  e.evaluated = true;
  // A model that scores NaN or inf for some user is broken, whatever its metrics (and the
  // first evaluation would otherwise always be the best).
  if (e.valid.non_finite_users == 0 && e.valid.ndcg10 > s.best_ndcg) {
    s.best_ndcg = e.valid.ndcg10;
    s.result.best_epoch = e.epoch;
    s.result.best_valid = e.valid;
    s.best_state = clone_state(model.state_dict());
    s.bad_evals = 0;
    if (!c.checkpoint.empty())
      save_npz(c.checkpoint + ".best.npz", s.best_state);
  } else {
    ++s.bad_evals;
  }
}

// After each validation, with a checkpoint path: the model, the optimizer and the best-model
// bookkeeping that restore_from_checkpoint reads back.
void save_checkpoint_state(SequenceRecommender& model,
                           const optim::Optimizer& opt,
                           const TrainConfig& c,
                           const EpochLog& e,
                           RunState& s) {
  if (!e.evaluated || c.checkpoint.empty())
    return;
  optim::save_checkpoint(c.checkpoint, model, opt, e.epoch, {}, checkpoint_scalars(c, s));
  s.checkpoint_epoch = e.epoch;
}

// The test metrics of the best validated model (of the last one when none qualified).
RankingMetrics final_test(SequenceRecommender& model,
                          const SplitDataset& data,
                          const TrainConfig& c,
                          const NamedTensors& best_state) {
  if (!best_state.empty())
    model.load_state_dict(best_state);
  EvalOptions to;
  to.test = true;
  to.negatives = c.eval_negatives;
  to.max_users = c.eval_max_users;
  to.full_ranking = c.full_ranking;
  to.key = evaluation_key(c.seed, -1);
  return evaluate(model, data, to);
}

}  // namespace

// check -> restore -> (train an epoch, validate, log, checkpoint)* -> test.
TrainResult train_recommender(SequenceRecommender& model,
                              const SplitDataset& data,
                              const TrainConfig& c,
                              const TrainCallbacks& report) {
  check_config(c);
  const std::vector<int64_t> users = eligible_users(data);
  optim::Adam opt(model.named_parameters(), c.lr, c.beta1, c.beta2, 1e-8, c.weight_decay);
  RunState s;
  if (c.resume)
    restore_from_checkpoint(c, model, opt, s);
  remove_files_of_interrupted_saves(c);
  if (report.on_start)
    report.on_start(s.start_epoch);
  s.checkpoint_epoch = s.start_epoch;
  for (int64_t epoch = s.start_epoch + 1; epoch <= c.epochs; ++epoch) {
    EpochLog e = run_epoch(model, opt, data, users, c, epoch, s.checkpoint_epoch, report);
    s.total_seconds += e.seconds;
    maybe_evaluate(model, data, c, e, s);
    if (e.evaluated && report.on_evaluation)
      report.on_evaluation(e);
    // The epoch's report before its checkpoint: a log written there never lags it.
    if (report.on_epoch)
      report.on_epoch(e);
    save_checkpoint_state(model, opt, c, e, s);
    s.result.epochs.push_back(e);
    if (report.after_epoch)
      report.after_epoch(e);
    if (c.patience > 0 && s.bad_evals >= c.patience) {
      s.result.stopped_early = true;
      break;
    }
  }
  s.result.test = final_test(model, data, c, s.best_state);
  s.result.mean_epoch_seconds =
      s.result.epochs.empty() ? 0 : s.total_seconds / static_cast<double>(s.result.epochs.size());
  return s.result;
}

TrainResult train_recommender(SequenceRecommender& model,
                              const SplitDataset& data,
                              const TrainConfig& config,
                              const std::function<void(const EpochLog&)>& after_epoch) {
  TrainCallbacks report;
  report.after_epoch = after_epoch;
  return train_recommender(model, data, config, report);
}

PopularityRecommender::PopularityRecommender(const SplitDataset& data, int64_t max_length)
    : SequenceRecommender("PopularityRecommender"),
      num_items_(data.num_items),
      max_length_(max_length) {
  log_counts_ = zeros({data.num_items + 1, 1}, kFloat32);
  std::vector<double> count(data.num_items + 1, 0);
  for (const auto& seq : data.train) {
    for (int64_t item : seq) count[item] += 1;
  }
  for (int64_t i = 0; i <= data.num_items; ++i) log_counts_.set({i, 0}, std::log1p(count[i]));
}

Var PopularityRecommender::hidden(const Tensor& input_ids) {
  return ag::constant(ones({input_ids.size(0), input_ids.size(1), 1}));
}

Var PopularityRecommender::item_vectors(const Tensor& item_ids) {
  return ag::constant(index_select(log_counts_, 0, item_ids));
}

RngKey evaluation_key(uint64_t seed, int64_t epoch) {
  return {seed * 0x9E3779B97F4A7C15ull + 13, static_cast<uint64_t>(epoch)};
}

}  // namespace attnlab::rec
