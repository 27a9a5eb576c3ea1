#!/usr/bin/env bash
# Backs up the states of a SQLite workload, oldest first, to one path of a fresh encrypted
# repository, and prints per step the wall time, the repository's growth and the peak RSS.
#
# usage: benches/sqlite-rounds.sh BIN LABEL WORKLOAD
#   BIN       the respaldo binary to measure (a release build)
#   LABEL     a name for the lines printed
#   WORKLOAD  a folder with steps/NN-name/app.db, as made by the benchmark harness's
#             lib/sqlite_workload.py OUT --mb 60 --rounds 3
#
# Run it for two binaries in turn, twice, and compare the lines (docs/benchmarks.md,
# "Chunking SQLite databases").
set -euo pipefail
BIN=$1 LABEL=$2 WORKLOAD=$3
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
mkdir -p "$work/src"
export RESPALDO_CACHE_DIR=$work/cache RESPALDO_PASSWORD=bench RESPALDO_INSECURE_KDF_FOR_TESTS=1
"$BIN" init --repo "$work/repo" --quiet
previous=0
for step in "$WORKLOAD"/steps/*/; do
  cp "$step/app.db" "$work/src/app.db"
  start=$(date +%s.%N)
  /usr/bin/time -f "%M" -o "$work/rss" "$BIN" backup --repo "$work/repo" --no-log --quiet "$work/src"
  end=$(date +%s.%N)
  size=$(du -sb "$work/repo" | cut -f1)
  printf "%s %s: %.2fs, repo %d MB (+%.1f MB), peak RSS %d MiB\n" "$LABEL" "$(basename "$step")" \
    "$(echo "$end - $start" | bc)" $((size / 1000000)) \
    "$(echo "($size - $previous) / 1000000" | bc -l)" $(( $(cat "$work/rss") / 1024 ))
  previous=$size
done
