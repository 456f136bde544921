// `attnlab bench lisa` (also reached as `attnlab bench attention --kind lisa...`): LISA's
// codeword-histogram attention against exact softmax attention, time and peak memory against L.
//
// Its --kind names the LISA attention layer's implementations (not registry kinds: LISA is
// registered as whole models, lisa-base/-soft/-mini, and its layer's impl is not a kind):
// "lisa" (both), "lisa-fused", "lisa-reference", beside the exact softmax kinds of the registry.
#pragma once

#include <string>

namespace attnlab {

// One of this study's LISA implementation names ("lisa", "lisa-fused", "lisa-reference").
bool is_bench_lisa_kind(const std::string& name);

// argv[0] is the mode name, then the options (see --help).
int run_bench_lisa(int argc, char** argv);

}  // namespace attnlab
