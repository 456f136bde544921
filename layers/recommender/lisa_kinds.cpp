// LISA's model kinds (layers/recommender/lisa_model.hpp): lisa-base, lisa-soft, lisa-mini.
// LISAConfig is the family's one options struct: the flags bind to its fields, each variant starts
// from its own defaults, and the model context fills the sizes, dropout and seed.
#include "layers/recommender/lisa_model.hpp"
#include "layers/recommender/model_registry.hpp"

namespace attnlab::rec {
namespace {

std::string lisa_trainable_selection(const std::optional<Selection>& s) {
  return s == Selection::Hard ? "hard codes have no gradient (use st)" : "";
}

OptionSet lisa_options(const LISAConfig& defaults) {
  OptionBinder<LISAConfig> b(defaults);
  b.bind_text(
       "codebooks",
       "LISA: B x W of the sequence quantizer",
       "BxW",
       [](LISAConfig& c, const std::string& text) {
         std::tie(c.codebooks, c.codewords) = parse_lisa_codebooks(text, "--codebooks");
       },
       [](const LISAConfig& c) {
         return std::to_string(c.codebooks) + "x" + std::to_string(c.codewords);
       })
      .bind_text(
          "tau",
          "LISA: softmax temperature",
          "FLOAT",
          [](LISAConfig& c, const std::string& text) {
            const double tau = OptionCodec<double>::parse(text, "--tau");
            if (!(tau > 0))
              throw ValueError("--tau: must be positive, got '" + text + "'");
            c.tau = c.tau_end = tau;  // a constant temperature
          },
          [](const LISAConfig& c) { return OptionCodec<double>::format(c.tau); })
      .bind("decay",
            &LISAConfig::decay,
            "LISA: histogram decay lambda (gamma = exp(-lambda))",
            option_checks::NonNegative{})
      .bind("selection",
            &LISAConfig::selection,
            "LISA: training selection of the codes (auto: the variant's)",
            lisa_trainable_selection)
      .bind("lisa-query",
            &LISAConfig::query,
            "LISA: the query's table row: hard (its own codeword, detached, as the official "
            "code) or expected (the row expected under its soft codes)");
  if (defaults.variant == LisaVariant::Mini) {
    b.bind_text(
        "target-codebooks",
        "lisa-mini: B x W of the target quantizer",
        "BxW",
        [](LISAConfig& c, const std::string& text) {
          std::tie(c.target_codebooks, c.target_codewords) =
              parse_lisa_codebooks(text, "--target-codebooks");
        },
        [](const LISAConfig& c) {
          return std::to_string(c.target_codebooks) + "x" + std::to_string(c.target_codewords);
        });
  }
  return b;
}

ModelKind lisa_kind(LisaVariant variant, const std::string& summary) {
  LISAConfig defaults;
  defaults.variant = variant;
  // The official LISA code's Soft configs add 1e-2 * ||e - stopgrad(x_hat)||^2.
  defaults.regularizer = variant == LisaVariant::Soft ? 1e-2 : 0.0;
  return ModelKind::with_options<LISAConfig>(std::string("lisa-") + lisa_variant_name(variant),
                                             "lisa",
                                             summary,
                                             "Wu et al. 2021 (LISA, WWW)",
                                             /*stacked=*/false,
                                             lisa_options(defaults),
                                             [](const LISAConfig& options, const ModelContext& m) {
                                               LISAConfig c = options;  // the context's part
                                               c.num_items = m.num_items;
                                               c.max_length = m.max_length;
                                               c.dim = m.dim;
                                               c.dropout = m.dropout;
                                               c.seed = m.seed;
                                               return std::make_shared<LISA>(c);
                                             });
}

const RegisterModelKind lisa_kinds{{
    lisa_kind(LisaVariant::Base,
              "LISA-Base: codeword-histogram attention, hard codes, targets quantized"),
    lisa_kind(LisaVariant::Soft,
              "LISA-Soft: soft codeword histograms, raw target embeddings, regulariser"),
    lisa_kind(LisaVariant::Mini,
              "LISA-Mini: small sequence codebooks, a separate target quantizer"),
}};

}  // namespace
}  // namespace attnlab::rec
