#!/usr/bin/env bash
# A/B of the whole backup path: two respaldo binaries (before and after a change) back up the
# same folder, interleaved: first backups into fresh repositories, then unchanged re-backups.
# Prints one line per run: step, binary, wall seconds, peak RSS (KiB).
#
#   benches/ab-backup.sh OLD_BINARY NEW_BINARY [SOURCE] [REPS]
#
# SOURCE defaults to ~/.cargo/registry/src (many small files), REPS to 3 (first backups; the
# re-backups run REPS + 2 times). Repositories are encrypted with the cheap test KDF, so that
# key derivation does not hide what changed. Needs GNU time (/usr/bin/time).
set -euo pipefail
old=$1 new=$2 src=${3:-$HOME/.cargo/registry/src} reps=${4:-3}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
export RESPALDO_PASSWORD=ab RESPALDO_INSECURE_KDF_FOR_TESTS=1
find "$src" -type f -exec cat {} + > /dev/null # warm the page cache
run() { # step label binary args...
    local step=$1 label=$2 bin=$3
    shift 3
    /usr/bin/time -f "$step $label %e s %M KiB" "$bin" "$@" 2>&1 >/dev/null | tail -n 1
}
for rep in $(seq "$reps"); do
    for label in old new; do
        bin=$old; [[ $label == new ]] && bin=$new
        export RESPALDO_CACHE_DIR=$work/cache-$label-$rep
        "$bin" init --repo "$work/repo-$label-$rep" -q
        run first "$label" "$bin" backup -q --repo "$work/repo-$label-$rep" "$src"
    done
done
for _ in $(seq $((reps + 2))); do
    for label in old new; do
        bin=$old; [[ $label == new ]] && bin=$new
        export RESPALDO_CACHE_DIR=$work/cache-$label-1
        run unchanged "$label" "$bin" backup -q --repo "$work/repo-$label-1" "$src"
    done
done
