// `attnlab plot`: a line chart (self-contained SVG, no gnuplot) of any CSV the commands write,
// e.g. the cosine per layer of the shadow-gradient log (long form, experiments/support/shadow_log):
//   attnlab plot --csv run/shadow.csv --where what=layer --group name --x step --y cosine
//       --out run/shadow_layers.svg
#include <iostream>
#include <string>
#include <vector>

#include "experiments/support/cli.hpp"
#include "experiments/support/plot_data.hpp"
#include "experiments/support/svg_plot.hpp"
#include "experiments/support/table.hpp"

namespace attnlab {
namespace {

// --out is the common flag of an output directory, which the Parser creates; here it names the
// SVG file, so it is taken out of the arguments before they are parsed.
std::string take_out_flag(std::vector<char*>& args) {
  std::string out;
  bool seen = false;
  for (std::size_t i = 1; i < args.size();) {
    const std::string a = args[i];
    if (a != "--out" && a.rfind("--out=", 0) != 0) {
      ++i;
      continue;
    }
    if (seen)
      throw cli::UsageError("--out: given more than once");
    seen = true;
    if (a == "--out") {
      if (i + 1 >= args.size())
        throw cli::UsageError("--out: expects FILE.svg");
      out = args[i + 1];
      args.erase(args.begin() + static_cast<std::ptrdiff_t>(i),
                 args.begin() + static_cast<std::ptrdiff_t>(i) + 2);
    } else {
      out = a.substr(6);
      args.erase(args.begin() + static_cast<std::ptrdiff_t>(i));
    }
  }
  if (seen && (out.size() < 5 || out.compare(out.size() - 4, 4, ".svg") != 0))
    throw cli::UsageError("--out: expected a FILE.svg path, got '" + out + "'");
  return out;
}

std::vector<std::pair<std::string, std::string>> parse_where(
    const std::vector<std::string>& items) {
  std::vector<std::pair<std::string, std::string>> where;
  for (const std::string& item : items) {
    const std::size_t eq = item.find('=');
    if (eq == std::string::npos || eq == 0)
      throw cli::UsageError("--where: expected COL=VALUE, got '" + item + "'");
    where.emplace_back(item.substr(0, eq), item.substr(eq + 1));
  }
  return where;
}

std::string required(const cli::Parser& p, const std::string& flag, const std::string& what) {
  if (!p.has(flag) || p.get<std::string>(flag).empty())
    throw cli::UsageError("--" + flag + " " + what + " is required");
  return p.get<std::string>(flag);
}

int log_base(const cli::Parser& p, const std::string& flag) {
  const int base = p.get<int>(flag);
  if (base != 2 && base != 10)
    throw cli::UsageError("--" + flag + ": expected 2 or 10, got " + std::to_string(base));
  return base;
}

// The default title: "cosine against step (what=layer)".
std::string default_title(const cli::SeriesQuery& q) {
  std::string title = q.y + " against " + q.x, filters;
  for (const auto& [column, value] : q.where)
    filters += (filters.empty() ? "" : ", ") + column + "=" + value;
  return filters.empty() ? title : title + " (" + filters + ")";
}

int run_plot(int argc, char** argv) {
  std::vector<char*> args(argv, argv + argc);
  const std::string out = take_out_flag(args);
  cli::Parser p("plot",
                "--csv FILE --x COL --y COL [--group COL[,COL]] [--where COL=VALUE ...] "
                "[--log-x] [--log-y] [--title T] [--x-label L] [--y-label L] --out FILE.svg\n\n"
                "Here --out names the SVG file to write (its folder is made), not a directory.");
  p.options().add_options()("csv", cli::po::value<std::string>(), "the CSV file to plot")(
      "x", cli::po::value<std::string>(), "column of the x axis")(
      "y", cli::po::value<std::string>(), "column of the y axis")(
      "group",
      cli::po::value<std::string>(),
      "one line per distinct combination of these columns (COL[,COL])")(
      "where",
      cli::po::value<std::vector<std::string>>()->composing(),
      "keep only the rows whose column COL is VALUE (COL=VALUE; repeatable, all must match)")(
      "log-x", "logarithmic x axis")("log-y", "logarithmic y axis")(
      "x-base", cli::po::value<int>()->default_value(2), "base of a log x axis (2 or 10)")(
      "y-base", cli::po::value<int>()->default_value(10), "base of a log y axis (2 or 10)")(
      "title", cli::po::value<std::string>(), "title (default: \"Y against X (filters)\")")(
      "x-label", cli::po::value<std::string>(), "x axis label (default: the column)")(
      "y-label", cli::po::value<std::string>(), "y axis label (default: the column)");
  p.unused_common("seed", "it draws results already measured");
  p.unused_common("dtype", "it draws results already measured");
  if (!p.parse(static_cast<int>(args.size()), args.data()))
    return 0;
  if (!p.common().out.empty())
    throw cli::UsageError("--out: give the SVG path on the command line, not in --config");
  if (out.empty())
    throw cli::UsageError("--out FILE.svg is required");
  const std::string csv = required(p, "csv", "FILE");
  cli::SeriesQuery query{required(p, "x", "COL"), required(p, "y", "COL"), {}, {}};
  if (p.has("group"))
    query.group = cli::split_list(p.get<std::string>("group"), "--group");
  if (p.has("where"))
    query.where = parse_where(p.get<std::vector<std::string>>("where"));
  const int x_base = log_base(p, "x-base"), y_base = log_base(p, "y-base");
  cli::SvgChart chart;
  chart.title = p.has("title") ? p.get<std::string>("title") : default_title(query);
  chart.x = {p.has("x-label") ? p.get<std::string>("x-label") : query.x,
             query.x,
             p.has("log-x") ? x_base : 0};
  chart.y = {p.has("y-label") ? p.get<std::string>("y-label") : query.y,
             query.y,
             p.has("log-y") ? y_base : 0};
  chart.series = cli::select_series(cli::read_csv(csv), query, csv);
  const std::size_t slash = out.find_last_of('/');
  if (slash != std::string::npos)
    cli::make_directories(out.substr(0, slash));
  cli::write_svg(out, chart);
  std::size_t points = 0;
  for (const auto& s : chart.series) points += s.x.size();
  std::cout << "wrote " << out << " (" << chart.series.size() << " series, " << points
            << " rows)\n";
  return 0;
}

const cli::Register plot_command("plot",
                                 "a line chart (SVG) of any CSV the commands write",
                                 run_plot);

}  // namespace
}  // namespace attnlab
