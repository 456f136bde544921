// The dependency-free SVG plots (experiments/support/svg_plot.hpp, plot_data.hpp, plot.hpp): the
// SVG text is parsed back to check what is drawn, where, and in which order.
#include <doctest/doctest.h>

#include <cmath>
#include <iostream>
#include <regex>
#include <sstream>
#include <string>
#include <vector>

#include "core/error.hpp"
#include "experiments/support/plot.hpp"
#include "experiments/support/plot_data.hpp"
#include "experiments/support/svg_plot.hpp"
#include "tests/cli_test_helpers.hpp"
#include "tests/scratch_path.hpp"

namespace {

using namespace attnlab;
using cli::SvgChart;

struct Pixel {
  double x, y;
};

// One <g class="series"> of the SVG: its legend name and the points of each polyline.
struct DrawnSeries {
  std::string name;
  std::vector<std::vector<Pixel>> polylines;
  int markers = 0;
};

std::vector<Pixel> parse_points(const std::string& text) {
  std::vector<Pixel> points;
  std::istringstream in(text);
  std::string pair;
  while (in >> pair) {
    const std::size_t comma = pair.find(',');
    REQUIRE(comma != std::string::npos);
    points.push_back({std::stod(pair.substr(0, comma)), std::stod(pair.substr(comma + 1))});
  }
  return points;
}

std::vector<DrawnSeries> drawn_series(const std::string& svg) {
  std::vector<DrawnSeries> all;
  const std::string open = "<g class=\"series\"";
  for (std::size_t at = svg.find(open); at != std::string::npos; at = svg.find(open, at + 1)) {
    const std::string block = svg.substr(at, svg.find("</g>", at) - at);
    DrawnSeries s;
    const std::size_t t = block.find("<title>") + 7;
    s.name = block.substr(t, block.find("</title>") - t);
    const std::regex polyline("<polyline[^>]* points=\"([^\"]*)\"");
    for (std::sregex_iterator m(block.begin(), block.end(), polyline), end; m != end; ++m)
      s.polylines.push_back(parse_points((*m)[1]));
    const std::regex marker("<(circle|rect|path) ");
    s.markers = static_cast<int>(
        std::distance(std::sregex_iterator(block.begin(), block.end(), marker), {}));
    all.push_back(s);
  }
  return all;
}

// The value of attribute `name` in the first element that starts with `element`.
double attribute(const std::string& svg, const std::string& element, const std::string& name) {
  const std::size_t at = svg.find(element);
  REQUIRE_MESSAGE(at != std::string::npos, element);
  const std::size_t v = svg.find(name + "=\"", at) + name.size() + 2;
  return std::stod(svg.substr(v, svg.find('"', v) - v));
}

// Two groups, rows not in x order; y = x * x for "a", 10 * x for "b" with one missing y.
cli::Table small_table() {
  cli::Table t({"kind", "x", "y"});
  t.add_row({"a", 4, 16});
  t.add_row({"b", 1, 10});
  t.add_row({"a", 1, 1});
  t.add_row({"b", 2, "-"});
  t.add_row({"a", 3, 9});
  t.add_row({"b", 3, 30});
  t.add_row({"a", 2, 4});
  t.add_row({"b", 4, 40});
  return t;
}

SvgChart small_chart(int log_x = 0, int log_y = 0) {
  SvgChart c;
  c.title = "small";
  c.x = {"x", "x", log_x};
  c.y = {"y", "y", log_y};
  c.series = cli::select_series(cli::text_table(small_table()), {"x", "y", {"kind"}, {}}, "small");
  return c;
}

bool is_nice_step(double step) {
  const double power = std::pow(10.0, std::floor(std::log10(step) + 1e-9));
  const double m = step / power;
  return std::fabs(m - 1) < 1e-9 || std::fabs(m - 2) < 1e-9 || std::fabs(m - 5) < 1e-9;
}

}  // namespace

TEST_SUITE("experiments_svg_plot") {
  TEST_CASE("svg plot: one polyline per group - the points in x order - a missing y is a gap") {
    for (int log : {0, 2, 10}) {
      CAPTURE(log);
      const std::string svg = cli::render_svg(small_chart(log, log));
      const auto series = drawn_series(svg);
      REQUIRE(series.size() == 2);
      CHECK(series[0].name == "kind=a");
      CHECK(series[1].name == "kind=b");
      REQUIRE(series[0].polylines.size() == 1);
      const auto& a = series[0].polylines[0];
      REQUIRE(a.size() == 4);
      CHECK(series[0].markers == 4);
      for (std::size_t i = 1; i < a.size(); ++i) {
        CHECK(a[i].x > a[i - 1].x);  // increasing x ...
        CHECK(a[i].y < a[i - 1].y);  // ... and y = x * x rising: the pixel row goes up
      }
      // "b" at x = 2 has no y: the line stops after x = 1 and starts again at x = 3.
      REQUIRE(series[1].polylines.size() == 2);
      CHECK(series[1].polylines[0].size() == 1);
      CHECK(series[1].polylines[1].size() == 2);
      CHECK(series[1].markers == 3);
      CHECK(series[1].polylines[0][0].x == doctest::Approx(a[0].x));  // both start at x = 1
      // Every point inside the frame; the legend inside the canvas, right of the frame.
      const double left = attribute(svg, "<rect class=\"frame\"", "x");
      const double top = attribute(svg, "<rect class=\"frame\"", "y");
      const double right = left + attribute(svg, "<rect class=\"frame\"", "width");
      const double bottom = top + attribute(svg, "<rect class=\"frame\"", "height");
      for (const auto& s : series)
        for (const auto& line : s.polylines)
          for (const Pixel& p : line) {
            CHECK(p.x >= left - 1e-6);
            CHECK(p.x <= right + 1e-6);
            CHECK(p.y >= top - 1e-6);
            CHECK(p.y <= bottom + 1e-6);
          }
      const double width = attribute(svg, "<svg ", "width");
      const std::string legend = svg.substr(svg.find("<g class=\"legend\">"));
      const double legend_x = attribute(legend, "<line ", "x1");
      CHECK(legend_x > right);
      CHECK(legend_x + 28 + 6 + 0.62 * 12 * 6 <= width);  // "kind=a" fits
    }
  }

  TEST_CASE("svg plot: a long series has markers only on its lone points") {
    SvgChart c;
    c.x = {"step", "step", 0};
    c.y = {"cosine", "cosine", 0};
    c.series.push_back({"long", {}, {}});
    for (int i = 0; i < 200; ++i) {
      c.series[0].x.push_back(i);
      c.series[0].y.push_back(i == 100 || i == 102 ? NAN : std::cos(i * 0.1));
    }
    const auto series = drawn_series(cli::render_svg(c));
    REQUIRE(series.size() == 1);
    REQUIRE(series[0].polylines.size() == 3);
    CHECK(series[0].polylines[0].size() == 100);
    CHECK(series[0].polylines[1].size() == 1);  // x = 101, between the two gaps
    CHECK(series[0].polylines[2].size() == 97);
    CHECK(series[0].markers == 1);
  }

  TEST_CASE("svg plot: the same chart gives the same bytes - self-contained") {
    const std::string first = cli::render_svg(small_chart(2, 10));
    CHECK(first == cli::render_svg(small_chart(2, 10)));
    CHECK(first.rfind("<?xml", 0) == 0);
    CHECK(first.find("<script") == std::string::npos);
    CHECK(first.find("href") == std::string::npos);  // no external font, image or stylesheet
    CHECK(first.find("@font-face") == std::string::npos);
    // cli::plot twice: the same .svg file.
    const std::string dir = attnlab::testing::scratch_path("svg_plot_twice");
    cli::make_directories(dir);
    cli::PlotSpec spec;
    spec.title = "small";
    spec.x = "x";
    spec.y = "y";
    spec.group = {"kind"};
    spec.log_x = spec.log_y = true;
    small_table().write(dir, "small");
    std::ostringstream notes;
    std::streambuf* previous = std::cerr.rdbuf(notes.rdbuf());
    cli::plot(small_table(), dir, "small", spec);
    const std::string once = attnlab_test::read_text(dir + "/small.svg");
    cli::plot(small_table(), dir, "small", spec);
    std::cerr.rdbuf(previous);
    CHECK(!once.empty());
    CHECK(once == attnlab_test::read_text(dir + "/small.svg"));
    CHECK(once == cli::render_svg(small_chart(2, 10)));
    CHECK(attnlab_test::read_text(dir + "/small.gp").find("set logscale x 2") != std::string::npos);
    if (!cli::gnuplot_available()) {
      CHECK(notes.str().find("note: wrote " + dir + "/small.svg; gnuplot is not installed") !=
            std::string::npos);
      CHECK(notes.str().find("install gnuplot-nox") == std::string::npos);
    }
  }

  TEST_CASE("svg plot: a log axis refuses 0 and negative values naming the column and value") {
    for (double bad : {0.0, -3.0}) {
      CAPTURE(bad);
      SvgChart x = small_chart(2, 0);
      x.series[1].x[0] = bad;
      const std::string expected = "log x axis cannot show the value " +
                                   std::string(bad == 0 ? "0" : "-3") +
                                   " of column 'x' (series 'kind=b')";
      CHECK_THROWS_WITH_AS(cli::render_svg(x), doctest::Contains(expected.c_str()), ValueError);
      SvgChart y = small_chart(0, 10);
      y.series[0].y[2] = bad;
      CHECK_THROWS_WITH_AS(cli::render_svg(y), doctest::Contains("of column 'y'"), ValueError);
      y.series[0].y[2] = 1;  // the same chart with the value > 0
      CHECK_NOTHROW(cli::render_svg(y));
    }
    // A missing value is a gap, not an error, even on a log axis.
    SvgChart gap = small_chart(10, 10);
    gap.series[0].y[0] = NAN;
    CHECK_NOTHROW(cli::render_svg(gap));
    SvgChart base3 = small_chart(3, 0);
    CHECK_THROWS_WITH_AS(cli::render_svg(base3), doctest::Contains("log base 3"), ValueError);
  }

  TEST_CASE("svg plot: linear ticks are 1-2-5 steps covering the data - log ticks are powers") {
    const double ranges[][2] = {
        {0, 1}, {0.013, 0.0871}, {-3.5, 12}, {1200, 98000}, {0.5, 0.5}, {-7, -7}, {0, 1e-6}};
    for (const auto& r : ranges) {
      CAPTURE(r[0]);
      CAPTURE(r[1]);
      const cli::AxisTicks t = cli::linear_ticks(r[0], r[1], 6);
      REQUIRE(t.values.size() >= 3);
      CHECK(t.values.size() <= 12);
      const double step = t.values[1] - t.values[0];
      CHECK(is_nice_step(step));
      CHECK(t.lo <= r[0]);
      CHECK(t.hi >= r[1]);
      CHECK(t.values.front() == t.lo);
      CHECK(t.values.back() == t.hi);
      for (double v : t.values) CHECK(std::fabs(v / step - std::round(v / step)) < 1e-9);
    }
    const cli::AxisTicks l = cli::log_ticks(16, 4096, 2);
    CHECK(l.values == std::vector<double>{16, 32, 64, 128, 256, 512, 1024, 2048, 4096});
    const cli::AxisTicks d = cli::log_ticks(0.003, 250, 10);
    CHECK(d.values == std::vector<double>{1e-3, 1e-2, 1e-1, 1, 10, 100, 1000});
    const cli::AxisTicks one = cli::log_ticks(100, 100, 10);  // one value: a power either side
    CHECK(one.values == std::vector<double>{10, 100, 1000});
    const cli::AxisTicks wide = cli::log_ticks(1e-30, 1, 10);  // every k-th power, at most 12
    CHECK(wide.values.size() <= 12);
    CHECK(wide.lo <= 1e-30);
    CHECK(wide.hi >= 1);
    CHECK_THROWS_AS(cli::log_ticks(0, 1, 10), ValueError);
    CHECK_THROWS_AS(cli::linear_ticks(-1e308, 1e308), ValueError);  // no finite step
    // The labels: plain numbers, no rounding noise.
    const std::string svg = cli::render_svg(small_chart(0, 0));
    CHECK(svg.find(">0.30000000000000004<") == std::string::npos);
    CHECK(svg.find(">40<") != std::string::npos);
    CHECK(svg.find(">1.0<") != std::string::npos);  // x: steps of 0.5, one decimal on every tick
    CHECK(svg.find(">1.5<") != std::string::npos);
    // A log axis over many powers labels every tick as a power, none as a plain number.
    SvgChart many_powers = small_chart(0, 10);
    many_powers.series[0].y[0] = 1e-9;
    const std::string powers = cli::render_svg(many_powers);
    CHECK(powers.find(">10<tspan dy=\"-5\" font-size=\"9\">-9</tspan></text>") !=
          std::string::npos);
    CHECK(powers.find(">10<tspan dy=\"-5\" font-size=\"9\">-3</tspan></text>") !=
          std::string::npos);
    CHECK(powers.find(">0.001<") == std::string::npos);
  }

  TEST_CASE("plot data: the CSV Table::csv writes reads back - quoted cells - bad CSV") {
    cli::Table t({"name", "x", "note"});
    t.add_row({"a,b", 1, "say \"hi\""});
    t.add_row({"line\nbreak", 2, ""});
    const cli::TextTable back = cli::parse_csv(t.csv(), "t.csv");
    CHECK(back.columns == std::vector<std::string>{"name", "x", "note"});
    REQUIRE(back.rows.size() == 2);
    CHECK(back.rows[0] == std::vector<std::string>{"a,b", "1", "say \"hi\""});
    CHECK(back.rows[1] == std::vector<std::string>{"line\nbreak", "2", ""});
    CHECK(cli::parse_csv("a,b\n1,2\n", "lf.csv").rows.size() == 1);  // LF line ends too
    CHECK_THROWS_WITH_AS(
        cli::parse_csv("a,b\n\"1,2\n", "bad.csv"), doctest::Contains("never closed"), IOError);
    CHECK_THROWS_WITH_AS(cli::parse_csv("a,b\n1,2,3\n", "bad.csv"),
                         doctest::Contains("bad.csv: data row 1 has 3 fields, the header 2"),
                         IOError);
    CHECK_THROWS_AS(cli::read_csv(attnlab::testing::scratch_path("no_such.csv")), IOError);
    for (const char* missing : {"-", "", "nan", "inf", "abc", "1.5x"})
      CHECK(std::isnan(cli::cell_number(missing)));
    CHECK(cli::cell_number(" 2.5e-3 ") == 2.5e-3);
  }

  TEST_CASE("plot data: series selection - where - and its errors") {
    const cli::TextTable t = cli::text_table(small_table());
    const auto b = cli::select_series(t, {"x", "y", {}, {{"kind", "b"}}}, "small");
    REQUIRE(b.size() == 1);
    CHECK(b[0].name == "y");
    CHECK(b[0].x == std::vector<double>{1, 2, 3, 4});
    CHECK(std::isnan(b[0].y[1]));
    CHECK_THROWS_WITH_AS(cli::select_series(t, {"x", "nope", {}, {}}, "small"),
                         doctest::Contains("no column 'nope' in small (columns: 'kind', 'x', 'y')"),
                         ValueError);
    CHECK_THROWS_WITH_AS(cli::select_series(t, {"x", "y", {}, {{"kind", "c"}}}, "small"),
                         doctest::Contains("no row of small is left to plot after --where"),
                         ValueError);
    CHECK_THROWS_WITH_AS(cli::select_series(t, {"kind", "y", {}, {}}, "small"),
                         doctest::Contains("column 'kind' of small has no numeric value"),
                         ValueError);
    // A number printed as 0.000 keeps its value: it can go on a log axis.
    cli::Table tiny({"x", "y"});
    tiny.add_row({1, cli::Cell(0.0004, 3)});
    tiny.add_row({2, cli::Cell(0.5, 3)});
    const cli::TextTable text = cli::text_table(tiny);
    CHECK(text.rows[0][1] == "0.0004");
    CHECK(text.rows[1][1] == "0.500");  // as printed when that is exact enough
  }
}

TEST_SUITE("experiments_svg_plot") {
  TEST_CASE("cli::plot: a quoted group value with a comma is one group in the gnuplot script") {
    cli::Table t({"name", "x", "y"});
    t.add_row({"block0,attn", 1, 0.5});
    t.add_row({"block0,attn", 2, 0.25});
    const std::string dir = attnlab::testing::scratch_path("svg_plot_quoted");
    t.write(dir, "quoted");
    cli::PlotSpec spec;
    spec.x = "x";
    spec.y = "y";
    spec.group = {"name"};
    std::ostringstream notes;
    std::streambuf* previous = std::cerr.rdbuf(notes.rdbuf());
    cli::plot(t, dir, "quoted", spec);
    std::cerr.rdbuf(previous);
    const std::string gp = attnlab_test::read_text(dir + "/quoted.gp");
    CAPTURE(gp);
    CHECK(gp.find("strcol(1) eq \"block0,attn\"") != std::string::npos);
    CHECK(gp.find("title \"name=block0,attn\"") != std::string::npos);
  }
}
