// Evaluation of sequential recommenders as in the SASRec paper (and its official code):
//   - the validation input is the user's training items; the positive is the validation item;
//   - the test input is the training items followed by the validation item; the positive is the
//     test item;
//   - sampled ranking: the positive among 100 negatives drawn uniformly from the items the user
//     has not interacted with in training (duplicates possible, as in the official code; drawn
//     afresh from the evaluation key);
//   - full ranking: the positive among all items, the user's other training items (and, for the
//     test, the validation item) excluded;
//   - HR@10 = share of users whose positive ranks in the top 10, NDCG@10 = mean of
//     1/log2(rank + 2) over those users (rank 0-based). Ties count in the positive's favour
//     (rank = number of candidates scoring strictly higher).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "core/rng.hpp"
#include "layers/recommender.hpp"
#include "layers/seqrec_data.hpp"

namespace attnlab::nn {

struct RankingMetrics {
  double hr10 = 0, ndcg10 = 0;              // sampled (100 negatives)
  double full_hr10 = -1, full_ndcg10 = -1;  // full ranking (-1 when not computed)
  int64_t users = 0;
};

// The metric of one rank (for tests and custom loops).
double ndcg_at(int64_t rank, int64_t k);
// Rank of the positive (index 0 of scores) among the candidates: how many score strictly higher.
int64_t rank_of_positive(const float* scores, int64_t count);

struct EvalOptions {
  bool test = false;  // false: validation split
  int64_t negatives = 100;
  bool full_ranking = false;
  int64_t batch_size = 256;
  int64_t max_users = -1;  // evaluate only the first users (-1: all)
  RngKey key{};            // the negatives' random stream
};

RankingMetrics evaluate(SequenceRecommender& model,
                        const SplitDataset& data,
                        const EvalOptions& options);

// The input sequence of the last `maxlen` items, right-aligned in a row of length maxlen.
void right_align(const std::vector<int64_t>& items, int64_t maxlen, int64_t* row);

}  // namespace attnlab::nn
