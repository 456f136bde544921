// `attnlab gradcheck`: runs attnlab's gradient checks over every op, layer, loss and attention
// kind and prints one row each. Exits non-zero if any check fails.
#include <iostream>

#include "autograd/autograd.hpp"
#include "experiments/commands/gradcheck/gradcheck_cases.hpp"
#include "experiments/support/cli.hpp"
#include "experiments/support/table.hpp"

namespace attnlab {
namespace {

int run_gradcheck(int argc, char** argv) {
  cli::Parser p("gradcheck", "[--filter TEXT] [--mode slow|fast] [--list]");
  p.options().add_options()("filter",
                            cli::po::value<std::string>()->default_value(""),
                            "only cases whose name contains TEXT (comma-separated: any of them)")(
      "mode",
      cli::po::value<std::string>()->default_value("slow"),
      "slow (full Jacobians, every case) or fast (random projections, every case); "
      "straight-through cases are checked against their surrogate's gradient in either mode "
      "(mode column: straight-through)")("list", "list the cases and exit");
  if (!p.parse(argc, argv))
    return 0;
  // Finite differences need float64: another --dtype is refused, not silently replaced.
  if (p.given("dtype") && p.common().dtype != kFloat64)
    throw cli::UsageError("--dtype: gradcheck runs in float64 only");
  const std::string mode = p.get<std::string>("mode");
  if (mode != "slow" && mode != "fast") {
    throw cli::UsageError("--mode: expected slow or fast, got '" + mode + "'");
  }
  std::vector<std::string> filters;
  if (!p.get<std::string>("filter").empty())
    filters = cli::split_list(p.get<std::string>("filter"), "--filter");
  std::vector<experiments::GradcheckCase> cases;
  experiments::add_op_cases(cases);
  experiments::add_layer_cases(cases);
  experiments::add_attention_cases(cases);
  experiments::add_lisa_cases(cases);
  experiments::add_lisa_module_cases(cases);
  experiments::add_kind_cases(cases);
  std::vector<const experiments::GradcheckCase*> selected;
  for (const auto& c : cases) {
    bool keep = filters.empty();
    for (const auto& f : filters) keep = keep || c.name.find(f) != std::string::npos;
    if (keep)
      selected.push_back(&c);
  }
  if (p.has("list")) {
    for (const auto* c : selected) std::cout << c->name << "\n";
    return 0;
  }
  if (selected.empty())
    throw cli::UsageError("--filter: no case matches");
  cli::Table table({"case", "mode", "max abs error", "max rel error", "result"});
  int failures = 0;
  for (const auto* c : selected) {
    ag::GradcheckOptions o;
    o.seed = p.common().seed;
    o.fast_mode = mode == "fast";
    if (c->module) {
      c->module->to(kFloat64);
      c->module->eval();  // no dropout: the function must be deterministic
      o.params = c->module->parameters();
    }
    std::vector<Tensor> inputs = c->inputs;
    if (inputs.empty()) {  // only parameters are checked: a dummy input nobody differentiates
      inputs.push_back(zeros({1}, kFloat64));
      o.wrt = {false};
    }
    const ag::GradcheckResult r =
        c->hard
            ? ag::check_straight_through(
                  [c](const std::vector<ag::Var>& v) { return std::vector<ag::Var>{c->fn(v)}; },
                  [c](const std::vector<ag::Var>& v) { return std::vector<ag::Var>{c->hard(v)}; },
                  [c](const std::vector<ag::Var>& v) {
                    return std::vector<ag::Var>{c->surrogate(v)};
                  },
                  inputs,
                  o.seed,
                  o.params)
            : ag::gradcheck(c->fn, inputs, o);
    failures += r.ok ? 0 : 1;
    table.add_row({c->name,
                   r.mode,  // what ran: slow, fast, a re-check, or straight-through
                   cli::Cell::sci(r.max_abs_error),
                   cli::Cell::sci(r.max_rel_error),
                   r.ok ? "pass" : "FAIL"});
    if (!r.ok)
      std::cerr << c->name << ":\n" << r.report();
  }
  table.print(std::cout);
  std::cout << "\n"
            << selected.size() - failures << " of " << selected.size() << " checks passed\n";
  if (!p.common().out.empty())
    table.write(p.common().out, "gradcheck");
  return failures == 0 ? 0 : 1;
}

const cli::Register gradcheck_command("gradcheck",
                                      "gradient checks of every op, layer and attention kind",
                                      run_gradcheck);

}  // namespace
}  // namespace attnlab
