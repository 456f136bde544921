// The registry as a table: every model kind (SASRec with each attention kind, and the registered
// models) with its family, model, capabilities, options (with defaults) and summary. `attnlab
// kinds` prints it; docs/kinds.md is its markdown form (a test keeps the two equal).
#pragma once

#include <string>

#include "experiments/support/table.hpp"

namespace attnlab::cli {

Table kinds_table();
// The same rows as a markdown table (the text of docs/kinds.md after its header).
std::string kinds_markdown();

}  // namespace attnlab::cli
