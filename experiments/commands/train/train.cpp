// `attnlab train`: a sequential recommender (SASRec with any attention kind) on MovieLens-1M
// (SASRec format or raw ratings.dat) or on the built-in synthetic data, with the SASRec protocol.
#include "experiments/commands/train/train.hpp"

#include <cmath>
#include <cstdio>
#include <fstream>
#include <iostream>
#include <string>
#include <tuple>
#include <utility>
#include <vector>

#include "core/core.hpp"
#include "core/option_binder.hpp"
#include "experiments/support/bench.hpp"
#include "experiments/support/cli.hpp"
#include "experiments/support/kind_flags.hpp"
#include "experiments/support/models.hpp"
#include "experiments/support/shadow_log.hpp"
#include "experiments/support/table.hpp"
#include "experiments/support/train_report.hpp"
#include "layers/attention/attention_registry.hpp"
#include "layers/recommender/model_registry.hpp"
#include "layers/recommender/seqrec_trainer.hpp"

namespace attnlab {
namespace {

rec::SyntheticConfig synthetic_config(const cli::Parser& p) {
  rec::SyntheticConfig sc;
  sc.users = p.get<int64_t>("synthetic-users");
  sc.items = p.get<int64_t>("synthetic-items");
  sc.max_length = p.get<int64_t>("synthetic-max-length");
  sc.min_length = std::min<int64_t>(20, sc.max_length);
  sc.seed = p.common().seed + 1;
  return sc;
}

// A model-level flag the chosen kind never reads is an error, not silently ignored (a
// "--blocks 3" LISA run would otherwise train one layer and be reported as three). The kinds' own
// options are checked by KindFlags.
void refuse_layer_flags(const cli::Parser& p) {
  const std::string kind = p.get<std::string>("attention");
  if (rec::model_kind(kind).stacked)
    return;
  auto refuse = [&](const char* flag, const char* why) {
    throw cli::UsageError(std::string("--") + flag + ": does not apply to --attention " + kind +
                          " (" + why + ")");
  };
  if (p.given("blocks") && p.get<int64_t>("blocks") != 1)
    refuse("blocks", "it has one layer");
  if (p.given("heads") && p.get<int64_t>("heads") != 1)
    refuse("heads", "it has no heads to choose");
  if (p.given("norm"))
    refuse("norm", "its layer layout is fixed");
}

// A diverged model scores NaN or ±inf: such scores never win (seqrec_eval.hpp), and are named.
std::string non_finite_note(const rec::RankingMetrics& m) {
  if (m.non_finite_users == 0)
    return "";
  return "non-finite scores for " + std::to_string(m.non_finite_users) + " of " +
         std::to_string(m.users) + " users";
}

// --adam-betas "b1,b2": two numbers in [0, 1).
std::pair<double, double> adam_betas(const cli::Parser& p) {
  const std::string text = p.get<std::string>("adam-betas");
  std::vector<double> betas;
  for (const std::string& item : cli::split_list(text, "--adam-betas")) {
    const std::optional<double> beta = parse_number(item);
    if (!beta || !(*beta >= 0 && *beta < 1))
      throw cli::UsageError("--adam-betas: expected two numbers in [0, 1), got '" + text + "'");
    betas.push_back(*beta);
  }
  if (betas.size() != 2)
    throw cli::UsageError("--adam-betas: expected two numbers in [0, 1), got '" + text + "'");
  return {betas[0], betas[1]};
}

// The flags' values, checked before any data is read.
void check_flags(const cli::Parser& p) {
  auto positive = [&](const char* name) {
    if (p.get<int64_t>(name) <= 0) {
      throw cli::UsageError(std::string("--") + name + ": must be positive, got " +
                            std::to_string(p.get<int64_t>(name)));
    }
  };
  for (const char* n : {"synthetic-users",
                        "synthetic-items",
                        "synthetic-max-length",
                        "dim",
                        "heads",
                        "maxlen",
                        "batch",
                        "eval-every"}) {
    positive(n);
  }
  for (const char* n : {"blocks", "epochs", "patience"}) {
    if (p.get<int64_t>(n) < 0) {
      throw cli::UsageError(std::string("--") + n + ": must be >= 0, got " +
                            std::to_string(p.get<int64_t>(n)));
    }
  }
  const double dropout = p.get<double>("dropout");
  if (!(dropout >= 0 && dropout < 1))
    throw cli::UsageError("--dropout: must be in [0, 1)");
  if (!(p.get<double>("lr") > 0))
    throw cli::UsageError("--lr: must be positive");
  adam_betas(p);
  for (const char* n : {"weight-decay", "clip-norm"}) {
    const double v = p.get<double>(n);
    if (!(v >= 0 && std::isfinite(v)))
      throw cli::UsageError(std::string("--") + n + ": must be >= 0, got " + std::to_string(v));
  }
  if (p.get<int64_t>("eval-users") < -1)
    throw cli::UsageError("--eval-users: must be >= 0, or -1 for all users");
  if (p.has("resume") && p.get<std::string>("checkpoint").empty()) {
    throw cli::UsageError("--resume needs --checkpoint FILE");
  }
  if (rec::find_model_kind(p.get<std::string>("attention")) == nullptr) {
    throw cli::UsageError("--attention: model kind '" + p.get<std::string>("attention") +
                          "' is unknown (known: " + rec::model_kind_names() + ")");
  }
  try {
    enum_names(rec::LossKind{}).parse(p.get<std::string>("loss"), "--loss");
    enum_names(nn::NormPlacement{}).parse(p.get<std::string>("norm"), "--norm");
  } catch (const ValueError& e) {
    throw cli::UsageError(e.what());
  }
  refuse_layer_flags(p);
  // Multi-head attention splits the width into equal heads (checked here, not when the model is
  // built after the data are loaded).
  if (rec::model_kind(p.get<std::string>("attention")).stacked &&
      p.get<int64_t>("dim") % p.get<int64_t>("heads") != 0) {
    throw cli::UsageError("--heads: must divide --dim (" + std::to_string(p.get<int64_t>("dim")) +
                          "), got " + std::to_string(p.get<int64_t>("heads")));
  }
}

// The model's options from the flags (all but the item count, which the data gives), checked.
cli::ModelOptions model_options(const cli::Parser& p, const cli::KindFlags& kind_flags) {
  cli::ModelOptions mc;
  mc.kind = p.get<std::string>("attention");
  mc.max_length = p.get<int64_t>("maxlen");
  mc.dim = p.get<int64_t>("dim");
  mc.blocks = p.get<int64_t>("blocks");
  mc.heads = p.get<int64_t>("heads");
  mc.dropout = p.get<double>("dropout");
  mc.norm = enum_names(nn::NormPlacement{}).parse(p.get<std::string>("norm"), "--norm");
  mc.kind_options = kind_flags.values(p, mc.kind, rec::model_kind(mc.kind).options, "--attention");
  mc.seed = p.common().seed;
  return mc;
}

// --validate-only: everything a run checks before training, without reading the data or training.
// The model is built to check its shapes (heads dividing dim, ...), which do not depend on the
// item count, so one item stands in for the data's.
int validate_only(const cli::Parser& p, cli::ModelOptions mc) {
  const std::string data = p.get<std::string>("data");
  if (data != "synthetic" && !std::ifstream(data))
    throw cli::UsageError("--data: cannot open '" + data + "'");
  mc.num_items = 1;
  cli::make_model(mc);
  std::cout << "train: the flags are valid\n";
  return 0;
}

// The flags, in --help order: the data, the model, the training.
void add_data_options(cli::Parser& p) {
  p.options().add_options()(
      "data",
      cli::po::value<std::string>()->default_value("synthetic"),
      "'synthetic', a SASRec-format file (user item per line) or a MovieLens ratings.dat")(
      "synthetic-users", cli::po::value<int64_t>()->default_value(2000), "synthetic: users")(
      "synthetic-items", cli::po::value<int64_t>()->default_value(1000), "synthetic: items")(
      "synthetic-max-length",
      cli::po::value<int64_t>()->default_value(120),
      "synthetic: longest history");
}

cli::KindFlags add_model_options(cli::Parser& p) {
  p.options().add_options()("attention",
                            cli::po::value<std::string>()->default_value("softmax-fused"),
                            "model kind (attnlab --list)")(
      "dim", cli::po::value<int64_t>()->default_value(50), "hidden size")(
      "blocks", cli::po::value<int64_t>()->default_value(2), "transformer blocks")(
      "heads", cli::po::value<int64_t>()->default_value(1), "attention heads")(
      "maxlen", cli::po::value<int64_t>()->default_value(200), "input length (last items)")(
      "dropout", cli::po::value<double>()->default_value(0.2), "dropout rate")(
      "norm",
      cli::po::value<std::string>()->default_value("sasrec"),
      enum_names(nn::NormPlacement{}).known().c_str());
  return cli::KindFlags::for_models(p);  // the kinds' own options (--features, --tau, ...)
}

void add_training_options(cli::Parser& p) {
  p.options().add_options()("epochs", cli::po::value<int64_t>()->default_value(200), "epochs")(
      "batch", cli::po::value<int64_t>()->default_value(128), "users per batch")(
      "lr", cli::po::value<double>()->default_value(1e-3), "Adam learning rate")(
      "adam-betas",
      cli::po::value<std::string>()->default_value("0.9,0.98"),
      "Adam's beta1,beta2 (0.9,0.98: the SASRec and LISA code's)")(
      "weight-decay",
      cli::po::value<double>()->default_value(0.0),
      "L2 penalty: weight-decay * p added to each gradient (Adam's coupled form)")(
      "clip-norm",
      cli::po::value<double>()->default_value(0.0),
      "scale the gradients down to this global L2 norm when above it (0: never)")(
      "loss",
      cli::po::value<std::string>()->default_value("bce"),
      enum_names(rec::LossKind{}).help().c_str())(
      "eval-every", cli::po::value<int64_t>()->default_value(20), "epochs between validations")(
      "patience",
      cli::po::value<int64_t>()->default_value(0),
      "stop after this many validations without improvement (0: never)")(
      "eval-users",
      cli::po::value<int64_t>()->default_value(-1),
      "evaluate only the first N users (-1: all)")(
      "full-ranking", "also report full-ranking HR@10 / NDCG@10 at the end")(
      "checkpoint",
      cli::po::value<std::string>()->default_value(""),
      "checkpoint file written at every validation (atomically)")(
      "resume", "continue from --checkpoint")("log",
                                              cli::po::value<std::string>()->default_value(""),
                                              "JSON-lines log, one line per epoch");
}

// The shadow-gradient mode (layers/recommender/gradient_shadow.hpp).
void add_shadow_options(cli::Parser& p) {
  p.options().add_options()(
      "shadow",
      cli::po::value<std::string>()->default_value(""),
      "every --shadow-every steps, also compute the loss and gradients with this exact kind in "
      "place of the approximation (LISA: its exact attention mode) and log how they agree")(
      "shadow-every", cli::po::value<int64_t>()->default_value(50), "steps between shadow steps")(
      "shadow-log",
      cli::po::value<std::string>()->default_value(""),
      "the shadow CSV (default: shadow.csv in --out)");
}

// The shadow flags, checked before any data is read.
void check_shadow_flags(const cli::Parser& p) {
  const std::string kind = p.get<std::string>("shadow");
  if (kind.empty()) {
    for (const char* flag : {"shadow-every", "shadow-log"}) {
      if (p.given(flag))
        throw cli::UsageError(std::string("--") + flag + ": needs --shadow KIND");
    }
    return;
  }
  if (nn::find_attention_kind(kind) == nullptr)
    throw cli::UsageError("--shadow: attention kind '" + kind +
                          "' is unknown (known: " + nn::attention_kind_names() + ")");
  if (p.get<int64_t>("shadow-every") < 1)
    throw cli::UsageError("--shadow-every: must be positive, got " +
                          std::to_string(p.get<int64_t>("shadow-every")));
  if (p.get<std::string>("shadow-log").empty() && p.common().out.empty())
    throw cli::UsageError("--shadow: needs --shadow-log FILE or --out DIR for its log");
}

std::string shadow_log_path(const cli::Parser& p) {
  const std::string given = p.get<std::string>("shadow-log");
  return given.empty() ? p.common().out + "/shadow.csv" : given;
}

// The first and the last shadow steps: how the gradients and attention outputs agreed, and what
// the shadow cost (its own time against the epochs').
void print_shadow_summary(const std::vector<rec::ShadowRecord>& records,
                          const rec::TrainResult& result) {
  if (records.empty())
    return;
  double shadow_seconds = 0, epoch_seconds = 0;
  for (const auto& r : records) shadow_seconds += r.seconds;
  for (const auto& e : result.epochs) epoch_seconds += e.seconds;
  cli::Table t({"step",
                "epoch",
                "grad cosine",
                "grad rel. error",
                "loss rel. error",
                "attention rel. errors",
                "local"});
  for (const rec::ShadowRecord* r : {&records.front(), &records.back()}) {
    auto errors = [](const std::vector<rec::Agreement>& agreements) {
      std::string text;
      for (const auto& a : agreements) {
        char one[32];
        std::snprintf(one, sizeof one, "%s%.4f", text.empty() ? "" : " ", a.relative_error);
        text += one;
      }
      return text;
    };
    t.add_row({r->step,
               r->epoch,
               cli::Cell(r->all.cosine, 4),
               cli::Cell(r->all.relative_error, 4),
               cli::Cell(r->loss_relative_error, 4),
               errors(r->attention),
               errors(r->attention_local)});
    if (records.size() == 1)
      break;
  }
  std::cout << "\nshadow (" << records.size() << " steps, " << shadow_seconds
            << " s: " << 100.0 * shadow_seconds / std::max(1e-9, epoch_seconds - shadow_seconds)
            << " % over training without it):\n";
  t.print(std::cout);
}

rec::TrainConfig training_config(const cli::Parser& p) {
  rec::TrainConfig tc;
  tc.epochs = p.get<int64_t>("epochs");
  tc.batch_size = p.get<int64_t>("batch");
  tc.lr = p.get<double>("lr");
  std::tie(tc.beta1, tc.beta2) = adam_betas(p);
  tc.weight_decay = p.get<double>("weight-decay");
  tc.clip_norm = p.get<double>("clip-norm");
  tc.loss = enum_names(rec::LossKind{}).parse(p.get<std::string>("loss"), "--loss");
  tc.eval_every = p.get<int64_t>("eval-every");
  tc.patience = p.get<int64_t>("patience");
  if (p.get<int64_t>("eval-users") >= 0)
    tc.eval_max_users = p.get<int64_t>("eval-users");
  tc.full_ranking = p.has("full-ranking");
  tc.seed = p.common().seed;
  tc.checkpoint = p.get<std::string>("checkpoint");
  tc.resume = p.has("resume");
  return tc;
}

// The start callback: what is trained on what.
void print_setup(const commands::TrainSetup& s) {
  std::cout << "data: " << s.data_summary << "\n";
  std::cout << "model: " << s.model_description << ", " << s.parameters << " parameters\n";
  std::cout << "training: " << s.training_description << "\n";
}

// The evaluation callback: a line per validation while training runs (the tables come at the end).
void print_validation(const rec::EpochLog& e) {
  if (!e.evaluated)
    return;
  std::cout << "epoch " << e.epoch << ": loss " << e.loss << ", " << e.seconds << " s, valid HR@10 "
            << e.valid.hr10 << ", NDCG@10 " << e.valid.ndcg10 << ", ties " << e.valid.tie_rate
            << (e.valid.non_finite_users > 0 ? ", " : "") << non_finite_note(e.valid) << std::endl;
}

// One row per epoch of this run ("-" where it was not validated): written to --out only.
cli::Table epochs_table(const rec::TrainResult& r) {
  cli::Table epochs(
      {"epoch", "loss", "seconds", "seq/s", "valid HR@10", "valid NDCG@10", "valid ties"});
  for (const auto& e : r.epochs) {
    epochs.add_row({e.epoch,
                    cli::Cell(e.loss, 4),
                    cli::Cell(e.seconds, 2),
                    cli::Cell(e.sequences_per_second, 0),
                    e.evaluated ? cli::Cell(e.valid.hr10, 4) : cli::Cell("-"),
                    e.evaluated ? cli::Cell(e.valid.ndcg10, 4) : cli::Cell("-"),
                    e.evaluated ? cli::Cell(e.valid.tie_rate, 4) : cli::Cell("-")});
  }
  return epochs;
}

// The best validation, the test of the model it chose, and the full ranking when requested.
cli::Table result_table(const std::string& kind,
                        const rec::TrainResult& r,
                        int64_t peak_tensor_bytes,
                        int64_t peak_rss_bytes) {
  auto optional = [](double value) {
    return value >= 0 ? cli::Cell(value, 4) : cli::Cell("-");
  };
  cli::Table result({"attention",
                     "best epoch",
                     "valid HR@10",
                     "valid NDCG@10",
                     "test HR@10",
                     "test NDCG@10",
                     "full HR@10",
                     "full NDCG@10",
                     "valid ties",
                     "test ties",
                     "full ties",
                     "s/epoch",
                     "peak MiB",
                     "peak RSS MiB"});
  // No validation ran (--epochs 0): "-", not 0.0000.
  auto validated = [&r](double value) {
    return r.best_epoch > 0 ? cli::Cell(value, 4) : cli::Cell("-");
  };
  result.add_row({kind,
                  r.best_epoch,
                  validated(r.best_valid.hr10),
                  validated(r.best_valid.ndcg10),
                  cli::Cell(r.test.hr10, 4),
                  cli::Cell(r.test.ndcg10, 4),
                  optional(r.test.full_hr10),
                  optional(r.test.full_ndcg10),
                  validated(r.best_valid.tie_rate),
                  cli::Cell(r.test.tie_rate, 4),
                  optional(r.test.full_tie_rate),
                  cli::Cell(r.mean_epoch_seconds, 2),
                  cli::Cell(static_cast<double>(peak_tensor_bytes) / (1 << 20), 1),
                  cli::Cell(static_cast<double>(peak_rss_bytes) / (1 << 20), 1)});
  return result;
}

// The result table on stdout, then both tables to --out when given.
void report(const cli::Parser& p, const std::string& kind, const commands::TrainReport& run) {
  const rec::TrainResult& r = run.result;
  const cli::Table result = result_table(kind, r, run.peak_tensor_bytes, run.peak_rss_bytes);
  std::cout << "\n";
  result.print(std::cout);
  if (r.test.non_finite_users > 0)
    std::cout << "warning: the test evaluation found " << non_finite_note(r.test) << "\n";
  if (!p.common().out.empty()) {
    epochs_table(r).write(p.common().out, "epochs");
    result.write(p.common().out, "result");
  }
}

// parse -> check -> load -> build -> train -> report.
int train_command_main(int argc, char** argv) {
  cli::Parser p("train", "[--data FILE|synthetic] [--attention KIND] [options]");
  p.enable_validate_only();
  add_data_options(p);
  const cli::KindFlags kind_flags = add_model_options(p);
  add_training_options(p);
  add_shadow_options(p);
  if (!p.parse(argc, argv))
    return 0;
  check_flags(p);
  check_shadow_flags(p);
  const cli::ModelOptions mc = model_options(p, kind_flags);
  if (p.validate_only())  // (a sweep validates before it makes the runs' directories)
    return validate_only(p, mc);
  // Before the data are read, not at the first validation (--eval-every epochs of work later).
  if (!p.get<std::string>("checkpoint").empty()) {
    try {
      check_writable_path(p.get<std::string>("checkpoint"), "--checkpoint");
    } catch (const IOError& e) {
      throw cli::UsageError(e.what());  // a path flag, as --data and --out: exit 2
    }
  }
  commands::TrainOptions o;
  o.data = p.get<std::string>("data");
  o.synthetic = synthetic_config(p);
  o.model = mc;
  o.training = training_config(p);
  o.dtype = p.common().dtype;
  o.on_start = print_setup;
  cli::TrainingReport training_report(p.get<std::string>("log"), p.has("resume"), true);
  o.callbacks = training_report.callbacks(print_validation);
  std::optional<cli::ShadowLog> shadow_log;
  if (!p.get<std::string>("shadow").empty()) {
    o.shadow = rec::ShadowOptions{p.get<std::string>("shadow"), p.get<int64_t>("shadow-every")};
    shadow_log.emplace(shadow_log_path(p), p.has("resume"));
    o.on_shadow_record = [&shadow_log](const rec::ShadowRecord& r) {
      shadow_log->write(r);
    };
  }
  const commands::TrainReport r = commands::run_train(o);
  report(p, mc.kind, r);
  print_shadow_summary(r.shadow_records, r.result);
  return 0;
}

const cli::Register train_command("train",
                                  "train a sequential recommender (SASRec protocol)",
                                  train_command_main,
                                  cli::Validates::Yes);

}  // namespace

namespace {

// The model's settings, for the checkpoint's resume check (TrainConfig::model_settings).
std::vector<std::pair<std::string, std::string>> model_settings(const cli::ModelOptions& m) {
  std::vector<std::pair<std::string, std::string>> settings{
      {"attention", m.kind},
      {"maxlen", std::to_string(m.max_length)},
      {"dim", std::to_string(m.dim)},
      {"blocks", std::to_string(m.blocks)},
      {"heads", std::to_string(m.heads)},
      {"dropout", ::attnlab::detail::concat(m.dropout)},
      {"norm", enum_names(m.norm).name(m.norm)}};
  const rec::ModelKind& kind = rec::model_kind(m.kind);
  const OptionValues values = m.kind_options.empty() ? kind.options.defaults() : m.kind_options;
  for (const OptionSpec& spec : kind.options.specs())
    settings.emplace_back(spec.name, spec.get(values));
  return settings;
}

}  // namespace

// load -> build -> train.
commands::TrainReport commands::run_train(const TrainOptions& options) {
  const rec::SequenceDataset data = cli::load_sequences(options.data, options.synthetic);
  const rec::SplitDataset split = rec::leave_one_out(data);
  cli::ModelOptions mc = options.model;
  mc.num_items = data.num_items;
  TrainReport r;
  r.model = cli::make_model(mc);
  r.model->to(options.dtype);
  r.setup = {data.summary(),
             r.model->describe(),
             rec::describe(options.training),
             r.model->parameter_count()};
  if (options.on_start)
    options.on_start(r.setup);
  rec::TrainConfig training = options.training;
  if (training.model_settings.empty())
    training.model_settings = model_settings(mc);
  std::optional<rec::GradientShadow> shadow;
  rec::TrainCallbacks callbacks = options.callbacks;
  if (options.shadow) {
    shadow.emplace(*r.model, *options.shadow);
    shadow->on_record = options.on_shadow_record;
    callbacks = shadow->install(callbacks);
  }
  r.peak_tensor_bytes = bench::peak_tensor_bytes(
      [&] { r.result = rec::train_recommender(*r.model, split, training, callbacks); });
  r.peak_rss_bytes = bench::process_peak_rss();
  if (shadow)
    r.shadow_records = shadow->records();
  return r;
}

}  // namespace attnlab
