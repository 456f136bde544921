// `attnlab bench lisa` (also reached as `attnlab bench attention --kind lisa...`): LISA's
// codeword-histogram attention against exact softmax attention, time and peak memory against L.
#pragma once

namespace attnlab {

// argv[0] is the mode name, then the options (see --help).
int run_bench_lisa(int argc, char** argv);

}  // namespace attnlab
