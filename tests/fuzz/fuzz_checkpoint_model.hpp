// The model, optimizer and generator the checkpoint fuzz target loads into, shared with the
// corpus generator (so the seed corpus holds real checkpoints of exactly this structure).
#pragma once

#include <memory>

#include "layers/optim/checkpoint.hpp"
#include "layers/recommender/sasrec.hpp"

namespace attnlab::fuzz {

struct CheckpointTarget {
  std::unique_ptr<rec::SASRec> model;
  std::unique_ptr<optim::Adam> opt;
  Generator data_rng{7};

  CheckpointTarget() {
    rec::SASRecConfig c;
    c.num_items = 6;
    c.max_length = 4;
    c.dim = 4;
    c.blocks = 1;
    c.heads = 1;
    c.dropout = 0.1;
    c.seed = 3;
    model = std::make_unique<rec::SASRec>(c);
    opt = std::make_unique<optim::Adam>(model->named_parameters(), 1e-3, 0.9, 0.98);
  }
  optim::NamedGenerators rngs() { return {{"data", &data_rng}}; }
};

}  // namespace attnlab::fuzz
