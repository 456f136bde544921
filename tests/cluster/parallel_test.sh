#!/usr/bin/env bash
# `attnlab sweep --emit-jobs` through GNU parallel: the emitted jobs.txt run with --joblog, one
# configuration made to fail (its run directory replaced by a file, so its run cannot write),
# then --resume-failed runs only that one, and sweep --collect merges all. Tiny synthetic
# trainings: a few seconds.
#
#   tests/cluster/parallel_test.sh build/attnlab
#
# Exits 0 with "parallel_test: skipped: <why>" when GNU parallel is not installed
# (.ci/setup-cluster installs it); exits 1 with "parallel_test: FAILED: <what>" when the sweep goes
# wrong. The directory is removed whatever happens.
set -euo pipefail

if [ $# -ne 1 ] || [ ! -x "$1" ]; then
  echo "usage: $0 path/to/attnlab" >&2
  exit 2
fi
exe=$(realpath "$1")
say() { echo "parallel_test: $*"; }
fail() {
  say "FAILED: $*"
  exit 1
}
if ! parallel --version 2>/dev/null | grep -q "GNU parallel"; then
  say "skipped: GNU parallel is not installed (.ci/setup-cluster installs it)"
  exit 0
fi

work=$(mktemp -d /tmp/attnlab_parallel_test.XXXXXX)
trap 'rm -rf "$work"' EXIT
dir=$work/sweep
grid="attention=softmax-fused,favor;seed=1,2"
args="--synthetic-users 60 --synthetic-items 40 --synthetic-max-length 20 --maxlen 16 --dim 16"
args+=" --blocks 1 --batch 16 --epochs 2 --eval-every 2"
"$exe" sweep --grid "$grid" --dir "$dir" --args "$args" --threads 1 --emit-jobs >/dev/null
# parallel's own output (the skip notes, a failed job's shell error) goes to parallel.txt.
run_jobs() {
  parallel --will-cite -j 2 --joblog "$work/joblog.txt" "$@" <"$dir/jobs.txt" \
    >>"$work/parallel.txt" 2>&1
}
# Joblog lines (after its header) of commands that ran a configuration (not the comment lines),
# as "<exit value> <configuration>".
ran() {
  tail -n +2 "$work/joblog.txt" | awk -F'\t' '$9 !~ /^#/ {
    match($9, /runs\/[0-9]+\//); print $7, substr($9, RSTART + 5, RLENGTH - 6) }'
}

# 1. The failure: configuration 2 cannot write its run directory.
failing=2
rmdir "$dir/runs/$failing"
touch "$dir/runs/$failing"
started=$SECONDS
status=0
run_jobs || status=$?
[ "$status" -eq 1 ] ||
  fail "parallel's exit status is $status, expected 1 (one failed job): $(cat "$work/parallel.txt")"
first=$(ran | sort -k2)
[ "$(awk '$1 != 0' <<<"$first")" = "1 $failing" ] && [ "$(wc -l <<<"$first")" -eq 4 ] ||
  fail "expected 4 configurations run and only $failing failed, joblog says: $first"
say "1. parallel --joblog: 4 configurations, configuration $failing failed (exit $(awk -v k=$failing \
'$2 == k {print $1}' <<<"$first")), $((SECONDS - started)) s"
partial=$("$exe" sweep --grid "$grid" --dir "$dir" --collect | head -n 1)
[ "$partial" = "3 of 4 configurations finished" ] || fail "after the failure: $partial"
say "   sweep --collect: $partial"

# 2. The cause removed: --resume-failed runs configuration 2 only.
rm "$dir/runs/$failing"
mkdir "$dir/runs/$failing"
declare -A before
for k in 0 1 3; do before[$k]=$(stat -c %y "$dir/runs/$k/result.csv"); done
started=$SECONDS
run_jobs --resume-failed || fail "parallel --resume-failed: exit $?: $(cat "$work/parallel.txt")"
rerun=$(ran | tail -n +$(($(grep -c . <<<"$first") + 1)))
[ "$rerun" = "0 $failing" ] || fail "--resume-failed ran: '$rerun', expected only '0 $failing'"
for k in 0 1 3; do
  [ "$(stat -c %y "$dir/runs/$k/result.csv")" = "${before[$k]}" ] ||
    fail "configuration $k ran again"
done
say "2. parallel --resume-failed: only configuration $failing ran (the others' result.csv" \
  "untouched), $((SECONDS - started)) s"
table=$("$exe" sweep --grid "$grid" --dir "$dir" --collect) || fail "sweep --collect: $table"
grep -q "^4 of 4 configurations finished" <<<"$table" || fail "after --resume-failed: $table"
say "   sweep --collect:"
echo "$table"
say "passed"
