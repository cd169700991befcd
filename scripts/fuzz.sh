#!/usr/bin/env bash
# Runs every fuzz target (fuzz/, cargo-fuzz with libFuzzer) for SECONDS each (default 10),
# from its corpus under fuzz/corpus/. A crash, a panic, a process over 1 GB (or an allocation over 256 MB where libFuzzer can see it) or an input
# taking over 10 s fails the run and leaves the input under fuzz/artifacts/. cargo-fuzz is
# installed if missing; the stable toolchain is used as nightly (RUSTC_BOOTSTRAP=1), since
# the machine has one toolchain. Longer runs: `scripts/fuzz.sh 600` (README, "Fuzzing").
set -euo pipefail
cd "$(dirname "$0")/.."
SECONDS_EACH="${1:-10}"
export RUSTC_BOOTSTRAP=1
if ! command -v cargo-fuzz >/dev/null; then
    cargo install cargo-fuzz --locked --quiet
fi
# Unoptimised and without a sanitizer: the code is safe Rust but for zstd's C decoder behind
# packed records (the zstd sled's compression links, fuzzed upstream by OSS-Fuzz), and an
# optimised build of every dependency with ASan takes a quarter hour on two cores; coverage
# guidance, panics (debug assertions and overflow checks on) and the memory limits are what
# is checked. For long runs build with -O (README, "Fuzzing").
cargo fuzz build --dev --sanitizer none
for target in decode text bodies; do
    mkdir -p "fuzz/corpus/$target"
    echo "== fuzz $target for ${SECONDS_EACH}s"
    cargo fuzz run --dev --sanitizer none "$target" "fuzz/corpus/$target" -- \
        -max_total_time="$SECONDS_EACH" -rss_limit_mb=1024 -malloc_limit_mb=256 \
        -timeout=10 -max_len=4096 -print_final_stats=1 2>&1 | grep -E "^(stat::number_of_executed_units|stat::peak_rss_mb|==|INFO: Running|SUMMARY|.*panicked)" || true
    if ls fuzz/artifacts/"$target"/* >/dev/null 2>&1; then
        echo "fuzz $target found a failing input: fuzz/artifacts/$target/" >&2
        exit 1
    fi
done
