// Sequential-recommendation data: user histories, the loaders for the SASRec format and for raw
// MovieLens ratings.dat, a synthetic generator, and the leave-one-out split of the SASRec paper.
//
// Ids: items are 1..num_items (0 is padding); users are 0..num_users-1 in the order the loader
// saw them (for the SASRec format, user u of the file is user u-1 here).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "core/rng.hpp"

namespace attnlab::rec {

struct SequenceDataset {
  int64_t num_items = 0;
  std::vector<std::vector<int64_t>> sequences;  // one chronological item list per user
  int64_t num_users() const { return static_cast<int64_t>(sequences.size()); }
  int64_t num_interactions() const;
  std::string summary() const;  // "6040 users, 3416 items, 999611 interactions, ..."
};

// "user item" per line (whitespace-separated positive integers), lines of one user in time order
// (users may be interleaved; ids need not be contiguous, but item ids index the embedding table
// directly, so a file whose largest item id exceeds 4 x (distinct items) + 1024 is refused with
// "item ids are not dense ... renumber the items" instead of allocating a table for ids never
// used). A malformed line throws IOError naming the file and the line number; an empty file is
// an error too.
SequenceDataset load_sasrec_file(const std::string& path);
// MovieLens ratings.dat ("UserID::MovieID::Rating::Timestamp"): each user's ratings sorted by
// timestamp (ties keep file order), items with fewer than min_item_count ratings dropped (one
// pass, as the SASRec file was made), users and items renumbered in order of first appearance.
SequenceDataset load_movielens_ratings(const std::string& path, int64_t min_item_count = 5);
// The same parsers on in-memory text (`source` names it in errors; the fuzz targets use these).
SequenceDataset parse_sasrec_text(const std::string& text, const std::string& source);
SequenceDataset parse_movielens_text(const std::string& text,
                                     const std::string& source,
                                     int64_t min_item_count = 5);

// Synthetic histories with structure that attention must find (deterministic from the seed):
//   short range: with probability p_next the next item is the current item's successor
//                (items form chains: think episodes of a series);
//   long range:  with probability p_recall it is the successor of the item `period` steps back
//                (a dependency `period` positions away), and with probability p_taste an item of
//                one of the user's favourite topics (a preference spread over the whole history);
//   otherwise a uniformly random item.
struct SyntheticConfig {
  int64_t users = 2000;
  int64_t items = 1000;
  int64_t topics = 20;           // items are split into topics of equal size
  int64_t favourite_topics = 2;  // per user
  int64_t min_length = 20, max_length = 120;
  int64_t period = 12;
  double p_next = 0.35, p_recall = 0.25, p_taste = 0.3;  // the rest is noise
  uint64_t seed = 1;
};
SequenceDataset synthetic_sequences(const SyntheticConfig& config);

// SASRec's leave-one-out split: for a user with n >= 3 items, train = all but the last two,
// valid = the second to last, test = the last; users with n < 3 are training-only.
struct SplitDataset {
  int64_t num_items = 0;
  std::vector<std::vector<int64_t>> train;
  std::vector<int64_t> valid, test;  // 0 where the user has no held-out item
};
SplitDataset leave_one_out(const SequenceDataset& data);

}  // namespace attnlab::rec
