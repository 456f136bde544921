#include "experiments/support/svg_plot.hpp"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <numeric>

#include "core/error.hpp"
#include "core/file_io.hpp"
#include "experiments/support/svg_plot_text.hpp"

namespace attnlab::cli {

std::string xml_escape(const std::string& text) {
  std::string o;
  for (char c : text) {
    switch (c) {
      case '&':
        o += "&amp;";
        break;
      case '<':
        o += "&lt;";
        break;
      case '>':
        o += "&gt;";
        break;
      case '"':
        o += "&quot;";
        break;
      case '\'':
        o += "&#39;";
        break;
      default:
        o += c;
    }
  }
  return o;
}

namespace {

// Okabe & Ito's colour-blind-safe palette, yellow last (it is faint on white).
const char* const kPalette[] = {
    "#0072B2", "#D55E00", "#009E73", "#CC79A7", "#E69F00", "#56B4E9", "#000000", "#F0E442"};
constexpr int kPaletteSize = 8;
constexpr int kMarkerShapes = 5;
constexpr std::size_t kMaxMarkedPoints =
    60;  // coprime with 8: 40 series before colour and shape repeat
constexpr double kPlotWidth = 600, kPlotHeight = 380, kLabelFontSize = 13, kTitleFontSize = 15;
constexpr double kLegendRow = 18, kLegendSample = 28, kPad = 8;

// Coordinates with two decimals: enough for a screen, and the same text on every machine.
std::string num(double v) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.2f", v);
  return std::string(buf) == "-0.00" ? "0.00" : buf;
}

struct Point {
  double x, y;
};

// One series's drawable points in increasing x, split into runs at the missing y values.
std::vector<std::vector<Point>> segments(const SvgSeries& s) {
  std::vector<std::size_t> order;
  for (std::size_t i = 0; i < s.x.size(); ++i)
    if (std::isfinite(s.x[i]))
      order.push_back(i);
  std::stable_sort(
      order.begin(), order.end(), [&](std::size_t a, std::size_t b) { return s.x[a] < s.x[b]; });
  std::vector<std::vector<Point>> runs(1);
  for (std::size_t i : order) {
    if (std::isfinite(s.y[i]))
      runs.back().push_back({s.x[i], s.y[i]});
    else if (!runs.back().empty())
      runs.emplace_back();
  }
  if (runs.back().empty())
    runs.pop_back();
  return runs;
}

void check_log_value(const SvgAxis& axis, const char* which, double v, const std::string& series) {
  ATTNLAB_CHECK(axis.log_base == 0 || v > 0,
                ValueError,
                "svg plot: the log ",
                which,
                " axis cannot show the value ",
                v,
                " of column '",
                axis.column,
                "' (series '",
                series,
                "'); a log axis needs values > 0");
}

// The data ranges of both axes, after checking every value can be drawn.
void data_range(const SvgChart& c, double& x0, double& x1, double& y0, double& y1) {
  for (const SvgAxis* a : {&c.x, &c.y})
    ATTNLAB_CHECK(a->log_base == 0 || a->log_base == 2 || a->log_base == 10,
                  ValueError,
                  "svg plot: log base ",
                  a->log_base,
                  " for column '",
                  a->column,
                  "': expected 2 or 10 (or 0: linear)");
  x0 = y0 = INFINITY;
  x1 = y1 = -INFINITY;
  for (const SvgSeries& s : c.series) {
    ATTNLAB_CHECK(s.x.size() == s.y.size(),
                  ValueError,
                  "svg plot: series '",
                  s.name,
                  "' has ",
                  s.x.size(),
                  " x values and ",
                  s.y.size(),
                  " y values");
    for (const auto& run : segments(s))
      for (const Point& p : run) {
        check_log_value(c.x, "x", p.x, s.name);
        check_log_value(c.y, "y", p.y, s.name);
        x0 = std::min(x0, p.x);
        x1 = std::max(x1, p.x);
        y0 = std::min(y0, p.y);
        y1 = std::max(y1, p.y);
      }
  }
  ATTNLAB_CHECK(x0 <= x1,
                ValueError,
                "svg plot: no point with a numeric x ('",
                c.x.column,
                "') and y ('",
                c.y.column,
                "') to draw");
}

AxisTicks ticks_for(const SvgAxis& a, double lo, double hi, int target) {
  return a.log_base ? log_ticks(lo, hi, a.log_base) : linear_ticks(lo, hi, target);
}

// Where everything goes: computed once from the text it must hold.
struct Layout {
  double left, top, plot_w = kPlotWidth, plot_h = kPlotHeight, legend_x, width, height;
  AxisTicks xt, yt;
  std::vector<TickLabel> x_labels, y_labels;
  int x_log, y_log;
  double map(double v, const AxisTicks& t, int log_base) const {
    auto f = [&](double u) {
      return log_base ? std::log(u) : u;
    };
    return (f(v) - f(t.lo)) / (f(t.hi) - f(t.lo));
  }
  // The axis ranges end kPad inside the frame, so that a marker at the end of a range is not
  // cut by the frame.
  double px(double x) const { return left + kPad + map(x, xt, x_log) * (plot_w - 2 * kPad); }
  double py(double y) const { return top + kPad + (1 - map(y, yt, y_log)) * (plot_h - 2 * kPad); }
};

Layout layout(const SvgChart& c) {
  Layout l;
  double x0, x1, y0, y1;
  data_range(c, x0, x1, y0, y1);
  l.xt = ticks_for(c.x, x0, x1, 8);
  l.yt = ticks_for(c.y, y0, y1, 6);
  l.x_log = c.x.log_base;
  l.y_log = c.y.log_base;
  l.x_labels = tick_labels(l.xt, l.x_log);
  l.y_labels = tick_labels(l.yt, l.y_log);
  double y_label_w = 0;
  for (const TickLabel& t : l.y_labels) y_label_w = std::max(y_label_w, t.width);
  l.left = 14 + kLabelFontSize + 10 + y_label_w + 8;
  l.top = c.title.empty() ? 20 : 44;
  const double last_x_label = l.x_labels.back().width;
  l.legend_x = l.left + l.plot_w + std::max(24.0, last_x_label / 2 + 12);
  double legend_w = 0;
  for (const SvgSeries& s : c.series)
    legend_w = std::max(legend_w, kLegendSample + 6 + text_width(s.name, kTickFontSize));
  l.width = l.legend_x + legend_w + 14;
  l.width = std::max(l.width, text_width(c.title, kTitleFontSize) + 28);
  l.width = std::max(l.width, l.left + text_width(c.x.label, kLabelFontSize) + 14);
  l.height = std::max(l.top + l.plot_h + 60, l.top + 12 + kLegendRow * c.series.size());
  return l;
}

void draw_marker(std::string& o, int shape, double x, double y) {
  const double r = 3.5;
  auto path = [&](const std::string& d) {
    o += "<path d=\"" + d + "\"/>\n";
  };
  switch (shape) {
    case 0:
      o += "<circle cx=\"" + num(x) + "\" cy=\"" + num(y) + "\" r=\"" + num(r) + "\"/>\n";
      break;
    case 1:
      o += "<rect x=\"" + num(x - r) + "\" y=\"" + num(y - r) + "\" width=\"" + num(2 * r) +
           "\" height=\"" + num(2 * r) + "\"/>\n";
      break;
    case 2:  // triangle up
      path("M" + num(x) + "," + num(y - 1.2 * r) + " L" + num(x + 1.1 * r) + "," +
           num(y + 0.8 * r) + " L" + num(x - 1.1 * r) + "," + num(y + 0.8 * r) + " Z");
      break;
    case 3:  // diamond
      path("M" + num(x) + "," + num(y - 1.3 * r) + " L" + num(x + 1.3 * r) + "," + num(y) + " L" +
           num(x) + "," + num(y + 1.3 * r) + " L" + num(x - 1.3 * r) + "," + num(y) + " Z");
      break;
    default:  // triangle down
      path("M" + num(x) + "," + num(y + 1.2 * r) + " L" + num(x + 1.1 * r) + "," +
           num(y - 0.8 * r) + " L" + num(x - 1.1 * r) + "," + num(y - 0.8 * r) + " Z");
  }
}

std::string text_at(double x, double y, const std::string& attributes, const std::string& markup) {
  return "<text x=\"" + num(x) + "\" y=\"" + num(y) + "\"" + attributes + ">" + markup +
         "</text>\n";
}

// The grid, the frame, the ticks and their labels, the axis labels and the title.
void draw_axes(std::string& o, const SvgChart& c, const Layout& l) {
  const double bottom = l.top + l.plot_h, right = l.left + l.plot_w;
  o += "<g class=\"grid\" stroke=\"#e3e3e3\" stroke-width=\"1\">\n";
  for (double v : l.xt.values)
    o += "<line x1=\"" + num(l.px(v)) + "\" y1=\"" + num(l.top) + "\" x2=\"" + num(l.px(v)) +
         "\" y2=\"" + num(bottom) + "\"/>\n";
  for (double v : l.yt.values)
    o += "<line x1=\"" + num(l.left) + "\" y1=\"" + num(l.py(v)) + "\" x2=\"" + num(right) +
         "\" y2=\"" + num(l.py(v)) + "\"/>\n";
  o += "</g>\n<rect class=\"frame\" x=\"" + num(l.left) + "\" y=\"" + num(l.top) + "\" width=\"" +
       num(l.plot_w) + "\" height=\"" + num(l.plot_h) +
       "\" fill=\"none\" stroke=\"#444444\" stroke-width=\"1\"/>\n";
  o += "<g class=\"x-ticks\" text-anchor=\"middle\" stroke=\"#444444\">\n";
  for (std::size_t i = 0; i < l.xt.values.size(); ++i) {
    const double v = l.xt.values[i];
    o += "<line x1=\"" + num(l.px(v)) + "\" y1=\"" + num(bottom) + "\" x2=\"" + num(l.px(v)) +
         "\" y2=\"" + num(bottom + 5) + "\"/>\n";
    o += text_at(l.px(v), bottom + 21, " stroke=\"none\"", l.x_labels[i].markup);
  }
  o += "</g>\n<g class=\"y-ticks\" text-anchor=\"end\" stroke=\"#444444\">\n";
  for (std::size_t i = 0; i < l.yt.values.size(); ++i) {
    const double v = l.yt.values[i];
    o += "<line x1=\"" + num(l.left - 5) + "\" y1=\"" + num(l.py(v)) + "\" x2=\"" + num(l.left) +
         "\" y2=\"" + num(l.py(v)) + "\"/>\n";
    o += text_at(l.left - 8, l.py(v) + 4, " stroke=\"none\"", l.y_labels[i].markup);
  }
  o += "</g>\n";
  const std::string label_font =
      " font-size=\"" + num(kLabelFontSize) + "\" text-anchor=\"middle\"";
  o += text_at(
      l.left + l.plot_w / 2, bottom + 47, " class=\"x-label\"" + label_font, xml_escape(c.x.label));
  const double yx = 14 + kLabelFontSize, yy = l.top + l.plot_h / 2;
  o += text_at(yx,
               yy,
               " class=\"y-label\"" + label_font + " transform=\"rotate(-90 " + num(yx) + " " +
                   num(yy) + ")\"",
               xml_escape(c.y.label));
  if (!c.title.empty()) {
    // Centred on the plot when it fits there, else on the canvas.
    const double tw = text_width(c.title, kTitleFontSize);
    const double tx = tw <= l.plot_w ? l.left + l.plot_w / 2 : l.width / 2;
    o += text_at(tx,
                 28,
                 " class=\"title\" font-size=\"" + num(kTitleFontSize) +
                     "\" font-weight=\"bold\" text-anchor=\"middle\"",
                 xml_escape(c.title));
  }
}

void draw_series(std::string& o, const SvgChart& c, const Layout& l) {
  for (std::size_t k = 0; k < c.series.size(); ++k) {
    const SvgSeries& s = c.series[k];
    const std::string colour = kPalette[k % kPaletteSize];
    o += "<g class=\"series\" stroke=\"" + colour + "\" fill=\"" + colour + "\">\n<title>" +
         xml_escape(s.name) + "</title>\n";
    const auto runs = segments(s);
    for (const auto& run : runs) {
      o += "<polyline fill=\"none\" stroke-width=\"1.8\" stroke-linejoin=\"round\" points=\"";
      for (std::size_t i = 0; i < run.size(); ++i)
        o += (i ? " " : "") + num(l.px(run[i].x)) + "," + num(l.py(run[i].y));
      o += "\"/>\n";
    }
    std::size_t points = 0;
    for (const auto& run : runs) points += run.size();
    // Markers on every point of a short series; a long one's would hide its line, so there only
    // a lone point (between two gaps) gets one, or it would not show at all.
    for (const auto& run : runs)
      for (const Point& p : run)
        if (points <= kMaxMarkedPoints || run.size() == 1)
          draw_marker(o, static_cast<int>(k % kMarkerShapes), l.px(p.x), l.py(p.y));
    o += "</g>\n";
  }
}

void draw_legend(std::string& o, const SvgChart& c, const Layout& l) {
  o += "<g class=\"legend\">\n";
  for (std::size_t k = 0; k < c.series.size(); ++k) {
    const std::string colour = kPalette[k % kPaletteSize];
    const double y = l.top + 9 + kLegendRow * static_cast<double>(k);
    o += "<g stroke=\"" + colour + "\" fill=\"" + colour + "\"><line x1=\"" + num(l.legend_x) +
         "\" y1=\"" + num(y) + "\" x2=\"" + num(l.legend_x + kLegendSample) + "\" y2=\"" + num(y) +
         "\" stroke-width=\"1.8\"/>\n";
    draw_marker(o, static_cast<int>(k % kMarkerShapes), l.legend_x + kLegendSample / 2, y);
    o +=
        "</g>\n" + text_at(l.legend_x + kLegendSample + 6, y + 4, "", xml_escape(c.series[k].name));
  }
  o += "</g>\n";
}

}  // namespace

std::string render_svg(const SvgChart& chart) {
  const Layout l = layout(chart);
  std::string o = "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n";
  o += "<svg xmlns=\"http://www.w3.org/2000/svg\" version=\"1.1\" width=\"" + num(l.width) +
       "\" height=\"" + num(l.height) + "\" viewBox=\"0 0 " + num(l.width) + " " + num(l.height) +
       "\" font-family=\"DejaVu Sans, Verdana, Arial, Helvetica, sans-serif\" font-size=\"" +
       num(kTickFontSize) + "\" fill=\"#222222\">\n";
  o += "<title>" + xml_escape(chart.title.empty() ? chart.y.label : chart.title) + "</title>\n";
  o += "<rect width=\"100%\" height=\"100%\" fill=\"#ffffff\"/>\n";
  draw_axes(o, chart, l);
  draw_series(o, chart, l);
  draw_legend(o, chart, l);
  return o + "</svg>\n";
}

void write_svg(const std::string& path, const SvgChart& chart) {
  write_file_atomic(path, render_svg(chart));
}

}  // namespace attnlab::cli
