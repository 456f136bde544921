// Training checkpoints: everything a run needs to resume bit-identically, in one .npz (readable
// with numpy.load), written atomically (a crash leaves the previous checkpoint intact).
//
// Entries (namespace attnlab::optim, beside the optimizers whose state they hold):
//   "checkpoint_version"  int64 scalar, 1
//   "step"                int64 scalar, the caller's training step
//   "model.<name>"        Module::state_dict(): parameters, buffers, the module's own generators
//   "optim.<name>"        Optimizer::state_dict(): step counts, lr, moments / momentum buffers
//   "rng.<name>"          int64 [2]: (seed, next stream) of each extra Generator (data order, ...)
//   "scalar.<name>"       float64 scalar: optional extra numbers (best validation loss, ...)
//
// Loading is strict and all-or-nothing: a missing, extra, mis-shaped or mis-typed entry throws
// (ValueError / ShapeError / DTypeError naming the entry; IOError for a file that is not a valid
// .npz, e.g. truncated), and then the model, the optimizer and the generators are unchanged.
// Messages start with "load_checkpoint '<path>': ". The model must have the structure it had when
// saved; values are converted to its parameters' dtype.
#pragma once

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "core/npy.hpp"
#include "core/rng.hpp"
#include "layers/nn/module.hpp"
#include "layers/optim/optim.hpp"

namespace attnlab::optim {

using NamedGenerators = std::vector<std::pair<std::string, Generator*>>;
using NamedScalars = std::vector<std::pair<std::string, double>>;

void save_checkpoint(const std::string& path,
                     const nn::Module& model,
                     const Optimizer& opt,
                     int64_t step,
                     const NamedGenerators& rngs = {},
                     const NamedScalars& scalars = {});

// Restores model, optimizer and generators; returns the saved step. With `scalars`, it receives
// the saved extra scalars (file order); without, they are ignored. Every generator in `rngs` must
// have an entry and every "rng." entry a generator.
int64_t load_checkpoint(const std::string& path,
                        nn::Module& model,
                        Optimizer& opt,
                        const NamedGenerators& rngs = {},
                        NamedScalars* scalars = nullptr);

// The in-memory forms: the entries save_checkpoint writes (read_checkpoint reads them from a
// file, unchecked), and the loader of such entries (`source` names them in error messages).
NamedTensors checkpoint_entries(const nn::Module& model,
                                const Optimizer& opt,
                                int64_t step,
                                const NamedGenerators& rngs = {},
                                const NamedScalars& scalars = {});
NamedTensors read_checkpoint(const std::string& path);
// The "scalar.<name>" entries of such entries that are float scalars, as (name, value), without
// restoring anything (e.g. to check a run's saved settings first); malformed ones are left for
// load_checkpoint_entries to report.
NamedScalars read_scalars(const NamedTensors& entries);
int64_t load_checkpoint_entries(const NamedTensors& entries,
                                const std::string& source,
                                nn::Module& model,
                                Optimizer& opt,
                                const NamedGenerators& rngs = {},
                                NamedScalars* scalars = nullptr);

}  // namespace attnlab::optim
