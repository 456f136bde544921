#include "core/shape.hpp"

#include <ostream>
#include <sstream>

#include "core/error.hpp"

namespace attnlab {

Shape::Shape(std::initializer_list<int64_t> dims) {
  for (int64_t d : dims) push_back(d);
}

Shape::Shape(const std::vector<int64_t>& dims) {
  for (int64_t d : dims) push_back(d);
}

void Shape::push_back(int64_t d) {
  ATTNLAB_CHECK(rank_ < kMaxRank, ShapeError, "Shape: rank above the maximum of ", kMaxRank);
  ATTNLAB_CHECK(d >= 0, ShapeError, "Shape: negative dimension ", d);
  dims_[rank_++] = d;
}

void Shape::insert(int pos, int64_t d) {
  ATTNLAB_CHECK(pos >= 0 && pos <= rank_,
                ValueError,
                "Shape::insert: position ",
                pos,
                " out of range for rank ",
                rank_);
  push_back(0);
  for (int i = rank_ - 1; i > pos; --i) dims_[i] = dims_[i - 1];
  dims_[pos] = d;
}

void Shape::erase(int pos) {
  ATTNLAB_CHECK(pos >= 0 && pos < rank_,
                ValueError,
                "Shape::erase: position ",
                pos,
                " out of range for rank ",
                rank_);
  for (int i = pos; i + 1 < rank_; ++i) dims_[i] = dims_[i + 1];
  --rank_;
}

int64_t Shape::numel() const {
  int64_t n = 1;
  for (int i = 0; i < rank_; ++i) n *= dims_[i];
  return n;
}

std::string Shape::str() const {
  std::ostringstream os;
  os << *this;
  return os.str();
}

bool Shape::operator==(const Shape& o) const {
  if (rank_ != o.rank_)
    return false;
  for (int i = 0; i < rank_; ++i)
    if (dims_[i] != o.dims_[i])
      return false;
  return true;
}

std::ostream& operator<<(std::ostream& os, const Shape& s) {
  os << '[';
  for (int i = 0; i < s.rank(); ++i) os << (i ? ", " : "") << s[i];
  return os << ']';
}

std::vector<int64_t> contiguous_strides(const Shape& s) {
  std::vector<int64_t> st(s.rank());
  int64_t acc = 1;
  for (int i = s.rank() - 1; i >= 0; --i) {
    st[i] = acc;
    acc *= s[i];
  }
  return st;
}

Shape broadcast_shapes(const Shape& a, const Shape& b, const char* op) {
  const int r = a.rank() > b.rank() ? a.rank() : b.rank();
  Shape out;
  for (int i = 0; i < r; ++i) {
    const int ia = i - (r - a.rank()), ib = i - (r - b.rank());
    const int64_t da = ia >= 0 ? a[ia] : 1, db = ib >= 0 ? b[ib] : 1;
    ATTNLAB_CHECK(da == db || da == 1 || db == 1,
                  ShapeError,
                  op,
                  ": shapes ",
                  a,
                  " and ",
                  b,
                  " cannot be broadcast together (dimension ",
                  i,
                  ": ",
                  da,
                  " vs ",
                  db,
                  ")");
    out.push_back(da == 1 ? db : da);
  }
  return out;
}

int normalize_axis(int axis, int rank, const char* op) {
  const int a = axis < 0 ? axis + rank : axis;
  ATTNLAB_CHECK(
      a >= 0 && a < rank, ValueError, op, ": axis ", axis, " out of range for rank ", rank);
  return a;
}

}  // namespace attnlab
