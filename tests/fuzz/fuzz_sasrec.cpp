// libFuzzer target: SASRec-format text ("user item" lines) -> parse_sasrec_text, then what
// `attnlab train` does next with a parsed dataset (summary, leave-one-out split).
#include "layers/recommender/seqrec_data.hpp"
#include "tests/fuzz/fuzz_common.hpp"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, std::size_t size) {
  attnlab::fuzz::expect_clean_error([&] {
    const attnlab::rec::SequenceDataset d =
        attnlab::rec::parse_sasrec_text(attnlab::fuzz::as_string(data, size), "fuzz.txt");
    (void)d.summary();
    const attnlab::rec::SplitDataset s = attnlab::rec::leave_one_out(d);
    for (const auto& seq : s.train) {
      for (int64_t item : seq) {
        if (item < 1 || item > d.num_items)
          __builtin_trap();  // an id outside 1..num_items would index out of the embedding
      }
    }
  });
  return 0;
}
