// Text helpers shared by the parts of svg_plot (not a public API): widths estimated without
// fonts, XML escaping and tick labels.
#pragma once

#include <string>
#include <vector>

#include "experiments/support/svg_plot.hpp"

namespace attnlab::cli {

constexpr double kTickFontSize = 12;

// The width of `text` at `font_size`, estimated at 0.62 em per character (DejaVu Sans digits are
// 0.64 em, most letters narrower): the layout leaves room for labels without measuring a font.
inline double text_width(const std::string& text, double font_size) {
  std::size_t chars = 0;
  for (unsigned char c : text) chars += (c & 0xC0) != 0x80;  // UTF-8: count lead bytes only
  return 0.62 * font_size * static_cast<double>(chars);
}

// `text` with &, <, >, " and ' as entities (for text content and attribute values).
std::string xml_escape(const std::string& text);

// A tick's label as SVG text content (a log axis's large powers with a raised exponent) and its
// estimated width.
struct TickLabel {
  std::string markup;
  double width = 0;
};
// The labels of an axis's ticks, in one form along the axis: decimals as the step needs on a
// linear axis; on a log axis plain numbers while they are short, else all powers.
std::vector<TickLabel> tick_labels(const AxisTicks& ticks, int log_base);

}  // namespace attnlab::cli
