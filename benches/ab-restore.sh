#!/usr/bin/env bash
# A/B of the whole restore path: two respaldo binaries (before and after a change) restore the
# same snapshot, interleaved, each run into a fresh folder. Prints one line per run: binary,
# wall seconds, peak RSS (KiB).
#
#   benches/ab-restore.sh OLD_BINARY NEW_BINARY [SOURCE] [REPS]
#
# SOURCE defaults to ~/.cargo/registry/src (many small files), REPS to 5. NEW_BINARY backs
# SOURCE up once into an encrypted repository (cheap test KDF, so that key derivation does not
# hide what changed); both binaries restore that snapshot, each with its own cache (index.redb),
# after one untimed warm-up restore each. The page cache is warm (the repository was just
# written and is read once before the runs); `sync` runs before each restore, outside the
# timing.
#
# Each restored folder is deleted after its run, before the next `sync`. With AB_KEEP=1 they
# all stay until the end instead (needs room for 2 x REPS + 2 copies of SOURCE): deleting tens
# of thousands of small files leaves ext4 busy for seconds after `rm` returns, which made the
# next restore up to 3x slower at random; but keeping copies of large files fills memory with
# dirty pages, which slows the later runs as much. So: AB_KEEP=1 for many small files on
# disk, the default for large files. Restores go below $AB_TARGET_DIR when set (e.g.
# AB_TARGET_DIR=/dev/shm: tmpfs, the CPU side without the file system's journal), else in the
# work folder beside the repository. Needs GNU time (/usr/bin/time).
set -euo pipefail
old=$1 new=$2 src=${3:-$HOME/.cargo/registry/src} reps=${4:-5}
work=$(mktemp -d)
targets=$(mktemp -d -p "${AB_TARGET_DIR:-$work}")
trap 'rm -rf "$work" "$targets"' EXIT
export RESPALDO_PASSWORD=ab RESPALDO_INSECURE_KDF_FOR_TESTS=1 RESPALDO_LOG_DB=$work/log.db
export RESPALDO_CACHE_DIR=$work/cache-backup
"$new" init --repo "$work/repo" -q
"$new" backup -q --repo "$work/repo" "$src"
find "$work/repo" -type f -exec cat {} + > /dev/null # warm the page cache
runs=0
run() { # label binary
    local label=$1 bin=$2
    export RESPALDO_CACHE_DIR=$work/cache-$label
    runs=$((runs + 1))
    target=$targets/$label-$runs
    sync
    /usr/bin/time -f "$label %e s %M KiB" \
        "$bin" restore -q --repo "$work/repo" latest --target "$target" 2>&1 >/dev/null |
        tail -n 1
    if [[ ${AB_KEEP:-0} != 1 && $runs -lt $((2 * reps + 2)) ]]; then rm -rf "$target"; fi
}
run old "$old" > /dev/null # warm-up: builds each binary's index cache
run new "$new" > /dev/null
for _ in $(seq "$reps"); do
    run old "$old"
    run new "$new"
done
# The last restore must equal the source.
diff -r "$src" "$target$(realpath "$src")" > /dev/null && echo "restore matches $src"
