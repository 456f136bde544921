// libFuzzer target: MovieLens ratings.dat text -> parse_movielens_text (the first byte picks
// min_item_count in 0..7), then the leave-one-out split.
#include "layers/recommender/seqrec_data.hpp"
#include "tests/fuzz/fuzz_common.hpp"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, std::size_t size) {
  if (size == 0)
    return 0;
  const int64_t min_count = data[0] % 8;
  attnlab::fuzz::expect_clean_error([&] {
    const attnlab::rec::SequenceDataset d = attnlab::rec::parse_movielens_text(
        attnlab::fuzz::as_string(data + 1, size - 1), "fuzz/ratings.dat", min_count);
    (void)d.summary();
    const attnlab::rec::SplitDataset s = attnlab::rec::leave_one_out(d);
    for (const auto& seq : s.train) {
      for (int64_t item : seq) {
        if (item < 1 || item > d.num_items)
          __builtin_trap();
      }
    }
  });
  return 0;
}
