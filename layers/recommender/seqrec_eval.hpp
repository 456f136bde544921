// Evaluation of sequential recommenders as in the SASRec paper (and its official code):
//   - the validation input is the user's training items; the positive is the validation item;
//   - the test input is the training items followed by the validation item; the positive is the
//     test item;
//   - sampled ranking: the positive among 100 negatives drawn uniformly from the items the user
//     has not interacted with in training (duplicates possible, and the positive item itself may
//     be drawn, as in the official code; drawn afresh from the evaluation key);
//   - full ranking: the positive among all items, the user's other training items (and, for the
//     test, the validation item) excluded;
//   - HR@10 = share of users whose positive ranks in the top 10, NDCG@10 = mean of
//     1/log2(rank + 2) over those users (rank 0-based).
// The rank (rank_of_positive), where the official code's argsort leaves it open:
//   - ties: the positive takes a uniformly random place among the candidates with exactly its
//     score (the official code's unstable sort puts it anywhere among them), drawn from a
//     counter-based key so that a run is reproducible: rank = #higher + uniform_int[0, #ties].
//     LISA-Base and LISA-Mini score against quantized item vectors, so items sharing a code tuple
//     tie by construction; counting every tie in the positive's favour would reward a collapsed
//     codebook. The share of users with a tie is reported (tie_rate) to make one visible;
//   - non-finite scores (a diverged model): a NaN or ±inf candidate counts as scoring above the
//     positive, and a NaN or ±inf positive ranks last and is never a hit. Users with a non-finite
//     score are counted (non_finite_users).
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "core/rng.hpp"
#include "layers/recommender/recommender.hpp"
#include "layers/recommender/seqrec_data.hpp"

namespace attnlab::rec {

struct RankingMetrics {
  double hr10 = 0, ndcg10 = 0;              // sampled (100 negatives)
  double full_hr10 = -1, full_ndcg10 = -1;  // full ranking (-1 when not computed)
  int64_t users = 0;
  // Share of users whose positive ties with at least one other candidate (a drawn copy of the
  // positive item included: about negatives / items of the users for any model).
  double tie_rate = 0;
  double full_tie_rate = -1;     // among all items (-1 when not computed)
  int64_t non_finite_users = 0;  // users with a NaN or ±inf score (sampled or full ranking)
};

// The metric of one rank (for tests and custom loops).
double ndcg_at(int64_t rank, int64_t k);

// What decided one rank.
struct RankDetail {
  int64_t higher = 0;                // candidates above the positive (non-finite ones included)
  int64_t ties = 0;                  // other candidates with exactly the positive's score
  bool non_finite = false;           // some score (the positive's or a candidate's) is NaN or ±inf
  bool positive_non_finite = false;  // the positive scores NaN or ±inf: ranked last, never a hit
};

// Rank (0-based) of the positive, scores[0], among the `count` scores, by the rule above: the
// ties are broken by uniform_int(key, index, 0, ties + 1); a non-finite positive ranks last
// (count - 1). `detail` (optional) receives the counts.
int64_t rank_of_positive(
    const float* scores, int64_t count, RngKey key, uint64_t index, RankDetail* detail = nullptr);

// The key of evaluate's tie breaks (a stream apart from the negatives'): user u's sampled rank
// uses index 2u, its full rank 2u + 1.
RngKey tie_break_key(RngKey evaluation_key);

struct EvalOptions {
  bool test = false;  // false: validation split
  int64_t negatives = 100;
  bool full_ranking = false;
  int64_t batch_size = 256;
  std::optional<int64_t> max_users;  // evaluate only the first users (unset: all)
  RngKey key{};  // the negatives' (and, through tie_break_key, the ties') stream
};

// A user who rated every item in training has no negative: a ValueError naming the user, before
// any scoring. Runs under nn::FreezeTracesGuard: the kernels' inspection traces (last_trace())
// stay those of the caller's last forward, and LISA evaluates without per-position histograms.
RankingMetrics evaluate(SequenceRecommender& model,
                        const SplitDataset& data,
                        const EvalOptions& options);

// The input sequence of the last `maxlen` items, right-aligned in a row of length maxlen.
void right_align(const std::vector<int64_t>& items, int64_t maxlen, int64_t* row);

}  // namespace attnlab::rec
