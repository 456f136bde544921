// The axes of svg_plot: nice tick values and their labels.
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <vector>

#include "core/error.hpp"
#include "experiments/support/svg_plot.hpp"
#include "experiments/support/svg_plot_text.hpp"

namespace attnlab::cli {
namespace {

// The nice step (1, 2 or 5 times a power of ten) nearest above `raw`.
double nice_step(double raw) {
  const double power = std::pow(10.0, std::floor(std::log10(raw)));
  const double mantissa = raw / power;
  const double nice = mantissa <= 1.0 ? 1.0 : mantissa <= 2.0 ? 2.0 : mantissa <= 5.0 ? 5.0 : 10.0;
  return nice * power;
}

std::string printf_text(const char* format, int digits, double v) {
  char buf[64];
  std::snprintf(buf, sizeof buf, format, digits, v);
  return buf;
}

// "10" with the exponent raised: 10^-7 as 10 and a small -7.
TickLabel power_label(int base, int exponent) {
  const std::string b = std::to_string(base), e = std::to_string(exponent);
  return {b + "<tspan dy=\"-5\" font-size=\"9\">" + e + "</tspan>",
          text_width(b, kTickFontSize) + text_width(e, 9)};
}

}  // namespace

AxisTicks linear_ticks(double lo, double hi, int target) {
  ATTNLAB_CHECK(std::isfinite(hi - lo) && lo <= hi && target >= 2,
                ValueError,
                "linear_ticks: expected lo <= hi with a finite difference and target >= 2, got lo ",
                lo,
                ", hi ",
                hi,
                ", target ",
                target);
  if (lo == hi) {  // one value: a range around it
    const double half = lo == 0 ? 1.0 : std::fabs(lo) * 0.1;
    lo -= half;
    hi += half;
  }
  const double step = nice_step((hi - lo) / (target - 1));
  const double first = std::floor(lo / step + 1e-9), last = std::ceil(hi / step - 1e-9);
  AxisTicks t;
  t.lo = first * step;
  t.hi = last * step;
  // Each tick is k * step (no running sum, whose rounding would print 0.30000000000000004).
  for (double k = first; k <= last; ++k) t.values.push_back(k == 0 ? 0.0 : k * step);
  return t;
}

AxisTicks log_ticks(double lo, double hi, int base, int max_count) {
  ATTNLAB_CHECK(lo > 0 && lo <= hi && std::isfinite(hi) && (base == 2 || base == 10),
                ValueError,
                "log_ticks: expected 0 < lo <= hi and base 2 or 10, got lo ",
                lo,
                ", hi ",
                hi,
                ", base ",
                base);
  const double b = base;
  // The exponents of the enclosing powers (rounded first: log10(1000) may be 2.9999999999999996).
  auto exponent = [&](double v) {
    const double e = std::log(v) / std::log(b);
    return std::fabs(e - std::round(e)) < 1e-9 ? std::round(e) : e;
  };
  double first = std::floor(exponent(lo)), last = std::ceil(exponent(hi));
  if (first == last) {  // a single power: one power either side
    --first;
    ++last;
  }
  const double every = std::ceil((last - first + 1) / max_count);
  first = std::floor(first / every) * every;
  last = std::ceil(last / every) * every;
  AxisTicks t;
  t.lo = std::pow(b, first);
  t.hi = std::pow(b, last);
  for (double e = first; e <= last; e += every) t.values.push_back(std::pow(b, e));
  return t;
}

std::vector<TickLabel> tick_labels(const AxisTicks& ticks, int log_base) {
  std::vector<TickLabel> labels;
  if (log_base != 0) {
    // Plain numbers (0.001, 1024) when every tick is short enough so, else all as powers: one
    // form along an axis.
    const double b = log_base;
    std::vector<int> exponents;
    bool plain = true;
    for (double v : ticks.values) {
      exponents.push_back(static_cast<int>(std::lround(std::log(v) / std::log(b))));
      plain = plain && exponents.back() >= -3 && exponents.back() <= (log_base == 10 ? 5 : 16);
    }
    for (std::size_t i = 0; i < exponents.size(); ++i) {
      const int e = exponents[i];
      const std::string text = printf_text("%.*f", e < 0 ? -e : 0, ticks.values[i]);
      labels.push_back(plain ? TickLabel{text, text_width(text, kTickFontSize)}
                             : power_label(log_base, e));
    }
    return labels;
  }
  const double step = ticks.values.size() > 1 ? ticks.values[1] - ticks.values[0] : 1;
  const int decimals = std::max(0, static_cast<int>(-std::floor(std::log10(step) + 1e-9)));
  double largest = 0;
  for (double v : ticks.values) largest = std::max(largest, std::fabs(v));
  for (double v : ticks.values) {
    const std::string text = decimals <= 6 && largest < 1e7 ? printf_text("%.*f", decimals, v)
                                                            : printf_text("%.*g", 6, v);
    labels.push_back({text, text_width(text, kTickFontSize)});
  }
  return labels;
}

}  // namespace attnlab::cli
