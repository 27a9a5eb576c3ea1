#!/usr/bin/env bash
# How backup cost grows with the number of files: for each COUNT, makes COUNT small files
# (1-4 KiB of distinct content, 100 per folder), then runs a first backup and an unchanged
# re-backup into a fresh encrypted repository, and prints wall time, time per file and peak RSS.
#
#   benches/scale-files.sh BINARY COUNT...      e.g. benches/scale-files.sh target/release/respaldo 10000 100000
#
# Time per file should stay flat as COUNT grows (docs/benchmarks.md, "How cost grows").
# Needs GNU time (/usr/bin/time) and python3.
set -euo pipefail
bin=$1
shift
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
export RESPALDO_PASSWORD=scale RESPALDO_INSECURE_KDF_FOR_TESTS=1
for count in "$@"; do
    src=$work/src-$count
    python3 - "$src" "$count" <<'PY'
import os, random, sys
root, count = sys.argv[1], int(sys.argv[2])
rng = random.Random(count)
for i in range(count):
    folder = os.path.join(root, "d%05d" % (i // 100))
    if i % 100 == 0:
        os.makedirs(folder, exist_ok=True)
    with open(os.path.join(folder, "f%07d" % i), "wb") as f:
        f.write(b"%d\n" % i + rng.randbytes(rng.randint(1024, 4096)))
PY
    export RESPALDO_CACHE_DIR=$work/cache-$count
    "$bin" init --repo "$work/repo-$count" -q
    for step in first unchanged; do
        /usr/bin/time -f "%e %M" -o "$work/time" "$bin" backup -q --no-log --repo "$work/repo-$count" "$src"
        read -r wall rss < "$work/time"
        per_file=$(echo "$wall * 1000000 / $count" | bc)
        printf "%8d files  %-9s %7.2f s  %5d us/file  %6d MiB\n" "$count" "$step" "$wall" "$per_file" $((rss / 1024))
    done
    rm -rf "$src" "$work/repo-$count" "$RESPALDO_CACHE_DIR"
done
