#!/usr/bin/env bash
# The crash tests of tests/cli/lifecycle/crash.rs with many more crash points, in release mode:
# `backup` and `prune` killed with SIGKILL at RESPALDO_CRASH_POINTS (default 100) random moments
# each, after every one of which the repository must pass `check --read-data` and restore byte
# for byte.
#
#   tests/crash-long.sh                          # 100 points per test, a fresh seed
#   RESPALDO_CRASH_POINTS=500 tests/crash-long.sh
#   RESPALDO_CRASH_SEED=1234 tests/crash-long.sh # the delays of an earlier run
#
# The seed is printed first and again at the end (and by each test); a failure repeats with
# the same RESPALDO_CRASH_SEED (timing aside). Extra arguments go to the test binary, e.g.
# `--include-ignored` to run the variants that are ignored for known bugs.
set -euo pipefail

cd "$(dirname "$0")/.."

points="${RESPALDO_CRASH_POINTS:-100}"
seed="${RESPALDO_CRASH_SEED:-$(od -An -N8 -tu8 /dev/urandom | tr -d ' ')}"
export RESPALDO_CRASH_POINTS="$points" RESPALDO_CRASH_SEED="$seed"

echo "crash-long: RESPALDO_CRASH_POINTS=$points RESPALDO_CRASH_SEED=$seed"
trap 'echo "crash-long: FAILED; repeat with RESPALDO_CRASH_SEED=$seed RESPALDO_CRASH_POINTS=$points $0" >&2' ERR

started=$SECONDS
cargo test --release --locked -p respaldo-cli --test cli lifecycle::crash:: -- \
    --nocapture --test-threads=1 "$@"
echo "crash-long: passed, RESPALDO_CRASH_SEED=$seed, $points points per test, $((SECONDS - started))s"
