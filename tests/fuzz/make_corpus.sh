#!/usr/bin/env bash
# Regenerates the committed seed corpora (tests/fuzz/corpus/<target>/) with make_corpus.cpp,
# built by the fuzz build (.ci/fuzz builds it as fuzz_make_corpus). Run after changing a file
# format or the checkpoint target's model; commit the result.
#   tests/fuzz/make_corpus.sh [build-dir]      (default: build-fuzz)
set -euo pipefail
cd "$(dirname "$0")/../.."
build=${1:-build-fuzz}
cmake --build "$build" -j2 --target fuzz_make_corpus
rm -rf tests/fuzz/corpus
"$build"/fuzz_make_corpus tests/fuzz/corpus
