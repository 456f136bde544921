#include "layers/recommender/seqrec_data.hpp"

#include <algorithm>
#include <cctype>
#include <cstdlib>
#include <map>
#include <set>
#include <sstream>
#include <unordered_map>

#include "core/error.hpp"
#include "core/file_io.hpp"

namespace attnlab::rec {
namespace {

// Parses a positive integer field that fits int64; false otherwise.
bool parse_id(const std::string& s, int64_t& out) {
  if (s.empty() || s.size() > 18)
    return false;
  int64_t v = 0;
  for (char c : s) {
    if (c < '0' || c > '9')
      return false;
    v = v * 10 + (c - '0');
  }
  if (v <= 0)
    return false;
  out = v;
  return true;
}

bool parse_int(const std::string& s, int64_t& out) {
  std::size_t i = !s.empty() && s[0] == '-' ? 1 : 0;
  // At most 18 digits, so that v * 10 + digit below cannot overflow int64 (19 could).
  if (i == s.size() || s.size() - i > 18)
    return false;
  int64_t v = 0;
  for (; i < s.size(); ++i) {
    if (s[i] < '0' || s[i] > '9')
      return false;
    v = v * 10 + (s[i] - '0');
  }
  out = s[0] == '-' ? -v : v;
  return true;
}

// Calls f(line, line_number) for each line; a final line without '\n' counts. '\r' before '\n'
// is dropped (files edited on Windows).
template <class F>
void for_each_line(const std::string& text, F&& f) {
  std::size_t start = 0;
  int64_t number = 0;
  while (start < text.size()) {
    std::size_t end = text.find('\n', start);
    if (end == std::string::npos)
      end = text.size();
    std::string line = text.substr(start, end - start);
    if (!line.empty() && line.back() == '\r')
      line.pop_back();
    f(line, ++number);
    start = end + 1;
  }
}

[[noreturn]] void bad_line(const std::string& source, int64_t line, const std::string& what) {
  throw IOError(source + ":" + std::to_string(line) + ": " + what);
}

std::string shorten(const std::string& s) {
  return s.size() > 60 ? s.substr(0, 60) + "..." : s;
}

// A field that must be a positive id ("user id '0x1' is not a positive integer" otherwise).
int64_t id_field(const std::string& field,
                 const char* name,
                 const std::string& source,
                 int64_t line) {
  int64_t id = 0;
  if (!parse_id(field, id))
    bad_line(
        source, line, std::string(name) + " '" + shorten(field) + "' is not a positive integer");
  return id;
}

int64_t integer_field(const std::string& field,
                      const char* name,
                      const std::string& source,
                      int64_t line) {
  int64_t value = 0;
  if (!parse_int(field, value))
    bad_line(source, line, std::string(name) + " '" + shorten(field) + "' is not an integer");
  return value;
}

}  // namespace

int64_t SequenceDataset::num_interactions() const {
  int64_t n = 0;
  for (const auto& s : sequences) n += static_cast<int64_t>(s.size());
  return n;
}

std::string SequenceDataset::summary() const {
  std::ostringstream os;
  const int64_t n = num_interactions();
  os << num_users() << " users, " << num_items << " items, " << n << " interactions, "
     << (num_users() ? static_cast<double>(n) / num_users() : 0.0) << " per user";
  return os.str();
}

SequenceDataset parse_sasrec_text(const std::string& text, const std::string& source) {
  std::map<int64_t, std::vector<int64_t>> by_user;
  int64_t max_item = 0;
  bool trailing_blank = false;
  for_each_line(text, [&](const std::string& line, int64_t number) {
    std::istringstream is(line);
    std::string a, b, extra;
    is >> a >> b;
    if (a.empty() && b.empty()) {  // blank lines are allowed only at the end
      trailing_blank = true;
      return;
    }
    if (trailing_blank)
      bad_line(source, number - 1, "blank line inside the file");
    if (b.empty() || (is >> extra)) {
      bad_line(
          source, number, "expected 'user item', got '" + shorten(line) + "'");
    }
    const int64_t user = id_field(a, "user id", source, number);
    const int64_t item = id_field(b, "item id", source, number);
    by_user[user].push_back(item);
    max_item = std::max(max_item, item);
  });
  ATTNLAB_CHECK(!by_user.empty(), IOError, source, ": no interactions (empty file)");
  // Item ids index the embedding table (1..num_items): ids far sparser than the items used would
  // allocate rows for nothing (an id of 10^12 fails with bad_alloc, 10^8 takes gigabytes).
  std::set<int64_t> distinct;
  for (const auto& [user, items] : by_user) distinct.insert(items.begin(), items.end());
  const int64_t used = static_cast<int64_t>(distinct.size());
  ATTNLAB_CHECK(max_item <= 4 * used + 1024,
                IOError,
                source,
                ": item ids are not dense: the largest is ",
                max_item,
                " but only ",
                used,
                " distinct items appear (SASRec-format ids must be 1..number of items, at most ",
                4 * used + 1024,
                " here: renumber the items)");
  SequenceDataset d;
  d.num_items = max_item;
  for (auto& [user, items] : by_user) d.sequences.push_back(std::move(items));
  return d;
}

SequenceDataset load_sasrec_file(const std::string& path) {
  return parse_sasrec_text(read_file(path), path);
}

SequenceDataset parse_movielens_text(const std::string& text,
                                     const std::string& source,
                                     int64_t min_item_count) {
  struct Rating {
    int64_t user, item, time, order;
  };
  std::vector<Rating> ratings;
  bool trailing_blank = false;
  for_each_line(text, [&](const std::string& line, int64_t number) {
    if (line.find_first_not_of(" \t") == std::string::npos) {
      trailing_blank = true;
      return;
    }
    if (trailing_blank)
      bad_line(source, number - 1, "blank line inside the file");
    std::vector<std::string> f;
    std::size_t start = 0;
    while (true) {
      const std::size_t sep = line.find("::", start);
      f.push_back(line.substr(start, sep == std::string::npos ? std::string::npos : sep - start));
      if (sep == std::string::npos)
        break;
      start = sep + 2;
    }
    if (f.size() != 4) {
      bad_line(source,
                                   number,
                                   "expected 'UserID::MovieID::Rating::Timestamp', got '" +
                                       shorten(line) + "'");
    }
    Rating r{0, 0, 0, static_cast<int64_t>(ratings.size())};
    r.user = id_field(f[0], "UserID", source, number);
    r.item = id_field(f[1], "MovieID", source, number);
    integer_field(f[2], "Rating", source, number);  // checked, not used
    r.time = integer_field(f[3], "Timestamp", source, number);
    ratings.push_back(r);
  });
  ATTNLAB_CHECK(!ratings.empty(), IOError, source, ": no ratings (empty file)");
  ATTNLAB_CHECK(
      min_item_count >= 1, ValueError, "load_movielens_ratings: min_item_count must be >= 1");
  std::unordered_map<int64_t, int64_t> count;
  for (const Rating& r : ratings) ++count[r.item];
  // Sort by (user's first appearance, timestamp, file order): each user's history in time order.
  std::unordered_map<int64_t, int64_t> user_rank;
  for (const Rating& r : ratings) user_rank.emplace(r.user, static_cast<int64_t>(user_rank.size()));
  std::stable_sort(ratings.begin(), ratings.end(), [&](const Rating& a, const Rating& b) {
    const int64_t ua = user_rank[a.user], ub = user_rank[b.user];
    return ua != ub ? ua < ub : a.time < b.time;
  });
  std::unordered_map<int64_t, int64_t> item_id, user_id;
  SequenceDataset d;
  for (const Rating& r : ratings) {
    if (count[r.item] < min_item_count)
      continue;
    auto u = user_id.emplace(r.user, static_cast<int64_t>(user_id.size()));
    if (u.second)
      d.sequences.emplace_back();
    auto it = item_id.emplace(r.item, static_cast<int64_t>(item_id.size()) + 1);
    d.sequences[u.first->second].push_back(it.first->second);
  }
  d.num_items = static_cast<int64_t>(item_id.size());
  ATTNLAB_CHECK(
      d.num_items > 0, IOError, source, ": no item has ", min_item_count, " or more ratings");
  return d;
}

SequenceDataset load_movielens_ratings(const std::string& path, int64_t min_item_count) {
  return parse_movielens_text(read_file(path), path, min_item_count);
}

SequenceDataset synthetic_sequences(const SyntheticConfig& c) {
  ATTNLAB_CHECK(c.users > 0 && c.items >= c.topics && c.topics > 0 && c.favourite_topics > 0 &&
                    c.favourite_topics <= c.topics,
                ValueError,
                "synthetic_sequences: need users > 0, topics in [1, items] and "
                "favourite_topics in [1, topics]");
  ATTNLAB_CHECK(c.min_length >= 3 && c.max_length >= c.min_length && c.period >= 1,
                ValueError,
                "synthetic_sequences: need 3 <= min_length <= max_length and period >= 1");
  ATTNLAB_CHECK(
      c.p_next >= 0 && c.p_recall >= 0 && c.p_taste >= 0 && c.p_next + c.p_recall + c.p_taste <= 1,
      ValueError,
      "synthetic_sequences: probabilities must be >= 0 and sum to <= 1");
  const int64_t per_topic = c.items / c.topics;
  // Successor chains: a fixed random permutation of the items, each item's successor being the
  // next one in it (items of a chain stay within one topic's range).
  std::vector<int64_t> successor(c.items + 1);
  for (int64_t t = 0; t < c.topics; ++t) {
    const int64_t lo = 1 + t * per_topic, hi = t + 1 == c.topics ? c.items + 1 : lo + per_topic;
    std::vector<int64_t> order;
    for (int64_t i = lo; i < hi; ++i) order.push_back(i);
    for (int64_t i = static_cast<int64_t>(order.size()) - 1; i > 0; --i) {
      std::swap(order[i], order[uniform_int(RngKey{c.seed, 1}, lo * 100000 + i, 0, i + 1)]);
    }
    for (std::size_t i = 0; i < order.size(); ++i)
      successor[order[i]] = order[(i + 1) % order.size()];
  }
  SequenceDataset d;
  d.num_items = c.items;
  for (int64_t u = 0; u < c.users; ++u) {
    const RngKey key{c.seed, 1000 + static_cast<uint64_t>(u)};
    uint64_t draw = 0;
    auto uniform = [&] {
      return uniform01(key, draw++);
    };
    auto below = [&](int64_t n) {
      return uniform_int(key, draw++, 0, n);
    };
    std::vector<int64_t> fav;
    for (int64_t f = 0; f < c.favourite_topics; ++f) fav.push_back(below(c.topics));
    const int64_t len = c.min_length + below(c.max_length - c.min_length + 1);
    std::vector<int64_t> seq;
    seq.push_back(1 + below(c.items));
    while (static_cast<int64_t>(seq.size()) < len) {
      const double r = uniform();
      int64_t next;
      if (r < c.p_next) {
        next = successor[seq.back()];
      } else if (r < c.p_next + c.p_recall && static_cast<int64_t>(seq.size()) >= c.period) {
        next = successor[seq[seq.size() - c.period]];
      } else if (r < c.p_next + c.p_recall + c.p_taste) {
        const int64_t topic = fav[below(c.favourite_topics)];
        next = 1 + topic * per_topic + below(per_topic);
      } else {
        next = 1 + below(c.items);
      }
      seq.push_back(next);
    }
    d.sequences.push_back(std::move(seq));
  }
  return d;
}

SplitDataset leave_one_out(const SequenceDataset& data) {
  SplitDataset s;
  s.num_items = data.num_items;
  for (const auto& seq : data.sequences) {
    const std::size_t n = seq.size();
    if (n < 3) {
      s.train.push_back(seq);
      s.valid.push_back(0);
      s.test.push_back(0);
    } else {
      s.train.emplace_back(seq.begin(), seq.end() - 2);
      s.valid.push_back(seq[n - 2]);
      s.test.push_back(seq[n - 1]);
    }
  }
  return s;
}

}  // namespace attnlab::rec
