// Line charts as self-contained SVG, with no dependency: what `cli::plot` and `attnlab plot` draw
// when gnuplot is missing (and when it is not). One polyline with markers per series (a missing y
// breaks the line; markers on every point of a series up to 60 points), linear or logarithmic axes
// with nice ticks (1-2-5 steps, powers on a log axis), axis labels, a title, a legend right of the
// plot, a light grid and the Okabe-Ito palette (safe for colour-blind readers). The text is
// deterministic: the same chart gives the same bytes.
#pragma once

#include <string>
#include <vector>

namespace attnlab::cli {

struct SvgAxis {
  std::string label;   // drawn along the axis
  std::string column;  // the data column it shows, named in errors
  int log_base = 0;    // 0: linear; 2 or 10: logarithmic
};

// One line. y[i] not finite: a gap (the line stops and starts again); x[i] not finite: the
// point is dropped. Points are drawn in increasing x whatever their order here (a stable sort).
struct SvgSeries {
  std::string name;  // its legend entry
  std::vector<double> x, y;
};

struct SvgChart {
  std::string title;
  SvgAxis x, y;
  std::vector<SvgSeries> series;
};

// The chart as an SVG document. ValueError for a value <= 0 on a log axis (naming the column and
// the value), a log base other than 2 or 10, x and y of different lengths, or no finite point.
std::string render_svg(const SvgChart& chart);

// render_svg written to `path` atomically (core/file_io.hpp write_file_atomic).
void write_svg(const std::string& path, const SvgChart& chart);

// The ticks of one axis: the drawn range [lo, hi] (it contains the data) and the tick values.
struct AxisTicks {
  double lo = 0, hi = 1;
  std::vector<double> values;
};

// Linear: about `target` ticks at multiples of a 1, 2 or 5 times a power of ten; the range is
// widened to whole steps (and around a single value).
AxisTicks linear_ticks(double lo, double hi, int target = 6);
// Logarithmic (0 < lo <= hi): the range widened to whole powers of `base`, ticks at powers of
// `base` (every k-th power when there would be more than `max_count`).
AxisTicks log_ticks(double lo, double hi, int base, int max_count = 12);

}  // namespace attnlab::cli
