#include "layers/seqrec_eval.hpp"

#include <algorithm>
#include <cmath>
#include <unordered_set>

#include "autograd/engine.hpp"
#include "autograd/ops.hpp"
#include "core/core.hpp"

namespace attnlab::nn {

double ndcg_at(int64_t rank, int64_t k) {
  return rank < k ? 1.0 / std::log2(static_cast<double>(rank) + 2.0) : 0.0;
}

int64_t rank_of_positive(const float* scores, int64_t count) {
  int64_t rank = 0;
  for (int64_t j = 1; j < count; ++j) rank += scores[j] > scores[0] ? 1 : 0;
  return rank;
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
  ag::NoGradGuard no_grad;
  const bool was_training = model.is_training();
  model.eval();
  const int64_t maxlen = model.max_length(), v = data.num_items, c = 1 + opt.negatives;
  std::vector<int64_t> users;
  for (int64_t u = 0; u < static_cast<int64_t>(data.train.size()); ++u) {
    const int64_t target = opt.test ? data.test[u] : data.valid[u];
    if (target != 0 && !data.train[u].empty())
      users.push_back(u);
  }
  if (opt.max_users >= 0 && static_cast<int64_t>(users.size()) > opt.max_users) {
    users.resize(opt.max_users);
  }
  double hr = 0, ndcg = 0, full_hr = 0, full_ndcg = 0;
  Tensor all_items;
  if (opt.full_ranking)
    all_items = arange(1.0, static_cast<double>(v + 1), 1.0, kInt64);
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
        excluded[r].erase(cd[r * c]);
      }
    }
    Var h = model.hidden(input);                                     // [b, L, D]
    Var last = ag::squeeze(ag::slice(h, 1, maxlen - 1, maxlen), 1);  // [b, D]
    Tensor s = model.scores(last, cand).value().to(kFloat32);        // [b, c]
    const float* sp = s.data<float>();
    for (int64_t r = 0; r < b; ++r) {
      const int64_t rank = rank_of_positive(sp + r * c, c);
      hr += rank < 10 ? 1 : 0;
      ndcg += ndcg_at(rank, 10);
    }
    if (opt.full_ranking) {
      Tensor all = matmul(last.value(), model.item_vectors(all_items).value(), false, true)
                       .to(kFloat32);  // [b, v]: column j is item j + 1
      const float* ap = all.data<float>();
      for (int64_t r = 0; r < b; ++r) {
        const float pos = ap[r * v + cd[r * c] - 1];
        int64_t rank = 0;
        for (int64_t j = 0; j < v; ++j) {
          if (ap[r * v + j] > pos && !excluded[r].count(j + 1))
            ++rank;
        }
        full_hr += rank < 10 ? 1 : 0;
        full_ndcg += ndcg_at(rank, 10);
      }
    }
  }
  model.train(was_training);
  RankingMetrics m;
  m.users = static_cast<int64_t>(users.size());
  if (m.users > 0) {
    m.hr10 = hr / m.users;
    m.ndcg10 = ndcg / m.users;
    if (opt.full_ranking) {
      m.full_hr10 = full_hr / m.users;
      m.full_ndcg10 = full_ndcg / m.users;
    }
  }
  return m;
}

}  // namespace attnlab::nn
