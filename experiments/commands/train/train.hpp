// `attnlab train` as a library function (attnlab::commands): a sequential recommender (SASRec
// with any attention kind, or a LISA model) trained and evaluated with the SASRec protocol. The
// subcommand parses its flags into TrainOptions, calls run_train and prints the report; a user's
// program can call run_train directly, with no flags and nothing printed.
//
//   commands::TrainOptions o;
//   o.model.kind = "relu-linear";   // any model kind: every registered attention kind, lisa-*
//   o.model.kind_options = cli::kind_option_values(       // optional: the kind's defaults
//       rec::model_kind("relu-linear").options, "relu-linear", {{"epsilon", "0.01"}});
//   o.training.epochs = 1;
//   const commands::TrainReport r = commands::run_train(o);   // r.result.test.ndcg10, ...
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "core/dtype.hpp"
#include "experiments/support/models.hpp"
#include "layers/recommender/gradient_shadow.hpp"
#include "layers/recommender/seqrec_data.hpp"
#include "layers/recommender/seqrec_trainer.hpp"

namespace attnlab::commands {

// What run_train knows once the data is read and the model built, before the first epoch.
struct TrainSetup {
  std::string data_summary;          // SequenceDataset::summary()
  std::string model_description;     // the model's describe()
  std::string training_description;  // rec::describe(TrainConfig): optimizer, batch, epochs, ...
  int64_t parameters = 0;
};

struct TrainOptions {
  // "synthetic" (generated from `synthetic`), a SASRec-format file or a MovieLens ratings.dat.
  std::string data = "synthetic";
  rec::SyntheticConfig synthetic;
  cli::ModelOptions model;  // its num_items comes from the data
  rec::TrainConfig training;
  DType dtype = kFloat32;
  std::function<void(const TrainSetup&)> on_start;  // optional
  // Optional: per batch, per epoch and per validation (the CLI's progress bar and JSON-lines log
  // are such callbacks, cli::TrainingReport).
  rec::TrainCallbacks callbacks;
  // Set: the shadow-gradient mode (exact attention in place of the approximation every
  // shadow->every steps, compared; the trained model is unchanged), each record passed to
  // on_shadow_record (optional) and kept in the report.
  std::optional<rec::ShadowOptions> shadow;
  std::function<void(const rec::ShadowRecord&)> on_shadow_record;
};

struct TrainReport {
  TrainSetup setup;
  rec::TrainResult result;
  std::shared_ptr<rec::SequenceRecommender> model;  // the trained model
  std::vector<rec::ShadowRecord> shadow_records;    // with TrainOptions::shadow
  // Peak memory of the training and its evaluations: tensor bytes above what was live before
  // (the model's parameters and the data excluded), and the process's peak RSS (VmHWM).
  int64_t peak_tensor_bytes = 0, peak_rss_bytes = 0;
};

// Reads the data, builds the model and trains it. Throws attnlab::Error (ValueError for an
// unknown kind or bad sizes, IoError for unreadable data).
TrainReport run_train(const TrainOptions& options);

}  // namespace attnlab::commands
