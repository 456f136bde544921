// A user's program that trains through attnlab's train command as a library function
// (docs/extending.md, section 6): options in, the trained model and its results out, its own
// progress through the trainer's callbacks. Linked with attnlab::commands (CMakeLists.txt) and
// with relu_linear_attention.cpp, whose kind it trains.
#include <iostream>

#include "experiments/commands/train/train.hpp"

int main() {
  attnlab::commands::TrainOptions o;
  o.model.kind = "relu-linear";
  o.training.epochs = 1;
  o.callbacks.on_epoch = [](const attnlab::rec::EpochLog& e) {
    std::cout << "epoch " << e.epoch << ": loss " << e.loss << "\n";  // your own progress
  };
  // Small synthetic data, so that the example runs in a moment.
  o.synthetic.users = 40;
  o.synthetic.items = 30;
  o.synthetic.min_length = 5;
  o.synthetic.max_length = 12;
  o.model.max_length = 12;
  o.model.dim = 8;
  o.model.blocks = 1;
  const attnlab::commands::TrainReport r = attnlab::commands::run_train(o);
  std::cout << "trained " << r.setup.model_description << ": test NDCG@10 " << r.result.test.ndcg10
            << "\n";
  return 0;
}
