// Lesson 6: a small ablation, three attention kinds in the same recommender (the leave-one-out
// protocol of SASRec, Kang and McAuley, ICDM 2018; FAVOR+ from Choromanski et al., ICLR 2021;
// LISA from Wu et al., WWW 2021; `attnlab demo` is the full-size version).
//
// One SASRec-style next-item recommender, trained three times on the built-in synthetic data with
// a different attention each time: exact softmax attention (SASRec, the tiled "softmax-fused"
// kernel), FAVOR+ random features ("favor", linear in L) and LISA-Base codeword histograms
// ("lisa-base", linear in L; lesson 5). The table compares ranking quality (HR@10, NDCG@10 of the
// held-out last item of every user among 100 sampled negatives), time per epoch and peak tensor
// memory, with a popularity ranking as the floor. The data has known short- and long-range
// structure, so the numbers can be read against what each attention can and cannot express.
#include <cmath>
#include <iomanip>
#include <iostream>
#include <sstream>
#include <string>
#include <vector>

#include "core/core.hpp"
#include "experiments/lessons/lesson.hpp"
#include "experiments/support/kind_flags.hpp"
#include "experiments/support/models.hpp"
#include "experiments/support/table.hpp"
#include "layers/recommender/seqrec_data.hpp"
#include "layers/recommender/seqrec_trainer.hpp"

namespace attnlab::lessons {
namespace {

struct Row {
  std::string kind;
  double hr10 = 0, ndcg10 = 0;
  double seconds = NAN, train_mib = NAN, eval_mib = NAN;  // NAN: not a trained model
};

double mib_since(int64_t before) {
  return static_cast<double>(memory_stats().peak_bytes - before) / 1048576.0;
}

bool lesson_ablation(std::ostream& out, bool quick) {
  const uint64_t seed = 3;
  const int64_t maxlen = 30, dim = 16;
  const int64_t epochs = 10;  // >= 2, so that the training-only memory peak is seen (section 3)

  heading(out, "1. The data: short- and long-range structure by construction");
  rec::SyntheticConfig sc;
  sc.users = quick ? 150 : 1000;
  sc.items = 100;
  sc.seed = seed + 1;
  const rec::SequenceDataset data = rec::synthetic_sequences(sc);
  const rec::SplitDataset split = rec::leave_one_out(data);
  out << data.summary() << "\n\n"
      << "Each user's next item is drawn (layers/recommender/seqrec_data.hpp) as\n"
      << "  p_next   = " << sc.p_next
      << ": the successor of the current item (within each topic the items form one\n"
         "             cycle of "
      << sc.items / sc.topics
      << ": episodes of a series). Short range: the last item alone predicts it.\n"
      << "  p_recall = " << sc.p_recall << ": the successor of the item " << sc.period
      << " steps back. Long range at an exact distance:\n"
         "             the model must look at one particular position, not at the recent past.\n"
      << "  p_taste  = " << sc.p_taste << ": an item of one of the user's " << sc.favourite_topics
      << " favourite topics (of " << sc.topics
      << "). A preference\n"
         "             spread over the whole history: any average of the history finds it.\n"
      << "  the rest (" << 1 - sc.p_next - sc.p_recall - sc.p_taste
      << "): a uniformly random item, which nothing predicts.\n"
      << "Leave-one-out split (SASRec): train on all but the last two items of every user,\n"
         "validate on the second to last, test on the last; inputs are the last "
      << maxlen << " items.\n";

  heading(out, "2. Training the same recommender with three attentions");
  rec::TrainConfig tc;
  tc.epochs = epochs;
  tc.batch_size = 16;
  tc.lr = 5e-3;
  tc.eval_every = epochs;  // one validation, at the end
  tc.seed = seed;
  std::vector<Row> rows;
  {  // The floor: rank by training popularity, on exactly the trainer's test negatives.
    rec::PopularityRecommender pop(split, maxlen);
    rec::EvalOptions eo;
    eo.test = true;
    eo.key = rec::evaluation_key(seed, -1);
    const rec::RankingMetrics m = rec::evaluate(pop, split, eo);
    Row r;
    r.kind = "popularity";
    r.hr10 = m.hr10;
    r.ndcg10 = m.ndcg10;
    rows.push_back(r);
  }
  const std::vector<std::string> kinds{"softmax-fused", "favor", "lisa-base"};
  for (const std::string& kind : kinds) {
    cli::ModelOptions mo;
    mo.kind = kind;
    mo.num_items = data.num_items;
    mo.max_length = maxlen;
    mo.dim = dim;
    // FAVOR+: m = 16 random features (head_dim 16); LISA: B = 4 codebooks of W = 8 codewords.
    mo.kind_options = cli::declared_option_values(
        rec::model_kind(kind).options, kind, {{"features", "16"}, {"codebooks", "4x8"}});
    mo.seed = seed;
    const auto model = cli::make_model(mo);
    Row row;
    row.kind = kind;
    const int64_t before = memory_stats().live_bytes;
    reset_peak_memory();
    const rec::TrainResult r =
        rec::train_recommender(*model, split, tc, [&](const rec::EpochLog& e) {
          if (!e.evaluated)  // no evaluation has run yet: the peak so far is training's
            row.train_mib = mib_since(before);
        });
    row.eval_mib = mib_since(before);  // now including the final validation and test
    row.hr10 = r.test.hr10;
    row.ndcg10 = r.test.ndcg10;
    row.seconds = r.mean_epoch_seconds;
    rows.push_back(row);
    out << "  " << model->describe() << ": final training loss "
        << (r.epochs.empty() ? NAN : r.epochs.back().loss) << "\n";
  }
  out << "\n(" << epochs << " epochs each, batch " << tc.batch_size << ", Adam lr " << tc.lr
      << ", seed " << seed << "; HR@10 and NDCG@10 on the test split)\n\n";
  cli::Table table(
      {"kind", "HR@10", "NDCG@10", "s/epoch", "peak MiB train", "peak MiB train+eval"});
  for (const Row& r : rows) {
    if (std::isnan(r.seconds))
      table.add_row({r.kind, cli::Cell(r.hr10, 4), cli::Cell(r.ndcg10, 4), "-", "-", "-"});
    else
      table.add_row({r.kind,
                     cli::Cell(r.hr10, 4),
                     cli::Cell(r.ndcg10, 4),
                     cli::Cell(r.seconds, 3),
                     cli::Cell(r.train_mib, 2),
                     cli::Cell(r.eval_mib, 2)});
  }
  table.print(out);

  heading(out, "3. Reading the table");
  out << "HR@10 is the share of users whose held-out item ranks in the top 10 of the 101\n"
         "candidates (a random ranking scores about 0.1); NDCG@10 also rewards ranking it near\n"
         "the top. Popularity only knows which items are frequent overall.\n\n"
         "Why linear attention can lose on this data. Exact attention can put almost all its\n"
         "weight on one position (the item "
      << sc.period
      << " steps back): a peaked softmax. FAVOR+ estimates\n"
         "exp(q . k) with m random features and the estimate's variance grows with q . k\n"
         "(lesson 3): a sharp, position-specific attention is what it approximates worst, and\n"
         "training drifts towards flatter, average-like attention. LISA attends over codewords,\n"
         "not positions: items that share a codeword are one key, and position enters the\n"
         "attention only through the recency decay (the positional embedding is on the residual\n"
         "path, not in the histograms). \"The item "
      << sc.period
      << " steps back\" cannot be singled out by a\n"
         "histogram; \"the recent past\" and \"the user's topics\" can. The short-range chains\n"
         "need no attention at all: the last position's own embedding, on the residual path,\n"
         "predicts its successor in every model.\n\n";
  const double gap_favor = rows[2].hr10 - rows[1].hr10, gap_lisa = rows[3].hr10 - rows[1].hr10;
  std::ostringstream gaps;
  gaps << std::showpos << std::fixed << std::setprecision(3) << "FAVOR+ " << gap_favor
       << ", LISA-Base " << gap_lisa << std::noshowpos << ".\nWith " << sc.users
       << " test users the standard error of an HR@10 is at most sqrt(0.25 / " << sc.users
       << ") = " << std::sqrt(0.25 / static_cast<double>(sc.users));
  out << "In this run, HR@10 against exact attention: " << gaps.str()
      << ":\ndifferences of that size are noise, not a ranking of the methods.\n\n"
         "Memory: the high-water mark of live tensor bytes (attnlab's allocator counts every\n"
         "tensor: activations kept for backward, gradients, Adam's moments) above what was live\n"
         "before training. \"train\" is read after the last epoch without evaluation;\n"
         "\"train+eval\" includes the final validation and test, which score 256 users x 101\n"
         "candidates at once (here the larger figure). LISA-Base quantizes every candidate\n"
         "through its product quantizer (its targets are compressed too), hence its evaluation\n"
         "peak. At L = "
      << maxlen << " an L x L attention matrix is " << maxlen * maxlen
      << " numbers per user (and the fused\n"
         "softmax kernel never stores it): the attention is a small part of the cost, and the\n"
         "linear kinds' advantage in time and memory appears only at long sequences (lessons 4\n"
         "and 5). Seconds per epoch are wall time on a shared machine: compare within one run.\n\n";

  bool finite = rows.size() == kinds.size() + 1;
  for (const Row& r : rows) {
    finite &= std::isfinite(r.hr10) && std::isfinite(r.ndcg10);
    if (r.kind != "popularity")
      finite &= std::isfinite(r.seconds) && std::isfinite(r.train_mib) && std::isfinite(r.eval_mib);
  }
  bool ok =
      check(out, "the table has one row per kind (and popularity) with finite numbers", finite);
  for (std::size_t i = 1; i < rows.size(); ++i) {
    ok &= check(out,
                rows[i].kind + " beats the popularity baseline on test HR@10",
                rows[i].hr10 > rows[0].hr10);
  }
  return ok;
}

const Register lesson_6(6,
                        "A small ablation: three attention kinds on the recommendation data",
                        lesson_ablation);

}  // namespace
}  // namespace attnlab::lessons
