#include "experiments/support/kinds_table.hpp"

#include <sstream>
#include <vector>

#include "layers/attention/attention_registry.hpp"
#include "layers/recommender/model_registry.hpp"

namespace attnlab::cli {
namespace {

struct KindRow {
  std::string name, family, model, capabilities, options, summary;
};

// "features=256, orthogonal=true" (the kind's defaults), or "-".
std::string options_with_defaults(const OptionSet& options) {
  std::string out;
  const OptionValues defaults = options.defaults();
  for (const auto& spec : options.specs())
    out += (out.empty() ? "" : ", ") + spec.name + "=" + spec.get(defaults);
  return out.empty() ? "-" : out;
}

std::vector<KindRow> kind_rows() {
  std::vector<KindRow> rows;
  for (const auto& m : rec::model_kinds()) {
    const nn::AttentionKind* a = nn::find_attention_kind(m.name);
    KindRow r;
    r.name = m.name;
    r.family = m.family;
    r.model = a ? "SASRec" : m.family;
    r.capabilities = a ? nn::describe(a->capabilities) : "(a whole model)";
    r.options = options_with_defaults(m.options);
    r.summary = a ? a->summary : m.summary;
    rows.push_back(r);
  }
  return rows;
}

}  // namespace

Table kinds_table() {
  Table t({"kind", "family", "model", "capabilities", "options (defaults)", "summary"});
  for (const auto& r : kind_rows())
    t.add_row({r.name, r.family, r.model, r.capabilities, r.options, r.summary});
  return t;
}

std::string kinds_markdown() {
  std::ostringstream os;
  os << "| kind | family | model | capabilities | options (defaults) | summary |\n"
     << "|---|---|---|---|---|---|\n";
  for (const auto& r : kind_rows()) {
    os << "| `" << r.name << "` | " << r.family << " | " << r.model << " | " << r.capabilities
       << " | " << r.options << " | " << r.summary << " |\n";
  }
  return os.str();
}

}  // namespace attnlab::cli
