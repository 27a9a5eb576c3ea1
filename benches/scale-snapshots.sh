#!/usr/bin/env bash
# How the cost of reading a repository grows with its number of snapshots: backs up a small tree
# (200 files, one of them changed before each backup) again and again into one encrypted
# repository, and at each COUNT of snapshots times `snapshots`, `ls latest`, the restore of one
# file from the latest and from the first snapshot, and one more backup. Each time is the
# median of three runs, in milliseconds.
#
#   benches/scale-snapshots.sh BINARY COUNT...   e.g. benches/scale-snapshots.sh target/release/respaldo 10 100 1000
#
# COUNTs in increasing order (docs/benchmarks.md, "How cost grows: many snapshots"). The
# commands are timed 3 s after the last backup (SETTLE=seconds to change it).
# Needs GNU time (/usr/bin/time) and python3.
set -euo pipefail
bin=$1
shift
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
export RESPALDO_PASSWORD=scale RESPALDO_INSECURE_KDF_FOR_TESTS=1
export RESPALDO_CACHE_DIR=$work/cache RESPALDO_REPOSITORY=$work/repo
src=$work/src
python3 - "$src" <<'PY'
import os, random, sys
root = sys.argv[1]
rng = random.Random(7)
for i in range(200):
    folder = os.path.join(root, "d%02d" % (i // 20))
    os.makedirs(folder, exist_ok=True)
    with open(os.path.join(folder, "f%03d" % i), "wb") as f:
        f.write(rng.randbytes(rng.randint(1024, 16384)))
PY
"$bin" init -q
snapshots=0

# Runs "$@" three times; prints the median wall time (s) and the largest peak RSS (MiB).
measure() {
    local walls=() rss=0 start end r
    for _ in 1 2 3; do
        start=$(date +%s%N)
        /usr/bin/time -f "%M" -o "$work/time" "$@" > /dev/null
        end=$(date +%s%N)
        read -r r < "$work/time"
        walls+=($(((end - start) / 1000)))
        ((r > rss)) && rss=$r
    done
    printf "%s %d" "$(printf "%s\n" "${walls[@]}" | sort -n | sed -n 2p)" $((rss / 1024))
}

printf "%9s  %-22s %8s %8s\n" snapshots step "wall ms" "RSS MiB"
for count in "$@"; do
    while ((snapshots < count)); do
        echo "$snapshots" >> "$src/d00/f000"
        "$bin" backup -q --no-log "$src"
        snapshots=$((snapshots + 1))
    done
    first=$("$bin" snapshots --json --no-log | python3 -c 'import json,sys; print(json.load(sys.stdin)[0]["id"])')
    # Commands run seconds after a backup, not within the same second: a local repository's
    # folders vouch for their listing only once unchanged for 2 s (docs/format.md, section 12,
    # "Listing stamps"). SETTLE=0 measures the commands right after the backups instead.
    sleep "${SETTLE:-3}"
    file=${src#/}/d05/f100
    for step in snapshots "ls latest" "restore latest, 1 file" "restore first, 1 file" "backup"; do
        case $step in
        snapshots) cmd=("$bin" snapshots --no-log) ;;
        "ls latest") cmd=("$bin" ls --no-log latest) ;;
        "restore latest, 1 file") cmd=("$bin" restore --no-log -q latest --include "/$file" --target "$work/out") ;;
        "restore first, 1 file") cmd=("$bin" restore --no-log -q "$first" --include "/$file" --target "$work/out") ;;
        backup) cmd=("$bin" backup -q --no-log "$src") ;;
        esac
        read -r wall rss <<< "$(measure "${cmd[@]}")"
        printf "%9d  %-22s %8.1f %8d\n" "$count" "$step" "$(echo "$wall / 1000" | bc -l)" "$rss"
        if [[ $step == restore* && ! -f $work/out/$file ]]; then
            echo "the restore did not write $file" >&2
            exit 1
        fi
        rm -rf "$work/out"
    done
    # The three timed backups added snapshots.
    snapshots=$((snapshots + 3))
done
