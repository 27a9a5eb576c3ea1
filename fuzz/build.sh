#!/usr/bin/env bash
# Builds every fuzz target on the stable toolchain, then runs each one on a few generated
# inputs (a smoke test: a harness that no longer matches the format panics on its first
# input). See docs/reliability.md, section "Fuzzing".
#
# This is a plain `cargo build`: no nightly, no sanitizer, no cargo-fuzz, no coverage
# instrumentation. libfuzzer-sys compiles libFuzzer (C++) with the system compiler, and the
# targets link without sanitizer flags. To fuzz for real, with coverage, use
# `cargo fuzz run TARGET -s none` (also stable).
#
# Environment: FUZZ_SMOKE=0 skips the smoke runs; CARGO_TARGET_DIR is honoured.
set -euo pipefail
cd "$(dirname "$0")"

echo "== fuzz: toolchain: $(cargo --version), $(rustc --version)"
echo "== fuzz: cargo build --manifest-path fuzz/Cargo.toml --locked --bins"
start=$(date +%s)
cargo build --manifest-path Cargo.toml --locked --bins
echo "== fuzz: built in $(($(date +%s) - start)) s"

if [[ "${FUZZ_SMOKE:-1}" == "0" ]]; then
    echo "== fuzz: smoke runs skipped (FUZZ_SMOKE=0)"
    exit 0
fi
bin_dir="${CARGO_TARGET_DIR:-$PWD/target}/debug"
smoke_dir="$(mktemp -d)"
trap 'rm -rf "$smoke_dir"' EXIT
for source in fuzz_targets/*.rs; do
    target="$(basename "$source" .rs)"
    echo "== fuzz: smoke run: $target -runs=64 -seed=1"
    "$bin_dir/$target" -runs=64 -seed=1 -artifact_prefix="$smoke_dir/" 2>"$smoke_dir/$target.log" || {
        cat "$smoke_dir/$target.log" >&2
        echo "== fuzz: $target failed its smoke run" >&2
        exit 1
    }
done
echo "== fuzz: every target built and ran"
