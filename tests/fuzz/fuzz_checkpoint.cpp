// libFuzzer target: checkpoint loading. Bytes -> parse_npz -> load_checkpoint_entries into a
// tiny SASRec + Adam + one generator (what load_checkpoint runs on a file's contents). A load
// that fails must leave the model unchanged (the all-or-nothing promise of checkpoint.hpp).
#include <cstring>

#include "tests/fuzz/fuzz_checkpoint_model.hpp"
#include "tests/fuzz/fuzz_common.hpp"

namespace {

attnlab::NamedTensors snapshot(const attnlab::nn::Module& m) {
  attnlab::NamedTensors out;
  for (auto& [n, t] : m.state_dict()) out.emplace_back(n, t.clone());
  return out;
}

bool same(const attnlab::NamedTensors& a, const attnlab::NamedTensors& b) {
  if (a.size() != b.size())
    return false;
  for (std::size_t i = 0; i < a.size(); ++i) {
    const attnlab::Tensor& x = a[i].second;
    const attnlab::Tensor& y = b[i].second;
    if (x.shape() != y.shape() || x.dtype() != y.dtype() ||
        std::memcmp(x.raw_data(), y.raw_data(), x.nbytes()) != 0)
      return false;
  }
  return true;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, std::size_t size) {
  static attnlab::fuzz::CheckpointTarget target;
  const attnlab::NamedTensors before = snapshot(*target.model);
  try {
    attnlab::optim::NamedScalars scalars;
    const attnlab::NamedTensors entries =
        attnlab::parse_npz(attnlab::fuzz::as_string(data, size), "fuzz.ckpt.npz");
    (void)attnlab::optim::load_checkpoint_entries(
        entries, "fuzz.ckpt.npz", *target.model, *target.opt, target.rngs(), &scalars);
  } catch (const attnlab::Error&) {
    if (!same(before, snapshot(*target.model)))
      __builtin_trap();  // a failed load changed the model
  }
  return 0;
}
