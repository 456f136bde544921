#include "layers/recommender/seqrec_eval.hpp"

#include <algorithm>
#include <cmath>
#include <unordered_set>

#include "autograd/engine.hpp"
#include "autograd/ops.hpp"
#include "core/core.hpp"
#include "layers/nn/module.hpp"

namespace attnlab::rec {
namespace {

// The users evaluate() ranks: a target in the split and at least one training item, in order.
std::vector<int64_t> users_to_evaluate(const SplitDataset& data, const EvalOptions& opt) {
  std::vector<int64_t> users;
  for (int64_t u = 0; u < static_cast<int64_t>(data.train.size()); ++u) {
    const int64_t target = opt.test ? data.test[u] : data.valid[u];
    if (target != 0 && !data.train[u].empty())
      users.push_back(u);
  }
  if (opt.max_users && static_cast<int64_t>(users.size()) > *opt.max_users)
    users.resize(*opt.max_users);
  return users;
}

// The negatives are drawn until one is not a training item: a user who rated every item would
// never stop drawing. Checked for all users before any scoring.
void check_negatives_exist(const SplitDataset& data, const std::vector<int64_t>& users) {
  for (int64_t u : users) {
    const std::unordered_set<int64_t> rated(data.train[u].begin(), data.train[u].end());
    ATTNLAB_CHECK(static_cast<int64_t>(rated.size()) < data.num_items,
                  ValueError,
                  "evaluate: user ",
                  u,
                  " rated all ",
                  data.num_items,
                  " items in training: no negative can be drawn (drop the user from the split)");
  }
}

// Sums over users of one ranking's metrics.
struct Totals {
  double hr = 0, ndcg = 0;
  int64_t tied = 0;
  void add(int64_t rank, const RankDetail& d) {
    if (!d.positive_non_finite) {
      hr += rank < 10 ? 1 : 0;
      ndcg += ndcg_at(rank, 10);
    }
    tied += d.ties > 0 ? 1 : 0;
  }
};

}  // namespace

double ndcg_at(int64_t rank, int64_t k) {
  return rank < k ? 1.0 / std::log2(static_cast<double>(rank) + 2.0) : 0.0;
}

int64_t rank_of_positive(
    const float* scores, int64_t count, RngKey key, uint64_t index, RankDetail* detail) {
  ATTNLAB_CHECK(count >= 1, ValueError, "rank_of_positive: no scores (count ", count, ")");
  RankDetail d;
  const float positive = scores[0];
  d.positive_non_finite = !std::isfinite(positive);
  d.non_finite = d.positive_non_finite;
  for (int64_t j = 1; j < count; ++j) {
    const float s = scores[j];
    if (!std::isfinite(s)) {
      d.non_finite = true;
      ++d.higher;
    } else if (s > positive) {
      ++d.higher;
    } else if (s == positive) {
      ++d.ties;
    }
  }
  int64_t rank;
  if (d.positive_non_finite) {
    d.higher = count - 1;
    d.ties = 0;
    rank = count - 1;
  } else {
    rank = d.higher + (d.ties > 0 ? uniform_int(key, index, 0, d.ties + 1) : 0);
  }
  if (detail)
    *detail = d;
  return rank;
}

RngKey tie_break_key(RngKey evaluation_key) {
  return {evaluation_key.seed ^ 0xD1B54A32D192ED03ull, evaluation_key.stream};
}

void right_align(const std::vector<int64_t>& items, int64_t maxlen, int64_t* row) {
  const int64_t n = std::min<int64_t>(maxlen, static_cast<int64_t>(items.size()));
  std::fill(row, row + maxlen - n, 0);
  std::copy(items.end() - n, items.end(), row + maxlen - n);
}

RankingMetrics evaluate(SequenceRecommender& model,
                        const SplitDataset& data,
                        const EvalOptions& opt) {
  ATTNLAB_CHECK(opt.negatives >= 1 && opt.batch_size >= 1,
                ValueError,
                "evaluate: negatives and batch_size must be positive");
  ATTNLAB_CHECK(data.num_items == model.num_items(),
                ShapeError,
                "evaluate: the data has ",
                data.num_items,
                " items but the model was built for ",
                model.num_items());
  const std::vector<int64_t> users = users_to_evaluate(data, opt);
  check_negatives_exist(data, users);
  ag::NoGradGuard no_grad;
  const nn::FreezeTracesGuard keep_the_callers_traces;  // and LISA evaluates from its rows
  const bool was_training = model.is_training();
  model.eval();
  const int64_t maxlen = model.max_length(), v = data.num_items, c = 1 + opt.negatives;
  const RngKey ties = tie_break_key(opt.key);
  Totals sampled, full;
  int64_t non_finite_users = 0;
  Tensor all_items;
  if (opt.full_ranking)
    all_items = arange(1.0, static_cast<double>(v + 1), 1.0, kInt64);
  std::vector<float> full_scores;  // one user's full ranking: the positive, then the candidates
  for (std::size_t start = 0; start < users.size(); start += opt.batch_size) {
    const int64_t b = std::min<int64_t>(opt.batch_size, static_cast<int64_t>(users.size() - start));
    Tensor input = Tensor::empty({b, maxlen}, kInt64), cand = Tensor::empty({b, c}, kInt64);
    int64_t* in = input.data<int64_t>();
    int64_t* cd = cand.data<int64_t>();
    std::vector<std::unordered_set<int64_t>> excluded(b);
    for (int64_t r = 0; r < b; ++r) {
      const int64_t u = users[start + r];
      std::vector<int64_t> seq = data.train[u];
      if (opt.test)
        seq.push_back(data.valid[u]);
      right_align(seq, maxlen, in + r * maxlen);
      const std::unordered_set<int64_t> rated(data.train[u].begin(), data.train[u].end());
      cd[r * c] = opt.test ? data.test[u] : data.valid[u];
      uint64_t draw = static_cast<uint64_t>(u) << 24;  // a per-user counter range
      for (int64_t j = 1; j < c; ++j) {
        int64_t t;
        do {
          t = uniform_int(opt.key, draw++, 1, v + 1);
        } while (rated.count(t));
        cd[r * c + j] = t;
      }
      if (opt.full_ranking) {
        excluded[r] = rated;
        if (opt.test)
          excluded[r].insert(data.valid[u]);
        excluded[r].insert(cd[r * c]);  // the positive goes first, not among the candidates
      }
    }
    Var h = model.hidden(input);                                     // [b, L, D]
    Var last = ag::squeeze(ag::slice(h, 1, maxlen - 1, maxlen), 1);  // [b, D]
    Tensor s = model.scores(last, cand).value().to(kFloat32);        // [b, c]
    const float* sp = s.data<float>();
    std::vector<bool> non_finite(b, false);
    for (int64_t r = 0; r < b; ++r) {
      const uint64_t u = static_cast<uint64_t>(users[start + r]);
      RankDetail d;
      const int64_t rank = rank_of_positive(sp + r * c, c, ties, 2 * u, &d);
      sampled.add(rank, d);
      non_finite[r] = d.non_finite;
    }
    if (opt.full_ranking) {
      Tensor all = matmul(last.value(), model.item_vectors(all_items).value(), false, true)
                       .to(kFloat32);  // [b, v]: column j is item j + 1
      const float* ap = all.data<float>();
      for (int64_t r = 0; r < b; ++r) {
        const uint64_t u = static_cast<uint64_t>(users[start + r]);
        full_scores.assign(1, ap[r * v + cd[r * c] - 1]);
        for (int64_t j = 0; j < v; ++j) {
          if (!excluded[r].count(j + 1))
            full_scores.push_back(ap[r * v + j]);
        }
        RankDetail d;
        const int64_t rank = rank_of_positive(
            full_scores.data(), static_cast<int64_t>(full_scores.size()), ties, 2 * u + 1, &d);
        full.add(rank, d);
        non_finite[r] = non_finite[r] || d.non_finite;
      }
    }
    non_finite_users += std::count(non_finite.begin(), non_finite.end(), true);
  }
  model.train(was_training);
  RankingMetrics m;
  m.users = static_cast<int64_t>(users.size());
  m.non_finite_users = non_finite_users;
  if (m.users > 0) {
    const double n = static_cast<double>(m.users);
    m.hr10 = sampled.hr / n;
    m.ndcg10 = sampled.ndcg / n;
    m.tie_rate = static_cast<double>(sampled.tied) / n;
    if (opt.full_ranking) {
      m.full_hr10 = full.hr / n;
      m.full_ndcg10 = full.ndcg / n;
      m.full_tie_rate = static_cast<double>(full.tied) / n;
    }
  }
  return m;
}

}  // namespace attnlab::rec
